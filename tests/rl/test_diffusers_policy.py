"""DiffusersLoRAPolicy on a tiny random Wan I2V: on-policy ratio exactly 1, adapter-off reference,
GRPO updates that move only the LoRA weights, and the LoRA state round trip. Offline; tiny sizes."""

import json
import sys

import numpy as np
import pytest
import torch
from diffusers_tiny import INSTRUCTION, start_frame, tiny_wan

from spiral.errors import SpiralError
from spiral.rl.diffusers_policy import DiffusersLoRAPolicy
from spiral.rl.sde import gaussian_kl
from spiral.worldmodels.diffusers import DiffusersConfig, DiffusersWorldModel

SIZES = dict(height=16, width=16, num_frames=5, num_inference_steps=3, guidance_scale=2.0)
FRAME = start_frame(16)


def make_policy(**kw) -> DiffusersLoRAPolicy:
    return DiffusersLoRAPolicy(DiffusersWorldModel("wan-i2v", tiny_wan(), DiffusersConfig(**SIZES)), **kw)


def base_weights(policy):
    return {n: p.detach().clone() for n, p in policy.pipe.transformer.named_parameters() if "lora_" not in n}


@pytest.fixture(scope="module")
def fresh():
    policy = make_policy()
    return policy, policy.rollout(FRAME, INSTRUCTION, seeds=[3, 4], noise_level=0.7)


def test_on_policy_ratio_is_exactly_one_and_the_fresh_adapter_equals_the_reference(fresh):
    policy, rollout = fresh
    assert rollout.frames.shape == (2, 5, 16, 16, 3) and np.array_equal(rollout.frames[:, 0], np.stack([FRAME, FRAME]))
    assert rollout.log_probs.shape == (2, 3) and torch.isfinite(rollout.log_probs).all()
    steps = policy.stochastic_steps(rollout)
    assert steps == [0, 1]  # the last step, to t = 0, is deterministic
    assert policy.trainable() and all(p.requires_grad for p in policy.trainable())
    assert all("lora_" in k for k in policy.state_dict())

    current = policy.evaluate(rollout, steps)
    assert current.log_probs.shape == (2, 2) and current.log_probs.requires_grad
    assert torch.equal(torch.exp(current.log_probs - rollout.log_probs[:, steps]), torch.ones(2, 2)), "ratio exactly 1"
    assert [m.shape for m in current.means] == [rollout.latents[1].shape] * 2 and all(s > 0 for s in current.stds)

    reference = policy.evaluate(rollout, steps, reference=True)
    assert not reference.log_probs.requires_grad
    assert torch.equal(reference.log_probs, current.log_probs.detach())  # LoRA B starts at zero
    assert all(torch.equal(r, c.detach()) for r, c in zip(reference.means, current.means, strict=True))
    assert all(p.requires_grad for p in policy.trainable()), "the adapter is trainable again after the reference pass"

    only_last = policy.evaluate(rollout, [1])
    assert only_last.log_probs.requires_grad and torch.equal(only_last.log_probs[:, 0], current.log_probs[:, 1].detach())


def test_grpo_updates_move_only_the_lora_weights_away_from_the_reference():
    policy = make_policy()
    rollout = policy.rollout(FRAME, INSTRUCTION, seeds=[1, 2], noise_level=0.7)
    steps, advantages = policy.stochastic_steps(rollout), torch.tensor([1.0, -1.0])
    base, lora = base_weights(policy), policy.state_dict()
    optimizer = torch.optim.Adam(policy.trainable(), lr=1e-2)
    for _ in range(2):
        new = policy.evaluate(rollout, steps)
        ref = policy.evaluate(rollout, steps, reference=True)
        ratio = torch.exp(new.log_probs - rollout.log_probs[:, steps])
        kl = sum(gaussian_kl(m, r, s) for m, r, s in zip(new.means, ref.means, new.stds, strict=True)) / len(steps)
        loss = -(advantages[:, None] * ratio).mean() + 0.01 * kl.mean()
        assert torch.isfinite(loss)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    assert all(not torch.equal(p, lora[k]) for k, p in policy.state_dict().items() if "lora_B" in k), "LoRA moved"
    assert all(torch.equal(p, base[n]) for n, p in base_weights(policy).items()), "base weights untouched"
    with torch.no_grad():
        new = policy.evaluate(rollout, steps)
    ref = policy.evaluate(rollout, steps, reference=True)
    assert not torch.equal(new.log_probs, rollout.log_probs[:, steps]), "the ratio has moved off 1"
    assert all((gaussian_kl(m, r, s) > 0).all() for m, r, s in zip(new.means, ref.means, new.stds, strict=True))
    assert torch.equal(ref.log_probs, rollout.log_probs[:, steps]), "adapter off is still the model that sampled"


