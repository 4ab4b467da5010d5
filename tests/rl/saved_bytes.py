"""How many bytes autograd keeps for backward, live and at their peak (saved-tensor hooks)."""

from __future__ import annotations

import torch


class SavedBytes:
    def __init__(self):
        self.live = self.peak = 0

    def pack(self, tensor):
        return _Held(tensor, self)

    @staticmethod
    def unpack(held):
        return held.tensor


class _Held:
    def __init__(self, tensor, owner: SavedBytes):
        self.tensor, self.owner, self.size = tensor, owner, tensor.numel() * tensor.element_size()
        owner.live += self.size
        owner.peak = max(owner.peak, owner.live)

    def __del__(self):
        self.owner.live -= self.size


def peak_saved(run) -> int:
    """The peak bytes saved for backward while `run()` runs."""
    saved = SavedBytes()
    with torch.autograd.graph.saved_tensors_hooks(saved.pack, saved.unpack):
        run()
    return saved.peak
