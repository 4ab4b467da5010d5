import dataclasses
import math
from functools import cache

import numpy as np
import pytest

from spiral.errors import SpiralError
from spiral.types import Critique, FailureKind, Verdict
from spiral.worlds.tabletop import corrupt
from spiral.worlds.tabletop.actions import (
    Action,
    random_action,
    sample_target,
    smoothstep,
    trajectory,
    worth_doing,
)
from spiral.worlds.tabletop.checks import check_clip, check_postcondition, critique, flicker_score, smoothness
from spiral.worlds.tabletop.failures import make_failure
from spiral.worlds.tabletop.render import render
from spiral.worlds.tabletop.scene import Scene, TableObject, random_scene


@cache
def step_cases(count=24, seed0=0):
    """(scene, action, target, seed): random feasible steps, a third of them 'put on'."""
    cases, seed = [], seed0
    while len(cases) < count:
        rng = np.random.default_rng(seed)
        seed += 1
        scene = random_scene(rng, num_objects=int(rng.integers(3, 6)))
        action = random_action(scene, rng, relation="on" if len(cases) % 3 == 0 else None)
        if not worth_doing(scene, action):
            continue
        target = sample_target(scene, action, rng)
        if target is not None:
            cases.append((scene, action, target, seed))
    return tuple(cases)


def clip_of(scenes: list[Scene], subject: str, n: int = 64) -> np.ndarray:
    last = len(scenes) - 1
    return np.stack([render(s, n, on_top=subject if 0 < k < last else None) for k, s in enumerate(scenes)])


def passes_over_another(scene, action, target) -> bool:
    a = scene.get(action.subject)
    for s in np.linspace(0.1, 0.9, 9):
        x, y = a.x + s * (target.x - a.x), a.y + s * (target.y - a.y)
        if any(o.name != a.name and math.dist((x, y), o.pos) < o.half for o in scene.objects):
            return True
    return False


@pytest.mark.parametrize("n", [64, 32])
def test_ground_truth_clips_are_ok(n):
    cases = step_cases() if n == 64 else step_cases(12, seed0=1000)
    assert sum(a.relation == "on" for _, a, _, _ in cases) >= len(cases) // 3
    if n == 64:
        assert sum(passes_over_another(s, a, t) for s, a, t, _ in cases) >= 3, "some moves must pass over other objects"
    for scene, action, target, _ in cases:
        report = check_clip(clip_of(trajectory(scene, action, target, 8), action.subject, n), action)
        assert report.ok, (n, action, report.feedback)
        assert report.verdict == Verdict.SUCCESS and report.failure_kind == FailureKind.NONE
        assert report.score >= 0.9 and report.smoothness > 0.9 and report.subject_moved
        assert report.end.get(action.subject).on == (action.anchor if action.relation == "on" else None)


def test_postcondition_is_read_from_one_frame():
    for scene, action, target, _ in step_cases()[:10]:
        end = trajectory(scene, action, target, 2)[-1]
        assert check_postcondition(render(end, 64), action)
        assert not check_postcondition(render(scene, 64), action)


EXPECTED = {
    "incomplete": {FailureKind.INCOMPLETE},
    "wrong_object": {FailureKind.WRONG_OBJECT},
    "vanish": {FailureKind.PHYSICAL_VIOLATION},
    "drift": {FailureKind.WRONG_OBJECT},
    "duplicate": {FailureKind.HALLUCINATED_OBJECT},
    "colour_change": {FailureKind.PHYSICAL_VIOLATION},
}


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_each_synthetic_failure_is_flagged(kind):
    made, caught, named = 0, 0, 0
    for scene, action, target, seed in step_cases():
        clip = make_failure(scene, action, target, 8, np.random.default_rng(seed), kind=kind)
        if clip is None:
            continue
        made += 1
        report = check_clip(clip.render(64), action)
        caught += not report.ok
        named += report.failure_kind in EXPECTED[kind]
        if kind == "vanish" and report.vanished:
            assert report.verdict == Verdict.GLOBAL_DRIFT
            gone = {o.name for o in scene.objects} - {o.name for o in clip.scenes[-1].objects}
            assert set(report.vanished) == gone
        if kind == "wrong_object" and report.failure_kind == FailureKind.WRONG_OBJECT:
            mover = next(o.name for o in scene.objects if clip.scenes[-1].get(o.name).pos != o.pos)
            assert report.collateral_moved == (mover,) and not report.subject_moved and mover in report.feedback
        if kind == "colour_change" and report.changed_colour:
            assert report.changed_colour == (action.subject,)
        if kind == "incomplete":
            assert report.subject_moved and 0.0 < report.progress < 1.0 and report.verdict == Verdict.LOCAL_FAILURE
        if kind == "duplicate" and report.duplicated:
            assert report.duplicated == (action.subject,) and report.verdict == Verdict.GLOBAL_DRIFT
    assert made >= 8
    assert caught == made, f"{kind}: only {caught}/{made} failed clips flagged"
    assert named >= 0.85 * made, f"{kind}: only {named}/{made} named {EXPECTED[kind]}"


def test_drift_of_several_objects_is_global():
    for scene, action, target, seed in step_cases():
        clip = make_failure(scene, action, target, 8, np.random.default_rng(seed), kind="drift")
        if clip is None:
            continue
        report = check_clip(clip.render(64), action)
        movers = [
            o.name for o in scene.objects if math.dist(o.pos, clip.scenes[-1].get(o.name).pos) > 0.04 and o.name != action.subject
        ]
        assert set(report.collateral_moved) == set(movers), (report.collateral_moved, movers)
        assert report.verdict == (Verdict.GLOBAL_DRIFT if len(movers) >= 2 else Verdict.LOCAL_FAILURE)


