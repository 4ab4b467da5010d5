"""The two agent contracts. Backends: plan/ (symbolic, openai, hf; the tabletop lm planner) and critic/
(oracle, learned, openai, hf). `check_plan_agent` and `check_critic_agent` (agents/checks.py) test
that a backend keeps them."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from spiral.memory import WorldMemory
from spiral.types import Clip, Critique, Plan, Step


@runtime_checkable
class PlanAgent(Protocol):
    name: str

    def reset(self, goal: str, frame: np.ndarray) -> None:
        """An episode begins: forget the last one. `frame` is its start frame (what a replan's
        "as it was meant at the start" refers to)."""
        ...

    def plan(self, goal: str, frame: np.ndarray, memory: WorldMemory) -> Plan:
        """Break the goal into steps from the current frame and what memory holds. An infeasible
        goal is a Plan with feasible=False and a reason, not an exception."""
        ...


@runtime_checkable
class CriticAgent(Protocol):
    name: str

    def reset(self, goal: str, frame: np.ndarray) -> None:
        """An episode begins: forget the last one."""
        ...

    def critique(self, step: Step, clip: Clip, memory: WorldMemory) -> Critique:
        """Judge whether the clip carries out the step (and nothing else happened)."""
        ...
