"""Referring expressions for free-form requests (`freeform.py`): phrases that pick out one object of
a scene ("the red one", "the big ball", "the piece in the top left corner", "the one on the blue
square"), and descriptions that fit none of them (`missing_ref`) or several (`ambiguous_ref`).

A reference is only ever said where it fits exactly one object. Descriptions by place keep a margin
from region borders (`PLACE_MARGIN`) and sizes are the scene's three classes, so whether a
description fits is clear at a glance, not a matter of a pixel. `Wording` carries what a request
has used so far: its split, the ids of the lexicon entries drawn, and what each object was called (as text and as a reference form, `references.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from string import Formatter
from typing import NamedTuple, TypeVar

import numpy as np

from spiral.worlds.tabletop.actions import CELLS, REGIONS
from spiral.worlds.tabletop.freeform_words import LEXICON
from spiral.worlds.tabletop.goal_spec import in_region
from spiral.worlds.tabletop.references import EXTREME_FORMS, PLACE_MARGIN, SUPERLATIVE_FORMS, colour_group
from spiral.worlds.tabletop.scene import COLOURS, SHAPES, SIZE_ORDER, Scene, TableObject

# How often the canonical word is used where the lexicon offers others.
CANONICAL_SHARE = 0.4
# The leftmost (etc.) object must be this much further out than the next one.
EXTREME_MARGIN = 0.08
EXTREMES = {"left": (0, 1.0), "right": (0, -1.0), "top": (1, 1.0), "bottom": (1, -1.0)}  # axis, sign: smallest wins

T = TypeVar("T")


# --- Wording --------------------------------------------------------------------------------------


@dataclass
class Wording:
    """The choices made while wording one request: the split's lexicon, the ids used, and what
    each object has been called (one request calls an object one way)."""

    scene: Scene
    rng: np.random.Generator
    split: str
    stable: bool = False  # only references that hold whatever moved (in compounds)
    used: list[str] = field(default_factory=list)
    refs: dict[str, str] = field(default_factory=dict)
    forms: dict[str, str] = field(default_factory=dict)  # what each object was called, as a reference form
    placed: set[str] = field(default_factory=set)  # objects called by where they stand or what they rest on

    def chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    def choose(self, options: Sequence[T]) -> T:
        return options[int(self.rng.integers(len(options)))]

    def pick(self, table: str, keep: Callable[[str], bool] = lambda e: True) -> str | None:
        """An entry of the split's table that `keep` accepts (None if none), recorded by id."""
        entries = [e for e in LEXICON[table][self.split] if keep(e)]
        if not entries:
            return None
        entry = self.choose(entries)
        self.used.append(f"{table}:{entry}")
        return entry

    def ids(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.used))


def fill(frame: str, **slots: str | Callable[[], str]) -> str:
    """The frame with its slots filled; a slot given as a function is called only if the frame uses it
    (so only the words that appear are drawn and recorded)."""
    names = {f for _, f, _, _ in Formatter().parse(frame) if f}
    return frame.format(**{k: v() if callable(v) else v for k, v in slots.items() if k in names})


def from_table(w: Wording, table: str, singular: bool = False, **slots: str | Callable[[], str]) -> str | None:
    """A frame of the table, filled. `singular`: for a bad reference, which must not read as a set
    ("whatever is ...") nor assert it fits one object ("the only ...")."""
    frame = w.pick(table, lambda e: not (singular and e.startswith(("whatever", "the only"))))
    return None if frame is None else fill(frame, **slots)


def noun(w: Wording, plural: bool = False) -> str:
    entry = w.pick("noun")
    assert entry is not None
    return entry.split("/")[plural]


def shape_word(w: Wording, shape: str, plural: bool = False) -> str:
    entry = None if w.chance(CANONICAL_SHARE) else w.pick(f"shape.{shape}")
    return (entry or f"{shape}/{shape}s").split("/")[plural]


