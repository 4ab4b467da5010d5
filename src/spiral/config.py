"""One typed config per thing: a dataclass whose fields carry their help text once.

The CLI options are generated from the dataclass (`add_config_args` / `config_from_args`), so a
default or a help string is never written twice.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from pathlib import Path
from typing import Any, TypeVar

from spiral.errors import SpiralError

T = TypeVar("T")


def option(default: Any, help: str, **extra: Any) -> Any:  # noqa: A002 - mirrors argparse's name
    """A dataclass field with its CLI help text (and optional argparse `choices`)."""
    return dataclasses.field(default=default, metadata={"help": help, **extra})


def required(help: str) -> Any:  # noqa: A002
    return dataclasses.field(metadata={"help": help, "required": True})


def add_config_args(parser: argparse.ArgumentParser, cls: type) -> None:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        flag = "--" + f.name.replace("_", "-")
        kwargs: dict[str, Any] = {"help": f.metadata.get("help", ""), "dest": f.name}
        if "choices" in f.metadata:
            kwargs["choices"] = f.metadata["choices"]
        if f.metadata.get("required"):
            kwargs["required"] = True
        else:
            kwargs["default"] = f.default
            kwargs["help"] += f" (default: {f.default})"
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
            continue
        base = next((t for t in typing.get_args(kind) if t is not type(None)), kind)
        parser.add_argument(flag, type=base if base in (int, float, str, Path) else str, **kwargs)


def config_from_args(cls: type[T], ns: argparse.Namespace) -> T:
    return cls(**{f.name: getattr(ns, f.name) for f in dataclasses.fields(cls)})


def parse_key_values(text: str, flag: str) -> dict[str, int | float | str]:
    """'height=480,device=cuda' -> {'height': 480, 'device': 'cuda'} (numbers become numbers); `flag`
    names the option in the error a malformed item gets."""
    options: dict[str, int | float | str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SpiralError(f"bad {flag} item {item!r}: write KEY=VALUE,... e.g. {flag} 'guidance_scale=3'")
        options[key.strip()] = _number_or_text(value.strip())
    return options


def _number_or_text(value: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value
