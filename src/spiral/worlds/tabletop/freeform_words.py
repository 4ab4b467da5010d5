"""Wording tables for free-form requests (`freeform.py`), split into training and held-out entries.

Every table maps a split to its entries; an entry's id is "<table>:<text>", so an entry listed
under both splits would share an id (a test forbids it). Slots, filled by `str.format`:

    {s} {a} {t} {m} {b} {x}   references to single objects ("the red one", "the box on the left")
    {objs} {head} {y}         lists of references
    {first} {second} {third}  the objects of a row, left to right
    {r} / {at_r}              a region as a noun phrase ("the far left") / with its preposition
    {rel}                     a relation phrase with its anchor ("just left of the blue circle")
    {sel}                     a set of objects ("every ball", "the warm-coloured pieces")
    {n} {ns}                  a generic noun ("piece", "pieces"); {p} {ps} a shape word
    {c} {cl} {cor} {clthe}    a colour, "red and blue", "red or blue", "red and the blue"
    {g} {k}                   warm / cool, a count word
    {A} {B} {C}               the parts of a compound, in the order they are carried out

The held-out entries are about a third as many as the training ones and are worded the way a new
user might put it; words they alone use ("drag", "tile", "color", "afterwards") are never used by a
training entry, nor by the training wordings of `paraphrase.py` (tested), so that a model trained on
either never sees them. Conversely no training entry uses a word that only `paraphrase.py`'s held-out
wordings use ("behind", "upper", "center", "carry"...).
"""

from __future__ import annotations

from spiral.worlds.tabletop.actions import REGIONS
from spiral.worlds.tabletop.scene import COLOURS, SHAPES

Lexicon = dict[str, tuple[str, ...]]

# Words both splits may use: colour and shape names, canonical region names and relation phrases.
CANONICAL_WORDS = frozenset(
    {*COLOURS, *SHAPES, *(f"{s}s" for s in SHAPES), *(w for r in REGIONS for w in r.split())}
    | {"to", "the", "left", "right", "of", "above", "below"}
)
COUNT_WORDS = ("zero", "one", "two", "three", "four", "five", "six")

# --- Nouns and adjectives -------------------------------------------------------------------------
# "singular/plural"; the canonical shape name is used besides these.
SHAPE_NOUNS: dict[str, Lexicon] = {
    "square": {"train": ("box/boxes", "block/blocks", "cube/cubes"), "heldout": ("tile/tiles",)},
    "circle": {"train": ("disc/discs", "disk/disks", "ball/balls", "round piece/round pieces"), "heldout": ("ring/rings",)},
    "triangle": {"train": ("wedge/wedges", "pyramid/pyramids"), "heldout": ("triangular piece/triangular pieces",)},
}
OBJECT_NOUNS: Lexicon = {
    "train": ("one/ones", "piece/pieces", "object/objects", "thing/things", "shape/shapes"),
    "heldout": ("item/items",),
}
# Absolute size classes: "the big circle" is the large circle, and is never said of a medium one.
SIZE_WORDS: dict[str, Lexicon] = {
    "large": {"train": ("big", "large"), "heldout": ("huge",)},
    "medium": {"train": ("medium", "medium-sized"), "heldout": ("mid-sized",)},
    "small": {"train": ("small", "little"), "heldout": ("tiny",)},
}
SUPERLATIVES: dict[str, Lexicon] = {
    "large": {"train": ("biggest", "largest"), "heldout": ()},
    "small": {"train": ("smallest",), "heldout": ("tiniest",)},
}

