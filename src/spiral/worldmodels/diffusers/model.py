"""WorldModel adapters over diffusers image-to-video pipelines (Wan, CogVideoX, LTX-Video, HunyuanVideo).

The adapter is a thin layer: it prepares the start frame, calls the unmodified pipeline with one
seeded CPU generator per group member, and turns the float frames into a uint8 Clip whose frames[0]
is the exact start frame (the pipeline's own frame 0 is a VAE reconstruction of it). Everything
else (text encoding, guidance, schedulers, VAE) is diffusers' code, so a clip equals what calling
the pipeline directly with the same seed gives.
"""

from __future__ import annotations

import dataclasses
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from spiral.config import option
from spiral.errors import SpiralError
from spiral.types import Clip
from spiral.worldmodels.base import FITS, check_instruction, prepare_frame
from spiral.worldmodels.diffusers.backbones import Backbone, backbone
from spiral.worldmodels.diffusers.lora import load_exported_lora
from spiral.worldmodels.diffusers.memory import OFFLOADS, apply_memory_options
from spiral.worldmodels.diffusers.options import DTYPES, STORAGE_DTYPES, check_device, dtype_name, typed_options


@dataclass(frozen=True)
class DiffusersConfig:
    """How to load and call a diffusers TI2V backbone. Sizes and sampler settings left at None take
    the loaded model's upstream defaults (its variant's, see backbones.py)."""

    model: str = option("", "hub id or local folder; empty = the backbone's reference model")
    dtype: str = option("auto", "auto (bfloat16 on GPU, float32 on CPU), float32, bfloat16 or float16", choices=("auto", *DTYPES))
    vae_dtype: str = option("float32", "the VAE's dtype; upstream recommends float32 for Wan's", choices=tuple(DTYPES))
    device: str = option("auto", "auto (cuda when available), cuda, cuda:N or cpu")
    offload: str = option(
        "none",
        "keep weights on the CPU while idle: model (whole components, needs accelerate), sequential (layer by layer: "
        "least memory, slowest), group (blocks, overlapped with compute on CUDA)",
        choices=OFFLOADS,
    )
    layerwise_casting: str = option(
        "", "store the denoiser's weights in this dtype (float8_e4m3fn, float8_e5m2) and compute in `dtype`; '' = off"
    )
    compile: bool = option(False, "torch.compile the denoiser (slow first clip, faster after)")
    vae_tiling: bool = option(False, "decode in tiles (less GPU memory at large sizes)")
    vae_slicing: bool = option(False, "decode one video of a batch at a time")
    lora: str = option("", "a LoRA adapter to load (a `spiral train grpo` export: folder or .safetensors file)")
    lora_scale: float = option(1.0, "strength of the `lora` adapter (0 = off)")
    fit: str = option("crop", "a start image of another aspect ratio: crop (centre), pad (letterbox) or stretch", choices=FITS)
    height: int | None = option(None, "frame height; adjusted to the backbone's multiple with a warning")
    width: int | None = option(None, "frame width; adjusted to the backbone's multiple with a warning")
    num_frames: int | None = option(None, "frames per clip; adjusted to 1 + k * the VAE's temporal stride with a warning")
    num_inference_steps: int | None = option(None, "denoising steps")
    guidance_scale: float | None = option(None, "classifier-free guidance scale")
    fps: int | None = option(None, "frames per second of the clips (LTX also conditions on it)")
    negative_prompt: str = option("", "negative prompt for guidance; empty = the pipeline's default")
    group_batch_size: int = option(0, "group members per pipeline call; 0 = the whole group at once")
    pipeline_kwargs: dict[str, Any] = dataclasses.field(
        default_factory=dict, metadata={"help": "extra keyword arguments for the pipeline call (e.g. max_sequence_length)"}
    )

    def __post_init__(self) -> None:
        """Python callers get the same checks as the CLI: dtypes, device, offload, sizes."""
        object.__setattr__(self, "dtype", dtype_name(self.dtype, "dtype", ("auto", *DTYPES)))
        object.__setattr__(self, "vae_dtype", dtype_name(self.vae_dtype, "vae_dtype", tuple(DTYPES)))
        if self.layerwise_casting:
            dtype_name(self.layerwise_casting, "layerwise_casting", tuple(STORAGE_DTYPES))
        check_device(self.device)
        for name in ("offload", "fit"):
            choices = next(f for f in dataclasses.fields(self) if f.name == name).metadata["choices"]
            if getattr(self, name) not in choices:
                raise SpiralError(f"option {name}={getattr(self, name)!r} is not one of {', '.join(choices)}")
        for name in ("height", "width", "num_frames", "num_inference_steps", "fps"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise SpiralError(f"option {name} must be >= 1, got {value}")
        if self.group_batch_size < 0:
            raise SpiralError(f"option group_batch_size must be >= 0 (0 = the whole group), got {self.group_batch_size}")


def fit_multiple(value: int, multiple: int, what: str, name: str) -> int:
    """Round a size to the nearest multiple the backbone can take, warning when it changes."""
    fitted = max(multiple, round(value / multiple) * multiple)
    if fitted != value:
        warnings.warn(f"{name}: {what} {value} is not a multiple of {multiple}; using {fitted}", stacklevel=3)
    return fitted


def fit_frames(num_frames: int, stride: int, name: str) -> int:
    """num_frames must be 1 + k * stride (the VAE compresses time by `stride`); round to the nearest."""
    fitted = 1 + max(1, round((num_frames - 1) / stride)) * stride
    if fitted != num_frames:
        warnings.warn(f"{name}: num_frames {num_frames} is not 1 + k*{stride}; using {fitted}", stacklevel=3)
    return fitted


class DiffusersWorldModel:
    """WorldModel over a loaded diffusers pipeline. Build with `load()` (hub id or folder) or pass a
    pipeline object. `context` (the memory summary) is ignored: these models condition on the
    frame and the instruction only, and long prompts drift them off the step."""

    def __init__(self, name: str, pipe: Any, cfg: DiffusersConfig | None = None):
        self.backbone: Backbone = backbone(name)
        self.name, self.pipe, self.cfg = name, pipe, cfg or DiffusersConfig()
        b, c = self.backbone, self.cfg
        pipe.set_progress_bar_config(disable=True)
        self.defaults = b.defaults(pipe)  # the loaded model's own defaults (Wan2.2-5B's differ from Wan2.1's)
        d = self.defaults
        spatial, self.temporal = b.spatial(pipe), b.temporal(pipe)
        self.height = fit_multiple(c.height or d.height, spatial, "height", name)
        self.width = fit_multiple(c.width or d.width, spatial, "width", name)
        self.num_frames = fit_frames(c.num_frames or d.num_frames, self.temporal, name)
        # Clips are (T, height, width, 3); frame_size, the protocol's square size, is the longer side.
        self.frame_shape = (self.height, self.width)
        self.frame_size = max(self.height, self.width)
        self.fit = c.fit
        self.num_inference_steps = c.num_inference_steps or d.num_inference_steps
        self.guidance_scale = d.guidance_scale if c.guidance_scale is None else c.guidance_scale
        self.fps = c.fps or d.fps

    @classmethod
    def load(cls, name: str, cfg: DiffusersConfig | None = None) -> DiffusersWorldModel:
        cfg = cfg or DiffusersConfig()
        b = backbone(name)
        return cls(name, load_pipeline(b, cfg.model or b.hub_id, cfg), cfg)

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
        instruction = check_instruction(instruction)
        start = self.prepare(frame)
        n = self.num_frames if num_frames is None else fit_frames(num_frames, self.temporal, self.name)
        began = time.perf_counter()
        seeds = [seed + i for i in range(group_size)]
        videos = [self.run(start, instruction, seeds[rows], n) for rows in self.member_batches(group_size)]
        frames = self.to_clips(start, np.concatenate(videos), n)
        seconds = (time.perf_counter() - began) / group_size
        return [Clip(frames[i], instruction, s, self.name, seconds, fps=self.fps) for i, s in enumerate(seeds)]

    def member_batches(self, group_size: int) -> list[slice]:
        """The group members each pipeline call takes: `group_batch_size` at a time (0 = all)."""
        per_call = self.cfg.group_batch_size or group_size
        return [slice(i, i + per_call) for i in range(0, group_size, per_call)]

    # ---- the pipeline call -------------------------------------------------------------------
    def prepare(self, frame) -> np.ndarray:
        """Any image -> (height, width, 3) uint8, fitted by `fit` (centre crop by default); an image
        already that size passes through untouched, so a chained last frame is never resampled."""
        return prepare_frame(frame, self.frame_shape, self.fit)

    def call_kwargs(self, start: np.ndarray, instruction: str, seeds: list[int], num_frames: int) -> dict[str, Any]:
        image = Image.fromarray(start)
        if self.backbone.drops_start(self.pipe):  # ask for one latent frame more; see to_clips
            num_frames += self.temporal
        kw: dict[str, Any] = {
            "image": [image] * len(seeds) if self.backbone.image_per_member else image,
            "prompt": [instruction] * len(seeds),
            "height": self.height,
            "width": self.width,
            "num_frames": num_frames,
            "num_inference_steps": self.num_inference_steps,
            "guidance_scale": self.guidance_scale,
            # CPU generators: the same seed gives the same noise on every device.
            "generator": [torch.Generator().manual_seed(int(s)) for s in seeds],
            "output_type": "np",
        }
        if self.cfg.negative_prompt:
            kw["negative_prompt"] = [self.cfg.negative_prompt] * len(seeds)
        if self.backbone.frame_rate_kwarg:
            kw["frame_rate"] = self.fps
        # An image given as a pipeline keyword (Wan's last_image) is fitted like the start frame.
        extra = {k: self.prepare_image(v) if isinstance(v, Image.Image) else v for k, v in self.cfg.pipeline_kwargs.items()}
        return {**kw, **extra}

    def prepare_image(self, image: Image.Image) -> Image.Image:
        return Image.fromarray(self.prepare(image))

    def run(self, start: np.ndarray, instruction: str, seeds: list[int], num_frames: int) -> np.ndarray:
        """One pipeline call -> float frames (B, T, H, W, 3) in [0, 1]."""
        try:
            return np.asarray(self.pipe(**self.call_kwargs(start, instruction, seeds, num_frames)).frames)
        except torch.OutOfMemoryError:
            raise  # the bench counts an out-of-memory episode as errored and redoes it
        except (ValueError, TypeError, RuntimeError) as err:  # check_inputs, a bad pipeline keyword, dtypes
            first = str(err).strip().splitlines()[0][:300] if str(err).strip() else type(err).__name__
            raise SpiralError(
                f"{self.name}: the pipeline call failed ({first}); settings: {self.height}x{self.width}, "
                f"{num_frames} frames, dtype {self.cfg.dtype}, vae_dtype {self.cfg.vae_dtype}"
            ) from None

    def to_clips(self, start: np.ndarray, video: np.ndarray, num_frames: int) -> np.ndarray:
        """Pipeline float frames (B, T, H, W, 3) -> uint8 (B, num_frames, H, W, 3) whose frame 0 is
        the exact start frame. Rounds like diffusers' numpy_to_pil, so the other frames equal the
        pipeline's PIL output. Where the pipeline's video does not begin at the start frame
        (Hunyuan latent_concat), the start frame is put before its first num_frames - 1 frames."""
        frames = (np.clip(video, 0.0, 1.0) * 255).round().astype(np.uint8)
        if self.backbone.drops_start(self.pipe):
            frames = np.concatenate([np.repeat(start[None, None], len(frames), 0), frames[:, : num_frames - 1]], axis=1)
        if frames.shape[1] != num_frames:
            raise SpiralError(f"{self.name} returned {frames.shape[1]} frames for num_frames={num_frames}")
        frames[:, 0] = start
        return frames


def check_model_folder(folder: Path, b: Backbone) -> None:
    """Name the first missing piece of a local model folder before diffusers fails somewhere deep."""
    index_path = folder / "model_index.json"
    if not index_path.is_file():
        raise SpiralError(f"{folder} is not a diffusers model folder: no model_index.json (expected a {b.pipeline} folder)")
    try:
        index = json.loads(index_path.read_text())
    except json.JSONDecodeError as err:
        raise SpiralError(f"{index_path} is not valid JSON ({err})") from None
    for component in b.components:
        entry = index.get(component)
        if not isinstance(entry, list) or None in entry:
            raise SpiralError(f"{folder}: {b.name} needs component {component!r}, which model_index.json does not list")
        if not (folder / component).is_dir():
            raise SpiralError(f"{folder}: {b.name} needs component {component!r}, but there is no {component}/ subfolder")


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def load_pipeline(b: Backbone, model: str, cfg: DiffusersConfig) -> Any:
    import diffusers

    pipeline_cls = getattr(diffusers, b.pipeline, None)
    if pipeline_cls is None:
        raise SpiralError(f"diffusers {diffusers.__version__} has no {b.pipeline}; upgrade it: pip install -U diffusers")
    device = resolve_device(cfg.device)
    dtype = DTYPES.get(cfg.dtype) or (torch.bfloat16 if device.startswith("cuda") else torch.float32)
    folder = Path(model).expanduser()
    if folder.exists():
        check_model_folder(folder, b)
    elif model.startswith((".", "/", "~")):
        raise SpiralError(f"no model folder at {model}")
    try:
        pipe = pipeline_cls.from_pretrained(
            str(folder if folder.exists() else model), dtype={"default": dtype, "vae": DTYPES[cfg.vae_dtype]}
        )
    except (OSError, ValueError) as err:  # not cached offline, no such repo, wrong layout
        raise SpiralError(f"cannot load {b.name} from {model!r}: {str(err).splitlines()[0][:300]}") from None
    cast_vae_inputs(pipe.vae)
    if cfg.lora:
        load_exported_lora(pipe, cfg.lora, cfg.lora_scale)
    apply_memory_options(pipe, cfg, device, dtype)
    return pipe


def cast_vae_inputs(vae) -> None:
    """CogVideoX and LTX hand the VAE tensors in the transformer's dtype; with the VAE kept in
    another (float32, as upstream recommends) its first convolution fails. The VAE's encode and
    decode take their input in the VAE's own dtype instead."""
    for name in ("encode", "decode"):
        method = getattr(vae, name)

        def in_vae_dtype(x, *args, _method=method, **kwargs):
            if isinstance(x, torch.Tensor) and x.is_floating_point() and x.dtype != vae.dtype:
                x = x.to(vae.dtype)
            return _method(x, *args, **kwargs)

        setattr(vae, name, in_vae_dtype)  # an instance attribute shadows the method


def check_diffusers_options(options: dict) -> dict:
    """Options as the CLI gives them (text) -> DiffusersConfig's field types; a wrong name or value
    fails here, before any model loads."""
    typed = typed_options(DiffusersConfig, options)
    checked = DiffusersConfig(**typed)  # the config's own checks and spellings (dtypes, device, choices, sizes)
    return {key: getattr(checked, key) for key in typed}


def make_diffusers_world_model(name: str, path: str | None = None, **options: Any) -> DiffusersWorldModel:
    """Backend factory: `name` is a backbone (see BACKBONES), `path` a hub id or local folder
    (None = the backbone's reference model), `options` any DiffusersConfig field, as values or text."""
    backbone(name)  # unknown names fail before anything loads
    typed = check_diffusers_options(options)
    return DiffusersWorldModel.load(name, DiffusersConfig(**{**typed, "model": path or typed.get("model", "")}))
