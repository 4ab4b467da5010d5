"""Instruction text for tabletop actions: a printer for the canonical wording and a parser that also
accepts common paraphrases ("slide", "place ... onto ...", "upper-left", "center", ...).

    move the red square to the top left corner
    move the red square to the left of the blue circle      (also: right of, above, below)
    put the green triangle on the yellow square

`parse(to_text(a)) == a` for every action (tested as a property).
"""

from __future__ import annotations

import re

from spiral.errors import SpiralError, UnknownTokenError
from spiral.worlds.tabletop.actions import DIRECTIONS, REGIONS, RELATIONS, Action
from spiral.worlds.tabletop.scene import COLOURS, SHAPES

VERBS = (
    "move", "shift", "slide", "push", "drag", "bring", "place", "put", "set", "carry", "take", "lift", "stack",
    "reposition", "relocate", "nudge", "rest", "pile", "balance",
    "get", "send", "guide", "transfer", "shove", "steer", "pull", "haul", "roll", "glide", "scoot", "tug", "tow",
    "lead", "pass", "toss", "drive", "propel", "ferry", "convey", "deliver", "transport", "budge", "edge", "inch",
    "maneuver", "manoeuvre", "displace", "lug", "cart", "wheel", "bump", "flick", "sweep", "shuffle",
)  # fmt: skip
COLOUR_WORDS = {c: c for c in COLOURS} | {"violet": "purple", "grey": None, "gray": None}
SHAPE_WORDS = {s: s for s in SHAPES} | {
    "box": "square", "block": "square", "cube": "square",
    "disc": "circle", "disk": "circle", "ball": "circle", "round": "circle",
    "pyramid": "triangle", "wedge": "triangle",
}  # fmt: skip
ON_PHRASES = ("on", "onto", "on to", "on top of", "atop", "upon", "on the top of", "onto the top of", "on to the top of")
DIRECTION_WORDS = {
    "left": "left of", "left side": "left of", "left hand side": "left of", "west": "left of",
    "right": "right of", "right side": "right of", "right hand side": "right of", "east": "right of",
    "leftward": "left of", "rightward": "right of", "west side": "left of", "east side": "right of",
    "above": "above", "behind": "above", "beyond": "above", "back": "above", "north": "above", "rear": "above",
    "past": "above", "north side": "above", "further back than": "above", "farther back than": "above",
    "farther from the camera than": "above", "further from the camera than": "above",
    "higher than": "above", "higher up than": "above", "farther away than": "above", "rearward": "above",
    "below": "below", "front": "below", "beneath": "below", "under": "below", "underneath": "below", "south": "below",
    "ahead": "below", "south side": "below", "before": "below", "forward": "below", "closer to the camera than": "below",
    "fore": "below", "foot": "below", "base": "below", "forward from": "below",
}  # fmt: skip
FILLERS = {
    "to",
    "towards",
    "toward",
    "into",
    "in",
    "the",
    "at",
    "so",
    "that",
    "it",
    "is",
    "sits",
    "just",
    "directly",
    "immediately",
    "until",
    "ends",
    "up",
    "rests",
    "over",
    "across",
}


def _region_synonyms() -> dict[str, str]:
    syn: dict[str, str] = {r: r for r in REGIONS}
    for side, words in {
        "left side": ["left", "left half", "left edge", "left hand side", "left part"],
        "right side": ["right", "right half", "right edge", "right hand side", "right part"],
        "top side": [
            "top",
            "top half",
            "top edge",
            "upper side",
            "upper half",
            "far side",
            "back",
            "rear",
            "back edge",
            "background",
        ],
        "bottom side": [
            "bottom",
            "bottom half",
            "bottom edge",
            "bottom part",
            "lower side",
            "lower half",
            "near side",
            "front",
            "foreground",
        ],
        "middle column": ["central column", "centre column", "center column"],
        "centre": ["center", "middle", "centre of the table", "center of the table", "middle of the table"],
    }.items():
        syn.update({w: side for w in words})
    for v, vwords in {"top": ("top", "upper"), "bottom": ("bottom", "lower")}.items():
        for h in ("left", "right"):
            for vw in vwords:
                for form in (f"{vw} {h} corner", f"{vw} {h}", f"{vw} {h} hand corner", f"{h} {vw} corner", f"{h} {vw}"):
                    syn[form] = f"{v} {h} corner"
        for mid in ("middle", "centre", "center"):
            for vw in vwords:
                syn[f"{vw} {mid}"] = f"{v} middle"
    for h in ("left", "right"):
        for mid in ("middle", "centre", "center"):
            syn[f"{mid} {h}"] = f"middle {h}"
            syn[f"{h} {mid}"] = f"middle {h}"
    return syn


