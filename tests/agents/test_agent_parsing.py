"""JSON extraction, validation, repair and prompt loading shared by every model-backed agent."""

import numpy as np
import pytest

from spiral.agents.parsing import (
    AgentOutputError,
    Reply,
    ValidationError,
    ask_json,
    extract_json,
    key_frame_indices,
    plan_validator,
    validate_critique,
)
from spiral.agents.prompts import Message, Prompt, available_prompts, load_prompt
from spiral.errors import SpiralError
from spiral.memory import ObjectState, WorldMemory
from spiral.types import FailureKind, Verdict


@pytest.mark.parametrize(
    "text",
    [
        '{"a": {"b": [1, 2]}}',
        'Sure!\n```json\n{"a": {"b": [1, 2]}}\n```\nAnything else?',
        '```\n{"a": {"b": [1, 2]}}\n```',
        'My answer is {"a": {"b": [1, 2]}} as requested.',
        '<think>maybe {"a": 0}?</think>\n{"a": {"b": [1, 2]}}',
        'First a set {1, 2}, then the answer: {"a": {"b": [1, 2]}}',
    ],
)
def test_extract_json_finds_the_object(text):
    assert extract_json(text) == {"a": {"b": [1, 2]}}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("I cannot help with that.", "no JSON object"),
        ('{"a": 1,, "b": 2}', "malformed"),
        ("[1, 2]", "got a JSON list"),
    ],
)
def test_extract_json_explains_what_is_wrong(text, message):
    with pytest.raises(ValidationError, match=message):
        extract_json(text)


def memory(objects=("green triangle", "yellow square")) -> WorldMemory:
    m = WorldMemory(goal="g")
    m.set_objects([ObjectState(n, 0.5, 0.5) for n in objects])
    return m


def step(**kw) -> dict:
    return {"instruction": "put the green triangle on the yellow square", "subject": "green triangle", **kw}


def test_plan_validator_canonicalises_names_and_fills_defaults():
    plan = plan_validator("g", memory(), "x")({"feasible": True, "steps": [step(subject="The Green Triangle")]})
    assert plan.steps[0].subject == "green triangle" and plan.steps[0].targets == () and plan.reasoning == ""


def test_plan_validator_accepts_any_name_when_memory_knows_no_objects():
    plan = plan_validator("g", memory(()), "x")({"feasible": True, "steps": [step(subject="purple hexagon")]})
    assert plan.steps[0].subject == "purple hexagon"


def test_a_feasible_plan_with_no_steps_says_the_goal_already_holds():
    plan = plan_validator("g", memory(), "x")({"feasible": True, "steps": [], "reasoning": "all in place"})
    assert plan.feasible and plan.steps == () and plan.reasoning == "all in place"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"feasible": "yes", "steps": [step()]}, "'feasible' must be bool"),
        ({"feasible": True, "steps": [step(instruction="  ")]}, "empty instruction"),
        ({"feasible": True, "steps": ["move it"]}, "step 1 must be a JSON object"),
        ({"feasible": True, "steps": [step(targets="yellow square")]}, "'targets' must be list"),
        ({"feasible": True, "steps": [step(targets=["blue hexagon"])]}, "unknown object 'blue hexagon'"),
        (
            {"feasible": True, "steps": [{"instruction": "move"}]},
            "step 1 field 'subject' is missing and the instruction names no",
        ),
        ({"feasible": False, "steps": []}, "must say why"),
    ],
)
def test_plan_validator_rejects(data, message):
    with pytest.raises(ValidationError, match=message):
        plan_validator("g", memory(), "x")(data)