def region_phrase(w: Wording, region: str) -> tuple[str, str]:
    """The region as a noun phrase and with its preposition: ("the far left", "on the far left")."""
    entry = None if w.chance(CANONICAL_SHARE) else w.pick(f"region.{region}")
    pp = entry or f"in the {region}"
    return pp.split(" ", 1)[1], pp


def sized(w: Wording, size: str, head: str) -> str:
    word = w.pick(f"size.{size}")
    return f"the {word} {head}"


def place_phrase(w: Wording, table: str, region: str, singular: bool = False) -> str | None:
    return from_table(w, table, singular, n=lambda: noun(w), ns=lambda: noun(w, True), at_r=lambda: region_phrase(w, region)[1])


def location_set(w: Wording, region: str) -> str:
    """The objects that stand in the region now, as a set ("everything on the left")."""
    single = len(members(w.scene, region)) == 1
    frame = w.pick("location set", lambda e: not (single and "{ns}" in e))  # not "all the pieces" for one
    assert frame is not None
    return fill(frame, ns=lambda: noun(w, True), at_r=lambda: region_phrase(w, region)[1])


def _cell(o: TableObject) -> str | None:
    """The cell the object stands clearly inside, if any."""
    return next((c for c in CELLS if in_region(o, c, -PLACE_MARGIN)), None)


def _shape_sizes(scene: Scene, shape: str) -> set[str]:
    return {o.size for o in scene.objects if o.shape == shape}


def _other_end(size: str) -> str:
    return "large" if size == "small" else "small"


def members(scene: Scene, region: str) -> tuple[str, ...]:
    """The objects clearly in the region; empty when none is, or when another stands near its border."""
    inside = tuple(o.name for o in scene.objects if in_region(o, region, -PLACE_MARGIN))
    near = [o for o in scene.objects if in_region(o, region, PLACE_MARGIN)]
    return inside if len(near) == len(inside) else ()


# --- References to one object ---------------------------------------------------------------------


class Said(NamedTuple):
    """A description as the request words it, and as its reference form (`references.py`)."""

    text: str
    form: str


def refer(w: Wording, name: str) -> str:
    """A phrase that picks out exactly this object in the scene (the same one all request long)."""
    if name not in w.refs:
        o = w.scene.get(name)
        ways = [(way, weight) for way, weight, moves in REFERENCE_WAYS if not (w.stable and moves)]
        weights = np.array([weight for _, weight in ways])
        for i in w.rng.choice(len(ways), size=len(ways), replace=False, p=weights / weights.sum()):
            said = ways[int(i)][0](w, o)
            if said is not None:
                w.refs[name], w.forms[name] = said
                break
    return w.refs[name]


def name_ref(w: Wording, o: TableObject) -> str:
    return f"the {o.colour} {shape_word(w, o.shape)}"


def _by_name(w: Wording, o: TableObject) -> Said | None:
    return Said(name_ref(w, o), o.name)


def _by_colour(w: Wording, o: TableObject) -> Said | None:
    return Said(f"the {o.colour} {noun(w)}", o.colour)


def count(scene: Scene, keep: Callable[[TableObject], bool]) -> int:
    return sum(keep(p) for p in scene.objects)


def _by_shape(w: Wording, o: TableObject) -> Said | None:
    return Said(f"the {shape_word(w, o.shape)}", o.shape) if count(w.scene, lambda p: p.shape == o.shape) == 1 else None


def _by_size_shape(w: Wording, o: TableObject) -> Said | None:
    if count(w.scene, lambda p: p.shape == o.shape and p.size == o.size) != 1:
        return None
    return Said(sized(w, o.size, shape_word(w, o.shape)), f"{o.size} {o.shape}")


def _by_size(w: Wording, o: TableObject) -> Said | None:
    return Said(sized(w, o.size, noun(w)), o.size) if count(w.scene, lambda p: p.size == o.size) == 1 else None