REGION_WORDS = _region_synonyms()


def to_text(action: Action) -> str:
    """The canonical instruction for an action."""
    s, a = action.subject, action.anchor
    if action.relation == "in":
        return f"move the {s} to the {a}"
    if action.relation == "on":
        return f"put the {s} on the {a}"
    if action.relation in ("left of", "right of"):
        return f"move the {s} to the {action.relation} the {a}"
    return f"move the {s} {action.relation} the {a}"


def _tokens(text: str) -> list[str]:
    return re.sub(r"[^a-z ]", " ", text.lower().replace("-", " ")).split()


def parse_object(words: list[str]) -> str:
    """'the red square' / 'red box' -> 'red square'."""
    words = [w for w in words if w != "the"]
    if len(words) != 2:
        raise SpiralError(f"expected an object such as 'the red square', got {' '.join(words)!r}")
    colour_word, shape_word = words
    colour = COLOUR_WORDS.get(colour_word)
    if colour is None:
        raise UnknownTokenError("colour", colour_word, list(COLOURS))
    shape = SHAPE_WORDS.get(shape_word)
    if shape is None:
        raise UnknownTokenError("shape", shape_word, list(SHAPES))
    return f"{colour} {shape}"


def _ends_with_object(words: list[str]) -> bool:
    return len(words) >= 2 and (words[-1] in SHAPE_WORDS or words[-2] in COLOUR_WORDS)


def _strip_fillers(words: list[str]) -> list[str]:
    i = 0
    while i < len(words) and words[i] in FILLERS:
        i += 1
    return words[i:]


def parse(text: str) -> Action:
    """Parse an instruction into an Action; raises SpiralError naming the unknown word."""
    words = _tokens(text)
    if words and words[0] == "please":
        words = words[1:]
    if not words:
        raise SpiralError("empty instruction; try e.g. 'move the red square to the left side'")
    if words[0] not in VERBS:
        raise UnknownTokenError("verb", words[0], VERBS)
    words = words[1:]
    if words and words[0] == "up":  # "pick up", "lift up"
        words = words[1:]
    start = 1 if words[:1] == ["the"] else 0
    subject = parse_object(words[start : start + 2])
    rest = words[start + 2 :]
    if not rest:
        raise SpiralError(f"the instruction does not say where to put the {subject}; e.g. 'to the left side'")
    if _ends_with_object(rest):
        n = 3 if len(rest) >= 3 and rest[-3] == "the" else 2
        anchor = parse_object(rest[-n:])
        return Action(subject, _parse_relation(rest[:-n]), anchor)
    phrase = " ".join(_strip_fillers(rest))
    for suffix in (" of the table", " of the board"):
        if phrase.endswith(suffix) and phrase not in REGION_WORDS:
            phrase = phrase[: -len(suffix)]
    region = REGION_WORDS.get(phrase)
    if region is None:
        raise UnknownTokenError("region", phrase or " ".join(rest), list(REGIONS))  # "up" is all fillers
    return Action(subject, "in", region)


def _parse_relation(words: list[str]) -> str:
    phrase = " ".join(words)
    core = _strip_fillers(words)  # "so that it sits on", "up onto"; no on-phrase starts with a filler
    if " ".join(core) in ON_PHRASES:
        return "on"
    if core[:1] == ["on"]:
        core = _strip_fillers(core[1:])
    if core[-1:] == ["of"]:
        core = core[:-1]
    relation = DIRECTION_WORDS.get(" ".join(core))
    if relation is None:
        raise UnknownTokenError("relation", phrase or "(none)", [r for r in RELATIONS if r != "in"])
    assert relation in DIRECTIONS
    return relation
