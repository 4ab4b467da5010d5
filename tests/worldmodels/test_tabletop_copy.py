"""Copying moved objects sharp from the start frame (tabletop_copy), on blurred renders of true clips."""

import numpy as np
import torch

from spiral.worldmodels.tabletop_copy import CopyConfig, blurred, copy_moved
from spiral.worldmodels.tabletop_eval import make_probes
from spiral.worlds.tabletop import checks
from spiral.worlds.tabletop.actions import sample_target, trajectory
from spiral.worlds.tabletop.render import render_motion
from spiral.worlds.tabletop.scene import COLOURS

RESOLUTION = 32  # the world model's
PROBES = make_probes(8)


def as_model_frames(clip: np.ndarray) -> torch.Tensor:
    """What a perfect 32 px model would draw for a true clip: its frames after the start, area-averaged
    down and bilinear up, in [-1, 1]."""
    frames = torch.from_numpy(clip[1:]).float().permute(0, 3, 1, 2) / 127.5 - 1.0
    return blurred(frames, RESOLUTION)


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    return ((frames + 1.0) * 127.5).round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()


def true_clip(probe) -> np.ndarray:
    targets = (sample_target(probe.scene, probe.action, np.random.default_rng(seed)) for seed in range(20))
    target = next(t for t in targets if t is not None)
    return render_motion(trajectory(probe.scene, probe.action, target, 8), 64, probe.action.subject)


def sits_free(probe) -> bool:
    """The subject moves from bare table to bare table: nothing under it, on it, or at its target."""
    name = probe.action.subject
    return probe.action.relation != "on" and all(o.on != name and (o.name != name or o.on is None) for o in probe.scene.objects)


def test_a_blurred_true_motion_comes_back_sharp_and_still_passes_the_oracle():
    # An object that sat on another is not copied: the translated start frame carries the object
    # under it along, so no translation explains the model's frame well enough (the model's own
    # pixels are kept). Free moves are copied.
    free = [p for p in PROBES if sits_free(p)]
    assert len(free) >= 4, "the probes hold enough free moves"
    solid_before, solid_after = [], []
    for probe in PROBES:
        truth = true_clip(probe)
        model = as_model_frames(truth)
        blurry = np.concatenate([truth[:1], to_uint8(model)])
        copied = copy_moved(truth[None, 0], model[None], blurry[None], RESOLUTION, CopyConfig())[0]
        assert np.array_equal(copied[0], truth[0]), "the start frame is kept as it is"
        assert checks.check_clip(copied, probe.action).ok, probe.action
        if probe in free:
            # the subject's fully covered pixels at its new place: exactly its colour only when sharp
            colour = COLOURS[probe.scene.get(probe.action.subject).colour]
            solid = (truth[-1] == colour).all(-1) & ~(truth[0] == colour).all(-1)
            solid_before.append((blurry[-1][solid] == colour).all(-1).mean())
            solid_after.append((copied[-1][solid] == colour).all(-1).mean())
    assert np.mean(solid_after) >= 0.75 and np.mean(solid_after) > np.mean(solid_before) + 0.3, (solid_before, solid_after)


def test_an_object_that_did_not_move_is_never_copied():
    # The model draws a second, blurred copy of an object that stays where it was: no place changed
    # that the copy could come from, so the model's own pixels are kept.
    probe = PROBES[0]
    start = probe.frame
    subject = probe.scene.get(probe.action.subject)
    shift = 20 if subject.x < 0.5 else -20
    doubled = start.copy()
    near = (np.abs(np.arange(64) + 0.5 - 64 * subject.x) <= 64 * subject.half + 1)[None] & (
        np.abs(np.arange(64) + 0.5 - 64 * subject.y) <= 64 * subject.half + 1
    )[:, None]
    ys, xs = np.nonzero(near & (np.abs(start.astype(int) - start[0, 0]).sum(-1) > 30))
    doubled[ys, xs + shift] = start[ys, xs]
    model = as_model_frames(np.stack([start, doubled]))
    blurry = np.stack([start, to_uint8(model)[0]])
    copied = copy_moved(start[None], model[None], blurry[None], RESOLUTION, CopyConfig())[0]
    assert np.array_equal(copied, blurry)


def test_a_clip_where_nothing_changed_is_returned_unchanged():
    start = PROBES[1].frame
    still = np.stack([start] * 4)
    model = as_model_frames(still)
    copied = copy_moved(start[None], model[None], still[None], RESOLUTION, CopyConfig())[0]
    assert np.array_equal(copied, still)
