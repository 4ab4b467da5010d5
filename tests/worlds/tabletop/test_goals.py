from collections import Counter

import numpy as np
import pytest

from spiral.errors import SpiralError, UnknownTokenError
from spiral.worlds.tabletop import goal_sampling
from spiral.worlds.tabletop.goal_sampling import propose
from spiral.worlds.tabletop.goals import (
    BASIC_FAMILIES,
    EXAMPLE_GOALS,
    GOAL_FAMILIES,
    HOLD_SLACK,
    LEVELS,
    Goal,
    goal_to_text,
    level_of,
    parse_goal,
    sample_goal,
)
from spiral.worlds.tabletop.scene import Scene, TableObject, random_scene
from spiral.worlds.tabletop.solver import steps_needed


def table(*objects: tuple) -> Scene:
    return Scene(tuple(TableObject(*o) for o in objects))


RED_SQ = ("red", "square", "large", 0.2, 0.2)
BLUE_CI = ("blue", "circle", "medium", 0.8, 0.2)
GREEN_TR = ("green", "triangle", "small", 0.5, 0.8)
START = table(RED_SQ, BLUE_CI, GREEN_TR)


def moved(scene: Scene, name: str, x: float, y: float, on: str | None = None) -> Scene:
    return scene.moved(name, x, y, on)


# --- the record ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: Goal.stack("red square"),  # one object is not a stack
        lambda: Goal.stack("a square", "b circle", "c triangle", "d square"),
        lambda: Goal.stack("red square", "blue circle", "green triangle", "yellow square"),  # taller than 3 sizes
        lambda: Goal.swap("red square", "red square"),
        lambda: Goal.line_up("red square"),
        lambda: Goal.gather("left side"),  # no selector
        lambda: Goal.gather("left side", shape="circle", colours=("red", "blue")),  # two selectors
        lambda: Goal.gather("the moon", shape="circle"),
        lambda: Goal.gather("left side", colours=("red",)),
        lambda: Goal.gather("left side", colours=("red", "pink")),
        lambda: Goal.sort("size"),
        lambda: Goal(family="sort", key="colour", region="left side"),  # a field that does not apply
        lambda: Goal(family="dance"),
        lambda: Goal.then(Goal.clear("centre"), Goal.swap("red square", "blue circle")),  # swap not first
        lambda: Goal.then(Goal.clear("centre"), Goal.clear("centre")),
    ],
)
def test_invalid_goals_are_rejected_with_a_reason(make):
    with pytest.raises(SpiralError, match="invalid"):
        make()


def test_colour_sets_compare_as_sets_and_compounds_flatten():
    assert Goal.gather("centre", colours=("blue", "red")) == Goal.gather("centre", colours=("red", "blue"))
    a, b, c = Goal.clear("centre"), Goal.clear("left side"), Goal.sort("shape")
    assert Goal.then(Goal.then(a, b), c).parts == (a, b, c)


def test_dict_round_trip():
    goal = Goal.then(Goal.swap("red square", "blue circle"), Goal.gather("top side", colours=("green", "blue")))
    assert Goal.from_dict(goal.to_dict()) == goal


def test_level_of_step_counts():
    assert [level_of(n) for n in (0, 1, 2, 3, 4, 5, 8)] == ["short"] * 3 + ["medium"] * 2 + ["long"] * 2
    with pytest.raises(SpiralError):
        level_of(9)


# --- what holds ---------------------------------------------------------------------------------


def test_stack_holds_by_the_on_link_or_by_coinciding_centres_when_read_back():
    goal = Goal.stack("green triangle", "red square")
    stacked = moved(START, "green triangle", 0.2, 0.2, on="red square")
    assert goal.holds(START, stacked) and goal.holds(START, stacked, strict=True)
    read_back = moved(START, "green triangle", 0.21, 0.19)  # the reader did not set `on`
    assert goal.holds(START, read_back) and not goal.holds(START, read_back, strict=True)
    assert not goal.holds(START, moved(START, "green triangle", 0.26, 0.2))
    assert not goal.holds(START, START)
    assert not Goal.stack("red square", "green triangle").holds(START, moved(START, "red square", 0.5, 0.8))


