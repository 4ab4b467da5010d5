"""Atomic, object-centric actions of the tabletop world and their semantics.

An action moves one object (the subject): into a region of the table, next to another object
(left of / right of / above / below), or onto another object. Each has a precondition and a
postcondition, both predicates on a scene, so they can be checked on the simulator's state or on
a scene the oracle read back from pixels. Text lives in `grammar.py`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from spiral.errors import SpiralError
from spiral.worlds.tabletop.scene import COLOURS, GAP, SHAPES, SIZES, Scene, can_rest_on, footprint_free

THIRD = 1.0 / 3.0
# Regions are unions of cells of a 3x3 grid over the table; membership is by the object's centre.
# (x0, x1, y0, y1) in table units, y down.
REGIONS: dict[str, tuple[float, float, float, float]] = {
    "left side": (0.0, THIRD, 0.0, 1.0),
    "right side": (2 * THIRD, 1.0, 0.0, 1.0),
    "top side": (0.0, 1.0, 0.0, THIRD),
    "bottom side": (0.0, 1.0, 2 * THIRD, 1.0),
    "middle column": (THIRD, 2 * THIRD, 0.0, 1.0),
    "centre": (THIRD, 2 * THIRD, THIRD, 2 * THIRD),
    "top left corner": (0.0, THIRD, 0.0, THIRD),
    "top middle": (THIRD, 2 * THIRD, 0.0, THIRD),
    "top right corner": (2 * THIRD, 1.0, 0.0, THIRD),
    "middle left": (0.0, THIRD, THIRD, 2 * THIRD),
    "middle right": (2 * THIRD, 1.0, THIRD, 2 * THIRD),
    "bottom left corner": (0.0, THIRD, 2 * THIRD, 1.0),
    "bottom middle": (THIRD, 2 * THIRD, 2 * THIRD, 1.0),
    "bottom right corner": (2 * THIRD, 1.0, 2 * THIRD, 1.0),
}
# The nine cells of the grid, row by row; every point of the table is in exactly one.
CELLS = (
    "top left corner", "top middle", "top right corner",
    "middle left", "centre", "middle right",
    "bottom left corner", "bottom middle", "bottom right corner",
)  # fmt: skip

# Unit direction (dx, dy) from the reference to where the subject should end up.
DIRECTIONS: dict[str, tuple[float, float]] = {
    "left of": (-1.0, 0.0),
    "right of": (1.0, 0.0),
    "above": (0.0, -1.0),
    "below": (0.0, 1.0),
}
RELATIONS = ("in", *DIRECTIONS, "on")

# Ground-truth targets keep this far inside a region's border, so a slightly-off reading of the
# position from pixels still lands in the region.
REGION_MARGIN = 0.03
# "Next to": the gap between the two footprints is at most this (table units).
NEXT_TO_REACH = 0.15


@dataclass(frozen=True)
class Action:
    """Move `subject` so that `relation` holds with `anchor`.

    relation "in": anchor is a region name (see REGIONS); otherwise anchor names another object.
    """

    subject: str
    relation: str
    anchor: str

    def __post_init__(self) -> None:
        if self.relation not in RELATIONS:
            raise SpiralError(f"unknown relation {self.relation!r}; known relations: {', '.join(RELATIONS)}")
        if self.relation == "in" and self.anchor not in REGIONS:
            raise SpiralError(f"unknown region {self.anchor!r}; known regions: {', '.join(REGIONS)}")

    @property
    def reference(self) -> str | None:
        """The other object the action names, if any."""
        return None if self.relation == "in" else self.anchor

    def named_objects(self) -> tuple[str, ...]:
        return (self.subject,) if self.reference is None else (self.subject, self.reference)


def mirrored(action: Action) -> Action:
    """The same action in the left-right mirror image of the table (x -> 1 - x): left and right swap
    in the relation and in a region's name; object names hold no side."""
    swap = {"left": "right", "right": "left"}

    def flip(text: str) -> str:
        return " ".join(swap.get(word, word) for word in text.split())

    return Action(action.subject, flip(action.relation), flip(action.anchor) if action.relation == "in" else action.anchor)


