"""The diffusers adapter on a tiny random Wan I2V: equality with the raw pipeline, conformance, a
closed loop, the GRPO log-prob step, loading and bad input. Offline; tiny sizes."""

import json
import shutil

import numpy as np
import pytest
import torch
from diffusers_tiny import INSTRUCTION, start_frame, tiny_wan
from PIL import Image

from spiral.errors import SpiralError
from spiral.loop import LoopConfig, run
from spiral.types import Critique, FailureKind, Plan, Step, Verdict
from spiral.worldmodels.base import check_world_model
from spiral.worldmodels.diffusers import (
    DiffusersConfig,
    DiffusersWorldModel,
    make_diffusers_world_model,
    rescore,
    sample_with_logprob,
)

SIZES = dict(height=32, width=32, num_frames=5, num_inference_steps=2, guidance_scale=2.0)
FRAME = start_frame(32)


@pytest.fixture(scope="module")
def pipe():
    return tiny_wan()


def direct(pipe, seed, **overrides):
    """The raw diffusers call, converted to uint8 the way diffusers' own PIL output rounds."""
    kw = {**SIZES, **overrides}
    out = pipe(
        image=Image.fromarray(FRAME), prompt=INSTRUCTION, generator=torch.Generator().manual_seed(seed), output_type="np", **kw
    )
    return (np.clip(out.frames[0], 0, 1) * 255).round().astype(np.uint8)


@pytest.mark.parametrize("image_encoder", [True, False], ids=["wan2.1", "wan2.2-layout"])
def test_clip_equals_the_raw_pipeline_bitwise(image_encoder):
    pipe = tiny_wan(image_encoder=image_encoder)
    clip = DiffusersWorldModel("wan-i2v", pipe, DiffusersConfig(**SIZES)).generate(FRAME, INSTRUCTION, seed=7)
    ref = direct(pipe, 7)
    assert np.array_equal(clip.frames[0], FRAME), "frames[0] is the exact start frame"
    assert np.array_equal(clip.frames[1:], ref[1:]), "the generated frames are the pipeline's, bit for bit"
    assert not np.array_equal(ref[1:], direct(pipe, 8)[1:])  # the seed matters, so equality means something
    assert clip.fps == 16 and clip.source == "wan-i2v"


def test_conformance(pipe):
    check_world_model(DiffusersWorldModel("wan-i2v", pipe, DiffusersConfig(**SIZES)), FRAME, INSTRUCTION)


def test_group_batches_of_one_equal_single_calls_bitwise(pipe):
    wm = DiffusersWorldModel("wan-i2v", pipe, DiffusersConfig(**SIZES, group_batch_size=1))
    group = wm.generate_group(FRAME, INSTRUCTION, group_size=3, seed=10)
    assert [c.seed for c in group] == [10, 11, 12]
    for clip in group:
        assert np.array_equal(clip.frames, wm.generate(FRAME, INSTRUCTION, seed=clip.seed).frames)


class ThreeStepPlanner:
    name = "scripted"

    def reset(self, goal, frame):
        pass

    def plan(self, goal, frame, memory):
        if len(memory.accepted) == 3:  # the loop's goal check: the three steps were the whole goal
            return Plan(goal, (), "done", self.name)
        steps = tuple(Step(f"move the red square to the {side} side", "red square") for side in ("left", "right", "left"))
        return Plan(goal, steps, "scripted", self.name)


class AlwaysOk:
    name = "scripted"

    def __init__(self):
        self.clips = []

    def reset(self, goal, frame):
        pass

    def critique(self, step, clip, memory):
        self.clips.append(clip)
        return Critique(0.9, Verdict.SUCCESS, FailureKind.NONE, "fine")


def test_three_step_closed_loop_chains_each_step_from_the_last_frame(pipe):
    wm, critic = DiffusersWorldModel("wan-i2v", pipe, DiffusersConfig(**SIZES)), AlwaysOk()
    episode = run("shuffle the red square", FRAME, wm, ThreeStepPlanner(), critic, LoopConfig(seed=1))
    assert episode.status == "completed" and len(episode.accepted) == 3 and len(critic.clips) == 3
    clips = [a.clip for a in episode.accepted]
    assert np.array_equal(clips[0].frames[0], FRAME)
    for before, after in zip(clips, clips[1:], strict=False):
        assert np.array_equal(after.frames[0], before.last_frame), "each step starts on the previous clip's last frame"
    assert episode.video().shape == (1 + 3 * 4, 32, 32, 3)


def test_sde_sampling_has_finite_logprobs_and_rescoring_gives_ratio_one(pipe):
    wm = DiffusersWorldModel("wan-i2v", pipe, DiffusersConfig(**SIZES))
    rollout = sample_with_logprob(wm, FRAME, INSTRUCTION, seeds=[3, 4], noise_level=0.7)
    assert rollout.frames.shape == (2, 5, 32, 32, 3) and np.array_equal(rollout.frames[:, 0], np.stack([FRAME, FRAME]))
    assert rollout.log_probs.shape == (2, 2) and torch.isfinite(rollout.log_probs).all()
    assert (rollout.log_probs[:, 0] != 0).all() and (rollout.log_probs[:, -1] == 0).all()  # last step (to t=0) is the ODE
    assert len(rollout.latents) == 3 and rollout.timesteps[0] == 1.0 and rollout.timesteps[-1] == 0.0
    assert not torch.equal(rollout.latents[-1][0], rollout.latents[-1][1])
    again = sample_with_logprob(wm, FRAME, INSTRUCTION, seeds=[3, 4], noise_level=0.7)
    assert np.array_equal(again.frames, rollout.frames), "SDE sampling is seeded"
    assert torch.equal(torch.exp(rescore(wm, rollout) - rollout.log_probs), torch.ones(2, 2)), "ratio exactly 1"


