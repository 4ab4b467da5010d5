"""Paraphrases of action instructions, split into wordings used in training and wordings held out,
so we can measure how a model does on instructions worded in ways it never saw.

Every paraphrase parses back to the same action (tested), so the split is only about wording.
"""

from __future__ import annotations

import numpy as np

from spiral.worlds.tabletop.actions import Action
from spiral.worlds.tabletop.grammar import to_text

# (verbs, region phrase templates, "next to" templates, "on" templates) per split.
WORDINGS = {
    "train": {
        "verbs": ("move", "shift", "slide"),
        "region": ("{verb} the {s} to the {r}", "{verb} the {s} into the {r}"),
        "relation": ("{verb} the {s} to the {rel} the {a}", "{verb} the {s} so it is {rel} the {a}"),
        "on": ("put the {s} on the {a}", "place the {s} onto the {a}"),
        "regions": {},
        "relations": {"left of": "left of", "right of": "right of", "above": "above", "below": "below"},
    },
    "heldout": {
        "verbs": ("drag", "carry", "bring"),
        "region": ("{verb} the {s} towards the {r}",),
        "relation": ("{verb} the {s} {rel} the {a}",),
        "on": ("set the {s} on top of the {a}", "stack the {s} atop the {a}"),
        "regions": {
            "left side": "left half", "right side": "right-hand side", "top side": "far side", "bottom side": "near side",
            "centre": "center", "top left corner": "upper-left corner", "top right corner": "upper right",
            "bottom left corner": "lower left corner", "bottom right corner": "lower-right",
        },
        "relations": {
            "left of": "on the left-hand side of", "right of": "on the right side of", "above": "behind", "below": "in front of",
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
        template = str(rng.choice(w["on"]))
        return template.format(s=action.subject, a=action.anchor)
    if action.relation == "in":
        template = str(rng.choice(w["region"]))
        return template.format(verb=verb, s=action.subject, r=w["regions"].get(action.anchor, action.anchor))
    template = str(rng.choice(w["relation"]))
    rel = w["relations"][action.relation]
    if split == "train" and "to the {rel}" in template and action.relation in ("above", "below"):
        template = "{verb} the {s} {rel} the {a}"
    return template.format(verb=verb, s=action.subject, rel=rel, a=action.anchor)