def test_line_up_needs_order_one_row_and_no_stacking():
    goal = Goal.line_up("red square", "blue circle", "green triangle")
    row = moved(moved(START, "blue circle", 0.5, 0.22), "green triangle", 0.8, 0.21)
    assert goal.holds(START, row) and goal.holds(START, row, strict=True)
    assert not Goal.line_up("blue circle", "red square").holds(START, row)  # wrong order
    assert not goal.holds(START, moved(row, "green triangle", 0.8, 0.4))  # out of the row
    assert goal.holds(START, moved(row, "green triangle", 0.8, 0.28))  # a little off is one row...
    assert not goal.holds(START, moved(row, "green triangle", 0.8, 0.28), strict=True)  # ...not for the solver
    assert not goal.holds(START, moved(row, "green triangle", 0.5, 0.22, on="blue circle"))
    assert not goal.holds(START, Scene(row.objects[:2]))  # an object vanished


def test_gather_selects_objects_in_the_start_scene():
    circles = Goal.gather("left side", shape="circle")
    there = moved(START, "blue circle", 0.2, 0.6)
    assert circles.holds(START, there)
    assert not circles.holds(START, START)
    assert not circles.holds(START, Scene(START.objects[:1] + START.objects[2:]))  # the circle vanished
    assert not Goal.gather("left side", shape="triangle").holds(table(RED_SQ), table(RED_SQ))  # nothing selected
    listed = Goal.gather("left side", objects=("red square", "blue circle"))
    assert listed.holds(START, there) and not listed.holds(START, START)
    warm = Goal.gather("top side", colours=("red", "orange", "yellow"))
    assert warm.holds(START, START)  # only the red square is warm, and it is at the top


def test_gather_boundary_is_lenient_for_readings_and_strict_for_the_solver():
    goal = Goal.gather("left side", objects=("red square", "blue circle"))
    edge = moved(START, "blue circle", 1 / 3 + HOLD_SLACK / 2, 0.6)
    assert goal.holds(START, edge) and not goal.holds(START, edge, strict=True)


def test_swap_uses_the_start_cells():
    goal = Goal.swap("red square", "blue circle")
    swapped = moved(moved(START, "red square", 0.8, 0.25), "blue circle", 0.2, 0.25)
    assert goal.holds(START, swapped)
    assert not goal.holds(START, START)
    assert not goal.holds(swapped, swapped)  # judged against where they started
    same_cell = table(RED_SQ, ("blue", "circle", "small", 0.2, 0.2, "red square"))
    assert not goal.holds(same_cell, same_cell)


def test_sort_and_clear():
    by_colour = Goal.sort("colour")  # red is warm (left); blue and green are cool (right)
    sorted_scene = moved(moved(START, "green triangle", 0.8, 0.8), "red square", 0.2, 0.5)
    assert by_colour.holds(START, sorted_scene) and not by_colour.holds(START, START)
    by_shape = Goal.sort("shape")
    assert by_shape.holds(START, moved(START, "blue circle", 0.5, 0.2)) is False  # triangle is not right
    clear = Goal.clear("top side")
    assert not clear.holds(START, START)
    assert clear.holds(START, moved(moved(START, "red square", 0.2, 0.6), "blue circle", 0.8, 0.6))
    assert not clear.holds(START, Scene(START.objects[2:]))  # clearing is not taking objects away


def test_compound_holds_when_every_part_does():
    goal = Goal.then(Goal.swap("red square", "blue circle"), Goal.clear("bottom side"))
    swapped = moved(moved(START, "red square", 0.8, 0.25), "blue circle", 0.2, 0.25)
    assert not goal.holds(START, swapped)
    assert goal.holds(START, moved(swapped, "green triangle", 0.5, 0.5))


# --- text ---------------------------------------------------------------------------------------


