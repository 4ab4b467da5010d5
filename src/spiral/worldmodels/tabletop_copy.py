"""Sharp moved objects for the tabletop world model: copy them from the start frame.

The model works at 32x32, where a small object is four or five pixels wide, so an object it moves
arrives at 64 px as a blurred blob, and the oracle often reads it as another shape (the commonest
defect of the shipped model; docs/RESULTS.md). The objects of this world are rigid, so the sharp
pixels of a moved object are all in the start frame; only where they went is the model's to say.

For each generated frame: the regions where the model's frame differs from the start frame (both
seen at the model's resolution) are found; for each region, the translation of the start frame that
best explains the model's pixels there is searched (least squares, every translation at once by
FFT); where one explains them well, the sharp translated start frame is pasted on the pixels of the
region where it agrees with the model better than the unmoved start frame does. A translation must
take its content from a place that changed as well (something left there), so an object that did not
move is never copied, and a region no translation explains keeps the model's own pixels.

No learned weights are involved, and no knowledge of the scene: only the start frame and the model's
frames. Its settings were chosen on probes of their own (seeds from 5,000,000), not the held-out ones.
Not copied: an object that sat on another, since the translated start carries the object under it
along and no translation explains the model's frame well enough; it keeps the model's pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F


@dataclass(frozen=True)
class CopyConfig:
    # A pixel changed where the model's frame and the start frame differ by more than this (in [-1, 1]
    # units, max over the channels; about 25 grey levels), both seen at the model's resolution.
    threshold: float = 0.2
    grow: int = 1  # changed regions are grown by this many pixels, to hold the blurred edge of a blob
    accept: float = 0.5  # a translation is used when its squared error is at most this share of no motion's
    # ...and when at least this share of the region's source (the region moved back by the translation)
    # changed too: content is copied only from where something left, never from an unmoved object.
    source_overlap: float = 0.5


def blurred(frames: torch.Tensor, resolution: int) -> torch.Tensor:
    """Frames (N, 3, S, S) as the model sees them and draws them: area-averaged down, bilinear up."""
    size = frames.shape[-1]
    small = F.interpolate(frames, size=(resolution, resolution), mode="area")
    return F.interpolate(small, size=(size, size), mode="bilinear", align_corners=False)


def label_regions(mask: torch.Tensor) -> torch.Tensor:
    """8-connected regions of a boolean (N, S, S) mask, each marked by a positive float id, 0 outside."""
    n, s, _ = mask.shape
    ids = torch.arange(1, s * s + 1, dtype=torch.float32).view(1, s, s).expand(n, s, s)
    labels = torch.where(mask, ids, torch.zeros(()))
    keep = mask[:, None].float()
    while True:  # spread each region's largest id over it; a region's geodesic width bounds the rounds
        spread = F.max_pool2d(labels[:, None], 3, stride=1, padding=1) * keep
        if torch.equal(spread[:, 0], labels):
            return labels
        labels = spread[:, 0]


def translated(frame: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """frame (C, S, S) moved by (dy, dx): out[p] = frame[p - d], edge pixels repeated beyond the frame."""
    size = frame.shape[-1]
    rows = (torch.arange(size) - dy).clamp(0, size - 1)
    cols = (torch.arange(size) - dx).clamp(0, size - 1)
    return frame[:, rows][:, :, cols]


class _Search:
    """Squared errors of every translation of one start frame against a masked region, by FFT.

    For a region mask K and model frame M: SSE(d) = sum_p K(p) (B(p - d) - M(p))^2, expanded into
    correlations of B^2 and B with K and K * M; the padded start's spectra are computed once."""

    def __init__(self, seen_start: torch.Tensor, radius: int):
        self.radius = radius
        self.n = seen_start.shape[-1] + 2 * radius
        padded = F.pad(seen_start[None], (radius,) * 4, mode="replicate")[0]  # (3, n, n)
        self.spec = torch.fft.rfft2(padded)
        self.spec_sq = torch.fft.rfft2((padded**2).sum(0))

    def correlate(self, spectrum: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """sum_p weights(p) x(p - d) for every d in [-radius, radius]^2, x given by its padded spectrum;
        row i, column j of the result is d = (radius - i, radius - j)."""
        full = torch.fft.irfft2(spectrum * torch.fft.rfft2(weights, s=(self.n, self.n)).conj(), s=(self.n, self.n))
        return full[..., : 2 * self.radius + 1, : 2 * self.radius + 1]

    def errors(self, region: torch.Tensor, model: torch.Tensor) -> torch.Tensor:
        weighted = region * model  # (3, S, S)
        cross = self.correlate(self.spec, weighted).sum(0)
        return self.correlate(self.spec_sq, region) - 2 * cross + (weighted * model).sum()


def copy_moved(starts: np.ndarray, model: torch.Tensor, clips: np.ndarray, resolution: int, cfg: CopyConfig) -> np.ndarray:
    """starts (B, S, S, 3) uint8; model (B, T, 3, S, S) the model's frames upsampled, in [-1, 1];
    clips (B, T + 1, S, S, 3) uint8, the decoded clips, start frame first. Returns the clips with the
    moved objects copied sharp from the start frame."""
    out = clips.copy()
    start_seen = blurred(torch.from_numpy(starts).float().permute(0, 3, 1, 2) / 127.5 - 1.0, resolution)
    r = starts.shape[1] - 1  # every translation that keeps some of the frame in view
    for i in range(len(starts)):
        changed = (model[i] - start_seen[i : i + 1]).abs().amax(dim=1) > cfg.threshold  # (T, S, S)
        if cfg.grow:
            changed = F.max_pool2d(changed[:, None].float(), 2 * cfg.grow + 1, stride=1, padding=cfg.grow)[:, 0] > 0
        if not changed.any():
            continue
        search = _Search(start_seen[i], r)
        labels = label_regions(changed)
        for k in range(model.shape[1]):
            source_spec = torch.fft.rfft2(F.pad(changed[k].float(), (r,) * 4))  # nothing beyond the frame changed
            still = ((start_seen[i] - model[i, k]) ** 2).sum(0)  # per pixel, keeping the start
            for region_id in labels[k].unique():
                if region_id == 0:
                    continue
                region = (labels[k] == region_id).float()
                errors = search.errors(region, model[i, k])
                kept = errors[r, r].clone()
                # The share of the region's source that changed: sum_p K(p) C(p - d) / |K|.
                source = search.correlate(source_spec, region) / region.sum()
                errors[source < cfg.source_overlap] = float("inf")
                errors[r, r] = float("inf")
                best = int(errors.argmin())
                if not errors.view(-1)[best] <= cfg.accept * kept:
                    continue
                dy, dx = r - best // (2 * r + 1), r - best % (2 * r + 1)
                moved = translated(torch.from_numpy(starts[i]).permute(2, 0, 1), dy, dx)  # (3, S, S) uint8
                moved_error = ((blurred(moved[None].float() / 127.5 - 1.0, resolution)[0] - model[i, k]) ** 2).sum(0)
                paste = ((region > 0) & (moved_error < still)).numpy()
                out[i, k + 1][paste] = moved.permute(1, 2, 0).numpy()[paste]
    return out
