"""Loop logic with scripted fakes: no model, no world, only the control flow."""

import numpy as np
import pytest

from spiral.errors import SpiralError
from spiral.loop import GOAL_CHECK, Attempt, Episode, LoopConfig, PlanEvent, run, run_episode
from spiral.types import Clip, Critique, FailureKind, Plan, Step, Verdict

OK = Critique(0.9, Verdict.SUCCESS, FailureKind.NONE, "fine")
LOCAL = Critique(0.2, Verdict.LOCAL_FAILURE, FailureKind.INCOMPLETE, "stopped short", "do it properly")
DRIFT = Critique(0.1, Verdict.GLOBAL_DRIFT, FailureKind.WRONG_OBJECT, "other things moved")
UNMET = Critique(0.0, Verdict.GLOBAL_DRIFT, FailureKind.PRECONDITION_UNMET, "the red square is covered")
START = np.zeros((8, 8, 3), np.uint8)


class FakeWorldModel:
    name, frame_size, num_frames = "fake", 8, 4

    def __init__(self):
        self.calls = []

    def generate(self, frame, instruction, *, num_frames=None, seed=0, context=None):
        self.calls.append({"instruction": instruction, "seed": seed, "context": context, "num_frames": num_frames})
        n = num_frames or self.num_frames
        frames = np.repeat(frame[None], n, axis=0).copy()
        frames[1:] = len(self.calls)  # every clip ends on a frame that says which call made it
        return Clip(frames, instruction, seed, self.name)

    def generate_group(self, frame, instruction, *, group_size, seed=0, num_frames=None, context=None):
        return [
            self.generate(frame, instruction, seed=seed + i, num_frames=num_frames, context=context) for i in range(group_size)
        ]


class FakePlanner:
    """Plans `n_steps` steps; the goal holds once every step of its latest plan was accepted, except
    for the first `unfinished` times it is asked that (the world model's steps fell short)."""

    name = "fake"

    def __init__(self, n_steps=2, feasible=True, unfinished=0):
        self.n_steps, self.feasible, self.unfinished, self.calls = n_steps, feasible, unfinished, []

    def reset(self, goal, frame):
        self.resets = getattr(self, "resets", 0) + 1

    def plan(self, goal, frame, memory):
        latest = len(self.calls) - 1  # the plan index of its previous answer
        self.calls.append({"frame_value": int(frame.max()), "summary": memory.summary()})
        k = len(self.calls)
        carried_out = latest >= 0 and sum(e.outcome == "accepted" and e.plan == latest for e in memory.events) >= self.n_steps
        if carried_out and self.unfinished == 0:
            return Plan(goal, (), f"reasoning {k}: the goal holds", "fake")
        self.unfinished -= carried_out
        steps = tuple(Step(f"plan{k} step{i}", f"obj{i}") for i in range(self.n_steps))
        return Plan(
            goal, steps if self.feasible else (), f"reasoning {k}", "fake", self.feasible, "" if self.feasible else "no room"
        )


class FakeCritic:
    name = "fake"

    def __init__(self, script):
        self.script, self.calls = list(script), []

    def reset(self, goal, frame):
        self.resets = getattr(self, "resets", 0) + 1

    def critique(self, step, clip, memory):
        self.calls.append(step.instruction)
        return self.script.pop(0) if self.script else OK


def go(critic_script=(), cfg=None, planner=None):
    wm, planner, critic = FakeWorldModel(), planner or FakePlanner(), FakeCritic(critic_script)
    episode = run("do the thing", START, wm, planner, critic, cfg or LoopConfig())
    return episode, wm, planner, critic


def test_all_success_accepts_each_step_once_and_stitches_the_video():
    episode, wm, planner, critic = go()
    assert episode.status == "completed" and len(planner.calls) == 2  # the plan, then the goal check
    assert episode.plans[1].why == GOAL_CHECK and episode.plans[1].goal_holds and episode.replans == 0
    assert [a.instruction for a in episode.accepted] == ["plan1 step0", "plan1 step1"]
    assert episode.generation_calls == 2 and len(critic.calls) == 2
    video = episode.video()
    assert video.shape[0] == 1 + 2 * 3 and video[-1].max() == 2  # ends on the second call's clip


