"""The diffusers image-to-video backbones SPIRAL can drive, and what each one needs.

Each entry names the diffusers pipeline class, the components a model folder must hold, the
upstream defaults (from the model cards), how to read the size multiples off a loaded pipeline, and
which log-prob step GRPO uses on its scheduler ("flow" for flow matching, "ddim" for CogVideoX).

A backbone name covers several released models whose defaults differ (Wan2.2's TI2V-5B makes 121
frames at 24 fps, Wan2.1 81 at 16); `variant(pipe)` tells them apart from the loaded folder's
configuration, and its defaults replace the backbone's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from spiral.errors import SpiralError


@dataclass(frozen=True)
class Variant:
    """A released model's own defaults (from its model card), where they differ from its backbone's."""

    name: str
    height: int
    width: int
    num_frames: int
    num_inference_steps: int
    guidance_scale: float
    fps: int


# Read off the loaded pipeline: Wan2.2 TI2V-5B conditions by expanded timesteps, Wan2.2 A14B has a
# second (low-noise) expert, CogVideoX 1.5 patches time (patch_size_t).
WAN22_TI2V_5B = Variant("Wan2.2-TI2V-5B", 704, 1280, 121, 50, 5.0, 24)
WAN22_A14B = Variant("Wan2.2-I2V-A14B", 720, 1280, 81, 40, 3.5, 16)
COGVIDEOX15 = Variant("CogVideoX1.5-5B-I2V", 768, 1360, 81, 50, 6.0, 16)


def _wan_variant(p) -> Variant | None:
    if p.config.get("expand_timesteps"):
        return WAN22_TI2V_5B
    return WAN22_A14B if getattr(p, "transformer_2", None) is not None else None


def _cogvideox_variant(p) -> Variant | None:
    return COGVIDEOX15 if p.transformer.config.get("patch_size_t") else None


@dataclass(frozen=True)
class Backbone:
    name: str
    pipeline: str  # the diffusers class name
    hub_id: str  # the reference model, loaded when no folder is given
    components: tuple[str, ...]  # required: an entry in model_index.json and a subfolder each
    reference: Variant  # the reference model's defaults (from its model card)
    spatial: Callable[[Any], int]  # pipeline -> height/width multiple (VAE stride x patch size)
    temporal: Callable[[Any], int]  # pipeline -> num_frames must be 1 + k * this
    sde: str  # "flow" | "ddim": which log-prob step replaces the scheduler step
    frame_rate_kwarg: bool = False  # LTX conditions on the frame rate
    image_per_member: bool = True  # batched calls index image[i]; Wan takes one image and repeats it
    # Hunyuan's "latent_concat" models decode without the start frame's first 4 frames.
    drops_start: Callable[[Any], bool] = lambda p: False
    variant: Callable[[Any], Variant | None] = lambda p: None  # pipeline -> its released model's defaults

    def defaults(self, pipe) -> Variant:
        """The defaults for this loaded pipeline: its variant's, else the reference model's."""
        return self.variant(pipe) or self.reference


def _wan_spatial(p) -> int:
    return p.vae_scale_factor_spatial * p.transformer.config.patch_size[1]


def _ltx_spatial(p) -> int:
    return p.vae_spatial_compression_ratio * p.transformer_spatial_patch_size


def _ltx_temporal(p) -> int:
    return p.vae_temporal_compression_ratio * p.transformer_temporal_patch_size


_LTX = ("scheduler", "vae", "text_encoder", "tokenizer", "transformer")

BACKBONES: dict[str, Backbone] = {
    b.name: b
    for b in (
        Backbone(
            "wan-i2v",
            "WanImageToVideoPipeline",
            "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers",
            ("tokenizer", "text_encoder", "vae", "scheduler", "transformer"),  # image_encoder: Wan2.1 only
            Variant("Wan2.1-I2V-14B-480P", 480, 832, 81, 50, 5.0, 16),
            _wan_spatial,
            lambda p: p.vae_scale_factor_temporal,
            "flow",
            image_per_member=False,
            variant=_wan_variant,
        ),
        Backbone(
            "cogvideox-i2v",
            "CogVideoXImageToVideoPipeline",
            "THUDM/CogVideoX-5b-I2V",
            ("tokenizer", "text_encoder", "vae", "transformer", "scheduler"),
            Variant("CogVideoX-5b-I2V", 480, 720, 49, 50, 6.0, 8),
            lambda p: p.vae_scale_factor_spatial * p.transformer.config.patch_size,
            # The VAE decodes latent frames in pairs after the first: an odd latent count (1 + 8k
            # frames) is needed for the clip to have num_frames frames.
            lambda p: 2 * p.vae_scale_factor_temporal,
            "ddim",
            variant=_cogvideox_variant,
        ),
        Backbone(
            "ltx-i2v",
            "LTXImageToVideoPipeline",
            "Lightricks/LTX-Video",
            _LTX,
            Variant("LTX-Video", 480, 704, 161, 50, 3.0, 25),
            _ltx_spatial,
            _ltx_temporal,
            "flow",
            True,
        ),
        Backbone(
            "ltx-condition",
            "LTXConditionPipeline",
            "Lightricks/LTX-Video-0.9.5",
            _LTX,
            Variant("LTX-Video-0.9.5", 480, 704, 161, 50, 3.0, 25),
            _ltx_spatial,
            _ltx_temporal,
            "flow",
            True,
        ),
        Backbone(
            "hunyuan-i2v",
            "HunyuanVideoImageToVideoPipeline",
            "hunyuanvideo-community/HunyuanVideo-I2V",
            ("text_encoder", "tokenizer", "transformer", "vae", "scheduler", "text_encoder_2", "tokenizer_2", "image_processor"),
            Variant("HunyuanVideo-I2V", 720, 1280, 129, 50, 6.0, 15),
            lambda p: p.vae_scale_factor_spatial * p.transformer.config.patch_size,
            lambda p: p.vae_scale_factor_temporal,
            "flow",
            drops_start=lambda p: p.transformer.config.image_condition_type == "latent_concat",
        ),
    )
}


def backbone(name: str) -> Backbone:
    if name not in BACKBONES:
        raise SpiralError(f"unknown diffusers backbone {name!r}; known backbones: {', '.join(BACKBONES)}")
    return BACKBONES[name]
