"""The high-level goal record of the tabletop world and what it means for a goal to hold.

A goal is judged on two scenes, the episode's start and its end, using only what an oracle can read
back from pixels (positions, colours, shapes, sizes, which object rests on which). Every threshold
has a slack: `holds` is lenient by `HOLD_SLACK` (a reading a little off still counts), and the
solver plans against the strict form (`strict=True`), so a state it produces still satisfies the
lenient form after the oracle's reading error.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from itertools import pairwise

from spiral.errors import SpiralError
from spiral.worlds.tabletop.actions import DIRECTIONS, REGIONS, cell_of, relation_holds
from spiral.worlds.tabletop.scene import COLOURS, COOL_COLOURS, SHAPES, SIZE_ORDER, WARM_COLOURS, Scene, TableObject

STACK, LINE_UP, GATHER, SWAP, SORT, CLEAR, COMPOUND = "stack", "line up", "gather", "swap", "sort", "clear", "compound"
MOVE = "move"  # one object to a region or next to another: an atomic instruction given as a goal
BASIC_FAMILIES = (STACK, LINE_UP, GATHER, SWAP, SORT, CLEAR)
GOAL_FAMILIES = (*BASIC_FAMILIES, MOVE, COMPOUND)

# Task levels by the number of atomic steps the solver needs.
LEVELS: dict[str, tuple[int, int]] = {"short": (1, 2), "medium": (3, 4), "long": (5, 8)}
MAX_STEPS = max(hi for _, hi in LEVELS.values())

SORT_KEYS = ("colour", "shape")
# Where each class of object belongs when the table is sorted.
SORT_REGIONS: dict[str, dict[str, str]] = {
    "colour": {**{c: "left side" for c in WARM_COLOURS}, **{c: "right side" for c in COOL_COLOURS}},
    "shape": {"square": "left side", "circle": "middle column", "triangle": "right side"},
}

MAX_TOWER = len(SIZE_ORDER)  # sizes must strictly decrease upward
MAX_LINE = 4  # more large objects than this cannot stand in one row on the table
MAX_PARTS = 3

# How far a read-back position may be off and still count (table units); about one pixel at 64 px.
HOLD_SLACK = 0.02
# Consecutive objects of a line differ in y by at most this ("roughly one row")...
LINE_ROW_TOLERANCE = 0.05
# ...and in x by at least this, so the order survives a slightly-off reading.
LINE_MIN_DX = 0.05
# Centres this close count as stacked when the scene's `on` field was not read back.
STACK_CENTRE_TOLERANCE = 0.03


@dataclass(frozen=True)
class Goal:
    """A high-level goal. Which fields matter depends on the family; the others stay empty.

    stack:   objects, top to bottom ("stack A on B on C")
    line up: objects, left to right
    gather:  region, and exactly one selector: shape (every object of that shape), colours (every
             object of those colours) or objects (a listed set)
    swap:    objects, the two to swap
    sort:    key, "colour" or "shape"
    clear:   region
    move:    objects, one object with a region ("move the red square to the top left corner"), or the
             object and another with a relation, left of / right of / above / below ("move the red
             square to the left of the blue circle"); "on" is a stack of two
    compound: parts, all of which must hold at the end; a swap may only be the first part, because
             it refers to the cells the objects started in
    """

    family: str
    objects: tuple[str, ...] = ()
    shape: str | None = None
    colours: tuple[str, ...] = ()
    region: str | None = None
    key: str | None = None
    parts: tuple[Goal, ...] = ()
    relation: str | None = None

    def __post_init__(self) -> None:
        # Colours are a set; a canonical order makes equal goals compare equal.
        order = list(COLOURS)
        canonical = sorted(set(self.colours), key=lambda c: (order.index(c) if c in order else len(order), c))
        object.__setattr__(self, "colours", tuple(canonical))
        problem = _problem(self)
        if problem:
            raise SpiralError(f"invalid {self.family} goal: {problem}")

    # Constructors that read like the goal text.
    @staticmethod
    def stack(*objects: str) -> Goal:
        return Goal(STACK, objects=objects)

    @staticmethod
    def line_up(*objects: str) -> Goal:
        return Goal(LINE_UP, objects=objects)

    @staticmethod
    def gather(region: str, *, shape: str | None = None, colours: tuple[str, ...] = (), objects: tuple[str, ...] = ()) -> Goal:
        return Goal(GATHER, region=region, shape=shape, colours=colours, objects=objects)

    @staticmethod
    def swap(a: str, b: str) -> Goal:
        return Goal(SWAP, objects=(a, b))

    @staticmethod
    def sort(key: str) -> Goal:
        return Goal(SORT, key=key)

    @staticmethod
    def clear(region: str) -> Goal:
        return Goal(CLEAR, region=region)

    @staticmethod
    def move(subject: str, *, region: str | None = None, relation: str | None = None, anchor: str | None = None) -> Goal:
        return Goal(MOVE, objects=(subject,) if anchor is None else (subject, anchor), region=region, relation=relation)

    @staticmethod
    def then(*parts: Goal) -> Goal:
        flat = tuple(q for p in parts for q in (p.parts if p.family == COMPOUND else (p,)))
        return Goal(COMPOUND, parts=flat)

    @property
    def selector(self) -> str:
        """Which gather selector is used: "shape", "colours" or "objects"."""
        return "shape" if self.shape else "colours" if self.colours else "objects"

    def selected(self, scene: Scene) -> tuple[str, ...]:
        """The names a gather goal is about, taken from `scene` (the episode's start)."""
        if self.shape:
            return tuple(o.name for o in scene.objects if o.shape == self.shape)
        if self.colours:
            return tuple(o.name for o in scene.objects if o.colour in self.colours)
        return self.objects

    def holds(self, initial: Scene, final: Scene, *, strict: bool = False) -> bool:
        """Is the goal achieved in `final`, for an episode that started in `initial`?

        Works on any scene, including one read back from pixels. `strict` turns the tolerances the
        other way (what the solver aims for)."""
        slack = -HOLD_SLACK if strict else HOLD_SLACK
        if self.family == COMPOUND:
            return all(p.holds(initial, final, strict=strict) for p in self.parts)
        return _HOLDS[self.family](self, initial, final, slack)

    def to_dict(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if v not in (None, ())}
        d["parts"] = [p.to_dict() for p in self.parts]
        return d

    @staticmethod
    def from_dict(d: dict) -> Goal:
        return Goal(
            family=d["family"],
            objects=tuple(d.get("objects", ())),
            shape=d.get("shape"),
            colours=tuple(d.get("colours", ())),
            region=d.get("region"),
            key=d.get("key"),
            parts=tuple(Goal.from_dict(p) for p in d.get("parts", ())),
            relation=d.get("relation"),
        )


def level_of(num_steps: int) -> str:
    """The task level of a plan with this many steps; an already-achieved goal (0 steps) is short."""
    for name, (_, hi) in LEVELS.items():
        if num_steps <= hi:
            return name
    raise SpiralError(f"a plan of {num_steps} steps is longer than the longest level ({MAX_STEPS} steps)")


def in_region(o: TableObject, region: str, slack: float) -> bool:
    """Is the object's centre in the region grown by `slack` (shrunk when negative)?"""
    x0, x1, y0, y1 = REGIONS[region]
    return x0 - slack <= o.x <= x1 + slack and y0 - slack <= o.y <= y1 + slack


def is_stacked_on(top: TableObject, base: TableObject, slack: float) -> bool:
    if top.on == base.name:
        return True
    # A read-back scene may miss the `on` link; only a smaller object can sit over a larger one.
    lenient = slack > 0 and SIZE_ORDER.index(top.size) < SIZE_ORDER.index(base.size)
    return lenient and math.dist(top.pos, base.pos) <= STACK_CENTRE_TOLERANCE


def line_pair_ok(left: TableObject, right: TableObject, slack: float) -> bool:
    """Do two consecutive objects of a line stand in order, in one row, on the table?"""
    return (
        left.on is None
        and right.on is None
        and right.x - left.x >= LINE_MIN_DX - slack
        and abs(right.y - left.y) <= LINE_ROW_TOLERANCE + slack
    )


def _all_there(scene: Scene, names: tuple[str, ...] | list[str]) -> bool:
    return bool(names) and all(scene.has(n) for n in names)


def _holds_stack(g: Goal, initial: Scene, final: Scene, slack: float) -> bool:
    if not _all_there(final, g.objects):
        return False
    return all(is_stacked_on(final.get(t), final.get(b), slack) for t, b in pairwise(g.objects))


def _holds_line_up(g: Goal, initial: Scene, final: Scene, slack: float) -> bool:
    if not _all_there(final, g.objects):
        return False
    row = [final.get(n) for n in g.objects]
    return all(line_pair_ok(a, b, slack) for a, b in pairwise(row))


def _holds_gather(g: Goal, initial: Scene, final: Scene, slack: float) -> bool:
    names = g.selected(initial)
    assert g.region is not None
    return _all_there(final, names) and all(in_region(final.get(n), g.region, slack) for n in names)


def _holds_swap(g: Goal, initial: Scene, final: Scene, slack: float) -> bool:
    a, b = g.objects
    if not (_all_there(initial, g.objects) and _all_there(final, g.objects)):
        return False
    cell_a, cell_b = cell_of(*initial.get(a).pos), cell_of(*initial.get(b).pos)
    # Swapping two objects of one cell would ask for nothing; such a goal never holds.
    return cell_a != cell_b and in_region(final.get(a), cell_b, slack) and in_region(final.get(b), cell_a, slack)


def _holds_sort(g: Goal, initial: Scene, final: Scene, slack: float) -> bool:
    assert g.key is not None
    if not _all_there(final, initial.names()):
        return False
    return all(in_region(final.get(o.name), sort_region(o, g.key), slack) for o in initial.objects)


def _holds_clear(g: Goal, initial: Scene, final: Scene, slack: float) -> bool:
    assert g.region is not None
    # Objects must still be on the table: taking them away is not clearing.
    if initial.objects and not _all_there(final, initial.names()):
        return False
    return not any(in_region(o, g.region, -slack) for o in final.objects)


def _holds_move(g: Goal, initial: Scene, final: Scene, slack: float) -> bool:
    if not _all_there(final, g.objects):
        return False
    if g.region is not None:
        return in_region(final.get(g.objects[0]), g.region, slack)
    assert g.relation is not None
    return relation_holds(final, g.objects[0], g.relation, g.objects[1])


_HOLDS = {
    MOVE: _holds_move,
    STACK: _holds_stack,
    LINE_UP: _holds_line_up,
    GATHER: _holds_gather,
    SWAP: _holds_swap,
    SORT: _holds_sort,
    CLEAR: _holds_clear,
}


def sort_region(o: TableObject, key: str) -> str:
    return SORT_REGIONS[key][o.colour if key == "colour" else o.shape]


def _name_problem(name: str) -> str | None:
    parts = name.split(" ")
    if len(parts) != 2 or parts[0] not in COLOURS or parts[1] not in SHAPES:
        return f"{name!r} is not an object name such as 'red square'"
    return None


def _problem(g: Goal) -> str | None:
    """Why the record is not a valid goal (None when it is)."""
    if g.family not in GOAL_FAMILIES:
        return f"unknown family; known families: {', '.join(GOAL_FAMILIES)}"
    used = {
        STACK: {"objects"},
        LINE_UP: {"objects"},
        GATHER: {"region", "shape", "colours", "objects"},
        SWAP: {"objects"},
        SORT: {"key"},
        CLEAR: {"region"},
        MOVE: {"objects", "region", "relation"},
        COMPOUND: {"parts"},
    }[g.family]
    extra = [
        f
        for f in ("objects", "shape", "colours", "region", "key", "parts", "relation")
        if f not in used and getattr(g, f) not in (None, ())
    ]
    if extra:
        return f"fields {', '.join(extra)} do not apply"
    for name in g.objects:
        if _name_problem(name):
            return _name_problem(name)
    if len(set(g.objects)) != len(g.objects):
        return "an object is named twice"
    if g.region is not None and g.region not in REGIONS:
        return f"unknown region {g.region!r}"
    counts = {STACK: (2, MAX_TOWER), LINE_UP: (2, MAX_LINE), SWAP: (2, 2)}
    if g.family in counts:
        lo, hi = counts[g.family]
        if not lo <= len(g.objects) <= hi:
            return f"it names {len(g.objects)} objects; it needs {lo} to {hi}" if lo != hi else f"it needs exactly {lo} objects"
    if g.family == GATHER:
        return _gather_problem(g)
    if g.family == MOVE:
        return _move_problem(g)
    if g.family == SORT and g.key not in SORT_KEYS:
        return f"sort key must be one of {', '.join(SORT_KEYS)}"
    if g.family == CLEAR and g.region is None:
        return "it needs a region"
    if g.family == COMPOUND:
        return _compound_problem(g)
    return None


def _gather_problem(g: Goal) -> str | None:
    if g.region is None:
        return "it needs a region"
    if sum(bool(s) for s in (g.shape, g.colours, g.objects)) != 1:
        return "it needs exactly one selector: a shape, a set of colours or a list of objects"
    if g.shape is not None and g.shape not in SHAPES:
        return f"unknown shape {g.shape!r}"
    if any(c not in COLOURS for c in g.colours):
        return f"unknown colour in {', '.join(g.colours)}"
    if g.colours and len(g.colours) < 2:
        return "a colour set names at least two colours (one colour names a single object: list it instead)"
    if g.objects and len(g.objects) < 2:
        return "a listed set names at least two objects (to move one object, use an action)"
    return None


def _move_problem(g: Goal) -> str | None:
    if len(g.objects) == 1:
        return None if g.region is not None and g.relation is None else "moving one object to a place needs a region"
    if len(g.objects) == 2 and g.region is None:
        if g.relation in DIRECTIONS:
            return None
        return f"relation must be one of {', '.join(DIRECTIONS)} (to put an object on another, stack them)"
    return "it moves one object, to a region or next to one other object"


def _compound_problem(g: Goal) -> str | None:
    if not 2 <= len(g.parts) <= MAX_PARTS:
        return f"it has {len(g.parts)} parts; it needs 2 to {MAX_PARTS}"
    if any(p.family == COMPOUND for p in g.parts):
        return "parts cannot be compound goals themselves"
    if any(p.family == SWAP for p in g.parts[1:]):
        return "a swap can only be the first part, because it refers to where the objects started"
    if len(set(g.parts)) != len(g.parts):
        return "a part is repeated"
    return None
