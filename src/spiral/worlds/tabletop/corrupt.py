"""Deterministic image corruptions: what a generated or filmed frame does to a clean render.

Every function takes a frame (H, W, 3) or a clip (T, H, W, 3) of uint8 RGB and returns a new array
of the same shape and dtype; the random ones take a `seed` and give the same output for the same
seed. They test the oracle's robustness (tests, benchmarks/oracle_accuracy.py) and make noisy
training data.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from spiral.errors import SpiralError

# The default occluder: a dark grey, like a robot gripper or an arm, far from every palette colour.
OCCLUDER_RGB = (70, 70, 75)


def _check(frames: np.ndarray) -> np.ndarray:
    if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8 or frames.ndim not in (3, 4) or frames.shape[-1] != 3:
        got = f"{frames.dtype} array of shape {frames.shape}" if isinstance(frames, np.ndarray) else type(frames).__name__
        raise SpiralError(f"expected a uint8 RGB frame (H, W, 3) or clip (T, H, W, 3), got {got}")
    return frames


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def gaussian_noise(frames: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    """Add i.i.d. Gaussian noise of standard deviation `sigma` (0..255 units) to every channel."""
    frames = _check(frames)
    if sigma < 0:
        raise SpiralError(f"noise sigma must be >= 0, got {sigma}")
    rng = np.random.default_rng(seed)
    return _to_uint8(frames + rng.normal(0.0, sigma, frames.shape))


def _kernel(sigma: float) -> np.ndarray:
    r = max(1, int(np.ceil(3 * sigma)))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    return k / k.sum()


def _separable(frames: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Convolve the two image axes with the 1D kernel k, edges replicated (no dark border)."""
    r = len(k) // 2
    x = frames.astype(np.float32)
    for axis in (-3, -2):
        pad = [(0, 0)] * x.ndim
        pad[axis] = (r, r)
        p = np.pad(x, pad, mode="edge")
        n = x.shape[axis]
        x = sum(w * np.take(p, np.arange(i, i + n), axis=axis) for i, w in enumerate(k))
    return _to_uint8(x)


def gaussian_blur(frames: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur with standard deviation `sigma` pixels (a soft, defocused generated frame)."""
    frames = _check(frames)
    if sigma < 0:
        raise SpiralError(f"blur sigma must be >= 0, got {sigma}")
    return frames.copy() if sigma == 0 else _separable(frames, _kernel(sigma))


def box_blur(frames: np.ndarray, radius: int) -> np.ndarray:
    """Mean over a (2 radius + 1) square window."""
    frames = _check(frames)
    if radius < 0:
        raise SpiralError(f"box blur radius must be >= 0, got {radius}")
    return frames.copy() if radius == 0 else _separable(frames, np.full(2 * radius + 1, 1.0 / (2 * radius + 1)))


def occlude(
    frames: np.ndarray, seed: int = 0, kind: str = "bar", size: float = 0.12, rgb: tuple[int, int, int] = OCCLUDER_RGB
) -> np.ndarray:
    """Paint an occluder over the frame(s), the same in every frame of a clip.

    kind "bar": a band `size` (fraction of the frame) wide running in from one edge to a random depth,
    like a gripper reaching in; "blob": a disc of diameter `size` at a random place. Anti-aliased
    like the renderer, so its edges blend with what lies under it."""
    frames = _check(frames)
    if kind not in ("bar", "blob"):
        raise SpiralError(f"unknown occluder kind {kind!r}; known kinds: bar, blob")
    if not 0 < size < 1:
        raise SpiralError(f"occluder size must be a fraction of the frame in (0, 1), got {size}")
    rng = np.random.default_rng(seed)
    n_y, n_x = frames.shape[-3], frames.shape[-2]
    ss = 4  # supersampling, as in render.py
    ys = (np.arange(n_y * ss) + 0.5) / (n_y * ss)
    xs = (np.arange(n_x * ss) + 0.5) / (n_x * ss)
    if kind == "bar":
        centre, depth, side = rng.uniform(0.2, 0.8), rng.uniform(0.3, 0.7), int(rng.integers(4))
        along, across = (ys[:, None], xs[None, :]) if side % 2 == 0 else (xs[None, :], ys[:, None])
        along = along if side < 2 else 1.0 - along
        mask = (along <= depth) & (np.abs(across - centre) <= size / 2)
    else:
        cx, cy = rng.uniform(0.15, 0.85, size=2)
        mask = (xs[None, :] - cx) ** 2 + (ys[:, None] - cy) ** 2 <= (size / 2) ** 2
    alpha = mask.astype(np.float32).reshape(n_y, ss, n_x, ss).mean(axis=(1, 3))[..., None]
    return _to_uint8(frames * (1 - alpha) + alpha * np.asarray(rgb, np.float32))


def jpeg(frames: np.ndarray, quality: int = 75) -> np.ndarray:
    """Round-trip through JPEG at the given quality (blocking and chroma loss of a compressed video)."""
    frames = _check(frames)
    if not 1 <= quality <= 95:
        raise SpiralError(f"JPEG quality must be in 1..95, got {quality}")
    flat = frames.reshape(-1, *frames.shape[-3:])
    out = []
    for f in flat:
        buf = io.BytesIO()
        Image.fromarray(f).save(buf, format="JPEG", quality=quality)
        out.append(np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")))
    return np.stack(out).reshape(frames.shape)


def flicker(clip: np.ndarray, seed: int = 0, frames: int = 2, sigma: float = 40.0, shift: float = 25.0) -> np.ndarray:
    """Temporal flicker: `frames` random frames of the clip (never the first) get a burst of noise of
    `sigma` and a brightness jump of +-`shift`, the way unstable video models fail."""
    clip = _check(clip)
    if clip.ndim != 4 or len(clip) < 2:
        raise SpiralError("flicker needs a clip (T, H, W, 3) with at least 2 frames")
    rng = np.random.default_rng(seed)
    out = clip.copy()
    for t in rng.choice(np.arange(1, len(clip)), size=min(frames, len(clip) - 1), replace=False):
        noisy = clip[t] + rng.normal(0.0, sigma, clip[t].shape) + rng.choice([-shift, shift])
        out[t] = _to_uint8(noisy)
    return out


@dataclass(frozen=True)
class Corruption:
    """A named corruption and its strength: noise sigma (0..255), blur sigma (px), box radius (px),
    occluder size (fraction of the frame) or JPEG quality."""

    kind: str  # "none" | "noise" | "blur" | "box_blur" | "bar" | "blob" | "jpeg"
    strength: float = 0.0

    def apply(self, frames: np.ndarray, seed: int = 0) -> np.ndarray:
        if self.kind == "none":
            return _check(frames).copy()
        if self.kind == "noise":
            return gaussian_noise(frames, self.strength, seed)
        if self.kind == "blur":
            return gaussian_blur(frames, self.strength)
        if self.kind == "box_blur":
            return box_blur(frames, int(self.strength))
        if self.kind in ("bar", "blob"):
            return occlude(frames, seed, kind=self.kind, size=self.strength)
        if self.kind == "jpeg":
            return jpeg(frames, int(self.strength))
        raise SpiralError(f"unknown corruption {self.kind!r}; known: none, noise, blur, box_blur, bar, blob, jpeg")
