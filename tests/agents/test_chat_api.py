"""The API agents against a scripted local chat-completions server (no network beyond 127.0.0.1)."""

import base64
import io
import json
import logging
import socket
import time

import numpy as np
import pytest
from chat_server import ChatServer, Scripted, error, ok
from PIL import Image

from spiral.agents.chat import ChatClient, ChatConfig
from spiral.agents.critic.openai import OpenAICriticAgent
from spiral.agents.parsing import AgentOutputError
from spiral.agents.plan.openai import OpenAIPlanAgent
from spiral.agents.protocols import CriticAgent, PlanAgent
from spiral.errors import SpiralError
from spiral.memory import ObjectState, WorldMemory
from spiral.types import Clip, FailureKind, Step, Verdict

KEY = "sk-test-SECRET-0123456789abcdef"
FRAME = np.full((64, 64, 3), 200, np.uint8)
GOAL = "put the green triangle on the yellow square"
PLAN = {
    "reasoning": "The triangle is free and the square's top is empty.",
    "feasible": True,
    "reason": "",
    "steps": [
        {
            "instruction": "put the green triangle on the yellow square",
            "subject": "green triangle",
            "targets": ["yellow square"],
            "precondition": "the yellow square is free",
            "postcondition": "the green triangle is on the yellow square",
        }
    ],
}
CRITIQUE = {"score": 0.9, "verdict": "success", "failure_kind": "none", "feedback": "done", "refined_instruction": None}


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("NO_PROXY", "*")
    s = ChatServer()
    yield s
    s.close()


def config(server, **kw) -> ChatConfig:
    return ChatConfig(base_url=server.url, model="test-model", **{"backoff_s": 0.01, "timeout_s": 5.0, **kw})


def memory() -> WorldMemory:
    m = WorldMemory(goal=GOAL)
    m.set_objects([ObjectState("green triangle", 0.2, 0.3), ObjectState("yellow square", 0.7, 0.6)])
    return m


def texts(request_body: dict) -> str:
    return json.dumps(request_body["messages"])


def test_valid_json_gives_plan_and_sends_image_key_and_memory(server):
    server.respond(ok(json.dumps(PLAN), prompt_tokens=300, completion_tokens=50))
    agent = OpenAIPlanAgent(config(server))
    assert isinstance(agent, PlanAgent) and agent.name == "openai"
    plan = agent.plan(GOAL, FRAME, memory())
    assert plan.planner == "openai" and plan.feasible and plan.tokens == 350
    assert plan.steps[0].subject == "green triangle" and plan.steps[0].targets == ("yellow square",)
    (req,) = server.seen
    assert req.path == "/v1/chat/completions" and req.headers["Authorization"] == f"Bearer {KEY}"
    assert req.body["model"] == "test-model" and req.body["temperature"] == 0.0
    system, user = req.body["messages"]
    assert system["role"] == "system" and "planner" in system["content"]
    assert GOAL in user["content"][0]["text"] and "green triangle at (0.20, 0.30)" in user["content"][0]["text"]
    url = user["content"][1]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    image = np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))
    assert image.shape[0] >= 224 and (image == 200).all()  # upscaled, pixels kept


def test_json_in_code_fence_with_prose(server):
    server.respond(ok("Here is my plan:\n```json\n" + json.dumps(PLAN, indent=2) + "\n```\nHope it helps!"))
    plan = OpenAIPlanAgent(config(server)).plan(GOAL, FRAME, memory())
    assert len(plan.steps) == 1 and len(server.seen) == 1


def test_malformed_json_is_repaired_and_error_is_quoted(server):
    server.respond(ok('{"reasoning": "x", "feasible": true, "steps": [}'), ok(json.dumps(PLAN)))
    plan = OpenAIPlanAgent(config(server)).plan(GOAL, FRAME, memory())
    assert len(plan.steps) == 1 and plan.tokens == 240
    second = server.seen[1].body["messages"]
    assert second[-2] == {"role": "assistant", "content": '{"reasoning": "x", "feasible": true, "steps": [}'}
    assert second[-1]["role"] == "user" and "malformed" in second[-1]["content"]


def test_missing_fields_end_in_agent_output_error(server):
    server.respond(ok('{"reasoning": "I think so", "feasible": true}'))
    with pytest.raises(AgentOutputError) as info:
        OpenAIPlanAgent(config(server, max_repairs=2)).plan(GOAL, FRAME, memory())
    assert len(server.seen) == 3  # the first try and two repairs
    assert "'steps' is missing" in info.value.reason and "'steps' is missing" in str(info.value)
    assert info.value.raw == '{"reasoning": "I think so", "feasible": true}' and info.value.tokens == 360
    assert "'steps' is missing" in texts(server.seen[2].body)


