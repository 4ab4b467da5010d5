"""The network of the embedded tabletop world model: a small video transformer over space-time
tubelets, conditioned on the start frame (per token) and on the instruction's token embeddings
(cross-attention), with the flow time through adaptive layer norm (DiT's adaLN-Zero).

It predicts the *clean* change from the start frame (x0-prediction); the sampler turns that into a
velocity. Predicting velocity directly with a net this small never left a loss plateau in our
first experiments, while x0-prediction trained on the velocity loss learned (see issue notes).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from spiral.config import without_retired

# Settings that have one value now: a config written with them is read if it has that value.
RETIRED = {"change_scale": 1.0, "sigma_data": 0.0, "skip_head": 0, "input_gate": True}


@dataclass(frozen=True)
class TabletopNetConfig:
    resolution: int = 32  # the model works at this size; frames are resized to and from it
    num_frames: int = 8  # frames per clip, the start frame included
    patch: int = 4  # tubelets are patch x patch pixels x every generated frame
    dim: int = 128
    depth: int = 6
    heads: int = 4
    text_dim: int = 384  # the sentence encoder's token embedding size
    mlp_ratio: float = 4.0

    @property
    def tokens(self) -> int:
        return (self.resolution // self.patch) ** 2

    @property
    def tubelet(self) -> int:
        """Values in one generated tubelet: (frames - 1) x 3 x patch x patch."""
        return (self.num_frames - 1) * 3 * self.patch * self.patch

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict, what: str) -> TabletopNetConfig:
        """The config a weights file records; `what` names the file in the error a retired setting gets."""
        return cls(**without_retired(values, RETIRED, what))


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    angles = 1000.0 * t[:, None].float() * freqs[None]
    return torch.cat([angles.cos(), angles.sin()], dim=-1)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale[:, None]) + shift[:, None]


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm_x = nn.LayerNorm(dim)
        self.cross = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim))
        self.ada = nn.Linear(dim, 6 * dim)
        nn.init.zeros_(self.ada.weight)
        nn.init.zeros_(self.ada.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, text: torch.Tensor, text_pad: torch.Tensor) -> torch.Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.ada(F.silu(cond)).chunk(6, dim=-1)
        h = modulate(self.norm1(x), shift1, scale1)
        x = x + gate1[:, None] * self.attn(h, h, h, need_weights=False)[0]
        h = self.norm_x(x)
        x = x + self.cross(h, text, text, key_padding_mask=text_pad, need_weights=False)[0]
        h = modulate(self.norm2(x), shift2, scale2)
        return x + gate2[:, None] * self.mlp(h)


class TabletopNet(nn.Module):
    """(noisy change x_t, flow time t, start frame, text tokens) -> predicted clean change x0."""

    def __init__(self, cfg: TabletopNetConfig):
        super().__init__()
        self.cfg = cfg
        start_values = 3 * cfg.patch * cfg.patch
        self.embed = nn.Linear(cfg.tubelet + start_values, cfg.dim)
        self.pos = nn.Parameter(torch.randn(1, cfg.tokens, cfg.dim) * 0.02)
        self.time = nn.Sequential(nn.Linear(256, cfg.dim), nn.SiLU(), nn.Linear(cfg.dim, cfg.dim))
        self.text_proj = nn.Linear(cfg.text_dim, cfg.dim)
        self.text_pool = nn.Linear(cfg.text_dim, cfg.dim)
        self.null_text = nn.Parameter(torch.zeros(1, 1, cfg.text_dim))  # the unconditional "instruction"
        self.blocks = nn.ModuleList(Block(cfg.dim, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.norm_out = nn.LayerNorm(cfg.dim, elementwise_affine=False)
        self.ada_out = nn.Linear(cfg.dim, 2 * cfg.dim)
        self.out = nn.Linear(cfg.dim, cfg.tubelet)
        self.gate = nn.Linear(cfg.dim, cfg.tubelet)
        for layer in (self.ada_out, self.out, self.gate):  # zero: the net starts out predicting no change
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    # Clips are (B, T-1, 3, R, R) changes; start frames are (B, 3, R, R); both in about [-1, 1].
    def to_tokens(self, video: torch.Tensor) -> torch.Tensor:
        b, t, c, r, _ = video.shape
        p, n = self.cfg.patch, r // self.cfg.patch
        x = video.reshape(b, t, c, n, p, n, p).permute(0, 3, 5, 1, 2, 4, 6)
        return x.reshape(b, n * n, t * c * p * p)

    def from_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        b = tokens.shape[0]
        p, n, t = self.cfg.patch, self.cfg.resolution // self.cfg.patch, self.cfg.num_frames - 1
        x = tokens.reshape(b, n, n, t, 3, p, p).permute(0, 3, 4, 1, 5, 2, 6)
        return x.reshape(b, t, 3, n * p, n * p)

    def forward(
        self, x_t: torch.Tensor, t: torch.Tensor, start: torch.Tensor, text: torch.Tensor, text_pad: torch.Tensor
    ) -> torch.Tensor:
        tokens = torch.cat([self.to_tokens(x_t), self.to_tokens(start[:, None])], dim=-1)
        x = self.embed(tokens) + self.pos
        keep = (~text_pad).unsqueeze(-1).float()
        pooled = (text * keep).sum(1) / keep.sum(1).clamp(min=1.0)
        cond = self.time(timestep_embedding(t, 256)) + self.text_pool(pooled)
        text_h = self.text_proj(text)
        for block in self.blocks:
            x = block(x, cond, text_h, text_pad)
        shift, scale = self.ada_out(F.silu(cond)).chunk(2, dim=-1)
        h = modulate(self.norm_out(x), shift, scale)
        # The input gate: through its token alone the net cannot copy a nearly clean input (a token
        # is `dim` wide, its tubelet `tubelet` values), so a learned per-value share of the noisy
        # input is added; a still background can shut it and keep the noise out.
        out = self.out(h) + self.gate(h) * tokens[..., : self.cfg.tubelet]
        return self.from_tokens(out)

    def null_condition(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.null_text.expand(batch, 1, -1), torch.zeros(batch, 1, dtype=torch.bool, device=self.null_text.device)