def _by_size_colour(w: Wording, o: TableObject) -> Said | None:
    if w.chance(0.5):
        return Said(sized(w, o.size, f"{o.colour} {noun(w)}"), f"{o.size} {o.colour}")
    return Said(sized(w, o.size, f"{o.colour} {shape_word(w, o.shape)}"), f"{o.size} {o.name}")


def _by_group(w: Wording, o: TableObject) -> Said | None:
    if count(w.scene, lambda p: colour_group(p) == colour_group(o)) != 1:
        return None
    text = from_table(w, "group ref", g=colour_group(o), n=lambda: noun(w))
    return None if text is None else Said(text, colour_group(o))


def _by_superlative(w: Wording, o: TableObject) -> Said | None:
    """ "The biggest piece", or "the smallest ball" among two or more balls; size classes are
    discrete, so the superlative is one object or none."""
    rank = SIZE_ORDER.index(o.size)
    for among, head in ((w.scene.objects, lambda: noun(w)), ([p for p in w.scene.objects if p.shape == o.shape], None)):
        ranks = [SIZE_ORDER.index(p.size) for p in among]
        end = "large" if rank == max(ranks) else "small" if rank == min(ranks) else None
        if len(among) >= 2 and end and ranks.count(rank) == 1:
            word = w.pick(f"superlative.{end}")
            if word is not None:
                form = SUPERLATIVE_FORMS[end] + ("" if head else f" {o.shape}")
                return Said(f"the {word} {head() if head else shape_word(w, o.shape)}", form)
    return None


def _by_place(w: Wording, o: TableObject) -> Said | None:
    regions = [r for r in REGIONS if members(w.scene, r) == (o.name,)]
    if not regions:
        return None
    w.placed.add(o.name)
    region = w.choose(regions)
    text = place_phrase(w, "region ref", region)
    return None if text is None else Said(text, f"in {region}")


def _by_extreme(w: Wording, o: TableObject) -> Said | None:
    if o.on is not None or not w.scene.is_clear(o.name):
        return None
    found = []
    for direction, (axis, sign) in EXTREMES.items():
        others = [sign * p.pos[axis] for p in w.scene.objects if p.name != o.name]
        if sign * o.pos[axis] + EXTREME_MARGIN <= min(others) and LEXICON[f"extreme.{direction}"][w.split]:
            found.append(direction)
    if not found:
        return None
    w.placed.add(o.name)
    direction = w.choose(found)
    text = from_table(w, f"extreme.{direction}", n=lambda: noun(w))
    return None if text is None else Said(text, EXTREME_FORMS[direction])


def _by_support(w: Wording, o: TableObject) -> Said | None:
    if o.on is not None or w.scene.supported_by(o.name):
        w.placed.add(o.name)
    if o.on is not None:
        base = w.scene.get(str(o.on))
        text = from_table(w, "on ref", n=lambda: noun(w), x=lambda: name_ref(w, base))
        return None if text is None else Said(text, f"on {base.name}")
    above = w.scene.supported_by(o.name)
    if above:
        text = from_table(w, "under ref", n=lambda: noun(w), x=lambda: name_ref(w, above[0]))
        return None if text is None else Said(text, f"under {above[0].name}")
    return None


# (way, weight, depends on where things stand); the name is always a way, and the fallback.
REFERENCE_WAYS = (
    (_by_name, 3.0, False),
    (_by_colour, 2.0, False),
    (_by_shape, 1.5, False),
    (_by_size_shape, 1.0, False),
    (_by_size, 0.6, False),
    (_by_size_colour, 0.4, False),
    (_by_group, 0.5, False),
    (_by_superlative, 0.7, False),
    (_by_place, 1.0, True),
    (_by_extreme, 0.7, True),
    (_by_support, 3.0, True),
)


# --- Descriptions that fit no object, or several -----------------------------------------------


