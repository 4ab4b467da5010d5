"""Reference forms grounded in hand-built scenes: each kind of description, the refusals, and the
two phrasings whose order the scene decides. (That every generated request's reading grounds to
what it means is tested in test_freeform.py.)"""

import pytest

from spiral.worlds.tabletop.goal_spec import Goal
from spiral.worlds.tabletop.references import candidates, ground, tidy
from spiral.worlds.tabletop.scene import Scene, TableObject

REFUSALS = ("missing", "ambiguous", "unsupported")
SCENE = Scene(
    (
        TableObject("red", "square", "large", 0.15, 0.15),  # top left corner
        TableObject("yellow", "circle", "small", 0.15, 0.15, on="red square"),
        TableObject("blue", "circle", "medium", 0.5, 0.5),  # centre
        TableObject("green", "triangle", "large", 0.85, 0.85),  # bottom right corner
    )
)


def names(form: str) -> list[str]:
    return [o.name for o in candidates(form, SCENE)]


@pytest.mark.parametrize(
    ("form", "fits"),
    [
        ("red square", ["red square"]),
        ("blue", ["blue circle"]),
        ("circle", ["yellow circle", "blue circle"]),
        ("small circle", ["yellow circle"]),
        ("large", ["red square", "green triangle"]),
        ("large green", ["green triangle"]),
        ("warm", ["red square", "yellow circle"]),
        ("cool triangle", ["green triangle"]),
        ("smallest", ["yellow circle"]),
        ("largest circle", ["blue circle"]),
        ("largest", ["red square", "green triangle"]),
        ("rightmost", ["green triangle"]),
        ("leftmost", ["red square", "yellow circle"]),  # a stack: tied
        ("in centre", ["blue circle"]),
        ("in top left corner", ["red square", "yellow circle"]),
        ("in top right corner", []),
        ("on red square", ["yellow circle"]),
        ("under yellow circle", ["red square"]),
        ("on blue circle", []),
        ("purple circle", []),
        ("blue square", []),
    ],
)
def test_a_form_fits_the_objects_it_describes(form, fits):
    assert names(form) == fits


def test_a_reading_grounds_to_the_canonical_goal_or_a_refusal_that_says_which_form():
    grounded = ground("move [rightmost] to the left of [in centre], then clear the top side", SCENE, REFUSALS)
    assert grounded.text == "move the green triangle to the left of the blue circle, then clear the top side"
    assert grounded.goal == Goal.then(
        Goal.move("green triangle", relation="left of", anchor="blue circle"), Goal.clear("top side")
    )
    ambiguous = ground("swap [circle] and [green]", SCENE, REFUSALS)
    assert (ambiguous.refusal, ambiguous.goal) == ("ambiguous", None) and "[circle]" in ambiguous.why
    missing = ground("sort the objects by shape, then move [on blue circle] to the centre", SCENE, REFUSALS)
    assert missing.refusal == "missing" and missing.text == "cannot: missing"
    assert ground("move the purple square to the centre", SCENE, REFUSALS).refusal == "missing"
    assert ground("cannot: unsupported", SCENE, REFUSALS).refusal == "unsupported"


def test_the_scene_orders_a_tower_by_size_and_a_row_given_right_to_left():
    assert ground("stack by size [red] and [blue circle]", SCENE, REFUSALS).goal == Goal.stack("blue circle", "red square")
    row = ground("line up [green] and [blue] from right to left", SCENE, REFUSALS)
    assert row.goal == Goal.line_up("blue circle", "green triangle")


def test_all_in_a_region_is_every_object_standing_there_now():
    grounded = ground("gather [all in left side] in the right side", SCENE, REFUSALS)
    assert grounded.goal == Goal.gather("right side", objects=("red square", "yellow circle"))
    assert ground("gather [all in top right corner] in the centre", SCENE, REFUSALS).refusal == "missing"


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        ("move [huge] to the centre", "'huge' is not a word of a reference"),
        ("move [in the moon] to the centre", "is not a region"),
        ("move [on red] to the centre", "is not an object's name"),
        ("move [red to the centre", "unbalanced"),
        ("move [] to the centre", "empty reference"),
        ("cannot: bored", "unknown refusal"),
        ("red red red", "is not a goal"),
    ],
)
def test_an_unusable_reading_says_why(answer, why):
    with pytest.raises(ValueError, match=why):
        ground(answer, SCENE, REFUSALS)


def test_spacing_a_tokenizer_puts_in_is_taken_out():
    assert tidy(" stack [ blue ]  on [ red square ] , then cannot : x ") == "stack [blue] on [red square], then cannot: x"