# Every object the world knows, by name.
OBJECT_NAMES = tuple(f"{c} {s}" for c in COLOURS for s in SHAPES)


def actions_on(subject: str) -> list[Action]:
    """Every action that moves this subject: into each region, or left of / right of / above /
    below / onto each other object (whether a given scene allows it aside)."""
    others = [o for o in OBJECT_NAMES if o != subject]
    return [Action(subject, "in", r) for r in REGIONS] + [Action(subject, rel, o) for rel in (*DIRECTIONS, "on") for o in others]


@dataclass(frozen=True)
class Target:
    """Where the subject ends up: a table position, resting on `on` when that is set."""

    x: float
    y: float
    on: str | None = None


def in_region(x: float, y: float, region: str) -> bool:
    x0, x1, y0, y1 = REGIONS[region]
    return x0 <= x < x1 + (1e-9 if x1 == 1.0 else 0.0) and y0 <= y < y1 + (1e-9 if y1 == 1.0 else 0.0)


def cell_of(x: float, y: float) -> str:
    # Positions read from noisy pixels can fall just off the table; they belong to the edge cell.
    x, y = min(max(x, 0.0), 1.0), min(max(y, 0.0), 1.0)
    return next(c for c in CELLS if in_region(x, y, c))


def relation_holds(scene: Scene, subject: str, relation: str, anchor: str) -> bool:
    """The postcondition predicate: does `subject relation anchor` hold in this scene?"""
    if not scene.has(subject):
        return False
    a = scene.get(subject)
    if relation == "in":
        return in_region(a.x, a.y, anchor)
    if not scene.has(anchor):
        return False
    b = scene.get(anchor)
    if relation == "on":
        return a.on == b.name
    dx, dy = DIRECTIONS[relation]
    along = (a.x - b.x) * dx + (a.y - b.y) * dy
    across = abs((a.x - b.x) * dy - (a.y - b.y) * dx)
    return (
        along >= 0.5 * (a.half + b.half)
        and along <= a.radius + b.radius + NEXT_TO_REACH
        and across <= 0.5 * along
        and a.on is None
    )


def postcondition_holds(scene: Scene, action: Action) -> bool:
    return relation_holds(scene, action.subject, action.relation, action.anchor)


def precondition_errors(scene: Scene, action: Action) -> list[str]:
    """Why the action cannot start in this scene (empty list: it can)."""
    errors = [f"there is no {n}" for n in action.named_objects() if not scene.has(n)]
    if errors:
        return errors
    if action.reference == action.subject:
        return [f"the {action.subject} cannot be placed relative to itself"]
    for above in scene.supported_by(action.subject):
        errors.append(f"the {above.name} is resting on the {action.subject}")
    if action.relation == "on":
        subject, base = scene.get(action.subject), scene.get(action.anchor)
        if not can_rest_on(subject, base):
            errors.append(f"the {subject.name} is not smaller than the {base.name}, so it cannot rest on it")
        errors += [f"the {o.name} is already on the {base.name}" for o in scene.supported_by(base.name) if o.name != subject.name]
    return errors


def describe_precondition(action: Action) -> str:
    parts = [f"the {n} is present" for n in action.named_objects()]
    parts.append(f"nothing rests on the {action.subject}")
    if action.relation == "on":
        parts += [f"nothing rests on the {action.anchor}", f"the {action.subject} is smaller than the {action.anchor}"]
    return "; ".join(parts)


def describe_postcondition(action: Action) -> str:
    if action.relation == "in":
        return f"the {action.subject} is in the {action.anchor}"
    if action.relation == "on":
        return f"the {action.subject} rests on the {action.anchor}"
    phrase = {"left of": "to the left of", "right of": "to the right of"}.get(action.relation, action.relation)
    return f"the {action.subject} is {phrase} the {action.anchor}, next to it"


