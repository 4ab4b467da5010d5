"""Pixel-level tools of the oracle (see oracle.py): colour unmixing, connected components and
shape-template fitting, all in plain numpy.

The renderer paints flat palette colours over the table with exact anti-aliasing, so a pixel is a
blend of the table and a colour, or (at a seam) of two colours. Unmixing recovers how much of each
colour a pixel holds (`alpha`, its coverage) and how far it is from being such a blend (`res`).
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass

import numpy as np

from spiral.worlds.tabletop.scene import COLOURS, SHAPES, TABLE_RGB

COLOUR_NAMES = tuple(COLOURS)
TABLE, UNKNOWN = len(COLOUR_NAMES), -1  # pixel labels besides the colour indices 0..5
TABLE_VEC = np.asarray(TABLE_RGB, np.float32)
REFS = np.asarray([COLOURS[c] for c in COLOUR_NAMES] + [TABLE_RGB], np.float32)  # label -> RGB
_DIRS = REFS[:-1] - TABLE_VEC  # table -> colour, (6, 3)
_DIR_SQ = (_DIRS**2).sum(1)

# A pixel is labelled with a colour when it lies within this RGB distance of the table->colour line:
# about 3.5 sigma of sigma=15 noise, yet less than the distance from any palette colour to another
# colour's line (>= 65), so pure colours are never confused.
RES_MAX = 60.0
# Colours holding less of a pixel than this are not considered for its label (near the table every
# line is close, so residuals say nothing there).
ALPHA_CONSIDER = 0.2


@dataclass
class Pixels:
    """An unmixed frame."""

    rgb: np.ndarray  # (n, n, 3) float32
    alpha: np.ndarray  # (n, n, 6) coverage by each colour if the rest of the pixel were table
    res: np.ndarray  # (n, n, 6) RGB distance from the table->colour line
    labels: np.ndarray  # (n, n) int8: colour index, TABLE or UNKNOWN
    best: np.ndarray  # (n, n) the colour whose line explains the pixel best, labelled or not (UNKNOWN: table)

    @property
    def n(self) -> int:
        return self.labels.shape[0]

    def noise(self) -> float:
        """Robust per-channel noise sigma, from the pixels labelled table (median absolute deviation)."""
        table = self.rgb[self.labels == TABLE]
        if len(table) < 16:
            return 0.0
        return float(1.4826 * np.median(np.abs(table - np.median(table, axis=0))))


def unmix(frame: np.ndarray) -> Pixels:
    """Per-pixel coverage and residual for every colour, and the labels (see `Pixels`)."""
    rgb = frame.astype(np.float32)
    q = rgb - TABLE_VEC
    raw = q @ _DIRS.T / _DIR_SQ
    alpha = np.clip(raw, 0.0, 1.0)
    res = np.sqrt(np.maximum(((q[..., None, :] - alpha[..., None] * _DIRS) ** 2).sum(-1), 0.0))
    # The best-explaining colour must hold at least half the pixel: an orange/table blend that is
    # 47% orange is also 51% "yellow", but it lies on the orange line, so it stays unlabelled.
    best = np.argmin(np.where(raw >= ALPHA_CONSIDER, res, np.inf), axis=-1)[..., None]
    own = (np.take_along_axis(raw, best, -1) >= 0.5) & (np.take_along_axis(res, best, -1) < RES_MAX)
    table = np.sqrt((q**2).sum(-1)) < RES_MAX
    labels = np.where(own[..., 0], best[..., 0], np.where(table, TABLE, UNKNOWN)).astype(np.int8)
    _unlabel_seams(rgb, res, labels)
    considered = (raw >= ALPHA_CONSIDER).any(-1)
    return Pixels(rgb, alpha, res, labels, np.where(considered, best[..., 0], UNKNOWN))


def dilate(mask: np.ndarray, r: int = 1) -> np.ndarray:
    """The mask grown by r pixels in all 8 directions."""
    out = mask.copy()
    for _ in range(r):
        grown = out.copy()
        grown[1:] |= out[:-1]
        grown[:-1] |= out[1:]
        grown[:, 1:] |= grown[:, :-1].copy()
        grown[:, :-1] |= grown[:, 1:].copy()
        out = grown
    return out


def _seam_triples() -> list[tuple[int, int, int]]:
    """(a, b, c): blends of colours a and b (and the table) that get labelled c, found by scanning
    the blends on a grid."""
    s, t = (v.ravel()[:, None].astype(np.float32) for v in np.meshgrid(np.linspace(0, 1, 21), np.linspace(0, 1, 21)))
    keep = (s + t <= 1.0)[:, 0]
    s, t = s[keep], t[keep]
    found = set()
    for a, b in itertools.combinations(range(len(_DIRS)), 2):
        q = s * _DIRS[a] + t * _DIRS[b]
        raw = q @ _DIRS.T / _DIR_SQ
        res = np.sqrt(((q[:, None, :] - np.clip(raw, 0, 1)[..., None] * _DIRS) ** 2).sum(-1))
        best = np.argmin(np.where(raw >= ALPHA_CONSIDER, res, np.inf), axis=-1)
        for k, c in enumerate(best):
            if raw[k, c] >= 0.5 and res[k, c] < RES_MAX and c not in (a, b):
                found.add((a, b, int(c)))
    return sorted(found)


SEAMS = _seam_triples()


def _unlabel_seams(rgb: np.ndarray, res: np.ndarray, labels: np.ndarray) -> None:
    """Pixels on the anti-aliased seam between two colours can look like a third one (red over
    yellow blends to orange). A pixel labelled c next to both a and b that is closer to the a-b
    blend than to its own colour is such a seam pixel: it becomes UNKNOWN."""
    near = {k: dilate(labels == k) for k in {k for a, b, _ in SEAMS for k in (a, b)}}
    for a, b, c in SEAMS:
        suspect = (labels == c) & near[a] & near[b]
        if suspect.any():
            blend_res = line_unmix(rgb[suspect], REFS[a], REFS[b])[1]
            labels[np.nonzero(suspect)] = np.where(blend_res < res[..., c][suspect], UNKNOWN, c)


def components(labels: np.ndarray) -> np.ndarray:
    """8-connected components of equal colour labels: each pixel gets the smallest flat index in its
    component (-1 off the colours). Union by minimum over an edge list with pointer jumping: a few
    numpy passes, no scipy."""
    flat = labels.ravel()
    idx = np.arange(flat.size).reshape(labels.shape)
    fg = (flat >= 0) & (flat < TABLE)
    ea, eb = [], []
    for a, b in ((idx[:, :-1], idx[:, 1:]), (idx[:-1], idx[1:]), (idx[:-1, :-1], idx[1:, 1:]), (idx[:-1, 1:], idx[1:, :-1])):
        a, b = a.ravel(), b.ravel()
        same = fg[a] & (flat[a] == flat[b])
        ea.append(a[same])
        eb.append(b[same])
    a, b = np.concatenate(ea), np.concatenate(eb)
    lab = idx.ravel().copy()
    while True:
        before = lab.copy()
        m = np.minimum(lab[a], lab[b])
        np.minimum.at(lab, a, m)
        np.minimum.at(lab, b, m)
        while not np.array_equal(jumped := lab[lab], lab):
            lab = jumped
        if np.array_equal(lab, before):
            return np.where(fg, lab, -1).reshape(labels.shape)


def line_unmix(rgb: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Position t in [0, 1] of each pixel along the blend a -> b, and its RGB distance from it."""
    d = b - a
    t = np.clip(((rgb - a) @ d) / float(d @ d), 0.0, 1.0)
    return t, np.sqrt(((rgb - a - t[..., None] * d) ** 2).sum(-1))


