"""The tokens of the learned critic: one per palette colour, plus one for the table, each made of
numbers measured on the clip rather than of conv features.

The oracle's verdict is about geometry: did the subject end where the instruction says, did it end
inside another object's footprint, did anything else move, vanish, double or smear. Conv features
of a 32x32 grid learn that slowly and memorise their training scenes. Here every pixel is read as a
blend of two colours (read_pixels), and each colour's cover is summarised per frame by its area, centroid,
spread, solidity, reach and box offset, and at the end by where it is relative to the subject and
the anchor, how far from where the subject ends, how much of its start footprint the subject now
covers, the two objects' sizes and two flags saying whether it is the instruction's subject or
anchor. The table's token reads the pixels no blend explains (smears, blotches) and the flicker of
the background. What the numbers mean for the step (which relation, which region) the network
still learns from the instruction's MiniLM tokens, through cross-attention blocks (learned_net.py).
Each colour also gets its contact with the subject and how evenly it moved (EXTRA_NUMBERS), where it
ends against the step's target (GOAL_NUMBERS) and its clearance from the subject's end footprint
(FOOTPRINT_NUMBERS). Figures: docs/RESULTS.md, Learned tabletop critic.
"""

from __future__ import annotations

import math
from itertools import combinations

import torch
from torch import nn
from torch.nn import functional as F

from spiral.worlds.tabletop.actions import DIRECTIONS, REGIONS, RELATIONS, Action
from spiral.worlds.tabletop.scene import COLOURS, GAP, READ_SLACK

PALETTE = torch.tensor(list(COLOURS.values()), dtype=torch.float32)  # (K, 3)
SLOTS = len(COLOURS) + 1  # the colours, then the table
# What the oracle saw of each palette colour (the table's row stays 0) and of the clip: kept with
# the rollouts so the critic also learns the parts its verdict is made of (its fact heads).
OBJECT_FACTS = ("vanished", "changed", "moved", "crowded", "extra")
CLIP_FACTS = ("postcondition", "teleported", "low_quality")

PER_FRAME = 9  # area, centroid x and y, spread x and y, solidity, reach, box centre offset x and y
# moved (at the end, at most), cover of the start footprint, offsets to the subject's and the anchor's
# end, distances to the subject's end (from the end and the start), the subject's and anchor's sizes, 2 roles
RELATIVE = 13
# Extra numbers. Contact: the gap between this colour's start
# outline and the subject's end outline (centre distance less both reaches), that distance against
# the larger reach, and the share of the subject's end mask lying on this colour's start mask.
# Motion: the length of its path over the frames, and the share of it covered in the largest
# single step. Crowding, stacking and jumps are exactly such comparisons (scene.collides: centres
# closer than both footprint radii; the oracle's stacking: centres within a fraction of the larger
# size; checks.smoothness: the largest step against the path), which the network otherwise has
# to compose from distances, areas and per-frame centroids, and does only roughly.
EXTRA_NUMBERS = 5
# Goal numbers: the instruction's relation as a one-hot and, per
# colour, where it ends against the step's target: for a region, its box centre's signed margins to
# the region's four edges and the smallest of them (positive inside); for left of / right of /
# above / below, its offset from the anchor's end along the relation's direction and across it;
# for a put, its end box centre's offset from the base's start box centre, against the base's
# half-size, and that distance (the oracle stacks by box centres within half the larger half-size;
# a triangle's centroid lies below its box centre, so centroids alone blur that test).
# The network can read relation and region from the MiniLM tokens, but learns only roughly where a
# region's edges are (a critic without them passed, at 0.96, a subject left short of "the middle
# column" in the demo), has to multiply an offset by a direction it read from words to tell "left
# of" from "right of", and passed subjects left half off a triangle base at 0.97. The grammar
# already parses the instruction for the colour roles; these numbers give the rest of its parse
# the same way.
GOAL_SIZE = len(RELATIONS) + 4  # a TextTable row: relation one-hot, region box (x0, x1, y0, y1) in table units
GOAL_NUMBERS = len(RELATIONS) + 5 + 2 + 3
# Footprint numbers: per colour, its clearance from the
# subject's end footprint, as the oracle's crowding test has it (scene.collides: box centres closer
# than both footprint radii less GAP - 2 READ_SLACK), from this colour's start box and the subject's
# end box, and that centre distance against the two radii. A footprint's radius is half the box for
# a circle and half the box's diagonal for a square or triangle; which one the box's fill tells
# (a circle fills pi / 4 of it, a square all, a triangle half). The extra numbers' contact gap uses
# each mask's reach instead, which for a triangle falls short of that radius by about a fifth of its
# half-size, as much as the oracle's whole margin.
FOOTPRINT_NUMBERS = 2
ROUND_FILL = 0.93  # a mask filling its box less than this (by 0.06 fully) is a circle, unless a triangle
CROWDING = (
    GAP - 2 * READ_SLACK
) * 2.0  # the oracle's crowding margin in [-1, 1] units (negative: a little overlap is read error)
_DIRECTIONS = torch.tensor([DIRECTIONS[r] for r in RELATIONS if r in DIRECTIONS])  # (4, 2), in RELATIONS' order
STILL = 0.05  # a path shorter than this (in [-1, 1] coordinates; 0.025 table units) has no largest step
# A mask counts as present from this much area (a 32x32 pixel; a small object is about ten): below
# it there is no centroid to speak of (or it is the rim where one object rests on another, a blend
# that can read as a third colour), so the numbers are zeros.
MIN_AREA = 1e-3
# Grey levels: how far a pixel may lie from its best blend of table and palette colour and still be
# read as that colour (the renderer's blends lie within a few levels; a smear does not).
FIT_SIGMA = 20.0
TABLE_LEVELS = 3.0  # grey levels (RGB distance) within which a pixel is plain table
JUNK_SCALE = 0.3  # summed RGB change in [-1, 1] units at which a misfit pixel counts as fully changed