def test_teleport_is_a_physical_violation():
    for scene, action, target, _ in step_cases()[:8]:
        end = trajectory(scene, action, target, 2)[-1]
        frames = clip_of([scene] * 4 + [end] * 4, action.subject)
        report = check_clip(frames, action)
        assert report.postcondition and report.smoothness < 0.5
        assert report.failure_kind == FailureKind.PHYSICAL_VIOLATION and "jumped" in report.feedback


def test_flicker_bursts_are_low_quality():
    for i, (scene, action, target, _) in enumerate(step_cases()[:8]):
        frames = corrupt.flicker(clip_of(trajectory(scene, action, target, 8), action.subject), seed=i)
        report = check_clip(frames, action)
        assert report.failure_kind == FailureKind.LOW_QUALITY and report.flicker_burst > 8, report.feedback
        assert report.flicker < check_clip(clip_of(trajectory(scene, action, target, 8), action.subject), action).flicker


def test_mild_noise_and_blur_do_not_fail_good_clips():
    for i, (scene, action, target, _) in enumerate(step_cases()[:8]):
        clip = clip_of(trajectory(scene, action, target, 8), action.subject)
        assert check_clip(corrupt.gaussian_noise(clip, 10, seed=i), action).ok
        assert check_clip(corrupt.gaussian_blur(clip, 0.8), action).ok


def test_missing_subject_is_an_unmet_precondition():
    scene = Scene((TableObject("red", "square", "medium", 0.3, 0.3), TableObject("blue", "circle", "small", 0.7, 0.7)))
    report = check_clip(clip_of([scene, scene], "red square"), Action("green triangle", "in", "centre"))
    assert not report.precondition and report.failure_kind == FailureKind.PRECONDITION_UNMET
    assert report.verdict == Verdict.GLOBAL_DRIFT and report.score == 0.0 and "green triangle" in report.feedback


def test_critique_carries_the_report():
    scene, action, target, seed = step_cases()[1]
    good = critique(clip_of(trajectory(scene, action, target, 8), action.subject), action)
    assert isinstance(good, Critique) and good.verdict == Verdict.SUCCESS and good.score >= 0.9
    assert action.subject in good.feedback
    bad_clip = make_failure(scene, action, target, 8, np.random.default_rng(seed), kind="incomplete").render(64)
    bad = critique(bad_clip, action)
    assert bad.verdict == Verdict.LOCAL_FAILURE and bad.failure_kind == FailureKind.INCOMPLETE
    assert bad.score < good.score and action.subject in bad.feedback


def test_flicker_score_is_the_vbench_formula():
    frames = np.zeros((3, 32, 32, 3), np.uint8)
    assert flicker_score(frames) == 1.0
    frames[1] = 51  # MAE 51 for both pairs: (255 - 51) / 255 = 0.8
    assert flicker_score(frames) == pytest.approx(0.8)


def test_smoothness_formula():
    ease = [(k, smoothstep(k / 7) * 0.5, 0.2) for k in range(8)]
    assert smoothness(ease, 8, 0.02) == pytest.approx(1.0)
    jump = [(k, 0.0 if k < 4 else 0.5, 0.2) for k in range(8)]
    assert smoothness(jump, 8, 0.02) == pytest.approx(0.0)
    assert smoothness([(k, 0.001 * (k % 2), 0.0) for k in range(8)], 8, 0.02) == 1.0  # jitter, no motion
    assert 0.0 < smoothness([(k, min(k, 5) * 0.1, 0.0) for k in range(6)] + [(6, 0.9, 0.0), (7, 0.9, 0.0)], 8, 0.02) < 0.9


@pytest.mark.parametrize(
    "frames", [np.zeros((8, 64, 64, 3), np.float32), np.zeros((64, 64, 3), np.uint8), np.zeros((1, 64, 64, 3), np.uint8)]
)
def test_bad_clips_are_explained(frames):
    with pytest.raises(SpiralError, match="clip"):
        check_clip(frames, Action("red square", "in", "centre"))


def test_a_subject_left_overlapping_another_object_is_a_physical_violation():
    flagged = 0
    for scene, action, _, _ in step_cases():
        if action.relation == "on" or len(scene.objects) < 2:
            continue
        subject = scene.get(action.subject)
        other = next(o for o in scene.objects if o.name != subject.name and o.on is None and not scene.supported_by(o.name))
        if subject.on is not None or scene.supported_by(subject.name):
            continue
        # Park the subject 70% of the way into the other object's clearance, in even steps.
        reach = 0.7 * (subject.radius + other.radius)
        dx, dy = subject.x - other.x, subject.y - other.y
        norm = math.hypot(dx, dy)
        end = (other.x + dx / norm * reach, other.y + dy / norm * reach)
        eased = [smoothstep(k / 7) for k in range(8)]
        path = [
            replace_pos(scene, subject.name, subject.x + s * (end[0] - subject.x), subject.y + s * (end[1] - subject.y))
            for s in eased
        ]
        report = check_clip(clip_of(path, subject.name), action)
        assert not report.ok
        if other.name in report.crowded:
            flagged += 1
            assert report.failure_kind == FailureKind.PHYSICAL_VIOLATION
            assert f"the {subject.name} ends up too close to the {other.name}, inside its footprint" in report.feedback
    assert flagged >= 5


def replace_pos(scene: Scene, name: str, x: float, y: float) -> Scene:
    return Scene(tuple(dataclasses.replace(o, x=x, y=y) if o.name == name else o for o in scene.objects))
