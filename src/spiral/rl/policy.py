"""A world model seen as a GRPO policy: it samples a group of clips with the SDE sampler, keeping
the latents it visited, and later re-evaluates the Gaussian of chosen denoising steps under its
current weights (with gradients) and under the reference weights (without).

`TabletopPolicy` fine-tunes every weight of the embedded model; its reference is a frozen copy of
the weights it started from. The diffusers backbones train a LoRA adapter instead and use the
adapter switched off as the reference (`spiral.rl.diffusers_policy`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from spiral.checkpoints import prefixed
from spiral.rl.sde import gaussian_log_prob, sde_mean_std
from spiral.worldmodels.tabletop import TabletopWorldModel, velocity


@dataclass
class GroupRollout:
    """G clips sampled from one start frame and instruction. latents[k] is the state at
    timesteps[k] (latents[0] the initial noise); log_probs[:, k] is the log-probability of the move
    from latents[k] to latents[k + 1] (0 where the move is deterministic)."""

    frames: np.ndarray  # (G, T, H, W, 3) uint8, frames[:, 0] the start frame
    latents: list[torch.Tensor]
    log_probs: torch.Tensor  # (G, steps)
    timesteps: list[float]
    instruction: str
    seeds: list[int]
    noise_level: float
    condition: Any = None  # what the policy needs to re-evaluate the steps (encoded start, text)


@dataclass
class StepEval:
    """The Gaussian of some steps re-evaluated: log-probabilities of the stored moves and means,
    each (G, len(steps), ...) with std (len(steps),) shared by the group."""

    log_probs: torch.Tensor  # (G, n)
    means: list[torch.Tensor]  # n tensors like the latents
    stds: list[torch.Tensor]


# on_step(j, rows, log_prob, mean, std): the j-th requested step, evaluated for the group members
# `rows`, with its graph: log_prob (len(rows),), mean like the latents, std (1,).
StepCallback = Callable[[int, slice, torch.Tensor, torch.Tensor, torch.Tensor], None]


class Policy(Protocol):
    name: str

    def trainable(self) -> list[nn.Parameter]: ...

    def stochastic_steps(self, rollout: GroupRollout) -> list[int]:
        """Indices of the steps whose moves are Gaussian (the only ones GRPO can train)."""
        ...

    def rollout(self, start: np.ndarray, instruction: str, seeds: list[int], noise_level: float) -> GroupRollout: ...

    def evaluate(
        self, rollout: GroupRollout, steps: Sequence[int], reference: bool = False, on_step: StepCallback | None = None
    ) -> StepEval:
        """With reference=False, under the current weights with gradients; with True, under the
        reference weights without. With `on_step`, each step is handed over as soon as it is made
        (for a backward at once), and the StepEval returned holds detached values."""
        ...

    def sample_frames(self, starts: np.ndarray, instructions: list[str], seeds: list[int]) -> np.ndarray:
        """Deterministic (ODE) clips, as the closed loop would generate them: (B, T, H, W, 3)."""
        ...

    def state_dict(self) -> dict[str, torch.Tensor]: ...

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None: ...


@contextmanager
def same_kernels_as_training() -> Iterator[None]:
    """Inference without gradients may take torch's fused attention fast path, whose numbers differ
    in the last bits from the path taken with gradients; rollouts switch it off so that re-scoring
    them before any update gives a ratio of exactly 1."""
    before = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(before)


class TabletopPolicy:
    """Full fine-tune of the embedded tabletop model; the reference is a frozen copy."""

    name = "tabletop"

    def __init__(self, wm: TabletopWorldModel, reference: nn.Module | None = None):
        self.wm = wm
        self.net = wm.net
        self.reference = reference if reference is not None else copy.deepcopy(wm.net)
        # The reference is only run without gradients and never handed to the optimizer. Its
        # parameters keep requires_grad=True on purpose: torch picks other kernels for a weight that
        # does not require grad (F.linear on MHA's transposed input), whose last bits differ, and the
        # reference would then not equal the current weights before any update.
        self.reference.eval()

    def trainable(self) -> list[nn.Parameter]:
        return list(self.net.parameters())

    def stochastic_steps(self, rollout: GroupRollout) -> list[int]:
        return [k for k, t_next in enumerate(rollout.timesteps[1:]) if t_next > 0]

    def rollout(self, start: np.ndarray, instruction: str, seeds: list[int], noise_level: float) -> GroupRollout:
        starts = np.repeat(start[None], len(seeds), axis=0)
        with same_kernels_as_training():
            sampled = self.wm.sample(starts, [instruction] * len(seeds), seeds, noise_level)
        return GroupRollout(
            self.wm.decode(starts, sampled.x0),
            sampled.latents,
            sampled.log_probs,
            sampled.timesteps,
            instruction,
            list(seeds),
            noise_level,
            condition=sampled.condition,
        )

    def evaluate(
        self, rollout: GroupRollout, steps: Sequence[int], reference: bool = False, on_step: StepCallback | None = None
    ) -> StepEval:
        net = self.reference if reference else self.net
        start, text, pad = rollout.condition
        guidance, null = self.wm.sampler.guidance_scale, net.null_condition(len(rollout.seeds))
        log_probs, means, stds = [], [], []
        # The reference pass runs without gradients: keep it off the fused fast path as well, or its
        # means differ from the current weights' in the last bits before any update (KL > 0).
        with torch.set_grad_enabled(not reference), same_kernels_as_training():
            for j, k in enumerate(steps):
                t, t_next = rollout.timesteps[k], rollout.timesteps[k + 1]
                x = rollout.latents[k]
                v = velocity(net, x, t, start, text, pad, guidance, null)
                mean, std = sde_mean_std(x, v, t, t_next, rollout.noise_level)
                log_prob, std = gaussian_log_prob(rollout.latents[k + 1], mean, std), torch.as_tensor(std).flatten()[:1]
                if on_step is not None:
                    on_step(j, slice(None), log_prob, mean, std)
                    log_prob, mean = log_prob.detach(), mean.detach()
                log_probs.append(log_prob)
                means.append(mean)
                stds.append(std[0])
        return StepEval(torch.stack(log_probs, dim=1), means, stds)

    def sample_frames(self, starts: np.ndarray, instructions: list[str], seeds: list[int]) -> np.ndarray:
        return self.wm.sample_frames(starts, instructions, seeds)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {f"net.{k}": v for k, v in self.net.state_dict().items()} | {
            f"ref.{k}": v for k, v in self.reference.state_dict().items()
        }

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.net.load_state_dict(prefixed(state, "net"))
        self.reference.load_state_dict(prefixed(state, "ref"))
