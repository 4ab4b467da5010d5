"""The embedded tabletop world model: a small learned flow-matching TI2V model, shipped as
safetensors in `spiral/assets/`, that runs on a laptop CPU.

It works at 32x32 and writes its clips at the frame size it was given (64 by default): every object
of the start frame is redrawn sharp where the model put it (tabletop_compose), so only where it went
is the model's to say.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open
from torch.nn import functional as F

from spiral.errors import SpiralError
from spiral.rl.sde import sde_step_with_logprob
from spiral.types import Clip
from spiral.worldmodels.base import check_instruction, prepare_frame
from spiral.worldmodels.tabletop_compose import ComposeConfig, compose_objects
from spiral.worldmodels.tabletop_net import TabletopNet, TabletopNetConfig
from spiral.worldmodels.text import TextEncoder, shared_text_encoder

WEIGHTS_NAME = "tabletop_wm.safetensors"
# A change of this size (in [-1, 1] units, ~10 grey levels) or more counts as "the model changed this
# pixel" when blending the model's frame into the start frame; smaller changes fade into the sharp
# start frame.
CHANGE_FULL = 0.04
RECREATE = "make world-model   (or: spiral train world-model --data DIR; see README)"


def default_weights() -> Path:
    return Path(str(resources.files("spiral") / "assets" / WEIGHTS_NAME))


@dataclass(frozen=True)
class SamplerConfig:
    num_inference_steps: int = 8  # 8 Euler steps sample as well as 16
    # Classifier-free guidance (1 = off, half the net calls): chosen on tuning probes and tuning
    # tasks of the closed loop (docs/RESULTS.md, Tabletop world model).
    guidance_scale: float = 2.0
    shift: float = 1.0  # >1 spends more steps at high noise (SD3-style time shift)
    # 0: the deterministic Euler (ODE) sampler. > 0: the SDE sampler GRPO trains with, at this
    # noise_level (generation then samples a group's clips one by one; see _sample_group).
    noise_level: float = 0.0

    def __post_init__(self) -> None:
        # Checked here, not where an option is parsed, so a bad value from any caller (a user's
        # --world-model-options, GRPO's --guidance, a benchmark's flag) gets the same message.
        defaults = {f.name: f.default for f in fields(self)}
        for name, lowest in _SAMPLER_LOWEST.items():
            value, kind = getattr(self, name), type(defaults[name])
            allowed = int if kind is int else int | float
            if isinstance(value, bool) or not isinstance(value, allowed) or not value >= lowest:
                what = "a whole number" if kind is int else "a number"
                raise SpiralError(f"tabletop sampler setting {name}={value!r}: give {what} >= {lowest:g}")
            object.__setattr__(self, name, kind(value))  # 2 and 2.0 are one setting, and record as one

    @classmethod
    def overriding(cls, **given: float | int | str | None) -> SamplerConfig:
        """The defaults, with the options a caller was given (None: not given, keep the default)."""
        return cls(**{k: v for k, v in given.items() if v is not None})


# The lowest value each number may take (its type is its default's); a time shift of 0 would put
# every step at t = 0.
_SAMPLER_LOWEST = {"num_inference_steps": 1, "guidance_scale": 0.0, "shift": 1e-3, "noise_level": 0.0}


def sampler_from_options(options: dict) -> SamplerConfig:
    """The sampler a user's --world-model-options ask for; the defaults for what they leave out.
    Unknown keys are refused here; values are checked by SamplerConfig itself."""
    known = {f.name for f in fields(SamplerConfig)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise SpiralError(
            f"unknown tabletop world model option(s) {', '.join(unknown)}; known options: {', '.join(sorted(known))}"
        )
    return SamplerConfig.overriding(**options)


@dataclass
class Rollout:
    """A batch of sampled changes with what GRPO needs: the latents visited and each SDE step's
    log-probability. latents[k] is x at timesteps[k]; latents[-1] is the clean sample."""

    x0: torch.Tensor  # (B, T-1, 3, R, R) clean change latent (see change_latent)
    latents: list[torch.Tensor]
    log_probs: torch.Tensor  # (B, steps); zeros for deterministic (ODE) sampling
    timesteps: list[float]
    condition: tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # (start in model space, text, pad): re-scoring needs it


def timesteps(steps: int, shift: float = 1.0) -> list[float]:
    ts = np.linspace(1.0, 0.0, steps + 1)
    return [float(shift * t / (1 + (shift - 1) * t)) for t in ts]


def to_model_space(frames: torch.Tensor, resolution: int) -> torch.Tensor:
    """uint8 (..., H, W, 3) -> float (..., 3, R, R) in [-1, 1], area-averaged down."""
    x = frames.float().movedim(-1, -3) / 127.5 - 1.0
    lead = x.shape[:-3]
    x = x.reshape(-1, *x.shape[-3:])
    if x.shape[-1] != resolution:
        x = F.interpolate(x, size=(resolution, resolution), mode="area")
    return x.reshape(*lead, 3, resolution, resolution)


def change_latent(frames: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
    """What the net generates: model-space frames (B, T-1, 3, R, R) as their change from the start
    frame (B, 3, R, R), halved into [-1, 1]. Its inverse is in `blend`."""
    return (frames - start[:, None]) / 2.0


def velocity(net: TabletopNet, x: torch.Tensor, t: float, start: torch.Tensor, text, pad, guidance: float, null) -> torch.Tensor:
    """The sampler's velocity from the net's clean-change prediction: v = (x_t - x0_hat) / t."""
    tt = torch.full((x.shape[0],), t)
    x0 = net(x, tt, start, text, pad)
    if guidance != 1.0:
        x0_null = net(x, tt, start, *null)
        x0 = x0_null + guidance * (x0 - x0_null)
    return (x - x0) / t


class TabletopWorldModel:
    """WorldModel backend `tabletop`. Load with `TabletopWorldModel.load()`."""

    name = "tabletop"

    def __init__(
        self, net: TabletopNet, frame_size: int = 64, sampler: SamplerConfig | None = None, text: TextEncoder | None = None
    ):
        self.net = net.eval()
        self.cfg = net.cfg
        self.frame_size = frame_size
        self.num_frames = net.cfg.num_frames
        self.sampler = sampler or SamplerConfig()
        self.text = text or shared_text_encoder()
        self.compose = ComposeConfig()
        self.info: dict = {}

    @classmethod
    def load(
        cls, path: str | Path | None = None, frame_size: int = 64, sampler: SamplerConfig | None = None
    ) -> TabletopWorldModel:
        path = Path(path) if path is not None else default_weights()
        if not path.is_file():
            raise SpiralError(f"missing world-model weights: {path}; re-create them with: {RECREATE}")
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
            state = {k: v.float() for k, v in load_file(str(path)).items()}
            net = TabletopNet(TabletopNetConfig.from_dict(json.loads(meta["config"]), f"world-model weights {path}"))
            if "gate.weight" not in state:  # a gate-less net, which a config without the gate key may hold
                raise SpiralError(
                    f"world-model weights {path} have no input gate; the commit tagged rejected-variants loads them"
                )
            net.load_state_dict(state)
        except (SafetensorError, KeyError, json.JSONDecodeError, RuntimeError, OSError, TypeError) as err:
            raise SpiralError(f"corrupt world-model weights {path} ({str(err)[:120]}); re-create them with: {RECREATE}") from None
        wm = cls(net, frame_size, sampler)
        wm.info = {k: v for k, v in meta.items() if k != "config"}
        return wm

    # ---- the WorldModel protocol -------------------------------------------------------------
    def generate(
        self, frame, instruction: str, *, num_frames: int | None = None, seed: int = 0, context: str | None = None
    ) -> Clip:
        return self.generate_group(frame, instruction, group_size=1, seed=seed, num_frames=num_frames, context=context)[0]

    def generate_group(
        self,
        frame,
        instruction: str,
        *,
        group_size: int,
        seed: int = 0,
        num_frames: int | None = None,
        context: str | None = None,
    ) -> list[Clip]:
        """`context` is ignored: this model conditions on the frame and the instruction only.
        Longer clips (num_frames = 1 + k * 7) continue from their own last frame, same instruction."""
        instruction = check_instruction(instruction)
        start = prepare_frame(frame, self.frame_size)
        n = num_frames or self.num_frames
        per = self.num_frames - 1
        if n < 2 or (n - 1) % per:
            raise SpiralError(f"num_frames must be 1 + k*{per} for the tabletop model, got {n}")
        began = time.perf_counter()
        starts = np.repeat(start[None], group_size, axis=0)
        pieces = [starts[:, None]]
        for chunk in range((n - 1) // per):
            seeds = [seed + i + 1000 * chunk for i in range(group_size)]
            frames = self._sample_group(starts, instruction, seeds)
            pieces.append(frames[:, 1:])
            starts = frames[:, -1]
        video = np.concatenate(pieces, axis=1)
        seconds = (time.perf_counter() - began) / group_size
        return [Clip(video[i], instruction, seed + i, self.name, seconds) for i in range(group_size)]

    def _sample_group(self, starts: np.ndarray, instruction: str, seeds: list[int]) -> np.ndarray:
        noise = self.sampler.noise_level
        if not noise:
            return self.sample_frames(starts, [instruction] * len(seeds), seeds)
        # The SDE draws its noise per call, so a clip would depend on its group: sample one by one.
        return np.concatenate([self.sample_frames(starts[i : i + 1], [instruction], [s], noise) for i, s in enumerate(seeds)])

    # ---- sampling ----------------------------------------------------------------------------
    def initial_noise(self, seeds: list[int]) -> torch.Tensor:
        shape = (self.num_frames - 1, 3, self.cfg.resolution, self.cfg.resolution)
        return torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(int(s))) for s in seeds])

    @torch.no_grad()
    def sample(self, starts: np.ndarray, instructions: list[str], seeds: list[int], noise_level: float = 0.0) -> Rollout:
        """Sample clean changes for a batch of uint8 start frames. noise_level 0 is the ODE (Euler)
        sampler; > 0 is the SDE sampler whose per-step log-probabilities GRPO uses."""
        start = to_model_space(torch.from_numpy(starts), self.cfg.resolution)
        text, pad = self.text.encode(instructions)
        null = self.net.null_condition(len(seeds))
        x = self.initial_noise(seeds)
        gen = torch.Generator().manual_seed(int(seeds[0]) * 7919 + 17)
        ts = timesteps(self.sampler.num_inference_steps, self.sampler.shift)
        latents, log_probs = [x], []
        for t, t_next in zip(ts[:-1], ts[1:], strict=True):
            v = velocity(self.net, x, t, start, text, pad, self.sampler.guidance_scale, null)
            if noise_level > 0 and t_next > 0:
                x, lp = sde_step_with_logprob(x, v, t, t_next, noise_level, generator=gen)
            else:
                x, lp = x + (t_next - t) * v, torch.zeros(x.shape[0])
            latents.append(x)
            log_probs.append(lp)
        return Rollout(x.clamp(-1.0, 1.0), latents, torch.stack(log_probs, dim=1), ts, (start, text, pad))

    def decode(self, starts: np.ndarray, latent: torch.Tensor) -> np.ndarray:
        """Start frames (B, H, W, 3) uint8 + clean change latents -> clips (B, T, H, W, 3) uint8:
        every start-frame object redrawn sharp where the model put it (tabletop_compose)."""
        clips, seen = self.blend(starts, latent)
        return compose_objects(starts, seen, clips, self.cfg.resolution, self.compose)

    def blend(self, starts: np.ndarray, x0: torch.Tensor) -> tuple[np.ndarray, torch.Tensor]:
        """The model's own frames: clips (B, T, H, W, 3) uint8, start frame first, and the generated
        frames upsampled (B, T-1, 3, H, W) in [-1, 1].

        Where the model changed nothing the sharp start frame is kept; where it changed something the
        model's own frame (start + change at 32x32, upsampled) is used. Adding an upsampled change to
        the sharp start instead would leave a ring where an object was erased, since a blurry
        erase cannot cancel sharp edges.
        """
        b, t = x0.shape[:2]
        r, s = self.cfg.resolution, self.frame_size
        start_small = to_model_space(torch.from_numpy(starts), r)  # (B, 3, R, R) in [-1, 1]
        frames_small = (start_small[:, None] + 2.0 * x0).clamp(-1, 1).reshape(b * t, 3, r, r)
        changed = (x0.abs().amax(dim=2) / CHANGE_FULL).clamp(0, 1).reshape(b * t, 1, r, r)
        changed = F.max_pool2d(changed, 3, stride=1, padding=1)  # cover the blurred edge of a change
        if s != r:
            frames_small = F.interpolate(frames_small, size=(s, s), mode="bilinear", align_corners=False)
            changed = F.interpolate(changed, size=(s, s), mode="bilinear", align_corners=False)
        model = ((frames_small + 1.0) * 127.5).reshape(b, t, 3, s, s).permute(0, 1, 3, 4, 2).numpy()
        weight = changed.reshape(b, t, 1, s, s).permute(0, 1, 3, 4, 2).numpy()
        sharp = starts[:, None].astype(np.float32)
        frames = np.clip(np.rint(sharp * (1.0 - weight) + model * weight), 0, 255).astype(np.uint8)
        return np.concatenate([starts[:, None], frames], axis=1), frames_small.reshape(b, t, 3, s, s)

    def sample_frames(
        self, starts: np.ndarray, instructions: list[str], seeds: list[int], noise_level: float = 0.0
    ) -> np.ndarray:
        return self.decode(starts, self.sample(starts, instructions, seeds, noise_level).x0)
