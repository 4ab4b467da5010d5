"""One typed config per thing: a dataclass whose fields carry their help text once.

The CLI options are generated from the dataclass (`add_config_args` / `config_from_args`), so a
default or a help string is never written twice. A field that holds another config (`group`) adds
that config's fields as flags of their own, so settings several commands share (the backends) are
written once and still read as flat flags (`--planner`, not `--backends.planner`).
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


def group(cls: type[T]) -> T:
    """A field holding another config (its defaults unless given); its fields become flags of the command."""
    return dataclasses.field(default_factory=cls)


def option_from(cls: type, name: str) -> Any:
    """A field of `cls` again, in a config that exposes only some of its settings: the default,
    help and choices stay written once, in `cls`."""
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    return dataclasses.field(default=f.default, metadata=dict(f.metadata))


def _groups(cls: type) -> dict[str, type]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if dataclasses.is_dataclass(hints[f.name])}


def add_config_args(parser: argparse.ArgumentParser, cls: type) -> None:
    hints, groups = typing.get_type_hints(cls), _groups(cls)
    for f in dataclasses.fields(cls):
        if f.name in groups:
            add_config_args(parser, groups[f.name])
            continue
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
    groups = _groups(cls)
    return cls(**{f.name: config_from_args(groups[f.name], ns) if f.name in groups else getattr(ns, f.name)
                  for f in dataclasses.fields(cls)})  # fmt: skip


def config_from_flat(cls: type[T], **values: Any) -> T:
    """A config from settings named as their flags are (a group's fields among them), as the
    command line builds it: what is left out keeps its default."""
    groups, names = _groups(cls), {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - _flat_names(cls)
    if unknown:
        raise TypeError(f"{cls.__name__} has no setting {', '.join(sorted(unknown))}")
    kwargs = {name: config_from_flat(kind, **{k: v for k, v in values.items() if k in _flat_names(kind)})
              for name, kind in groups.items()}  # fmt: skip
    return cls(**kwargs, **{k: v for k, v in values.items() if k in names})


def _flat_names(cls: type) -> set[str]:
    groups = _groups(cls)
    return {n for f in dataclasses.fields(cls) for n in (_flat_names(groups[f.name]) if f.name in groups else {f.name})}


def flat_settings(cfg: object) -> dict[str, Any]:
    """A config's settings as one flat dict, named as their flags are (a group's fields at the top)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        out |= flat_settings(value) if dataclasses.is_dataclass(value) else {f.name: value}
    return out


def without_retired(values: dict[str, Any], retired: dict[str, Any], what: str) -> dict[str, Any]:
    """`values` less the `retired` settings: those that have one value now, which `retired` gives.
    Weights files and run folders may still record them; that value changes nothing, but any other
    made something this code cannot rebuild, so it is refused."""
    for key, kept in retired.items():
        if key in values and values[key] != kept:
            raise SpiralError(
                f"{what} has {key} = {values[key]!r}, a setting this version fixes at {kept!r}; "
                "the commit tagged rejected-variants still has the others"
            )
    return {k: v for k, v in values.items() if k not in retired}


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
