"""Perception for the tabletop world: objects read back from pixels only, never from simulator state.

1. Unmix every pixel into table and palette colours (pixels.unmix) and label it with the colour that
   holds more than half of it.
2. Connected components per colour. A component that is only the anti-aliased seam between two
   other colours (red over yellow blends to orange) is dropped. Pieces of one colour are merged when
   one template explains them together (an object cut by an occluder or by an object passing over
   it); a blob no template explains is tried as two overlapping copies.
3. Each blob is explained by a shape template fitted to its coverage map by maximising IoU.
   Pixels of other colours are "don't care" (they may be in front of the object), so the fitted
   centre stays right when part of the object is hidden. Where two blobs touch, the order in which
   they overlap is the one that leaves less of the overlap unexplained; the upper blob is then
   refitted with the lower colour as its background, which pins its size. The frame's blur is
   estimated from the largest object's edges and built into the templates.
4. A small object centred on a larger one can leave a ring of the lower one thinner than a pixel
   (32x32 frames), too thin to label. Around every object that is not large, the pixels are unmixed
   into its colour and each unused colour; a colour that explains much more of them, in the shape
   of a larger centred template, is a hidden base.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from spiral.errors import SpiralError
from spiral.worlds.tabletop.pixels import (
    AREA,
    COLOUR_NAMES,
    REFS,
    RES_MAX,
    SEAMS,
    TABLE,
    UNKNOWN,
    Fit,
    Pixels,
    Window,
    components,
    dilate,
    fit_shape,
    line_unmix,
    pair_unmix,
    pose_error,
    templates,
    unmix,
)
from spiral.worlds.tabletop.render import MIN_SIZE
from spiral.worlds.tabletop.scene import SIZE_ORDER, SIZES, Scene, TableObject

# Frames larger than this are area-averaged down to WORK_SIZE first: that keeps anti-aliasing exact
# and makes the cost independent of the input size (positions are in table units anyway).
MAX_WORK_SIZE, WORK_SIZE = 96, 64
# Blobs smaller than this fraction of the smallest object (a small triangle) are noise.
MIN_PIXEL_FRACTION = 0.25
# A blob whose best template explains less than this (IoU on the pixels we can see) is not an object.
MIN_FIT = 0.45
# The fitted extent may pass the labelled bounding box by this many pixels per side: a pixel less
# than half covered is not labelled, and blur widens or narrows the labelled area.
BBOX_SLACK = 1.0
# Same-colour pieces are merged when one template fits them together at most this much worse (IoU).
MERGE_SLACK = 0.05
# A blob fitting worse than this is tried as two overlapping objects of its colour; the split is
# kept when the two parts fit better on average by SPLIT_GAIN.
SPLIT_BELOW, SPLIT_GAIN = 0.8, 0.1
# ... and only when the pixels left out by the first template are at least this fraction of it.
SPLIT_REST, SPLIT_ROUNDS = 0.3, 4
# A detection fitting worse than this, centred on a smaller object, may be a misread ring of a base.
STRONG_FIT = 0.75
# Seams: the colours blending into a seam blob are looked for this many pixels around it.
SEAM_REACH = 3
# Blobs closer than this many pixels may overlap, so their depth order is worked out.
TOUCH_PX = 2
# Stacking: two objects whose centres are closer than this fraction of the larger one's half-size.
STACK_RADIUS = 0.5
# A hidden base must explain at least this much more of the pixels around an object than the object
# alone (sum of squared RGB residuals): RING_GAIN_PX pixels' worth of a ring half covering them with
# a colour ~150 RGB units from the table, plus RING_NOISE_K times what fitting an extra colour to
# pure noise gains per pixel (sigma^2).
RING_GAIN_PX, RING_NOISE_K = 4.0, 1.0
RING_GAIN_MIN = RING_GAIN_PX * (0.5 * 150.0) ** 2
# Blur sigmas (px) tried on the largest object's edges; renders are sharp, generated frames are not.
BLUR_GRID = (0.0, 0.5, 0.75, 1.0, 1.3, 1.7)
_LARGEST = max(SIZES.values())


@dataclass(frozen=True)
class Detection:
    """One object seen in a frame. Positions in table units (x right, y down, both in [0, 1])."""

    colour: str
    shape: str
    x: float
    y: float
    half: float  # half the bounding-box side, table units
    size: str  # nearest size class in scene.SIZES
    pixels: int  # pixels labelled with the colour (for a hidden base: its visible coverage)
    fit: float  # IoU of the fitted template with the visible pixels, in [0, 1]

    @property
    def name(self) -> str:
        return f"{self.colour} {self.shape}"


def nearest_size(half: float) -> str:
    return min(SIZE_ORDER, key=lambda s: abs(SIZES[s] - half))


def _check_frame(frame: np.ndarray) -> np.ndarray:
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        got = f"{frame.dtype} array of shape {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
        raise SpiralError(f"a frame must be a (H, W, 3) uint8 RGB array, got {got}")
    if frame.shape[0] != frame.shape[1] or frame.shape[0] < MIN_SIZE:
        raise SpiralError(f"tabletop frames are square and at least {MIN_SIZE} pixels, got {frame.shape[1]}x{frame.shape[0]}")
    if frame.shape[0] > MAX_WORK_SIZE:
        frame = np.asarray(Image.fromarray(frame).resize((WORK_SIZE, WORK_SIZE), Image.Resampling.BOX))
    return frame


def _is_seam(px: Pixels, mask: np.ndarray, colour: int) -> bool:
    """Is the blob better explained as blends of two colours (and the table) than as its own colour?
    Then it is where one object's edge crosses another's. Both must be labelled somewhere near it,
    if not next to it (the ring of a base under a small object can be too thin to label at 32x32)."""
    around = set(np.unique(px.labels[dilate(mask, SEAM_REACH) & ~mask]).tolist())
    pairs = [(a, b) for a, b, c in SEAMS if c == colour and a in around and b in around]
    rgb, own = px.rgb[mask], (px.res[..., colour][mask] ** 2).mean()
    return any((pair_unmix(rgb, REFS[a], REFS[b])[2] ** 2).mean() < own for a, b in pairs)


@dataclass
class _Blob:
    colour: int
    mask: np.ndarray
    box: tuple[int, int, int, int]  # x0, x1, y0, y1 of the labelled pixels (x1, y1 exclusive)

    @staticmethod
    def of(colour: int, mask: np.ndarray) -> _Blob:
        ys, xs = np.nonzero(mask)
        return _Blob(colour, mask, (int(xs.min()), int(xs.max()) + 1, int(ys.min()), int(ys.max()) + 1))


def _pieces(px: Pixels) -> list[_Blob]:
    """Connected components of each colour, largest first, seams and single pixels left out."""
    comp = components(px.labels)
    ids, counts = np.unique(comp[comp >= 0], return_counts=True)
    order = np.argsort(-counts, kind="stable")
    pieces = [_Blob.of(int(px.labels.ravel()[i]), comp == i) for i in ids[order][counts[order] >= 2]]
    return [p for p in pieces if not _is_seam(px, p.mask, p.colour)]


def _objects(px: Pixels, blur: float = 0.0) -> list[tuple[_Blob, Fit]]:
    """Blobs and their fits. Pieces of one colour that fit in one object's box are merged when one
    template explains them together about as well as apart (an object cut by an occluder or by an
    object passing over it), and kept apart otherwise (two copies side by side)."""
    min_pixels = max(3.0, MIN_PIXEL_FRACTION * AREA["triangle"] * (SIZES["small"] * px.n) ** 2)
    limit = 2 * _LARGEST * px.n + 2 * BBOX_SLACK
    found: list[list] = []  # [blob, fit or None while it is too small to fit]
    for piece in _pieces(px):
        big = piece.mask.sum() >= min_pixels
        own = _fit_blob(px, piece, (), blur) if big else None
        for entry in found:
            u = _Blob.of(piece.colour, entry[0].mask | piece.mask) if entry[0].colour == piece.colour else None
            if u is None or max(u.box[1] - u.box[0], u.box[3] - u.box[2]) > limit:
                continue
            both = _fit_blob(px, u, (), blur) if entry[1] is not None else None
            if both is None or both.iou >= max(entry[1].iou, own.iou if own else 0.0) - MERGE_SLACK:
                entry[0], entry[1] = u, both
                break
        else:
            found.append([piece, own])
    out = []
    for blob, fit in found:
        if blob.mask.sum() >= min_pixels:
            out += _split(px, blob, fit if fit is not None else _fit_blob(px, blob, (), blur), blur, min_pixels)
    return out


def _split(px: Pixels, blob: _Blob, fit: Fit, blur: float, min_pixels: float) -> list[tuple[_Blob, Fit]]:
    """A blob no single template explains may be two overlapping objects of one colour (a copy
    hallucinated next to the original). Alternately fit the pixels the other part's template leaves
    out; keep the two parts when both fit clearly better than the whole did."""
    if fit.iou >= SPLIT_BELOW:
        return [(blob, fit)]
    grid = np.arange(px.n, dtype=np.float32) + 0.5

    def leftover(f: Fit) -> np.ndarray:
        return blob.mask & (templates(f.shape, np.array([f.cx]), np.array([f.cy]), np.array([f.hp]), grid, grid, blur)[0] < 0.5)

    parts = [(blob, fit)]
    for _ in range(SPLIT_ROUNDS):
        rest = leftover(parts[-1][1])
        if rest.sum() < max(min_pixels, SPLIT_REST * (blob.mask.sum() - rest.sum())):  # a ring or a ragged edge
            return [(blob, fit)]
        part = _Blob.of(blob.colour, rest)
        parts = [parts[-1], (part, _fit_blob(px, part, (), blur))]
    (a, fa), (b, fb) = parts
    if min(fa.iou, fb.iou) >= MIN_FIT and (fa.iou + fb.iou) / 2 > fit.iou + SPLIT_GAIN:
        return parts
    return [(blob, fit)]


def _window(px: Pixels, colour: int, own: np.ndarray, bounds: tuple[int, ...], behind: tuple[int, ...], blur: float) -> Window:
    """The coverage map of `colour` on a patch, and the pixels that tell whether it is there: its own
    blob, table, its blends with the table, and the colours it is known to lie on (`behind`)."""
    x0, x1, y0, y1 = (int(min(max(v, 0), px.n)) for v in bounds)  # np.clip costs ~10 us a scalar
    sl = (slice(y0, y1), slice(x0, x1))
    labels, res = px.labels[sl], px.res[sl + (colour,)]
    alpha = px.alpha[sl + (colour,)].copy()
    care = own[sl] | (labels == TABLE) | ((labels == UNKNOWN) & (px.best[sl] == colour) & (res < RES_MAX))
    for b in behind:
        t, r = line_unmix(px.rgb[sl], REFS[b], REFS[colour])
        use = ((labels == b) | (labels == UNKNOWN) | own[sl]) & (r < RES_MAX) & (r < res)
        alpha = np.where(use, t, alpha)
        care |= use
    return Window(alpha, care, x0, y0, blur)


def _fit_blob(px: Pixels, blob: _Blob, behind: tuple[int, ...] = (), blur: float = 0.0) -> Fit:
    bx0, bx1, by0, by1 = blob.box
    reach = math.ceil(2 * _LARGEST * px.n + BBOX_SLACK + 1)
    # Centres from which an object of each size covers every labelled pixel; for a blob larger than
    # any object (overlapping copies), the centres that keep the object inside the blob.
    ranges = {
        h * px.n: (
            (bx1 - BBOX_SLACK - h * px.n, bx0 + BBOX_SLACK + h * px.n),
            (by1 - BBOX_SLACK - h * px.n, by0 + BBOX_SLACK + h * px.n),
        )
        for h in SIZES.values()
    }
    poses = [(hp, xr, yr) for hp, (xr, yr) in ranges.items() if xr[0] <= xr[1] and yr[0] <= yr[1]]
    poses = poses or [(hp, tuple(sorted(xr)), tuple(sorted(yr))) for hp, (xr, yr) in ranges.items()]
    bounds = (min(bx0 - 2, bx1 - reach), max(bx1 + 2, bx0 + reach), min(by0 - 2, by1 - reach), max(by1 + 2, by0 + reach))
    return fit_shape(_window(px, blob.colour, blob.mask, bounds, behind, blur), poses)


def _estimate_blur(px: Pixels, objs: list[tuple[_Blob, Fit]]) -> float:
    """The frame's blur sigma (px): the one whose template best explains the edges of the largest
    well-fitting object, at the pose fitted without blur (blur moves neither centre nor size)."""
    good = [(int(b.mask.sum()), k) for k, (b, f) in enumerate(objs) if f.iou >= MIN_FIT]
    if not good:
        return 0.0
    blob, fit = objs[max(good)[1]]
    r = math.ceil(fit.hp + 2 + 3 * BLUR_GRID[-1])
    bounds = (int(fit.cx) - r, int(fit.cx) + r + 1, int(fit.cy) - r, int(fit.cy) + r + 1)
    errs = [pose_error(_window(px, blob.colour, blob.mask, bounds, (), s), fit.shape, fit.cx, fit.cy, fit.hp) for s in BLUR_GRID]
    return BLUR_GRID[int(np.argmin(errs))]


def _layer(px: Pixels, blobs: list[_Blob], fits: list[Fit], blur: float) -> list[Fit]:
    """Refit blobs that lie on others, with the lower colours as their background."""
    grown = [dilate(b.mask, TOUCH_PX) for b in blobs]
    behind: list[list[int]] = [[] for _ in blobs]
    for i, j in itertools.combinations(range(len(blobs)), 2):
        if blobs[i].colour != blobs[j].colour and (grown[i] & blobs[j].mask).any():
            # The wrong order leaves the overlap unexplained: compare absolute errors, not IoUs, which
            # would favour the larger object whatever happens in the overlap.
            on_top_i = (
                _fit_blob(px, blobs[i], (blobs[j].colour,), blur).err <= _fit_blob(px, blobs[j], (blobs[i].colour,), blur).err
            )
            upper, lower = (i, j) if on_top_i else (j, i)
            behind[upper].append(blobs[lower].colour)
    return [
        _fit_blob(px, b, tuple(behind[k]), blur) if behind[k] else f for k, (b, f) in enumerate(zip(blobs, fits, strict=True))
    ]


def _bases(px: Pixels, found: list[tuple[int, Fit, int]], blur: float) -> list[tuple[int, Fit, int]]:
    """Add objects hidden under others but for a ring too thin to label (see the module docstring).
    found: (colour, fit, visible pixels) per detection; weak ones centred on a top object may be
    misreadings of such a ring and are replaced by the base when one is found."""
    n, sigma2 = px.n, px.noise() ** 2
    placed = list(found)
    queue = [((c,), f) for c, f, _ in found]
    while queue:
        known, top = queue.pop()
        around = [
            p
            for p in placed
            if p[1] is not top and math.dist((p[1].cx, p[1].cy), (top.cx, top.cy)) < STACK_RADIUS * max(p[1].hp, top.hp)
        ]
        weak = [p for p in around if p[1].iou < STRONG_FIT and p[1].hp > 0.9 * top.hp]
        lower = [p for p in around if p[1].iou >= STRONG_FIT and p[1].hp > top.hp]
        ceiling = min((p[1].hp for p in lower), default=np.inf)
        bigger = [h * n for h in SIZES.values() if top.hp * 1.1 < h * n < ceiling * 0.9]
        used = {p[0] for p in placed} - {p[0] for p in weak}
        free = [c for c in range(len(COLOUR_NAMES)) if c not in used and c not in known]
        if not bigger or not free:
            continue
        r = math.ceil(_LARGEST * n + 2)
        x0, x1 = max(0, int(top.cx) - r), min(n, int(top.cx) + r + 1)
        y0, y1 = max(0, int(top.cy) - r), min(n, int(top.cy) + r + 1)
        sl = (slice(y0, y1), slice(x0, x1))
        mixers = tuple(dict.fromkeys(known + tuple(p[0] for p in lower)))
        # Pixels a base could show in, less those of the objects around (edges included).
        others = [c for c in used if c not in mixers]
        yy, xx = np.mgrid[y0:y1, x0:x1] + 0.5
        valid = ~np.isin(px.best[sl], others) & (np.hypot(xx - top.cx, yy - top.cy) <= bigger[-1] * math.sqrt(2) + 1)
        # What the colours already there explain, alone or blended in pairs, sets the bar.
        pairs = [pair_unmix(px.rgb[sl], REFS[a], REFS[b])[2] for a, b in itertools.combinations(mixers, 2)]
        alone = np.min([px.res[sl + (k,)] for k in mixers] + pairs, axis=0)
        best = None
        for b in free:
            # Each pixel: the best blend of the new colour with one of the known ones (and table).
            mixes = [pair_unmix(px.rgb[sl], REFS[k], REFS[b]) for k in mixers]
            pick = np.argmin([m[2] for m in mixes], axis=0)
            x, y, res = (np.choose(pick, [m[i] for m in mixes]) for i in range(3))
            gain = float((valid * (alone**2 - res**2)).sum())
            if best is None or gain > best[0]:
                best = (gain, b, x, y, res)
        gain, b, x, y, res = best
        if gain < RING_GAIN_MIN + RING_NOISE_K * sigma2 * valid.sum():
            continue
        win = Window(y, valid & (x < 0.5) & (res < RES_MAX), x0, y0, blur)
        fit = fit_shape(win, [(hp, (top.cx - 1, top.cx + 1), (top.cy - 1, top.cy + 1)) for hp in bigger], min_hp=bigger[0] * 0.9)
        if fit.iou >= MIN_FIT:
            placed = [p for p in placed if not any(p is w for w in weak)]
            placed.append((b, fit, int(round(float((y * win.care).sum())))))
            queue.append((known + (b,), fit))
    return placed


def _detection(colour: int, fit: Fit, pixels: int, n: int) -> Detection:
    half = fit.hp / n
    return Detection(COLOUR_NAMES[colour], fit.shape, fit.cx / n, fit.cy / n, half, nearest_size(half), pixels, max(0.0, fit.iou))


def detect(frame: np.ndarray) -> list[Detection]:
    """Every object-like blob in the frame, largest first; duplicates of a colour included."""
    px = unmix(_check_frame(frame))
    objs = _objects(px)
    blur = _estimate_blur(px, objs)
    if blur > 0:
        objs = _objects(px, blur)
    blobs = [b for b, _ in objs]
    fits = _layer(px, blobs, [f for _, f in objs], blur)
    kept = [(b.colour, f, int(b.mask.sum())) for b, f in zip(blobs, fits, strict=True) if f.iou >= MIN_FIT]
    found = [_detection(colour, fit, pixels, px.n) for colour, fit, pixels in _bases(px, kept, blur)]
    return sorted(found, key=lambda d: -d.pixels)


def _lies_on(top: Detection, base: Detection) -> bool:
    """Is `top` stacked on `base`? Centres close, and base the larger (or, at equal size, the one
    that fits worse: it is the occluded one)."""
    close = math.dist((top.x, top.y), (base.x, base.y)) < STACK_RADIUS * max(top.half, base.half)
    return close and (SIZE_ORDER.index(base.size), base.half, -base.fit) > (SIZE_ORDER.index(top.size), top.half, -top.fit)


def scene_from_detections(detections: list[Detection]) -> Scene:
    """One object per colour (its largest blob), sizes snapped to classes, stacking inferred. A
    stacked object is placed at its support's centre, so a well-read stack is a valid scene."""
    by_colour: dict[str, Detection] = {}
    for d in sorted(detections, key=lambda d: -d.pixels):
        by_colour.setdefault(d.colour, d)
    dets = list(by_colour.values())
    support = {}
    for d in dets:
        below = [b for b in dets if b is not d and _lies_on(d, b)]
        if below:
            support[d.colour] = min(below, key=lambda b: (SIZE_ORDER.index(b.size), b.half))
    placed: dict[str, TableObject] = {}

    def place(d: Detection) -> TableObject:
        if d.colour not in placed:
            base = support.get(d.colour)
            x, y, on = (d.x, d.y, None) if base is None else (place(base).x, place(base).y, base.name)
            placed[d.colour] = TableObject(d.colour, d.shape, d.size, round(x, 4), round(y, 4), on=on)
        return placed[d.colour]

    return Scene(tuple(place(d) for d in dets))


def read_scene(frame: np.ndarray) -> Scene:
    """The scene in a frame, read from its pixels alone."""
    return scene_from_detections(detect(frame))