def test_examples_parse_and_print_back_verbatim():
    families = {parse_goal(t).family for t in EXAMPLE_GOALS}
    assert families == set(GOAL_FAMILIES)
    for text in EXAMPLE_GOALS:
        assert goal_to_text(parse_goal(text)) == text


PARAPHRASES = [
    ("Put the green pyramid on top of the red block.", "stack the green triangle on the red square"),
    (
        "build a tower of the green triangle on the red square on the blue circle",
        "stack the green triangle on the red square on the blue circle",
    ),
    ("place the red square onto the blue circle", "stack the red square on the blue circle"),
    (
        "line up the red box and the blue disc from right to left",
        "line up the blue circle and the red square from left to right",
    ),
    (
        "arrange the red square, the blue circle, and the green triangle in a row",
        "line up the red square, the blue circle and the green triangle from left to right",
    ),
    ("collect all the circles into the upper-left corner", "gather the circles in the top left corner"),
    ("put the warm-coloured objects on the left", "gather the warm objects in the left side"),
    ("bring the blue and the red objects to the middle", "gather the red and blue objects in the centre"),
    ("group every triangle in the bottom half of the table", "gather the triangles in the bottom side"),
    (
        "move the red square and the blue circle to the right side",
        "gather the red square and the blue circle in the right side",
    ),
    ("switch the places of the red square and the blue circle", "swap the red square and the blue circle"),
    ("exchange the red square with the blue circle", "swap the red square and the blue circle"),
    ("organise the objects by color", "sort the objects by colour"),
    ("group everything by shape", "sort the objects by shape"),
    ("remove everything from the left half of the table", "clear the left side"),
    ("clear out the center", "clear the centre"),
    (
        "first swap the red square and the blue circle, then clear the centre and finally sort by colour",
        "swap the red square and the blue circle, then clear the centre, then sort the objects by colour",
    ),
]


@pytest.mark.parametrize("text, expected", PARAPHRASES)
def test_paraphrases(text, expected):
    assert goal_to_text(parse_goal(text)) == expected


@pytest.mark.parametrize(
    "text, kind, token",
    [
        ("stack the pink square on the blue circle", "colour", "pink"),
        ("stack the red hexagon on the blue circle", "shape", "hexagon"),
        ("gather the hexagons in the left side", "shape", "hexagons"),
        ("gather the circles in the upper zone", "region", "upper zone"),
        ("gather the red and pink objects in the centre", "colour", "pink"),
        ("clear the moon", "region", "moon"),
        ("sort the objects by size", "sort key", "size"),
    ],
)
def test_unknown_tokens_are_named_with_the_known_ones(text, kind, token):
    with pytest.raises(UnknownTokenError) as info:
        parse_goal(text)
    assert info.value.kind == kind and info.value.token == token
    assert len(info.value.known) >= 2 and all(k in str(info.value) for k in info.value.known)


@pytest.mark.parametrize("text", ["", "dance a jig", "make it nice", "then", "stack the red square"])
def test_unreadable_goals_list_examples(text):
    with pytest.raises(SpiralError) as info:
        parse_goal(text)
    assert not isinstance(info.value, UnknownTokenError)
    if text not in ("", "then"):
        assert EXAMPLE_GOALS[0] in str(info.value)


def test_swap_after_the_first_part_is_rejected_with_the_reason():
    with pytest.raises(SpiralError, match="first part"):
        parse_goal("clear the centre, then swap the red square and the blue circle")


def test_text_round_trip_for_proposed_and_sampled_goals():
    seen = Counter()
    for seed in range(300):
        rng = np.random.default_rng(seed)
        scene = random_scene(rng)
        for family in GOAL_FAMILIES:
            for level in LEVELS:
                goal = propose(scene, rng, family, level)
                if goal is not None:
                    assert parse_goal(goal_to_text(goal)) == goal, goal_to_text(goal)
                    seen[goal.family, goal.selector if goal.family == "gather" else ""] += 1
        if seed % 10 == 0:
            goal = sample_goal(scene, rng, "short")
            assert parse_goal(goal_to_text(goal)) == goal
    gathers = {sel for fam, sel in seen if fam == "gather"}
    assert {f for f, _ in seen} == set(GOAL_FAMILIES) and gathers == {"shape", "colours", "objects"}