def missing_ref(w: Wording, others: set[str]) -> Said | None:
    scene = w.scene
    objs = [o for o in scene.objects if o.name not in others]
    absent_colours = [c for c in COLOURS if scene.by_colour(c) is None]
    absent_shapes = [s for s in SHAPES if not any(o.shape == s for o in scene.objects)]
    # "The big X" is missing only when every X is small (and vice versa); a medium one might be meant.
    unsized = [(s, z) for s in SHAPES for z in ("small", "large") if _shape_sizes(scene, s) == {_other_end(z)}]
    # A cell is empty when no object so much as overlaps it.
    empty_cells = [c for c in CELLS if not any(in_region(o, c, o.half) for o in scene.objects)]
    bare = [o for o in objs if scene.is_clear(o.name)]
    ways: list[Callable[[], Said | None]] = []
    if absent_colours:
        c = w.choose(absent_colours)

        def by_colour() -> Said:
            if w.chance(0.6):
                shape = w.choose(SHAPES)
                return Said(f"the {c} {shape_word(w, shape)}", f"{c} {shape}")
            return Said(f"the {c} {noun(w)}", c)

        ways.append(by_colour)
    if objs:
        o = w.choose(objs)
        ways.append(lambda: _as_shape(w, o.colour, w.choose([s for s in SHAPES if s != o.shape])))
    if absent_shapes:
        ways.append(lambda: _as_shape(w, "", w.choose(absent_shapes)))
    if unsized:
        s, z = w.choose(unsized)
        ways.append(lambda: Said(sized(w, z, shape_word(w, s)), f"{z} {s}"))
    # By place and by support only in a request of one part: an earlier part may fill the cell.
    if empty_cells and not w.stable:
        cell = w.choose(empty_cells)
        ways.append(lambda: _said(place_phrase(w, "region ref", cell, singular=True), f"in {cell}"))
    if bare and not w.stable:
        base = w.choose(bare)
        ways.append(
            lambda: _said(
                from_table(w, "on ref", n=lambda: noun(w), x=lambda: name_ref(w, base), singular=True), f"on {base.name}"
            )
        )
    return w.choose(ways)() if ways else None


def ambiguous_ref(w: Wording, others: set[str]) -> Said | None:
    pool = [o for o in w.scene.objects if o.name not in others]

    def shared(key: Callable[[TableObject], object]) -> list[TableObject]:
        """One object of each class of `key` that two or more objects of the pool share."""
        seen: dict[object, list[TableObject]] = {}
        for o in pool:
            if key(o) is not None:
                seen.setdefault(key(o), []).append(o)
        return [group[0] for group in seen.values() if len(group) >= 2]

    ways: list[Callable[[], Said | None]] = []
    if by_shape := shared(lambda o: o.shape):
        ways.append(lambda: _as_shape(w, "", w.choose(by_shape).shape))
    if by_size_shape := shared(lambda o: (o.size, o.shape)):
        o = w.choose(by_size_shape)
        ways.append(lambda: Said(sized(w, o.size, shape_word(w, o.shape)), f"{o.size} {o.shape}"))
    if by_size := shared(lambda o: o.size):
        ways.append(lambda: _as_size(w, w.choose(by_size).size))
    if by_group := shared(colour_group):
        g = colour_group(w.choose(by_group))
        ways.append(lambda: _said(from_table(w, "group ref", g=g, n=lambda: noun(w), singular=True), g))
    if not w.stable and (by_cell := shared(_cell)):
        cell = str(_cell(w.choose(by_cell)))
        ways.append(lambda: _said(place_phrase(w, "region ref", cell, singular=True), f"in {cell}"))
    return w.choose(ways)() if ways else None


def _as_shape(w: Wording, colour: str, shape: str) -> Said:
    """ "The (red) ball": a shape word, perhaps with a colour."""
    words = f"{colour} {shape}".strip()
    return Said(f"the {colour + ' ' if colour else ''}{shape_word(w, shape)}", words)


def _as_size(w: Wording, size: str) -> Said:
    return Said(sized(w, size, noun(w)), size)


def _said(text: str | None, form: str) -> Said | None:
    return None if text is None else Said(text, form)
