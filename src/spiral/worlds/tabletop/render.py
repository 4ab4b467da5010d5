"""Anti-aliased rendering of tabletop scenes to RGB frames.

Shapes are rasterised on a grid `SUPERSAMPLE` times finer than the output and averaged down, which
gives exact area coverage at the edges (anti-aliasing) with plain numpy and no drawing library.
"""

from __future__ import annotations

import numpy as np

from spiral.errors import SpiralError
from spiral.worlds.tabletop.scene import COLOURS, TABLE_RGB, Scene, TableObject

DEFAULT_SIZE = 64
MIN_SIZE = 32
SUPERSAMPLE = 4


def shape_mask(shape: str, x: float, y: float, half: float, size: int, supersample: int = 1) -> np.ndarray:
    """Boolean mask (size*supersample square) of a shape centred at (x, y) in table units.

    The triangle points up: apex at the top centre of its bounding box, base along the bottom.
    """
    n = size * supersample
    coords = (np.arange(n, dtype=np.float32) + 0.5) / n
    u = coords[None, :] - x  # horizontal offset from the centre, table units
    v = coords[:, None] - y  # vertical offset, y down
    if shape == "square":
        return (np.abs(u) <= half) & (np.abs(v) <= half)
    if shape == "circle":
        return u * u + v * v <= half * half
    if shape == "triangle":
        # Inside the box and below both slanted edges running from the apex (0, -half) to (+-half, half).
        return (v <= half) & (v >= -half) & (2 * np.abs(u) <= (v + half))
    raise SpiralError(f"unknown shape {shape!r}")


def coverage(shape: str, x: float, y: float, half: float, size: int) -> np.ndarray:
    """Fraction of each output pixel covered by the shape, in [0, 1] (the anti-aliased mask)."""
    mask = shape_mask(shape, x, y, half, size, SUPERSAMPLE).astype(np.float32)
    return mask.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE).mean(axis=(1, 3))


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


def _paint(canvas: np.ndarray, obj: TableObject, size: int) -> None:
    alpha = coverage(obj.shape, obj.x, obj.y, obj.half, size)[..., None]
    canvas *= 1.0 - alpha
    canvas += alpha * np.asarray(COLOURS[obj.colour], dtype=np.float32)
