import math

import numpy as np
import pytest

from spiral.worlds.tabletop.actions import (
    postcondition_holds,
    random_action,
    sample_target,
    worth_doing,
)
from spiral.worlds.tabletop.failures import FAILURE_KINDS, make_failure
from spiral.worlds.tabletop.scene import random_scene


def step_cases(n_cases=60):
    """(scene, action, target) triples with a feasible ground-truth target."""
    cases, seed = [], 0
    while len(cases) < n_cases:
        rng = np.random.default_rng(seed)
        seed += 1
        scene = random_scene(rng, num_objects=int(rng.integers(3, 6)))
        action = random_action(scene, rng)
        if not worth_doing(scene, action):
            continue
        target = sample_target(scene, action, rng)
        if target is not None:
            cases.append((scene, action, target, rng))
    return cases


def moved(a, b, name):
    return math.dist(a.get(name).pos, b.get(name).pos) > 1e-6


@pytest.mark.parametrize("kind", FAILURE_KINDS)
def test_each_failure_kind_really_fails_the_step(kind):
    made = 0
    for scene, action, target, rng in step_cases():
        clip = make_failure(scene, action, target, 8, rng, kind=kind)
        if clip is None:
            continue
        made += 1
        first, last = clip.scenes[0], clip.scenes[-1]
        assert first == scene and len(clip.scenes) == 8
        if kind == "incomplete":
            assert moved(first, last, action.subject) and not postcondition_holds(last, action)
        elif kind == "wrong_object":
            assert not moved(first, last, action.subject)
            assert any(moved(first, last, o.name) for o in scene.objects if o.name != action.subject)
        elif kind == "vanish":
            assert len(last.objects) == len(first.objects) - 1
        elif kind == "drift":
            assert postcondition_holds(last, action)
            assert any(moved(first, last, o.name) for o in scene.objects if o.name not in action.named_objects())
        elif kind == "duplicate":
            assert [o.name for o in last.objects].count(action.subject) == 2
        elif kind == "colour_change":
            assert not last.has(action.subject) and len(last.objects) == len(first.objects)
        frames = clip.render(32)
        assert frames.shape == (8, 32, 32, 3) and frames.dtype == np.uint8
    assert made >= 20, f"{kind}: only {made} of 60 steps could be made to fail"
