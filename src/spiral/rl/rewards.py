"""Rewards for GRPO: any callable (clips, task) -> one number per clip, and a weighted mix.

`oracle` is the oracle critic's graded score from pixels (1 for a clean success; partial credit
for progress; penalties for vanished, duplicated or changed objects, collateral moves, flicker and
jumps), `learned` is the learned CriticAgent's success probability. A spec names one or mixes
several: "oracle", "learned", "oracle=0.7,learned=0.3". The judge that the reward-hacking guard
watches is always the oracle's pass/fail, whatever the reward.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from spiral.errors import SpiralError
from spiral.rl.curriculum import Task
from spiral.worlds.tabletop import checks

Reward = Callable[[np.ndarray, Task], torch.Tensor]  # (G, T, H, W, 3) uint8 clips -> (G,) rewards


def oracle_reward(clips: np.ndarray, task: Task) -> torch.Tensor:
    return torch.tensor([checks.check_clip(c, task.action).score for c in clips], dtype=torch.float32)


def judged_success(clips: np.ndarray, task: Task) -> torch.Tensor:
    """The judge: 1 where the oracle finds the step done and nothing else changed."""
    return torch.tensor([float(checks.check_clip(c, task.action).ok) for c in clips])


def learned_reward(path: str | None = None) -> Reward:
    from spiral.agents.critic.learned import LearnedCriticAgent

    critic = LearnedCriticAgent.load(path)

    def reward(clips: np.ndarray, task: Task) -> torch.Tensor:
        return critic.reward(list(clips), task.instruction).float()

    return reward


def mixed_reward(parts: list[tuple[float, Reward]]) -> Reward:
    total = sum(w for w, _ in parts)

    def reward(clips: np.ndarray, task: Task) -> torch.Tensor:
        return sum(w * fn(clips, task) for w, fn in parts) / total

    return reward


def make_reward(spec: str, critic_weights: str | None = None) -> Reward:
    makers = {"oracle": lambda: oracle_reward, "learned": lambda: learned_reward(critic_weights)}
    parts = []
    for item in spec.split(","):
        name, _, weight = item.strip().partition("=")
        if name not in makers:
            raise SpiralError(
                f"unknown reward {name!r} in {spec!r}; use {', '.join(makers)} or a mix like 'oracle=0.7,learned=0.3'"
            )
        try:
            w = float(weight) if weight else 1.0
        except ValueError:
            raise SpiralError(f"bad reward weight {weight!r} in {spec!r}: write name=number") from None
        if w <= 0:
            raise SpiralError(f"reward weights must be > 0, got {item!r}")
        parts.append((w, makers[name]()))
    return parts[0][1] if len(parts) == 1 and parts[0][0] == 1.0 else mixed_reward(parts)
