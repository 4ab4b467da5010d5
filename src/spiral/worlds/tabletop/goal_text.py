"""Goal text: a printer for the canonical wording and a parser that accepts common paraphrases, in
the manner of `grammar.py` for atomic actions.

    stack the green triangle on the red square on the blue circle
    line up the red square, the blue circle and the green triangle from left to right
    gather the circles in the top left corner      (also: the warm objects, the red and blue objects,
                                                    the red square and the blue circle)
    swap the red square and the blue circle
    sort the objects by colour                     (or: by shape)
    clear the left side
    swap the red square and the blue circle, then clear the centre

`parse_goal(goal_to_text(g)) == g` for every goal (tested as a property).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from spiral.errors import SpiralError, UnknownTokenError
from spiral.worlds.tabletop.actions import REGIONS, Action
from spiral.worlds.tabletop.goal_spec import COMPOUND, GATHER, LINE_UP, MOVE, SORT, SORT_KEYS, STACK, SWAP, Goal
from spiral.worlds.tabletop.grammar import COLOUR_WORDS, REGION_WORDS, SHAPE_WORDS, VERBS, parse, parse_object, to_text
from spiral.worlds.tabletop.scene import COLOURS, COOL_COLOURS, SHAPES, WARM_COLOURS

EXAMPLE_GOALS = (
    "stack the green triangle on the blue circle",
    "stack the green triangle on the red square on the blue circle",
    "line up the red square, the blue circle and the green triangle from left to right",
    "gather the circles in the top left corner",
    "gather the warm objects in the left side",
    "gather the red square and the blue circle in the centre",
    "swap the red square and the blue circle",
    "sort the objects by colour",
    "sort the objects by shape",
    "clear the left side",
    "move the red square to the top left corner",
    "move the green triangle to the left of the blue circle",
    "swap the red square and the blue circle, then clear the centre",
)

SORT_VERBS = {"sort", "organise", "organize", "arrange", "group", "order", "separate", "split", "divide", "classify"}
SORT_KEY_WORDS = {
    **dict.fromkeys(("colour", "color", "colours", "colors", "hue"), "colour"),
    **dict.fromkeys(("shape", "shapes", "form", "type", "kind"), "shape"),
}
SWAP_VERBS = {"swap", "exchange", "switch", "interchange", "trade"}
SWAP_NOUNS = {"the", "positions", "places", "spots", "cells"}
CLEAR_VERBS = {"clear", "empty", "vacate", "free"}
REMOVE_VERBS = {"remove", "move", "take", "get", "push", "shift", "clear"}
LINE_VERBS = {"arrange", "put", "place", "set", "order", "align", "lineup", "line"}
GATHER_VERBS = {"gather", "collect", "group", "bring", "move", "put", "place", "get", "assemble", "cluster", "round", "herd"}
GATHER_PREPS = {"in", "into", "to", "at", "inside", "within", "on", "onto", "toward", "towards"}
STACK_VERBS = {"stack", "put", "place", "set", "pile", "rest", "stand", "sit", "balance"}
# Words that stand for "every object on the table" in sort and clear goals.
EVERYTHING = {"the", "all", "of", "every", "each", "objects", "object", "shapes", "things", "pieces", "items", "everything"}
OBJECT_NOUNS = {"objects", "object", "shapes", "things", "pieces", "items", "ones"}
COLOUR_NOUNS = {"coloured", "colored", "colour", "color", "colours", "colors"}
SHAPE_PLURALS = {f"{w}{'es' if w.endswith('x') else 's'}": s for w, s in SHAPE_WORDS.items()}
LEADING_FILLERS = {"please", "first", "now", "and", ",", "then", "finally", "next"}


def goal_to_text(goal: Goal) -> str:
    """The canonical text of a goal."""
    if goal.family == COMPOUND:
        return ", then ".join(goal_to_text(p) for p in goal.parts)
    if goal.family == STACK:
        return "stack " + " on ".join(f"the {n}" for n in goal.objects)
    if goal.family == LINE_UP:
        return f"line up {_object_list(goal.objects)} from left to right"
    if goal.family == GATHER:
        return f"gather {selector_text(goal)} in the {goal.region}"
    if goal.family == SWAP:
        return f"swap the {goal.objects[0]} and the {goal.objects[1]}"
    if goal.family == SORT:
        return f"sort the objects by {goal.key}"
    if goal.family == MOVE:
        subject, anchor = goal.objects[0], (goal.objects[1:] or (goal.region,))[0]
        return to_text(Action(subject, goal.relation or "in", str(anchor)))
    return f"clear the {goal.region}"


def selector_text(goal: Goal) -> str:
    """'the circles', 'the warm objects', 'the red and blue objects', 'the red square and the blue circle'."""
    if goal.shape:
        return f"the {goal.shape}s"
    if goal.colours:
        for word, group in (("warm", WARM_COLOURS), ("cool", COOL_COLOURS)):
            if set(goal.colours) == set(group):
                return f"the {word} objects"
        return f"the {and_list(list(goal.colours))} objects"
    return _object_list(goal.objects)


def and_list(items: Sequence[str], joiner: str = "and") -> str:
    """'a', 'a and b', 'a, b and c' (or with another joiner: 'a, b or c')."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} {joiner} {items[-1]}"


