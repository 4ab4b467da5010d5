"""Sampling a goal of a chosen task level for a scene.

Goals are proposed at random (families weighted by level) and kept when the solver needs a number of
steps within the level's range; the step count does not depend on the generator the solver is later
given (see `solver.steps_needed`), so the level a goal is sampled for is the level it is solved at.
"""

from __future__ import annotations

import numpy as np

from spiral.errors import SpiralError, UnknownTokenError
from spiral.worlds.tabletop.actions import DIRECTIONS, REGIONS, apply, cell_of
from spiral.worlds.tabletop.goal_spec import (
    CLEAR,
    COMPOUND,
    GATHER,
    LEVELS,
    LINE_UP,
    MAX_LINE,
    MOVE,
    SORT,
    SORT_KEYS,
    STACK,
    SWAP,
    Goal,
    in_region,
)
from spiral.worlds.tabletop.scene import COOL_COLOURS, SIZE_ORDER, WARM_COLOURS, Scene
from spiral.worlds.tabletop.solver import Infeasible, plan_moves, steps_needed

# Proposals tried per level: enough that a scene with a goal of the level almost always yields one
# (a long one can take dozens), few enough that a scene without one is given up on quickly.
SAMPLE_TRIES = 80
# How often each family is proposed, by level: compounds are how a scene with few objects reaches
# "long", and a swap rarely needs more than three steps.
FAMILY_WEIGHTS: dict[str, dict[str, float]] = {
    "short": {STACK: 1, LINE_UP: 1, GATHER: 1, SWAP: 1, SORT: 1, CLEAR: 1, COMPOUND: 0.5},
    "medium": {STACK: 1, LINE_UP: 1, GATHER: 1, SWAP: 1, SORT: 1, CLEAR: 1, COMPOUND: 2},
    "long": {STACK: 0.3, LINE_UP: 0.5, GATHER: 1, SWAP: 0.2, SORT: 1, CLEAR: 0.5, COMPOUND: 4},
}
# The levels each part of a compound is proposed at, by the compound's level.
PART_LEVELS = {"short": ("short",), "medium": ("short",), "long": ("short", "medium")}
# Objects to swap must start this far inside their cells, so a start scene read back from pixels
# puts them in the same cells.
SWAP_CELL_MARGIN = 0.03


def sample_goal(scene: Scene, rng: np.random.Generator, level: str | None = None) -> Goal:
    """A goal for `scene`, not achieved yet, that takes the solver a number of steps within
    `level`'s range; with no level, one drawn at random (and another one if the scene has no goal of
    the first). Deterministic for a given generator state. Raises SpiralError when the level is out
    of reach for this scene (two or three objects rarely make a long goal)."""
    if level is not None and level not in LEVELS:
        raise UnknownTokenError("level", level, list(LEVELS))
    levels = [level] if level is not None else [list(LEVELS)[i] for i in rng.permutation(len(LEVELS))]
    for name in levels:
        goal = _sample_at(scene, rng, name)
        if goal is not None:
            return goal
    lo, hi = LEVELS[levels[0]]
    which = f"{levels[0]} goal ({lo} to {hi} steps)" if level is not None else "goal of any level"
    raise SpiralError(
        f"found no {which} for this scene of {len(scene.objects)} objects in {SAMPLE_TRIES} tries; use another scene"
    )


def _sample_at(scene: Scene, rng: np.random.Generator, level: str) -> Goal | None:
    lo, hi = LEVELS[level]
    families = list(FAMILY_WEIGHTS[level])
    weights = np.array([FAMILY_WEIGHTS[level][f] for f in families])
    for _ in range(SAMPLE_TRIES):
        family = families[int(rng.choice(len(families), p=weights / weights.sum()))]
        goal = propose(scene, rng, family, level)
        if goal is None or goal.holds(scene, scene):
            continue
        n = steps_needed(scene, goal)
        if n is not None and lo <= n <= hi:
            return goal
    return None


def propose(scene: Scene, rng: np.random.Generator, family: str, level: str, among: list[str] | None = None) -> Goal | None:
    """A random goal of the family that makes sense for the scene (None when the scene has none);
    goals that name objects pick them from `among` (default: all)."""
    names = scene.names() if among is None else among

    def pick(k: int) -> list[str]:
        return [names[i] for i in rng.permutation(len(names))[:k]]

    if family == STACK:
        return _propose_stack(scene, rng, level, names)
    if family == LINE_UP:
        k = {"short": 2, "medium": int(rng.integers(2, 4)), "long": int(rng.integers(3, MAX_LINE + 1))}[level]
        return Goal.line_up(*pick(min(k, len(names)))) if len(names) >= 2 else None
    if family == GATHER:
        return _propose_gather(scene, rng, level, pick, among is None)
    if family == SWAP:
        objs = [o for o in scene.objects if o.name in names]
        pairs = [(a, b) for i, a in enumerate(objs) for b in objs[i + 1 :] if _swappable(a, b)]
        if not pairs:
            return None
        a, b = pairs[int(rng.integers(len(pairs)))]
        return Goal.swap(a.name, b.name) if rng.random() < 0.5 else Goal.swap(b.name, a.name)
    if family == SORT:
        return Goal.sort(SORT_KEYS[int(rng.integers(len(SORT_KEYS)))])
    if family == CLEAR:
        occupied = [r for r in REGIONS if any(in_region(o, r, 0.0) for o in scene.objects)]
        return Goal.clear(occupied[int(rng.integers(len(occupied)))])
    if family == MOVE:  # an atomic instruction as a goal; not drawn by sample_goal (FAMILY_WEIGHTS)
        subject, *other = pick(2)
        if not other or rng.random() < 0.5:
            return Goal.move(subject, region=str(rng.choice(list(REGIONS))))
        return Goal.move(subject, relation=str(rng.choice(list(DIRECTIONS))), anchor=other[0])
    return _propose_compound(scene, rng, level)


