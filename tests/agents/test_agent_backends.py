"""BackendsConfig: one definition of the backend flags for run, bench and plans; each agent its own
model and server over the shared ones; bad choices refused before any model loads."""

import argparse
import dataclasses
import json

import numpy as np
import pytest
from chat_server import ChatServer, ok

from spiral.backends_config import BackendsConfig
from spiral.bench.runner import BenchConfig
from spiral.config import add_config_args, config_from_args, config_from_flat, flat_settings
from spiral.errors import SpiralError
from spiral.loop import LoopConfig
from spiral.memory import ObjectState, WorldMemory
from spiral.run import RunConfig
from spiral.types import Clip, Verdict
from spiral.worlds.tabletop.plan_eval import PlanEvalConfig

GOAL = "put the green triangle on the yellow square"
PLAN = {"reasoning": "one step", "feasible": True, "reason": "", "steps": [
    {"instruction": GOAL, "subject": "green triangle", "targets": ["yellow square"], "precondition": "", "postcondition": ""}]}  # fmt: skip
CRITIQUE = {"score": 0.8, "verdict": "success", "failure_kind": "none", "feedback": "done", "refined_instruction": None}
FLAGS = {f.name: "--" + f.name.replace("_", "-") for f in dataclasses.fields(BackendsConfig)}


def parse(*configs, args):
    parser = argparse.ArgumentParser()
    for cls in configs:
        add_config_args(parser, cls)
    return parser.parse_args(args)


def memory() -> WorldMemory:
    m = WorldMemory(goal=GOAL)
    m.set_objects([ObjectState("green triangle", 0.2, 0.3), ObjectState("yellow square", 0.7, 0.6)])
    return m


def test_run_and_bench_read_the_same_flat_backend_flags():
    args = ["--planner", "openai", "--planner-model", "gpt-x", "--critic", "hf", "--critic-model", "/models/vlm",
            "--base-url", "http://h:1/v1", "--agent-dtype", "bfloat16", "--critic-threshold", "0"]  # fmt: skip
    run = config_from_args(RunConfig, parse(RunConfig, LoopConfig, args=["--goal", "g", "--out", "o", *args]))
    bench = config_from_args(BenchConfig, parse(BenchConfig, args=["--out", "o", *args]))
    assert run.backends == bench.backends
    b = run.backends
    assert (b.planner, b.planner_model, b.critic, b.critic_model, b.agent_dtype) == (
        "openai",
        "gpt-x",
        "hf",
        "/models/vlm",
        "bfloat16",
    )
    assert b.world_model == "tabletop" and b.api_key_env == "OPENAI_API_KEY"  # untouched flags keep their one default
    assert flat_settings(run)["planner_model"] == "gpt-x" and "backends" not in flat_settings(run)
    parser = argparse.ArgumentParser()
    add_config_args(parser, BenchConfig)
    helps = {a.option_strings[0]: a.help for a in parser._actions if a.option_strings}
    assert set(FLAGS.values()) <= set(helps)  # every backend field is a flag of its own
    assert config_from_flat(BenchConfig, out="o", planner="symbolic").backends.planner == "symbolic"
    with pytest.raises(TypeError, match="no setting plannr"):
        config_from_flat(BenchConfig, out="o", plannr="symbolic")


def test_bench_plans_takes_the_planner_part_with_the_same_help():
    parser = argparse.ArgumentParser()
    add_config_args(parser, PlanEvalConfig)
    flags = {a.option_strings[0]: a for a in parser._actions if a.option_strings}
    assert "--critic" not in flags and "--world-model" not in flags
    run_parser = argparse.ArgumentParser()
    add_config_args(run_parser, BackendsConfig)
    run_flags = {a.option_strings[0]: a for a in run_parser._actions if a.option_strings}
    for flag in ("--planner", "--planner-model", "--planner-base-url", "--agent-model", "--agent-device"):
        assert flags[flag].help == run_flags[flag].help and flags[flag].default == run_flags[flag].default
    cfg = config_from_args(PlanEvalConfig, parser.parse_args(["--out", "o", "--planner", "hf", "--planner-model", "m"]))
    assert cfg.backends() == BackendsConfig(planner="hf", planner_model="m")


def test_an_api_planner_beside_the_learned_critic_keeps_the_critic_s_weights(monkeypatch):
    from spiral.agents.critic import learned

    loaded = []
    monkeypatch.setattr(
        learned.LearnedCriticAgent, "load", classmethod(lambda cls, path=None, threshold=None: loaded.append(path))
    )
    b = BackendsConfig(planner="openai", agent_model="served-model", critic="learned", api_key_env="")
    b.check()
    assert b.planner_agent(0).config.model == "served-model"
    b.critic_agent()
    assert loaded == [None]  # the shipped weights: the planner's model name never reaches the learned critic
    BackendsConfig(planner="openai", agent_model="m", critic="learned", critic_model=__file__, api_key_env="").critic_agent()
    assert loaded[-1] == __file__