def _object_list(names: tuple[str, ...]) -> str:
    return and_list([f"the {n}" for n in names])


def parse_goal(text: str) -> Goal:
    """Parse a goal; unknown colours, shapes and regions raise UnknownTokenError, other unreadable
    text a SpiralError with examples."""
    words = re.sub(r"[^a-z ,]", " ", text.lower().replace("-", " ").replace(",", " , ")).split()
    chunks = _split_parts(words)
    if not chunks:
        raise SpiralError(_not_understood(text))
    parts = [_parse_part(c, text) for c in chunks]
    return parts[0] if len(parts) == 1 else Goal.then(*parts)


def _not_understood(text: str) -> str:
    return f"cannot read the goal {text!r}; goals look like: " + "; ".join(f"'{g}'" for g in EXAMPLE_GOALS)


def _split_parts(words: list[str]) -> list[list[str]]:
    """Split "A, then B and finally C" into its parts."""
    chunks: list[list[str]] = [[]]
    i = 0
    while i < len(words):
        if words[i] in ("then", "afterwards", "finally") or words[i : i + 2] == ["after", "that"]:
            i += 2 if words[i] == "after" else 1
            chunks.append([])
            continue
        chunks[-1].append(words[i])
        i += 1
    cleaned = [_trim(c) for c in chunks]
    if any(not c for c in cleaned[1:]):
        raise SpiralError("a part of the goal is empty; write parts as '<goal>, then <goal>'")
    return [c for c in cleaned if c]


def _trim(words: list[str]) -> list[str]:
    while words and words[0] in LEADING_FILLERS:
        words = words[1:]
    while words and words[-1] in (",", "and"):
        words = words[:-1]
    return words


def _parse_part(words: list[str], text: str) -> Goal:
    for parser in (_parse_move, _parse_sort, _parse_swap, _parse_clear, _parse_line_up, _parse_gather, _parse_stack):
        goal = parser(words)
        if goal is not None:
            return goal
    raise SpiralError(_not_understood(text))


def _parse_move(words: list[str]) -> Goal | None:
    """An atomic instruction given as a goal: one object to a region, next to another, or onto it."""
    if words[0] not in VERBS:
        return None
    try:
        action = parse(" ".join(w for w in words if w != ","))
    except SpiralError:
        return None  # "move all the circles to ..." and the like are other goals
    if action.relation == "on":
        return Goal.stack(action.subject, action.anchor)
    if action.relation == "in":
        return Goal.move(action.subject, region=action.anchor)
    return Goal.move(action.subject, relation=action.relation, anchor=action.anchor)


def _parse_sort(words: list[str]) -> Goal | None:
    if words[0] not in SORT_VERBS or "by" not in words:
        return None
    at = len(words) - 1 - words[::-1].index("by")
    if not set(words[1:at]) <= EVERYTHING | {"on", "table"}:
        return None
    key_words = [w for w in words[at + 1 :] if w not in ("the", "their", "its")]
    phrase = " ".join(key_words) or "(none)"
    if len(key_words) != 1 or key_words[0] not in SORT_KEY_WORDS:
        raise UnknownTokenError("sort key", phrase, SORT_KEYS)
    return Goal.sort(SORT_KEY_WORDS[key_words[0]])


def _parse_swap(words: list[str]) -> Goal | None:
    if words[0] not in SWAP_VERBS:
        return None
    rest = words[1:]
    if "of" in rest[:3] and set(rest[: rest.index("of")]) <= SWAP_NOUNS:  # "swap the places of A and B"
        rest = rest[rest.index("of") + 1 :]
    rest = [w for w in rest if w not in ("around", "round", "over")]
    for joiner in ("and", "with"):
        if joiner in rest:
            at = rest.index(joiner)
            return Goal.swap(parse_object(rest[:at]), parse_object(rest[at + 1 :]))
    raise SpiralError("a swap names two objects, e.g. 'swap the red square and the blue circle'")


def _parse_clear(words: list[str]) -> Goal | None:
    if words[0] in REMOVE_VERBS:  # "remove everything from the left side"
        for i in range(1, len(words)):
            if words[i] in ("from", "off") or words[i : i + 2] in (["out", "of"], ["away", "from"]):
                if not (words[1:i] and set(words[1:i]) <= EVERYTHING):
                    break
                rest = words[i + (2 if words[i] in ("out", "away") else 1) :]
                return Goal.clear(parse_region(rest[1:] if rest[:1] == ["of"] else rest))
    if words[0] not in CLEAR_VERBS:
        return None
    rest = words[1:]
    if rest[:1] in (["out"], ["off"], ["up"]):
        rest = rest[1:]
    return Goal.clear(parse_region(rest))


