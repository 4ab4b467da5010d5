"""Free-form requests for the tabletop world: (scene, request, target) triples for training and
testing a language-model planner.

A request is what a user might type ("could you put the big ball just left of the box?"); its
target is the canonical goal text (`goal_to_text`, which `parse_goal` reads back exactly) naming
objects by their exact names, or a refusal: "cannot: missing" (a description that fits no object),
"cannot: ambiguous" (one that fits several where one is needed) or "cannot: unsupported" (something
this world cannot do, like repainting). `sample_request` draws what is asked for (a single move, one
basic goal, a compound of two or three parts, or something to refuse; the solver must find a plan
for what is not refused) and then words it: each object by whatever singles it out in the scene
(its name, its colour alone, its shape when no other object has it, its size, where it stands, what
it rests on), regions and relations by paraphrases, the goal in one of many frames, the parts
joined ("A, then B", "B, but first A") and the whole wrapped ("could you ...?", "..., thanks").
The references live in `freeform_refs.py`, the wordings in `freeform_words.py`.

The split rule. The held-out split feeds a test suite whose wordings and compositions must appear
nowhere in training. Every frame, composition, wrapper and lexicon entry (synonym, adjective,
region or relation phrase) has an id, "<table>:<text>" (`freeform_words.LEXICON`), and belongs to
exactly one split. Only the canonical words (colour and shape names, canonical region names and
relation phrases: `CANONICAL_WORDS`) and what is made of them alone ("the red square", "the
square", "in the centre", "above the red square") are shared, and they carry no id. Hence, and
tested over thousands of samples per split:
  1. no held-out request text equals a training request text;
  2. no held-out template id is among the training ids;
  3. no word that only held-out entries use (less canonical words) appears in a training request;
  4. the held-out compositions (how parts are joined) are not training ones.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from spiral.errors import SpiralError, UnknownTokenError
from spiral.worlds.tabletop.actions import REGIONS
from spiral.worlds.tabletop.freeform_refs import (
    CANONICAL_SHARE,
    Wording,
    ambiguous_ref,
    count,
    fill,
    location_set,
    members,
    missing_ref,
    noun,
    refer,
    region_phrase,
    shape_word,
)
from spiral.worlds.tabletop.freeform_words import COUNT_WORDS, LEXICON
from spiral.worlds.tabletop.goal_sampling import propose
from spiral.worlds.tabletop.goal_spec import BASIC_FAMILIES, CLEAR, GATHER, LINE_UP, MOVE, SORT, STACK, SWAP, Goal
from spiral.worlds.tabletop.goal_text import and_list, goal_to_text
from spiral.worlds.tabletop.scene import COLOURS, COOL_COLOURS, SHAPES, WARM_COLOURS, Scene
from spiral.worlds.tabletop.solver import steps_needed

SPLITS = ("train", "heldout")
REFUSALS = ("missing", "ambiguous", "unsupported")
UNSUPPORTED_READING = "cannot: unsupported"

# What is asked for, by share of requests.
ASK_SHARES = {"move": 0.25, "basic": 0.35, "compound": 0.25, "refusal": 0.15}
# Draws of one kind of ask before another kind is tried (a compound fails one draw in three or so;
# its solve takes ~5 ms, at most ~50 ms).
TRIES = 12
# Compound parts after the first: single moves are likelier, a swap may only come first.
LATER_FAMILIES = (MOVE, MOVE, MOVE, STACK, LINE_UP, GATHER, SORT, CLEAR)
THREE_PART_SHARE = 0.3
# Of single moves, how many are "put X on Y" (a stack of two, by the goal language).
PUT_ON_SHARE = 0.2
# Of single moves and gathers, how many select objects by where they stand ("everything on the left").
PLACE_SET_SHARE = 0.2
# Of refusals, how many are one part of a compound ("sort by colour, then paint the red one blue").
REFUSAL_COMPOUND_SHARE = 0.25
# How the words are chosen.
STATE_SHARE = 0.15  # "the red square should be in the centre" rather than an imperative
BY_SIZE_SHARE = 0.15  # "stack A and B with the biggest at the bottom"
GROUP_AS_LIST_SHARE = 0.3  # the warm objects as "the red, orange and yellow pieces"
WRAP_SHARE = 0.55
TERSE_SHARE = 0.05  # "move red square to top left": articles dropped
LOWER_CASE_SHARE = 0.1  # "i'd like ..."
CAPITALISED_SHARE = 0.6  # of the rest


@dataclass(frozen=True)
class Request:
    """One free-form request and what a planner should answer."""

    text: str  # the request as a user would type it
    target: str  # goal_to_text(goal), or "cannot: missing" / "cannot: ambiguous" / "cannot: unsupported"
    reading: str  # what a planner writes: the goal with each object as it was described (`references.py`)
    goal: Goal | None  # the canonical goal (None for a refusal)
    templates: tuple[str, ...]  # ids of every template / lexicon entry used to word it (for the split rule)


@dataclass(frozen=True)
class Ask:
    """A goal to ask for; `from_region`: its objects are named as "everything in" that region now."""

    goal: Goal
    from_region: str | None = None


@dataclass(frozen=True)
class Clause:
    text: str
    imperative: bool  # starts with a verb, so "could you ..." can wrap it
    reading: str = ""  # the part's goal with its objects as described (`references.py`)


def sample_request(scene: Scene, rng: np.random.Generator, split: str) -> Request | None:
    """A random request for the scene, worded with the split's lexicon; deterministic for a
    generator state. None only when the scene offers nothing to ask for."""
    if split not in SPLITS:
        raise UnknownTokenError("split", split, SPLITS)
    kinds = list(ASK_SHARES)
    shares = np.array(list(ASK_SHARES.values()))
    for _ in range(TRIES):
        kind = kinds[int(rng.choice(len(kinds), p=shares / shares.sum()))]
        w = Wording(scene, rng, split)
        request = _refusal(w) if kind == "refusal" else _request(w, kind)
        if request is not None:
            return request
    return None


# --- What is asked for ----------------------------------------------------------------------------


def _request(w: Wording, kind: str) -> Request | None:
    asks = _draw(w.scene, w.rng, kind)
    if asks is None:
        return None
    goal = asks[0].goal if len(asks) == 1 else Goal.then(*(a.goal for a in asks))
    # Later parts act on a scene earlier parts changed: only references that no move changes.
    w.stable = len(asks) > 1
    clause = _compose(w, [_clause(w, a, state_ok=len(asks) == 1) for a in asks])
    return Request(_wrap(w, clause), goal_to_text(goal), clause.reading, goal, w.ids())


def _draw(scene: Scene, rng: np.random.Generator, kind: str) -> list[Ask] | None:
    for _ in range(TRIES):
        if kind == "move":
            asks = [_draw_part(scene, rng, (MOVE,), place_sets=True)]
        elif kind == "basic":
            asks = [_draw_part(scene, rng, BASIC_FAMILIES, place_sets=True)]
        else:
            count = 3 if rng.random() < THREE_PART_SHARE else 2
            first = _draw_part(scene, rng, (*BASIC_FAMILIES, MOVE), place_sets=True)
            asks = [first, *(_draw_part(scene, rng, LATER_FAMILIES, place_sets=False) for _ in range(count - 1))]
        if all(a is not None for a in asks) and _worth_asking(scene, [a.goal for a in asks]):
            return asks
    return None


def _worth_asking(scene: Scene, parts: list[Goal]) -> bool:
    """Every part still to do, the parts a valid compound, and the solver finds a plan."""
    if any(p.holds(scene, scene) for p in parts):
        return False
    try:
        goal = parts[0] if len(parts) == 1 else Goal.then(*parts)
    except SpiralError:  # a repeated part
        return False
    return steps_needed(scene, goal) is not None


def _draw_part(scene: Scene, rng: np.random.Generator, families: Sequence[str], place_sets: bool) -> Ask | None:
    family = families[int(rng.integers(len(families)))]
    if family == MOVE and rng.random() < PUT_ON_SHARE:
        goal = propose(scene, rng, STACK, "short")
    elif family in (MOVE, GATHER) and place_sets and rng.random() < PLACE_SET_SHARE:
        return _place_set_ask(scene, rng, family)
    else:
        goal = propose(scene, rng, family, ("short", "medium")[int(rng.integers(2))])
    return None if goal is None else Ask(goal)


def _place_set_ask(scene: Scene, rng: np.random.Generator, family: str) -> Ask | None:
    """Move "everything in" a region, as it stands now, to another: one object is a single move,
    several a gather of the listed objects (in scene order)."""
    regions = [r for r in REGIONS if (m := members(scene, r)) and (len(m) == 1) == (family == MOVE)]
    if not regions:
        return None
    source = regions[int(rng.integers(len(regions)))]
    names = members(scene, source)
    dest = [r for r in REGIONS if r != source][int(rng.integers(len(REGIONS) - 1))]
    goal = Goal.move(names[0], region=dest) if len(names) == 1 else Goal.gather(dest, objects=names)
    return Ask(goal, from_region=source)


# --- Refusals -------------------------------------------------------------------------------------


def _refusal(w: Wording) -> Request | None:
    joined = w.chance(REFUSAL_COMPOUND_SHARE)
    w.stable = joined
    # A scene with nothing two objects share has no ambiguous description: refuse something else.
    for i in w.rng.permutation(len(REFUSALS)):
        kind = REFUSALS[int(i)]
        clause = _unsupported(w) if kind == "unsupported" else _bad_reference_clause(w, kind, state_ok=not joined)
        if clause is not None:
            break
    else:
        return None
    other = _draw_part(w.scene, w.rng, LATER_FAMILIES, place_sets=False) if joined else None
    if other is not None:
        parts = [clause, _clause(w, other, state_ok=False)]
        clause = _compose(w, parts if w.chance(0.5) else parts[::-1])
    return Request(_wrap(w, clause), f"cannot: {kind}", clause.reading, None, w.ids())


def _unsupported(w: Wording) -> Clause:
    o = w.choose(w.scene.objects)
    frame = w.pick("unsupported")
    assert frame is not None
    colour = w.choose([c for c in COLOURS if c != o.colour])
    text = fill(frame, s=lambda: refer(w, o.name), c=colour, p=lambda: shape_word(w, w.choose(SHAPES)))
    return Clause(text, imperative=True, reading=UNSUPPORTED_READING)


def _bad_reference_clause(w: Wording, kind: str, state_ok: bool) -> Clause | None:
    """A goal that names one object by a description fitting none of them (missing) or several of
    them other than the goal's other objects (ambiguous, so no elimination settles it)."""
    family = (MOVE, MOVE, STACK, SWAP, LINE_UP)[int(w.rng.integers(5))]
    goal = propose(w.scene, w.rng, family, "short")
    if goal is None:
        return None
    slot = w.choose(goal.objects)
    others = set(goal.objects) - {slot}
    bad = missing_ref(w, others) if kind == "missing" else ambiguous_ref(w, others)
    if bad is None:
        return None
    w.refs[slot], w.forms[slot] = bad
    return _clause(w, Ask(goal), state_ok)