def test_first_attempt_failure_triggers_the_inner_loop_with_refined_instruction_and_new_seed():
    episode, wm, planner, critic = go([LOCAL])
    assert episode.status == "completed" and len(planner.calls) == 2
    assert [c["instruction"] for c in wm.calls] == ["plan1 step0", "do it properly", "plan1 step1"]
    assert len({c["seed"] for c in wm.calls}) == 3
    first, second = episode.attempts[:2]
    assert not first.accepted and second.accepted and second.attempt == 1
    assert "stopped short" in episode.memory.summary()


def test_persistent_failure_triggers_a_replan_from_the_last_accepted_frame():
    episode, wm, planner, critic = go([OK, LOCAL, LOCAL, LOCAL], LoopConfig(max_tries=3))
    assert len(planner.calls) == 3 and episode.plans[1].why.startswith("step 2 failed 3 times") and episode.replans == 1
    assert planner.calls[1]["frame_value"] == 1  # replanned from the clip accepted for step 1
    assert "stopped short" in planner.calls[1]["summary"]
    assert episode.status == "completed"
    assert [a.instruction for a in episode.accepted] == ["plan1 step0", "plan2 step0", "plan2 step1"]


@pytest.mark.parametrize("critique", [DRIFT, UNMET])
def test_drift_or_unmet_precondition_replans_at_once(critique):
    episode, wm, planner, critic = go([critique], LoopConfig(max_tries=3))
    assert len(planner.calls) == 3 and episode.generation_calls == 3  # 1 failed + 2 steps of plan 2
    assert episode.plans[1].why.startswith("global_drift")


def test_generation_budget_is_respected():
    episode, wm, *_ = go([LOCAL] * 100, LoopConfig(max_generations=5, max_tries=3, max_replans=10))
    assert episode.status == "budget_exhausted" and len(wm.calls) == 5 == episode.generation_calls


def test_when_replans_run_out_the_best_attempt_is_forced_through():
    scores = [Critique(s, Verdict.LOCAL_FAILURE, FailureKind.INCOMPLETE, "meh") for s in (0.1, 0.4, 0.2)]
    episode, wm, planner, critic = go(scores, LoopConfig(max_tries=3, max_replans=0))
    assert len(planner.calls) == 1  # no replan left, so no goal check either
    forced = episode.accepted[0]
    assert forced.forced and forced.attempt == 1 and forced.critique.score == 0.4
    assert episode.status == "completed" and len(episode.accepted) == 2


def test_ablations_no_inner_and_no_outer_loop():
    episode, wm, planner, _ = go([LOCAL, OK, OK], LoopConfig(inner_loop=False))
    assert len(planner.calls) == 3 and episode.attempts[0].attempt == 0 and episode.generation_calls == 3
    episode, wm, planner, _ = go([LOCAL, LOCAL, LOCAL], LoopConfig(outer_loop=False, max_tries=3))
    assert len(planner.calls) == 1 and episode.accepted[0].forced


def test_a_goal_that_does_not_hold_after_the_last_step_is_planned_on_while_replans_last():
    episode, wm, planner, critic = go(cfg=LoopConfig(max_replans=2), planner=FakePlanner(unfinished=5))
    assert [p.why for p in episode.plans] == ["initial", GOAL_CHECK, GOAL_CHECK]
    assert episode.replans == 2 and episode.status == "completed"
    assert [a.instruction for a in episode.accepted] == [f"plan{k} step{i}" for k in (1, 2, 3) for i in (0, 1)]
    assert planner.calls[1]["frame_value"] == 2  # checked on the frame the last accepted step ended on


def test_the_goal_check_can_be_ablated_and_the_baselines_never_check():
    episode, _, planner, _ = go(cfg=LoopConfig(goal_check=False))
    assert len(planner.calls) == 1 and episode.status == "completed"
    planner = FakePlanner()
    run("g", START, FakeWorldModel(), planner, None, LoopConfig(method="stepwise"))
    assert len(planner.calls) == 1


def test_no_memory_ablation_hides_history_from_agents_and_world_model():
    episode, wm, planner, _ = go([OK, LOCAL, LOCAL, LOCAL], LoopConfig(use_memory=False))
    assert all(c["context"] is None for c in wm.calls)
    assert "stopped short" not in planner.calls[1]["summary"]
    _, wm, _, _ = go()
    assert "Goal: do the thing" in wm.calls[0]["context"]