def test_a_planner_and_a_critic_on_two_servers_each_with_its_own_key(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "*")
    monkeypatch.setenv("PLANNER_KEY", "sk-planner")
    monkeypatch.setenv("CRITIC_KEY", "sk-critic")
    planner_server, critic_server = ChatServer(), ChatServer()
    try:
        planner_server.respond(ok(json.dumps(PLAN)))
        critic_server.respond(ok(json.dumps(CRITIQUE)))
        b = BackendsConfig(planner="openai", critic="openai", agent_model="shared-vlm", planner_model="planner-llm",
                           planner_base_url=planner_server.url, critic_base_url=critic_server.url,
                           planner_api_key_env="PLANNER_KEY", critic_api_key_env="CRITIC_KEY")  # fmt: skip
        b.check()
        plan = b.planner_agent(0).plan(GOAL, np.zeros((32, 32, 3), np.uint8), memory())
        critique = b.critic_agent().critique(plan.steps[0], Clip(np.zeros((4, 32, 32, 3), np.uint8), GOAL, 0, "t"), memory())
    finally:
        planner_server.close()
        critic_server.close()
    assert plan.steps[0].subject == "green triangle" and critique.verdict is Verdict.SUCCESS
    (p,), (c,) = planner_server.seen, critic_server.seen
    assert p.body["model"] == "planner-llm" and p.headers["Authorization"] == "Bearer sk-planner"
    assert c.body["model"] == "shared-vlm" and c.headers["Authorization"] == "Bearer sk-critic"  # --agent-model: the default


@pytest.mark.parametrize(
    "settings, message",
    [({"planner": "gpt"}, "unknown planner 'gpt'; known planners: symbolic, lm, openai, hf (or module:callable)"),
     ({"critic": "nowhere:critic"}, "cannot load the critic 'nowhere:critic'"),
     ({"planner": "openai"}, "the openai planner needs a model (a name the server knows): give --planner-model, or --agent-model"),
     ({"critic": "hf", "planner": "symbolic"}, "the hf critic needs a model (a local model folder)"),
     ({"critic": "hf", "agent_model": "/no/such/folder"}, "--agent-model /no/such/folder: no such folder; the hf critic reads a local model"),
     ({"planner": "openai", "planner_model": "m", "api_key_env": "NO_SUCH_KEY_VAR"},
      "the openai planner's API key is missing: set the environment variable NO_SUCH_KEY_VAR (export NO_SUCH_KEY_VAR=...), "
      "or pass --api-key-env ''"),
     ({"critic": "openai", "agent_model": "m", "critic_api_key_env": "NO_SUCH_KEY_VAR"}, "or pass --critic-api-key-env ''"),
     ({"critic": "openai", "agent_model": "m", "api_key_env": "", "critic_base_url": "localhost:1"},
      "--critic-base-url must start with http:// or https://"),
     ({"agent_model": "critic.safetensors"},
      "--agent-model is the model of the openai and hf agents, and neither the planner (lm) nor the critic (learned) is one: "
      "drop it; the learned critic's weights go in --critic-model"),
     ({"planner_model": "m"}, "--planner-model is read by the openai / hf planner only, and the planner is 'lm'"),
     ({"critic": "oracle", "critic_model": "w"}, "--critic-model is read by the learned / openai / hf critic only"),
     ({"planner_base_url": "http://x/v1"}, "--planner-base-url is read by the openai planner only"),
     ({"planner": "symbolic", "planner_weights": "a.safetensors"}, "--planner-weights is read by the lm planner only"),
     ({"critic_model": "missing.safetensors"}, "--critic-model missing.safetensors: no such weights file"),
     ({"agent_device": "gpu"}, "--agent-device 'gpu' is not a torch device"),
     ({"agent_dtype": "fp8"}, "--agent-dtype 'fp8' is not one of auto, float32, bfloat16, float16"),
     ({"agent_device": "cuda"}, "--agent-device and --agent-dtype set the hf agents' model, and no agent here is hf"),
     ({"critic": "oracle", "critic_threshold": 0.7}, "--critic-threshold sets the learned critic's pass score")],
)  # fmt: skip
def test_bad_choices_are_one_line_errors_before_any_model_loads(settings, message, monkeypatch):
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    with pytest.raises(SpiralError) as info:
        BackendsConfig(**settings).check()
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_critic_the_methods_do_not_use_needs_no_model_or_key():
    BackendsConfig(planner="symbolic", critic="openai").check(with_critic=False)
    with pytest.raises(SpiralError, match="the openai critic needs a model"):
        BackendsConfig(planner="symbolic", critic="openai").check()
    with pytest.raises(SpiralError, match="and the planner \\(symbolic\\) is not one: drop it$"):
        BackendsConfig(planner="symbolic", critic="openai", agent_model="m").check(with_critic=False)


def test_module_callable_backends_are_built_by_their_factories():
    b = BackendsConfig(
        planner="spiral.agents.plan.symbolic:SymbolicPlanAgent", critic="spiral.agents.critic.oracle:OracleCriticAgent"
    )
    b.check()
    assert b.planner_agent(0).name == "symbolic" and b.critic_agent().name == "oracle"