def test_rescoring_follows_the_weights_and_carries_gradients():
    pipe = tiny_wan()
    wm = DiffusersWorldModel("wan-i2v", pipe, DiffusersConfig(**SIZES))
    rollout = sample_with_logprob(wm, FRAME, INSTRUCTION, seeds=[5], noise_level=0.7)
    seen = []

    def backward_now(k, log_prob, mean, std):  # each step's graph is taken as it comes, then dropped
        seen.append((k, log_prob.requires_grad))
        if log_prob.requires_grad:
            log_prob.sum().backward()

    log_probs = rescore(wm, rollout, grad=True, on_step=backward_now)
    assert seen == [(0, True), (1, False)]  # the deterministic last step has no log-prob to learn from
    assert not log_probs.requires_grad, "what the hook keeps holds no graph"
    grads = [p.grad for p in pipe.transformer.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)
    with torch.no_grad():
        pipe.transformer.proj_out.weight.add_(0.05)  # a policy update
    assert not torch.allclose(rescore(wm, rollout)[:, 0], rollout.log_probs[:, 0]), "the ratio moves with the weights"


def test_sizes_the_backbone_cannot_take_are_adjusted_with_a_warning(pipe):
    with pytest.warns(UserWarning, match="height 44 is not a multiple of 16; using 48") as record:
        wm = DiffusersWorldModel("wan-i2v", pipe, DiffusersConfig(**{**SIZES, "height": 44, "width": 44, "num_frames": 6}))
    assert any("num_frames 6 is not 1 + k*4; using 5" in str(w.message) for w in record)
    assert (wm.height, wm.width, wm.num_frames, wm.frame_size) == (48, 48, 5, 48)
    with pytest.warns(UserWarning, match="num_frames 7 is not 1 \\+ k\\*4; using 9"):
        assert wm.generate(FRAME, INSTRUCTION, num_frames=7).frames.shape == (9, 48, 48, 3)


def test_non_square_frames_keep_their_shape_and_chain_untouched(pipe):
    wm = DiffusersWorldModel("wan-i2v", pipe, DiffusersConfig(**{**SIZES, "width": 48}))
    clip = wm.generate(FRAME, INSTRUCTION, seed=0)
    assert clip.frames.shape == (5, 32, 48, 3) and wm.frame_size == 48
    assert np.array_equal(wm.generate(clip.last_frame, INSTRUCTION).frames[0], clip.last_frame)


def test_load_from_a_folder_and_name_what_is_missing(pipe, tmp_path):
    pipe.save_pretrained(tmp_path / "wan")
    wm = make_diffusers_world_model("wan-i2v", str(tmp_path / "wan"), device="cpu", **SIZES)
    assert np.array_equal(wm.generate(FRAME, INSTRUCTION, seed=7).frames[1:], direct(pipe, 7)[1:])

    shutil.copytree(tmp_path / "wan", tmp_path / "no_vae")
    shutil.rmtree(tmp_path / "no_vae" / "vae")
    with pytest.raises(SpiralError, match="needs component 'vae', but there is no vae/ subfolder"):
        make_diffusers_world_model("wan-i2v", str(tmp_path / "no_vae"))
    index = json.loads((tmp_path / "wan" / "model_index.json").read_text())
    del index["text_encoder"]
    (tmp_path / "wan" / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(SpiralError, match="needs component 'text_encoder', which model_index.json does not list"):
        make_diffusers_world_model("wan-i2v", str(tmp_path / "wan"))
    with pytest.raises(SpiralError, match="no model_index.json"):
        make_diffusers_world_model("wan-i2v", str(tmp_path))


def test_bad_names_and_options_are_clear_errors():
    with pytest.raises(SpiralError, match="unknown diffusers backbone 'sora'; known backbones: wan-i2v, cogvideox-i2v, ltx-i2v"):
        make_diffusers_world_model("sora", "x")
    with pytest.raises(SpiralError, match="unknown diffusers option 'nframes'; known options: .*num_frames"):
        make_diffusers_world_model("wan-i2v", "x", nframes=5)
    with pytest.raises(SpiralError, match="no model folder at ./nowhere"):
        make_diffusers_world_model("wan-i2v", "./nowhere")


def test_pipeline_rejections_become_spiral_errors(pipe):
    wm = DiffusersWorldModel("wan-i2v", pipe, DiffusersConfig(**SIZES, pipeline_kwargs={"image_embeds": torch.zeros(1)}))
    with pytest.raises(SpiralError, match="wan-i2v: the pipeline call failed"):
        wm.generate(FRAME, INSTRUCTION)


def test_sde_step_runs_on_the_unipc_flow_scheduler_of_the_hub_wan_models():
    from diffusers import UniPCMultistepScheduler

    pipe = tiny_wan()
    pipe.scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0)
    wm = DiffusersWorldModel("wan-i2v", pipe, DiffusersConfig(**{**SIZES, "num_inference_steps": 3}))
    rollout = sample_with_logprob(wm, FRAME, INSTRUCTION, seeds=[1], noise_level=0.7)
    assert rollout.timesteps[0] == pytest.approx(1.0, abs=1e-3) and rollout.timesteps[-1] == 0.0
    assert rollout.timesteps == sorted(rollout.timesteps, reverse=True) and len(rollout.timesteps) == 4
    assert torch.isfinite(rollout.log_probs).all() and (rollout.log_probs[0, :2] != 0).all()
    assert torch.equal(rescore(wm, rollout), rollout.log_probs)
