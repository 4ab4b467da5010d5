"""What each diffusers backbone costs on a GPU at its real configuration, with random weights.

Wan2.1-I2V-14B-480P, Wan2.2-TI2V-5B, CogVideoX-5b-I2V, LTX-Video (the I2V pipeline) and
HunyuanVideo-I2V are built from the published config.json of their transformer and VAE (written out
below, each naming its hub file), with random weights: nothing is downloaded. Each then runs through
SPIRAL's own adapter at the released model's default size and frame count:

 - one clip (`DiffusersWorldModel.generate`): seconds, seconds per denoising step (the loop alone),
   peak GPU memory;
 - one GRPO update as `spiral train grpo` makes it (`DiffusersLoRAPolicy`, LoRA rank 16 on the
   attention projections, gradient checkpointing, `group_batch_size` members per call): the
   group's SDE rollouts, then `grpo_backward` over the trained step(s) with the KL reference pass,
   then an AdamW step: seconds of each and peak GPU memory.

The text encoders (UMT5-XXL, T5-XXL, Llava-Llama-3-8B + CLIP-L) are not built: the pipelines get
fixed random prompt embeddings of the real shape, so one encoder pass per call is not in the figures.
Wan2.1's CLIP ViT-H image encoder is built at its real config. A backbone that runs out of GPU memory
is reported as "OOM at <stage>" and the next one runs.

    python benchmarks/gpu_real_shapes.py [--backbones wan-i2v,hunyuan-i2v] [--steps 4] [--frames N]
        [--offload none] [--group-size 8] [--group-batch-size 1] [--out out/gpu_real_shapes.json]

Without CUDA it says so in one line and exits 0. `--tiny` runs the same code on scaled-down configs
(any device; the CPU smoke test is tests/test_gpu_real_shapes_script.py). Figures go into
docs/RESULTS.md with the card they were measured on named (the JSON records it).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from spiral.rl.diffusers_policy import DiffusersLoRAPolicy  # noqa: E402
from spiral.rl.grpo import GRPOSettings, group_advantages, grpo_backward  # noqa: E402
from spiral.worldmodels.diffusers import DiffusersConfig, DiffusersWorldModel  # noqa: E402
from spiral.worldmodels.diffusers.memory import apply_memory_options  # noqa: E402
from spiral.worldmodels.diffusers.model import cast_vae_inputs  # noqa: E402

INSTRUCTION = "move the red square to the left side"

# ---- the published configs ------------------------------------------------------------------------
# Each dict is the hub file's content for the fields the constructor takes (bookkeeping keys such as
# _class_name and _diffusers_version left out); fields at the class's default are written out too,
# so what is measured can be read here. Cross-checked against diffusers' conversion scripts
# (scripts/convert_{wan,cogvideox,ltx,hunyuan_video}_to_diffusers.py), which build these models.

# Wan-AI/Wan2.1-I2V-14B-480P-Diffusers: transformer/config.json
WAN21_I2V_14B = dict(
    patch_size=(1, 2, 2), num_attention_heads=40, attention_head_dim=128, in_channels=36, out_channels=16,
    text_dim=4096, freq_dim=256, ffn_dim=13824, num_layers=40, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
    eps=1e-6, image_dim=1280, added_kv_proj_dim=5120, rope_max_seq_len=1024, pos_embed_seq_len=None,
)  # fmt: skip
# Wan-AI/Wan2.1-I2V-14B-480P-Diffusers: vae/config.json (the Wan2.1 VAE, AutoencoderKLWan's defaults)
WAN21_VAE = dict(
    base_dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[], temperal_downsample=[False, True, True],
    dropout=0.0,
)  # fmt: skip
# Wan-AI/Wan2.1-I2V-14B-480P-Diffusers: image_encoder/config.json (laion/CLIP-ViT-H-14-laion2B-s32B-b79K's vision tower)
CLIP_VIT_H = dict(
    hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=16, image_size=224,
    patch_size=14, projection_dim=1024, hidden_act="gelu", layer_norm_eps=1e-5,
)  # fmt: skip
# Wan-AI/Wan2.1-I2V-14B-480P-Diffusers: scheduler/scheduler_config.json (flow_shift 3.0 at 480P)
WAN21_SCHEDULER = dict(prediction_type="flow_prediction", use_flow_sigmas=True, num_train_timesteps=1000, flow_shift=3.0)

# Wan-AI/Wan2.2-TI2V-5B-Diffusers: transformer/config.json
WAN22_TI2V_5B = dict(
    patch_size=(1, 2, 2), num_attention_heads=24, attention_head_dim=128, in_channels=48, out_channels=48,
    text_dim=4096, freq_dim=256, ffn_dim=14336, num_layers=30, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
    eps=1e-6, image_dim=None, added_kv_proj_dim=None, rope_max_seq_len=1024, pos_embed_seq_len=None,
)  # fmt: skip
# Wan-AI/Wan2.2-TI2V-5B-Diffusers: vae/config.json (the Wan2.2 VAE: 16x spatial, 48 channels; its
# `clip_output: false` is left out, diffusers 0.42 takes no such argument)
WAN22_VAE = dict(
    base_dim=160, decoder_base_dim=256, z_dim=48, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
    temperal_downsample=[False, True, True], dropout=0.0, is_residual=True, in_channels=12, out_channels=12,
    patch_size=2, scale_factor_temporal=4, scale_factor_spatial=16,
    latents_mean=[
        -0.2289, -0.0052, -0.1323, -0.2339, -0.2799, 0.0174, 0.1838, 0.1557, -0.1382, 0.0542, 0.2813, 0.0891,
        0.1570, -0.0098, 0.0375, -0.1825, -0.2246, -0.1207, -0.0698, 0.5109, 0.2665, -0.2108, -0.2158, 0.2502,
        -0.2055, -0.0322, 0.1109, 0.1567, -0.0729, 0.0899, -0.2799, -0.1230, -0.0313, -0.1649, 0.0117, 0.0723,
        -0.2839, -0.2083, -0.0520, 0.3748, 0.0152, 0.1957, 0.1433, -0.2944, 0.3573, -0.0548, -0.1681, -0.0667,
    ],
    latents_std=[
        0.4765, 1.0364, 0.4514, 1.1677, 0.5313, 0.4990, 0.4818, 0.5013, 0.8158, 1.0344, 0.5894, 1.0901,
        0.6885, 0.6165, 0.8454, 0.4978, 0.5759, 0.3523, 0.7135, 0.6804, 0.5833, 1.4146, 0.8986, 0.5659,
        0.7069, 0.5338, 0.4889, 0.4917, 0.4069, 0.4999, 0.6866, 0.4093, 0.5709, 0.6065, 0.6415, 0.4944,
        0.5726, 1.2042, 0.5458, 1.6887, 0.3971, 1.0600, 0.3943, 0.5537, 0.5444, 0.4089, 0.7468, 0.7744,
    ],
)  # fmt: skip
# Wan-AI/Wan2.2-TI2V-5B-Diffusers: scheduler/scheduler_config.json
WAN22_SCHEDULER = {**WAN21_SCHEDULER, "flow_shift": 5.0}

# THUDM/CogVideoX-5b-I2V: transformer/config.json (learned positional embeddings: 480x720 only)
COGVIDEOX_5B_I2V = dict(
    num_attention_heads=48, attention_head_dim=64, in_channels=32, out_channels=16, flip_sin_to_cos=True, freq_shift=0,
    time_embed_dim=512, text_embed_dim=4096, num_layers=42, dropout=0.0, attention_bias=True, sample_width=90,
    sample_height=60, sample_frames=49, patch_size=2, temporal_compression_ratio=4, max_text_seq_length=226,
    activation_fn="gelu-approximate", timestep_activation_fn="silu", norm_elementwise_affine=True, norm_eps=1e-5,
    spatial_interpolation_scale=1.875, temporal_interpolation_scale=1.0, use_rotary_positional_embeddings=True,
    use_learned_positional_embeddings=True,
)  # fmt: skip
# THUDM/CogVideoX-5b-I2V: vae/config.json
COGVIDEOX_VAE = dict(
    block_out_channels=(128, 256, 256, 512), latent_channels=16, layers_per_block=3, act_fn="silu", norm_eps=1e-6,
    norm_num_groups=32, temporal_compression_ratio=4, sample_height=480, sample_width=720, scaling_factor=0.7,
    force_upcast=True, use_quant_conv=False, use_post_quant_conv=False,
)  # fmt: skip
# THUDM/CogVideoX-5b-I2V: scheduler/scheduler_config.json
COGVIDEOX_SCHEDULER = dict(
    beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False, num_train_timesteps=1000,
    prediction_type="v_prediction", rescale_betas_zero_snr=True, set_alpha_to_one=True, timestep_spacing="trailing",
    snr_shift_scale=1.0,
)  # fmt: skip

# Lightricks/LTX-Video: transformer/config.json (the 2B transformer of 0.9.x)
LTX_VIDEO = dict(
    in_channels=128, out_channels=128, patch_size=1, patch_size_t=1, num_attention_heads=32, attention_head_dim=64,
    cross_attention_dim=2048, num_layers=28, activation_fn="gelu-approximate", qk_norm="rms_norm_across_heads",
    norm_elementwise_affine=False, norm_eps=1e-6, caption_channels=4096, attention_bias=True, attention_out_bias=True,
)  # fmt: skip
# Lightricks/LTX-Video: vae/config.json (the repo's diffusers folder holds the 0.9.0 VAE)
LTX_VAE = dict(
    latent_channels=128, block_out_channels=(128, 256, 512, 512), decoder_block_out_channels=(128, 256, 512, 512),
    layers_per_block=(4, 3, 3, 3, 4), decoder_layers_per_block=(4, 3, 3, 3, 4),
    spatio_temporal_scaling=(True, True, True, False), decoder_spatio_temporal_scaling=(True, True, True, False),
    decoder_inject_noise=(False, False, False, False, False), upsample_residual=(False, False, False, False),
    upsample_factor=(1, 1, 1, 1), timestep_conditioning=False, patch_size=4, patch_size_t=1, resnet_norm_eps=1e-6,
    scaling_factor=1.0, encoder_causal=True, decoder_causal=False,
)  # fmt: skip
# Lightricks/LTX-Video: scheduler/scheduler_config.json
LTX_SCHEDULER = dict(
    use_dynamic_shifting=True, base_shift=0.95, max_shift=2.05, base_image_seq_len=1024, max_image_seq_len=4096,
    shift_terminal=0.1,
)  # fmt: skip

# hunyuanvideo-community/HunyuanVideo-I2V: transformer/config.json (the "16ch" token-replace release,
# guidance-distilled: one transformer pass per step; the older -33ch repo is latent_concat)
HUNYUAN_I2V = dict(
    in_channels=16, out_channels=16, num_attention_heads=24, attention_head_dim=128, num_layers=20,
    num_single_layers=40, num_refiner_layers=2, mlp_ratio=4.0, patch_size=2, patch_size_t=1, qk_norm="rms_norm",
    guidance_embeds=True, text_embed_dim=4096, pooled_projection_dim=768, rope_theta=256.0, rope_axes_dim=(16, 56, 56),
    image_condition_type="token_replace",
)  # fmt: skip
# hunyuanvideo-community/HunyuanVideo-I2V: vae/config.json (AutoencoderKLHunyuanVideo's defaults)
HUNYUAN_VAE = dict(
    latent_channels=16, block_out_channels=(128, 256, 512, 512), layers_per_block=2, act_fn="silu",
    norm_num_groups=32, scaling_factor=0.476986, spatial_compression_ratio=8, temporal_compression_ratio=4,
    mid_block_add_attention=True,
)  # fmt: skip
HUNYUAN_SCHEDULER = dict(shift=7.0)  # hunyuanvideo-community/HunyuanVideo-I2V: scheduler/scheduler_config.json


@dataclass(frozen=True)
class Text:
    """The prompt embeddings a pipeline gets in place of its text encoder's output."""

    length: int  # text tokens, as the encoder pads them
    dim: str  # the transformer config field that is the embedding width
    image_tokens: int = 0  # image tokens put before the text (HunyuanVideo-I2V's Llava)
    mask: bool = False  # the pipeline also takes an attention mask
    pooled: str = ""  # config field of a pooled embedding's width (Hunyuan's CLIP-L)
    negative: bool = True  # guidance runs a negative prompt (Hunyuan's is embedded, no second pass)


