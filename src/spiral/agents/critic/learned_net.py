"""The network of the `learned` tabletop critic: a small scorer that reads a clip at 32x32 (or
finer: `resolution`) with the step's instruction and says whether the step succeeded, how it
failed, and whether the failure is global (the world drifted) rather than local.

Each palette colour and the table become one token of numbers measured on the clip
(learned_objects.py). A few transformer blocks let every token look at the instruction's MiniLM
token embeddings through cross-attention (which object, which relation), then at the other tokens
(where is the anchor?). Pooled sentence vectors would not do: they barely differ between "left of"
and "right of" (see worldmodels/text.py). A learned [CLS] token feeds three heads, and each colour's
token a head for the oracle's per-object facts.

The last two numbers of the state, `calib`, are a Platt scaling (scale, bias) fitted by the reward
model stage on held-back rollouts, so the shipped score is a calibrated probability.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from spiral.agents.critic.learned_objects import CLIP_FACTS, GOAL_SIZE, OBJECT_FACTS, ObjectEncoder, goal_row, object_features
from spiral.config import without_retired
from spiral.errors import SpiralError
from spiral.types import FailureKind
from spiral.worlds.tabletop.actions import REGIONS
from spiral.worlds.tabletop.grammar import parse
from spiral.worlds.tabletop.scene import COLOURS

Clips = torch.Tensor | np.ndarray | list | tuple  # a batch of uint8 clips, or a list of clips of any sizes

# The kinds a clip can show. PRECONDITION_UNMET and AGENT_ERROR are not properties of a clip's
# pixels (the plan or the critic itself went wrong), so the head does not predict them.
KINDS: tuple[FailureKind, ...] = (
    FailureKind.NONE,
    FailureKind.INCOMPLETE,
    FailureKind.WRONG_OBJECT,
    FailureKind.HALLUCINATED_OBJECT,
    FailureKind.PHYSICAL_VIOLATION,
    FailureKind.LOW_QUALITY,
)
KIND_INDEX = {k.value: i for i, k in enumerate(KINDS)}
# Settings that have one value now: a config written with them is read if it has that value.
RETIRED = {
    "arch": "objects",
    "colour_masks": True,
    "fact_heads": True,
    "extra_numbers": True,
    "goal_numbers": True,
    "footprint_numbers": True,
}


@dataclass(frozen=True)
class CriticNetConfig:
    resolution: int = 32  # clips are area-downsampled to this size
    num_frames: int = 8  # longer or shorter clips are resampled to this many frames, ends kept
    dim: int = 96
    depth: int = 3
    heads: int = 4
    text_dim: int = 384  # MiniLM token embedding size
    mlp_ratio: float = 2.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict, what: str) -> CriticNetConfig:
        """The config a weights file records; `what` names the file in the error a retired setting gets."""
        return cls(**without_retired(values, RETIRED, what))


@dataclass(frozen=True)
class CriticOutput:
    success: torch.Tensor  # (B,) logit, already Platt-scaled
    kind: torch.Tensor  # (B, len(KINDS)) logits
    drift: torch.Tensor  # (B,) logit: a failure that needs replanning rather than a retry
    objects: torch.Tensor | None = None  # (B, SLOTS, len(OBJECT_FACTS)) logits (not kept by `predict`)
    facts: torch.Tensor | None = None  # (B, len(CLIP_FACTS)) logits (not kept by `predict`)


def clips_to_input(frames: torch.Tensor | np.ndarray, cfg: CriticNetConfig, rows: TextTable) -> torch.Tensor:
    """uint8 clips (B, T, H, W, 3) -> the tokens' numbers (B, SLOTS, feature_size(T)) (see
    learned_objects.object_features); `rows`: the clips' rows of the TextTable. Frames are picked
    evenly, ends kept, and area-averaged to the critic's resolution."""
    x = torch.as_tensor(frames)
    if x.ndim == 4:
        x = x[None]
    idx = np.rint(np.linspace(0, x.shape[1] - 1, cfg.num_frames)).astype(np.int64)
    x = x[:, idx].float().movedim(-1, -3) / 127.5 - 1.0  # (B, T, 3, H, W)
    b, t = x.shape[:2]
    if x.shape[-1] != cfg.resolution:
        x = F.interpolate(x.reshape(b * t, 3, *x.shape[-2:]), size=(cfg.resolution, cfg.resolution), mode="area")
        x = x.reshape(b, t, 3, cfg.resolution, cfg.resolution)
    return object_features(x, rows.rgb, rows.named, rows.goal)


