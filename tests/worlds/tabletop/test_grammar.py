import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spiral.errors import SpiralError, UnknownTokenError
from spiral.worlds.tabletop.actions import REGIONS, RELATIONS, Action
from spiral.worlds.tabletop.grammar import parse, to_text
from spiral.worlds.tabletop.scene import COLOURS, SHAPES

objects = st.builds(lambda c, s: f"{c} {s}", st.sampled_from(list(COLOURS)), st.sampled_from(SHAPES))


@st.composite
def actions(draw):
    subject = draw(objects)
    relation = draw(st.sampled_from(RELATIONS))
    anchor = draw(st.sampled_from(list(REGIONS))) if relation == "in" else draw(objects.filter(lambda o: o != subject))
    return Action(subject, relation, anchor)


@settings(max_examples=500, deadline=None)
@given(actions())
def test_parse_inverts_print(action):
    assert parse(to_text(action)) == action


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Slide the red box into the upper-left corner.", Action("red square", "in", "top left corner")),
        ("place the green triangle onto the yellow square", Action("green triangle", "on", "yellow square")),
        ("put the green pyramid on top of the yellow block", Action("green triangle", "on", "yellow square")),
        ("shift the blue circle so it is left of the red square", Action("blue circle", "left of", "red square")),
        ("push the blue disc to the right-hand side of the red square", Action("blue circle", "right of", "red square")),
        ("drag the purple ball in front of the red square", Action("purple circle", "below", "red square")),
        ("move the violet triangle behind the red square", Action("purple triangle", "above", "red square")),
        ("bring the orange square to the center", Action("orange square", "in", "centre")),
        ("move the orange square to the lower right", Action("orange square", "in", "bottom right corner")),
        ("move the orange square towards the far side", Action("orange square", "in", "top side")),
        ("haul the red square over to the left side", Action("red square", "in", "left side")),
        ("get the red square to the fore of the blue circle", Action("red square", "below", "blue circle")),
        ("steer the red square at the foot of the blue circle", Action("red square", "below", "blue circle")),
        ("move the red square higher up than the blue circle", Action("red square", "above", "blue circle")),
        ("send the red square farther away than the blue circle", Action("red square", "above", "blue circle")),
        ("carry the orange square to the left half of the table", Action("orange square", "in", "left side")),
        (
            "relocate the red square so that it ends up just ahead of the blue circle",
            Action("red square", "below", "blue circle"),
        ),
        ("nudge the red square closer to the camera than the blue circle", Action("red square", "below", "blue circle")),
        ("shift the red square to the rear of the blue circle", Action("red square", "above", "blue circle")),
        ("move the red square until it is further back than the blue circle", Action("red square", "above", "blue circle")),
        ("slide the red square rightward of the blue circle", Action("red square", "right of", "blue circle")),
        ("take the red square so it rests on the blue circle", Action("red square", "on", "blue circle")),
        ("lift the red square up onto the blue circle", Action("red square", "on", "blue circle")),
        ("balance the red square on the blue circle", Action("red square", "on", "blue circle")),
        ("move the red square into the foreground", Action("red square", "in", "bottom side")),
        ("move the red square to the background", Action("red square", "in", "top side")),
        ("place the red square to the right of the blue circle", Action("red square", "right of", "blue circle")),
        ("put the red square so it is left of the blue circle", Action("red square", "left of", "blue circle")),
        ("scoot the red square on the east side of the blue circle", Action("red square", "right of", "blue circle")),
        ("manoeuvre the red square into the top right corner", Action("red square", "in", "top right corner")),
    ],
)
def test_paraphrases(text, expected):
    assert parse(text) == expected


@pytest.mark.parametrize(
    "text, kind, token",
    [
        ("move the pink square to the left side", "colour", "pink"),
        ("move the red hexagon to the left side", "shape", "hexagon"),
        ("move the red square to the moon", "region", "moon"),
        ("move the red square up", "region", "up"),
        ("teleport the red square to the left side", "verb", "teleport"),
        ("move the red square beside the blue circle", "relation", "beside"),
    ],
)
def test_unknown_tokens_are_named_with_the_known_ones(text, kind, token):
    with pytest.raises(UnknownTokenError) as info:
        parse(text)
    assert info.value.kind == kind and info.value.token == token
    assert len(info.value.known) >= 3 and all(k in str(info.value) for k in info.value.known)


def test_incomplete_instructions_get_clear_errors():
    for text in ["", "move the red square", "move red"]:
        with pytest.raises(SpiralError):
            parse(text)


def test_every_region_has_paraphrases_that_parse():
    for region in REGIONS:
        assert parse(f"move the red square to the {region}").anchor == region
