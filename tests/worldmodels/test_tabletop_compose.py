"""Composing the start frame's objects where the model put them (tabletop_compose)."""

import numpy as np
import pytest
from test_tabletop_copy import PROBES, RESOLUTION, as_model_frames, blurred_truth, to_uint8

from spiral.errors import SpiralError
from spiral.worldmodels.tabletop import SamplerConfig
from spiral.worldmodels.tabletop_compose import ComposeConfig, compose_objects, object_masks
from spiral.worlds.tabletop import checks
from spiral.worlds.tabletop.scene import TABLE_RGB


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


def test_an_unknown_decoding_is_refused():
    with pytest.raises(SpiralError, match="unknown decoding 'sharp'; use one of copy, blur, compose"):
        SamplerConfig(decode="sharp")


def test_compose_is_the_default_and_the_copy_decoding_stays_one_factory_away():
    from spiral.bench.methods import Backends

    assert SamplerConfig().decode == "compose"
    backends = Backends("spiral.worldmodels.tabletop:copy_decoded", None, "symbolic", "oracle", "", "", "")
    backends.check()
    assert backends.world().sampler.decode == "copy"