def coordinate_planes(resolution: int) -> torch.Tensor:
    """(1, 2, R, R): x and y of every pixel in [-1, 1] (regions and relations are places)."""
    ramp = torch.linspace(-1.0, 1.0, resolution)
    return torch.stack([ramp[None].expand(resolution, -1), ramp[:, None].expand(-1, resolution)])[None]


def colour_features(num_frames: int) -> int:
    return PER_FRAME * num_frames + RELATIVE + EXTRA_NUMBERS + GOAL_NUMBERS + FOOTPRINT_NUMBERS


def table_features(num_frames: int) -> int:
    return 2 * num_frames - 1  # changed non-palette area per frame, flicker per frame pair


def feature_size(num_frames: int) -> int:
    return max(colour_features(num_frames), table_features(num_frames))


def goal_row(action: Action) -> torch.Tensor:
    """(GOAL_SIZE,): the action's relation as a one-hot, then its region's box (zeros unless "in")."""
    row = torch.zeros(GOAL_SIZE)
    row[RELATIONS.index(action.relation)] = 1.0
    if action.relation == "in":
        row[len(RELATIONS) :] = torch.tensor(REGIONS[action.anchor])
    return row


def goal_numbers(
    goal: torch.Tensor, box_end: torch.Tensor, roles: torch.Tensor, base: torch.Tensor, seen: torch.Tensor, r: int
) -> torch.Tensor:
    """goal (B, GOAL_SIZE) TextTable rows; box_end (B, K, 2) each colour's end box centre, roles
    (B, K, 2) the role weights of the subject and anchor colours, base (B, 1, 3) the anchor's start
    box centre and half-size, in the [-1, 1] pixel-centre coordinates of an R x R clip; seen
    (B, K, 1) whether the colour is there at the end -> (B, K, GOAL_NUMBERS). Box centres, not
    centroids: the world places, and the oracle reads, an object by its box centre (a triangle's
    centroid lies a sixth of its height lower)."""
    relation = goal[:, : len(RELATIONS)]
    # Table units -> the coordinate planes' units: pixel i's centre, (i + 0.5) / R, is at -1 + 2i / (R - 1).
    box = (goal[:, len(RELATIONS) :] * r - 0.5) / (r - 1) * 2.0 - 1.0  # (B, 4): x0, x1, y0, y1
    x, y = box_end[..., 0], box_end[..., 1]
    margins = torch.stack([x - box[:, None, 0], box[:, None, 1] - x, y - box[:, None, 2], box[:, None, 3] - y], dim=-1)
    margins = torch.cat([margins, margins.amin(-1, keepdim=True)], dim=-1) * relation[:, None, :1]  # "in" only
    direction = relation[:, 1 : 1 + len(_DIRECTIONS)] @ _DIRECTIONS  # (B, 2); zeros for "in" and "on"
    offset = box_end - (roles[..., 1:] * box_end).sum(1, keepdim=True)  # from the anchor's end
    along = (offset * direction[:, None]).sum(-1)
    across = (offset[..., 0] * direction[:, None, 1] - offset[..., 1] * direction[:, None, 0]).abs()
    place = torch.cat([margins, torch.stack([along, across], dim=-1)], dim=-1) * 4.0
    on_base = ((box_end - base[..., :2]) / base[..., 2:].clamp(min=1e-3)).clamp(-4.0, 4.0)
    on_base = torch.cat([on_base, on_base.norm(dim=-1, keepdim=True)], dim=-1) * relation[:, None, -1:]  # "on" only
    return torch.cat([relation[:, None].expand(-1, box_end.shape[1], -1), torch.cat([place, on_base], dim=-1) * seen], dim=-1)


