"""`symbolic` PlanAgent for the tabletop world: reads the scene off the current frame (the oracle's
perception, from pixels), parses the goal and lets the solver expand it into atomic steps, writing
the solver's reasoning as the chain of thought. A replan plans on from the current frame towards
the goal as it was meant at the episode's start (a swap trades the cells the objects started in)."""

from __future__ import annotations

import numpy as np

from spiral.memory import WorldMemory
from spiral.types import Plan, Step, StepAction
from spiral.worlds.tabletop.actions import describe_postcondition, describe_precondition
from spiral.worlds.tabletop.goals import Goal, parse_goal
from spiral.worlds.tabletop.oracle import read_scene
from spiral.worlds.tabletop.scene import Scene, settle
from spiral.worlds.tabletop.solver import Infeasible, reasoning, solve


def action_step(action, instruction: str) -> Step:
    return Step(
        instruction=instruction,
        subject=action.subject,
        targets=(action.reference,) if action.reference else (),
        precondition=describe_precondition(action),
        postcondition=describe_postcondition(action),
        action=StepAction(action.subject, action.relation, action.anchor),
    )


class SymbolicPlanAgent:
    name = "symbolic"

    def __init__(self, seed: int = 0):
        self.seed = seed
        self.calls = 0
        self._start: Scene | None = None  # the scene the episode began in

    def reset(self, goal: str, frame: np.ndarray) -> None:
        self.calls = 0
        self._start = settle(read_scene(frame))

    def start_scene(self, memory: WorldMemory, scene: Scene) -> Scene:
        """The scene this episode began in. Without a reset every plan starts afresh, and so does
        each plan of the no-memory ablation, which has no history to know the start by."""
        return self._start if self._start is not None and memory.use_history else scene

    def plan(self, goal: str, frame: np.ndarray, memory: WorldMemory) -> Plan:
        # A goal it cannot parse is a SpiralError with example goals.
        return self.plan_goal(parse_goal(goal), goal, frame, memory)

    def plan_goal(self, parsed: Goal, goal: str, frame: np.ndarray, memory: WorldMemory, preface: str = "") -> Plan:
        """Plan for a goal already read into its record (`goal` is the text as the user wrote it);
        `preface` opens the reasoning (the lm planner says how it read the request)."""
        # Read error can crowd two objects a hair closer than a valid scene allows; settle parts them.
        scene = settle(read_scene(frame))
        # A new generator per call: a replan draws other landing spots than the plan that failed.
        rng = np.random.default_rng([self.seed, self.calls])
        self.calls += 1
        start = self.start_scene(memory, scene)
        # The solver keeps a margin inside regions so its plans hold up; asked whether the goal
        # holds (the loop's goal check), the planner answers with the goal's own tolerance, or it
        # would move objects that are in place, barely.
        if parsed.holds(start, scene):
            return Plan(goal, (), preface + reasoning(scene, parsed, [], start), self.name)
        solution = solve(scene, parsed, rng, start=start)
        if isinstance(solution, Infeasible):
            why = f"{preface}I cannot achieve this goal: {solution.reason}"
            return Plan(goal, (), why, self.name, feasible=False, reason=solution.reason)
        steps = tuple(action_step(s.action, s.instruction) for s in solution.steps)
        return Plan(goal, steps, preface + solution.reasoning, self.name)
