"""Where a loaded pipeline's weights live and in what form: the device, offloading, layerwise
casting, VAE tiling and slicing, torch.compile. Each maps to one diffusers call; a missing package
or an option the pipeline cannot take is a one-line error naming the option."""

from __future__ import annotations

from typing import Any

import torch

from spiral.errors import SpiralError
from spiral.worldmodels.diffusers.options import STORAGE_DTYPES, dtype_name

OFFLOADS = ("none", "model", "sequential", "group")
DENOISERS = ("transformer", "transformer_2")


def denoisers(pipe: Any) -> dict[str, torch.nn.Module]:
    """The pipeline's denoiser(s): `transformer`, and `transformer_2` (Wan2.2 A14B's low-noise expert)."""
    return {n: m for n in DENOISERS if (m := getattr(pipe, n, None)) is not None}


def apply_memory_options(pipe: Any, cfg: Any, device: str, dtype: torch.dtype) -> None:
    """`cfg` is a DiffusersConfig. Layerwise casting goes first: offloading hooks must see the
    weights in their stored form."""
    if cfg.layerwise_casting:
        storage = STORAGE_DTYPES[dtype_name(cfg.layerwise_casting, "layerwise_casting", tuple(STORAGE_DTYPES))]
        for module in denoisers(pipe).values():
            module.enable_layerwise_casting(storage_dtype=storage, compute_dtype=dtype)
    try:
        if cfg.offload == "model":
            pipe.enable_model_cpu_offload(device=device)
        elif cfg.offload == "sequential":
            pipe.enable_sequential_cpu_offload(device=device)
        elif cfg.offload == "group":
            on_cuda = device.startswith("cuda")
            pipe.enable_group_offload(
                onload_device=torch.device(device),
                offload_type="leaf_level" if on_cuda else "block_level",
                num_blocks_per_group=None if on_cuda else 1,
                use_stream=on_cuda,  # overlap the next group's transfer with this one's compute
            )
        else:
            pipe.to(device)
    except ImportError as err:
        raise SpiralError(f"offload={cfg.offload} needs accelerate: pip install accelerate ({err})") from None
    except (ValueError, RuntimeError) as err:
        raise SpiralError(f"offload={cfg.offload} failed on {device}: {str(err).splitlines()[0][:200]}") from None
    if cfg.vae_tiling:
        pipe.vae.enable_tiling()
    if cfg.vae_slicing:
        pipe.vae.enable_slicing()
    if cfg.compile:
        for module in denoisers(pipe).values():
            module.compile()
