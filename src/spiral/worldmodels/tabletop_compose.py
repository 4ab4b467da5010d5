"""Every object of the start frame in every frame: compose the sharp start-frame objects where the
model put them.

The model works at 32x32, where a small object is four or five pixels wide: a moved object arrives
at 64 px as a blurred blob, and where the model erased an object, painted a blob of its own or drew
a moved object over another, the oracle would see an object vanish, appear or change shape. The
objects of this world are rigid and none comes or goes during a step, so the clip keeps only
*where* each object is from the model:

1. The start frame is cut into objects: the table is its commonest colour; the flat colours inside
   objects are those of pixels whose 3x3 neighbourhood is one colour; every other pixel is read as a
   blend of the table and the colour it lies nearest to (its anti-aliased edge), and an object is an
   8-connected run of one colour.
2. For each object and generated frame, every placement of the object's inside is scored against
   the model's frame (squared error, by correlation). It moves to the best placement when that
   explains the model's pixels at most `accept` times as badly as staying put, well in absolute
   terms (`max_error`), and where the model's frame changed (something arrived there); otherwise
   it stays where it was in the frame before.
3. Each frame is drawn: the table (near where objects touched, where one may hide part of another,
   the model's own pixels), the objects that stayed, then the moved ones on top.

No learned weights and no knowledge of the palette or the scene: only the start frame and the
model's frames. The settings were chosen on probes of their own (seeds from 5,000,000), not the
held-out ones. What the model gets wrong stays wrong: a wrong object moved, a move stopped short,
an object put in the wrong place or inside another's footprint.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from spiral.worlds.tabletop.pixels import components


@dataclass(frozen=True)
class ComposeConfig:
    accept: float = 0.5  # a move is taken when its error is at most this share of staying put's...
    max_error: float = 0.3  # ...at most this per pixel of the object's inside (RGB in [-1, 1], summed)...
    arrived: float = 0.5  # ...and at least this share of its pixels there changed in the model's frame
    changed: float = 0.2  # a model pixel changed when it differs from the start by this (max over RGB)
    ink: float = 6.0  # a start pixel belongs to an object when it is this far from the table (0-255)
    flat_ink: float = 60.0  # a flat colour (inside an object) is at least this far from the table
    min_pixels: int = 4  # smaller runs are specks of anti-aliasing, not objects


def blurred(frames: torch.Tensor, resolution: int) -> torch.Tensor:
    """Frames (N, 3, S, S) as the model sees them and draws them: area-averaged down, bilinear up."""
    size = frames.shape[-1]
    small = F.interpolate(frames, size=(resolution, resolution), mode="area")
    return F.interpolate(small, size=(size, size), mode="bilinear", align_corners=False)


def table_colour(start: np.ndarray) -> np.ndarray:
    """The start frame's commonest colour: the table (it covers most of any scene)."""
    colours, counts = np.unique(start.reshape(-1, 3), axis=0, return_counts=True)
    return colours[counts.argmax()].astype(np.float32)


def object_masks(start: np.ndarray, cfg: ComposeConfig) -> tuple[np.ndarray, list[np.ndarray]]:
    """The table colour and one (S, S) mask per object of a start frame (S, S, 3) uint8."""
    table = table_colour(start)
    img = start.astype(np.float32)
    ink = np.abs(img - table).max(-1)
    size = start.shape[0]
    padded = np.pad(start, ((1, 1), (1, 1), (0, 0)), mode="edge")
    flat = np.ones(start.shape[:2], bool)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            flat &= (padded[1 + dy : 1 + dy + size, 1 + dx : 1 + dx + size] == start).all(-1)
    inside = flat & (ink > cfg.flat_ink)
    if not inside.any():
        return table, []
    directions = np.unique(start[inside], axis=0).astype(np.float32) - table  # (K, 3) table -> colour
    offset = (img - table)[..., None, :]
    alpha = (offset * directions).sum(-1) / (directions**2).sum(-1)  # (S, S, K) share of each colour
    residual = np.linalg.norm(offset - alpha[..., None] * directions, axis=-1)
    residual[alpha < 0.1] = np.inf
    colour = residual.argmin(-1)
    colour[(ink <= cfg.ink) | ~np.isfinite(residual.min(-1))] = -1
    masks = []
    for k in range(len(directions)):  # components() reads labels as palette indices: one colour at a time
        ids = components(np.where(colour == k, 0, -1))
        masks += [ids == i for i in np.unique(ids) if i >= 0 and (ids == i).sum() >= cfg.min_pixels]
    return table, masks


