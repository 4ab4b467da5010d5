"""The `slots` front end of the learned critic: one token per palette colour, plus one for the table.

Every tabletop object has its own colour, so a clip factors into one soft colour mask per palette
colour and frame. Each mask stack goes through the same small conv encoder, beside the masks of all
other colours (what it may overlap), the clip's change from its start frame (noise, blotches), two
role planes (is this the instruction's subject? its anchor?) and the pixel coordinates. Its
per-frame area and centroid are added as numbers, since "did it vanish, shrink, move there" is
mostly what they say. Sharing one encoder over the colours means every clip teaches the encoder
about six objects, not one grid. It ranks held-out rollouts better than the grid front end
(learned_net.py; ROC-AUC 0.735 against 0.648, and 0.743 against 0.663 on second steps) but made
the closed loop worse (58% goal success over two seeds against 66%, for reasons not known;
docs/RESULTS.md at tag results-diary), so it is an option (`--arch slots`), not the default.

The table's token reads the mask of pixels that are no palette colour: flicker, smears, holes.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from spiral.worlds.tabletop.scene import COLOURS

PALETTE = torch.tensor(list(COLOURS.values()), dtype=torch.float32)  # (K, 3)
SLOTS = len(COLOURS) + 1  # the colours, then the table
# What the oracle saw of each palette colour (the table's row stays 0) and of the clip: kept with
# the rollouts so a slots critic can also learn the parts its verdict is made of (fact heads).
OBJECT_FACTS = ("vanished", "changed", "moved", "crowded", "extra")
CLIP_FACTS = ("postcondition", "teleported", "low_quality")
# Sharper than the grid's MASK_SIGMA (60), since the slots see all six colours: at 60 an orange
# pixel is 0.19 red, at 40 0.02
# (yellow, the closest pair, is 0.15 orange).
# Not a softmax over the colours: that hides how solidly a blotchy object is painted, and a
# softmax at 25 grey levels measured worse (docs/RESULTS.md at tag results-diary, runs/critic10 against runs/critic9).
SLOT_SIGMA = 40.0


def coordinate_planes(resolution: int) -> torch.Tensor:
    """(1, 2, R, R): x and y of every pixel in [-1, 1] (regions and relations are places)."""
    ramp = torch.linspace(-1.0, 1.0, resolution)
    return torch.stack([ramp[None].expand(resolution, -1), ramp[:, None].expand(-1, resolution)])[None]


def slot_channels(num_frames: int) -> int:
    """own masks per frame, others' masks at start and end, change at the end, 2 roles, 2 coords"""
    return num_frames + 2 + 1 + 2 + 2


def slot_input(x: torch.Tensor, rgb: torch.Tensor, named: torch.Tensor) -> torch.Tensor:
    """float clips (B, T, 3, R, R) in [-1, 1] -> (B, SLOTS, T + 5, R, R): per slot its masks over
    the frames, the other colours' masks at the start and end, the end's change from the start and
    the role planes (coordinates are added by the encoder). rgb (B, 2, 3) and named (B, 2): the
    colours of the subject and of the anchor, as TextTable holds them."""
    b, t, _, r, _ = x.shape
    px = (x + 1.0) * 127.5
    d2 = ((px[:, :, None] - PALETTE[None, None, :, :, None, None]) ** 2).sum(3)  # (B, T, K, R, R)
    colour = torch.exp(-d2 / (2 * SLOT_SIGMA**2))
    table = (1.0 - colour.sum(2, keepdim=True)).clamp(0.0, 1.0)  # what is no colour: table, smears, holes
    masks = torch.cat([colour, table], dim=2).transpose(1, 2)  # (B, SLOTS, T, R, R)
    total = masks[:, :-1].sum(1, keepdim=True)  # all colours
    others = (total - masks).clamp(min=0.0)[:, :, [0, t - 1]]
    others[:, -1] = total[:, 0, [0, t - 1]]  # the table's "others" are all the objects
    change = (x[:, -1] - x[:, 0]).abs().sum(1)[:, None, None].expand(b, SLOTS, 1, r, r)
    # Roles: which palette slot the instruction's subject and anchor are (exact palette RGB).
    same = (rgb[:, None, :, :] == PALETTE[None, :, None, :]).all(-1) & (named[:, None, :] > 0)  # (B, K, 2)
    roles = torch.cat([same.float(), torch.zeros(b, 1, 2)], dim=1)[..., None, None].expand(b, SLOTS, 2, r, r)
    return torch.cat([masks, others, change, roles], dim=2)


class SlotEncoder(nn.Module):
    """(B, SLOTS, C, R, R) from slot_input -> (B, SLOTS, dim) tokens."""

    def __init__(self, num_frames: int, resolution: int, dim: int):
        super().__init__()
        self.num_frames = num_frames
        c = slot_channels(num_frames)
        self.conv1 = nn.Conv2d(c, 32, 4, stride=2, padding=1)  # a 4-wide kernel still sees sub-cell edges
        self.conv2 = nn.Conv2d(32, 64, 3, stride=2, padding=1)
        self.conv3 = nn.Conv2d(64, dim, 3, stride=2, padding=1)
        self.stats = nn.Linear(3 * num_frames, dim)
        self.mix = nn.Sequential(nn.LayerNorm(3 * dim), nn.Linear(3 * dim, dim))
        self.slot = nn.Parameter(torch.randn(1, SLOTS, dim) * 0.02)
        self.register_buffer("coords", coordinate_planes(resolution), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, c, r, _ = x.shape
        flat = x.reshape(b * s, c, r, r)
        h = torch.cat([flat, self.coords.expand(b * s, -1, -1, -1)], dim=1)
        h = F.gelu(self.conv3(F.gelu(self.conv2(F.gelu(self.conv1(h))))))
        pooled = torch.cat([h.mean((2, 3)), h.amax((2, 3))], dim=1)
        # Area and centroid of the slot's mask in each frame.
        m = flat[:, : self.num_frames]
        area = m.mean((2, 3)).clamp(min=1e-4)
        cx = ((m * self.coords[:, 0]).mean((2, 3)) / area).clamp(-1.5, 1.5)  # an empty mask has no centroid
        cy = ((m * self.coords[:, 1]).mean((2, 3)) / area).clamp(-1.5, 1.5)
        stats = self.stats(torch.cat([area.sqrt() * 4.0, cx, cy], dim=1))
        return self.mix(torch.cat([pooled, stats], dim=1)).reshape(b, s, -1) + self.slot