def test_stepwise_baseline_never_calls_the_critic():
    wm, planner, critic = FakeWorldModel(), FakePlanner(3), FakeCritic([LOCAL] * 10)
    episode = run("g", START, wm, planner, critic, LoopConfig(method="stepwise"))
    assert critic.calls == [] and episode.generation_calls == 3 and all(a.critique is None for a in episode.accepted)


def test_oneshot_baseline_is_one_long_clip_of_the_goal():
    wm, planner = FakeWorldModel(), FakePlanner()
    episode = run("the whole goal", START, wm, planner, None, LoopConfig(method="oneshot", oneshot_steps=5))
    assert planner.calls == [] and wm.calls == [
        {"instruction": "the whole goal", "seed": 0, "context": wm.calls[0]["context"], "num_frames": 16}
    ]
    assert episode.video().shape[0] == 16


def test_infeasible_goal_ends_without_generating():
    episode, wm, *_ = go(planner=FakePlanner(feasible=False))
    assert episode.status == "infeasible" and wm.calls == [] and episode.plans[0].plan.reason == "no room"


class RefusesReplans(FakePlanner):
    """Feasible at the start, infeasible from every later frame (a misread scene)."""

    def plan(self, goal, frame, memory):
        plan = super().plan(goal, frame, memory)
        return plan if len(self.calls) == 1 else Plan(goal, (), "cannot", "fake", False, "no room left")


def test_an_infeasible_replan_pushes_on_with_the_old_plan_instead_of_ending_the_episode():
    scores = [Critique(s, Verdict.LOCAL_FAILURE, FailureKind.INCOMPLETE, "meh") for s in (0.1, 0.4, 0.2)]
    episode, wm, planner, critic = go([OK, *scores], LoopConfig(max_tries=3, max_replans=2), RefusesReplans())
    assert episode.status == "completed" and len(planner.calls) == 3  # the third is the goal check
    assert not episode.plans[1].plan.feasible and episode.plans[1].plan.reason == "no room left"
    assert episode.plans[2].why == GOAL_CHECK and not episode.plans[2].plan.feasible
    assert [a.instruction for a in episode.accepted] == ["plan1 step0", "plan1 step1"]
    forced = episode.accepted[1]
    assert forced.forced and forced.plan == 0 and forced.critique.score == 0.4
    assert episode.generation_calls == 4  # no step was tried again after the refusal


def test_events_stream_in_order_and_end_with_the_episode():
    events = list(run_episode("g", START, FakeWorldModel(), FakePlanner(), FakeCritic([LOCAL]), LoopConfig()))
    kinds = [type(e) for e in events]
    assert kinds == [PlanEvent, Attempt, Attempt, Attempt, PlanEvent, Episode]
    assert [e.accepted for e in events[1:4]] == [False, True, True]


def test_closed_loop_without_critic_is_refused():
    with pytest.raises(SpiralError, match="needs a critic"):
        run("g", START, FakeWorldModel(), FakePlanner(), None, LoopConfig())


class BrokenCritic(FakeCritic):
    def critique(self, step, clip, memory):
        self.calls.append(step.instruction)
        if len(self.calls) == 1:
            raise SpiralError("the critic answered malformed JSON 3 times")
        return OK


class PlannerFailingOnReplan(FakePlanner):
    def plan(self, goal, frame, memory):
        if self.calls:
            raise SpiralError("planner output invalid after 2 repairs")
        return super().plan(goal, frame, memory)


def test_agent_errors_are_recorded_and_the_run_goes_on_or_stops_cleanly():
    wm, planner, critic = FakeWorldModel(), FakePlanner(), BrokenCritic([])
    episode = run("g", START, wm, planner, critic, LoopConfig())
    first = episode.attempts[0]
    assert first.critique.failure_kind == FailureKind.AGENT_ERROR and "malformed JSON" in first.critique.feedback
    assert episode.status == "completed" and len(episode.accepted) == 2
    episode, *_ = go([OK, DRIFT], planner=PlannerFailingOnReplan())
    assert episode.status == "plan_error" and "invalid after 2 repairs" in episode.error
    assert len(episode.accepted) == 1  # what was accepted before the failure is kept


def test_memory_reads_objects_lazily_and_round_trips_through_json():
    import json

    from spiral.memory import MemoryEvent, ObjectState, WorldMemory

    reads = []
    memory = WorldMemory("g")
    memory.observe_later(lambda: reads.append(1) or [ObjectState("red square", 0.1, 0.2, "top left corner")])
    assert reads == []
    assert "the red square in the top left corner" in memory.summary() and reads == [1]
    memory.summary()
    assert reads == [1]
    memory.record(MemoryEvent(0, 0, "move it", "failed", 0.2, "too short"))
    again = WorldMemory.from_dict(json.loads(json.dumps(memory.to_dict())))
    assert again.summary() == memory.summary() and "too short" in again.summary()


def test_candidates_sample_a_group_in_one_call_and_keep_the_best_passing_clip():
    groups = []
    wm = FakeWorldModel()
    group = wm.generate_group
    wm.generate_group = lambda *a, **k: groups.append(k["group_size"]) or group(*a, **k)
    low_pass = Critique(0.6, Verdict.SUCCESS, FailureKind.NONE, "fine")
    critic = FakeCritic([LOCAL, OK, low_pass, low_pass, LOCAL, LOCAL])  # step 1: candidate 2 is best
    episode = run("do the thing", START, wm, FakePlanner(), critic, LoopConfig(candidates=3))
    assert episode.status == "completed" and groups == [3, 3]
    seeds = [c["seed"] for c in wm.calls]
    assert len(set(seeds)) == 6 and seeds[:3] == [seeds[0], seeds[0] + 1, seeds[0] + 2]
    assert episode.generation_calls == 6  # every candidate counts against the budget
    first, second = episode.accepted
    assert (first.candidate, first.critique.score, first.label) == (1, 0.9, "try 1, candidate 2 of 3")
    assert second.candidate == 0 and second.critique is low_pass  # the only one passed, not the first best score
    assert [a.accepted for a in episode.attempts] == [False, True, False, True, False, False]


def test_when_no_candidate_passes_the_best_scored_one_drives_the_retry():
    worse = Critique(0.1, Verdict.LOCAL_FAILURE, FailureKind.INCOMPLETE, "barely moved", "move it further")
    episode, wm, planner, critic = go([worse, LOCAL], LoopConfig(candidates=2, max_tries=2))
    assert [c["instruction"] for c in wm.calls][:4] == ["plan1 step0", "plan1 step0", "do it properly", "do it properly"]
    assert episode.accepted[0].attempt == 1 and episode.memory.to_dict()["events"][0]["feedback"] == "stopped short"


def test_candidates_stop_at_the_generation_budget_and_bad_counts_are_refused():
    episode, wm, _, _ = go([LOCAL] * 10, LoopConfig(candidates=4, max_generations=6))
    assert episode.status == "budget_exhausted" and episode.generation_calls == 6
    assert [a.candidates for a in episode.attempts] == [4] * 4 + [2] * 2
    with pytest.raises(SpiralError, match="candidates must be >= 1"):
        go(cfg=LoopConfig(candidates=0))


def test_baselines_ignore_candidates():
    wm, planner = FakeWorldModel(), FakePlanner()
    episode = run("do the thing", START, wm, planner, None, LoopConfig(method="stepwise", candidates=4))
    assert episode.generation_calls == 2 and all(a.candidates == 1 for a in episode.attempts)


def test_an_episode_past_its_time_limit_ends_with_its_accepted_steps_kept():
    import time

    class SlowWorldModel(FakeWorldModel):
        def generate(self, *args, **kwargs):
            time.sleep(0.05)
            return super().generate(*args, **kwargs)

    episode = run("do the thing", START, SlowWorldModel(), FakePlanner(n_steps=5), FakeCritic([]), LoopConfig(max_seconds=0.12))
    assert episode.status == "budget_exhausted" and "--max-seconds" in episode.error
    assert 2 <= len(episode.accepted) < 5  # the clips made before the limit are kept
    with pytest.raises(SpiralError, match="--max-seconds must be >= 0"):
        LoopConfig(max_seconds=-1)


def test_each_agent_is_reset_once_at_the_start_of_an_episode():
    episode, wm, planner, critic = go([LOCAL, DRIFT])
    assert planner.resets == 1 == critic.resets and len(planner.calls) >= 2  # replans do not reset
