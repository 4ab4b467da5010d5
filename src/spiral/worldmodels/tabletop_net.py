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
    # The net sees the change from the start frame times this factor. Changes are sparse (about 5%
    # of pixels, std 0.08 unscaled), so unscaled the noise drowns them at all but low noise levels,
    # as latent models avoid by scaling latents to unit variance. Tried: 6 (std ~0.5) stayed at 0%
    # held-out success after 7,000 steps where 1 had reached 4%, so the shipped model uses 1.
    change_scale: float = 1.0
    # Preconditioning (EDM, Karras et al. 2022, in flow-matching time): the std of the clean change
    # latent, or 0 for none. With it the net sees its noisy input scaled to unit variance and predicts
    # x0 as c_skip * x_t + c_out * F, so at low noise it only corrects its input instead of
    # re-painting it through a 128-wide token (given the true clip noised to t = 0.02, the
    # unpreconditioned net's clip passes the oracle only 70-74% of the time, against 98% for the
    # true clip through the same latent: benchmarks/world_model_ceiling.py). Tried with 0.08, the measured std:
    # worse, because the change is sparse, so the skip also passes noise into the still background,
    # which the net must then cancel exactly; at 3,500 steps the frames were grainy all over and the
    # training loss above the unpreconditioned run's. Off by default.
    sigma_data: float = 0.0
    # Hidden width of a second output head that sees the noisy input tubelet and the start patch
    # beside the transformer's token (0: none). A token is `dim` wide but its tubelet holds
    # `tubelet` values (336 by default), so through the token alone the net cannot even copy a
    # nearly clean input; this head can, and learns per token how much of its input to trust.
    skip_head: int = 0
    # A per-value gate, computed from each output token, on the noisy input tubelet added to the
    # prediction: x0_hat = out(h) + gate(h) * x_t. Through its 128-wide token alone the shipped net
    # cannot copy a nearly clean input: given the true change noised to t = 0.02 its x0 error is no
    # smaller than the noisy input's own (benchmarks/world_model_ceiling.py). Unlike EDM's fixed
    # c_skip, the gate is learned per token, so a still background can shut it and keep out noise.
    input_gate: bool = False

    @property
    def tokens(self) -> int:
        return (self.resolution // self.patch) ** 2

    @property
    def tubelet(self) -> int:
        """Values in one generated tubelet: (frames - 1) x 3 x patch x patch."""
        return (self.num_frames - 1) * 3 * self.patch * self.patch

    def to_dict(self) -> dict:
        return asdict(self)


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
        self.gate = nn.Linear(cfg.dim, cfg.tubelet) if cfg.input_gate else None
        self.skip = None
        if cfg.skip_head:
            self.skip = nn.Sequential(
                nn.Linear(cfg.dim + cfg.tubelet + start_values, cfg.skip_head),
                nn.GELU(approximate="tanh"),
                nn.Linear(cfg.skip_head, cfg.tubelet),
            )
        grown = [m for m in (self.gate, self.skip[-1] if self.skip is not None else None) if m is not None]
        for layer in (self.ada_out, self.out, *grown):  # zero: a grown part starts out doing nothing
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
        sigma = self.cfg.sigma_data
        if not sigma:
            return self.predict(x_t, t, start, text, text_pad)
        # x_t = (1 - t) x0 + t eps has variance (1 - t)^2 sigma^2 + t^2 per value.
        tt = t.view(-1, 1, 1, 1, 1).to(x_t.dtype)
        std = ((1 - tt) ** 2 * sigma**2 + tt**2).sqrt()
        c_skip = (1 - tt) * sigma**2 / std**2  # the best linear guess of x0 from x_t alone
        c_out = tt * sigma / std  # the std of what that guess leaves
        return c_skip * x_t + c_out * self.predict(x_t / std, t, start, text, text_pad)

    def predict(
        self, x_in: torch.Tensor, t: torch.Tensor, start: torch.Tensor, text: torch.Tensor, text_pad: torch.Tensor
    ) -> torch.Tensor:
        """The transformer itself: x0 when unpreconditioned, else the scaled correction F."""
        tokens = torch.cat([self.to_tokens(x_in), self.to_tokens(start[:, None])], dim=-1)
        x = self.embed(tokens) + self.pos
        keep = (~text_pad).unsqueeze(-1).float()
        pooled = (text * keep).sum(1) / keep.sum(1).clamp(min=1.0)
        cond = self.time(timestep_embedding(t, 256)) + self.text_pool(pooled)
        text_h = self.text_proj(text)
        for block in self.blocks:
            x = block(x, cond, text_h, text_pad)
        shift, scale = self.ada_out(F.silu(cond)).chunk(2, dim=-1)
        h = modulate(self.norm_out(x), shift, scale)
        out = self.out(h)
        if self.gate is not None:
            out = out + self.gate(h) * tokens[..., : self.cfg.tubelet]
        if self.skip is not None:
            out = out + self.skip(torch.cat([h, tokens], dim=-1))
        return self.from_tokens(out)

    def null_condition(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.null_text.expand(batch, 1, -1), torch.zeros(batch, 1, dtype=torch.bool, device=self.null_text.device)
