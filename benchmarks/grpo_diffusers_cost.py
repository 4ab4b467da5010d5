"""What one LoRA-GRPO group update costs on a diffusers backbone, counted on a tiny random Wan I2V on
the CPU: denoiser calls per update, and the peak bytes autograd keeps for backward, as the number
of trained steps grows, with and without gradient checkpointing. The counts do not depend on the
machine; a real model's ratios follow the same structure (see docs/guides/diffusers.md).

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/grpo_diffusers_cost.py [--steps 8]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

for folder in ("worldmodels", "rl"):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / folder))
from diffusers_tiny import INSTRUCTION, start_frame, tiny_wan  # noqa: E402
from saved_bytes import SavedBytes  # noqa: E402

from spiral.rl.diffusers_policy import DiffusersLoRAPolicy  # noqa: E402
from spiral.rl.grpo import GRPOSettings, grpo_backward  # noqa: E402
from spiral.worldmodels.diffusers import DiffusersConfig, DiffusersWorldModel  # noqa: E402


def measure(policy: DiffusersLoRAPolicy, rollout, trained: list[int]) -> tuple[int, int]:
    """(denoiser calls, peak saved bytes) of one group update on `trained` steps."""
    saved, before = SavedBytes(), policy.denoiser_calls
    with torch.autograd.graph.saved_tensors_hooks(saved.pack, saved.unpack):
        grpo_backward(policy, rollout, torch.tensor([1.0, -1.0]), trained, GRPOSettings(beta=0.004), 1.0)
    return policy.denoiser_calls - before, saved.peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8, help="denoising steps of a rollout")
    parser.add_argument("--size", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = DiffusersConfig(height=args.size, width=args.size, num_frames=9, num_inference_steps=args.steps, guidance_scale=1.0)
    print(f"tiny Wan I2V, {args.size}x{args.size}, 9 frames, {args.steps} denoising steps, group of 2, guidance 1")
    print("| trained steps | checkpointing | denoiser calls (policy + reference) | peak saved for backward |")
    print("|---|---|---|---|")
    for checkpointing in (True, False):
        torch.manual_seed(0)
        policy = DiffusersLoRAPolicy(DiffusersWorldModel("wan-i2v", tiny_wan(), cfg), rank=4, alpha=4,
                                     gradient_checkpointing=checkpointing)  # fmt: skip
        rollout = policy.rollout(start_frame(args.size), INSTRUCTION, [1, 2], noise_level=0.7)
        stochastic = policy.stochastic_steps(rollout)
        for count in sorted({1, 2, len(stochastic) // 2, len(stochastic)}):
            calls, peak = measure(policy, rollout, stochastic[:count])
            print(f"| {count} | {'on' if checkpointing else 'off'} | {calls} | {peak / 1024:.0f} KiB |")


if __name__ == "__main__":
    main()
