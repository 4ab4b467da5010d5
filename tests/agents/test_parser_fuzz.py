"""Fuzzing what reads model answers: the JSON extraction, the plan and critique validators of the API
agents, and the grounding of the lm planner's readings. Random and mutated replies must end in a
valid record or the parser's own error (which the agents turn into a repair request, a resample or
a one-line message) — never another exception. (A reply that echoes the API key is scrubbed before
it reaches a parser: test_chat_api.py.)"""

import json

import numpy as np
import pytest

from spiral.agents.parsing import ValidationError, extract_json, plan_validator, validate_critique
from spiral.memory import ObjectState, WorldMemory
from spiral.types import Critique, Plan
from spiral.worlds.tabletop.references import ground
from spiral.worlds.tabletop.scene import random_scene

CASES = 1500
PLAN = {
    "reasoning": "the red square must go first",
    "feasible": True,
    "steps": [
        {"instruction": "move the red square to the left side", "subject": "red square", "targets": [],
         "precondition": "the red square is clear", "postcondition": "the red square is in the left side"},
        {"instruction": "put the blue circle on the red square", "subject": "blue circle", "targets": ["red square"]},
    ],
}  # fmt: skip
CRITIQUE = {"score": 0.4, "verdict": "local_failure", "failure_kind": "incomplete", "feedback": "short",
            "refined_instruction": "move it further"}  # fmt: skip
READINGS = ("stack [small] on [largest square], then clear the centre", "line up [red] and [in top left corner] from right to left",
            "stack by size [warm], [blue] and [leftmost]", "gather [all in left side] in the right side", "cannot: unsupported")  # fmt: skip
ODD_VALUES = (None, True, 0, -1, 1e308, float("nan"), "", "x" * 5000, [], {}, [[[]]], {"a": {"b": None}}, "\x00\ud7ff")


def mutate_value(value, rng: np.random.Generator):
    """The value with one part replaced by an odd one, or dropped."""
    if isinstance(value, dict) and value and rng.random() < 0.7:
        key = list(value)[int(rng.integers(len(value)))]
        changed = dict(value)
        if rng.random() < 0.2:
            del changed[key]
        else:
            changed[key] = mutate_value(value[key], rng)
        return changed
    if isinstance(value, list) and value and rng.random() < 0.7:
        i = int(rng.integers(len(value)))
        return value[:i] + [mutate_value(value[i], rng)] + value[i + 1 :]
    return ODD_VALUES[int(rng.integers(len(ODD_VALUES)))]


def mutate_text(text: str, rng: np.random.Generator) -> str:
    """The text cut, spliced, wrapped in prose or fences, or with characters changed."""
    for _ in range(int(rng.integers(1, 4))):
        kind = int(rng.integers(6))
        i = int(rng.integers(len(text) + 1))
        if kind == 0:
            text = text[:i]
        elif kind == 1:
            text = text[:i] + chr(int(rng.integers(32, 0x2FFF))) + text[i + 1 :]
        elif kind == 2:
            text = text[:i] + text[int(rng.integers(i, len(text) + 1)) :]
        elif kind == 3:
            text = f"Sure! Here it is:\n```json\n{text}\n```\nAnything else?"
        elif kind == 4:
            text = text[:i] + '{["]}:,'[int(rng.integers(7))] + text[i:]
        else:
            text = f"<think>{text[:i]}</think>{text[i:]}"
    return text


def replies(template: dict, seed: int):
    rng = np.random.default_rng(seed)
    for _ in range(CASES):
        data = template
        for _ in range(int(rng.integers(0, 3))):
            data = mutate_value(data, rng)
        text = json.dumps(data) if isinstance(data, dict) else json.dumps({"answer": data})
        yield mutate_text(text, rng) if rng.random() < 0.6 else text


def memory() -> WorldMemory:
    m = WorldMemory(goal="g")
    m.set_objects([ObjectState(n, 0.5, 0.5) for n in ("red square", "blue circle")])
    return m


def test_random_and_mutated_plan_replies_give_a_plan_or_the_validators_error():
    validate = plan_validator("g", memory(), "openai")
    outcomes = {"plan": 0, "error": 0}
    for text in replies(PLAN, seed=1):
        try:
            plan = validate(extract_json(text))
        except ValidationError as err:
            assert "\n" not in str(err).strip() and len(str(err)) < 1000, "a short line, sent back to the model as a repair"
            outcomes["error"] += 1
            continue
        assert isinstance(plan, Plan) and all(isinstance(s.instruction, str) and s.instruction for s in plan.steps)
        assert plan.feasible or plan.reason
        outcomes["plan"] += 1
    assert min(outcomes.values()) > CASES // 20, outcomes  # both paths were exercised


def test_random_and_mutated_critique_replies_give_a_critique_or_the_validators_error():
    outcomes = {"critique": 0, "error": 0}
    for text in replies(CRITIQUE, seed=2):
        try:
            critique = validate_critique(extract_json(text))
        except ValidationError:
            outcomes["error"] += 1
            continue
        assert isinstance(critique, Critique) and 0.0 <= critique.score <= 1.0 and isinstance(critique.feedback, str)
        outcomes["critique"] += 1
    assert min(outcomes.values()) > CASES // 20, outcomes


@pytest.mark.parametrize("seed", [3, 4])
def test_mutated_lm_planner_readings_ground_or_say_why(seed):
    rng = np.random.default_rng(seed)
    scene = random_scene(rng)
    outcomes = {"grounded": 0, "refused": 0, "error": 0}
    for _ in range(CASES):
        reading = mutate_text(READINGS[int(rng.integers(len(READINGS)))], rng)
        try:
            grounded = ground(reading, scene, ("missing", "ambiguous", "unsupported"))
        except ValueError:
            outcomes["error"] += 1
            continue
        assert (grounded.goal is None) == (grounded.refusal is not None)
        outcomes["grounded" if grounded.goal is not None else "refused"] += 1
    assert min(outcomes.values()) > 0, outcomes
