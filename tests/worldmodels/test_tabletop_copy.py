"""Copying moved objects sharp from the start frame (tabletop_copy), on blurred renders of true clips."""

import numpy as np
import torch

from spiral.worldmodels.tabletop_copy import CopyConfig, _Search, blurred, copy_moved, fft_size, label_regions, translated
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


def blurred_truth(probe) -> tuple[np.ndarray, torch.Tensor, np.ndarray]:
    """A probe's true clip, what a perfect 32 px model would draw of it, and that drawing decoded
    as the blur decoding does (start frame first): the inputs of a sharpening decoding."""
    truth = true_clip(probe)
    model = as_model_frames(truth)
    return truth, model, np.concatenate([truth[:1], to_uint8(model)])


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
        truth, model, blurry = blurred_truth(probe)
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


def test_fft_size_is_the_smallest_product_of_twos_and_threes_not_below_n():
    smooth = lambda m: m == 1 or (m % 2 == 0 and smooth(m // 2)) or (m % 3 == 0 and smooth(m // 3))
    for n in range(1, 300):
        assert fft_size(n) == next(m for m in range(n, 4 * n) if smooth(m))


def test_regions_are_8_connected_and_kept_apart_per_frame():
    mask = np.zeros((2, 8, 8), dtype=bool)
    mask[0, 1, 1] = mask[0, 2, 2] = True  # touching at a corner: one region
    mask[0, 6, 6] = True
    mask[1, 7, 0] = mask[1, 0, 0] = True  # bottom of frame 1 beside the top of frame 0 would touch if stacked naively
    regions = label_regions(mask)
    assert sorted((k, int(m.sum())) for k, m in regions) == [(0, 1), (0, 2), (1, 1), (1, 1)]
    assert sum(m.astype(int) for k, m in regions if k == 0).tolist() == mask[0].astype(int).tolist()


def test_the_fft_search_matches_direct_squared_errors():
    gen = torch.Generator().manual_seed(0)
    size, r = 12, 11
    start = torch.rand(3, size, size, generator=gen) * 2 - 1
    model = torch.rand(2, 3, size, size, generator=gen) * 2 - 1
    regions = (torch.rand(2, size, size, generator=gen) > 0.6).float()
    changed = (torch.rand(size, size, generator=gen) > 0.5).float()
    search = _Search(start, r)
    sources = search.spectrum(torch.nn.functional.pad(changed, (r,) * 4))[None].expand(2, -1, -1)
    errors, source = search.errors(regions, model, sources)
    for j in range(2):
        for dy, dx in [(0, 0), (3, -2), (-11, 11), (5, 7)]:
            moved = translated(start, dy, dx)
            direct = (regions[j] * ((moved - model[j]) ** 2).sum(0)).sum()
            assert abs(float(errors[j, r - dy, r - dx] - direct)) < 1e-3
            rows, cols = torch.arange(size)[:, None] - dy, torch.arange(size)[None] - dx
            inside = (rows >= 0) & (rows < size) & (cols >= 0) & (cols < size)
            moved_changed = torch.where(inside, changed[rows.clamp(0, size - 1), cols.clamp(0, size - 1)], 0.0)
            share = (regions[j] * moved_changed).sum() / regions[j].sum()
            assert abs(float(source[j, r - dy, r - dx] - share)) < 1e-4
