"""Tiny randomly initialised diffusers pipelines, built in code and fully offline.

Tokenizers are word-level vocabularies made with the `tokenizers` library; text and image encoders
are transformers models from tiny configs. Nothing touches the Hub.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from tokenizers import Tokenizer, models, pre_tokenizers  # noqa: E402
from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel, UMT5Config, UMT5EncoderModel  # noqa: E402

SPECIALS = ["<pad>", "</s>", "<unk>"]
COLOURS = ["red", "green", "blue", "yellow"]
WORDS = [*SPECIALS, *COLOURS, "move", "put", "the", "square", "circle", "triangle", "to", "on", "of", "left", "right", "side"]
INSTRUCTION = "move the red square to the left side"


def tokenizer() -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def t5(dim: int = 16, umt5: bool = False):
    cfg_cls, model_cls = (UMT5Config, UMT5EncoderModel) if umt5 else (T5Config, T5EncoderModel)
    cfg = cfg_cls(
        vocab_size=len(WORDS), d_model=dim, d_kv=4, num_heads=2, num_layers=1, d_ff=16, relative_attention_num_buckets=8
    )
    return model_cls(cfg)


def start_frame(size: int = 32, seed: int = 0) -> np.ndarray:
    """A smooth image with some structure (random noise would make every VAE look the same)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    frame = np.stack([x, y, 1 - x * y], axis=-1) * 200 + rng.integers(0, 40, (size, size, 3))
    frame[size // 4 : size // 2, size // 4 : size // 2] = (220, 30, 30)
    return frame.astype(np.uint8)


def _finish(pipe):
    for module in pipe.components.values():
        if isinstance(module, torch.nn.Module):
            module.eval()  # built in code, models start in training mode (dropout on)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def tiny_wan(image_encoder: bool = True, seed: int = 0):
    """Wan2.1-style I2V (CLIP image encoder; image_encoder=False gives the Wan2.2 layout)."""
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanImageToVideoPipeline, WanTransformer3DModel
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(seed)
    vision = CLIPVisionConfig(
        hidden_size=8, intermediate_size=16, num_hidden_layers=2, num_attention_heads=2, image_size=16, patch_size=8
    )
    z = 4
    return _finish(
        WanImageToVideoPipeline(
            tokenizer=tokenizer(),
            text_encoder=t5(16, umt5=True),
            vae=AutoencoderKLWan(
                base_dim=8, z_dim=z, dim_mult=[1, 1, 1, 1], num_res_blocks=1, latents_mean=[0.0] * z, latents_std=[1.0] * z
            ),
            scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
            image_processor=CLIPImageProcessor(crop_size=16, size=16) if image_encoder else None,
            image_encoder=CLIPVisionModel(vision) if image_encoder else None,
            transformer=WanTransformer3DModel(
                patch_size=(1, 2, 2),
                num_attention_heads=2,
                attention_head_dim=8,
                in_channels=2 * z + 4,  # noise + image latents + the 4-channel first-frame mask
                out_channels=z,
                text_dim=16,
                freq_dim=16,
                ffn_dim=16,
                num_layers=1,
                image_dim=8 if image_encoder else None,
                rope_max_seq_len=32,
            ),
        )
    )


def tiny_wan22(layout: str, seed: int = 0):
    """The Wan2.2 layouts: "ti2v" (TI2V-5B: the start frame's latent stands in for the noise of the
    first latent frame, `expand_timesteps`) or "a14b" (I2V-A14B: a low-noise expert `transformer_2`
    below `boundary_ratio`)."""
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanImageToVideoPipeline, WanTransformer3DModel

    torch.manual_seed(seed)
    z = 4

    def transformer(in_channels: int):
        return WanTransformer3DModel(
            patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=8, in_channels=in_channels, out_channels=z,
            text_dim=16, freq_dim=16, ffn_dim=16, num_layers=1, rope_max_seq_len=32,
        )  # fmt: skip

    parts = dict(
        tokenizer=tokenizer(),
        text_encoder=t5(16, umt5=True),
        vae=AutoencoderKLWan(
            base_dim=8, z_dim=z, dim_mult=[1, 1, 1, 1], num_res_blocks=1, latents_mean=[0.0] * z, latents_std=[1.0] * z
        ),
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
    )
    if layout == "ti2v":
        return _finish(WanImageToVideoPipeline(**parts, transformer=transformer(z), expand_timesteps=True))
    experts = dict(transformer=transformer(2 * z + 4), transformer_2=transformer(2 * z + 4), boundary_ratio=0.9)
    return _finish(WanImageToVideoPipeline(**parts, **experts))


def _ltx_parts():
    from diffusers import AutoencoderKLLTXVideo, FlowMatchEulerDiscreteScheduler, LTXVideoTransformer3DModel

    vae = AutoencoderKLLTXVideo(
        latent_channels=8,
        block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8),
        layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1, 1),
        spatio_temporal_scaling=(True, True, False, False),
        decoder_spatio_temporal_scaling=(True, True, False, False),
        decoder_inject_noise=(False, False, False, False, False),
        upsample_residual=(False, False, False, False),
        upsample_factor=(1, 1, 1, 1),
        patch_size=1,
        patch_size_t=1,
    )
    vae.use_framewise_encoding = vae.use_framewise_decoding = False
    transformer = LTXVideoTransformer3DModel(
        in_channels=8,
        out_channels=8,
        num_attention_heads=2,
        attention_head_dim=8,
        cross_attention_dim=16,
        num_layers=1,
        caption_channels=16,
    )
    return dict(
        scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=t5(16), tokenizer=tokenizer(), transformer=transformer
    )


