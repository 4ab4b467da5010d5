"""The stochastic sampling step that makes a flow-matching sampler a policy with log-probabilities.

Rectified flow interpolates x_t = (1 - t) x_0 + t eps (t = 1 is pure noise) and the network's
velocity v ~ eps - x_0. The deterministic sampler steps x along v. The reverse-time SDE with the
same marginals adds noise of scale sigma_t and corrects the drift with the score, which for this
interpolation is  score = -(x_t + (1 - t) v) / t.  Following Flow-GRPO we use
sigma_t = noise_level * sqrt(t / (1 - t)), so every step is a Gaussian move whose log-density
can be evaluated: that is the per-step log-probability GRPO needs.
"""

from __future__ import annotations

import math

import torch

# sigma_t diverges at t = 1; the first step uses this t in its denominator instead.
T_CAP = 0.96


def sde_sigma(t: torch.Tensor, noise_level: float) -> torch.Tensor:
    return noise_level * torch.sqrt(t / (1.0 - t.clamp(max=T_CAP)))


def sde_mean_std(
    x_t: torch.Tensor, velocity: torch.Tensor, t: float, t_next: float, noise_level: float
) -> tuple[torch.Tensor, float | torch.Tensor]:
    """The Gaussian of one SDE step from t to t_next < t: its mean (like x_t) and std (a scalar
    per batch item, broadcastable)."""
    dt = t_next - t  # negative
    tt = torch.full((x_t.shape[0],) + (1,) * (x_t.dim() - 1), t, dtype=x_t.dtype, device=x_t.device)
    sigma = sde_sigma(tt, noise_level)
    score = -(x_t + (1.0 - tt) * velocity) / tt
    mean = x_t + (velocity - 0.5 * sigma**2 * score) * dt
    return mean, sigma * math.sqrt(-dt)


def gaussian_log_prob(sample: torch.Tensor, mean: torch.Tensor, std) -> torch.Tensor:
    """Mean over elements of the Gaussian log-density, per batch item (the sample carries no grad)."""
    std = torch.as_tensor(std, dtype=mean.dtype, device=mean.device)
    log_prob = -((sample.detach() - mean) ** 2) / (2 * std**2) - torch.log(std) - 0.5 * math.log(2 * math.pi)
    return log_prob.mean(dim=tuple(range(1, mean.dim())))


def gaussian_kl(mean: torch.Tensor, ref_mean: torch.Tensor, std) -> torch.Tensor:
    """KL between two Gaussian steps with the same std, as a mean over elements per batch item
    (Flow-GRPO's KL to the reference model)."""
    std = torch.as_tensor(std, dtype=mean.dtype, device=mean.device)
    return ((mean - ref_mean) ** 2 / (2 * std**2)).mean(dim=tuple(range(1, mean.dim())))


def sde_step_with_logprob(
    x_t: torch.Tensor,
    velocity: torch.Tensor,
    t: float,
    t_next: float,
    noise_level: float,
    generator: torch.Generator | None = None,
    prev_sample: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step from t to t_next < t. Returns (x_next, log_prob per batch item).

    With `prev_sample` given, no noise is drawn: its log-probability under this step's Gaussian is
    returned (how GRPO re-scores stored rollouts under the current policy). log_prob is the mean of
    the per-element Gaussian log-density, which keeps it on the same scale for any clip size.
    """
    mean, std = sde_mean_std(x_t, velocity, t, t_next, noise_level)
    if prev_sample is None:
        noise = torch.randn(x_t.shape, generator=generator, dtype=x_t.dtype, device=x_t.device)
        prev_sample = mean + std * noise
    return prev_sample, gaussian_log_prob(prev_sample, mean, std)
