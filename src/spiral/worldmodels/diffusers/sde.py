"""GRPO on diffusers backbones: sample with per-step log-probabilities, and re-score stored rollouts.

Instead of re-writing each pipeline's denoising loop, the scheduler's `step` is swapped, for one
pipeline call, by a hook that takes the velocity the pipeline computed (guidance and all) and
 - flow matching (Wan, LTX, HunyuanVideo; FlowMatchEuler or UniPC-flow schedulers): makes the
   Flow-GRPO SDE move of spiral.rl.sde.sde_step_with_logprob on the scheduler's sigmas;
 - CogVideoX (CogVideoXDDIMScheduler, v- or epsilon-prediction): makes the DDIM move with
   eta = noise_level, a Gaussian whose log-density is the DDPM-posterior one (DDPO's formulation).
   CogVideoXDPMScheduler (multistep) is not supported.
The last step to t = 0 stays deterministic (log-prob 0), as in the tabletop model.

Re-scoring runs the pipeline again from the same seeds, and the hook returns the stored next latent
at each step instead of drawing one: the pipeline then visits exactly the stored states and the
hook evaluates their log-probabilities under the current weights. With `grad=True` it runs the
pipeline body without its no_grad wrapper, and `on_step(k, log_prob, mean, std)` can backpropagate
each step as it comes (the hook then keeps only detached values), so memory holds one step's
graph at a time. The hook also keeps each step's std and, for the steps named in `record`, the
Gaussian's mean (what a KL to a reference policy needs).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Collection
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from spiral.errors import SpiralError
from spiral.rl.sde import gaussian_log_prob, sde_mean_std


@dataclass
class DiffusersRollout:
    """A batch of clips with what GRPO needs. latents[k] is the sample the scheduler stepped from
    at step k (for LTX I2V / token-replace Hunyuan: the frames after the conditioned first one);
    latents[-1] is the last step's result. Stored on the CPU in float32."""

    frames: np.ndarray  # (B, T, H, W, 3) uint8, frames[:, 0] = start
    latents: list[torch.Tensor]
    log_probs: torch.Tensor  # (B, steps)
    timesteps: list[float]  # flow: sigma at each step's start, then the end; ddim: cumulative alpha
    start: np.ndarray
    instruction: str
    seeds: list[int]
    noise_level: float


def ddim_mean_std(
    x_t: torch.Tensor, model_output: torch.Tensor, alpha: float, alpha_prev: float, eta: float, prediction_type: str
) -> tuple[torch.Tensor, float]:
    """The Gaussian of one DDIM move from cumulative alpha `alpha` to `alpha_prev`: its mean and std
    (eta * sigma_DDPM; 0 for eta = 0, the deterministic CogVideoX step)."""
    if prediction_type == "v_prediction":
        x0 = math.sqrt(alpha) * x_t - math.sqrt(1 - alpha) * model_output
    elif prediction_type == "epsilon":
        x0 = (x_t - math.sqrt(1 - alpha) * model_output) / math.sqrt(alpha)
    else:
        raise SpiralError(f"the DDIM log-prob step supports v_prediction and epsilon, not {prediction_type!r}")
    eps = (x_t - math.sqrt(alpha) * x0) / math.sqrt(1 - alpha)
    std = eta * math.sqrt((1 - alpha_prev) / (1 - alpha) * (1 - alpha / alpha_prev))
    mean = math.sqrt(alpha_prev) * x0 + math.sqrt(max(1 - alpha_prev - std**2, 0.0)) * eps
    return mean, std


