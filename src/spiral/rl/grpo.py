"""The GRPO objective for flow-matching world models (Flow-GRPO's formulation).

One iteration: for each of a few tasks (start frame + action), sample a group of G clips with the
SDE sampler, score each clip with a reward, and normalise the rewards inside the group into
advantages. Then, for a subset of the denoising steps, re-evaluate each stored move's
log-probability under the current weights and take the clipped-ratio policy-gradient step, with a
KL penalty that keeps the step Gaussians near the reference model's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from spiral.rl.policy import GroupRollout, Policy
from spiral.rl.sde import gaussian_kl


@dataclass(frozen=True)
class GRPOSettings:
    noise_level: float = 0.7  # SDE noise (Flow-GRPO's a); 0 would make every move deterministic
    clip_range: float = 1e-3  # ratios are of per-element mean log-probs, so they stay very near 1
    adv_clip: float = 5.0  # advantages are clipped to +-this many group standard deviations
    beta: float = 0.004  # weight of the KL to the reference model
    step_fraction: float = 1.0  # share of the stochastic denoising steps trained on per rollout
    eps: float = 1e-4  # added to the group std: a group whose rewards all agree teaches nothing


def group_advantages(rewards: torch.Tensor, clip: float, eps: float = 1e-4) -> torch.Tensor:
    """(G,) rewards of one group -> (G,) advantages: (r - mean) / (std + eps), clipped. Identical
    rewards give zeros."""
    centred = rewards - rewards.mean()
    return (centred / (rewards.std(unbiased=False) + eps)).clamp(-clip, clip)


def clipped_objective(log_probs: torch.Tensor, old_log_probs: torch.Tensor, advantages: torch.Tensor, clip_range: float):
    """PPO's clipped surrogate, to minimise. log_probs, old_log_probs: (G, n); advantages: (G,).
    Returns (loss per element (G, n), the ratios)."""
    ratio = torch.exp(log_probs - old_log_probs)
    adv = advantages[:, None]
    unclipped = ratio * adv
    clipped = ratio.clamp(1.0 - clip_range, 1.0 + clip_range) * adv
    return -torch.minimum(unclipped, clipped), ratio


def choose_steps(stochastic: Sequence[int], fraction: float, rng: np.random.Generator) -> list[int]:
    """A random subset (at least one) of the stochastic steps, in order: Flow-GRPO trains on a
    fraction of the denoising steps to save time."""
    count = max(1, round(fraction * len(stochastic)))
    return sorted(rng.choice(list(stochastic), size=count, replace=False).tolist())


@dataclass
class GroupLoss:
    loss: torch.Tensor  # scalar, already divided for accumulation over the groups of an update
    policy: float
    kl: float
    clipped: float  # share of ratios outside the clip range
    ratio_dev: float  # max |ratio - 1|


def grpo_loss(
    policy: Policy, rollout: GroupRollout, advantages: torch.Tensor, steps: list[int], s: GRPOSettings, scale: float
) -> GroupLoss:
    """The loss of one group over `steps`, scaled by `scale` (1 / groups per update)."""
    current = policy.evaluate(rollout, steps)
    per_element, ratio = clipped_objective(current.log_probs, rollout.log_probs[:, steps], advantages, s.clip_range)
    policy_loss = per_element.mean()
    kl = torch.zeros(())
    if s.beta > 0:
        ref = policy.evaluate(rollout, steps, reference=True)
        kl = torch.stack(
            [gaussian_kl(m, r, std) for m, r, std in zip(current.means, ref.means, current.stds, strict=True)]
        ).mean()
    loss = (policy_loss + s.beta * kl) * scale
    outside = ((ratio - 1).abs() > s.clip_range).float().mean()
    return GroupLoss(loss, policy_loss.item(), kl.item(), outside.item(), (ratio - 1).abs().max().item())