# --- References to one object ---------------------------------------------------------------------
GROUP_REF: Lexicon = {
    "train": ("the {g}-coloured {n}", "the {n} in a {g} colour", "the only {g} {n}"),
    "heldout": ("the {g}-toned {n}",),
}
# One object alone in a region ("whatever is ..." also names a set: never for a bad reference).
REGION_REF: Lexicon = {
    "train": ("the {n} {at_r}", "the {n} sitting {at_r}", "whatever is {at_r}"),
    "heldout": ("whichever {n} is {at_r}",),
}
# The object furthest in a direction (with a clear margin).
EXTREME_REF: dict[str, Lexicon] = {
    "left": {"train": ("the leftmost {n}", "the {n} furthest to the left"), "heldout": ("the {n} farthest to the left",)},
    "right": {"train": ("the rightmost {n}", "the {n} furthest to the right"), "heldout": ("the {n} farthest to the right",)},
    "top": {"train": ("the topmost {n}", "the {n} nearest the top"), "heldout": ("the uppermost {n}",)},
    "bottom": {"train": ("the bottommost {n}", "the {n} nearest the bottom"), "heldout": ()},
}
ON_REF: Lexicon = {
    "train": ("the {n} on {x}", "the {n} on top of {x}", "the {n} sitting on {x}", "whatever is on top of {x}"),
    "heldout": ("the {n} perched on {x}",),
}
UNDER_REF: Lexicon = {
    "train": ("the {n} that {x} is sitting on", "the {n} holding up {x}", "the {n} {x} rests on"),
    "heldout": ("the {n} supporting {x}",),
}

# --- Sets of objects ------------------------------------------------------------------------------
# "{k}" frames need a count of two or more; "both" frames exactly two.
SHAPE_SET: Lexicon = {
    "train": ("all the {ps}", "every {p}", "each {p}", "the {ps}", "all of the {ps}", "the {k} {ps}", "both {ps}"),
    "heldout": ("every single {p}", "all {k} {ps}"),
}
GROUP_SET: Lexicon = {
    "train": ("the {g}-coloured {ns}", "all the {g} colours", "everything {g}-coloured", "the {g} {ns}", "all the {g} {ns}"),
    "heldout": ("the {g}-toned {ns}", "anything with a {g} color"),
}
COLOUR_SET: Lexicon = {
    "train": ("the {cl} {ns}", "the {clthe} {ns}", "all the {cl} {ns}", "everything that is {cor}", "every {cor} {n}"),
    "heldout": ("anything that's {cor}", "the {ns} coloured {cor}"),
}
# Objects selected by where they stand now.
LOCATION_SET: Lexicon = {
    "train": ("everything {at_r}", "whatever is {at_r}", "anything {at_r}", "all the {ns} {at_r}"),
    "heldout": ("the stuff {at_r}", "whatever happens to be {at_r}"),
}
LIST2: Lexicon = {
    "train": ("{x} and {y}", "both {x} and {y}", "{x} as well as {y}"),
    "heldout": ("{x} plus {y}", "{x} along with {y}"),
}
LIST_MORE: Lexicon = {"train": ("{head} and {y}", "{head} as well as {y}"), "heldout": ("{head}, and also {y}",)}

# --- Regions and relations ------------------------------------------------------------------------
# "<preposition> <noun phrase>"; the noun phrase is the entry less its first word. The canonical
# "in the <region>" is used besides these.
REGION_PHRASES: dict[str, Lexicon] = {
    "left side": {"train": ("on the left", "along the left edge", "in the left column"), "heldout": ("on the far left", "in the left half")},
    "right side": {"train": ("on the right", "along the right edge", "in the right column"), "heldout": ("on the far right", "in the right half")},
    "top side": {"train": ("at the top", "along the top edge", "in the top row", "at the back"), "heldout": ("in the upper half",)},
    "bottom side": {"train": ("at the bottom", "along the bottom edge", "in the bottom row", "in the foreground"), "heldout": ("in the lower half",)},
    "middle column": {"train": ("in the central column", "in the centre column"), "heldout": ("in the center column",)},
    "centre": {"train": ("in the middle", "in the middle of the table", "in the centre of the table", "at the centre"), "heldout": ("in the center", "in the dead center")},
    "top left corner": {"train": ("in the top left", "in the top-left corner", "at the top left"), "heldout": ("in the upper left corner",)},
    "top right corner": {"train": ("in the top right", "in the top-right corner", "at the top right"), "heldout": ("in the upper-right corner",)},
    "bottom left corner": {"train": ("in the bottom left", "in the bottom-left corner", "at the bottom left"), "heldout": ("in the lower-left corner",)},
    "bottom right corner": {"train": ("in the bottom right", "in the bottom-right corner", "at the bottom right"), "heldout": ("in the lower right corner",)},
    "top middle": {"train": ("in the top centre", "at the top centre", "in the middle of the top edge"), "heldout": ("at the top center",)},
    "bottom middle": {"train": ("in the bottom centre", "at the bottom centre", "in the middle of the bottom edge"), "heldout": ("at the bottom center",)},
    "middle left": {"train": ("in the centre left", "in the middle of the left edge"), "heldout": ("in the center left",)},
    "middle right": {"train": ("in the centre right", "in the middle of the right edge"), "heldout": ("in the center right",)},
}  # fmt: skip
# The canonical phrase ("to the left of {a}", "above {a}") is used besides these.
RELATION_PHRASES: dict[str, Lexicon] = {
    "left of": {
        "train": ("left of {a}", "just left of {a}", "next to {a} on its left", "on the left of {a}", "to the west of {a}", "beside {a}, on the left"),
        "heldout": ("on the left-hand side of {a}", "alongside {a} on the left"),
    },
    "right of": {
        "train": ("right of {a}", "just right of {a}", "next to {a} on its right", "on the right of {a}", "to the east of {a}", "beside {a}, on the right"),
        "heldout": ("on the right-hand side of {a}", "alongside {a} on the right"),
    },
    "above": {"train": ("just above {a}", "directly above {a}", "north of {a}", "next to {a}, nearer the top"), "heldout": ("behind {a}",)},
    "below": {"train": ("just below {a}", "directly below {a}", "south of {a}", "next to {a}, nearer the bottom"), "heldout": ("in front of {a}",)},
}  # fmt: skip

