"""The lm planner on a tiny randomly initialised Gemma 3 built in code: the language model's
training and decoding path, how answers are read, and the agent around it (scripted answers)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from tiny_lm import build_tiny_lm

from spiral.agents.parsing import AgentOutputError
from spiral.agents.plan.lm_model import VOCAB_KEY, PlannerLM
from spiral.memory import MemoryEvent, WorldMemory
from spiral.worlds.tabletop.goals import Goal
from spiral.worlds.tabletop.lm_planner import LMPlanAgent, planner_prompt, read_answer
from spiral.worlds.tabletop.lm_planner_train import PlannerTrainConfig, output_vocabulary, train_planner
from spiral.worlds.tabletop.oracle import read_scene
from spiral.worlds.tabletop.references import tidy
from spiral.worlds.tabletop.render import render
from spiral.worlds.tabletop.scene import Scene, TableObject, random_scene, settle

SCENE = Scene(
    (
        TableObject("red", "square", "large", 0.2, 0.2),
        TableObject("blue", "circle", "small", 0.5, 0.5),
        TableObject("green", "triangle", "medium", 0.8, 0.8),
    )
)


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory) -> Path:
    return build_tiny_lm(tmp_path_factory.mktemp("tiny-gemma"))


def overfit(base: Path, prompt: str, answer: str, steps: int = 80) -> PlannerLM:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base)
    lm = PlannerLM.load(base, vocab_ids=output_vocabulary(tok, seed=0), trainable=True)
    opt = torch.optim.AdamW([p for p in lm.model.parameters() if p.requires_grad], lr=3e-2)
    for _ in range(steps):
        loss = lm.loss([prompt], [answer])
        opt.zero_grad()
        loss.backward()
        opt.step()
    lm.model.eval()
    return lm


def test_fine_tuning_teaches_an_answer_that_survives_save_and_load(tiny_base, tmp_path):
    prompt = planner_prompt("could you put the ball on the box")
    answer = "stack [blue circle] on [large square]"
    lm = overfit(tiny_base, prompt, answer)
    assert lm.loss([prompt], [answer]).item() < 0.1
    assert tidy(lm.generate(prompt)) == answer
    lm.save_adapter(tmp_path / "a.safetensors", str(tiny_base))
    tensors = load_file(str(tmp_path / "a.safetensors"))
    assert VOCAB_KEY in tensors and any("lora_A" in k for k in tensors)
    loaded = PlannerLM.load(None, tmp_path / "a.safetensors")  # the base comes from the adapter
    assert tidy(loaded.generate(prompt)) == answer


def test_answers_outside_the_output_vocabulary_are_refused(tiny_base):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_base)
    lm = PlannerLM.load(tiny_base, vocab_ids=output_vocabulary(tok, seed=0), trainable=True)
    assert lm.out_of_vocab("stack [blue] on [in top left corner], then line up [leftmost] and [red] from right to left") == []
    assert lm.out_of_vocab("please") == ["please"]


def test_reading_an_answer_grounds_its_references_in_the_scene():
    reading = read_answer("stack [small] on [largest square]", SCENE)
    assert reading.goal == Goal.stack("blue circle", "red square")
    assert reading.grounded == "stack the blue circle on the red square"
    assert read_answer("stack the blue circle on the red square", SCENE).goal == Goal.stack("blue circle", "red square")
    assert read_answer(" cannot : unsupported ", SCENE).refusal == "unsupported"
    ambiguous = read_answer("move [cool] to the centre", SCENE)
    assert ambiguous.refusal == "ambiguous" and ambiguous.goal is None and "[cool]" in ambiguous.why
    for absent in (
        "move [purple circle] to the centre",
        "move the purple circle to the centre",
        "swap [red] and [on red square]",
    ):
        assert read_answer(absent, SCENE).refusal == "missing", absent
    with pytest.raises(ValueError, match="unknown refusal"):
        read_answer("cannot: bored", SCENE)
    with pytest.raises(ValueError, match="is not a goal"):
        read_answer("square red square red", SCENE)
    with pytest.raises(ValueError, match="'huge' is not a word of a reference"):
        read_answer("move [huge] to the centre", SCENE)


class ScriptedLM:
    def __init__(self, *answers: str):
        self.answers, self.prompts, self.temperatures = list(answers), [], []

    def generate(self, prompt, *, temperature=0.0, generator=None):
        self.prompts.append(prompt)
        self.temperatures.append(temperature)
        return self.answers.pop(0)


def agent_with(tiny_base, tmp_path, lm) -> LMPlanAgent:
    adapter = tmp_path / "any.safetensors"
    if not adapter.exists():
        overfit(tiny_base, "x", "cannot: missing", steps=1).save_adapter(adapter, str(tiny_base))
    agent = LMPlanAgent(adapter=adapter, seed=3)
    agent.lm = lm
    return agent


def test_agent_resamples_an_unusable_answer_and_keeps_its_reading_for_replans(tiny_base, tmp_path):
    scene = random_scene(np.random.default_rng(3))
    frame = render(scene, 64)
    seen = settle(read_scene(frame))
    a, b = seen.names()[:2]
    lm = ScriptedLM("swap [square", f"swap [{a}] and [{b}]")
    agent = agent_with(tiny_base, tmp_path, lm)
    memory = WorldMemory(goal="trade the places of those two")
    plan = agent.plan(memory.goal, frame, memory)
    assert plan.planner == "lm" and plan.goal == memory.goal
    assert lm.temperatures == [0.0, 0.7]  # greedy, then one resample
    assert f"as: swap [{a}] and [{b}]" in plan.reasoning and plan.feasible
    assert f"In this scene that is: swap the {a} and the {b}" in plan.reasoning
    assert lm.prompts[0] == "Request: trade the places of those two\nGoal:"
    assert f"a {seen.get(a).size} {a}" in plan.reasoning  # what the frame shows
    memory.record(MemoryEvent(step=0, plan=0, instruction="x", outcome="accepted", score=1.0))
    agent.plan(memory.goal, frame, memory)  # a replan: no new reading
    assert len(lm.prompts) == 2


def test_agent_refuses_with_the_reason_and_fails_clearly_on_nonsense(tiny_base, tmp_path):
    frame = render(SCENE, 64)
    agent = agent_with(tiny_base, tmp_path, ScriptedLM("cannot: unsupported"))
    plan = agent.plan("paint the box green", frame, WorldMemory(goal="paint the box green"))
    assert not plan.feasible and "can only be moved" in plan.reason and not plan.steps
    agent = agent_with(tiny_base, tmp_path, ScriptedLM("move [triangle] to the left of [cool]"))
    plan = agent.plan("put the wedge left of the cool one", frame, WorldMemory(goal="x"))
    assert not plan.feasible and "more than one object" in plan.reason and "[cool]" in plan.reason
    agent = agent_with(tiny_base, tmp_path, ScriptedLM(*["square square"] * 4))
    with pytest.raises(AgentOutputError, match="no usable reading") as info:
        agent.plan("do it", frame, WorldMemory(goal="do it"))
    assert info.value.raw == "square square" and info.value.attempts == 4


@pytest.mark.slow
def test_train_planner_learns_and_resumes_identically(tiny_base, tmp_path, monkeypatch):
    from spiral.worlds.tabletop import lm_planner_train

    base = {"base": str(tiny_base), "batch_size": 4, "lr": 3e-2, "eval_every": 0, "eval_size": 4, "save_every": 5, "threads": 1}
    straight = train_planner(PlannerTrainConfig(out=tmp_path / "a", steps=60, **base), progress=False)
    log = [json.loads(line) for line in (tmp_path / "a" / "train_log.jsonl").read_text().splitlines()]
    first, last = np.mean([r["loss"] for r in log[:5]]), np.mean([r["loss"] for r in log[-5:]])
    assert last < 0.6 * first, (first, last)
    assert "tuning_right" in log[-1]
    save = lm_planner_train.save_checkpoint

    def save_then_stop(cfg, lm, opt, step):  # the run is interrupted right after its step-20 checkpoint
        save(cfg, lm, opt, step)
        if step == 20:
            raise KeyboardInterrupt

    monkeypatch.setattr(lm_planner_train, "save_checkpoint", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        train_planner(PlannerTrainConfig(out=tmp_path / "b", steps=60, **base), progress=False)
    monkeypatch.setattr(lm_planner_train, "save_checkpoint", save)
    resumed = train_planner(PlannerTrainConfig(out=tmp_path / "b", steps=60, **base), progress=False)
    a, b = load_file(str(straight)), load_file(str(resumed))
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    with pytest.raises(Exception, match="other settings"):
        train_planner(PlannerTrainConfig(out=tmp_path / "b", steps=61, **{**base, "lr": 2e-2}), progress=False)


def test_cli_trains_then_runs_the_lm_planner(tiny_base, tmp_path):
    env = {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    cmd = [sys.executable, "-m", "spiral.cli"]
    out = tmp_path / "planner"
    args = [
        "train",
        "planner",
        "--base",
        str(tiny_base),
        "--out",
        str(out),
        "--steps",
        "2",
        "--batch-size",
        "2",
        "--eval-size",
        "2",
    ]
    run = subprocess.run([*cmd, *args], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    adapter = out / "tabletop_planner.safetensors"
    assert adapter.exists() and "--planner lm" in run.stdout
    goal = "put the ball somewhere nice"
    run_args = ["run", "--goal", goal, "--scene-seed", "3", "--planner", "lm", "--planner-weights", str(adapter)]
    run = subprocess.run([*cmd, *run_args, "--out", str(tmp_path / "run"), "--max-generations", "4"],
                         capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    # Two steps of training read nothing sensible: the run stops with the model's answer, no traceback.
    assert "Traceback" not in run.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] in ("plan_error", "infeasible", "completed", "budget_exhausted")
