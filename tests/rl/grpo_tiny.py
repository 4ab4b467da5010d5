"""Tiny random tabletop models and cheap rewards for the GRPO tests (importable by the torchrun
script too: it lives next to it)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from spiral.checkpoints import export_half
from spiral.worldmodels.tabletop_net import TabletopNet, TabletopNetConfig

TINY = dict(dim=32, depth=1, heads=2)
# For learning tests: one 4x4 token and one generated frame. At 32x32 x 7 frames a GRPO gradient from
# a few clips is almost pure noise (independent groups' gradients have cosine ~0), so a handful of
# iterations cannot show learning; at this size they do.
SMALL = dict(TINY, resolution=4, num_frames=2)


def tiny_net(std: float = 0.05, seed: int = 0, out_seed: int | None = None, **cfg) -> TabletopNet:
    torch.manual_seed(seed)
    net = TabletopNet(TabletopNetConfig(**(TINY | cfg)))
    # Zero-initialised output layers would make every sample identical; give them some weight.
    # `out_seed`: drawn from a generator of their own, so that a start a test was tuned on does not
    # move when the net gains a layer.
    gen = None if out_seed is None else torch.Generator().manual_seed(out_seed)
    torch.nn.init.normal_(net.out.weight, std=std, generator=gen)
    return net


def tiny_weights(path: Path, std: float = 0.05, seed: int = 0, out_seed: int | None = None, **cfg) -> Path:
    net = tiny_net(std, seed, out_seed, **cfg)
    export_half(path, net, net.cfg.to_dict(), {"steps": 0})
    return path


def brightness(clips: np.ndarray, task=None) -> torch.Tensor:
    """Mean brightness of the generated frames, in [0, 1]: a reward any world model can raise."""
    return torch.from_numpy(clips[:, 1:].reshape(len(clips), -1).astype(np.float32).mean(axis=1) / 255.0)


def darkness(clips: np.ndarray, task=None) -> torch.Tensor:
    return -brightness(clips)


def no_judge(clips: np.ndarray, task=None) -> torch.Tensor:
    """Stands in for the oracle judge, which takes ~1 s per clip of a random model's noise."""
    return torch.zeros(len(clips))


def digest(state: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode())
        h.update(state[k].detach().float().contiguous().numpy().tobytes())
    return h.hexdigest()