def _parse_line_up(words: list[str]) -> Goal | None:
    rest, order = words, None
    for phrase, reverse in ((["from", "left", "to", "right"], False), (["from", "right", "to", "left"], True),
                            (["left", "to", "right"], False), (["right", "to", "left"], True)):  # fmt: skip
        at = _find(rest, phrase)
        if at is not None:
            rest, order = rest[:at] + rest[at + len(phrase) :], reverse
            break
    row = None
    for phrase in (["in", "a", "row"], ["in", "a", "line"], ["in", "one", "row"], ["in", "order"]):
        row = _find(rest, phrase)
        if row is not None:
            rest = rest[:row] + rest[row + len(phrase) :]
            break
    if rest[:2] == ["line", "up"]:
        rest = rest[2:]
    elif rest[0] in LINE_VERBS and (order is not None or row is not None):
        rest = rest[1:]
    else:
        return None
    names = parse_object_list(rest)
    return Goal.line_up(*(reversed(names) if order else names))


def _parse_gather(words: list[str]) -> Goal | None:
    if words[0] not in GATHER_VERBS:
        return None
    at = next((i for i, w in enumerate(words) if w in GATHER_PREPS and i > 1), None)
    if at is None:
        return None
    tail = words[at + 1 :]
    if tail and tail[-1] in SHAPE_WORDS:
        return None  # "put A on (top of) B" is a stack; no region ends in a shape
    selector = [w for w in words[1:at] if w not in ("up", "together")]
    region = parse_region(tail)
    return _gather_with(selector, region)


def _gather_with(words: list[str], region: str) -> Goal:
    core = words
    while core and core[0] in ("all", "of", "the", "every", "each", "both"):
        core = core[1:]
    if len(core) == 1 and (core[0] in SHAPE_PLURALS or (core[0] in SHAPE_WORDS and words[:1] in (["every"], ["each"]))):
        return Goal.gather(region, shape=SHAPE_PLURALS.get(core[0]) or SHAPE_WORDS[core[0]])
    if len(core) == 1 and core[0].endswith("s"):
        raise UnknownTokenError("shape", core[0], SHAPES)
    if core and core[-1] in OBJECT_NOUNS:
        colour_words = [w for w in core[:-1] if w not in COLOUR_NOUNS and w not in (",", "and", "or", "the")]
        if colour_words in (["warm"], ["cool"], ["cold"]):
            return Goal.gather(region, colours=WARM_COLOURS if colour_words == ["warm"] else COOL_COLOURS)
        colours = []
        for w in colour_words:
            if COLOUR_WORDS.get(w) is None:
                raise UnknownTokenError("colour", w, list(COLOURS))
            colours.append(COLOUR_WORDS[w])
        return Goal.gather(region, colours=tuple(colours))
    names = parse_object_list(words)
    if len(names) == 1:
        return Goal.move(names[0], region=region)
    return Goal.gather(region, objects=tuple(names))


def _parse_stack(words: list[str]) -> Goal | None:
    rest = words
    if rest[:3] in (["build", "a", "tower"], ["make", "a", "tower"]):
        rest = rest[4:] if rest[3:4] in (["of"], ["with"], ["from"]) else rest[3:]
    elif rest[0] in STACK_VERBS:
        rest = rest[2:] if rest[1:2] == ["up"] else rest[1:]
    else:
        return None
    groups: list[list[str]] = [[]]
    i = 0
    while i < len(rest):
        if rest[i : i + 3] == ["on", "top", "of"]:
            i += 3
        elif rest[i] in ("on", "onto", "atop", "upon"):
            i += 1
        else:
            groups[-1].append(rest[i])
            i += 1
            continue
        groups.append([])
    if len(groups) < 2:
        return None
    return Goal.stack(*(parse_object([w for w in g if w not in (",", "and")]) for g in groups))


def parse_region(words: list[str]) -> str:
    core = list(words)
    while core and core[0] in ("the", "of"):
        core = core[1:]
    phrase = " ".join(core)
    for suffix in (" of the table", " of the board", " of the tabletop"):
        if phrase.endswith(suffix) and phrase not in REGION_WORDS:
            phrase = phrase[: -len(suffix)]
    region = REGION_WORDS.get(phrase)
    if region is None:
        raise UnknownTokenError("region", phrase or "(none)", list(REGIONS))
    return region


def parse_object_list(words: list[str]) -> list[str]:
    """'the red square, the blue circle and the green triangle' -> their names."""
    groups: list[list[str]] = [[]]
    for w in words:
        if w in (",", "and"):
            groups.append([])
        else:
            groups[-1].append(w)
    return [parse_object(g) for g in groups if g]


def _find(words: list[str], phrase: list[str]) -> int | None:
    return next((i for i in range(len(words) - len(phrase) + 1) if words[i : i + len(phrase)] == phrase), None)