def sample_target(scene: Scene, action: Action, rng: np.random.Generator, tries: int = 200) -> Target | None:
    """A concrete place for the subject that satisfies the postcondition, or None when there is no
    room. Assumes the precondition holds."""
    subject = scene.get(action.subject)
    if action.relation == "on":
        base = scene.get(action.anchor)
        return Target(base.x, base.y, on=base.name)
    for _ in range(tries):
        if action.relation == "in":
            x0, x1, y0, y1 = REGIONS[action.anchor]
            lo = subject.half + GAP
            xr = (max(x0 + REGION_MARGIN, lo), min(x1 - REGION_MARGIN, 1 - lo))
            yr = (max(y0 + REGION_MARGIN, lo), min(y1 - REGION_MARGIN, 1 - lo))
            if xr[0] >= xr[1] or yr[0] >= yr[1]:
                return None
            x, y = rng.uniform(*xr), rng.uniform(*yr)
        else:
            ref = scene.get(action.anchor)
            dx, dy = DIRECTIONS[action.relation]
            dist = subject.radius + ref.radius + GAP + rng.uniform(0.0, 0.05)
            jitter = rng.uniform(-0.02, 0.02)
            x, y = ref.x + dx * dist - dy * jitter, ref.y + dy * dist + dx * jitter
        x, y = round(float(x), 4), round(float(y), 4)
        if footprint_free(scene, subject.shape, subject.size, x, y, ignore=(subject.name,)):
            target = Target(x, y)
            if relation_holds(scene.moved(subject.name, x, y, None), subject.name, action.relation, action.anchor):
                return target
    return None


def random_action(scene: Scene, rng: np.random.Generator, relation: str | None = None) -> Action:
    """A random action on a random object of the scene; it may be infeasible or already done.
    Draws subject, relation (unless given) and anchor from `rng`, in that order."""
    subject = scene.objects[int(rng.integers(len(scene.objects)))]
    relation = relation or str(rng.choice(RELATIONS))
    others = [o.name for o in scene.objects if o.name != subject.name]
    anchor = str(rng.choice(list(REGIONS))) if relation == "in" else str(rng.choice(others))
    return Action(subject.name, relation, anchor)


def worth_doing(scene: Scene, action: Action) -> bool:
    """The action can start here and is not already done."""
    return not precondition_errors(scene, action) and not postcondition_holds(scene, action)


def apply(scene: Scene, action: Action, target: Target) -> Scene:
    return scene.moved(action.subject, target.x, target.y, target.on)


def smoothstep(t: float) -> float:
    """Ease in and out: zero velocity at both ends, like a hand picking up and setting down."""
    return t * t * (3.0 - 2.0 * t)


def trajectory(scene: Scene, action: Action, target: Target, num_frames: int) -> list[Scene]:
    """The scene at each frame of a smooth ground-truth motion; frame 0 is the start state and the
    last frame is the end state. The subject is lifted off its support while it moves."""
    if num_frames < 2:
        raise SpiralError(f"a clip needs at least 2 frames, got {num_frames}")
    start = scene.get(action.subject)
    frames = []
    for k in range(num_frames):
        s = smoothstep(k / (num_frames - 1))
        x = start.x + s * (target.x - start.x)
        y = start.y + s * (target.y - start.y)
        on = start.on if k == 0 else (target.on if k == num_frames - 1 else None)
        frames.append(scene.moved(action.subject, x, y, on))
    return frames


def distance_moved(before: Scene, after: Scene, name: str) -> float:
    a, b = before.get(name), after.get(name)
    return math.dist(a.pos, b.pos)


__all__ = [
    "Action", "Target", "REGIONS", "CELLS", "DIRECTIONS", "RELATIONS", "SIZES",
    "random_action", "worth_doing", "in_region", "cell_of", "relation_holds", "postcondition_holds", "precondition_errors",
    "describe_precondition", "describe_postcondition", "sample_target", "apply", "trajectory",
    "smoothstep", "distance_moved",
]  # fmt: skip
