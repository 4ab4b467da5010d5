"""The local transformers agents on a tiny randomly initialised Llama built offline in the test."""

import gc
import json
import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from tiny_chat import save_tiny_chat_model, tiny_llama, tiny_tokenizer  # noqa: E402

from spiral.agents.critic.hf import HFCriticAgent  # noqa: E402
from spiral.agents.parsing import AgentOutputError  # noqa: E402
from spiral.agents.plan.hf import HFPlanAgent  # noqa: E402
from spiral.agents.protocols import CriticAgent, PlanAgent  # noqa: E402
from spiral.errors import SpiralError  # noqa: E402
from spiral.memory import ObjectState, WorldMemory  # noqa: E402
from spiral.types import Clip, Step, Verdict  # noqa: E402

GOAL = "put the green triangle on the yellow square"
FRAME = np.zeros((32, 32, 3), np.uint8)
PLAN = {
    "reasoning": "one step",
    "feasible": True,
    "steps": [{"instruction": GOAL, "subject": "green triangle", "targets": ["yellow square"]}],
}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A randomly initialised 2-layer Llama chat model."""
    return save_tiny_chat_model(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="module")
def tiny_vlm(tmp_path_factory):
    """A randomly initialised LLaVA (2-layer CLIP tower on 28 px images + the tiny Llama)."""
    from transformers.models.llava.image_processing_pil_llava import LlavaImageProcessorPil

    path = tmp_path_factory.mktemp("tiny-llava")
    tokenizer = tiny_tokenizer("<image>")
    template = (
        "{% for m in messages %}<|{{ m['role'] }}|>{% for c in m['content'] %}"
        "{% if c['type'] == 'text' %}{{ c['text'] }}{% else %}<image>{% endif %}{% endfor %}<|end|>{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    images = LlavaImageProcessorPil(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28})
    transformers.LlavaProcessor(
        image_processor=images,
        tokenizer=tokenizer,
        patch_size=14,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # the CLIP tower adds a CLS token, which "default" drops
        chat_template=template,
    ).save_pretrained(path)
    vision = transformers.CLIPVisionConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2, image_size=28, patch_size=14
    )
    image_token = tokenizer.convert_tokens_to_ids("<image>")
    config = transformers.LlavaConfig(vision_config=vision, text_config=tiny_llama(tokenizer), image_token_index=image_token)
    torch.manual_seed(0)
    transformers.LlavaForConditionalGeneration(config).save_pretrained(path)
    return path


def memory() -> WorldMemory:
    m = WorldMemory(goal=GOAL)
    m.set_objects([ObjectState("green triangle", 0.2, 0.3), ObjectState("yellow square", 0.7, 0.6)])
    return m


def script_generate(agent, replies: list[str], monkeypatch) -> list[str]:
    """Make the loaded model 'write' the given replies (token by token through the real tokenizer);
    returns the decoded prompts it was shown. Undone after the test: agents of one folder share
    the loaded model."""
    tokenizer, prompts = agent.model.tokenizer, []

    def generate(input_ids, max_new_tokens, **_):
        prompts.append(tokenizer.decode(input_ids[0]))
        text = replies[min(len(prompts), len(replies)) - 1]
        new = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"][:, :max_new_tokens]
        return torch.cat([input_ids, new, torch.tensor([[tokenizer.eos_token_id]])], dim=1)

    monkeypatch.setattr(agent.model.model, "generate", generate)
    return prompts


def test_random_model_generates_garbage_and_ends_in_agent_output_error(tiny_model, monkeypatch):
    agent = HFPlanAgent(tiny_model, max_new_tokens=12, max_repairs=1)
    assert isinstance(agent, PlanAgent) and not agent.model.vision
    calls = []
    real = agent.model.model.generate
    monkeypatch.setattr(agent.model.model, "generate", lambda **kw: calls.append(kw) or real(**kw))
    with pytest.raises(AgentOutputError) as info:
        agent.plan(GOAL, FRAME, memory())
    assert len(calls) == 2  # the first try and one repair, both through the real network
    assert all(not kw["do_sample"] and kw["max_new_tokens"] == 12 for kw in calls)
    assert info.value.attempts == 2 and info.value.tokens > 0 and info.value.reason


def test_scripted_generate_gives_plan_after_a_repair(tiny_model, monkeypatch):
    agent = HFPlanAgent(tiny_model, max_new_tokens=400)
    prompts = script_generate(agent, ["I would rather not.", "Sure:\n```json\n" + json.dumps(PLAN) + "\n```"], monkeypatch)
    plan = agent.plan(GOAL, FRAME, memory())
    assert plan.planner == "hf" and plan.steps[0].targets == ("yellow square",) and plan.tokens > 0
    assert len(prompts) == 2
    assert "<|system|>You are the planner" in prompts[0] and GOAL in prompts[0]
    assert "[image 1 is not available: this model reads text only]" in prompts[0]
    assert "<|assistant|>I would rather not.<|end|>" in prompts[1] and "contains no JSON object" in prompts[1]


def test_scripted_generate_gives_critique(tiny_model, monkeypatch):
    agent = HFCriticAgent(tiny_model, key_frames=3, max_new_tokens=400)
    reply = {"score": 0.2, "verdict": "local_failure", "failure_kind": "wrong_object", "feedback": "the red square moved"}
    prompts = script_generate(agent, [json.dumps(reply)], monkeypatch)
    frames = np.zeros((5, 16, 16, 3), np.uint8)
    critique = agent.critique(Step(GOAL, "green triangle", ("yellow square",)), Clip(frames, GOAL, 0, "t"), memory())
    assert critique.verdict is Verdict.LOCAL_FAILURE and critique.score == 0.2
    assert "frames 0, 2, 4 of the 5-frame clip" in prompts[0] and "[image 3 is not available" in prompts[0]


def test_unknown_object_from_local_model_is_repaired_then_gives_up(tiny_model, monkeypatch):
    bad = json.loads(json.dumps(PLAN))
    bad["steps"][0]["targets"] = ["blue hexagon"]
    agent = HFPlanAgent(tiny_model, max_new_tokens=400, max_repairs=2)
    prompts = script_generate(agent, [json.dumps(bad)], monkeypatch)
    with pytest.raises(AgentOutputError, match="unknown object 'blue hexagon'"):
        agent.plan(GOAL, FRAME, memory())
    assert len(prompts) == 3


def test_missing_folder_or_parts_are_named(tiny_model, tmp_path):
    with pytest.raises(SpiralError, match="does not exist"):
        HFPlanAgent(tmp_path / "nope")
    with pytest.raises(SpiralError, match="no config.json"):
        HFPlanAgent(tmp_path)
    no_tokenizer = tmp_path / "no-tokenizer"
    no_tokenizer.mkdir()
    (no_tokenizer / "config.json").write_text((tiny_model / "config.json").read_text())
    with pytest.raises(SpiralError, match="tokenizer"):
        HFCriticAgent(no_tokenizer)
    for f in tiny_model.iterdir():
        if f.suffix != ".safetensors":
            (no_tokenizer / f.name).write_bytes(f.read_bytes())
    with pytest.raises(SpiralError, match="model weights"):
        HFCriticAgent(no_tokenizer)


def test_vision_model_sees_the_key_frames_as_images(tiny_vlm, monkeypatch):
    agent = HFCriticAgent(tiny_vlm, key_frames=3, max_new_tokens=8, max_repairs=0)
    assert isinstance(agent, CriticAgent) and agent.model.vision
    seen = []
    real = agent.model.model.generate
    monkeypatch.setattr(agent.model.model, "generate", lambda **kw: seen.append(kw) or real(**kw))
    frames = np.stack([np.full((16, 16, 3), 40 * i, np.uint8) for i in range(5)])
    with pytest.raises(AgentOutputError):  # a random model writes no JSON; max_repairs=0 gives up at once
        agent.critique(Step(GOAL, "green triangle", ("yellow square",)), Clip(frames, GOAL, 0, "t"), memory())
    (kw,) = seen
    assert kw["pixel_values"].shape[:2] == (3, 3)  # three key frames, RGB
    assert (kw["input_ids"] == agent.model.model.config.image_token_index).sum() == 3 * 4  # 2x2 patches each


def test_the_hf_agents_keep_the_agent_contracts(tiny_model, tiny_vlm, monkeypatch):
    from spiral.agents.checks import check_critic_agent, check_plan_agent

    planner = HFPlanAgent(tiny_model, max_new_tokens=400)
    script_generate(planner, [json.dumps(PLAN)], monkeypatch)
    assert check_plan_agent(planner, GOAL, FRAME).steps[0].subject == "green triangle"
    critic = HFCriticAgent(tiny_vlm, max_new_tokens=400)
    script_generate(
        critic,
        [json.dumps({"score": 0.3, "verdict": "local_failure", "failure_kind": "incomplete", "feedback": "short"})],
        monkeypatch,
    )
    step = Step(GOAL, "green triangle", ("yellow square",))
    clip = Clip(np.zeros((4, 32, 32, 3), np.uint8), GOAL, 0, "test")
    assert check_critic_agent(critic, step, clip).verdict is Verdict.LOCAL_FAILURE


def test_a_planner_and_a_critic_of_one_model_share_one_loaded_copy(tiny_model, monkeypatch):
    from spiral.backends_config import BackendsConfig

    gc.collect()  # copies that earlier tests' agents left to the cycle collector
    loads = []
    real = transformers.AutoModelForCausalLM.from_pretrained
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", lambda *a, **kw: loads.append(kw) or real(*a, **kw))
    both = BackendsConfig(planner="hf", critic="hf", agent_model=str(tiny_model))
    both.check()
    planner, critic = both.planner_agent(0), both.critic_agent()
    assert len(loads) == 1 and planner.model.model is critic.model.model and planner.model is not critic.model
    assert planner.model.device == "cpu" and planner.model.model.dtype == torch.float32  # auto, on a machine without cuda
    script_generate(planner, [json.dumps(PLAN)], monkeypatch)  # the shared copy answers both agents' turns
    assert planner.plan(GOAL, FRAME, memory()).steps[0].subject == "green triangle"
    half = BackendsConfig(planner="hf", planner_model=str(tiny_model), agent_dtype="bfloat16").planner_agent(0)
    assert len(loads) == 2 and half.model.model.dtype == torch.bfloat16  # another dtype is another copy
    del planner, critic, half
    monkeypatch.undo()  # the scripted generate held the copy too
    gc.collect()
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", lambda *a, **kw: loads.append(kw) or real(*a, **kw))
    both.planner_agent(0)
    assert len(loads) == 3  # freed with its last agent, so loaded again


def test_auto_device_and_dtype(monkeypatch):
    from spiral.agents.hf_chat import resolve_device_dtype

    assert resolve_device_dtype("cpu", "auto") == ("cpu", "float32")
    assert resolve_device_dtype("cuda:1", "auto") == ("cuda:1", "bfloat16")
    assert resolve_device_dtype("cuda", "float16") == ("cuda", "float16")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device_dtype("auto", "auto") == ("cuda", "bfloat16")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device_dtype("auto", "auto") == ("cpu", "float32")
    with pytest.raises(SpiralError, match="--agent-dtype 'half' is not one of auto, float32, bfloat16, float16"):
        HFPlanAgent("/nowhere", dtype="half")
