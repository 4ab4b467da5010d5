"""Conformance checks for the agent contracts (`protocols.py`), as `check_world_model` is for world
models: run them against any backend, your own included. Each raises AssertionError naming the first
broken promise."""

from __future__ import annotations

import numpy as np

from spiral.memory import WorldMemory
from spiral.types import Clip, Critique, FailureKind, Plan, Step, Verdict


def check_plan_agent(agent, goal: str, frame: np.ndarray, deterministic: bool = True) -> Plan:
    """A name; reset then plan gives a Plan for this goal whose steps name an instruction and a
    subject, or says why it is infeasible; `deterministic`: after a reset, the same question gets
    the same plan (seeded local agents; not API agents sampling at a temperature). Returns the plan."""
    assert isinstance(getattr(agent, "name", None), str) and agent.name, "a plan agent has a non-empty str `name`"
    assert callable(getattr(agent, "reset", None)), "a plan agent has reset(goal, frame)"
    agent.reset(goal, frame)
    plan = agent.plan(goal, frame, WorldMemory(goal))
    assert isinstance(plan, Plan), f"plan() must return a Plan, got {type(plan).__name__}"
    assert plan.goal == goal, f"the plan is for {plan.goal!r}, not the goal asked, {goal!r}"
    assert isinstance(plan.reasoning, str), "the plan's reasoning is text"
    if plan.feasible:
        for i, step in enumerate(plan.steps):
            assert isinstance(step, Step), f"step {i + 1} is a {type(step).__name__}, not a Step"
            assert step.instruction.strip() and step.subject.strip(), f"step {i + 1} names no instruction or no subject"
    else:
        assert not plan.steps and plan.reason.strip(), "an infeasible plan has no steps and says why"
    if deterministic:
        agent.reset(goal, frame)
        again = agent.plan(goal, frame, WorldMemory(goal))
        assert again.to_dict() == plan.to_dict(), "after a reset, the same question must get the same plan"
    return plan


def check_critic_agent(agent, step: Step, clip: Clip, deterministic: bool = True) -> Critique:
    """A name; reset then critique gives a Critique whose score is in [0, 1], whose verdict and
    failure kind agree (a success names no failure, a failure names one) and whose feedback is text;
    `deterministic`: the same clip gets the same critique. Returns the critique."""
    assert isinstance(getattr(agent, "name", None), str) and agent.name, "a critic agent has a non-empty str `name`"
    assert callable(getattr(agent, "reset", None)), "a critic agent has reset(goal, frame)"
    agent.reset(step.instruction, clip.frames[0])
    critique = agent.critique(step, clip, WorldMemory(step.instruction))
    assert isinstance(critique, Critique), f"critique() must return a Critique, got {type(critique).__name__}"
    assert 0.0 <= critique.score <= 1.0, f"score {critique.score} is outside [0, 1]"
    assert isinstance(critique.verdict, Verdict) and isinstance(critique.failure_kind, FailureKind), "verdict and kind are enums"
    success = critique.verdict == Verdict.SUCCESS
    assert success == (critique.failure_kind == FailureKind.NONE), (
        f"verdict {critique.verdict.value} with failure kind {critique.failure_kind.value}: a success names no failure, a failure names one"
    )
    assert isinstance(critique.feedback, str), "feedback is text"
    if deterministic:
        again = agent.critique(step, clip, WorldMemory(step.instruction))
        assert again.to_dict() == critique.to_dict(), "the same clip must get the same critique"
    return critique
