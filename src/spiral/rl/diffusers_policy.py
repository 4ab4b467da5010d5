"""A diffusers backbone (Wan, CogVideoX, LTX-Video, HunyuanVideo) as a GRPO policy.

What is trained: a LoRA adapter (peft) on the attention projections of the pipeline's denoiser(s)
(`transformer`, and `transformer_2` where a Wan2.2 pipeline has a low-noise expert). Every other
weight of the pipeline is frozen.

The reference: the same transformer with the adapter switched off. LoRA's B matrices start at
zero, so adapter-off is exactly the model the policy started from, and the reference costs no
second copy of a multi-billion-parameter network (TabletopPolicy can afford a frozen copy; these
cannot).

Sampling and re-evaluation reuse spiral.worldmodels.diffusers.sde: a rollout is one pipeline call
with the SDE step hooked in; `evaluate` re-runs the pipeline from the same seeds while the hook
replays the stored latents, so with unchanged weights it gives back the rollout's log-probs
bit for bit (GRPO's first ratio is exactly 1).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from spiral.errors import SpiralError
from spiral.rl.policy import GroupRollout, StepEval
from spiral.worldmodels.diffusers.model import DiffusersWorldModel
from spiral.worldmodels.diffusers.sde import StepHook, gaussian_step, run_hooked, sample_with_logprob

# The attention projections every supported backbone names this way (peft matches name suffixes).
TARGET_MODULES = ("to_q", "to_k", "to_v", "to_out.0")
ADAPTER = "spiral_grpo"


class DiffusersLoRAPolicy:
    """GRPO policy over a DiffusersWorldModel: trains a LoRA adapter, the reference is the adapter off."""

    def __init__(self, wm: DiffusersWorldModel, rank: int = 4, alpha: float = 4, target_modules: Sequence[str] | None = None):
        try:
            from peft import LoraConfig
        except ImportError:
            raise SpiralError("LoRA training of diffusers backbones needs peft: pip install 'spiral-actwm[diffusers]'") from None
        self.wm, self.pipe, self.name = wm, wm.pipe, f"{wm.name}-lora"
        # Wan2.2 A14B denoises high-noise steps with `transformer` and low-noise ones with `transformer_2`.
        self.denoisers = {n: m for n in ("transformer", "transformer_2") if (m := getattr(self.pipe, n, None)) is not None}
        for module in self.pipe.components.values():  # text/image encoders and VAE too: no grads into them
            if isinstance(module, nn.Module):
                module.requires_grad_(False)
        targets = list(target_modules or TARGET_MODULES)
        for name, module in self.denoisers.items():
            if ADAPTER in (getattr(module, "peft_config", None) or {}):
                raise SpiralError(
                    f"{wm.name}: the {name} already has a {ADAPTER!r} adapter; build the policy on a fresh pipeline"
                )
            config = LoraConfig(r=rank, lora_alpha=alpha, target_modules=targets, init_lora_weights=True)
            try:
                module.add_adapter(config, adapter_name=ADAPTER)
            except ValueError as err:  # e.g. no module matches target_modules
                raise SpiralError(f"{wm.name}: cannot add a LoRA adapter to the {name}: {err}") from None
        self.lora = {f"{name}.{n}": p for name, m in self.denoisers.items() for n, p in m.named_parameters() if p.requires_grad}

    def trainable(self) -> list[nn.Parameter]:
        return list(self.lora.values())

    def stochastic_steps(self, rollout: GroupRollout) -> list[int]:
        ts, kind = rollout.timesteps, self.wm.backbone.sde
        return [k for k in range(len(ts) - 1) if gaussian_step(kind, rollout.noise_level, ts[k], ts[k + 1])]

    def rollout(self, start: np.ndarray, instruction: str, seeds: list[int], noise_level: float) -> GroupRollout:
        r = sample_with_logprob(self.wm, start, instruction, list(seeds), noise_level)
        return GroupRollout(r.frames, r.latents, r.log_probs, r.timesteps, r.instruction, r.seeds, noise_level, condition=r.start)

    def evaluate(self, rollout: GroupRollout, steps: Sequence[int], reference: bool = False) -> StepEval:
        steps = list(steps)
        hook = StepHook(
            self.pipe.scheduler, self.wm.backbone.sde, rollout.noise_level, rollout.seeds, replay=rollout.latents, record=steps
        )
        call = self.wm.call_kwargs(rollout.condition, rollout.instruction, rollout.seeds, self.wm.num_frames)
        with self.adapters(enabled=not reference), self.grad_only_at(hook, () if reference else steps):
            run_hooked(self.wm, hook, {**call, "output_type": "latent"}, grad=not reference)
        # On the CPU like the rollout's log-probs, so the ratio needs no device juggling; the graph
        # still reaches the weights on the accelerator. The means stay where the latents are.
        log_probs = torch.stack([hook.log_probs[k] for k in steps], dim=1).cpu()
        return StepEval(log_probs, [hook.means[k] for k in steps], [hook.stds[k][0] for k in steps])

    def sample_frames(self, starts: np.ndarray, instructions: list[str], seeds: list[int]) -> np.ndarray:
        clips = [self.wm.generate(s, i, seed=seed) for s, i, seed in zip(starts, instructions, seeds, strict=True)]
        return np.stack([c.frames for c in clips])

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: p.detach().clone() for k, p in self.lora.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing, unexpected = sorted(set(self.lora) - set(state)), sorted(set(state) - set(self.lora))
        resized = sorted(k for k in set(self.lora) & set(state) if state[k].shape != self.lora[k].shape)
        if missing or unexpected or resized:
            raise SpiralError(
                "the LoRA state does not fit this policy (another rank or target modules?): "
                f"missing {missing[:3]}, unexpected {unexpected[:3]}, other shapes {resized[:3]}"
            )
        with torch.no_grad():
            for k, p in self.lora.items():
                p.copy_(state[k])

    @contextmanager
    def adapters(self, enabled: bool) -> Iterator[None]:
        """Switch the adapter off for the reference pass; always switched back on afterwards."""
        try:
            if not enabled:
                for m in self.denoisers.values():
                    m.disable_adapters()
            yield
        finally:
            for m in self.denoisers.values():
                m.enable_adapters()  # also makes the LoRA weights trainable again (peft freezes them when off)

    @contextmanager
    def grad_only_at(self, hook: StepHook, steps: Sequence[int]) -> Iterator[None]:
        """Record an autograd graph only in the denoiser calls of the requested steps: the others
        are needed to replay the trajectory but not for the loss. The hook has taken
        len(hook.log_probs) steps when the next step's denoiser call starts."""
        wanted = set(steps)

        def set_grad(module, args) -> None:  # returns None: the call's arguments stay as they are
            torch.set_grad_enabled(len(hook.log_probs) in wanted)

        handles = [m.register_forward_pre_hook(set_grad) for m in self.denoisers.values()]
        try:
            yield
        finally:
            for h in handles:
                h.remove()
