"""GRPO on your own tasks: a file of start images and instructions, rewards from any CriticAgent
(a VLM behind an OpenAI-compatible server here, scripted), the reward-hacking guard watching
another critic's verdict, and the LoRA exported for `--world-model-options lora=...`."""

import json

import pytest
from chat_server import ChatServer, ok
from diffusers_tiny import start_frame, tiny_wan
from PIL import Image

import spiral.rl.train as train
from spiral.errors import SpiralError
from spiral.rl.task_file import read_task_file
from spiral.types import Critique, FailureKind, Verdict

VERDICTS = {True: {"score": 0.9, "verdict": "success", "failure_kind": "none", "feedback": "done"},
            False: {"score": 0.2, "verdict": "local_failure", "failure_kind": "incomplete", "feedback": "not yet"}}  # fmt: skip


def task_file(folder, lines):
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(start_frame(48)).resize((64, 40)).save(folder / "wide.png")  # another aspect ratio than the model's
    Image.fromarray(start_frame(32, seed=1)).save(folder / "square.png")
    path = folder / "tasks.jsonl"
    path.write_text("".join(line + "\n" for line in lines))
    return path


GOOD = ['{"image": "wide.png", "instruction": "move the red square to the left side"}',
        '{"image": "square.png", "instruction": "put the red square on the right side"}']  # fmt: skip


def test_task_file_errors_name_the_line(tmp_path):
    assert [t.instruction for t in read_task_file(task_file(tmp_path / "ok", GOOD))][1] == "put the red square on the right side"
    for lines, message in (
        (["{not json"], "line 1 is not JSON"),
        ([GOOD[0], '{"image": "gone.png", "instruction": "x"}'], "line 2: no image at"),
        (['{"image": "wide.png", "instruction": "  "}'], "line 1: the instruction is empty"),
        (['{"instruction": "x"}'], 'line 1: each line needs "image"'),
        ([], "holds no tasks"),
    ):
        with pytest.raises(SpiralError, match=message):
            read_task_file(task_file(tmp_path / str(len(message)), lines))


def config(tmp_path, **kw):
    tiny_wan().save_pretrained(tmp_path / "wan")
    fields = dict(
        out=tmp_path / "run", world_model="wan-i2v", model_path=str(tmp_path / "wan"), lora_rank=2,
        model_options="device=cpu,height=32,width=32,num_frames=5,num_inference_steps=3,guidance_scale=1",
        tasks=task_file(tmp_path / "tasks", GOOD), reward="critic", iterations=2, groups=1, group_size=2,
        eval_every=1, probes=2, lr=1e-2,
    )  # fmt: skip
    return train.GRPOTrainConfig(**{**fields, **kw})


def test_grpo_on_a_task_file_with_a_vlm_critic_as_reward_and_judge(tmp_path):
    server = ChatServer()
    try:
        # The critic alternates its verdicts, so each group has a reward to learn from.
        server.respond(*[ok(json.dumps(VERDICTS[i % 2 == 0])) for i in range(40)])
        cfg = config(tmp_path, critic="openai", critic_model="tiny-vlm", critic_base_url=server.url, api_key_env="")
        outcome = train.train_grpo(cfg, progress=False)
    finally:
        server.close()
    asked = [s.body for s in server.seen]
    assert asked and all(b["model"] == "tiny-vlm" for b in asked)
    assert any("move the red square to the left side" in json.dumps(b) for b in asked)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in log] == [0, 1, 2]
    assert all(0.2 <= r["reward"] <= 0.9 for r in log[1:]) and all(0 <= r["probe_judged"] <= 1 for r in log)
    lora = outcome.weights / "pytorch_lora_weights.safetensors"
    assert lora.is_file() and json.loads((outcome.weights / "card.json").read_text())["grpo_iterations"] == 2


class Brightness:
    """A scripted critic: brighter last frames score higher; the verdict passes above mid-grey."""

    name = "brightness"

    def reset(self, goal, frame):
        pass

    def critique(self, step, clip, memory):
        score = float(clip.frames[-1].mean()) / 255
        ok_ = score > 0.5
        return Critique(score, Verdict.SUCCESS if ok_ else Verdict.LOCAL_FAILURE,
                        FailureKind.NONE if ok_ else FailureKind.INCOMPLETE, "bright" if ok_ else "dark")  # fmt: skip


def brightness_critic():
    return Brightness()


def test_your_own_critic_as_reward_and_the_settings_that_cannot_work(tmp_path):
    cfg = config(tmp_path, critic=f"{__name__}:brightness_critic", judge=f"{__name__}:brightness_critic", eval_every=0)
    outcome = train.train_grpo(cfg, progress=False)
    assert outcome.iterations == 2
    rewards = [json.loads(line)["reward"] for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert all(0 < r < 1 for r in rewards)
    refused = []
    for changes, message in (
        ({"critic": ""}, "--critic is needed: the CriticAgent"),
        ({"reward": "oracle", "critic": ""}, "tasks from a file are single steps judged by a critic"),
        ({"reward": "oracle", "tasks": None}, "--critic is the critic of the 'critic' reward"),
        ({"critic": "openai", "critic_model": "", "api_key_env": ""}, "needs"),
    ):
        refused.append(tmp_path / f"refused-{len(refused)}")
        with pytest.raises(SpiralError, match=message):
            train.train_grpo(train.GRPOTrainConfig(**{**cfg.__dict__, "out": refused[-1], **changes}), progress=False)
    assert not any(folder.exists() for folder in refused), "a refused configuration claims no folder"
