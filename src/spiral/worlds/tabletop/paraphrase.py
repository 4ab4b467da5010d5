"""Paraphrases of action instructions, split into wordings used in training and wordings held out,
so we can measure how a model does on instructions worded in ways it never saw.

Every paraphrase parses back to the same action (tested), so the split is only about wording.
"""

from __future__ import annotations

import numpy as np

from spiral.worlds.tabletop.actions import Action
from spiral.worlds.tabletop.grammar import to_text

# Per split: verbs, templates per kind of action, and the phrases that name each region and each
# relation to another object (a phrase goes between the subject and the anchor; a region or relation
# not listed keeps its canonical name). The training split draws from many wordings so a model learns
# to read the meaning rather than one phrase; no word of a held-out wording that canonical
# instructions do not use appears in it (tested), and every wording parses back to its action (tested).
WORDINGS = {
    "train": {
        # Many verbs, put and place among them: an instruction's verb must not decide where the
        # subject goes (with eight verbs, an unseen one before "on the right side of" made a put).
        "verbs": (
            "move", "shift", "slide", "push", "take", "reposition", "relocate", "nudge", "get", "send", "guide",
            "transfer", "shove", "steer", "pull", "haul", "place", "put", "roll", "glide", "scoot", "tug", "tow",
            "lead", "pass", "toss", "drive", "propel", "ferry", "convey", "deliver", "transport", "budge", "edge",
            "inch", "maneuver", "manoeuvre", "displace", "lug", "cart", "wheel", "bump", "flick", "sweep", "shuffle",
        ),
        "region": (
            "{verb} the {s} to the {r}", "{verb} the {s} into the {r}", "{verb} the {s} so it is at the {r}",
            "{verb} the {s} until it is at the {r}", "{verb} the {s} so that it ends up at the {r}",
        ),
        "relation": (
            "{verb} the {s} {rel} the {a}", "{verb} the {s} so it is {rel} the {a}", "{verb} the {s} so that it is {rel} the {a}",
            "{verb} the {s} until it is {rel} the {a}", "{verb} the {s} so that it ends up {rel} the {a}",
        ),
        "on": (
            "put the {s} on the {a}", "place the {s} onto the {a}", "put the {s} onto the {a}", "place the {s} on the {a}",
            "{verb} the {s} onto the {a}", "put the {s} upon the {a}", "lift the {s} onto the {a}",
            "rest the {s} on the {a}", "pile the {s} onto the {a}", "balance the {s} on the {a}",
            "{verb} the {s} so it rests on the {a}", "{verb} the {s} so that it sits on the {a}", "lift the {s} up onto the {a}",
            "put the {s} on the top of the {a}", "{verb} the {s} onto the top of the {a}", "place the {s} on the top of the {a}",
        ),
        "regions": {
            "left side": ("left side", "left edge", "left part", "left"),
            "right side": ("right side", "right edge", "right part", "right"),
            "top side": ("top side", "top edge", "top", "back", "rear", "back edge", "background"),
            "bottom side": ("bottom side", "bottom edge", "bottom", "foreground", "bottom part"),
            "middle column": ("middle column", "central column", "centre column"),
            "centre": ("centre", "middle", "centre of the table", "middle of the table"),
            "top left corner": ("top left corner", "top left", "left top corner"),
            "top middle": ("top middle", "top centre"),
            "top right corner": ("top right corner", "top right", "right top corner"),
            "middle left": ("middle left", "left middle", "centre left", "left centre"),
            "middle right": ("middle right", "right middle", "centre right", "right centre"),
            "bottom left corner": ("bottom left corner", "bottom left", "left bottom corner"),
            "bottom middle": ("bottom middle", "bottom centre"),
            "bottom right corner": ("bottom right corner", "bottom right", "right bottom corner"),
        },
        "relations": {
            "left of": ("to the left of", "left of", "on the left of", "just left of", "to the left side of", "west of", "to the west of", "leftward of", "on the west side of"),
            "right of": ("to the right of", "right of", "on the right of", "just right of", "to the right side of", "east of", "to the east of", "rightward of", "on the east side of"),
            "above": (
                "above", "directly above", "just above", "north of", "beyond", "at the back of", "to the rear of",
                "at the rear of", "further back than", "past", "farther from the camera than", "on the north side of",
            ),
            "below": (
                "below", "directly below", "beneath", "under", "underneath", "south of", "ahead of", "just ahead of",
                "before", "forward of", "closer to the camera than", "on the south side of",
            ),
        },
    },
    "heldout": {
        "verbs": ("drag", "carry", "bring"),
        "region": ("{verb} the {s} towards the {r}",),
        "relation": ("{verb} the {s} {rel} the {a}",),
        "on": ("set the {s} on top of the {a}", "stack the {s} atop the {a}"),
        "regions": {
            "left side": ("left half",), "right side": ("right-hand side",), "top side": ("far side",),
            "bottom side": ("near side",), "centre": ("center",), "top left corner": ("upper-left corner",),
            "top right corner": ("upper right",), "bottom left corner": ("lower left corner",), "bottom right corner": ("lower-right",),
        },
        "relations": {
            "left of": ("on the left-hand side of",), "right of": ("on the right side of",), "above": ("behind",), "below": ("in front of",),
        },
    },
}  # fmt: skip
SPLITS = tuple(WORDINGS)


def paraphrase(action: Action, rng: np.random.Generator, split: str = "train") -> str:
    """A random wording of the action from the given split ("train" includes the canonical text)."""
    w = WORDINGS[split]
    if split == "train" and rng.random() < 0.5:
        return to_text(action)
    verb = str(rng.choice(w["verbs"]))
    if action.relation == "on":
        return _pick(w["on"], rng).format(verb=verb, s=action.subject, a=action.anchor)
    if action.relation == "in":
        template = _pick(w["region"], rng)
        return template.format(verb=verb, s=action.subject, r=_pick(w["regions"].get(action.anchor, (action.anchor,)), rng))
    template = _pick(w["relation"], rng)
    return template.format(verb=verb, s=action.subject, rel=_pick(w["relations"][action.relation], rng), a=action.anchor)


def on_phrases(split: str) -> tuple[str, ...]:
    """The words between the subject and the anchor in each of the split's templates for puts."""
    return tuple(template.split("{s} ", 1)[1].split(" the {a}", 1)[0] for template in WORDINGS[split]["on"])


def phrase_of(action: Action, text: str, split: str = "heldout") -> str:
    """The split's phrase naming the action's region or relation (for puts: the words between the
    subject and the anchor) that `text` uses, the longest where several fit; the canonical name
    when none does. For breaking results down by wording."""
    w = WORDINGS[split]
    if action.relation == "on":
        options = on_phrases(split)
    elif action.relation == "in":
        options = w["regions"].get(action.anchor, (action.anchor,))
    else:
        options = w["relations"][action.relation]
    found = [phrase for phrase in options if f" {phrase} " in f" {text} "]
    return max(found, key=len) if found else (action.anchor if action.relation == "in" else action.relation)


def _pick(options: tuple[str, ...], rng: np.random.Generator) -> str:
    # A single option takes no draw, so the held-out split's wordings stay what they always were.
    return options[0] if len(options) == 1 else str(rng.choice(options))