def ddim_step_with_logprob(
    x_t: torch.Tensor,
    model_output: torch.Tensor,
    alpha: float,
    alpha_prev: float,
    eta: float,
    prediction_type: str = "v_prediction",
    generator: torch.Generator | None = None,
    prev_sample: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """DDIM from cumulative alpha `alpha` to `alpha_prev` with std eta * sigma_DDPM. eta = 0 is the
    deterministic CogVideoX step; > 0 is Gaussian, so its log-prob (mean per element) is defined."""
    mean, std = ddim_mean_std(x_t, model_output, alpha, alpha_prev, eta, prediction_type)
    if std == 0:
        return mean, torch.zeros(x_t.shape[0], device=x_t.device)
    if prev_sample is None:
        prev_sample = mean + std * torch.randn(x_t.shape, generator=generator, dtype=x_t.dtype, device=x_t.device)
    return prev_sample, gaussian_log_prob(prev_sample, mean, std)


def gaussian_step(kind: str, noise_level: float, a: float, b: float) -> bool:
    """Whether the move from a to b is Gaussian (else deterministic, log-prob 0): every step but
    the last one, to sigma 0 (flow) or cumulative alpha 1 (ddim), when noise_level > 0."""
    return noise_level > 0 and (b > 0 if kind == "flow" else b < 1)


class StepHook:
    """Stands in for `scheduler.step` during one pipeline call (see the module docstring)."""

    def __init__(
        self,
        scheduler,
        kind: str,
        noise_level: float,
        seeds: list[int],
        replay: list[torch.Tensor] | None = None,
        record: Collection[int] = (),
    ):
        if kind == "ddim" and type(scheduler).__name__ != "CogVideoXDDIMScheduler":
            raise SpiralError(
                f"GRPO sampling on CogVideoX needs CogVideoXDDIMScheduler, not {type(scheduler).__name__} "
                "(its multistep DPM step has no single-step Gaussian log-prob here)"
            )
        self.scheduler, self.kind, self.noise_level, self.seeds, self.replay = scheduler, kind, noise_level, seeds, replay
        self.generators: list[torch.Generator] = []
        self.latents: list[torch.Tensor] = []
        self.log_probs: list[torch.Tensor] = []
        self.times: list[float] = []
        self.stds: list[torch.Tensor] = []  # (B,) per step; 0 where the step is deterministic
        self.record, self.means = record, {}  # step -> (B, ...) mean of the moved elements, with grad
        self.on_step: Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor], None] | None = None

    def times_at(self, timestep) -> tuple[float, float]:
        k, s = len(self.log_probs), self.scheduler
        if self.kind == "flow":
            return float(s.sigmas[k]), float(s.sigmas[k + 1])
        prev = int(timestep) - s.config.num_train_timesteps // s.num_inference_steps
        alpha_prev = s.alphas_cumprod[prev] if prev >= 0 else s.final_alpha_cumprod
        return float(s.alphas_cumprod[int(timestep)]), float(alpha_prev)

    def move(self, x: torch.Tensor, out: torch.Tensor, i: int, a: float, b: float, prev: torch.Tensor | None):
        """One item's step: (next sample, log-prob, the Gaussian's mean, its std (1,))."""
        if not self.generators:  # on the latents' device, seeded apart from the pipeline's noise
            self.generators = [torch.Generator(device=x.device).manual_seed(s * 7919 + 17) for s in self.seeds]
        gaussian = gaussian_step(self.kind, self.noise_level, a, b)
        if self.kind == "ddim":
            mean, std = ddim_mean_std(x, out, a, b, self.noise_level, self.scheduler.config.prediction_type)
        elif gaussian:
            mean, std = sde_mean_std(x, out, a, b, self.noise_level)
        else:
            mean, std = x + (b - a) * out, 0.0
        std = torch.as_tensor(std, dtype=x.dtype, device=x.device).reshape(1)
        if not gaussian:
            return mean, torch.zeros(1, device=x.device), mean, torch.zeros_like(std)
        if prev is None:
            prev = mean + std * torch.randn(x.shape, generator=self.generators[i], dtype=x.dtype, device=x.device)
        return prev, gaussian_log_prob(prev, mean, std), mean, std

    def __call__(self, model_output, timestep, sample, *args, per_token_timesteps=None, return_dict=True, **kwargs):
        k = len(self.log_probs)
        a, b = self.times_at(timestep)
        x, out = sample.float(), model_output.float()
        active = None
        if per_token_timesteps is not None:
            # LTX condition: conditioned tokens sit at a lower timestep and are put back by the
            # pipeline; only the tokens at this step's own timestep move. There the scheduler is
            # handed minus the velocity.
            active = per_token_timesteps[0] >= float(timestep) - 1e-3
            x, out = x[:, active], -out[:, active]
        stored = None if self.replay is None else self.replay[k + 1].to(x.device)
        stored_moved = stored if stored is None or active is None else stored[:, active]
        if self.replay is not None and k == 0 and not torch.allclose(self.replay[0].to(x.device), sample.float(), atol=1e-5):
            raise SpiralError("the rollout does not match this pipeline and seeds (its first latent differs); re-sample it")
        pieces = [
            self.move(x[i : i + 1], out[i : i + 1], i, a, b, None if stored is None else stored_moved[i : i + 1])
            for i in range(x.shape[0])
        ]
        prev, log_prob, mean, std = (torch.cat(parts) for parts in zip(*pieces, strict=True))
        if active is not None:
            full = sample.float().clone()
            full[:, active] = prev
            prev = full
        if k == 0:
            self.latents.append(sample.detach().float().cpu())
            self.times.append(a)
        self.latents.append(prev.detach().float().cpu())
        self.times.append(b)
        self.stds.append(std.detach())
        if self.on_step is not None:  # the caller takes the graph now; keep nothing that holds it
            self.on_step(k, log_prob, mean, std.detach())
            log_prob, mean = log_prob.detach(), mean.detach()
        self.log_probs.append(log_prob)
        if k in self.record:
            self.means[k] = mean
        prev = prev.detach().to(sample.dtype) if stored is None else stored.to(sample.dtype)
        return (prev,) if not return_dict else SimpleNamespace(prev_sample=prev)