# --- Goals ----------------------------------------------------------------------------------------


def _relation(w: Wording, relation: str, anchor: str) -> str:
    canonical = {"left of": "to the left of {a}", "right of": "to the right of {a}", "above": "above {a}", "below": "below {a}"}
    entry = None if w.chance(CANONICAL_SHARE) else w.pick(f"relation.{relation}")
    return (entry or canonical[relation]).format(a=anchor)


def _list(w: Wording, names: Sequence[str]) -> str:
    refs = [refer(w, n) for n in names]
    if len(refs) == 2:
        return fill(w.pick("list2") or "", x=refs[0], y=refs[1])
    return fill(w.pick("list more") or "", head=", ".join(refs[:-1]), y=refs[-1])


def _clause(w: Wording, ask: Ask, state_ok: bool) -> Clause:
    state = state_ok and w.chance(STATE_SHARE)
    family = ask.goal.family
    say = {MOVE: _say_move, STACK: _say_stack, LINE_UP: _say_line_up, GATHER: _say_gather, SWAP: _say_swap}.get(family)
    if say is not None:
        clause = say(w, ask, state)
    else:
        clause = _say_sort(w, ask.goal, state) if family == SORT else _say_clear(w, ask.goal, state)
    return clause if clause.reading else replace(clause, reading=_reading(w, ask))