# --- Goals ----------------------------------------------------------------------------------------
# Imperative frames take any wrapper ("could you ..."); state frames ("... should be ...") only the
# ones that leave the start of the sentence alone.
MOVE_REGION: Lexicon = {
    "train": (
        "move {s} to {r}", "put {s} {at_r}", "place {s} {at_r}", "slide {s} over to {r}", "shift {s} to {r}",
        "take {s} over to {r}", "get {s} to {r}", "relocate {s} to {r}", "send {s} to {r}", "nudge {s} over to {r}",
    ),
    "heldout": ("drag {s} to {r}", "carry {s} over to {r}", "park {s} {at_r}"),
}  # fmt: skip
MOVE_REGION_STATE: Lexicon = {
    "train": ("{s} should be {at_r}", "I want {s} {at_r}", "{s} goes {at_r}", "I'd like {s} {at_r}"),
    "heldout": ("{s} belongs {at_r}",),
}
MOVE_RELATION: Lexicon = {
    "train": (
        "move {s} {rel}",
        "put {s} {rel}",
        "place {s} {rel}",
        "slide {s} {rel}",
        "shift {s} so it is {rel}",
        "get {s} {rel}",
    ),
    "heldout": ("drag {s} {rel}", "bring {s} {rel}"),
}
MOVE_RELATION_STATE: Lexicon = {"train": ("{s} should be {rel}", "I want {s} {rel}"), "heldout": ("{s} belongs {rel}",)}
STACK2: Lexicon = {
    "train": (
        "stack {t} on {b}", "stack {t} on top of {b}", "put {t} on {b}", "put {t} on top of {b}", "place {t} onto {b}",
        "pile {t} onto {b}", "rest {t} on {b}", "lift {t} onto {b}", "move {t} onto {b}", "put {t} onto {b}",
    ),
    "heldout": ("set {t} atop {b}", "perch {t} on {b}", "pop {t} on top of {b}"),
}  # fmt: skip
STACK2_STATE: Lexicon = {"train": ("{t} should sit on {b}", "I want {t} on top of {b}"), "heldout": ("{t} belongs atop {b}",)}
STACK3: Lexicon = {
    "train": (
        "stack {t} on {m} on {b}",
        "build a tower with {b} at the bottom, {m} in the middle and {t} on top",
        "make a stack with {b} at the bottom, {m} on it and {t} on top",
        "pile {t}, {m} and {b} into a tower, top to bottom",
    ),
    "heldout": ("set {t} atop {m} atop {b}", "make a tower from the base up: {b}, {m}, {t}"),
}
# A tower whose order follows from the sizes (the list is in no particular order).
STACK_BY_SIZE: Lexicon = {
    "train": (
        "stack {objs} with the biggest at the bottom",
        "pile {objs} up, largest at the bottom",
        "build a tower out of {objs}, big ones at the bottom",
    ),
    "heldout": ("make a tower out of {objs}, biggest at the base",),
}
LINE_LTR: Lexicon = {
    "train": (
        "line up {objs} from left to right", "arrange {objs} in a row from left to right", "put {objs} in a row, left to right",
        "make a row of {objs}, going left to right", "line {objs} up left to right", "place {objs} in a line from left to right",
    ),
    "heldout": ("lay {objs} out side by side, left to right", "set out {objs} in a line, starting from the left"),
}  # fmt: skip
LINE_RTL: Lexicon = {
    "train": (
        "line up {objs} from right to left",
        "arrange {objs} in a row, right to left",
        "make a row of {objs}, going right to left",
    ),
    "heldout": ("lay {objs} out side by side, right to left",),
}
LINE_NAMED2: Lexicon = {
    "train": ("put {objs} in a row with {first} on the left", "line up {objs}, {first} on the left and {second} on the right"),
    "heldout": ("lay {objs} out side by side with {first} on the far left",),
}
LINE_NAMED3: Lexicon = {
    "train": (
        "make a row: {first} on the left, {second} in the middle, {third} on the right",
        "line up {objs} with {first} on the left, {second} in the middle and {third} on the right",
    ),
    "heldout": ("lay out a row with {first} leftmost, {third} rightmost and {second} between them",),
}
GATHER: Lexicon = {
    "train": ("gather {sel} {at_r}", "collect {sel} {at_r}", "move {sel} to {r}", "put {sel} together {at_r}", "group {sel} together {at_r}", "slide {sel} over to {r}"),
    "heldout": ("round up {sel} {at_r}", "bring {sel} together {at_r}", "bring {sel} over to {r}"),
}  # fmt: skip
GATHER_STATE: Lexicon = {"train": ("I want {sel} {at_r}",), "heldout": ("I need {sel} {at_r}",)}
SWAP: Lexicon = {
    "train": (
        "swap {a} and {b}", "swap {a} with {b}", "switch {a} and {b} around", "have {a} and {b} trade places",
        "exchange the positions of {a} and {b}", "put {a} where {b} is and {b} where {a} is", "make {a} and {b} swap places",
    ),
    "heldout": ("interchange {a} and {b}", "move {a} to where {b} is and vice versa", "have {a} and {b} change spots"),
}  # fmt: skip
SWAP_STATE: Lexicon = {"train": ("{a} and {b} should swap places",), "heldout": ("{a} and {b} ought to change spots",)}
SORT_COLOUR: Lexicon = {
    "train": (
        "sort the objects by colour", "sort everything by colour", "sort the {ns} by colour", "organise the table by colour",
        "group the {ns} by colour", "put the warm colours on the left and the cool colours on the right",
        "arrange the {ns} by colour, warm on the left and cool on the right",
    ),
    "heldout": ("tidy up the table by color", "organize the {ns} by color", "split the {ns} into warm ones on the left and cool ones on the right"),
}  # fmt: skip
SORT_COLOUR_STATE: Lexicon = {
    "train": (
        "warm colours on the left, cool colours on the right",
        "I want the warm {ns} on the left and the cool ones on the right",
    ),
    "heldout": ("warm tones to the left, cool tones to the right",),
}
# {sq} {ci} {tr}: plural words for squares, circles and triangles (canonical or synonyms).
SORT_SHAPE: Lexicon = {
    "train": (
        "sort the objects by shape", "sort everything by shape", "group the {ns} by shape", "organise the table by shape",
        "put the {sq} on the left, the {ci} in the middle and the {tr} on the right",
        "arrange the {ns} by shape: {sq} left, {ci} in the middle, {tr} right",
    ),
    "heldout": ("tidy up the table by shape", "organize the {ns} by shape"),
}  # fmt: skip
SORT_SHAPE_STATE: Lexicon = {
    "train": ("{sq} on the left, {ci} in the middle column, {tr} on the right",),
    "heldout": ("{sq} to the left, {ci} down the middle, {tr} to the right",),
}
CLEAR: Lexicon = {
    "train": ("clear {r}", "clear out {r}", "get everything out of {r}", "empty {r}", "move everything out of {r}", "make sure nothing is {at_r}", "take everything out of {r}"),
    "heldout": ("free up {r}", "vacate {r}", "shift whatever is {at_r} somewhere else"),
}  # fmt: skip
CLEAR_STATE: Lexicon = {
    "train": ("nothing should be left {at_r}", "I want {r} empty", "{r} should be empty"),
    "heldout": ("{r} needs to be empty",),
}
# Things this world cannot do; {c} is a colour other than the object's, {p} a shape word.
UNSUPPORTED: Lexicon = {
    "train": (
        "paint {s} {c}", "colour {s} {c}", "make {s} bigger", "make {s} smaller", "shrink {s}", "rotate {s}",
        "spin {s} around", "turn {s} upside down", "delete {s}", "remove {s} from the table", "throw {s} away",
        "add a {c} {p}", "make a new {c} {p}", "make {s} jump", "hide {s}", "break {s} in two",
    ),
    "heldout": ("get rid of {s}", "enlarge {s}", "turn {s} {c}", "duplicate {s}", "put {s} in the bin", "flip {s} over"),
}  # fmt: skip