def tiny_ltx(condition: bool = False, seed: int = 0):
    from diffusers import LTXConditionPipeline, LTXImageToVideoPipeline

    torch.manual_seed(seed)
    return _finish((LTXConditionPipeline if condition else LTXImageToVideoPipeline)(**_ltx_parts()))


def tiny_cogvideox(seed: int = 0):
    from diffusers import (
        AutoencoderKLCogVideoX,
        CogVideoXDDIMScheduler,
        CogVideoXImageToVideoPipeline,
        CogVideoXTransformer3DModel,
    )

    torch.manual_seed(seed)
    return _finish(
        CogVideoXImageToVideoPipeline(
            tokenizer=tokenizer(),
            text_encoder=t5(16),
            vae=AutoencoderKLCogVideoX(
                down_block_types=("CogVideoXDownBlock3D",) * 4,
                up_block_types=("CogVideoXUpBlock3D",) * 4,
                block_out_channels=(8, 8, 8, 8),
                latent_channels=4,
                layers_per_block=1,
                norm_num_groups=2,
                temporal_compression_ratio=4,
            ),
            transformer=CogVideoXTransformer3DModel(
                num_attention_heads=2,
                attention_head_dim=16,  # 3D RoPE splits it 2:3:3, each part even
                in_channels=8,  # noise + image latents
                out_channels=4,
                time_embed_dim=4,
                text_embed_dim=16,
                num_layers=1,
                sample_width=4,
                sample_height=4,
                sample_frames=5,
                patch_size=2,
                temporal_compression_ratio=4,
                use_rotary_positional_embeddings=True,
            ),
            scheduler=CogVideoXDDIMScheduler(
                prediction_type="v_prediction", rescale_betas_zero_snr=True, timestep_spacing="trailing"
            ),
        )
    )


# HunyuanVideo I2V encodes the prompt with a Llava model over a chat template holding the image;
# this template has the default one's structure (three header blocks, <image> in the system block)
# with few tokens, and image_emb_len matches the tiny vision tower's 4 patches.
HUNYUAN_SPECIALS = ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<image>"]
HUNYUAN_TEMPLATE = {
    "template": (
        "<|start_header_id|>system<|end_header_id|>\n\n<image>\ndescribe the video<|eot_id|>\n\n"
        "<|start_header_id|>user<|end_header_id|>\n\n{}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
    ),
    "crop_start": 11,  # tokens before the user's text
    "image_emb_start": 3,
    "image_emb_end": 7,
    "image_emb_len": 4,
}


def tiny_hunyuan(seed: int = 0):
    from diffusers import (
        AutoencoderKLHunyuanVideo,
        FlowMatchEulerDiscreteScheduler,
        HunyuanVideoImageToVideoPipeline,
        HunyuanVideoTransformer3DModel,
    )
    from transformers import (
        CLIPImageProcessor,
        CLIPTextConfig,
        CLIPTextModel,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
    )

    torch.manual_seed(seed)
    words = WORDS + ["system", "user", "assistant", "describe", "video"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    llama_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", additional_special_tokens=HUNYUAN_SPECIALS
    )
    vocab = len(llama_tok)
    vision = CLIPVisionConfig(
        hidden_size=8, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2, image_size=16, patch_size=8
    )
    text = LlamaConfig(
        vocab_size=vocab, hidden_size=16, intermediate_size=32, num_hidden_layers=3, num_attention_heads=2, num_key_value_heads=2
    )
    llava_cfg = LlavaConfig(vision_config=vision, text_config=text, image_token_index=llama_tok.convert_tokens_to_ids("<image>"))
    llava_cfg.pad_token_id = 0
    clip_text = CLIPTextConfig(
        vocab_size=vocab, hidden_size=8, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2, eos_token_id=1
    )
    z = 4
    return _finish(
        HunyuanVideoImageToVideoPipeline(
            text_encoder=LlavaForConditionalGeneration(llava_cfg),
            tokenizer=llama_tok,
            transformer=HunyuanVideoTransformer3DModel(
                in_channels=2 * z + 1,  # noise + image latents + mask ("latent_concat")
                out_channels=z,
                num_attention_heads=2,
                attention_head_dim=8,
                num_layers=1,
                num_single_layers=1,
                num_refiner_layers=1,
                patch_size=2,
                text_embed_dim=16,
                pooled_projection_dim=8,
                rope_axes_dim=(2, 2, 4),
                guidance_embeds=False,
                image_condition_type="latent_concat",
            ),
            vae=AutoencoderKLHunyuanVideo(
                latent_channels=z, block_out_channels=(8, 8, 8, 8), layers_per_block=1, norm_num_groups=4
            ),
            scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0),
            text_encoder_2=CLIPTextModel(clip_text),
            tokenizer_2=tokenizer(),
            image_processor=CLIPImageProcessor(crop_size=16, size=16),
        )
    )
