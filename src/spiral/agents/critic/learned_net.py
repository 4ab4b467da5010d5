"""The network of the `learned` tabletop critic: a small video scorer that reads a clip at 32x32
(or finer: `resolution`) with the step's instruction and says whether the step succeeded, how it
failed, and whether the failure is global (the world drifted) rather than local.

Frames are fused early: the start frame and each frame's change from it are stacked as channels
(the changes are mostly zero, which makes "what moved" easy to see), with per-frame masks of the
colours of the objects the instruction names (in our runs they lifted validation AUC on dataset
clips from 0.74 to 0.96: grounding "the red square" in pixels is otherwise slow to learn). A
strided conv stem makes an 8x8 grid of tokens, and a few transformer blocks let every cell look at
the instruction's MiniLM token embeddings through cross-attention (which object, which relation),
then at the other cells (where is the anchor?). Pooled sentence vectors would not do: they barely differ between
"left of" and "right of" (see worldmodels/text.py). A learned [CLS] token feeds three heads.

The last two numbers of the state, `calib`, are a Platt scaling (scale, bias) fitted by the reward
model stage on held-back rollouts, so the shipped score is a calibrated probability.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from spiral.agents.critic.learned_objects import GOAL_SIZE, ObjectEncoder, goal_row, object_features
from spiral.agents.critic.learned_slots import CLIP_FACTS, OBJECT_FACTS, SlotEncoder, coordinate_planes, slot_input
from spiral.errors import SpiralError
from spiral.types import FailureKind
from spiral.worlds.tabletop.actions import REGIONS
from spiral.worlds.tabletop.grammar import parse
from spiral.worlds.tabletop.scene import COLOURS

if TYPE_CHECKING:
    from spiral.agents.critic.learned_ensemble import CriticEnsemble

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
STEM = 64  # channels of the first conv layer
MASK_SIGMA = 60.0  # grey levels: a colour mask falls to 0.6 at this distance from the named colour
ARCHS = ("grid", "slots", "objects")


@dataclass(frozen=True)
class CriticNetConfig:
    resolution: int = 32  # clips are area-downsampled to this size
    num_frames: int = 8  # longer or shorter clips are resampled to this many frames, ends kept
    dim: int = 96
    depth: int = 3
    heads: int = 4
    text_dim: int = 384  # MiniLM token embedding size
    mlp_ratio: float = 2.0
    colour_masks: bool = True  # add per-frame masks of the named objects' colours (see clips_to_input)
    # tokens: "grid" (8x8 cells of a conv stem), "slots" (one per colour, learned_slots.py) or
    # "objects" (one per colour, made of measured numbers, learned_objects.py)
    arch: str = "grid"
    fact_heads: bool = False  # slots and objects only: also predict the oracle's per-object and clip facts (training aid)
    # objects only: also each colour's contact with the subject and its motion (learned_objects.EXTRA_NUMBERS)
    extra_numbers: bool = False
    # objects with extra_numbers only: also the instruction's relation and where each colour ends
    # against the step's region or anchor (learned_objects.GOAL_NUMBERS)
    goal_numbers: bool = False
    # objects with goal_numbers only: also each colour's clearance from the subject's end footprint
    # (learned_objects.FOOTPRINT_NUMBERS)
    footprint_numbers: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class CriticOutput:
    success: torch.Tensor  # (B,) logit, already Platt-scaled
    kind: torch.Tensor  # (B, len(KINDS)) logits
    drift: torch.Tensor  # (B,) logit: a failure that needs replanning rather than a retry
    objects: torch.Tensor | None = None  # (B, SLOTS, len(OBJECT_FACTS)) logits (fact_heads)
    facts: torch.Tensor | None = None  # (B, len(CLIP_FACTS)) logits (fact_heads)


def clips_to_input(frames: torch.Tensor | np.ndarray, cfg: CriticNetConfig, rows: TextTable) -> torch.Tensor:
    """uint8 clips (B, T, H, W, 3) -> float (B, C, R, R) for the grid (the slots: see slot_input):
    the start frame and each later frame's change from it, in [-1, 1] and [-2, 2], then
    (colour_masks) how close (0..1) each pixel of each frame is to the colour of the subject and of
    the anchor object the instruction names (`rows`: the clips' rows of the TextTable). Every object has its own colour, so the masks say where the named objects are
    and how solidly they are painted in each frame, which is most of what the oracle checks; the
    network still has to learn what they mean for the step. Frames are picked evenly, ends kept."""
    x = torch.as_tensor(frames)
    if x.ndim == 4:
        x = x[None]
    idx = np.rint(np.linspace(0, x.shape[1] - 1, cfg.num_frames)).astype(np.int64)
    x = x[:, idx].float().movedim(-1, -3) / 127.5 - 1.0  # (B, T, 3, H, W)
    b, t = x.shape[:2]
    if x.shape[-1] != cfg.resolution:
        x = F.interpolate(x.reshape(b * t, 3, *x.shape[-2:]), size=(cfg.resolution, cfg.resolution), mode="area")
        x = x.reshape(b, t, 3, cfg.resolution, cfg.resolution)
    rgb, named = rows.rgb, rows.named
    if cfg.arch == "slots":
        return slot_input(x, rgb, named)
    if cfg.arch == "objects":
        return object_features(x, rgb, named, rows.goal if cfg.goal_numbers else None, cfg.footprint_numbers)
    parts = [x[:, :1], x[:, 1:] - x[:, :1]]
    if cfg.colour_masks:
        d2 = (((x[:, :, None] + 1.0) * 127.5 - rgb[:, None, :, :, None, None]) ** 2).sum(3)  # (B, T, 2, R, R)
        parts.append(torch.exp(-d2 / (2 * MASK_SIGMA**2)) * named[:, None, :, None, None])
    return torch.cat([p.reshape(b, -1, cfg.resolution, cfg.resolution) for p in parts], dim=1)


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
            except (SpiralError, ValueError):  # words the grammar does not know: no masks
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
        # Cross-attention first: each cell learns whether it holds a named object before the
        # cells compare places with each other (subject left of anchor?).
        h = self.norm1(x)
        x = x + self.cross(h, text, text, key_padding_mask=pad, need_weights=False)[0]
        h = self.norm2(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm3(x))


class CriticNet(nn.Module):
    """(clip input from `clips_to_input`, instruction tokens (B, L, 384), pad mask (B, L)) -> CriticOutput."""

    def __init__(self, cfg: CriticNetConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.dim
        if cfg.resolution % 16 or cfg.resolution < 32:
            raise SpiralError(f"critic resolution {cfg.resolution}: use a multiple of 16 of at least 32 (e.g. 32 or 64)")
        if cfg.arch not in ARCHS:
            raise SpiralError(f"critic arch {cfg.arch!r}: use one of {', '.join(ARCHS)}")
        if cfg.fact_heads and cfg.arch == "grid":
            raise SpiralError("critic fact_heads need arch 'slots' or 'objects' (one token per object colour)")
        if cfg.extra_numbers and cfg.arch != "objects":
            raise SpiralError("critic extra_numbers need arch 'objects' (drop --extra-numbers, or add --arch objects)")
        if cfg.goal_numbers and not cfg.extra_numbers:
            raise SpiralError("critic goal_numbers need arch 'objects' with extra_numbers (drop --goal-numbers, or add both)")
        if cfg.footprint_numbers and not cfg.goal_numbers:
            raise SpiralError("critic footprint_numbers need goal_numbers (drop --footprint-numbers, or add --goal-numbers)")
        if cfg.fact_heads:
            self.object_head, self.fact_head = nn.Linear(d, len(OBJECT_FACTS)), nn.Linear(d, len(CLIP_FACTS))
        if cfg.arch == "slots":
            self.slots = SlotEncoder(cfg.num_frames, cfg.resolution, d)
        elif cfg.arch == "objects":
            self.objects = ObjectEncoder(cfg.num_frames, d, cfg.extra_numbers, cfg.goal_numbers, cfg.footprint_numbers)
        else:
            # frames, colour masks and 2 coordinate channels (regions are absolute places)
            c = (5 if cfg.colour_masks else 3) * cfg.num_frames + 2
            # The stem always makes an 8x8 token grid, so a finer input costs the stem, not the attention.
            stride = cfg.resolution // 16
            self.conv1 = nn.Conv2d(c, STEM, 2 * stride, stride=stride, padding=stride // 2)
            self.conv2 = nn.Conv2d(STEM, d, 3, stride=2, padding=1)
            self.conv3 = nn.Conv2d(d, d, 3, padding=1)
            self.pos = nn.Parameter(torch.randn(1, 8 * 8, d) * 0.02)
            self.register_buffer("coords", coordinate_planes(cfg.resolution), persistent=False)
        self.cls = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.text_proj = nn.Sequential(nn.LayerNorm(cfg.text_dim), nn.Linear(cfg.text_dim, d))
        self.blocks = nn.ModuleList(Block(d, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, 2 + len(KINDS))  # success, drift, kinds
        self.register_buffer("calib", torch.tensor([1.0, 0.0]))  # Platt (scale, bias) of the success logit

    def forward(self, x: torch.Tensor, text: torch.Tensor, pad: torch.Tensor, calibrated: bool = True) -> CriticOutput:
        b = x.shape[0]
        text = self.text_proj(text)
        if self.cfg.arch == "slots":
            cells = self.slots(x)
        elif self.cfg.arch == "objects":
            cells = self.objects(x)
        else:
            h = self.conv3(F.gelu(self.conv2(F.gelu(self.conv1(torch.cat([x, self.coords.expand(b, -1, -1, -1)], dim=1))))))
            cells = h.flatten(2).transpose(1, 2) + self.pos
        tokens = torch.cat([self.cls.expand(b, -1, -1), cells], dim=1)
        for block in self.blocks:
            tokens = block(tokens, text, pad)
        tokens = self.norm(tokens)
        out = self.head(tokens[:, 0])
        success = out[:, 0] * self.calib[0] + self.calib[1] if calibrated else out[:, 0]
        if not self.cfg.fact_heads:
            return CriticOutput(success=success, kind=out[:, 2:], drift=out[:, 1])
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
    net: CriticNet | CriticEnsemble,
    frames: torch.Tensor,
    text_ids: torch.Tensor,
    table: TextTable,
    batch_size: int = 256,
    calibrated: bool = True,
) -> CriticOutput:
    """Score uint8 clips (N, T, H, W, 3) in batches (by one critic or an ensemble); clip i's instruction
    is row text_ids[i] of `table`."""
    net.eval()
    if not len(frames):
        return CriticOutput(torch.zeros(0), torch.zeros(0, len(KINDS)), torch.zeros(0))
    outs = []
    for i in range(0, len(frames), batch_size):
        outs.append(net.score(frames[i : i + batch_size], table.take(text_ids[i : i + batch_size]), calibrated))
    return CriticOutput(*(torch.cat([getattr(o, k) for o in outs]) for k in ("success", "kind", "drift")))