EDGE = 0.1  # a row or column counts as touched by a colour from this much cover in its best pixel
# A triangle's rows spread more than its columns (variance ratio 4/3; a square's or circle's is 1):
# this ratio and above reads as a triangle, fully from TRIANGLE_RATIO + TRIANGLE_RAMP.
TRIANGLE_RATIO, TRIANGLE_RAMP = 1.1, 0.15


def _box(m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """m (..., R, R) soft masks -> the centre (..., 2) and half-side (...) of the box the world
    places the object by, in the [-1, 1] pixel-centre coordinates, and how surely it is a triangle
    (...) in [0, 1]; zeros where the mask is empty. To a fraction of a pixel: for a square or
    circle, along each axis the edge pixels' best cover says how far into them the object reaches
    (an anti-aliased edge column is covered that much in every row it spans); a triangle's apex and
    base corners are too thin for that, so its half-side comes from its column spread (a triangle of
    half-side h has variance h^2 / 6 across) and its box centre lies h / 3 above its centroid."""
    r = m.shape[-1]
    centres, halves = [], []
    for profile in (m.amax(-2), m.amax(-1)):  # per column (x), per row (y): the best pixel's cover
        touched = profile > EDGE
        index = torch.arange(r, dtype=m.dtype)
        first = torch.where(touched, index, torch.full_like(profile, r)).amin(-1)
        last = torch.where(touched, index, torch.full_like(profile, -1)).amax(-1)
        cover_first = profile.gather(-1, first.clamp(0, r - 1).long()[..., None])[..., 0]
        cover_last = profile.gather(-1, last.clamp(0, r - 1).long()[..., None])[..., 0]
        low, high = first + 1 - cover_first, last + cover_last  # pixel i spans [i, i + 1]
        one = first == last  # a single row or column: centred on it
        low, high = torch.where(one, first + 0.5 - cover_first / 2, low), torch.where(one, first + 0.5 + cover_first / 2, high)
        centres.append(((low + high) / 2 - 0.5) / (r - 1) * 2.0 - 1.0)
        halves.append((high - low) / (r - 1))
    edge_centre, edge_half = torch.stack(centres, dim=-1), torch.maximum(*halves)
    coords = coordinate_planes(r)[0]
    w = m / m.sum((-2, -1), keepdim=True).clamp(min=1e-6)
    cx, cy = (w * coords[0]).sum((-2, -1)), (w * coords[1]).sum((-2, -1))
    var_x = (w * (coords[0] - cx[..., None, None]) ** 2).sum((-2, -1))
    var_y = (w * (coords[1] - cy[..., None, None]) ** 2).sum((-2, -1))
    triangle = ((var_y / var_x.clamp(min=1e-8) - TRIANGLE_RATIO) / TRIANGLE_RAMP).clamp(0.0, 1.0)
    tri_half = (6.0 * var_x).sqrt()
    tri_centre = torch.stack([cx, cy - tri_half / 3.0], dim=-1)
    found = m.amax((-2, -1)) > EDGE
    triangle = triangle * found
    centre = edge_centre + triangle[..., None] * (tri_centre - edge_centre)
    half = edge_half + triangle * (tri_half - edge_half)
    return centre * found[..., None], half * found, triangle


def footprint_numbers(masks: torch.Tensor, role_w: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """masks (B, K, T, R, R), role_w (B, K, 2), known (B, K, 1) (the colour is there at the start and
    a subject is named) -> (B, K, FOOTPRINT_NUMBERS): each colour's start footprint against the
    subject's end footprint (see FOOTPRINT_NUMBERS); zeros for the subject's own colour."""
    r = masks.shape[-1]

    def radius(m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        centre, half, triangle = _box(m)
        fill = m.sum((-2, -1)) * (2.0 / (r - 1)) ** 2 / (2 * half).clamp(min=1e-3) ** 2  # of the box: circle pi / 4, square 1
        round_ = ((ROUND_FILL - fill) / 0.06).clamp(0.0, 1.0) * (1.0 - triangle)
        return centre, half * (1.0 + (math.sqrt(2.0) - 1.0) * (1.0 - round_))

    start_centre, start_radius = radius(masks[:, :, 0])  # (B, K, 2), (B, K)
    end_centre, end_radius = radius(masks[:, :, -1])
    subject = role_w[..., :1]
    subject_centre = (subject * end_centre).sum(1, keepdim=True)  # (B, 1, 2)
    subject_radius = (subject[..., 0] * end_radius).sum(1, keepdim=True)  # (B, 1)
    distance = (start_centre - subject_centre).norm(dim=-1)
    reach = start_radius + subject_radius
    numbers = torch.stack([(distance - reach - CROWDING) * 4.0, (distance / reach.clamp(min=1e-3)).clamp(max=4.0)], dim=-1)
    return numbers * known * (1.0 - (subject > 0).float())


# The blends a pixel is read as: each palette colour over the table, then each pair of palette
# colours (the rim where one object rests on another: half red, half yellow reads as orange
# otherwise). OVER[m] is the colour on top, UNDER[m] the one below (-1: the table).
_PAIRS = list(combinations(range(len(PALETTE)), 2))
OVER = torch.tensor([k for k in range(len(PALETTE))] + [j for j, _ in _PAIRS])
UNDER = torch.tensor([-1] * len(PALETTE) + [k for _, k in _PAIRS])


def read_pixels(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """float clips (B, T, 3, R, R) in [-1, 1] -> how much of each pixel each palette colour covers
    (B, T, K, R, R), and how badly the pixel fits any colour (B, T, R, R) in [0, 1]. A pixel is read
    as the blend (OVER, UNDER) that explains it best, the table's colour being the start frame's
    median; each colour's cover is its weight in the blend, faded where even the best blend leaves a
    large residual. So an object's anti-aliased rim counts for its own colour (a blue-table blend is
    not purple, a red-yellow one not orange), its centroid is exact to a fraction of a pixel, and a
    smear is a misfit."""
    b, t, _, r, _ = x.shape
    k = len(PALETTE)
    px = ((x + 1.0) * 127.5).movedim(2, -1)  # (B, T, R, R, 3)
    table = px[:, 0].reshape(b, -1, 3).median(1).values  # (B, 3): most of every start frame is table
    cover = x.new_zeros(b, t, r, r, k)
    misfit = x.new_zeros(b, t, r, r)
    # Most pixels are plain table: only the others are read (a few times faster).
    ink = ((px - table[:, None, None, None]) ** 2).sum(-1) > TABLE_LEVELS**2
    if ink.any():
        p = px[ink]  # (P, 3)
        under = torch.where(UNDER[None, :, None] >= 0, PALETTE[UNDER.clamp(min=0)][None], table[:, None])  # (B, M, 3)
        under = under[torch.nonzero(ink)[:, 0]]  # (P, M, 3)
        rel = p[:, None] - under
        span = PALETTE[OVER][None] - under
        alpha = ((rel * span).sum(-1) / (span**2).sum(-1)).clamp(0.0, 1.0)  # (P, M)
        residual = ((rel - alpha[..., None] * span) ** 2).sum(-1)
        best, which = residual.min(1)
        weight = alpha.gather(1, which[:, None])[:, 0]
        fit = torch.exp(-best / (2 * FIT_SIGMA**2))
        over = F.one_hot(OVER[which], k).float() * weight[:, None]
        below = F.one_hot(UNDER[which].clamp(min=0), k).float() * ((1.0 - weight) * (UNDER[which] >= 0))[:, None]
        cover[ink] = (over + below) * fit[:, None]
        misfit[ink] = 1.0 - fit
    return cover.movedim(-1, 2), misfit


def _moments(m: torch.Tensor, coords: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """m (..., R, R) soft masks -> area, cx, cy, sx, sy, solidity, reach, and the box centre's offset
    from the centroid (x, y), each (...); zeros where empty. Reach (how far the solid pixels go from
    the centroid) and the box offset tell a circle, a square and a triangle apart, whose footprints
    (circumscribed circles, scene.collides) differ at the same area."""
    mass = m.sum((-2, -1))
    area = m.mean((-2, -1))
    present = area > MIN_AREA
    w = m / mass.clamp(min=1e-6)[..., None, None]
    cx = (w * coords[0]).sum((-2, -1))
    cy = (w * coords[1]).sum((-2, -1))
    dx, dy = coords[0] - cx[..., None, None], coords[1] - cy[..., None, None]
    sx = (w * dx**2).sum((-2, -1)).clamp(min=0).sqrt()
    sy = (w * dy**2).sum((-2, -1)).clamp(min=0).sqrt()
    solid = (w * m).sum((-2, -1))  # 1 for a mask of full-colour pixels, lower for a faint or blotchy one
    inside = m > 0.5
    reach = torch.where(inside, (dx**2 + dy**2).sqrt(), torch.zeros_like(m)).amax((-2, -1))
    far = torch.tensor(4.0)
    box_x = (torch.where(inside, coords[0], -far).amax((-2, -1)) + torch.where(inside, coords[0], far).amin((-2, -1))) / 2
    box_y = (torch.where(inside, coords[1], -far).amax((-2, -1)) + torch.where(inside, coords[1], far).amin((-2, -1))) / 2
    solid_any = inside.any(-1).any(-1) & present
    box_dx = torch.where(solid_any, box_x - cx, torch.zeros_like(cx))
    box_dy = torch.where(solid_any, box_y - cy, torch.zeros_like(cy))
    values = (area, cx, cy, sx, sy, solid, reach)
    return tuple(torch.where(present, v, torch.zeros_like(v)) for v in values) + (box_dx, box_dy)


def object_features(x: torch.Tensor, rgb: torch.Tensor, named: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
    """float clips (B, T, 3, R, R) in [-1, 1] -> (B, SLOTS, feature_size(T)): per colour its numbers
    (see the module docstring), then the table's. rgb (B, 2, 3) and named (B, 2): the colours of
    the subject and of the anchor, as TextTable holds them; goal (B, GOAL_SIZE): its goal rows."""
    b, t, _, r, _ = x.shape
    coords = coordinate_planes(r)[0]  # (2, R, R)
    cover_px, misfit = read_pixels(x)
    masks = cover_px.transpose(1, 2)  # (B, K, T, R, R)
    area, cx, cy, sx, sy, solid, reach, box_dx, box_dy = _moments(masks, coords)  # each (B, K, T)
    numbers = [area.sqrt() * 4.0, cx, cy, sx * 4.0, sy * 4.0, solid, reach * 4.0, box_dx * 10.0, box_dy * 10.0]
    per_frame = torch.stack(numbers, dim=-1).flatten(2)  # (B, K, PER_FRAME * T)

    # Roles: which palette colour the instruction's subject and anchor are (exact palette RGB).
    roles = ((rgb[:, None, :, :] == PALETTE[None, :, None, :]).all(-1) & (named[:, None, :] > 0)).float()  # (B, K, 2)
    role_w = roles / roles.sum(1, keepdim=True).clamp(min=1.0)
    end = torch.stack([cx[..., -1], cy[..., -1]], dim=-1)  # (B, K, 2)
    subject_end = (role_w[..., :1] * end).sum(1, keepdim=True)  # (B, 1, 2); zeros when no colour is named
    anchor_end = (role_w[..., 1:] * end).sum(1, keepdim=True)
    shift = torch.stack([cx - cx[..., :1], cy - cy[..., :1]], dim=-1).norm(dim=-1)  # (B, K, T)
    present = area > MIN_AREA
    shift = torch.where(present & present[..., :1], shift, torch.zeros_like(shift))
    subject_mask = (role_w[..., 0, None, None] * masks[:, :, -1]).sum(1, keepdim=True)  # (B, 1, R, R)
    overlap = torch.minimum(subject_mask, masks[:, :, 0]).sum((-2, -1))  # (B, K): the subject's end on each start mask
    covered = overlap / masks[:, :, 0].sum((-2, -1)).clamp(min=1e-6) * present[..., 0]
    # Crowding and "next to" are about the distance between centres against the two sizes (scene.collides,
    # actions.relation_holds), so each token also gets its distance to where the subject ends (from
    # where it is at the end, and from where it was: it may be hidden under the subject) and the
    # start sizes of the subject and the anchor.
    start = torch.stack([cx[..., 0], cy[..., 0]], dim=-1)
    has_subject = roles[..., :1].sum(1, keepdim=True)  # (B, 1, 1)
    known = present[..., :1] * has_subject  # the colour is there at the start, and a subject is named
    to_start = (start - subject_end).norm(dim=-1, keepdim=True)  # (B, K, 1)
    size = area[..., 0].sqrt() * 4.0  # (B, K)
    relative = torch.cat(
        [
            shift[..., -1:] * 4.0,
            shift.amax(-1, keepdim=True) * 4.0,
            covered[..., None],
            (end - subject_end) * present[..., -1:] * has_subject,
            (end - anchor_end) * present[..., -1:] * roles[..., 1:].sum(1, keepdim=True),
            (end - subject_end).norm(dim=-1, keepdim=True) * present[..., -1:] * has_subject * 4.0,
            to_start * known * 4.0,
            (role_w * size[..., None]).sum(1, keepdim=True) * present[..., :1],
            roles,
        ],
        dim=-1,
    )
    # Extra numbers: contact (reach of each colour at the start, of the subject at the end; zeros
    # without a subject) and motion.
    subject_reach = (role_w[..., :1] * reach[..., -1:]).sum(1, keepdim=True)  # (B, 1, 1)
    larger = torch.maximum(reach[..., :1], subject_reach).clamp(min=1e-3)
    on_start = overlap / subject_mask.sum((-2, -1)).clamp(min=1e-6)  # (B, K)
    contact = torch.cat(
        [(to_start - reach[..., :1] - subject_reach) * 4.0, (to_start / larger).clamp(max=4.0), on_start[..., None]], -1
    )
    seen = present[..., 1:] & present[..., :-1]  # steps between frames where the colour is there
    steps = torch.stack([cx.diff(dim=-1), cy.diff(dim=-1)], dim=-1).norm(dim=-1) * seen  # (B, K, T - 1)
    path = steps.sum(-1, keepdim=True)
    largest = torch.where(path > STILL, steps.amax(-1, keepdim=True) / path.clamp(min=1e-6), torch.zeros_like(path))
    extra = torch.cat([contact * known, path * 4.0, largest], dim=-1)
    start_centre, start_half, _ = _box(masks[:, :, 0])  # (B, K, 2), (B, K)
    base = torch.cat([start_centre, start_half[..., None]], dim=-1)
    base = (role_w[..., 1:] * base).sum(1, keepdim=True)  # the anchor's, at the start
    goals = goal_numbers(goal, _box(masks[:, :, -1])[0], role_w, base, present[..., -1:], r)
    colours = torch.cat([per_frame, relative, extra, goals, footprint_numbers(masks, role_w, known)], dim=-1)

    # The table: pixels that fit no colour and changed from the start frame (smears, blotches), and
    # how much the background (no colour, a good fit, in both frames) changes between frames.
    changed = ((x - x[:, :1]).abs().sum(2) / JUNK_SCALE).clamp(max=1.0)
    junk = (misfit * changed).mean((-2, -1)).sqrt() * 4.0  # (B, T)
    background = (1.0 - masks.sum(1)).clamp(0.0, 1.0) * (1.0 - misfit)  # (B, T, R, R)
    quiet = background[:, 1:] * background[:, :-1]
    step = (x[:, 1:] - x[:, :-1]).abs().sum(2)
    flicker = (quiet * step).sum((-2, -1)) / quiet.sum((-2, -1)).clamp(min=1.0) * 10.0  # (B, T - 1)
    table = torch.cat([junk, flicker], dim=-1)

    out = x.new_zeros(b, SLOTS, feature_size(t))
    out[:, :-1, : colours.shape[-1]] = colours
    out[:, -1, : table.shape[-1]] = table
    return out


class ObjectEncoder(nn.Module):
    """(B, SLOTS, feature_size) from object_features -> (B, SLOTS, dim) tokens: one MLP for the
    colours' numbers (shared, so every clip teaches it about all six objects), one for the table's."""

    def __init__(self, num_frames: int, dim: int):
        super().__init__()
        self.colour_size = colour_features(num_frames)
        self.table_size = table_features(num_frames)
        self.colour = nn.Sequential(nn.Linear(self.colour_size, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.table = nn.Sequential(nn.Linear(self.table_size, dim), nn.GELU(), nn.Linear(dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        colours = self.colour(x[:, :-1, : self.colour_size])
        table = self.table(x[:, -1:, : self.table_size])
        # No per-colour embedding: which colour a token is matters only through the role flags, so
        # the tokens cannot learn colour-specific habits of the training scenes.
        return torch.cat([colours, table], dim=1)