def _reading(w: Wording, ask: Ask) -> str:
    """The goal's canonical text with each object as the request described it: "[red]", "[in top
    left corner]"; objects chosen by where they stand now as one set, "[all in left side]"."""
    text = goal_to_text(ask.goal)
    if ask.from_region is not None:
        names = ask.goal.objects
        if len(names) == 1:
            return text.replace(f"the {names[0]}", f"[in {ask.from_region}]", 1)
        return text.replace(and_list([f"the {n}" for n in names]), f"[all in {ask.from_region}]", 1)
    for name in ask.goal.objects:
        text = re.sub(rf"\bthe {name}\b", f"[{w.forms[name]}]", text)
    return text


def _forms(w: Wording, names: Sequence[str]) -> str:
    return and_list([f"[{w.forms[n]}]" for n in names])


def _say(w: Wording, table: str, state: bool, keep: Callable[[str], bool] = lambda e: True, **slots) -> Clause:
    """The clause from a state frame of the table when asked for and there is one, else an imperative."""
    frame = w.pick(f"{table} state", keep) if state and f"{table} state" in LEXICON else None
    imperative = frame is None
    frame = frame or w.pick(table, keep)
    assert frame is not None, table
    return Clause(fill(frame, **slots), imperative)


def _to_frames(w: Wording, ask: Ask, names: Sequence[str]) -> Callable[[str], bool]:
    # "Put the one in the top left in the centre" reads two ways: when the objects are named by
    # place, the destination is said with "to".
    by_place = ask.from_region is not None or any(n in w.placed for n in names)
    return lambda e: not by_place or "{at_r}" not in e