# --- Compositions and wrappers --------------------------------------------------------------------
# The slots name the order the parts are carried out in; the text may say them in another order.
COMPOSE2: Lexicon = {
    "train": (
        "{A}, then {B}", "{A} and then {B}", "first {A}, and after that {B}", "{A}. Next, {B}", "{B}, but first {A}",
        "{A}; after that, {B}", "{A}, and once that's done, {B}", "{A} and {B}",
    ),
    "heldout": ("{A}, and afterwards {B}", "{A}. When that's finished, {B}", "{B}. Oh, and {A} first"),
}  # fmt: skip
COMPOSE3: Lexicon = {
    "train": (
        "{A}, then {B}, then {C}",
        "first {A}, then {B}, and finally {C}",
        "{A}. Next, {B}. Finally, {C}",
        "{A}; then {B}; finally {C}",
    ),
    "heldout": ("{A}, afterwards {B}, and lastly {C}",),
}
# A wrapper that starts with "{x}" suits state frames too.
WRAPPERS: Lexicon = {
    "train": (
        "please {x}", "{x}, please", "can you {x}?", "could you {x}?", "can you {x} for me?", "I'd like you to {x}",
        "I want you to {x}", "would you {x}?", "{x}, thanks", "{x}, thank you", "go ahead and {x}", "hey, {x}",
        "ok, {x}", "could you please {x}?", "let's {x}",
    ),
    "heldout": ("kindly {x}", "{x}, cheers", "{x} if you don't mind", "would you be able to {x}?", "I need you to {x}"),
}  # fmt: skip