@dataclass(frozen=True)
class Model:
    name: str
    backbone: str  # spiral.worldmodels.diffusers.backbones name
    hub: str
    pipeline: str
    transformer: tuple[str, dict]  # (diffusers class, config)
    vae: tuple[str, dict]
    scheduler: tuple[str, dict]
    text: Text
    pipeline_config: dict = field(default_factory=dict)
    image_encoder: dict | None = None  # CLIPVisionModelWithProjection config
    tiny: dict = field(default_factory=dict)  # part -> config overrides for --tiny; "size" -> (h, w, frames)


# Text lengths: UMT5 pads to 512, CogVideoX's T5 to 226, LTX's to 128; HunyuanVideo-I2V's Llava gives
# 576 image tokens kept every 4th (144) and 256 text tokens less the 4 of the assistant header.
MODELS = [
    Model(
        "Wan2.1-I2V-14B-480P", "wan-i2v", "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers", "WanImageToVideoPipeline",
        ("WanTransformer3DModel", WAN21_I2V_14B), ("AutoencoderKLWan", WAN21_VAE),
        ("UniPCMultistepScheduler", WAN21_SCHEDULER), Text(512, "text_dim"), image_encoder=CLIP_VIT_H,
        tiny=dict(
            transformer=dict(num_attention_heads=2, attention_head_dim=8, text_dim=16, freq_dim=16, ffn_dim=16, num_layers=1,
                             image_dim=8, added_kv_proj_dim=16, rope_max_seq_len=32),
            vae=dict(base_dim=8, num_res_blocks=1),
            image_encoder=dict(hidden_size=8, intermediate_size=16, num_hidden_layers=2, num_attention_heads=2, image_size=16,
                               patch_size=8, projection_dim=8),
            size=(32, 32, 5),
        ),
    ),
    Model(
        "Wan2.2-TI2V-5B", "wan-i2v", "Wan-AI/Wan2.2-TI2V-5B-Diffusers", "WanImageToVideoPipeline",
        ("WanTransformer3DModel", WAN22_TI2V_5B), ("AutoencoderKLWan", WAN22_VAE),
        ("UniPCMultistepScheduler", WAN22_SCHEDULER), Text(512, "text_dim"), pipeline_config=dict(expand_timesteps=True),
        tiny=dict(
            transformer=dict(num_attention_heads=2, attention_head_dim=8, text_dim=16, freq_dim=16, ffn_dim=16, num_layers=1,
                             rope_max_seq_len=32),
            vae=dict(base_dim=16, decoder_base_dim=16, num_res_blocks=1),
            size=(32, 32, 5),
        ),
    ),
    Model(
        "CogVideoX-5b-I2V", "cogvideox-i2v", "THUDM/CogVideoX-5b-I2V", "CogVideoXImageToVideoPipeline",
        ("CogVideoXTransformer3DModel", COGVIDEOX_5B_I2V), ("AutoencoderKLCogVideoX", COGVIDEOX_VAE),
        ("CogVideoXDDIMScheduler", COGVIDEOX_SCHEDULER), Text(226, "text_embed_dim"),
        tiny=dict(
            # 3D RoPE splits the head dim 2:3:3, each part even; learned embeddings fix the latent size.
            transformer=dict(num_attention_heads=2, attention_head_dim=16, time_embed_dim=4, text_embed_dim=16, num_layers=1,
                             sample_height=4, sample_width=4, sample_frames=9),
            vae=dict(block_out_channels=(8, 8, 8, 8), layers_per_block=1, norm_num_groups=2),
            size=(32, 32, 9),
        ),
    ),
    Model(
        "LTX-Video", "ltx-i2v", "Lightricks/LTX-Video", "LTXImageToVideoPipeline",
        ("LTXVideoTransformer3DModel", LTX_VIDEO), ("AutoencoderKLLTXVideo", LTX_VAE),
        ("FlowMatchEulerDiscreteScheduler", LTX_SCHEDULER), Text(128, "caption_channels", mask=True),
        tiny=dict(
            transformer=dict(num_attention_heads=2, attention_head_dim=8, cross_attention_dim=16, num_layers=1, caption_channels=16),
            vae=dict(block_out_channels=(8, 8, 8, 8), decoder_block_out_channels=(8, 8, 8, 8), layers_per_block=(1, 1, 1, 1, 1),
                     decoder_layers_per_block=(1, 1, 1, 1, 1)),
            size=(32, 32, 9),
        ),
    ),
    Model(
        "HunyuanVideo-I2V", "hunyuan-i2v", "hunyuanvideo-community/HunyuanVideo-I2V", "HunyuanVideoImageToVideoPipeline",
        ("HunyuanVideoTransformer3DModel", HUNYUAN_I2V), ("AutoencoderKLHunyuanVideo", HUNYUAN_VAE),
        ("FlowMatchEulerDiscreteScheduler", HUNYUAN_SCHEDULER),
        Text(252, "text_embed_dim", 144, mask=True, pooled="pooled_projection_dim", negative=False),
        tiny=dict(
            transformer=dict(num_attention_heads=2, attention_head_dim=8, num_layers=1, num_single_layers=1, num_refiner_layers=1,
                             text_embed_dim=16, pooled_projection_dim=8, rope_axes_dim=(2, 2, 4)),
            vae=dict(block_out_channels=(8, 8, 8, 8), layers_per_block=1, norm_num_groups=4),
            size=(32, 32, 5),
        ),
    ),
]  # fmt: skip
PROMPT_TOKENS = 64  # unmasked text tokens where the pipeline takes a mask (the rest is padding)


