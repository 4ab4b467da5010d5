"""What LoRA-GRPO on a diffusers backbone costs, counted on a tiny random Wan: the denoiser runs once
per trained step (and once more for the reference), autograd holds one step's graph however many
steps are trained, gradient checkpointing shrinks that graph, the adapter trains in float32 on a
bfloat16 model, and `group_batch_size` splits rollouts and their re-evaluation alike."""

import numpy as np
import torch
from diffusers_tiny import INSTRUCTION, start_frame, tiny_wan
from saved_bytes import peak_saved

from spiral.rl.diffusers_policy import DiffusersLoRAPolicy
from spiral.rl.grpo import GRPOSettings, grpo_backward
from spiral.worldmodels.diffusers import DiffusersConfig, DiffusersWorldModel

FRAME = start_frame(16)
# Guidance 1: Wan then calls its transformer once per denoising step, so calls count steps.
SIZES = dict(height=16, width=16, num_frames=5, num_inference_steps=5, guidance_scale=1.0)
SETTINGS = GRPOSettings(beta=0.1)


def make_policy(pipe=None, checkpointing=True, **cfg) -> DiffusersLoRAPolicy:
    wm = DiffusersWorldModel("wan-i2v", pipe or tiny_wan(), DiffusersConfig(**{**SIZES, **cfg}))
    return DiffusersLoRAPolicy(wm, rank=2, alpha=2, gradient_checkpointing=checkpointing)


def test_the_denoiser_runs_once_per_trained_step_plus_the_reference():
    policy = make_policy()
    rollout = policy.rollout(FRAME, INSTRUCTION, [1, 2], noise_level=0.7)
    assert policy.denoiser_calls == 5, "the rollout runs every step"
    assert policy.stochastic_steps(rollout) == [0, 1, 2, 3]
    policy.denoiser_calls = 0
    policy.evaluate(rollout, [2])
    assert policy.denoiser_calls == 1
    policy.denoiser_calls = 0
    grpo_backward(policy, rollout, torch.tensor([1.0, -1.0]), [1, 3], SETTINGS, scale=1.0)
    assert policy.denoiser_calls == 4, "two trained steps, each also under the reference"
    # Skipping the other steps changes nothing about the steps evaluated: still exactly on-policy.
    assert torch.equal(policy.evaluate(rollout, [3], reference=True).log_probs, rollout.log_probs[:, [3]])


def test_autograd_memory_stays_flat_in_the_number_of_trained_steps():
    policy = make_policy()
    rollout = policy.rollout(FRAME, INSTRUCTION, [1, 2], noise_level=0.7)
    advantages = torch.tensor([1.0, -1.0])
    one = peak_saved(lambda: grpo_backward(policy, rollout, advantages, [1], SETTINGS, 1.0))
    four = peak_saved(lambda: grpo_backward(policy, rollout, advantages, [0, 1, 2, 3], SETTINGS, 1.0))
    assert one > 0 and four <= 1.05 * one, (one, four)
    # The measure can see growth: graphs kept for one backward at the end grow with the steps.
    kept = peak_saved(lambda: policy.evaluate(rollout, [0, 1, 2, 3]).log_probs.sum().backward())
    assert kept > 3 * one, (one, kept)


def test_gradient_checkpointing_keeps_less_for_backward_and_the_same_gradients():
    grads, peaks = [], []
    for checkpointing in (False, True):
        pipe = tiny_wan(seed=0)
        torch.manual_seed(0)  # the same adapter initialisation both times
        policy = make_policy(pipe, checkpointing)
        assert pipe.transformer.is_gradient_checkpointing == checkpointing
        rollout = policy.rollout(FRAME, INSTRUCTION, [1, 2], noise_level=0.7)
        step = lambda p=policy, r=rollout: grpo_backward(p, r, torch.tensor([1.0, -1.0]), [0, 2], SETTINGS, 1.0)  # noqa: E731
        peaks.append(peak_saved(step))
        grads.append([p.grad.clone() for p in policy.trainable()])
    assert peaks[1] < peaks[0], peaks
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(*grads, strict=True))


def test_the_adapter_trains_in_float32_on_a_bfloat16_model():
    pipe = tiny_wan().to(torch.bfloat16)
    policy = make_policy(pipe)
    assert pipe.transformer.proj_out.weight.dtype == torch.bfloat16
    assert policy.trainable() and all(p.dtype == torch.float32 for p in policy.trainable())
    rollout = policy.rollout(FRAME, INSTRUCTION, [1, 2], noise_level=0.7)
    lora_a = {k: p.detach().clone() for k, p in policy.lora.items() if "lora_A" in k}
    opt = torch.optim.AdamW(policy.trainable(), lr=2e-5, weight_decay=0.0)
    for _ in range(10):
        opt.zero_grad()
        grpo_backward(policy, rollout, torch.tensor([1.0, -1.0]), [0, 1, 2, 3], SETTINGS, 1.0)
        opt.step()
    unchanged = np.mean([float((policy.lora[k] == v).float().mean()) for k, v in lora_a.items()])
    assert unchanged < 0.05, f"{unchanged:.0%} of the LoRA A weights did not move"


def test_group_batch_size_splits_rollouts_and_their_re_evaluation():
    torch.manual_seed(0)
    whole = make_policy(tiny_wan(seed=0))
    torch.manual_seed(0)
    split = make_policy(tiny_wan(seed=0), group_batch_size=1)
    batches = []
    handle = split.pipe.transformer.register_forward_pre_hook(
        lambda m, args, kwargs: batches.append(kwargs["hidden_states"].shape[0]), with_kwargs=True
    )
    rollout = split.rollout(FRAME, INSTRUCTION, [1, 2, 3], noise_level=0.7)
    reference = whole.rollout(FRAME, INSTRUCTION, [1, 2, 3], noise_level=0.7)
    assert set(batches) == {1} and len(batches) == 3 * 5, "three calls of one member, five steps each"
    assert torch.allclose(rollout.log_probs, reference.log_probs, atol=1e-5)
    batches.clear()
    evaluated = split.evaluate(rollout, [0, 2], reference=True)
    handle.remove()
    assert set(batches) == {1} and torch.equal(evaluated.log_probs, rollout.log_probs[:, [0, 2]])
