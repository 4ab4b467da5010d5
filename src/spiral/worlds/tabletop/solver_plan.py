"""Planning machinery for the goal solver: a builder that records atomic moves on a scene, and the
moves every family needs (park an object out of the way, free an object of what rests on it, put an
object in a region even when the region is crowded).

Planning failures raise `NoPlan`, whose message is the reason a person reads; `solver.solve` turns
it into an `Infeasible` result, so nothing escapes to the caller.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np

from spiral.worlds.tabletop.actions import (
    CELLS,
    DIRECTIONS,
    REGION_MARGIN,
    REGIONS,
    Action,
    Target,
    apply,
    precondition_errors,
    relation_holds,
)
from spiral.worlds.tabletop.goal_spec import HOLD_SLACK, MAX_STEPS, Goal, in_region
from spiral.worlds.tabletop.scene import GAP, Scene, TableObject, can_rest_on, validity_errors

# Free spots tried for one move before giving up on a filter (e.g. "outside the region being cleared").
SPOT_TRIES = 8
# Spacing of the candidate grid used to pack a crowded region once random sampling found no room.
GRID_STEP = 0.02

SceneTest = Callable[[Scene], bool]


class NoPlan(Exception):
    """A strategy cannot work; the message says why, for a person."""


@dataclass(frozen=True)
class Move:
    action: Action
    target: Target
    why: str
    part: int = 0  # which part of a compound goal the move serves


def cell_centre(cell: str) -> tuple[float, float]:
    x0, x1, y0, y1 = REGIONS[cell]
    return ((x0 + x1) / 2, (y0 + y1) / 2)


def cells_in(region: str) -> list[str]:
    """The grid cells a region is made of."""
    return [c for c in CELLS if in_region(TableObject("", "", "", *cell_centre(c)), region, 0.0)]


def strictly_in(o: TableObject, region: str) -> bool:
    """In the region with a margin, so a slightly-off reading still counts."""
    return in_region(o, region, -HOLD_SLACK)


def touches(o: TableObject, region: str) -> bool:
    """In the region or so close to it that a reading could put it there."""
    return in_region(o, region, HOLD_SLACK)


class Planner:
    """Records moves on a scene. `keep` lists goals achieved earlier (by the earlier parts of a
    compound goal) that moves should spare where they can; `part` tags moves with the part they serve."""

    def __init__(self, initial: Scene, rng: np.random.Generator, keep: tuple[Goal, ...] = (), current: Scene | None = None):
        # `initial` is what goals are judged against; moves start from `current` (a replan's scene).
        self.initial, self.scene, self.rng, self.keep = initial, current or initial, rng, keep
        self.part = 0
        self.moves: list[Move] = []

    def fork(self) -> Planner:
        """A copy to try one alternative on; `adopt` takes it over when it wins."""
        other = Planner(self.initial, self.rng, self.keep)
        other.scene, other.moves, other.part = self.scene, list(self.moves), self.part
        return other

    def adopt(self, other: Planner) -> None:
        self.scene, self.moves = other.scene, list(other.moves)

    def get(self, name: str) -> TableObject:
        return self.scene.get(name)

    def do(self, action: Action, target: Target, why: str) -> None:
        errors = precondition_errors(self.scene, action)
        if errors:
            raise NoPlan("; ".join(errors))
        if len(self.moves) >= MAX_STEPS:
            raise NoPlan(f"it would take more than {MAX_STEPS} steps")
        after = apply(self.scene, action, target)
        problems = validity_errors(after)
        if problems:  # pragma: no cover - targets come from sample_target or a free-footprint check
            raise NoPlan("; ".join(problems))
        self.moves.append(Move(action, target, why, self.part))
        self.scene = after

    def keeps(self, scene: Scene) -> bool:
        return all(g.holds(self.initial, scene, strict=True) for g in self.keep)

    def try_move(self, action: Action, why: str, allowed: SceneTest | None = None) -> bool:
        """Do the action at a random free spot that passes `allowed`, preferring one that spares the
        goals in `keep`; False when there is no room. Spots come from a grid over where
        `sample_target` looks (vectorised: planning tries many moves that turn out to have no room)."""
        if precondition_errors(self.scene, action):
            return False
        spots = free_spots(self.scene, action)
        tests = [lambda s: (allowed is None or allowed(s)) and self.keeps(s)] if self.keep else []
        tests.append(allowed or (lambda s: True))
        for test in tests:
            for i in self.rng.permutation(len(spots))[:SPOT_TRIES]:
                x, y = (float(v) for v in spots[i])
                target = Target(x, y, on=action.anchor if action.relation == "on" else None)
                after = apply(self.scene, action, target)
                if relation_holds(after, action.subject, action.relation, action.anchor) and test(after):
                    self.do(action, target, why)
                    return True
        return False

    def park(self, name: str, why: str, allowed: SceneTest | None = None, avoid_cells: tuple[str, ...] = ()) -> None:
        """Move an object out of the way: a short hop off its support if it is stacked, else to the
        nearest cell with room."""
        o = self.get(name)
        options = []
        if o.on is not None:
            relations = list(DIRECTIONS)
            options += [Action(name, relations[i], o.on) for i in self.rng.permutation(len(relations))]
        cells = sorted(CELLS, key=lambda c: (math.dist(cell_centre(c), o.pos), CELLS.index(c)))
        here = [c for c in CELLS if o.on is None and in_region(o, c, 0.0)]
        options += [Action(name, "in", c) for c in cells if c not in avoid_cells and c not in here]

        def fits(scene: Scene) -> bool:
            spot = scene.get(name)
            return (allowed is None or allowed(scene)) and not any(touches(spot, c) for c in avoid_cells)

        # Moves made only to get out of the way should spare goals reached earlier; when none can,
        # the compound check names the part that gets undone.
        for test in ((lambda s: fits(s) and self.keeps(s)), fits) if self.keep else (fits,):
            for action in options:
                if self.try_move(action, why, test):
                    return
        raise NoPlan(f"there is no room to move the {name} out of the way")

    def free(self, name: str, purpose: str, allowed: SceneTest | None = None, avoid_cells: tuple[str, ...] = ()) -> None:
        """Park whatever rests on `name`, topmost first."""
        while not self.scene.is_clear(name):
            top = self.scene.supported_by(name)[0]
            while not self.scene.is_clear(top.name):
                top = self.scene.supported_by(top.name)[0]
            why = f"the {top.name} is stacked on the {name}, which must be clear {purpose}"
            self.park(top.name, why, allowed, avoid_cells)

    def place_in(
        self, name: str, region: str, why: str, stack_on: Callable[[TableObject], bool] | None = None, pack: bool = False
    ) -> bool:
        """Move the object into the region: at a random free spot, else at the first free spot of a
        grid (tighter packing), else on top of a larger clear object already in the region (its
        centre is then in the region too). False when none of these has room."""
        action = Action(name, "in", region)
        if not pack and self.try_move(action, why):
            return True
        target = grid_target(self.scene, self.get(name), region, self.keeps if self.keep else None)
        if target is None and self.keep:
            target = grid_target(self.scene, self.get(name), region)
        if target is not None:
            self.do(action, target, why)
            return True
        if stack_on is None:
            return False
        mover = self.get(name)
        bases = [
            o
            for o in self.scene.objects
            if o.name != name and self.scene.is_clear(o.name) and can_rest_on(mover, o) and strictly_in(o, region) and stack_on(o)
        ]
        if not bases:
            return False
        base = bases[0]
        self.do(
            Action(name, "on", base.name),
            Target(base.x, base.y, on=base.name),
            f"{why}; the {region} is crowded, so it rests on the {base.name}, which stands there",
        )
        return True

    def evict(self, region: str, protected: set[str], why: str, avoid_cells: tuple[str, ...] = ()) -> bool:
        """Park one standing object that is not protected out of the region, together with what
        rests on it (clear ones first, then the largest, which frees the most room). False when
        none can go."""
        blockers = [o for o in self.scene.objects if o.on is None and o.name not in protected and touches(o, region)]
        avoid = (*avoid_cells, *cells_in(region))
        for b in sorted(blockers, key=lambda o: (not self.scene.is_clear(o.name), -o.radius)):
            trial = self.fork()
            try:
                trial.free(b.name, "before it can make room", None, avoid)
                trial.park(b.name, why.format(name=b.name), lambda s, n=b.name: not touches(s.get(n), region), avoid)
            except NoPlan:
                continue
            self.adopt(trial)
            return True
        return False


def free_spots(scene: Scene, action: Action) -> np.ndarray:
    """Candidate landing spots (k x 2) for a move "in" a region or next to an object that are inside
    the table and clear of every other standing object, on a grid over where `sample_target` looks."""
    o = scene.get(action.subject)
    if action.relation == "on":
        return np.array([[scene.get(action.anchor).x, scene.get(action.anchor).y]])
    if action.relation == "in":
        spots = _region_grid(action.anchor, o.half)
    else:
        ref = scene.get(action.anchor)
        spots = (_beside_offsets(action.relation, round(o.radius + ref.radius, 6)) + (ref.x, ref.y)).round(4)
        lo = o.half + GAP
        spots = spots[((spots >= lo) & (spots <= 1 - lo)).all(axis=1)]
    others = [(b.x, b.y, o.radius + b.radius + GAP) for b in scene.objects if b.on is None and b.name != o.name]
    if not others or not len(spots):
        return spots
    ox, oy, reach = np.array(others).T
    clear = np.hypot(spots[:, :1] - ox, spots[:, 1:] - oy) >= reach + 1e-9
    return spots[clear.all(axis=1)]


@cache
def _region_grid(region: str, half: float) -> np.ndarray:
    """Grid points of the region where an object of this half-size stands inside it with the
    region margin and inside the table; row by row from the top, so scanning packs a corner first."""
    x0, x1, y0, y1 = REGIONS[region]
    lo = half + GAP
    xs = np.arange(max(x0 + REGION_MARGIN, lo), min(x1 - REGION_MARGIN, 1 - lo) + 1e-9, GRID_STEP)
    ys = np.arange(max(y0 + REGION_MARGIN, lo), min(y1 - REGION_MARGIN, 1 - lo) + 1e-9, GRID_STEP)
    gx, gy = np.meshgrid(xs, ys)
    return _frozen(np.stack([gx.ravel(), gy.ravel()], axis=1).round(4))


@cache
def _beside_offsets(relation: str, radii: float) -> np.ndarray:
    """Offsets from the reference object that `sample_target` draws from for a direction."""
    dx, dy = DIRECTIONS[relation]
    along, across = np.meshgrid(radii + GAP + np.linspace(0.0, 0.05, 6), np.linspace(-0.02, 0.02, 5))
    return _frozen(np.stack([(dx * along - dy * across).ravel(), (dy * along + dx * across).ravel()], axis=1))


def _frozen(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)  # cached and shared between calls
    return a


def grid_target(scene: Scene, o: TableObject, region: str, test: SceneTest | None = None) -> Target | None:
    """The first free spot (passing `test`) on a grid over the region, scanning from its top left
    corner, which packs objects tighter than random spots do."""
    for x, y in free_spots(scene, Action(o.name, "in", region)):
        target = Target(float(x), float(y))
        if test is None or test(apply(scene, Action(o.name, "in", region), target)):
            return target
    return None
