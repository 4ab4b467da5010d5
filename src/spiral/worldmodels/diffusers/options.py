"""`--world-model-options` for diffusers backbones: text values typed by DiffusersConfig's fields and
checked before any model loads, so `vae_tiling=False` is off, `dtype=bf16` is bfloat16 and a typo
fails in one line naming the option.

Keys of the form `pipeline.NAME=VALUE` go to the pipeline call as keyword arguments
(`pipeline.max_sequence_length=226`, `pipeline.last_image=end.png` for Wan's first-last-frame
form); a value that names an image file, for a keyword whose name holds "image", is read as an image.
"""

from __future__ import annotations

import dataclasses
import json
import re
import typing
from pathlib import Path
from typing import Any

import torch
from PIL import Image, UnidentifiedImageError

from spiral.errors import SpiralError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
DTYPE_ALIASES = {"fp32": "float32", "float": "float32", "bf16": "bfloat16", "fp16": "float16", "half": "float16"}
# Storage dtypes diffusers' layerwise casting keeps weights in (computing in the model's dtype).
STORAGE_DTYPES = {"float8_e4m3fn": torch.float8_e4m3fn, "float8_e5m2": torch.float8_e5m2, **DTYPES}
TRUE, FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?|xpu(:\d+)?)$")
PIPELINE_PREFIX = "pipeline."


def dtype_name(value: str, option: str, allowed: tuple[str, ...]) -> str:
    name = DTYPE_ALIASES.get(value.lower(), value.lower())
    if name not in allowed:
        raise SpiralError(f"option {option}={value!r} is not a dtype this takes; use one of {', '.join(allowed)}")
    return name


def _bool(value: Any, option: str) -> bool:
    text = str(value).strip().lower()
    if isinstance(value, bool) or text in TRUE + FALSE:
        return value if isinstance(value, bool) else text in TRUE
    raise SpiralError(f"option {option}={value!r} takes true or false")


def _number(value: Any, option: str, kind: type) -> int | float:
    try:
        number = kind(value)
    except (TypeError, ValueError):
        number = None
    if number is None or (kind is int and float(value) != number):
        raise SpiralError(f"option {option}={value!r} takes {'an integer' if kind is int else 'a number'}")
    return number


def _pipeline_value(name: str, value: Any) -> Any:
    """A pipeline keyword's value from text: JSON where it reads as JSON (numbers, true, lists),
    an image where the keyword is an image and the text names an image file, else the text."""
    if not isinstance(value, str):
        return value
    if "image" in name and value.lower().endswith(IMAGE_SUFFIXES):
        try:
            with Image.open(Path(value).expanduser()) as image:
                return image.convert("RGB")
        except (FileNotFoundError, UnidentifiedImageError, OSError) as err:
            raise SpiralError(f"option {PIPELINE_PREFIX}{name}: cannot read the image {value}: {err}") from None
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def typed_options(cls: type, options: dict[str, Any]) -> dict[str, Any]:
    """Options as given (text or already typed) -> values of `cls`'s field types; unknown names and
    values of the wrong kind raise SpiralError naming the option. Choices are `cls`'s to check."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    typed: dict[str, Any] = {}
    pipeline = dict(options.get("pipeline_kwargs") or {})
    for key, value in options.items():
        if key == "pipeline_kwargs":
            continue
        if key.startswith(PIPELINE_PREFIX) and len(key) > len(PIPELINE_PREFIX):
            name = key[len(PIPELINE_PREFIX) :]
            pipeline[name] = _pipeline_value(name, value)
            continue
        if key not in fields:
            known = ", ".join(sorted(set(fields) - {"pipeline_kwargs"}))
            raise SpiralError(
                f"unknown diffusers option {key!r}; known options: {known}, or pipeline.NAME=VALUE for the pipeline call"
            )
        kind = hints[key]
        optional = type(None) in typing.get_args(kind)
        base = next((t for t in typing.get_args(kind) if t is not type(None)), kind)
        if optional and (value is None or str(value).lower() in ("none", "")):
            typed[key] = None
        elif base is bool:
            typed[key] = _bool(value, key)
        elif base in (int, float):
            typed[key] = _number(value, key, base)
        else:
            typed[key] = str(value)
    if pipeline:
        typed["pipeline_kwargs"] = pipeline
    return typed


def check_device(device: str) -> str:
    if not DEVICE.match(device):
        raise SpiralError(f"option device={device!r} is not a device; use auto, cpu, cuda or cuda:N")
    return device