def run_hooked(wm, hook: StepHook, call: dict[str, Any], grad: bool = False) -> Any:
    """One pipeline call with the scheduler's step swapped for `hook` (restored afterwards)."""
    scheduler = wm.pipe.scheduler
    scheduler.step = hook  # an instance attribute shadows the method for this call only
    try:
        if not grad:
            return wm.pipe(**call)
        body = inspect.unwrap(type(wm.pipe).__call__)  # without the pipeline's @torch.no_grad()
        with torch.enable_grad():
            return body(wm.pipe, **call)
    finally:
        del scheduler.step


def sample_with_logprob(wm, frame, instruction: str, seeds: list[int], noise_level: float = 0.7) -> DiffusersRollout:
    """Sample one clip per seed with the SDE step; the clips, visited latents and log-probs. The
    seeds go to the pipeline `group_batch_size` at a time (all at once for 0)."""
    from spiral.worldmodels.base import check_instruction

    instruction, start = check_instruction(instruction), wm.prepare(frame)
    parts = []
    for rows in wm.member_batches(len(seeds)):
        hook = StepHook(wm.pipe.scheduler, wm.backbone.sde, noise_level, seeds[rows])
        video = run_hooked(wm, hook, wm.call_kwargs(start, instruction, hook.seeds, wm.num_frames)).frames
        parts.append((wm.to_clips(start, np.asarray(video), wm.num_frames), hook))
    hooks = [h for _, h in parts]
    latents = [torch.cat([h.latents[k] for h in hooks]) for k in range(len(hooks[0].latents))]
    log_probs = torch.cat([torch.stack(h.log_probs, 1).cpu() for h in hooks])
    frames = np.concatenate([f for f, _ in parts])
    return DiffusersRollout(frames, latents, log_probs, hooks[0].times, start, instruction, list(seeds), noise_level)


def rescore(
    wm,
    rollout: DiffusersRollout,
    grad: bool = False,
    on_step: Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Log-probs (B, steps) of the stored transitions under the pipeline's current weights. With
    unchanged weights they equal rollout.log_probs, so the GRPO ratio is exactly 1."""
    hook = StepHook(wm.pipe.scheduler, wm.backbone.sde, rollout.noise_level, rollout.seeds, replay=rollout.latents)
    hook.on_step = on_step
    call = {**wm.call_kwargs(rollout.start, rollout.instruction, rollout.seeds, wm.num_frames), "output_type": "latent"}
    run_hooked(wm, hook, call, grad=grad)
    return torch.stack(hook.log_probs, 1)