# ---- building a pipeline with random weights ----------------------------------------------------
def random_module(build, device: str, dtype: torch.dtype) -> nn.Module:
    """Construct with parameters on the meta device (buffers such as RoPE tables and positional
    embeddings are computed for real), then give every parameter cheap random values on `device`:
    variance-preserving normal weights, zero biases, unit norm scales. Minutes of CPU init saved.
    Dtypes as from_pretrained(torch_dtype=dtype) gives them: the class's _keep_in_fp32_modules in
    float32, buffers as built."""
    from accelerate import init_empty_weights

    with init_empty_weights(include_buffers=False):
        module = build()
    keep = getattr(module, "_keep_in_fp32_modules", None) or []
    for prefix, sub in module.named_modules():
        for name, p in list(sub._parameters.items()):
            if p is None:
                continue
            in_fp32 = any(k in f"{prefix}.{name}".split(".") for k in keep)
            value = torch.empty(p.shape, dtype=torch.float32 if in_fp32 else dtype, device=device)
            if p.ndim >= 2:
                value.normal_(0.0, math.prod(p.shape[1:]) ** -0.5)
            else:
                value.fill_(0.0 if "bias" in name else 1.0)
            sub._parameters[name] = nn.Parameter(value, requires_grad=p.requires_grad)
        for name, b in list(sub._buffers.items()):
            if b is not None:
                sub._buffers[name] = b.to(device)
    return module.eval()