def placements(
    mask: np.ndarray, seen_start: torch.Tensor, model: torch.Tensor, changed: torch.Tensor, cfg: ComposeConfig
) -> list[tuple[int, int]]:
    """Where one object is in each frame, as its displacement from the start: seen_start (3, S, S)
    the start frame as the model sees it, model (T, 3, S, S) its frames, changed (T, 1, S, S)."""
    ys, xs = np.nonzero(mask)
    y0, x0 = ys.min(), xs.min()
    box = torch.from_numpy(mask[y0 : ys.max() + 1, x0 : xs.max() + 1]).float()[None, None]
    # Its inside, where the model's colour should match; the blurred edge depends on what is beside it.
    inner = -F.max_pool2d(-box, 3, stride=1, padding=1) if box.sum() > 12 else box
    h, w = inner.shape[-2:]
    template = seen_start[None, :, y0 : y0 + h, x0 : x0 + w] * inner
    # Squared error of the template at every placement: sum K T^2 - 2 sum K T M + sum K M^2.
    errors = ((template**2).sum() - 2 * F.conv2d(model, template) + F.conv2d((model**2).sum(1, keepdim=True), inner))[:, 0]
    staying = errors[:, y0, x0].clone()
    arrived = F.conv2d(changed, inner)[:, 0] / inner.sum()
    errors[(arrived < cfg.arrived) | (errors > cfg.max_error * inner.sum())] = float("inf")
    best, where = errors.flatten(1).min(dim=1)
    width = errors.shape[-1]
    out, last = [], (0, 0)
    for t in range(len(model)):
        if best[t] <= cfg.accept * staying[t]:
            last = (int(where[t]) // width - y0, int(where[t]) % width - x0)
        out.append(last)  # no better place: where it was in the frame before
    return out


def touching(masks: list[np.ndarray]) -> np.ndarray:
    """Pixels of objects that touch another object (8-neighbours): where one may hide part of another."""
    grown = [F.max_pool2d(torch.from_numpy(m)[None, None].float(), 3, stride=1, padding=1)[0, 0].numpy() > 0 for m in masks]
    reach = np.sum(grown, axis=0)  # how many objects each pixel is next to (or in)
    near_other = np.logical_or.reduce([m & (reach - g > 0) for m, g in zip(masks, grown, strict=True)])
    return F.max_pool2d(torch.from_numpy(near_other)[None, None].float(), 5, stride=1, padding=2)[0, 0].numpy() > 0


def compose_objects(
    starts: np.ndarray, model: torch.Tensor, clips: np.ndarray, resolution: int, cfg: ComposeConfig
) -> np.ndarray:
    """starts (B, S, S, 3) uint8; model (B, T, 3, S, S) the model's frames upsampled, in [-1, 1];
    clips (B, T + 1, S, S, 3) uint8, start frame first. Returns the clips redrawn from the start
    frame's objects, each where the model put it (a start frame with no objects keeps its clip)."""
    out = clips.copy()
    seen = blurred(torch.from_numpy(starts).float().permute(0, 3, 1, 2) / 127.5 - 1.0, resolution)
    size = starts.shape[1]
    for i, start in enumerate(starts):
        table, masks = object_masks(start, cfg)
        if not masks:
            continue
        changed = ((model[i] - seen[i : i + 1]).abs().amax(1, keepdim=True) > cfg.changed).float()
        moves = [placements(m, seen[i], model[i], changed, cfg) for m in masks]
        empty = start.copy()
        empty[np.logical_or.reduce(masks)] = table.astype(np.uint8)
        # What lay under an object that sat on or against another is unknown: the model's pixels there.
        hidden = touching(masks)
        pixels = [np.nonzero(m) for m in masks]
        for t in range(model.shape[1]):
            frame = empty.copy()
            frame[hidden] = clips[i, t + 1][hidden]
            for j in sorted(range(len(masks)), key=lambda j: moves[j][t] != (0, 0)):  # moved ones on top
                ys, xs = pixels[j]
                dy, dx = moves[j][t]
                keep = (ys + dy >= 0) & (ys + dy < size) & (xs + dx >= 0) & (xs + dx < size)
                frame[ys[keep] + dy, xs[keep] + dx] = start[ys[keep], xs[keep]]
            out[i, t + 1] = frame
    return out