# --- sampling -----------------------------------------------------------------------------------


def test_sample_goal_is_deterministic_and_hits_its_level():
    scene = random_scene(np.random.default_rng(3), num_objects=5)
    for level, (lo, hi) in LEVELS.items():
        a = sample_goal(scene, np.random.default_rng(11), level)
        assert a == sample_goal(scene, np.random.default_rng(11), level)
        assert lo <= steps_needed(scene, a) <= hi
        assert not a.holds(scene, scene)


def test_sample_goal_reaches_every_family_and_level():
    families, levels, misses = Counter(), Counter(), 0
    for seed in range(150):
        rng = np.random.default_rng(seed)
        scene = random_scene(rng, num_objects=4 + seed % 3)
        level = list(LEVELS)[seed % 3]
        try:
            goal = sample_goal(scene, rng, level)
        except SpiralError:  # a table that happens to be nearly in order may have no long goal
            misses += 1
            continue
        families[goal.family] += 1
        levels[level] += 1
        if goal.family == "compound":
            families.update(f"part:{p.family}" for p in goal.parts)
    assert set(GOAL_FAMILIES) - {"move"} <= set(families), families  # a single move is a user's goal, never sampled
    assert {f"part:{f}" for f in BASIC_FAMILIES} <= set(families), families
    assert set(levels) == set(LEVELS) and misses <= 5


def test_sample_goal_without_a_level_draws_one():
    scene = random_scene(np.random.default_rng(0), num_objects=5)
    counts = {steps_needed(scene, sample_goal(scene, np.random.default_rng(s))) for s in range(30)}
    assert min(counts) <= 2 and max(counts) >= 5


def test_sample_goal_errors(monkeypatch):
    scene = random_scene(np.random.default_rng(0), num_objects=3)
    with pytest.raises(UnknownTokenError):
        sample_goal(scene, np.random.default_rng(0), "epic")
    # A scene with no long goal (as small tables often are) gets a clear error...
    real = goal_sampling._sample_at
    monkeypatch.setattr(goal_sampling, "_sample_at", lambda s, r, level: None if level == "long" else real(s, r, level))
    with pytest.raises(SpiralError, match="no long goal"):
        sample_goal(scene, np.random.default_rng(0), "long")
    # ...but asked for any level, it falls back to a level the scene has.
    levels = {level_of(steps_needed(scene, sample_goal(scene, np.random.default_rng(s)))) for s in range(12)}
    assert levels == {"short", "medium"}


def test_a_single_move_is_a_goal_the_solver_reaches():
    from spiral.worlds.tabletop.solver import Infeasible, solve

    assert parse_goal("move the yellow circle to the top right corner") == Goal.move("yellow circle", region="top right corner")
    assert parse_goal("slide the red box so it sits left of the blue ball") == Goal.move(
        "red square", relation="left of", anchor="blue circle"
    )
    assert parse_goal("put the green triangle on the yellow square") == Goal.stack("green triangle", "yellow square")
    with pytest.raises(SpiralError, match="relation must be one of"):
        Goal(family="move", objects=("red square", "blue circle"), relation="on")
    solved = 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        scene = random_scene(rng)
        goal = propose(scene, rng, "move", "short")
        assert parse_goal(goal_to_text(goal)) == goal and Goal.from_dict(goal.to_dict()) == goal
        solution = solve(scene, Goal.then(Goal.sort("colour"), goal) if seed % 2 else goal, rng)
        if not isinstance(solution, Infeasible):
            solved += 1
            assert solution.goal.holds(scene, solution.final)
    assert solved >= 24  # 26 of 40 today: a move after a sort often has no room left where it must go