def part_config(model: Model, part: str, config: dict, tiny: bool) -> dict:
    return {**config, **model.tiny.get(part, {})} if tiny else config


def build_pipeline(model: Model, args, device: str, dtype: torch.dtype, vae_dtype: torch.dtype):
    """The released pipeline from its published configs, random weights, no text encoders; then the
    memory options, exactly as DiffusersWorldModel.load applies them."""
    import diffusers
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    home = device if args.offload == "none" else "cpu"  # offloading starts from weights in CPU memory
    (t_cls, t_cfg), (v_cls, v_cfg), (s_cls, s_cfg) = model.transformer, model.vae, model.scheduler
    t_cfg, v_cfg = part_config(model, "transformer", t_cfg, args.tiny), part_config(model, "vae", v_cfg, args.tiny)
    parts: dict[str, Any] = dict(
        transformer=random_module(lambda: getattr(diffusers, t_cls)(**t_cfg), home, dtype),
        vae=random_module(lambda: getattr(diffusers, v_cls)(**v_cfg), home, vae_dtype),
        scheduler=getattr(diffusers, s_cls)(**s_cfg),
        text_encoder=None,
        tokenizer=None,
    )
    if model.backbone == "hunyuan-i2v":
        parts.update(text_encoder_2=None, tokenizer_2=None, image_processor=None)
    if model.pipeline == "WanImageToVideoPipeline":
        parts.update(image_encoder=None, image_processor=None)
    if model.image_encoder is not None:
        vision = CLIPVisionConfig(**part_config(model, "image_encoder", model.image_encoder, args.tiny))
        parts["image_encoder"] = random_module(lambda: CLIPVisionModelWithProjection(vision), home, dtype)
        parts["image_processor"] = CLIPImageProcessor(size={"shortest_edge": vision.image_size}, crop_size=vision.image_size)
    pipe = getattr(diffusers, model.pipeline)(**parts, **model.pipeline_config)
    cast_vae_inputs(pipe.vae)
    memory = DiffusersConfig(offload=args.offload, vae_tiling=args.vae_tiling, device=device)
    apply_memory_options(pipe, memory, device, dtype)
    return pipe


