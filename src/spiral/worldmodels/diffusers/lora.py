"""LoRA adapters in the format diffusers' `load_lora_weights` reads: a folder holding
`pytorch_lora_weights.safetensors` for the pipeline's `transformer` (keys `transformer.<module>.lora_A.weight`,
with the adapter's rank and alpha in the file's metadata) and, for a Wan2.2 A14B pipeline, the
low-noise expert's adapter as `transformer_2.safetensors`, plus `card.json` saying what made it.

`spiral train grpo` exports this way, and `--world-model-options lora=FOLDER` (or any diffusers
tool) loads it onto a fresh pipeline.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from spiral.errors import SpiralError
from spiral.worldmodels.diffusers.memory import denoisers

WEIGHT_NAMES = {"transformer": "pytorch_lora_weights.safetensors", "transformer_2": "transformer_2.safetensors"}
ADAPTER_NAME = "spiral"


def export_lora(pipe: Any, adapter: str, folder: Path, card: dict) -> Path:
    """Write the adapter named `adapter` of every denoiser of `pipe` to `folder`, atomically (a
    reader sees the old folder or the new one, never half of one)."""
    from peft.utils import get_peft_model_state_dict

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        for name, module in denoisers(pipe).items():
            state = get_peft_model_state_dict(module, adapter_name=adapter)
            config = module.peft_config[adapter].to_dict()
            config["target_modules"] = sorted(config["target_modules"])  # a set in peft's config: not JSON
            type(pipe).save_lora_weights(
                tmp, transformer_lora_layers=state, weight_name=WEIGHT_NAMES[name], transformer_lora_adapter_metadata=config
            )
        (tmp / "card.json").write_text(json.dumps(card, indent=2, default=str) + "\n")
        old = folder.with_name(f".{folder.name}.old")
        if folder.exists():
            os.replace(folder, old)
        os.replace(tmp, folder)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def load_exported_lora(pipe: Any, path: str | Path, scale: float = 1.0) -> None:
    """Load an exported adapter (its folder, or the transformer's .safetensors file) and switch it on at `scale`."""
    path = Path(path).expanduser()
    folder, first = (path.parent, path.name) if path.is_file() else (path, WEIGHT_NAMES["transformer"])
    if not (folder / first).is_file():
        raise SpiralError(f"no LoRA weights at {path}: give the folder `spiral train grpo` exported, or its {first}")
    try:
        pipe.load_lora_weights(str(folder), weight_name=first, adapter_name=ADAPTER_NAME)
        second = folder / WEIGHT_NAMES["transformer_2"]
        if second.is_file():
            if getattr(pipe, "transformer_2", None) is None:
                raise SpiralError(f"{folder} holds an adapter for transformer_2, which this pipeline does not have")
            pipe.load_lora_weights(str(folder), weight_name=second.name, adapter_name=ADAPTER_NAME, load_into_transformer_2=True)
        pipe.set_adapters([ADAPTER_NAME], [scale])
    except (ValueError, KeyError, RuntimeError) as err:
        raise SpiralError(f"cannot load the LoRA at {path} onto this pipeline: {str(err).splitlines()[0][:200]}") from None