def _propose_stack(scene: Scene, rng: np.random.Generator, level: str, names: list[str]) -> Goal | None:
    objs = [o for o in scene.objects if o.name in names]
    sizes = [s for s in SIZE_ORDER if any(o.size == s for o in objs)]
    if len(sizes) < 2:
        return None
    height = 3 if level != "short" and len(sizes) == 3 and rng.random() < 0.6 else 2
    chosen = sorted(rng.permutation(len(sizes))[:height])  # small to large: top to bottom
    tower = []
    for s in (sizes[i] for i in chosen):
        same = [o.name for o in objs if o.size == s]
        tower.append(same[int(rng.integers(len(same)))])
    return Goal.stack(*tower)


def _propose_gather(scene: Scene, rng: np.random.Generator, level: str, pick, by_trait: bool) -> Goal | None:
    # Many objects only fit in the big regions (a side or the middle column).
    big = [r for r in REGIONS if r.endswith("side") or r == "middle column"]
    regions = big if level == "long" or rng.random() < 0.5 else list(REGIONS)
    region = regions[int(rng.integers(len(regions)))]
    kind = ("shape", "group", "colours", "objects")[int(rng.integers(4 if by_trait else 2)) + (0 if by_trait else 2)]
    if kind == "shape":
        shapes = sorted({o.shape for o in scene.objects})
        return Goal.gather(region, shape=shapes[int(rng.integers(len(shapes)))])
    if kind == "group":
        group = (WARM_COLOURS, COOL_COLOURS)[int(rng.integers(2))]
        return Goal.gather(region, colours=group) if any(o.colour in group for o in scene.objects) else None
    k = {"short": 2, "medium": int(rng.integers(2, 4)), "long": int(rng.integers(3, 6))}[level]
    chosen = pick(k)
    if len(chosen) < 2:
        return None
    if kind == "colours":
        return Goal.gather(region, colours=tuple(scene.get(n).colour for n in chosen))
    return Goal.gather(region, objects=tuple(chosen))


# On a small table a long goal needs parts that move the same objects more than once.
SMALL_TABLE = 3
# How often a compound part picks only objects no earlier part named, by "the table is small".
REUSE_ODDS = {False: 0.8, True: 0.3}
# How often a long compound has three parts, by "the table is small".
THREE_PART_ODDS = {False: 0.4, True: 0.7}
# How often a compound starts with a sort or a clear (parts after it rarely undo it), by level.
GLOBAL_FIRST_ODDS = {"short": 0.25, "medium": 0.25, "long": 0.5}
# Families whose goals name their objects, so compound parts on different objects rarely clash.
NAMING_FAMILIES = (STACK, LINE_UP, GATHER, SWAP)


def _propose_compound(scene: Scene, rng: np.random.Generator, level: str) -> Goal | None:
    """Parts are proposed one by one against the scene the earlier parts leave behind, so each
    part has something left to do (a region to clear is one that is occupied by then)."""
    small = len(scene.objects) <= SMALL_TABLE
    count = 3 if level == "long" and rng.random() < THREE_PART_ODDS[small] else 2
    unused = scene.names()
    parts: list[Goal] = []
    current = scene
    for i in range(count):
        # Mostly parts about objects no earlier part named; now and then a sort or clear first.
        if i == 0 and rng.random() < GLOBAL_FIRST_ODDS[level]:
            families = [SORT, CLEAR]
        else:
            families = [f for f in NAMING_FAMILIES if i == 0 or f != SWAP]
            if parts and all(p.family == CLEAR for p in parts):
                families.append(CLEAR)  # clearing one region after another never undoes the first
        part_level = PART_LEVELS[level][int(rng.integers(len(PART_LEVELS[level])))]
        # Reusing named objects makes clashes likelier but is the only way on a small table.
        fresh = len(unused) >= 2 and rng.random() < REUSE_ODDS[small]
        among = unused if fresh else scene.names()
        part = propose(current, rng, families[int(rng.integers(len(families)))], part_level, among=among)
        if part is None or part in parts or part.holds(scene, current):
            return None
        parts.append(part)
        unused = [n for n in unused if n not in (part.selected(scene) if part.family == GATHER else part.objects)]
        if i < count - 1:
            moves = plan_moves(scene, Goal.then(*parts) if len(parts) > 1 else part)
            if isinstance(moves, Infeasible):
                return None
            current = scene
            for m in moves:
                current = apply(current, m.action, m.target)
    return Goal.then(*parts)


def _swappable(a, b) -> bool:
    deep = all(in_region(o, cell_of(o.x, o.y), -SWAP_CELL_MARGIN) for o in (a, b))
    return deep and cell_of(a.x, a.y) != cell_of(b.x, b.y)
