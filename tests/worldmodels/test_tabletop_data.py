import numpy as np
import pytest
import torch

from spiral.worldmodels.tabletop_data import SimulatorFeed, simulated_batch, simulated_clip
from spiral.worlds.tabletop import checks
from spiral.worlds.tabletop.actions import RELATIONS


def test_fresh_clips_are_reproducible_distinct_and_carry_out_their_action():
    clips = [simulated_clip(3, k, 8, 32) for k in range(40)]
    again = simulated_clip(3, 5, 8, 32)
    assert torch.equal(again[0], clips[5][0]) and again[1] == clips[5][1]
    assert not torch.equal(simulated_clip(4, 5, 8, 32)[0], clips[5][0])  # another seed, another clip
    assert all(c.shape == (8, 32, 32, 3) and c.dtype == torch.uint8 for c, _ in clips)
    assert len({a for _, a in clips}) > 30
    assert {a.relation for _, a in clips} == set(RELATIONS)
    # The oracle, reading the 32 px frames, passes the simulator's clips (it reads 32 px scenes ~99% right).
    passed = sum(checks.check_clip(c.numpy(), a).ok for c, a in clips)
    assert passed >= 37, passed


def test_the_feed_gives_the_same_batches_from_a_worker_and_after_a_resume():
    inline = SimulatorFeed(seed=1, per_step=3, num_frames=8, resolution=32, start=0, workers=0)
    first = [inline.next() for _ in range(4)]
    worker = SimulatorFeed(seed=1, per_step=3, num_frames=8, resolution=32, start=2, workers=1, prefetch=2)
    try:
        resumed = [worker.next() for _ in range(2)]
    finally:
        worker.close()
    for a, b in zip(first[2:], resumed, strict=True):
        assert torch.equal(a.frames, b.frames) and a.actions == b.actions
    assert first[1].actions == simulated_batch((1, 3, 3, 8, 32)).actions  # step 1 holds clips 3, 4, 5
    assert not torch.equal(first[0].frames, first[1].frames)


@pytest.mark.parametrize("resolution", [32, 16])
def test_fresh_clips_come_at_the_model_resolution(resolution):
    frames, _ = simulated_clip(0, 0, 8, resolution)
    assert frames.shape == (8, resolution, resolution, 3)
    # Frame 0 is a still scene: mostly table grey, never all of it.
    grey = (np.abs(frames[0].numpy().astype(int) - frames[0].numpy()[0, 0]).sum(-1) < 6).mean()
    assert 0.5 < grey < 1.0


def test_reused_fresh_clips_come_from_the_recent_window_and_resume_identically():
    per_step, reuse, steps = 8, 4, 14
    inline = SimulatorFeed(seed=2, per_step=per_step, num_frames=8, resolution=32, start=0, workers=0, reuse=reuse)
    batches = [inline.next() for _ in range(steps)]
    new = per_step // reuse  # 2 new clips a step; the window holds the last 4 * reuse steps' clips
    index = {simulated_clip(2, k, 8, 32)[0].numpy().tobytes(): k for k in range(steps * new)}
    used = []
    for step, batch in enumerate(batches):
        ks = [index[f.numpy().tobytes()] for f in batch.frames]
        assert len(ks) == per_step and all(max(0, step + 1 - 4 * reuse) * new <= k < (step + 1) * new for k in ks)
        used += ks
    assert len(set(used)) >= 0.8 * steps * new  # nearly every clip is drawn, most several times
    worker = SimulatorFeed(seed=2, per_step=per_step, num_frames=8, resolution=32, start=10, workers=1, reuse=reuse)
    try:
        for batch in batches[10:]:
            again = worker.next()
            assert torch.equal(again.frames, batch.frames) and again.actions == batch.actions
    finally:
        worker.close()
