"""A tiny randomly initialised Gemma 3 causal LM with a word-level tokenizer built offline, saved to
a folder and loaded back as a user's model would be: the lm planner's whole path runs on it."""

from __future__ import annotations

import re
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import Gemma3ForCausalLM, Gemma3TextConfig, PreTrainedTokenizerFast

from spiral.worlds.tabletop.lm_planner_train import canonical_answers

SPECIAL = ["<pad>", "<eos>", "<bos>", "<unk>"]
PROMPT_WORDS = [
    "scene",
    "request",
    "goal",
    "a",
    "small",
    "medium",
    "large",
    "in",
    "on",
    "the",
    "of",
    ".",
    ":",
    ";",
    ",",
    "please",
    "could",
    "you",
    "put",
    "move",
]


def build_tiny_lm(folder: Path, seed: int = 0) -> Path:
    words = sorted({w for text in canonical_answers() for w in re.findall(r"\w+|[^\w\s]", text)} | set(PROMPT_WORDS))
    vocab = {w: i for i, w in enumerate(SPECIAL + words)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", vocab["<bos>"])])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )
    config = Gemma3TextConfig(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, head_dim=16, max_position_embeddings=512, sliding_window=64,
        pad_token_id=0, eos_token_id=1, bos_token_id=2, layer_types=["sliding_attention", "full_attention"],
        initializer_range=0.5,  # the output head is frozen (tied to the embeddings): it needs a real scale
    )  # fmt: skip
    torch.manual_seed(seed)
    Gemma3ForCausalLM(config).save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder
