"""The judge: exact formulas, the oracle on intact and damaged episodes, the VLM judge's answers."""

from dataclasses import replace

import numpy as np
import pytest
from bench_fakes import SimWorldModel

from spiral.agents.critic.oracle import OracleCriticAgent
from spiral.agents.parsing import Reply
from spiral.agents.plan.symbolic import SymbolicPlanAgent
from spiral.backends import observer_for
from spiral.bench.judge import OracleJudge, flicker, motion_smoothness
from spiral.bench.judge_vlm import VLMJudge
from spiral.bench.tasks import load_suite
from spiral.loop import LoopConfig, run
from spiral.worlds.tabletop.oracle import read_scene
from spiral.worlds.tabletop.render import render
from spiral.worlds.tabletop.scene import Scene, random_scene

TASK = load_suite("tabletop-medium")[0]


def perfect_episode(method="closed-loop", task=TASK):
    wm = SimWorldModel(fail_rate=0.0)
    frame = render(random_scene(np.random.default_rng(task.scene_seed)), wm.frame_size)
    critic = OracleCriticAgent() if method == "closed-loop" else None
    planner = None if method == "oneshot" else SymbolicPlanAgent()
    return run(task.goal, frame, wm, planner, critic, LoopConfig(method=method), observe=observer_for("tabletop"))


def test_flicker_and_smoothness_follow_the_documented_formulas():
    still = np.full((4, 2, 2, 3), 100, np.uint8)
    assert flicker(still) == 1.0 and motion_smoothness(still) == 1.0
    jump = still.copy()
    jump[1:] = 151  # one change of 51 grey levels between frames 0 and 1
    assert flicker(jump) == pytest.approx(((255 - 51) / 255 + 1 + 1) / 3)
    ramp = np.stack([np.full((2, 2, 3), 10 * t, np.uint8) for t in range(5)])
    assert motion_smoothness(ramp) == pytest.approx(1.0)  # linear motion is perfectly predicted
    spike = still.copy()
    spike[2] = 200  # frame 2 is 100 off its neighbours' mean; frames 1 and 3 are 50 off theirs
    assert motion_smoothness(spike) == pytest.approx(((255 - 50) / 255 + (255 - 100) / 255) / 2)
    assert flicker(still[:1]) == 1.0


def test_oracle_judge_scores_an_intact_episode_fully():
    episode = perfect_episode()
    m = OracleJudge().judge(TASK, "closed-loop", episode)
    assert m.goal_success and m.step_completion == 1.0 and m.action_alignment == pytest.approx(1.0, abs=0.01)
    assert m.identity_persistence == 1.0 and m.hallucinated_objects == 0 and m.collateral_drift == 0.0
    assert m.temporal_consistency == 1.0 and m.steps_planned == TASK.expected_steps == m.steps_accepted
    assert m.critic_mean is not None and len(m.critic_scores) == m.generation_calls and m.judge == "oracle"


def damage(episode, change):
    """The last accepted clip's final two frames re-rendered from `change(scene)`."""
    last = episode.accepted[-1]
    frames = last.clip.frames.copy()
    broken = render(change(read_scene(frames[-1])), frames.shape[1])
    frames[-2:] = broken
    i = episode.attempts.index(last)
    episode.attempts[i] = replace(last, clip=replace(last.clip, frames=frames))
    return episode


def test_oracle_judge_sees_a_vanished_object_and_collateral_drift():
    episode = perfect_episode()
    subjects = {a.clip.instruction.split(" the ")[1].split(" to ")[0] for a in episode.accepted}
    first = read_scene(episode.start_frame)
    bystander = next(
        o for o in first.objects if all(o.name not in s for s in subjects) and o.on is None and first.is_clear(o.name)
    )
    gone = OracleJudge().judge(
        TASK, "closed-loop", damage(perfect_episode(), lambda s: Scene(tuple(o for o in s.objects if o.name != bystander.name)))
    )
    n = len(first.objects)
    assert gone.identity_persistence == pytest.approx((n - 1) / n) and gone.temporal_consistency < 1.0
    assert gone.action_alignment < 1.0  # the last clip did more than it was asked
    dx = 0.12 if bystander.x < 0.5 else -0.12
    moved = OracleJudge().judge(
        TASK,
        "closed-loop",
        damage(perfect_episode(), lambda s: s.moved(bystander.name, s.get(bystander.name).x + dx, s.get(bystander.name).y, None)),
    )
    assert moved.collateral_drift > 0 and moved.identity_persistence == 1.0 and moved.temporal_consistency < 1.0


def test_oneshot_has_no_steps_to_judge():
    m = OracleJudge().judge(TASK, "oneshot", perfect_episode("oneshot"))
    assert m.step_completion is None and m.action_alignment is None and m.critic_mean is None
    assert not m.goal_success and m.identity_persistence == 1.0 and m.generation_calls == 1


class ScriptedChat:
    max_repairs = 2

    def __init__(self, *answers):
        self.answers, self.seen = list(answers), []

    def complete(self, messages):
        self.seen.append(list(messages))
        return Reply(self.answers.pop(0), tokens=10)


def test_vlm_judge_takes_success_and_steps_from_the_answer_and_repairs_bad_ones():
    episode = perfect_episode("stepwise")
    n = len(episode.accepted)
    done = [True] * (n - 1) + [False]
    chat = ScriptedChat(
        '{"goal_achieved": true, "steps_done": [true]}', f'{{"goal_achieved": false, "steps_done": {str(done).lower()}}}'
    )
    real = replace(TASK, world="real")
    m = VLMJudge(client=chat, key_frames=4).judge(real, "stepwise", episode)
    assert not m.goal_success and m.step_completion == pytest.approx((n - 1) / n) and m.judge == "vlm"
    assert m.judge_tokens == 20 and len(chat.seen) == 2  # one repair
    assert len(chat.seen[0][-1].images) == 4 and episode.accepted[0].instruction in chat.seen[0][-1].text
    assert m.identity_persistence is None and m.action_alignment is None and 0 < m.flicker <= 1