def test_fields_the_rest_of_the_answer_implies_may_be_left_out():
    names = memory().object_names()
    instruction = f"put the {names[0]} on the {names[1]}"
    plan = plan_validator("g", memory(), "x")({"steps": [{"instruction": instruction}]})
    assert plan.feasible and plan.steps[0].subject == names[0]
    refusal = plan_validator("g", memory(), "x")({"reason": "there is no hexagon", "steps": []})
    assert not refusal.feasible and refusal.reason == "there is no hexagon"
    for kind in (None, "none"):
        c = validate_critique({"score": 0.9, "verdict": "success", "failure_kind": kind, "feedback": "done"})
        assert c.failure_kind is FailureKind.NONE
    with pytest.raises(ValidationError, match="'failure_kind' is missing"):
        validate_critique({"score": 0.2, "verdict": "local_failure", "failure_kind": None, "feedback": "no"})


def test_validate_critique():
    c = validate_critique({"score": 1, "verdict": "global_drift", "failure_kind": "physical_violation", "feedback": "gone"})
    assert c.verdict is Verdict.GLOBAL_DRIFT and c.failure_kind is FailureKind.PHYSICAL_VIOLATION and c.score == 1.0
    with pytest.raises(ValidationError, match="'score' must be int or float"):
        validate_critique({"score": True, "verdict": "success", "failure_kind": "none", "feedback": ""})
    with pytest.raises(ValidationError, match="'verdict' must be one of success, local_failure, global_drift"):
        validate_critique({"score": 0.5, "verdict": "ok", "failure_kind": "none", "feedback": ""})
    with pytest.raises(ValidationError, match="'failure_kind' must be one of none, incomplete"):
        validate_critique({"score": 0.5, "verdict": "local_failure", "failure_kind": "bad", "feedback": ""})
    with pytest.raises(ValidationError, match="'feedback' is missing"):
        validate_critique({"score": 0.5, "verdict": "success", "failure_kind": "none"})


def test_ask_json_stops_after_max_repairs():
    calls = []

    def complete(messages):
        calls.append(list(messages))
        return Reply("nope", tokens=10)

    with pytest.raises(AgentOutputError) as info:
        ask_json(complete, [Message("user", "hi")], lambda d: d, max_repairs=0)
    assert len(calls) == 1 and info.value.attempts == 1 and info.value.tokens == 10 and info.value.raw == "nope"
    assert isinstance(info.value, SpiralError)


def test_ask_json_uses_the_given_repair_template():
    replies = iter(["nope", '{"ok": 1}'])
    seen = []

    def complete(messages):
        seen.append(messages[-1].text)
        return Reply(next(replies), tokens=3)

    answer = ask_json(complete, [Message("user", "hi")], lambda d: d["ok"], max_repairs=1, repair="FIX: {error}")
    assert answer.value == 1 and answer.repairs == 1 and answer.tokens == 6
    assert seen[1] == "FIX: the reply contains no JSON object"


def test_key_frame_indices():
    assert key_frame_indices(8, 4) == [0, 2, 5, 7]
    assert key_frame_indices(2, 4) == [0, 1]
    assert key_frame_indices(9, 2) == [0, 8]


def test_prompts_load_and_fill():
    assert {"plan", "critic", "chat"} <= set(available_prompts())
    prompt = load_prompt("plan")
    messages = prompt.messages([np.zeros((4, 4, 3), np.uint8)], goal="G1", objects="O1", memory="M1")
    assert [m.role for m in messages] == ["system", "user"] and len(messages[1].images) == 1
    assert "Goal: G1" in messages[1].text and '"feasible": true' in messages[1].text  # JSON braces kept as written
    with pytest.raises(SpiralError, match="slots without a value: memory, objects"):
        prompt.fill("user", goal="G1")
    with pytest.raises(SpiralError, match="unknown prompt 'nope'; shipped prompts: .*plan"):
        load_prompt("nope")


def test_custom_prompt_file(tmp_path):
    good = tmp_path / "mine.yaml"
    good.write_text("system: be brief\nuser: 'Goal: {goal}'\n")
    assert load_prompt(str(good)) == Prompt(name=str(good), system="be brief", user="Goal: {goal}")
    bad = tmp_path / "bad.yaml"
    bad.write_text("sytem: typo\n")
    with pytest.raises(SpiralError, match="unknown keys sytem"):
        load_prompt(str(bad))
