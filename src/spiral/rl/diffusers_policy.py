"""A diffusers backbone (Wan, CogVideoX, LTX-Video, HunyuanVideo) as a GRPO policy.

What is trained: a LoRA adapter (peft) on the attention projections of the pipeline's denoiser(s)
(`transformer`, and `transformer_2` where a Wan2.2 pipeline has a low-noise expert). Every other
weight of the pipeline is frozen.

The reference: the same transformer with the adapter switched off. LoRA's B matrices start at
zero, so adapter-off is exactly the model the policy started from, and the reference costs no
second copy of a multi-billion-parameter network (TabletopPolicy can afford a frozen copy; these
cannot).

Sampling and re-evaluation reuse spiral.worldmodels.diffusers.sde: a rollout is one pipeline call
(per `group_batch_size` members) with the SDE step hooked in; `evaluate` re-runs the pipeline from
the same seeds while the hook replays the stored latents, so with unchanged weights it gives back
the rollout's log-probs bit for bit (GRPO's first ratio is exactly 1).

What re-evaluation costs (Flow-GRPO's way): the denoiser runs only at the chosen steps, at the
stored latents; at every other step of the replay it returns zeros at once, since the hook puts
the stored next latent in place whatever the model says. With `on_step`, each chosen step is
handed over as it is made, to be backpropagated at once, so autograd holds one step's graph
however many steps are trained; gradient checkpointing keeps that graph to the block inputs. The
adapter's weights are float32 whatever the model's dtype: AdamW's small updates vanish in bfloat16.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from diffusers.models.modeling_outputs import Transformer2DModelOutput
from torch import nn

from spiral.errors import SpiralError
from spiral.rl.policy import GroupRollout, StepCallback, StepEval
from spiral.worldmodels.diffusers.memory import denoisers
from spiral.worldmodels.diffusers.model import DiffusersWorldModel
from spiral.worldmodels.diffusers.sde import StepHook, gaussian_step, run_hooked, sample_with_logprob

# The attention projections every supported backbone names this way (peft matches name suffixes).
TARGET_MODULES = ("to_q", "to_k", "to_v", "to_out.0")
ADAPTER = "spiral_grpo"


class DiffusersLoRAPolicy:
    """GRPO policy over a DiffusersWorldModel: trains a LoRA adapter, the reference is the adapter off."""

    def __init__(
        self,
        wm: DiffusersWorldModel,
        rank: int = 4,
        alpha: float = 4,
        target_modules: Sequence[str] | None = None,
        gradient_checkpointing: bool = True,
    ):
        try:
            from peft import LoraConfig
        except ImportError:
            raise SpiralError("LoRA training of diffusers backbones needs peft: pip install 'spiral-actwm[diffusers]'") from None
        self.wm, self.pipe, self.name = wm, wm.pipe, f"{wm.name}-lora"
        # Wan2.2 A14B denoises high-noise steps with `transformer` and low-noise ones with `transformer_2`.
        self.denoisers = denoisers(self.pipe)
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
            if gradient_checkpointing and getattr(module, "_supports_gradient_checkpointing", False):
                module.enable_gradient_checkpointing()
        self.lora = {f"{name}.{n}": p for name, m in self.denoisers.items() for n, p in m.named_parameters() if p.requires_grad}
        for p in self.lora.values():
            p.data = p.data.float()
        # Per denoiser: its output's shape past the batch dimension and its dtype, seen in rollouts;
        # what a skipped call of a replay returns.
        self.output_tails: dict[str, tuple[tuple[int, ...], torch.dtype]] = {}
        self.denoiser_calls = 0  # denoiser forward passes actually run (tests count them)

    def trainable(self) -> list[nn.Parameter]:
        return list(self.lora.values())

    def stochastic_steps(self, rollout: GroupRollout) -> list[int]:
        ts, kind = rollout.timesteps, self.wm.backbone.sde
        return [k for k in range(len(ts) - 1) if gaussian_step(kind, rollout.noise_level, ts[k], ts[k + 1])]

    def rollout(self, start: np.ndarray, instruction: str, seeds: list[int], noise_level: float) -> GroupRollout:
        with self.watch_outputs():
            r = sample_with_logprob(self.wm, start, instruction, list(seeds), noise_level)
        return GroupRollout(r.frames, r.latents, r.log_probs, r.timesteps, r.instruction, r.seeds, noise_level, condition=r.start)

    def evaluate(
        self, rollout: GroupRollout, steps: Sequence[int], reference: bool = False, on_step: StepCallback | None = None
    ) -> StepEval:
        steps = list(steps)
        order = {k: j for j, k in enumerate(steps)}
        log_probs, means = [], []
        for rows in self.wm.member_batches(len(rollout.seeds)):
            seeds = rollout.seeds[rows]
            replay = [latent[rows] for latent in rollout.latents]
            hook = StepHook(self.pipe.scheduler, self.wm.backbone.sde, rollout.noise_level, seeds, replay=replay, record=steps)
            if on_step is not None:
                hook.on_step = lambda k, lp, mean, std, rows=rows: (
                    on_step(order[k], rows, lp, mean, std[:1]) if k in order else None
                )
            call = self.wm.call_kwargs(rollout.condition, rollout.instruction, seeds, self.wm.num_frames)
            with self.adapters(enabled=not reference), self.only_at(hook, steps, grad=not reference):
                run_hooked(self.wm, hook, {**call, "output_type": "latent"}, grad=not reference)
            log_probs.append(torch.stack([hook.log_probs[k] for k in steps], dim=1).cpu())
            means.append([hook.means[k] for k in steps])
        # On the CPU like the rollout's log-probs, so the ratio needs no device juggling; the graph
        # still reaches the weights on the accelerator. The means stay where the latents are.
        stds = [hook.stds[k][0] for k in steps]
        return StepEval(torch.cat(log_probs), [torch.cat(parts) for parts in zip(*means, strict=True)], stds)

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

    def note_output(self, name: str, output: Any) -> None:
        """Count a denoiser call that ran, and note its output's shape past the batch and dtype."""
        sample = output[0] if isinstance(output, tuple) else output.sample
        self.output_tails[name] = (tuple(sample.shape[1:]), sample.dtype)
        self.denoiser_calls += 1

    @contextmanager
    def watch_outputs(self) -> Iterator[None]:
        """Note each denoiser's output shape (past the batch) and dtype, and count its calls."""

        def note(name: str):
            return lambda module, args, output: self.note_output(name, output)

        handles = [m.register_forward_hook(note(name)) for name, m in self.denoisers.items()]
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    @contextmanager
    def only_at(self, hook: StepHook, steps: Sequence[int], grad: bool) -> Iterator[None]:
        """Run the denoisers only in the calls of the requested steps (with an autograd graph when
        `grad`); in the others return zeros of the output's shape without computing anything. The
        hook has taken len(hook.log_probs) steps when the next step's denoiser call starts."""
        wanted = set(steps)
        originals = {name: m.forward for name, m in self.denoisers.items()}
        own = {name: m.__dict__.get("forward") for name, m in self.denoisers.items()}  # e.g. an offload hook's wrapper

        def gated(name: str, forward):
            def call(*args, **kwargs) -> Any:
                if len(hook.log_probs) in wanted or name not in self.output_tails:
                    with torch.set_grad_enabled(grad and len(hook.log_probs) in wanted):
                        output = forward(*args, **kwargs)
                    self.note_output(name, output)
                    return output
                tail, dtype = self.output_tails[name]
                x = kwargs.get("hidden_states", args[0] if args else None)
                zeros = torch.zeros((x.shape[0], *tail), dtype=dtype, device=x.device)
                return (zeros,) if not kwargs.get("return_dict", True) else Transformer2DModelOutput(sample=zeros)

            return call

        for name, m in self.denoisers.items():
            m.forward = gated(name, originals[name])  # an instance attribute shadows the method
        try:
            yield
        finally:
            for name, m in self.denoisers.items():
                if own[name] is not None:
                    m.forward = own[name]
                else:
                    del m.forward  # back to the class's method