@dataclass(frozen=True)
class TextTable:
    """Per distinct instruction: MiniLM token embeddings (U, L, 384) and pad mask (U, L), the RGB
    of the subject and of the anchor object it names (U, 2, 3) with which it names (U, 2), and its
    relation and region as the grammar parses them (U, GOAL_SIZE; see learned_objects.goal_row).
    All zeros past the embeddings where the grammar cannot parse the text."""

    emb: torch.Tensor
    pad: torch.Tensor
    rgb: torch.Tensor
    named: torch.Tensor
    goal: torch.Tensor

    def take(self, ids: torch.Tensor) -> TextTable:
        """The rows of these instructions, one per clip."""
        return TextTable(self.emb[ids], self.pad[ids], self.rgb[ids], self.named[ids], self.goal[ids])

    @staticmethod
    def build(texts: list[str], encoder) -> TextTable:
        emb, pad = encoder.encode(texts)
        rgb, named = torch.zeros(len(texts), 2, 3), torch.zeros(len(texts), 2)
        goal = torch.zeros(len(texts), GOAL_SIZE)
        for i, text in enumerate(texts):
            try:
                action = parse(text)
            except (SpiralError, ValueError):  # words the grammar does not know: no roles, no goal
                continue
            goal[i] = goal_row(action)
            for j, name in enumerate((action.subject, action.anchor)):
                colour = name.split()[0]
                if colour in COLOURS and name not in REGIONS:
                    rgb[i, j], named[i, j] = torch.tensor(COLOURS[colour], dtype=torch.float32), 1.0
        return TextTable(emb, pad, rgb, named, goal)


def downsample(frames: np.ndarray, resolution: int) -> torch.Tensor:
    """uint8 (..., T, H, W, 3) -> uint8 (..., T, R, R, 3), area-averaged."""
    x = torch.from_numpy(np.ascontiguousarray(frames))
    lead = x.shape[:-3]
    x = x.reshape(-1, *x.shape[-3:]).permute(0, 3, 1, 2).float()
    if x.shape[-1] != resolution:
        x = F.interpolate(x, size=(resolution, resolution), mode="area")
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).reshape(*lead, resolution, resolution, 3)


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.cross = nn.MultiheadAttention(dim, heads, batch_first=True)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, text: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        # Cross-attention first: each token learns whether it is a named object before the
        # tokens compare places with each other (subject left of anchor?).
        h = self.norm1(x)
        x = x + self.cross(h, text, text, key_padding_mask=pad, need_weights=False)[0]
        h = self.norm2(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm3(x))


class CriticNet(nn.Module):
    """(tokens' numbers from `clips_to_input`, instruction tokens (B, L, 384), pad mask (B, L)) -> CriticOutput."""

    def __init__(self, cfg: CriticNetConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.dim
        if cfg.resolution % 16 or cfg.resolution < 32:
            raise SpiralError(f"critic resolution {cfg.resolution}: use a multiple of 16 of at least 32 (e.g. 32 or 64)")
        self.object_head, self.fact_head = nn.Linear(d, len(OBJECT_FACTS)), nn.Linear(d, len(CLIP_FACTS))
        self.objects = ObjectEncoder(cfg.num_frames, d)
        self.cls = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.text_proj = nn.Sequential(nn.LayerNorm(cfg.text_dim), nn.Linear(cfg.text_dim, d))
        self.blocks = nn.ModuleList(Block(d, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, 2 + len(KINDS))  # success, drift, kinds
        self.register_buffer("calib", torch.tensor([1.0, 0.0]))  # Platt (scale, bias) of the success logit

    def forward(self, x: torch.Tensor, text: torch.Tensor, pad: torch.Tensor, calibrated: bool = True) -> CriticOutput:
        b = x.shape[0]
        text = self.text_proj(text)
        tokens = torch.cat([self.cls.expand(b, -1, -1), self.objects(x)], dim=1)
        for block in self.blocks:
            tokens = block(tokens, text, pad)
        tokens = self.norm(tokens)
        out = self.head(tokens[:, 0])
        success = out[:, 0] * self.calib[0] + self.calib[1] if calibrated else out[:, 0]
        objects, facts = self.object_head(tokens[:, 1:]), self.fact_head(tokens[:, 0])
        return CriticOutput(success=success, kind=out[:, 2:], drift=out[:, 1], objects=objects, facts=facts)

    @property
    def resolution(self) -> int:
        return self.cfg.resolution

    def score(self, clips: Clips, rows: TextTable, calibrated: bool = True) -> CriticOutput:
        """uint8 clips (B, T, H, W, 3), or a list of (T, H, W, 3) clips of any sizes and lengths ->
        outputs, in one batch; `rows`: the TextTable row of each clip's instruction."""
        if isinstance(clips, (list, tuple)):
            x = torch.cat([clips_to_input(c, self.cfg, rows.take(torch.tensor([i]))) for i, c in enumerate(clips)])
        else:
            x = clips_to_input(clips, self.cfg, rows)
        return self(x, rows.emb.float(), rows.pad, calibrated)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


@torch.no_grad()
def predict(
    net: CriticNet,
    frames: torch.Tensor,
    text_ids: torch.Tensor,
    table: TextTable,
    batch_size: int = 256,
    calibrated: bool = True,
) -> CriticOutput:
    """Score uint8 clips (N, T, H, W, 3) in batches; clip i's instruction is row text_ids[i] of `table`."""
    net.eval()
    if not len(frames):
        return CriticOutput(torch.zeros(0), torch.zeros(0, len(KINDS)), torch.zeros(0))
    outs = []
    for i in range(0, len(frames), batch_size):
        outs.append(net.score(frames[i : i + batch_size], table.take(text_ids[i : i + batch_size]), calibrated))
    return CriticOutput(*(torch.cat([getattr(o, k) for o in outs]) for k in ("success", "kind", "drift")))
