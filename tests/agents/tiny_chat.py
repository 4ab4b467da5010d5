"""Tiny randomly initialised chat models, built offline in a few seconds, for the agent tests (not
collected by pytest: no test_ prefix). They write nonsense; tests script or expect that."""

from __future__ import annotations

from pathlib import Path

import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
SENTENCES = [
    "move the red square to the left of the blue circle",
    'put the green triangle on the yellow square {"score": 0.5, "verdict": "success"}',
    'answer with a JSON object {"feasible": true, "steps": []}',
]


def tiny_tokenizer(*extra_specials: str):
    """A byte-level BPE tokenizer trained in memory (any text round-trips exactly)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|end|>", "<|pad|>", *extra_specials]
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(SENTENCES, trainer)
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|end|>", pad_token="<|pad|>")


def tiny_llama(tokenizer):
    return transformers.LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=8192,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def save_tiny_chat_model(path: Path) -> Path:
    """A randomly initialised 2-layer Llama chat model with its tokenizer and chat template, in `path`."""
    tokenizer = tiny_tokenizer()
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(path)
    torch.manual_seed(0)
    transformers.LlamaForCausalLM(tiny_llama(tokenizer)).save_pretrained(path)
    return path