def test_unknown_object_is_repaired(server):
    bad = json.loads(json.dumps(PLAN))
    bad["steps"][0]["subject"] = "purple hexagon"
    server.respond(ok(json.dumps(bad)), ok(json.dumps(PLAN)))
    plan = OpenAIPlanAgent(config(server)).plan(GOAL, FRAME, memory())
    assert plan.steps[0].subject == "green triangle"
    assert "unknown object 'purple hexagon'" in texts(server.seen[1].body)
    assert "green triangle, yellow square" in texts(server.seen[1].body)


def test_infeasible_plan_needs_a_reason(server):
    server.respond(ok('{"feasible": false, "steps": []}'), ok('{"feasible": false, "reason": "no blue circle", "steps": []}'))
    plan = OpenAIPlanAgent(config(server)).plan("stack on the blue circle", FRAME, memory())
    assert not plan.feasible and plan.steps == () and plan.reason == "no blue circle"
    assert "must say why" in texts(server.seen[1].body)


def test_timeout_is_retried(server):
    server.respond(Scripted(200, ok(json.dumps(PLAN)).body, delay_s=1.0), ok(json.dumps(PLAN)))
    plan = OpenAIPlanAgent(config(server, timeout_s=0.3)).plan(GOAL, FRAME, memory())
    assert len(plan.steps) == 1 and len(server.seen) == 2


def test_persistent_timeout_is_a_clear_error(server):
    server.respond(Scripted(200, ok(json.dumps(PLAN)).body, delay_s=0.6))
    with pytest.raises(SpiralError, match=r"no answer within 0.2 s") as info:
        ChatClient(config(server, timeout_s=0.2, max_retries=1)).complete([])
    assert server.url in str(info.value) and len(server.seen) == 2


def test_429_honours_retry_after(server):
    server.respond(error(429, "slow down", {"Retry-After": "0.4"}), ok(json.dumps(PLAN)))
    plan = OpenAIPlanAgent(config(server, backoff_s=0.001)).plan(GOAL, FRAME, memory())
    assert len(plan.steps) == 1
    assert server.seen[1].at - server.seen[0].at >= 0.35  # the backoff alone would be 1 ms


def test_a_trickling_reply_meets_the_whole_answer_deadline(server):
    reply = ok(json.dumps(PLAN))
    server.respond(Scripted(reply.status, reply.body, trickle_s=0.05))  # ~40 s for the whole body
    began = time.monotonic()
    with pytest.raises(SpiralError, match="no answer within 0.5 s.*--agent-timeout"):
        OpenAIPlanAgent(config(server, timeout_s=0.5, max_retries=0)).plan(GOAL, FRAME, memory())
    assert time.monotonic() - began < 5


def test_500_then_200(server):
    server.respond(error(500, "overloaded"), ok(json.dumps(PLAN)))
    assert len(OpenAIPlanAgent(config(server)).plan(GOAL, FRAME, memory()).steps) == 1
    assert len(server.seen) == 2


def test_persistent_500_is_a_clear_error_after_max_retries(server):
    server.respond(error(503, "the model is loading"))
    t0 = time.monotonic()
    with pytest.raises(SpiralError, match="HTTP 503: the model is loading") as info:
        OpenAIPlanAgent(config(server, max_retries=2, backoff_s=0.05)).plan(GOAL, FRAME, memory())
    assert server.url in str(info.value) and len(server.seen) == 3
    assert time.monotonic() - t0 >= 0.05 + 0.1  # exponential backoff: 0.05 s, then 0.1 s


def test_other_4xx_is_not_retried_and_shows_the_server_message(server):
    server.respond(error(400, "model 'test-model' does not support images"))
    with pytest.raises(SpiralError, match="HTTP 400: model 'test-model' does not support images"):
        OpenAIPlanAgent(config(server)).plan(GOAL, FRAME, memory())
    assert len(server.seen) == 1


