"""Composing the start frame's objects where the model put them (tabletop_compose), on blurred
renders of true clips, and in the shipped model's clips."""

import numpy as np
import torch

from spiral.worldmodels.tabletop import TabletopWorldModel
from spiral.worldmodels.tabletop_compose import ComposeConfig, blurred, compose_objects, object_masks
from spiral.worldmodels.tabletop_eval import make_probes
from spiral.worlds.tabletop import checks
from spiral.worlds.tabletop.actions import sample_target, trajectory
from spiral.worlds.tabletop.grammar import to_text
from spiral.worlds.tabletop.render import render_motion
from spiral.worlds.tabletop.scene import TABLE_RGB

RESOLUTION = 32  # the world model's
PROBES = make_probes(8)


def as_model_frames(clip: np.ndarray) -> torch.Tensor:
    """What a perfect 32 px model would draw for a true clip: its frames after the start, area-averaged
    down and bilinear up, in [-1, 1]."""
    frames = torch.from_numpy(clip[1:]).float().permute(0, 3, 1, 2) / 127.5 - 1.0
    return blurred(frames, RESOLUTION)


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    return ((frames + 1.0) * 127.5).round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()


def blurred_truth(probe) -> tuple[np.ndarray, torch.Tensor, np.ndarray]:
    """A probe's true clip, what a perfect 32 px model would draw of it, and that drawing as uint8
    frames (start frame first): the inputs of compose_objects."""
    targets = (sample_target(probe.scene, probe.action, np.random.default_rng(seed)) for seed in range(20))
    target = next(t for t in targets if t is not None)
    truth = render_motion(trajectory(probe.scene, probe.action, target, 8), 64, probe.action.subject)
    model = as_model_frames(truth)
    return truth, model, np.concatenate([truth[:1], to_uint8(model)])


def touches_nothing(probe) -> bool:
    objects = probe.scene.objects
    return all(a.on is None for a in objects) and all(
        max(abs(a.x - b.x), abs(a.y - b.y)) > a.half + b.half + 2 / 64 for i, a in enumerate(objects) for b in objects[i + 1 :]
    )


def test_each_object_of_a_start_frame_is_one_mask():
    apart = [p for p in PROBES if touches_nothing(p)]
    assert len(apart) >= 3, "the probes hold scenes whose objects are apart"
    for probe in apart:
        table, masks = object_masks(probe.frame, ComposeConfig())
        assert tuple(table) == TABLE_RGB
        assert len(masks) == len(probe.scene.objects)
        assert np.sum(masks, axis=0).max() == 1, "no pixel is in two masks"


def test_a_blurred_true_motion_is_composed_sharp_and_still_passes_the_oracle():
    for probe in PROBES:
        truth, model, blurry = blurred_truth(probe)
        composed = compose_objects(truth[None, 0], model[None], blurry[None], RESOLUTION, ComposeConfig())[0]
        assert np.array_equal(composed[0], truth[0]), "the start frame is kept as it is"
        assert checks.check_clip(composed, probe.action).ok, probe.action
        if touches_nothing(probe):  # every object drawn exactly as the truth has it, at the end
            assert (composed[-1] != truth[-1]).any(-1).mean() < 0.02


def test_an_object_the_model_erased_or_doubled_is_kept_once_where_it_was():
    probe = next(p for p in PROBES if touches_nothing(p))
    start = probe.frame
    table, masks = object_masks(start, ComposeConfig())
    erased, doubled = start.copy(), start.copy()
    erased[masks[0]] = TABLE_RGB  # the model lost an object
    ys, xs = np.nonzero(masks[1])
    shift = 12 if xs.max() + 12 < 64 else -12
    free = ~np.logical_or.reduce(masks)[ys, xs + shift]
    doubled[ys[free], xs[free] + shift] = start[ys[free], xs[free]]  # ... and drew another copy of one
    model = as_model_frames(np.stack([start, erased, doubled]))
    blurry = np.concatenate([start[None], to_uint8(model)])
    composed = compose_objects(start[None], model[None], blurry[None], RESOLUTION, ComposeConfig())[0]
    assert all(np.array_equal(frame, start) for frame in composed)


def test_the_shipped_model_draws_only_the_start_frames_pixels_where_objects_are_apart():
    """Nothing blurred is left: with no two objects touching, every pixel of every generated frame
    is the table or a pixel of a start-frame object, moved or not."""
    wm = TabletopWorldModel.load()
    apart = [p for p in PROBES if touches_nothing(p)][:3]
    clips = wm.sample_frames(np.stack([p.frame for p in apart]), [to_text(p.action) for p in apart], [0, 1, 2])
    for probe, clip in zip(apart, clips, strict=True):
        allowed = {tuple(c) for c in probe.frame.reshape(-1, 3)}
        assert np.array_equal(clip[0], probe.frame)
        assert {tuple(c) for c in clip[1:].reshape(-1, 3)} <= allowed
