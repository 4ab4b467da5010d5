import numpy as np
import pytest

from spiral.errors import SpiralError
from spiral.worlds.tabletop.actions import (
    Action,
    Target,
    apply,
    cell_of,
    postcondition_holds,
    precondition_errors,
    random_action,
    sample_target,
    trajectory,
)
from spiral.worlds.tabletop.scene import Scene, TableObject, random_scene, validity_errors


def test_sampled_targets_satisfy_postcondition_and_keep_the_scene_valid():
    checked = 0
    for seed in range(400):
        rng = np.random.default_rng(seed)
        scene = random_scene(rng)
        action = random_action(scene, rng)
        if precondition_errors(scene, action):
            continue
        target = sample_target(scene, action, rng)
        if target is None:
            continue
        after = apply(scene, action, target)
        assert postcondition_holds(after, action), (seed, action)
        assert validity_errors(after) == [], (seed, action)
        checked += 1
    assert checked > 150


def test_preconditions_name_what_blocks_the_action():
    base = TableObject("yellow", "square", "large", 0.5, 0.5)
    top = TableObject("green", "circle", "small", 0.5, 0.5, on="yellow square")
    other = TableObject("red", "triangle", "medium", 0.15, 0.15)
    scene = Scene((base, top, other))
    assert precondition_errors(scene, Action("yellow square", "in", "left side")) == [
        "the green circle is resting on the yellow square"
    ]
    assert "not smaller" in precondition_errors(scene, Action("yellow square", "on", "red triangle"))[-1]
    assert precondition_errors(scene, Action("red triangle", "on", "yellow square")) == [
        "the green circle is already on the yellow square"
    ]
    assert precondition_errors(scene, Action("blue circle", "in", "centre")) == ["there is no blue circle"]
    assert precondition_errors(scene, Action("green circle", "in", "left side")) == []


def test_trajectory_is_smooth_and_ends_on_target():
    scene = Scene((TableObject("red", "square", "small", 0.2, 0.2),))
    action = Action("red square", "in", "bottom right corner")
    frames = trajectory(scene, action, Target(0.8, 0.8), 8)
    xs = np.array([f.get("red square").x for f in frames])
    steps = np.diff(xs)
    assert xs[0] == pytest.approx(0.2) and xs[-1] == pytest.approx(0.8)
    assert (steps > 0).all() and steps[0] < steps[3] and steps[-1] < steps[3]  # eases in and out
    assert cell_of(0.8, 0.8) == "bottom right corner"


def test_bad_actions_are_rejected_with_known_values():
    with pytest.raises(SpiralError, match="known regions"):
        Action("red square", "in", "moon")
    with pytest.raises(SpiralError, match="known relations"):
        Action("red square", "beside", "blue circle")
