"""`oracle` CriticAgent for the tabletop world: judges a clip from its pixels with the oracle's
checks (postcondition, and nothing else vanished, appeared, changed or moved).

It first checks the step's precondition on the clip's start frame: a step that could not start
there is a PRECONDITION_UNMET global failure (retrying would not help; the planner must replan).
"""

from __future__ import annotations

import numpy as np

from spiral.memory import WorldMemory
from spiral.types import Clip, Critique, FailureKind, Step, Verdict
from spiral.worlds.tabletop import checks
from spiral.worlds.tabletop.actions import Action, precondition_errors
from spiral.worlds.tabletop.grammar import parse, to_text
from spiral.worlds.tabletop.oracle import read_scene


def step_action(step: Step) -> Action:
    """The structured action of a step: the planner's, or parsed from the instruction text."""
    if step.action is not None:
        return Action(step.action.subject, step.action.relation, step.action.anchor)
    return parse(step.instruction)


class OracleCriticAgent:
    name = "oracle"

    def reset(self, goal: str, frame: np.ndarray) -> None:
        """Nothing carries over from one episode to the next."""

    def critique(self, step: Step, clip: Clip, memory: WorldMemory) -> Critique:
        action = step_action(step)
        unmet = precondition_errors(read_scene(clip.frames[0]), action)
        if unmet:
            return Critique(0.0, Verdict.GLOBAL_DRIFT, FailureKind.PRECONDITION_UNMET, "; ".join(unmet))
        critique = checks.critique(clip.frames, action)
        if critique.verdict == Verdict.LOCAL_FAILURE and critique.refined_instruction is None:
            # The world model is most reliable on the wording it was trained on most.
            critique = Critique(critique.score, critique.verdict, critique.failure_kind, critique.feedback, to_text(action))
        return critique