def _say_move(w: Wording, ask: Ask, state: bool) -> Clause:
    g = ask.goal
    subject = location_set(w, ask.from_region) if ask.from_region else refer(w, g.objects[0])
    if g.region is not None:
        r, at_r = region_phrase(w, g.region)
        return _say(w, "move region", state, _to_frames(w, ask, g.objects), s=subject, r=r, at_r=at_r)
    assert g.relation is not None
    rel = _relation(w, g.relation, refer(w, g.objects[1]))
    return _say(w, "move relation", state, s=subject, rel=rel)


def _say_stack(w: Wording, ask: Ask, state: bool) -> Clause:
    names = ask.goal.objects
    if w.chance(BY_SIZE_SHARE):
        shuffled = [names[i] for i in w.rng.permutation(len(names))]
        text = fill(w.pick("stack by size") or "", objs=_list(w, shuffled))
        return Clause(text, imperative=True, reading=f"stack by size {_forms(w, shuffled)}")
    refs = [refer(w, n) for n in names]
    if len(refs) == 2:
        return _say(w, "stack2", state, t=refs[0], b=refs[1])
    return _say(w, "stack3", False, t=refs[0], m=refs[1], b=refs[2])


def _say_line_up(w: Wording, ask: Ask, state: bool) -> Clause:
    names = list(ask.goal.objects)
    order = w.choose(("ltr", "ltr", "rtl", "named") if len(names) <= 3 else ("ltr", "rtl"))
    if order == "ltr":
        return _say(w, "line ltr", False, objs=lambda: _list(w, names))
    if order == "rtl":
        clause = _say(w, "line rtl", False, objs=lambda: _list(w, names[::-1]))
        return replace(clause, reading=f"line up {_forms(w, names[::-1])} from right to left")
    refs = [refer(w, n) for n in names]
    shuffled = [names[i] for i in w.rng.permutation(len(names))]
    slots = dict(zip(("first", "second", "third"), refs, strict=False))
    return _say(w, f"line named{len(names)}", False, objs=lambda: _list(w, shuffled), **slots)


