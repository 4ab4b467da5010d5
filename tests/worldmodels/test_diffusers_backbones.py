"""The other diffusers backbones (LTX-Video I2V and condition, CogVideoX I2V, HunyuanVideo I2V) on
tiny random components: equality with the raw pipeline, conformance, the GRPO log-prob step."""

import math

import numpy as np
import pytest
import torch
from diffusers_tiny import HUNYUAN_TEMPLATE, INSTRUCTION, start_frame, tiny_cogvideox, tiny_hunyuan, tiny_ltx
from PIL import Image

from spiral.errors import SpiralError
from spiral.worldmodels.base import check_world_model
from spiral.worldmodels.diffusers import (
    DiffusersConfig,
    DiffusersWorldModel,
    ddim_step_with_logprob,
    rescore,
    sample_with_logprob,
)

FRAME = start_frame(32)
HUNYUAN_KW = {"prompt_template": HUNYUAN_TEMPLATE, "max_sequence_length": 16}
CASES = {  # name: (builder, num_frames, extra pipeline kwargs)
    "ltx-i2v": (tiny_ltx, 5, {}),
    "ltx-condition": (lambda: tiny_ltx(condition=True), 5, {}),
    "cogvideox-i2v": (tiny_cogvideox, 9, {}),  # CogVideoX clips are 1 + 8k frames
    "hunyuan-i2v": (tiny_hunyuan, 5, HUNYUAN_KW),
}


@pytest.fixture(scope="module", params=list(CASES))
def case(request):
    build, num_frames, kwargs = CASES[request.param]
    cfg = DiffusersConfig(
        height=32, width=32, num_frames=num_frames, num_inference_steps=2, guidance_scale=2.0, pipeline_kwargs=kwargs
    )
    pipe = build()
    return request.param, pipe, DiffusersWorldModel(request.param, pipe, cfg)


def direct(name, pipe, wm, seed):
    kw = {"height": 32, "width": 32, "num_frames": wm.num_frames, "num_inference_steps": 2, "guidance_scale": 2.0}
    kw.update(CASES[name][2])
    if name.startswith("ltx"):
        kw["frame_rate"] = 25
    if name == "hunyuan-i2v":
        kw["num_frames"] += 4  # its latent_concat decode drops the start's first 4 frames
    out = pipe(
        image=Image.fromarray(FRAME), prompt=INSTRUCTION, generator=torch.Generator().manual_seed(seed), output_type="np", **kw
    )
    frames = (np.clip(out.frames[0], 0, 1) * 255).round().astype(np.uint8)
    return frames[: wm.num_frames - 1] if name == "hunyuan-i2v" else frames[1:]


def test_clip_equals_the_raw_pipeline_bitwise(case):
    name, pipe, wm = case
    clip = wm.generate(FRAME, INSTRUCTION, seed=7)
    assert clip.frames.shape == (wm.num_frames, 32, 32, 3) and np.array_equal(clip.frames[0], FRAME)
    assert np.array_equal(clip.frames[1:], direct(name, pipe, wm, 7))
    assert not np.array_equal(clip.frames[1:], direct(name, pipe, wm, 8))


def test_conformance(case):
    _, _, wm = case
    check_world_model(wm, FRAME, INSTRUCTION)


def test_sde_logprobs_are_finite_and_rescoring_gives_ratio_one(case):
    _, _, wm = case
    rollout = sample_with_logprob(wm, FRAME, INSTRUCTION, seeds=[3, 4], noise_level=0.7)
    assert rollout.frames.shape == (2, wm.num_frames, 32, 32, 3)
    assert torch.isfinite(rollout.log_probs).all() and (rollout.log_probs[:, 0] != 0).all()
    assert not np.array_equal(rollout.frames[0], rollout.frames[1])
    assert torch.equal(torch.exp(rescore(wm, rollout) - rollout.log_probs), torch.ones_like(rollout.log_probs))


def test_ddim_logprob_step_matches_cogvideox_scheduler_and_is_gaussian():
    from diffusers import CogVideoXDDIMScheduler

    sched = CogVideoXDDIMScheduler(prediction_type="v_prediction", rescale_betas_zero_snr=True, timestep_spacing="trailing")
    sched.set_timesteps(4)
    t = int(sched.timesteps[1])
    alpha, alpha_prev = float(sched.alphas_cumprod[t]), float(sched.alphas_cumprod[t - 250])
    x, v = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0)), torch.randn(2, 3, 4, 4)
    ode, lp = ddim_step_with_logprob(x, v, alpha, alpha_prev, eta=0.0)
    assert torch.allclose(ode, sched.step(v, t, x, return_dict=False)[0], atol=1e-6) and (lp == 0).all()
    sample, lp = ddim_step_with_logprob(x, v, alpha, alpha_prev, eta=1.0, generator=torch.Generator().manual_seed(1))
    std = math.sqrt((1 - alpha_prev) / (1 - alpha) * (1 - alpha / alpha_prev))
    x0, eps = math.sqrt(alpha) * x - math.sqrt(1 - alpha) * v, math.sqrt(alpha) * v + math.sqrt(1 - alpha) * x
    mean = math.sqrt(alpha_prev) * x0 + math.sqrt(1 - alpha_prev - std**2) * eps  # DDIM (eq. 12) with sigma = std
    density = torch.distributions.Normal(mean, std).log_prob(sample).mean(dim=(1, 2, 3))
    assert torch.allclose(lp, density, atol=1e-5)


def test_cogvideox_dpm_scheduler_is_refused_for_grpo_sampling():
    from diffusers import CogVideoXDPMScheduler

    pipe = tiny_cogvideox()
    pipe.scheduler = CogVideoXDPMScheduler.from_config(pipe.scheduler.config)
    wm = DiffusersWorldModel("cogvideox-i2v", pipe, DiffusersConfig(height=32, width=32, num_frames=9, num_inference_steps=2))
    assert wm.generate(FRAME, INSTRUCTION).frames.shape == (9, 32, 32, 3)  # plain sampling still works
    with pytest.raises(SpiralError, match="needs CogVideoXDDIMScheduler, not CogVideoXDPMScheduler"):
        sample_with_logprob(wm, FRAME, INSTRUCTION, seeds=[0])


def test_cogvideox_frame_counts_are_fitted_to_its_vae():
    with pytest.warns(UserWarning, match="num_frames 5 is not 1 \\+ k\\*8; using 9"):
        wm = DiffusersWorldModel("cogvideox-i2v", tiny_cogvideox(), DiffusersConfig(height=32, width=32, num_frames=5))
    assert wm.num_frames == 9