def test_lora_state_round_trips_into_a_fresh_policy():
    trained = make_policy()
    with torch.no_grad():  # stand-in for training: a non-zero adapter
        for p in trained.trainable():
            p.copy_(torch.randn_like(p) * 0.1)
    rollout = trained.rollout(FRAME, INSTRUCTION, seeds=[5], noise_level=0.7)
    before = trained.evaluate(rollout, [0, 1])

    loaded = make_policy()
    loaded.load_state_dict(trained.state_dict())
    after = loaded.evaluate(rollout, [0, 1])
    assert torch.equal(after.log_probs, before.log_probs)
    assert all(torch.equal(a, b) for a, b in zip(after.means, before.means, strict=True))
    clips = [policy.sample_frames(FRAME[None], [INSTRUCTION], [5]) for policy in (trained, loaded)]
    assert clips[0].shape == (1, 5, 16, 16, 3) and np.array_equal(clips[0], clips[1])

    with pytest.raises(SpiralError, match="does not fit this policy"):
        make_policy(rank=2).load_state_dict(trained.state_dict())


def test_missing_peft_and_a_reused_pipeline_are_clear_errors(fresh, monkeypatch):
    policy, _ = fresh
    with pytest.raises(SpiralError, match="already has a 'spiral_grpo' adapter"):
        DiffusersLoRAPolicy(policy.wm)
    monkeypatch.setitem(sys.modules, "peft", None)  # import peft now raises ImportError
    with pytest.raises(SpiralError, match=r"pip install 'spiral-actwm\[diffusers\]'"):
        DiffusersLoRAPolicy(policy.wm)


def test_train_grpo_runs_lora_on_a_tiny_wan_folder(tmp_path, monkeypatch):
    """`spiral train grpo --world-model wan-i2v`: tabletop tasks rendered at the backbone's size,
    a reward callable, the LoRA adapter exported alone (its B matrices no longer zero)."""
    from safetensors.torch import load_file

    import spiral.rl.train as train

    tiny_wan().save_pretrained(tmp_path / "wan")
    monkeypatch.setattr(train, "judged_success", lambda clips, task: torch.zeros(len(clips)))

    def brightness(clips, task):
        return torch.tensor([float(c[-1].mean()) / 255 for c in clips])

    cfg = train.GRPOTrainConfig(
        out=tmp_path / "run", world_model="wan-i2v", model_path=str(tmp_path / "wan"), lora_rank=2,
        model_options="device=cpu,height=32,width=32,num_frames=5,num_inference_steps=3",
        iterations=2, groups=1, group_size=2, eval_every=0, lr=1e-2,
    )  # fmt: skip
    outcome = train.train_grpo(cfg, progress=False, reward=brightness)
    lora = load_file(str(outcome.weights / "pytorch_lora_weights.safetensors"))
    assert outcome.weights.name == "lora" and lora and all(k.startswith("transformer.") and "lora" in k for k in lora)
    assert any(k.endswith("lora_B.weight") and v.abs().sum() > 0 for k, v in lora.items())
    assert json.loads((outcome.weights / "card.json").read_text())["grpo_iterations"] == 2
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in log] == [1, 2] and all(np.isfinite(r["policy"]) for r in log)
    with pytest.raises(SpiralError, match="bad --model-options item 'height'"):
        train.parse_options("height")