def _say_gather(w: Wording, ask: Ask, state: bool) -> Clause:
    g = ask.goal
    sel = _selector(w, ask)
    r, at_r = region_phrase(w, str(g.region))
    to_frames = _to_frames(w, ask, g.objects)
    # "Anything that's red or blue in the centre" reads as a smaller set: say where with "to".
    open_ended = sel.startswith(("anything", "everything")) or " that" in sel
    # "Every circle" is one at a time: it is not put "together".
    quantified = sel.startswith(("every ", "each "))

    def keep(e: str) -> bool:
        return to_frames(e) and not (open_ended and "{at_r}" in e) and not (quantified and "together" in e)

    return _say(w, "gather", state, keep, sel=sel, r=r, at_r=at_r)


def _selector(w: Wording, ask: Ask) -> str:
    g = ask.goal
    if ask.from_region:
        return location_set(w, ask.from_region)
    if g.shape:
        k = count(w.scene, lambda p: p.shape == g.shape)
        frame = w.pick("shape set", lambda e: ("{k}" not in e or k >= 2) and (not e.startswith("both") or k == 2))
        return fill(
            frame or "", p=lambda: shape_word(w, str(g.shape)), ps=lambda: shape_word(w, str(g.shape), True), k=COUNT_WORDS[k]
        )
    if g.colours:
        group = next((name for name, cs in (("warm", WARM_COLOURS), ("cool", COOL_COLOURS)) if set(cs) == set(g.colours)), None)
        if group and not w.chance(GROUP_AS_LIST_SHARE):
            return fill(w.pick("group set") or "", g=group, ns=lambda: noun(w, True))
        colours = [g.colours[i] for i in w.rng.permutation(len(g.colours))]
        frame = w.pick("colour set") or ""
        slots = {
            "cl": and_list(colours),
            "cor": and_list(colours, "or"),
            "clthe": and_list([colours[0], *(f"the {c}" for c in colours[1:])]),
        }
        return fill(frame, n=lambda: noun(w), ns=lambda: noun(w, True), **slots)
    return _list(w, g.objects)


def _say_swap(w: Wording, ask: Ask, state: bool) -> Clause:
    a, b = (refer(w, n) for n in ask.goal.objects)
    return _say(w, "swap", state, a=a, b=b)


def _say_sort(w: Wording, goal: Goal, state: bool) -> Clause:
    slots = {
        "ns": lambda: noun(w, True),
        "sq": lambda: shape_word(w, "square", True),
        "ci": lambda: shape_word(w, "circle", True),
        "tr": lambda: shape_word(w, "triangle", True),
    }
    return _say(w, f"sort {goal.key}", state, **slots)


def _say_clear(w: Wording, goal: Goal, state: bool) -> Clause:
    r, at_r = region_phrase(w, str(goal.region))
    return _say(w, "clear", state, r=r, at_r=at_r)


# --- Joining and wrapping -------------------------------------------------------------------------


def _compose(w: Wording, clauses: list[Clause]) -> Clause:
    """The parts, given in the order they are carried out, joined by a composition frame."""
    if len(clauses) == 1:
        return clauses[0]
    frame = w.pick(f"compose{len(clauses)}")
    assert frame is not None
    text = frame.format(**dict(zip("ABC", (c.text for c in clauses), strict=False)))
    reading = ", then ".join(c.reading for c in clauses)
    if UNSUPPORTED_READING in reading:  # one part this world cannot do: the request is refused
        reading = UNSUPPORTED_READING
    # Several sentences do not fit inside "could you ...?".
    return Clause(text, imperative=". " not in frame, reading=reading)


def _wrap(w: Wording, clause: Clause) -> str:
    text = clause.text
    if w.chance(WRAP_SHARE):
        frame = w.pick("wrapper", lambda e: clause.imperative or e.startswith("{x}"))
        text = (frame or "{x}").format(x=text)
    if w.chance(TERSE_SHARE):
        text = re.sub(r"\bthe ", "", text)
    if not text.endswith(("?", ".", "!")):
        text += w.choose(("", "", ".", ".", "!"))
    if w.chance(LOWER_CASE_SHARE):
        return text.lower()
    return text[0].upper() + text[1:] if w.chance(CAPITALISED_SHARE) else text