def prompt_embeddings(model: Model, pipe, device: str, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Fixed random embeddings of the real shape (batch 1) for the pipeline's prompt_embeds keywords;
    the same at every call, so a rollout's re-evaluation sees the prompt it was sampled with."""
    config, text = pipe.transformer.config, model.text
    generator = torch.Generator().manual_seed(1)
    embeds: dict[str, torch.Tensor] = {}
    tokens = text.image_tokens + text.length
    for prefix in ("", "negative_") if text.negative else ("",):
        embeds[f"{prefix}prompt_embeds"] = torch.randn(1, tokens, config[text.dim], generator=generator)
        if text.mask:
            mask = torch.zeros(1, tokens)
            mask[:, : text.image_tokens + PROMPT_TOKENS] = 1
            embeds[f"{prefix}prompt_attention_mask"] = mask
        if text.pooled:
            embeds[f"{prefix}pooled_prompt_embeds"] = torch.randn(1, config[text.pooled], generator=generator)
    return {k: v.to(device, dtype if "mask" not in k else torch.long) for k, v in embeds.items()}


class StepTimer:
    """callback_on_step_end: the time at the end of each denoising step."""

    def __init__(self, device: str):
        self.device, self.times = device, []

    def __call__(self, pipe, i, t, kwargs) -> dict:
        synchronize(self.device)
        self.times.append(time.perf_counter())
        return {}

    def seconds_per_step(self) -> float | None:
        """Mean over the steps after the first (which also pays for warm-up)."""
        return (self.times[-1] - self.times[0]) / (len(self.times) - 1) if len(self.times) > 1 else None


class RandomPromptWorldModel(DiffusersWorldModel):
    """SPIRAL's adapter with the text encoders' output replaced by fixed random embeddings; `timer`
    (when set) is called at the end of every denoising step."""

    embeds: dict[str, torch.Tensor] = {}
    timer: StepTimer | None = None

    def call_kwargs(self, start, instruction, seeds, num_frames):
        kw = super().call_kwargs(start, instruction, seeds, num_frames)
        del kw["prompt"]
        kw.update({k: v.repeat(len(seeds), *[1] * (v.ndim - 1)) for k, v in self.embeds.items()})
        if self.timer is not None:
            kw["callback_on_step_end"] = self.timer
        return kw


def make_world_model(model: Model, pipe, args, device: str, dtype: torch.dtype) -> RandomPromptWorldModel:
    height, width, frames = model.tiny["size"] if args.tiny else (None, None, None)
    cfg = DiffusersConfig(
        dtype=str(dtype).removeprefix("torch."),
        device=device,
        offload=args.offload,
        vae_tiling=args.vae_tiling,
        height=args.height or height,
        width=args.width or width,
        num_frames=args.frames or frames,
        num_inference_steps=args.steps,
        group_batch_size=args.group_batch_size,
    )
    wm = RandomPromptWorldModel(model.backbone, pipe, cfg)
    wm.embeds = prompt_embeddings(model, pipe, device, dtype)
    return wm


def start_frame(height: int, width: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    frame = np.stack([x, y, 1 - x * y], axis=-1) * 220
    frame[height // 4 : height // 2, width // 4 : width // 2] = (220, 30, 30)
    return frame.astype(np.uint8)


# ---- measuring ----------------------------------------------------------------------------------
def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def reset_peak(device: str) -> None:
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_gb(device: str) -> float | None:
    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.startswith("cuda") else None


def measure_clip(wm, device: str) -> dict:
    """One clip at the model's default size: wall seconds, seconds per denoising step, peak memory."""
    frame = start_frame(wm.height, wm.width)
    wm.timer = StepTimer(device)
    reset_peak(device)
    began = time.perf_counter()
    clip = wm.generate(frame, INSTRUCTION, seed=0)
    synchronize(device)
    seconds = time.perf_counter() - began
    per_step, wm.timer = wm.timer.seconds_per_step(), None
    assert clip.frames.shape[0] == wm.num_frames
    return {
        "clip_seconds": round(seconds, 3),
        "seconds_per_step": per_step and round(per_step, 3),
        "peak_gb_clip": peak_gb(device),
    }


def measure_grpo(wm, args, device: str) -> dict:
    """One GRPO update as `spiral train grpo` makes it for one group: the SDE rollouts of the group,
    then the clipped objective + KL over the trained step(s), backpropagated, and an AdamW step."""
    settings = GRPOSettings()
    policy = DiffusersLoRAPolicy(wm, rank=args.lora_rank, alpha=args.lora_rank, gradient_checkpointing=True)
    optimizer = torch.optim.AdamW(policy.trainable(), lr=1e-5, weight_decay=0.0)
    frame = start_frame(wm.height, wm.width)
    reset_peak(device)
    began = time.perf_counter()
    rollout = policy.rollout(frame, INSTRUCTION, list(range(args.group_size)), settings.noise_level)
    synchronize(device)
    rollout_seconds = time.perf_counter() - began
    rewards = torch.randn(args.group_size, generator=torch.Generator().manual_seed(0))
    advantages = group_advantages(rewards, settings.adv_clip, settings.eps)
    steps = policy.stochastic_steps(rollout)[: args.train_steps]
    began = time.perf_counter()
    grpo_backward(policy, rollout, advantages, steps, settings, scale=1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    synchronize(device)
    return {
        "grpo_rollout_seconds": round(rollout_seconds, 3),
        "grpo_update_seconds": round(time.perf_counter() - began, 3),
        "peak_gb_grpo": peak_gb(device),
        "trained_steps": steps,
        "lora_parameters": sum(p.numel() for p in policy.trainable()),
    }


def is_oom(err: BaseException) -> bool:
    return isinstance(err, torch.OutOfMemoryError) or "out of memory" in str(err).lower()


def measure_model(model: Model, args, device: str, dtype: torch.dtype, vae_dtype: torch.dtype) -> dict:
    """Build, one clip, one GRPO update; an out-of-memory (or other failure) ends the row at its stage."""
    row: dict[str, Any] = {"model": model.name, "backbone": model.backbone, "hub": model.hub, "dtype": str(dtype)[6:]}
    row["vae_dtype"] = str(vae_dtype)[6:]
    stage = "build"
    try:
        pipe = build_pipeline(model, args, device, dtype, vae_dtype)
        row["transformer_params_b"] = round(sum(p.numel() for p in pipe.transformer.parameters()) / 1e9, 3)
        wm = make_world_model(model, pipe, args, device, dtype)
        row.update(height=wm.height, width=wm.width, frames=wm.num_frames, steps=wm.num_inference_steps)
        row.update(guidance_scale=wm.guidance_scale, options=options_text(model, wm, args), offload=args.offload)
        row.update(vae_tiling=args.vae_tiling, group_size=args.group_size, group_batch_size=args.group_batch_size)
        row.update(lora_rank=args.lora_rank)
        stage = "clip"
        row.update(measure_clip(wm, device))
        stage = "grpo"
        row.update(measure_grpo(wm, args, device))
        row["status"] = "ok"
    except Exception as err:  # one backbone's failure must not lose the others' figures
        if is_oom(err):
            row["status"] = f"OOM at {stage}"
        else:
            first = (str(err).strip().splitlines() or [""])[0][:200]
            row["status"] = f"error at {stage}: {type(err).__name__}: {first}"
            traceback.print_exc()
    return row


def options_text(model: Model, wm, args) -> str:
    passes = 2 if model.text.negative and wm.guidance_scale > 1 else 1
    return (
        f"offload {args.offload}, vae tiling {'on' if args.vae_tiling else 'off'}, {passes} pass(es)/step, "
        f"G={args.group_size} x {args.group_batch_size or args.group_size}/call, LoRA r{args.lora_rank}, grad ckpt, "
        f"{args.train_steps} trained step(s)"
    )


# ---- the report ---------------------------------------------------------------------------------
COLUMNS = [
    ("model", "model"), ("size", None), ("frames", "frames"), ("dtype", "dtype"), ("options", "options"),
    ("clip s", "clip_seconds"), ("s/step", "seconds_per_step"), ("peak GB clip", "peak_gb_clip"),
    ("GRPO rollout s", "grpo_rollout_seconds"), ("GRPO update s", "grpo_update_seconds"),
    ("peak GB GRPO", "peak_gb_grpo"), ("status", "status"),
]  # fmt: skip


def table(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(name for name, _ in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        size = f"{row['height']}x{row['width']}" if "height" in row else "-"
        cells = [size if key is None else row.get(key, "-") for _, key in COLUMNS]
        lines.append("| " + " | ".join("-" if c is None else str(c) for c in cells) + " |")
    return "\n".join(lines)


def select(names: str) -> list[Model]:
    """Backbone names (wan-i2v covers both Wan models) or model names, comma-separated."""
    chosen = []
    for name in (n.strip().lower() for n in names.split(",") if n.strip()):
        found = [m for m in MODELS if name in (m.backbone, m.name.lower())]
        if not found:
            known = sorted({m.backbone for m in MODELS} | {m.name for m in MODELS})
            raise SystemExit(f"gpu_real_shapes: unknown backbone or model {name!r}; known: {', '.join(known)}")
        chosen += [m for m in found if m not in chosen]
    return chosen


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbones", default=",".join(m.name for m in MODELS), help="backbone or model names, comma-separated")
    parser.add_argument("--frames", type=int, default=None, help="num_frames (default: the model's own)")
    parser.add_argument("--steps", type=int, default=4, help="num_inference_steps of the clip and the rollouts")
    parser.add_argument("--height", type=int, default=None)
    parser.add_argument("--width", type=int, default=None)
    parser.add_argument("--offload", default="none", choices=("none", "model", "sequential", "group"))
    parser.add_argument("--vae-tiling", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--group-batch-size", type=int, default=1, help="group members per pipeline call (0 = all)")
    parser.add_argument("--lora-rank", type=int, default=16)
    parser.add_argument("--train-steps", type=int, default=1, help="stochastic denoising steps trained in the update")
    parser.add_argument(
        "--dtype", default="auto", choices=("auto", "bfloat16", "float16", "float32"), help="auto: bfloat16 on CUDA"
    )
    parser.add_argument("--vae-dtype", default="float32", choices=("bfloat16", "float16", "float32"))
    parser.add_argument("--tiny", action="store_true", help="scaled-down configs: a smoke run of this code on any device")
    parser.add_argument("--out", type=Path, default=Path("out/gpu_real_shapes.json"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    models = select(args.backbones)
    if not torch.cuda.is_available() and not args.tiny:
        print(
            "gpu_real_shapes: needs a CUDA GPU to measure clip and GRPO-update seconds and peak memory of "
            f"{', '.join(m.name for m in models)} at their real configurations; none here, nothing run "
            "(--tiny runs the code on scaled-down configs)."
        )
        return 0
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = getattr(torch, args.dtype if args.dtype != "auto" else "bfloat16" if device == "cuda" else "float32")
    vae_dtype = getattr(torch, args.vae_dtype)
    card = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    rows = []
    for model in models:
        print(f"{model.name}: building{' (tiny)' if args.tiny else ''} on {card} ...", file=sys.stderr, flush=True)
        rows.append(measure_model(model, args, device, dtype, vae_dtype))
        print(f"{model.name}: {rows[-1]['status']}", file=sys.stderr, flush=True)
        reset_peak(device)  # the last model's weights go before the next one is built
    report = {
        "device": card,
        "torch": torch.__version__,
        "diffusers": __import__("diffusers").__version__,
        "tiny": args.tiny,
        "weights": "random (published configs, no checkpoint)",
        "text_encoders": "not built: random prompt_embeds of the real shape are passed to the pipelines",
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    configs = "tiny configs" if args.tiny else "real configs, random weights"
    print(f"{configs} on {card}; text encoders replaced by random prompt_embeds of the real shape")
    print(table(rows))
    print(f"written to {args.out}")
    return 1 if args.tiny and any(r["status"] != "ok" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
