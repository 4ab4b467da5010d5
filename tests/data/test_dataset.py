import os

import numpy as np
import pytest
import torch

from spiral.data.format import INDEX, read_episode, read_index
from spiral.data.generate import DataMakeConfig, make_dataset
from spiral.data.reader import ActWMDataset
from spiral.data.video import read_video, write_video
from spiral.errors import DatasetError, SpiralError


def small(out, **kw):
    return DataMakeConfig(out=out, **{"episodes": 4, "seed": 3, "frame_size": 32, "failure_rate": 0.5, **kw})


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    out = tmp_path_factory.mktemp("ds")
    result = make_dataset(small(out), progress=False)
    return out, result


def test_make_writes_index_episodes_and_clips(made):
    out, result = made
    assert result.written == 4 and result.already_there == 0
    entries = read_index(out)
    assert [e["id"] for e in entries] == [f"ep-{i:06d}" for i in range(4)]
    levels = set()
    for entry in entries:
        ep = read_episode(out / entry["id"])
        levels.add(ep.level)
        assert ep.goal and ep.cot and len(ep.steps) == entry["num_steps"] >= 1
        for step in ep.steps:
            assert step.precondition and step.postcondition and step.instruction
            accepted = step.attempts[step.accepted]
            assert accepted.label_success is True
            assert accepted.critique.verdict.value == "success", (entry["id"], step.instruction, accepted.critique)
            for attempt in step.attempts[: step.accepted]:
                assert attempt.label_success is False and attempt.label_failure
            clip = read_video(out / entry["id"] / step.video)
            assert clip.shape == (8, 32, 32, 3)
    assert levels == {"short", "medium", "long"}


def test_failures_are_labelled_and_mostly_caught_by_the_oracle(made):
    out, _ = made
    failed = [
        a for e in read_index(out) for s in read_episode(out / e["id"]).steps for a in s.attempts if a.label_success is False
    ]
    assert failed, "failure_rate 0.5 over several steps should give failed attempts"
    caught = sum(a.critique.verdict.value != "success" for a in failed)
    assert caught >= 0.8 * len(failed)


def test_reader_yields_torch_samples(made):
    out, _ = made
    ds = ActWMDataset(out)
    accepted = ActWMDataset(out, attempts="accepted")
    assert len(ds) > len(accepted) > 0
    sample = ds[0]
    assert sample["video"].dtype == torch.uint8 and sample["video"].shape == (8, 3, 32, 32)
    assert sample["instruction"] and sample["success"].item() in (0.0, 1.0)
    batch = next(iter(torch.utils.data.DataLoader(accepted, batch_size=2)))
    assert batch["video"].shape == (2, 8, 3, 32, 32) and len(batch["instruction"]) == 2


def test_same_seed_same_dataset(made, tmp_path):
    out, _ = made
    make_dataset(small(tmp_path), progress=False)
    for entry in read_index(out):
        assert (out / entry["id"] / "episode.json").read_text() == (tmp_path / entry["id"] / "episode.json").read_text()
        for step in read_episode(out / entry["id"]).steps:
            np.testing.assert_array_equal(
                read_video(out / entry["id"] / step.video), read_video(tmp_path / entry["id"] / step.video)
            )


def test_resume_after_interruption_redoes_nothing_and_loses_nothing(made, tmp_path):
    out, _ = made
    make_dataset(small(tmp_path, episodes=2), progress=False)
    first = (tmp_path / "ep-000000" / "episode.json").stat().st_mtime_ns
    # Simulate a kill in the middle of episode 2: a half-built folder and a torn index line.
    (tmp_path / ".tmp-ep-000002").mkdir()
    (tmp_path / "ep-000003").mkdir()
    with open(tmp_path / INDEX, "a") as f:
        f.write('{"id": "ep-0000')
    result = make_dataset(small(tmp_path), progress=False)
    assert (result.written, result.already_there) == (2, 2)
    assert (tmp_path / "ep-000000" / "episode.json").stat().st_mtime_ns == first
    assert [e["id"] for e in read_index(tmp_path)] == [e["id"] for e in read_index(out)]
    assert not (tmp_path / ".tmp-ep-000002").exists()
    for entry in read_index(out):
        assert (out / entry["id"] / "episode.json").read_text() == (tmp_path / entry["id"] / "episode.json").read_text()


def test_resume_refuses_other_settings(made):
    out, _ = made
    with pytest.raises(DatasetError, match="seed=3 .asked 4"):
        make_dataset(small(out, seed=4), progress=False)


def test_bad_arguments(tmp_path):
    with pytest.raises(SpiralError, match="at least 32"):
        make_dataset(small(tmp_path, frame_size=16), progress=False)
    with pytest.raises(SpiralError, match="known levels"):
        make_dataset(small(tmp_path / "x", levels="epic"), progress=False)


def test_corrupt_or_missing_files_are_named(made, tmp_path):
    out, _ = made
    with pytest.raises(DatasetError, match="missing dataset index"):
        ActWMDataset(tmp_path)
    (tmp_path / INDEX).write_text('{"id": "ep-000000"}\nnot json\n')
    with pytest.raises(DatasetError, match="line 2"):
        ActWMDataset(tmp_path)
    (tmp_path / INDEX).write_text('{"id": "ep-000000"}\n')
    (tmp_path / "ep-000000").mkdir()
    with pytest.raises(DatasetError, match="missing episode file.*ep-000000"):
        ActWMDataset(tmp_path)
    (tmp_path / "ep-000000" / "episode.json").write_text("{broken")
    with pytest.raises(DatasetError, match="corrupt episode file.*episode.json"):
        ActWMDataset(tmp_path)
    # A clip that went missing or was truncated is reported by name when it is read.
    (tmp_path / "ep-000000" / "episode.json").write_text((out / "ep-000000" / "episode.json").read_text())
    ds = ActWMDataset(tmp_path)
    with pytest.raises(DatasetError, match="missing video file.*step-00-a"):
        ds[0]
    video = tmp_path / "ep-000000" / ds.refs[0].episode.steps[0].attempts[0].video
    video.write_bytes(b"\x00" * 100)
    with pytest.raises(DatasetError, match="corrupt video file"):
        ds[0]


def test_video_write_is_atomic_and_near_lossless(tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    path = write_video(tmp_path / "a.mp4", frames)
    assert os.listdir(tmp_path) == ["a.mp4"]
    assert np.abs(read_video(path).astype(int) - frames).max() <= 3
    with pytest.raises(SpiralError, match="uint8"):
        write_video(tmp_path / "b.mp4", frames.astype(float))
