"""`spiral run` writes as it goes and resumes: the journal of backend calls, with scripted fakes.
An episode interrupted at any call and run again equals the uninterrupted one."""

import numpy as np
import pytest

from spiral.errors import SpiralError
from spiral.journal import CALLS, Journal, JournaledCritic, JournaledPlanner, JournaledWorldModel, open_journal
from spiral.loop import LoopConfig, run
from spiral.types import Clip
from test_loop import DRIFT, LOCAL, OK, START, FakeCritic, FakePlanner

SCRIPT = (LOCAL, OK, DRIFT, OK, OK, LOCAL, OK)


class SeededWorldModel:
    """Clips that depend only on the call's inputs, as a seeded model's do; `stop_at`: the call
    that is interrupted (as by Ctrl-C or kill -9), counted from 1."""

    name, frame_size, num_frames = "seeded", 8, 3

    def __init__(self, stop_at: int = 0):
        self.calls, self.stop_at = 0, stop_at

    def generate(self, frame, instruction, *, num_frames=None, seed=0, context=None):
        self.calls += 1
        if self.calls == self.stop_at:
            raise KeyboardInterrupt
        rng = np.random.default_rng([seed, len(instruction)])
        frames = np.concatenate([frame[None], rng.integers(0, 255, (self.num_frames - 1, *frame.shape), dtype=np.uint8)])
        return Clip(frames, instruction, seed, self.name)

    def generate_group(self, frame, instruction, *, group_size, seed=0, num_frames=None, context=None):
        return [self.generate(frame, instruction, seed=seed + i, num_frames=num_frames) for i in range(group_size)]


class CriticThatStops(FakeCritic):
    def __init__(self, script, stop_at: int):
        super().__init__(script)
        self.stop_at = stop_at

    def critique(self, step, clip, memory):
        if len(self.calls) + 1 == self.stop_at:
            raise KeyboardInterrupt
        return super().critique(step, clip, memory)


def journaled_run(folder, wm=None, critic=None, replay=False, cfg=None):
    """One process's run: fresh agents (their state starts anew), the folder's journal."""
    journal = Journal(folder)
    episode = run(
        "do the thing",
        START,
        JournaledWorldModel(wm or SeededWorldModel(), journal),
        JournaledPlanner(FakePlanner(), journal, replay),
        JournaledCritic(critic or FakeCritic(SCRIPT), journal, replay),
        cfg or LoopConfig(max_tries=2),
    )
    return episode, journal


def summary(episode):
    return {
        "status": episode.status,
        "plans": [(p.why, p.plan.to_dict()) for p in episode.plans],
        "attempts": [(a.plan, a.step, a.instruction, a.accepted, a.forced, a.critique.to_dict()) for a in episode.attempts],
        "video": episode.video().tobytes(),
    }


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    episode, journal = journaled_run(tmp_path_factory.mktemp("straight"))
    return summary(episode), len(journal.entries)


def test_an_episode_interrupted_at_any_clip_or_critique_resumes_to_the_uninterrupted_one(tmp_path, uninterrupted):
    expected, calls = uninterrupted
    assert calls > 12 and len(expected["plans"]) >= 2  # a replan happened: the test covers the outer loop
    clips = sum(1 for _ in expected["attempts"])
    for stop in range(1, clips + 1):
        for where in ("world model", "critic"):
            folder = tmp_path / f"{where}-{stop}"
            wm, critic = (SeededWorldModel(stop), None) if where == "world model" else (None, CriticThatStops(SCRIPT, stop))
            with pytest.raises(KeyboardInterrupt):
                journaled_run(folder, wm=wm, critic=critic)
            done = len(Journal(folder).entries)
            wm = SeededWorldModel()
            episode, journal = journaled_run(folder, wm=wm)
            assert summary(episode) == expected, (where, stop)
            assert journal.replayed == done and len(journal.entries) == calls
            made_before = sum(e["kind"] == "clips" for e in Journal(folder).entries[:done])
            assert wm.calls == clips - made_before, "no clip recorded before the interruption is generated again"


def test_a_finished_episode_run_again_is_read_back_whole(tmp_path, uninterrupted):
    journaled_run(tmp_path)
    wm = SeededWorldModel()
    episode, journal = journaled_run(tmp_path, wm=wm)
    assert summary(episode) == uninterrupted[0] and wm.calls == 0 and journal.replayed == uninterrupted[1]


def test_an_api_agents_recorded_answers_are_used_not_asked_again(tmp_path, uninterrupted):
    journaled_run(tmp_path, replay=True)

    class Unreachable:
        name = "openai"

        def reset(self, goal, frame):
            pass

        def critique(self, step, clip, memory):
            raise AssertionError("asked again")

    episode, _ = journaled_run(tmp_path, critic=Unreachable(), replay=True)
    assert summary(episode) == uninterrupted[0]


def test_a_damaged_journal_is_trusted_up_to_the_damage_and_the_rest_made_again(tmp_path, uninterrupted):
    journaled_run(tmp_path)
    calls = tmp_path / CALLS
    lines = calls.read_text().splitlines(keepends=True)
    npz = sorted(tmp_path.glob("call-*.npz"))
    npz[3].write_bytes(npz[3].read_bytes()[:100])  # a clip file cut short
    damaged_at = next(i for i, line in enumerate(lines) if npz[3].name in line)
    journal = Journal(tmp_path)
    assert len(journal.entries) == damaged_at and npz[3].name in journal.dropped
    episode, _ = journaled_run(tmp_path)
    assert summary(episode) == uninterrupted[0]
    calls.write_text("".join(calls.read_text().splitlines(keepends=True)[:5]) + '{"kind": "cli')  # a torn last line
    journal = Journal(tmp_path)
    assert len(journal.entries) == 5 and "cut short" in journal.dropped
    assert summary(journaled_run(tmp_path)[0]) == uninterrupted[0]


def test_a_local_agent_that_now_answers_otherwise_ends_the_replay_there(tmp_path):
    journaled_run(tmp_path)
    other = (OK,) * 10  # as if the critic's weights had changed: every clip passes at once
    wm = SeededWorldModel()
    episode, journal = journaled_run(tmp_path, wm=wm, critic=FakeCritic(other))
    fresh, _ = journaled_run(tmp_path / "fresh", critic=FakeCritic(other))
    assert summary(episode) == summary(fresh)
    assert journal.replayed == 2  # the first plan and clip; the first critique differed
    assert [e["kind"] for e in Journal(tmp_path).entries] == [e["kind"] for e in Journal(tmp_path / "fresh").entries]


def test_a_folder_holding_another_configurations_episode_is_refused(tmp_path):
    open_journal(tmp_path, {"goal": "a", "loop.seed": "0"}).record("plan", "k", {"steps": []})
    assert len(open_journal(tmp_path, {"goal": "a", "loop.seed": "0"}).entries) == 1  # the same: resumes
    with pytest.raises(SpiralError, match=r"other settings \(loop.seed\): rerun with those"):
        open_journal(tmp_path, {"goal": "a", "loop.seed": "1"})
    (tmp_path / "journal" / "config.json").write_text("{not json")
    with pytest.raises(SpiralError, match="is damaged"):
        open_journal(tmp_path, {"goal": "a", "loop.seed": "0"})


def test_a_folder_whose_episode_recorded_nothing_takes_another_configuration(tmp_path):
    open_journal(tmp_path, {"goal": "a"})  # e.g. a run whose agents could not be built
    assert open_journal(tmp_path, {"goal": "b"}).entries == []