def pair_unmix(rgb: np.ndarray, c1: np.ndarray, c2: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least-squares coverages (x, y) >= 0 of two colours over the table, and the residual."""
    q = rgb - TABLE_VEC
    d1, d2 = c1 - TABLE_VEC, c2 - TABLE_VEC
    g11, g12, g22 = float(d1 @ d1), float(d1 @ d2), float(d2 @ d2)
    b1, b2 = q @ d1, q @ d2
    det = g11 * g22 - g12 * g12
    x, y = (g22 * b1 - g12 * b2) / det, (g11 * b2 - g12 * b1) / det
    # Where one coverage comes out negative, the best non-negative answer uses the other colour alone.
    only1, only2 = np.clip(b1 / g11, 0, 1), np.clip(b2 / g22, 0, 1)
    neg1, neg2 = x < 0, y < 0
    x, y = np.where(neg2, only1, np.where(neg1, 0.0, x)), np.where(neg2, 0.0, np.where(neg1, only2, y))
    # Coverages cannot add up to more than the pixel: then it is a blend of the two colours alone.
    t = line_unmix(rgb, c1, c2)[0]
    over = x + y > 1.0
    x, y = np.where(over, 1.0 - t, x), np.where(over, t, y)
    x, y = np.clip(x, 0, 1), np.clip(y, 0, 1)
    res = np.sqrt(((q - x[..., None] * d1 - y[..., None] * d2) ** 2).sum(-1))
    return x, y, res


def _ramp(d: np.ndarray, width: float) -> np.ndarray:
    """min(max(0.5 - d / width, 0), 1), computed in place in d's buffer (d is always a temporary):
    the oracle calls this ~100,000 times a GRPO iteration on small arrays, where allocations cost
    more than arithmetic (np.clip is slower still)."""
    d *= -1.0 / width  # x * -c is exactly -(x * c), so this equals 0.5 - d * (1 / width) bit for bit
    d += 0.5
    np.maximum(d, 0.0, out=d)
    return np.minimum(d, 1.0, out=d)


def templates(shape: str, cx, cy, hp, xs: np.ndarray, ys: np.ndarray, blur: float = 0.0) -> np.ndarray:
    """Anti-aliased coverage (K, len(ys), len(xs)) of K candidate poses (centre, half-size in px).

    Across an edge, coverage is the pixel box (variance 1/12) convolved with the blur (variance
    blur^2), modelled as a linear ramp of the same variance: exact for sharp axis-aligned edges,
    within ~0.15 of the renderer elsewhere. Corners are products of edge ramps."""
    w = math.sqrt(1.0 + 12.0 * blur * blur)
    u = xs[None, None, :] - cx[:, None, None]
    v = ys[None, :, None] - cy[:, None, None]
    h = hp[:, None, None]
    if shape == "square":
        return _ramp(np.abs(u) - h, w) * _ramp(np.abs(v) - h, w)
    if shape == "circle":
        return _ramp(np.sqrt(u * u + v * v) - h, w)
    # Base along v = h (and no higher than the apex); slanted edges 2|u| = v + h from the apex, whose normal is (2, -1)/sqrt(5).
    # A slanted edge crosses a pixel over a longer stretch of its normal (3/sqrt(5) px, not 1).
    return _ramp(np.abs(v) - h, w) * _ramp((2.0 * np.abs(u) - v - h) / math.sqrt(5.0), math.sqrt(1.8 + 12.0 * blur * blur))


AREA = {"square": 4.0, "circle": math.pi, "triangle": 2.0}  # area / half^2

# Template fit: pixels the object would cover but another colour hides cost this much per unit of
# hidden area fraction. Small, so it only breaks ties (the smallest template that explains the blob).
HIDDEN_PENALTY = 0.08
# Pattern search after the coarse grid: (centre step in px, relative half-size step) per round.
REFINE = ((0.5, 0.06), (0.25, 0.03), (0.1, 0.015))
# After the coarse grid, only shapes scoring within this of the best are refined.
SHAPE_MARGIN = 0.1


@dataclass(frozen=True)
class Fit:
    shape: str
    cx: float  # centre and half-size in pixels
    cy: float
    hp: float
    iou: float  # soft IoU with the visible pixels
    score: float  # iou less the hidden-area tie-breaker
    err: float = 0.0  # sum of |observed - template| coverage over the visible pixels


@dataclass(frozen=True)
class Window:
    """A patch of the frame: the observed coverage of one colour and which pixels say anything."""

    alpha: np.ndarray
    care: np.ndarray
    x0: int
    y0: int
    blur: float = 0.0  # Gaussian blur sigma of the frame, pixels

    # What every template scored on this window shares, computed once (a fit scores ~10 batches).
    @functools.cached_property
    def pixel_centres(self) -> tuple[np.ndarray, np.ndarray]:
        hgt, wid = self.alpha.shape
        xs = np.arange(self.x0, self.x0 + wid, dtype=np.float32) + 0.5
        ys = np.arange(self.y0, self.y0 + hgt, dtype=np.float32) + 0.5
        return xs, ys

    @functools.cached_property
    def weighted(self) -> tuple[np.ndarray, np.ndarray, float]:
        """(observed coverage, care weights, their dot product), flat."""
        a, w = self.alpha.ravel(), self.care.ravel().astype(np.float32)
        return a, w, float(a @ w)


def _score(shape: str, cx, cy, hp, win: Window) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    cx, cy, hp = (np.asarray(v, np.float32).ravel() for v in (cx, cy, hp))
    xs, ys = win.pixel_centres
    t = templates(shape, cx, cy, hp, xs, ys, win.blur).reshape(len(cx), -1)
    a, w, observed = win.weighted
    seen = t @ w
    inter = np.minimum(t, a, out=t) @ w
    union = observed + seen - inter
    iou = inter / np.maximum(union, 1e-6)
    hidden = np.minimum(np.maximum(1.0 - seen / (AREA[shape] * hp * hp), 0.0), 1.0)
    return iou, iou - HIDDEN_PENALTY * hidden, union - inter


def pose_error(win: Window, shape: str, cx: float, cy: float, hp: float) -> float:
    """Sum of |observed - template| coverage over the visible pixels for one pose."""
    return float(_score(shape, [cx], [cy], [hp], win)[2][0])


def _grid(lo: float, hi: float) -> np.ndarray:
    return np.linspace(lo, hi, max(2, min(7, int((hi - lo) / 0.75) + 2)), dtype=np.float32)


def fit_shape(win: Window, poses: list[tuple[float, tuple[float, float], tuple[float, float]]], min_hp: float = 0.0) -> Fit:
    """Best shape and pose. poses: per candidate half-size (px), the ranges of centre x and y (px)
    to search. A coarse grid over every shape and pose, one pattern-search round for the shapes
    close to the best, the remaining rounds for the best of them."""
    cx, cy, hp = (np.concatenate(v) for v in zip(*[_pose_grid(h, xr, yr) for h, xr, yr in poses], strict=True))
    coarse = []
    for shape in SHAPES:
        k = int(np.argmax(_score(shape, cx, cy, hp, win)[1]))
        coarse.append([shape, float(cx[k]), float(cy[k]), float(hp[k])])
    fits = [_refine(win, *c, REFINE[:1], min_hp) for c in coarse]
    top = max(f.score for f in fits)
    fits = [_refine(win, f.shape, f.cx, f.cy, f.hp, REFINE[1:], min_hp) for f in fits if f.score >= top - SHAPE_MARGIN]
    return max(fits, key=lambda f: f.score)


def _pose_grid(hp: float, xr: tuple[float, float], yr: tuple[float, float]) -> tuple[np.ndarray, ...]:
    cx, cy = np.meshgrid(_grid(*xr), _grid(*yr))
    return cx.ravel(), cy.ravel(), np.full(cx.size, hp, np.float32)


_UNIT = np.array([-1.0, 0.0, 1.0], np.float32)
# The 27 neighbours of a pose in np.meshgrid(x, y, h)'s order (y slowest, then x, then h), as
# indices into the three offset vectors: the order decides which of equal scores wins.
_NY, _NX, _NH = (i.ravel() for i in np.indices((3, 3, 3)))


def _refine(win: Window, shape: str, px: float, py: float, ph: float, rounds, min_hp: float) -> Fit:
    """Pattern search: each round tries the 27 neighbours of the pose at the round's step sizes."""
    for step, scale in rounds:
        gx = (px + step * _UNIT)[_NX]
        gy = (py + step * _UNIT)[_NY]
        gh = np.maximum(ph * (1.0 + scale * _UNIT), min_hp)[_NH]
        iou, score, err = _score(shape, gx, gy, gh, win)
        k = int(np.argmax(score))
        px, py, ph = float(gx[k]), float(gy[k]), float(gh[k])
    return Fit(shape, px, py, ph, float(iou[k]), float(score[k]), float(err[k]))
