"""Prompt templates for the model-backed agents, kept in `agents/prompts/*.yaml` (never in code).

A template names its slots as `{goal}`, `{memory}`, ...; only `{identifier}` slots are filled, so
JSON examples inside a template need no brace doubling. A slot without a value is an error (it is
almost always a typo in a hand-edited template).

    prompt = load_prompt("plan")            # or load_prompt("my_prompts/plan.yaml")
    messages = prompt.messages(images=[frame], goal=..., memory=..., objects=..., schema=...)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import yaml

from spiral.errors import SpiralError

_SLOT = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_KEYS = ("system", "user", "repair", "no_image")


@dataclass(frozen=True, eq=False)  # eq=False: numpy images do not compare to a single bool
class Message:
    """One chat turn. Images are (H, W, 3) uint8 frames shown after the text, in order."""

    role: str  # "system" | "user" | "assistant"
    text: str
    images: tuple[np.ndarray, ...] = field(default=())


@dataclass(frozen=True)
class Prompt:
    """One agent role's texts. `repair` asks the model to fix an unusable answer ({error});
    `no_image` stands in for an image when a model reads text only ({index})."""

    name: str
    system: str = ""
    user: str = ""
    repair: str = ""
    no_image: str = ""

    def fill(self, part: str, **values: object) -> str:
        template = getattr(self, part)
        missing = sorted({m for m in _SLOT.findall(template) if m not in values})
        if missing:
            raise SpiralError(f"prompt {self.name!r} ({part}) has slots without a value: {', '.join(missing)}")
        return _SLOT.sub(lambda m: str(values[m.group(1)]), template)

    def messages(self, images: tuple[np.ndarray, ...] | list[np.ndarray] = (), **values: object) -> list[Message]:
        """The opening conversation: the system text and the user text with the images attached."""
        out = [Message("system", self.fill("system", **values))] if self.system else []
        return out + [Message("user", self.fill("user", **values), tuple(images))]


def available_prompts() -> list[str]:
    folder = resources.files("spiral.agents") / "prompts"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


@lru_cache(maxsize=32)
def load_prompt(name: str) -> Prompt:
    """A shipped prompt by role name ("plan", "critic", "chat") or a YAML file by path."""
    if name.endswith((".yaml", ".yml")):
        path = Path(name)
        if not path.is_file():
            raise SpiralError(f"prompt file {path} does not exist")
        text, label = path.read_text(encoding="utf-8"), str(path)
    else:
        res = resources.files("spiral.agents") / "prompts" / f"{name}.yaml"
        if not res.is_file():
            raise SpiralError(f"unknown prompt {name!r}; shipped prompts: {', '.join(available_prompts())}")
        text, label = res.read_text(encoding="utf-8"), name
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise SpiralError(f"prompt {label} is not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise SpiralError(f"prompt {label} must be a YAML mapping with keys among {', '.join(_KEYS)}")
    unknown = sorted(set(data) - set(_KEYS))
    if unknown:
        raise SpiralError(f"prompt {label} has unknown keys {', '.join(unknown)}; allowed: {', '.join(_KEYS)}")
    for key, value in data.items():
        if not isinstance(value, str):
            raise SpiralError(f"prompt {label}: {key!r} must be text, got {type(value).__name__}")
    return Prompt(name=label, **data)