def test_unreachable_url_names_it(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with socket.socket() as s:  # a port nobody listens on once the socket is closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    agent = OpenAIPlanAgent(ChatConfig(base_url=url, model="m", max_retries=1, backoff_s=0.01))
    with pytest.raises(SpiralError, match="cannot connect") as info:
        agent.plan(GOAL, FRAME, memory())
    assert f"{url}/chat/completions" in str(info.value)


def test_missing_key_names_the_variable(monkeypatch):
    monkeypatch.delenv("MY_LLM_KEY", raising=False)
    with pytest.raises(SpiralError, match="MY_LLM_KEY") as info:
        OpenAIPlanAgent(ChatConfig(base_url="http://127.0.0.1:9/v1", model="m", api_key_env="MY_LLM_KEY"))
    assert "export MY_LLM_KEY=" in str(info.value) and "--api-key-env ''" in str(info.value)


def test_server_without_key_gets_no_authorization_header(server, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    server.respond(ok(json.dumps(PLAN)))
    OpenAIPlanAgent(config(server, api_key_env="")).plan(GOAL, FRAME, memory())
    assert "Authorization" not in server.seen[0].headers


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_redirect_to_another_origin_is_refused_and_the_key_stays(server, code):
    other = ChatServer()  # another port of 127.0.0.1: another origin, as another host would be
    try:
        other.respond(ok(json.dumps(PLAN)))
        server.respond(Scripted(code, "", {"Location": other.url + "/chat/completions"}))
        with pytest.raises(SpiralError, match=f"redirected \\(HTTP {code}\\) to {other.url}") as info:
            OpenAIPlanAgent(config(server)).plan(GOAL, FRAME, memory())
        assert other.seen == [] and len(server.seen) == 1  # not followed, and not retried
        assert "--base-url" in str(info.value) and KEY not in str(info.value)
    finally:
        other.close()


def test_same_origin_307_keeps_the_post_and_the_key(server):
    server.respond(Scripted(307, "", {"Location": "/v2/chat/completions"}), ok(json.dumps(PLAN)))
    assert OpenAIPlanAgent(config(server)).plan(GOAL, FRAME, memory()).feasible
    first, second = server.seen
    assert second.path == "/v2/chat/completions" and second.body == first.body
    assert second.headers["Authorization"] == f"Bearer {KEY}"


def test_key_never_leaks(server, caplog):
    caplog.set_level(logging.DEBUG)
    agent = OpenAIPlanAgent(config(server, max_retries=1))
    assert KEY not in repr(agent) and KEY not in repr(agent.client) and KEY not in str(vars(agent.client))
    server.respond(error(500, "bad auth header $AUTH"), error(401, "invalid key in $AUTH"))
    with pytest.raises(SpiralError) as info:
        agent.plan(GOAL, FRAME, memory())
    assert "HTTP 401" in str(info.value) and "***" in str(info.value)  # the server did echo it
    assert KEY not in str(info.value) and KEY not in repr(info.value)
    assert caplog.records and KEY not in caplog.text  # the retry after the 500 was logged, scrubbed
    server.respond(ok("no json here, key $AUTH"))
    with pytest.raises(AgentOutputError) as info:
        agent.plan(GOAL, FRAME, memory())
    assert KEY not in str(info.value) and KEY not in info.value.reason and KEY not in info.value.raw


def test_bad_config_is_a_clear_error():
    with pytest.raises(SpiralError, match="http:// or https://"):
        ChatConfig(base_url="localhost:8000/v1", model="m")
    with pytest.raises(SpiralError, match="key_frames"):
        OpenAICriticAgent(ChatConfig(base_url="http://x/v1", model="m", api_key_env=""), key_frames=1)


def clip(n=8) -> Clip:
    frames = np.stack([np.full((32, 32, 3), 10 * i, np.uint8) for i in range(n)])
    return Clip(frames, "put the green triangle on the yellow square", seed=0, source="test")


STEP = Step("put the green triangle on the yellow square", "green triangle", ("yellow square",), "free", "on top")


def test_critic_sends_key_frames_and_returns_critique(server):
    server.respond(ok(json.dumps(CRITIQUE)))
    agent = OpenAICriticAgent(config(server), key_frames=4)
    assert isinstance(agent, CriticAgent) and agent.name == "openai"
    critique = agent.critique(STEP, clip(8), memory())
    assert critique.verdict is Verdict.SUCCESS and critique.failure_kind is FailureKind.NONE and critique.score == 0.9
    user = server.seen[0].body["messages"][1]["content"]
    images = [p["image_url"]["url"] for p in user if p["type"] == "image_url"]
    assert len(images) == 4 and "frames 0, 2, 5, 7 of the 8-frame clip" in user[0]["text"]
    decoded = [np.asarray(Image.open(io.BytesIO(base64.b64decode(u.split(",", 1)[1]))))[0, 0, 0] for u in images]
    assert decoded == [0, 20, 50, 70]  # first, evenly spaced, last
    assert "Postcondition: on top" in user[0]["text"] and "local_failure" in user[0]["text"]


def test_critic_repairs_out_of_range_score_and_inconsistent_verdict(server):
    bad_score = {**CRITIQUE, "score": 7}
    inconsistent = {**CRITIQUE, "verdict": "local_failure"}
    good = {**CRITIQUE, "verdict": "local_failure", "failure_kind": "incomplete", "refined_instruction": "  "}
    server.respond(ok(json.dumps(bad_score)), ok(json.dumps(inconsistent)), ok(json.dumps(good)))
    critique = OpenAICriticAgent(config(server, max_repairs=2)).critique(STEP, clip(), memory())
    assert critique.verdict is Verdict.LOCAL_FAILURE and critique.refined_instruction is None
    assert "between 0 and 1" in texts(server.seen[1].body)
    assert "failure_kind 'none' exactly" in texts(server.seen[2].body)


def test_the_openai_agents_keep_the_agent_contracts(server):
    from spiral.agents.checks import check_critic_agent, check_plan_agent

    server.respond(ok(json.dumps(PLAN)))  # the last answer repeats: the same question, the same plan
    plan = check_plan_agent(OpenAIPlanAgent(config(server)), GOAL, FRAME)
    assert plan.steps[0].subject == "green triangle"
    server.respond(ok(json.dumps(CRITIQUE)))
    assert check_critic_agent(OpenAICriticAgent(config(server)), STEP, clip()).verdict is Verdict.SUCCESS


def conforms(value, schema: dict) -> bool:
    """The subset of JSON Schema the answer schemas use (type, enum, properties, items)."""
    kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    python = {"object": dict, "array": list, "string": str, "boolean": bool, "number": (int, float), "null": type(None)}
    if not any(isinstance(value, python[k]) and not (k == "number" and isinstance(value, bool)) for k in kinds):
        return False
    if "enum" in schema and value not in schema["enum"]:
        return False
    if isinstance(value, dict):
        return set(value) == set(schema["properties"]) and all(conforms(value[k], s) for k, s in schema["properties"].items())
    return all(conforms(v, schema["items"]) for v in value) if isinstance(value, list) else True


def strict_mode_errors(schema: dict, where: str = "$") -> list[str]:
    """What OpenAI's strict structured outputs refuse: an object whose properties are not all
    required, or that allows others."""
    errors = []
    if schema.get("type") == "object":
        if schema.get("required") != list(schema["properties"]) or schema.get("additionalProperties") is not False:
            errors.append(where)
        for name, sub in schema["properties"].items():
            errors += strict_mode_errors(sub, f"{where}.{name}")
    if "items" in schema:
        errors += strict_mode_errors(schema["items"], f"{where}[]")
    return errors


def test_the_agents_ask_for_structured_output_in_their_answer_s_schema(server):
    server.respond(ok(json.dumps(PLAN)))
    OpenAIPlanAgent(config(server)).plan(GOAL, FRAME, memory())
    server.respond(ok(json.dumps(CRITIQUE)))
    OpenAICriticAgent(config(server)).critique(STEP, clip(), memory())
    (plan_request, critique_request) = (r.body["response_format"] for r in server.seen)
    for request, answer, name in ((plan_request, PLAN, "plan"), (critique_request, CRITIQUE, "critique")):
        assert request["type"] == "json_schema" and request["json_schema"]["name"] == name
        assert request["json_schema"]["strict"] is True
        schema = request["json_schema"]["schema"]
        assert strict_mode_errors(schema) == [] and conforms(answer, schema)  # a valid answer fits: no good answer is barred
    bad = {**CRITIQUE, "verdict": "fine"}
    assert not conforms(bad, critique_request["json_schema"]["schema"])  # and a bad one does not
    assert critique_request["json_schema"]["schema"]["properties"]["verdict"]["enum"] == [v.value for v in Verdict]


@pytest.mark.parametrize(
    "status, message",
    [(400, "response_format json_schema is not supported"), (422, "body.response_format: Input should be 'text'"),
     (400, "Unsupported: structured output with strict schemas")],
)  # fmt: skip
def test_a_server_that_refuses_the_schema_gets_plain_requests_from_then_on(server, caplog, status, message):
    server.respond(error(status, message), ok(json.dumps(PLAN)))
    agent = OpenAIPlanAgent(config(server))
    assert agent.plan(GOAL, FRAME, memory()).steps[0].subject == "green triangle"
    first, second = server.seen
    assert "response_format" in first.body and "response_format" not in second.body
    assert {k: v for k, v in first.body.items() if k != "response_format"} == second.body
    agent.plan(GOAL, FRAME, memory())
    assert len(server.seen) == 3 and "response_format" not in server.seen[2].body  # remembered: no second refusal
    assert "refused structured output" in caplog.text and message[:20] in caplog.text


def test_a_refusal_that_is_not_about_the_schema_is_not_retried_without_it(server):
    server.respond(error(400, "model 'test-model' does not support images"), ok(json.dumps(PLAN)))
    agent = OpenAIPlanAgent(config(server))
    with pytest.raises(SpiralError, match="HTTP 400: model 'test-model' does not support images"):
        agent.plan(GOAL, FRAME, memory())
    assert len(server.seen) == 1 and agent.client.structured
