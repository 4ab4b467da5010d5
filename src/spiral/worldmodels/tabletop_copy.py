"""Sharp moved objects for the tabletop world model: copy them from the start frame.

The model works at 32x32, where a small object is four or five pixels wide, so an object it moves
arrives at 64 px as a blurred blob, and the oracle often reads it as another shape (the commonest
defect of the shipped model; docs/RESULTS.md at tag results-diary). The objects of this world are rigid, so the sharp
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

from spiral.errors import SpiralError
from spiral.worlds.tabletop.pixels import UNKNOWN, components

# How the tabletop world model's clips can be decoded (SamplerConfig.decode), by the names the CLIs
# take: "copy" copies the moved objects sharp (this module), "compose" redraws every start-frame
# object where the model put it (tabletop_compose), "blur" keeps the model's upsampled pixels.
DECODINGS = ("copy", "blur", "compose")


def check_decoding(decoding: str) -> str:
    """The decoding name, checked: an unknown name is an error, not blur."""
    if decoding not in DECODINGS:
        raise SpiralError(f"unknown decoding {decoding!r}; use one of {', '.join(DECODINGS)}")
    return decoding


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


def label_regions(mask: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """8-connected regions of each frame of a boolean (T, S, S) mask, as (frame, region mask) pairs."""
    t, size, _ = mask.shape
    # One call for all frames: stacked one above the other, a row of background between them.
    stacked = np.full((t, size + 1, size), UNKNOWN)  # the oracle's label for "no colour": background
    stacked[:, :size][mask] = 0  # one colour label for every changed pixel
    ids = components(stacked.reshape(t * (size + 1), size)).reshape(t, size + 1, size)[:, :size]
    return [(k, ids[k] == i) for k in range(t) for i in np.unique(ids[k]) if i >= 0]


def translated(frame: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """frame (C, S, S) moved by (dy, dx): out[p] = frame[p - d], edge pixels repeated beyond the frame."""
    size = frame.shape[-1]
    rows = (torch.arange(size) - dy).clamp(0, size - 1)
    cols = (torch.arange(size) - dx).clamp(0, size - 1)
    return frame[:, rows][:, :, cols]


def fft_size(n: int) -> int:
    """The smallest 2^a 3^b >= n: a transform size pocketfft does fast (190, the padded frame, is not)."""
    best = 1 << (n - 1).bit_length()  # the power of two
    power_of_three = 1
    while power_of_three < n:
        size = power_of_three
        while size < n:
            size *= 2
        best = min(best, size)
        power_of_three *= 3
    return min(best, power_of_three)


class _Search:
    """Squared errors of every translation of one start frame against masked regions, by FFT.

    For a region mask K and model frame M: SSE(d) = sum_p K(p) (B(p - d) - M(p))^2, expanded into
    correlations of B^2 and B with K and K * M. The padded start's spectra are computed once; all
    regions of a clip are searched in one batch, and the correlations are summed over the colour
    channels in the frequency domain, so each region costs four forward transforms and two inverse."""

    def __init__(self, seen_start: torch.Tensor, radius: int):
        self.radius = radius
        self.n = fft_size(seen_start.shape[-1] + 2 * radius)  # no circular wrap into the kept window
        padded = F.pad(seen_start[None], (radius,) * 4, mode="replicate")[0]  # (3, S + 2r, S + 2r)
        self.spec = self.spectrum(padded)
        self.spec_sq = self.spectrum((padded**2).sum(0))

    def spectrum(self, x: torch.Tensor) -> torch.Tensor:
        return torch.fft.rfft2(x, s=(self.n, self.n))

    def window(self, spectra: torch.Tensor) -> torch.Tensor:
        """Correlations from their spectra: row i, column j of the result is d = (radius - i, radius - j)."""
        w = 2 * self.radius + 1
        return torch.fft.irfft2(spectra, s=(self.n, self.n))[..., :w, :w]

    def errors(self, regions: torch.Tensor, models: torch.Tensor, sources: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """regions (R, S, S) masks, models (R, 3, S, S) the model frame of each, sources (R, n, n//2+1)
        the spectra of each frame's changed pixels (zero-padded by the radius). Returns the SSE of
        every translation (R, w, w) and the share of each region's source that changed (R, w, w):
        sum_p K(p) C(p - d) / |K|."""
        weighted = regions[:, None] * models
        k_spec = self.spectrum(regions).conj()
        cross = (self.spec[None] * self.spectrum(weighted).conj()).sum(1)
        both = self.window(torch.stack([self.spec_sq * k_spec - 2 * cross, sources * k_spec]))
        errors = both[0] + (weighted * models).sum((1, 2, 3))[:, None, None]
        return errors, both[1] / regions.sum((1, 2))[:, None, None]


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
        regions = label_regions(changed.numpy())
        if not regions:
            continue
        frame_of = [k for k, _ in regions]
        masks = torch.from_numpy(np.stack([m for _, m in regions])).float()
        search = _Search(start_seen[i], r)
        sources = search.spectrum(F.pad(changed.float(), (r,) * 4))[frame_of]  # nothing beyond the frame changed
        errors, source = search.errors(masks, model[i, frame_of], sources)
        kept = errors[:, r, r].clone()
        errors[source < cfg.source_overlap] = float("inf")
        errors[:, r, r] = float("inf")
        best_error, best = errors.flatten(1).min(dim=1)
        start_pixels = torch.from_numpy(starts[i]).permute(2, 0, 1)  # (3, S, S) uint8
        still = ((start_seen[i : i + 1] - model[i]) ** 2).sum(1)  # (T, S, S) per pixel, keeping the start
        for j, (k, region) in enumerate(regions):
            if not best_error[j] <= cfg.accept * kept[j]:
                continue
            dy, dx = r - int(best[j]) // (2 * r + 1), r - int(best[j]) % (2 * r + 1)
            moved = translated(start_pixels, dy, dx)
            moved_error = ((blurred(moved[None].float() / 127.5 - 1.0, resolution)[0] - model[i, k]) ** 2).sum(0)
            paste = region & (moved_error < still[k]).numpy()
            out[i, k + 1][paste] = moved.permute(1, 2, 0).numpy()[paste]
    return out
