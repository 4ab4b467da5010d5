"""The single-step evaluation's reasons for failure, on scripted world models whose defects are known."""

from dataclasses import replace

import numpy as np

from spiral.types import Clip
from spiral.worldmodels.tabletop_eval import evaluate, make_probes
from spiral.worlds.tabletop.actions import sample_target, trajectory
from spiral.worlds.tabletop.grammar import parse, to_text
from spiral.worlds.tabletop.render import render_motion
from spiral.worlds.tabletop.scene import Scene

PROBES = make_probes(6)
NUM_FRAMES = 6


class ScriptedModel:
    """Renders each probe's clip from the scene itself: `defect` says what goes wrong."""

    name, frame_size, num_frames = "scripted", 64, NUM_FRAMES

    def __init__(self, defect: str):
        self.defect = defect

    def generate(self, frame, instruction, *, num_frames=None, seed=0, context=None):
        probe = next(p for p in PROBES if np.array_equal(p.frame, frame))
        action = parse(instruction)
        if self.defect == "still":
            frames = np.repeat(frame[None], NUM_FRAMES, axis=0)
        else:
            target = sample_target(probe.scene, action, np.random.default_rng(seed))
            scenes = trajectory(probe.scene, action, target, NUM_FRAMES)
            if self.defect == "subject vanishes":
                kept = tuple(o for o in scenes[-1].objects if o.name != action.subject)
                scenes = [*scenes[:-1], Scene(kept)]
            if self.defect == "subject changes shape":
                moved = scenes[-1].get(action.subject)
                other = "square" if moved.shape != "square" else "circle"
                # not Scene.with_object: it finds the object by name, and the name holds the shape
                reshaped = tuple(replace(o, shape=other) if o is moved else o for o in scenes[-1].objects)
                scenes = [*scenes[:-1], Scene(reshaped)]
            frames = render_motion(scenes, self.frame_size, action.subject)
        return Clip(frames, instruction, seed, self.name)


def test_a_true_motion_passes_and_leaves_no_reasons():
    result = evaluate(ScriptedModel("none"), PROBES)
    assert result.success == 1.0 and result.reasons == {}


def test_a_model_that_moves_nothing_fails_every_probe_on_the_postcondition_alone():
    result = evaluate(ScriptedModel("still"), PROBES)
    assert result.success == 0.0
    assert result.reasons == {"the postcondition does not hold": len(PROBES)}


def test_the_subjects_own_defects_are_told_apart_from_other_objects():
    vanished = evaluate(ScriptedModel("subject vanishes"), PROBES)
    assert vanished.success == 0.0 and vanished.reasons.get("the subject vanished") == len(PROBES)
    assert not any(reason.startswith("another object") for reason in vanished.reasons)
    reshaped = evaluate(ScriptedModel("subject changes shape"), PROBES)
    # The oracle judges shapes only of objects with nothing touching them: not one set on another.
    free = sum(p.action.relation != "on" for p in PROBES)
    assert 0 < free < len(PROBES), "the probes hold both kinds"
    assert reshaped.success == 0.0 and reshaped.reasons.get("the subject changed shape") == free
    assert list(reshaped.reasons.values()) == sorted(reshaped.reasons.values(), reverse=True), "most common first"


def test_chained_probes_start_from_the_first_steps_last_frame_with_a_new_feasible_step():
    from spiral.worldmodels.tabletop_eval import chained_probes
    from spiral.worlds.tabletop.actions import precondition_errors
    from spiral.worlds.tabletop.oracle import read_scene

    wm = ScriptedModel("none")
    chained = chained_probes(wm, PROBES, seed=0)
    assert len(chained) == len(PROBES)  # a true motion always leaves a feasible next step here
    for k, (first, second) in enumerate(zip(PROBES, chained, strict=True)):
        expected = wm.generate(first.frame, to_text(first.action), seed=k).frames[-1]
        assert np.array_equal(second.frame, expected) and not np.array_equal(second.frame, first.frame)
        assert not precondition_errors(read_scene(second.frame), second.action)
    again = chained_probes(wm, PROBES, seed=0)  # seeded: the same probes again
    assert all(np.array_equal(a.frame, b.frame) and a.action == b.action for a, b in zip(chained, again, strict=True))
