"""Anti-aliased rendering of tabletop scenes to RGB frames.

Shapes are rasterised on a grid `SUPERSAMPLE` times finer than the output and averaged down, which
gives exact area coverage at the edges (anti-aliasing) with plain numpy and no drawing library.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from spiral.errors import SpiralError
from spiral.worlds.tabletop.scene import COLOURS, TABLE_RGB, Scene, TableObject

DEFAULT_SIZE = 64
MIN_SIZE = 32
SUPERSAMPLE = 4


def shape_mask(
    shape: str, x: float, y: float, half: float, size: int, supersample: int = 1, window: tuple[int, int, int, int] | None = None
) -> np.ndarray:
    """Boolean mask (size*supersample square) of a shape centred at (x, y) in table units, or of the
    pixel rows r0:r1 and columns c0:c1 of it when `window` = (r0, r1, c0, c1) is given.

    The triangle points up: apex at the top centre of its bounding box, base along the bottom.
    """
    n = size * supersample
    r0, r1, c0, c1 = window or (0, size, 0, size)
    coords = (np.arange(n, dtype=np.float32) + 0.5) / n
    u = coords[None, c0 * supersample : c1 * supersample] - x  # horizontal offset from the centre, table units
    v = coords[r0 * supersample : r1 * supersample, None] - y  # vertical offset, y down
    if shape == "square":
        return (np.abs(u) <= half) & (np.abs(v) <= half)
    if shape == "circle":
        return u * u + v * v <= half * half
    if shape == "triangle":
        # Inside the box and below both slanted edges running from the apex (0, -half) to (+-half, half).
        return (v <= half) & (v >= -half) & (2 * np.abs(u) <= (v + half))
    raise SpiralError(f"unknown shape {shape!r}")


def bounding_window(x: float, y: float, half: float, size: int) -> tuple[int, int, int, int]:
    """Pixel rows and columns (r0, r1, c0, c1) that hold every pixel a shape of this half-size at (x, y)
    can touch, with a pixel to spare; every shape lies inside its square box of side 2 * half."""
    c0, c1 = int(np.floor((x - half) * size)) - 1, int(np.ceil((x + half) * size)) + 1
    r0, r1 = int(np.floor((y - half) * size)) - 1, int(np.ceil((y + half) * size)) + 1
    return max(r0, 0), min(max(r1, 0), size), max(c0, 0), min(max(c1, 0), size)


def coverage(
    shape: str, x: float, y: float, half: float, size: int, window: tuple[int, int, int, int] | None = None
) -> np.ndarray:
    """Fraction of each output pixel (of the window, if given) covered by the shape, in [0, 1]."""
    r0, r1, c0, c1 = window or (0, size, 0, size)
    mask = shape_mask(shape, x, y, half, size, SUPERSAMPLE, window).astype(np.float32)
    return mask.reshape(r1 - r0, SUPERSAMPLE, c1 - c0, SUPERSAMPLE).mean(axis=(1, 3))


def render(scene: Scene, size: int = DEFAULT_SIZE, on_top: str | None = None) -> np.ndarray:
    """Render the scene to a (size, size, 3) uint8 RGB frame.

    `on_top` names an object to paint last (an object being carried over the others).
    """
    if size < MIN_SIZE:
        raise SpiralError(f"frame size must be at least {MIN_SIZE} pixels, got {size}")
    canvas = np.empty((size, size, 3), dtype=np.float32)
    canvas[:] = TABLE_RGB
    order = scene.draw_order()
    if on_top is not None:
        order = [o for o in order if o.name != on_top] + [scene.get(on_top)]
    for obj in order:
        _paint(canvas, obj, size)
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8)


def render_motion(scenes: Sequence[Scene], size: int, moving: str | None) -> np.ndarray:
    """(T, size, size, 3) frames of a motion: `moving` is painted over the others while it is
    carried (every frame but the first and last, where the scene's own stacking decides)."""
    last = len(scenes) - 1
    return np.stack([render(s, size, on_top=moving if 0 < k < last else None) for k, s in enumerate(scenes)])


def _paint(canvas: np.ndarray, obj: TableObject, size: int) -> None:
    # Only the shape's bounding window is rasterised: outside it the coverage is exactly 0, so the
    # frame is the same as painting the whole canvas, at a fraction of the cost.
    r0, r1, c0, c1 = window = bounding_window(obj.x, obj.y, obj.half, size)
    if r0 >= r1 or c0 >= c1:
        return
    alpha = coverage(obj.shape, obj.x, obj.y, obj.half, size, window)[..., None]
    patch = canvas[r0:r1, c0:c1]
    patch *= 1.0 - alpha
    patch += alpha * np.asarray(COLOURS[obj.colour], dtype=np.float32)