LEXICON: dict[str, Lexicon] = {
    **{f"shape.{k}": v for k, v in SHAPE_NOUNS.items()},
    "noun": OBJECT_NOUNS,
    **{f"size.{k}": v for k, v in SIZE_WORDS.items()},
    **{f"superlative.{k}": v for k, v in SUPERLATIVES.items()},
    "group ref": GROUP_REF,
    "region ref": REGION_REF,
    **{f"extreme.{k}": v for k, v in EXTREME_REF.items()},
    "on ref": ON_REF,
    "under ref": UNDER_REF,
    "shape set": SHAPE_SET,
    "group set": GROUP_SET,
    "colour set": COLOUR_SET,
    "location set": LOCATION_SET,
    "list2": LIST2,
    "list more": LIST_MORE,
    **{f"region.{k}": v for k, v in REGION_PHRASES.items()},
    **{f"relation.{k}": v for k, v in RELATION_PHRASES.items()},
    "move region": MOVE_REGION,
    "move region state": MOVE_REGION_STATE,
    "move relation": MOVE_RELATION,
    "move relation state": MOVE_RELATION_STATE,
    "stack2": STACK2,
    "stack2 state": STACK2_STATE,
    "stack3": STACK3,
    "stack by size": STACK_BY_SIZE,
    "line ltr": LINE_LTR,
    "line rtl": LINE_RTL,
    "line named2": LINE_NAMED2,
    "line named3": LINE_NAMED3,
    "gather": GATHER,
    "gather state": GATHER_STATE,
    "swap": SWAP,
    "swap state": SWAP_STATE,
    "sort colour": SORT_COLOUR,
    "sort colour state": SORT_COLOUR_STATE,
    "sort shape": SORT_SHAPE,
    "sort shape state": SORT_SHAPE_STATE,
    "clear": CLEAR,
    "clear state": CLEAR_STATE,
    "unsupported": UNSUPPORTED,
    "compose2": COMPOSE2,
    "compose3": COMPOSE3,
    "wrapper": WRAPPERS,
}
