"""Reference forms: how a planner's reading names objects as the request described them, and how
the scene grounds them exactly.

The `lm` planner does not name objects itself: it copies each description into a short form in
square brackets, and this module finds what the form picks out in the scene read from the frame:

    [red square]   [red]   [square]   [large square]   [large]   [large red]   [warm]
    [largest]   [smallest circle]   [leftmost]   [topmost]
    [in top left corner]   [on red square]   [under blue circle]   [all in left side]

A form is a conjunction of what it says (size, colour or warm/cool, shape, superlative, extreme,
place, support). One object fits: its name replaces the form. None fits: the request is refused as
"missing"; several fit where one is meant: "ambiguous". `[all in R]` is every object standing in R
now. Two phrasings order their objects by the scene: "stack by size [a], [b] and [c]" (the
smallest on top) and "... from right to left" (which `parse_goal` reverses).

    move [in top left corner] to the centre   ->   move the red square to the centre
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from spiral.errors import SpiralError
from spiral.worlds.tabletop.actions import REGIONS
from spiral.worlds.tabletop.goal_spec import Goal, in_region
from spiral.worlds.tabletop.goal_text import and_list, parse_goal
from spiral.worlds.tabletop.scene import COLOURS, SHAPES, SIZE_ORDER, WARM_COLOURS, Scene, TableObject
from spiral.worlds.tabletop.solver_families import named_objects

REFUSAL_PREFIX = "cannot:"
# An object is "in" a region when its centre is within this much of it; one clearly inside stands
# this far from the border (the margin the request wordings keep).
PLACE_MARGIN = 0.03
# Objects whose positions differ by less than this are tied for leftmost (etc.): a stack, say.
EXTREME_TIE = 0.02
EXTREME_FORMS = {"left": "leftmost", "right": "rightmost", "top": "topmost", "bottom": "bottommost"}
SUPERLATIVE_FORMS = {"large": "largest", "small": "smallest"}
# axis, sign: the object with the smallest sign * position is the extreme one.
_EXTREME_AXES = {"leftmost": (0, 1.0), "rightmost": (0, -1.0), "topmost": (1, 1.0), "bottommost": (1, -1.0)}
_FORM = re.compile(r"\[([^\[\]]*)\]")


class Refused(Exception):
    """A form that fits no object ("missing") or several ("ambiguous")."""

    def __init__(self, kind: str, form: str):
        super().__init__(f"[{form}] fits {'no object' if kind == 'missing' else 'more than one object'} in the scene")
        self.kind, self.form = kind, form


@dataclass(frozen=True)
class Grounded:
    """A reading grounded in the scene: the canonical goal, or a refusal kind and why."""

    text: str  # the canonical goal text, or "cannot: <kind>"
    goal: Goal | None = None
    refusal: str | None = None
    why: str = ""


def colour_group(o: TableObject) -> str:
    return "warm" if o.colour in WARM_COLOURS else "cool"


def near(scene: Scene, region: str) -> list[TableObject]:
    """The objects standing in the region, give or take the margin."""
    return [o for o in scene.objects if in_region(o, region, PLACE_MARGIN)]


def ground(reading: str, scene: Scene, refusals: tuple[str, ...]) -> Grounded:
    """The reading grounded in the scene; ValueError says why it is unusable (not a goal, a form
    that says nothing this module reads, a refusal kind not in `refusals`)."""
    text = tidy(reading)
    if text.startswith(REFUSAL_PREFIX):
        kind = text[len(REFUSAL_PREFIX) :].strip()
        if kind not in refusals:
            raise ValueError(f"unknown refusal {kind!r}")
        return Grounded(f"{REFUSAL_PREFIX} {kind}", refusal=kind)
    try:
        canonical = ", then ".join(_ground_part(part, scene) for part in text.split(", then "))
    except Refused as refused:
        return Grounded(f"{REFUSAL_PREFIX} {refused.kind}", refusal=refused.kind, why=str(refused))
    try:
        goal = parse_goal(canonical)
    except SpiralError:
        raise ValueError(f"{text[:80]!r} is not a goal") from None
    absent = [n for n in named_objects(goal) if not scene.has(n)]
    if absent:  # a name written out, not in brackets, is a description like any other
        why = f"[{absent[0]}] fits no object in the scene"
        return Grounded(f"{REFUSAL_PREFIX} missing", refusal="missing", why=why)
    return Grounded(canonical, goal=goal)


def tidy(reading: str) -> str:
    """The reading with its spacing normalised: "[ red ]" is "[red]", "cannot : x" is "cannot: x"."""
    text = " ".join(reading.split())
    return re.sub(r"\[ | (?=[\],:])", lambda m: m.group(0).strip(), text)


def _ground_part(part: str, scene: Scene) -> str:
    if part.startswith("stack by size "):
        objects = [_one(form, scene) for form in _FORM.findall(part)]
        if len(objects) < 2:
            raise ValueError(f"{part!r} names fewer than two objects")
        tower = sorted(objects, key=lambda o: SIZE_ORDER.index(o.size))  # the smallest on top
        return "stack " + " on ".join(f"the {o.name}" for o in tower)
    if "[" not in part and "]" in part or part.count("[") != part.count("]"):
        raise ValueError(f"unbalanced brackets in {part!r}")
    return _FORM.sub(lambda m: _names(m.group(1), scene), part)


def _names(form: str, scene: Scene) -> str:
    words = form.split()
    if words[:2] == ["all", "in"]:
        region = _region(words[2:], form)
        found = near(scene, region)
        if not found:
            raise Refused("missing", form)
        return and_list([f"the {o.name}" for o in found])
    return f"the {_one(form, scene).name}"


def _one(form: str, scene: Scene) -> TableObject:
    """The one object the form fits; Refused when none or several do."""
    fits = candidates(form, scene)
    if len(fits) != 1:
        raise Refused("missing" if not fits else "ambiguous", form)
    return fits[0]


def candidates(form: str, scene: Scene) -> list[TableObject]:
    """Every object of the scene the form fits."""
    words = form.split()
    if not words:
        raise ValueError("an empty reference []")
    if words[0] == "in":
        return near(scene, _region(words[1:], form))
    if words[0] in ("on", "under"):
        base = _object_name(words[1:], form)
        if not scene.has(base):
            raise Refused("missing", form)
        if words[0] == "on":
            return [o for o in scene.objects if o.on == base]
        below = scene.get(base).on
        return [] if below is None else [scene.get(below)]
    fits = list(scene.objects)
    ranking: str | None = None
    for word in words:
        if word in SIZE_ORDER:
            fits = [o for o in fits if o.size == word]
        elif word in COLOURS:
            fits = [o for o in fits if o.colour == word]
        elif word in ("warm", "cool"):
            fits = [o for o in fits if colour_group(o) == word]
        elif word in SHAPES:
            fits = [o for o in fits if o.shape == word]
        elif word in SUPERLATIVE_FORMS.values() or word in _EXTREME_AXES:
            ranking = word
        else:
            raise ValueError(f"[{form}]: {word!r} is not a word of a reference")
    return fits if ranking is None or not fits else _ranked(fits, ranking)


def _ranked(fits: list[TableObject], ranking: str) -> list[TableObject]:
    """The objects first by the superlative or extreme: one, or several tied."""
    if ranking in _EXTREME_AXES:
        axis, sign = _EXTREME_AXES[ranking]
        best = min(sign * o.pos[axis] for o in fits)
        return [o for o in fits if sign * o.pos[axis] < best + EXTREME_TIE]
    ranks = [SIZE_ORDER.index(o.size) for o in fits]
    best_rank = max(ranks) if ranking == SUPERLATIVE_FORMS["large"] else min(ranks)
    return [o for o, r in zip(fits, ranks, strict=True) if r == best_rank]


def _region(words: list[str], form: str) -> str:
    region = " ".join(words[1:] if words[:1] == ["the"] else words)
    if region not in REGIONS:
        raise ValueError(f"[{form}]: {region!r} is not a region")
    return region


def _object_name(words: list[str], form: str) -> str:
    if len(words) != 2 or words[0] not in COLOURS or words[1] not in SHAPES:
        raise ValueError(f"[{form}]: {' '.join(words)!r} is not an object's name")
    return " ".join(words)
