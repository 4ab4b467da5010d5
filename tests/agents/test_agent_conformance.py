"""The embedded agents keep the agent contracts (`check_plan_agent`, `check_critic_agent`), and the
checks catch agents that break them. (The openai and hf agents are checked in their own test files.)"""

import numpy as np
import pytest

from spiral.agents.checks import check_critic_agent, check_plan_agent
from spiral.agents.critic.learned import LearnedCriticAgent
from spiral.agents.critic.oracle import OracleCriticAgent
from spiral.agents.plan.symbolic import SymbolicPlanAgent
from spiral.types import Clip, Critique, FailureKind, Plan, Step, StepAction, Verdict
from spiral.worlds.tabletop.actions import Action, sample_target, trajectory
from spiral.worlds.tabletop.render import render
from spiral.worlds.tabletop.scene import random_scene

SCENE = random_scene(np.random.default_rng(3))
FRAME = render(SCENE, 64)


def step_clip() -> tuple[Step, Clip]:
    """A true clip of the first object moving to the top left corner, rendered by the simulator."""
    subject = SCENE.objects[0].name
    action = Action(subject, "in", "top left corner")
    target = sample_target(SCENE, action, np.random.default_rng(0))
    frames = np.stack([render(s, 64) for s in trajectory(SCENE, action, target, 8)])
    instruction = f"move the {subject} to the top left corner"
    step = Step(instruction, subject, (), action=StepAction(subject, "in", "top left corner"))
    return step, Clip(frames, instruction, 0, "simulator")


def test_the_symbolic_planner_keeps_the_contract():
    a, b = SCENE.names()[:2]
    plan = check_plan_agent(SymbolicPlanAgent(seed=1), f"swap the {a} and the {b}", FRAME)
    assert plan.feasible and len(plan.steps) >= 2


def test_the_lm_planner_keeps_the_contract():
    from spiral.worlds.tabletop.lm_planner import LMPlanAgent

    a = SCENE.names()[0]
    plan = check_plan_agent(LMPlanAgent(seed=0), f"could you slide the {a} over to the top left corner?", FRAME)
    assert plan.planner == "lm"


@pytest.mark.parametrize("critic", [OracleCriticAgent, LearnedCriticAgent.load], ids=["oracle", "learned"])
def test_the_embedded_critics_keep_the_contract(critic):
    step, clip = step_clip()
    assert check_critic_agent(critic(), step, clip).verdict is Verdict.SUCCESS  # a true clip passes


class Careless:
    name = "careless"

    def __init__(self):
        self.calls = 0

    def reset(self, goal, frame):
        pass

    def plan(self, goal, frame, memory):
        self.calls += 1  # not reset: a second episode is planned differently from the first
        return Plan(goal, (Step(f"move it {self.calls}", "red square"),), "", self.name)

    def critique(self, step, clip, memory):
        return Critique(0.9, Verdict.SUCCESS, FailureKind.INCOMPLETE, "done")


def test_the_checks_catch_broken_promises():
    with pytest.raises(AssertionError, match="same question must get the same plan"):
        check_plan_agent(Careless(), "g", FRAME)
    step, clip = step_clip()
    with pytest.raises(AssertionError, match="a success names no failure"):
        check_critic_agent(Careless(), step, clip)
    no_reset = type("NoReset", (), {"name": "x", "plan": Careless.plan})()
    with pytest.raises(AssertionError, match="has reset"):
        check_plan_agent(no_reset, "g", FRAME)
