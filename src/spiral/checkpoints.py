"""Training checkpoints and weight exports in safetensors (never pickle), shared by every trainer.

Optimizer state is flattened to tensors named `opt.<param index>.<field>`, with its param groups as
JSON metadata, so AdamW moments survive a resume exactly.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import save_file


def optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], str]:
    """(tensors, param_groups as JSON) for `opt`'s state."""
    state = opt.state_dict()
    tensors = {}
    for i, s in state["state"].items():
        tensors |= {f"opt.{i}.{k}": (v if torch.is_tensor(v) else torch.tensor(v)) for k, v in s.items()}
    return tensors, json.dumps(state["param_groups"])


def restore_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], param_groups: str) -> None:
    state: dict = {"state": {}, "param_groups": json.loads(param_groups)}
    for k, v in tensors.items():
        if k.startswith("opt."):
            _, i, name = k.split(".", 2)
            state["state"].setdefault(int(i), {})[name] = v
    opt.load_state_dict(state)


def prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors saved under `prefix.`, with the prefix taken off (a module's state dict)."""
    return {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")}


def save_atomic(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Write to a temporary file and rename it into place, so a kill never leaves half a file."""
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)
    os.replace(tmp, path)


def trim_log(path: Path, key: str, last: int) -> None:
    """Drop the records of a JSONL log whose `key` (step, iteration) is past `last`, the checkpoint
    a run resumes from: it redoes them, and they would otherwise appear twice."""
    if path.is_file():
        kept = [line for line in path.read_text().splitlines() if line and json.loads(line)[key] <= last]
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(line + "\n" for line in kept))
        os.replace(tmp, path)


def export_half(path: Path, net: torch.nn.Module, config: dict, info: dict) -> None:
    """float16 weights (half the size of a shipped asset; loaders cast back to float32) with the
    network's config and how the weights were made as metadata."""
    meta = {"config": json.dumps(config)} | {k: str(v) for k, v in info.items()}
    save_file({k: v.detach().cpu().half().contiguous() for k, v in net.state_dict().items()}, str(path), metadata=meta)
