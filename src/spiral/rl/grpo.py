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
    loss: float  # already backpropagated, divided for accumulation over the groups of an update
    policy: float
    kl: float
    clipped: float  # share of ratios outside the clip range
    ratio_dev: float  # max |ratio - 1|


def grpo_backward(
    policy: Policy, rollout: GroupRollout, advantages: torch.Tensor, steps: list[int], s: GRPOSettings, scale: float
) -> GroupLoss:
    """Backpropagate one group's loss over `steps`, scaled by `scale` (1 / groups per update), one
    step at a time as the policy evaluates it: memory holds one step's graph, not len(steps).

    The loss is the clipped objective's mean over group members and steps plus beta times the KL
    to the reference, also a mean over both: step j of members `rows` adds its share of each sum."""
    members, n = len(rollout.seeds), len(steps)
    reference = policy.evaluate(rollout, steps, reference=True) if s.beta > 0 else None
    totals = {"loss": 0.0, "policy": 0.0, "kl": 0.0, "outside": 0.0}
    ratio_dev = 0.0

    def backward_step(j: int, rows: slice, log_prob: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> None:
        nonlocal ratio_dev
        old = rollout.log_probs[rows, steps[j]].to(log_prob.device)
        per_member, ratio = clipped_objective(log_prob[:, None], old[:, None], advantages[rows].to(log_prob.device), s.clip_range)
        policy_part = per_member.sum() / (members * n)
        kl_part = torch.zeros((), device=log_prob.device)
        if reference is not None:
            kl_part = gaussian_kl(mean, reference.means[j][rows].to(mean.device), std).sum() / (members * n)
        loss = (policy_part + s.beta * kl_part) * scale
        loss.backward()
        totals["loss"] += loss.item()
        totals["policy"] += policy_part.item()
        totals["kl"] += kl_part.item()
        totals["outside"] += ((ratio - 1).abs() > s.clip_range).float().sum().item() / (members * n)
        ratio_dev = max(ratio_dev, (ratio - 1).abs().max().item())

    policy.evaluate(rollout, steps, on_step=backward_step)
    return GroupLoss(totals["loss"], totals["policy"], totals["kl"], totals["outside"], ratio_dev)
