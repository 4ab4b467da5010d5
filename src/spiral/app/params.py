"""What the page may ask for, checked: a run's parameters and an uploaded start image. Anything
else in a request is refused with a one-line message the page shows as it is."""

from __future__ import annotations

import io
import json
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image

from spiral.app.config import PAGE_CRITICS, PAGE_PLANNERS, UPLOAD_BYTES, UPLOAD_SIDE
from spiral.loop import METHODS, LoopConfig

GOAL_CHARS = 500
# (least, most, default) of each number the page sends; the loop's own defaults where it has one.
NUMBERS = {
    "max_tries": (1, 10, LoopConfig.max_tries),
    "max_replans": (0, 10, LoopConfig.max_replans),
    "max_generations": (1, 100, LoopConfig.max_generations),
    "scene_seed": (0, 2**31 - 1, 0),
}
CHOICES = {"method": METHODS, "planner": PAGE_PLANNERS, "critic": PAGE_CRITICS}
UPLOAD_ID = re.compile(r"[0-9a-f]{32}")


class ParamError(ValueError):
    """A request the page should not have sent; its text is shown in the page."""


@dataclass(frozen=True)
class RunParams:
    goal: str
    method: str
    planner: str
    critic: str
    max_tries: int
    max_replans: int
    max_generations: int
    scene_seed: int | None = None
    upload: str | None = None  # id of an accepted upload (see save_upload)

    def to_dict(self) -> dict:
        return asdict(self)


def options() -> dict:
    """What the page offers: the choices, the number ranges and defaults, the upload limits."""
    return {
        "choices": {k: list(v) for k, v in CHOICES.items()},
        "defaults": {"method": METHODS[0], "planner": PAGE_PLANNERS[0], "critic": PAGE_CRITICS[0]}
        | {k: v[2] for k, v in NUMBERS.items()},
        "ranges": {k: [v[0], v[1]] for k, v in NUMBERS.items()},
        "upload": {"bytes": UPLOAD_BYTES, "side": UPLOAD_SIDE},
        "goal_chars": GOAL_CHARS,
    }


def parse_run_params(body: object) -> RunParams:
    if not isinstance(body, dict):
        raise ParamError("send the run's parameters as a JSON object")
    known = {"goal", "scene_seed", "upload", *CHOICES, *NUMBERS}
    unknown = sorted(str(k) for k in body if k not in known)
    if unknown:
        raise ParamError(f"unknown parameter {unknown[0]!r}: the page sends only {', '.join(sorted(known))}")
    goal = body.get("goal")
    if not isinstance(goal, str) or not goal.strip():
        raise ParamError("write a goal, e.g. 'put the red square on the blue circle'")
    goal = goal.strip()
    if len(goal) > GOAL_CHARS:
        raise ParamError(f"the goal is {len(goal)} characters long: keep it under {GOAL_CHARS}")
    if any(ord(c) < 32 or ord(c) == 127 for c in goal):
        raise ParamError("the goal holds control characters (a tab or a line break?): write it on one line")
    picked = {}
    for name, allowed in CHOICES.items():
        value = body.get(name, options()["defaults"][name])
        if value not in allowed:
            raise ParamError(f"{name} must be one of {', '.join(allowed)}, got {shown(value)}")
        picked[name] = value
    numbers = {name: _number(body, name) for name in ("max_tries", "max_replans", "max_generations")}
    seed, upload = body.get("scene_seed"), body.get("upload")
    if (seed is None) == (upload is None):
        raise ParamError("pick a start: a tabletop scene (scene_seed) or an uploaded image (upload), not both")
    if upload is not None and (not isinstance(upload, str) or not UPLOAD_ID.fullmatch(upload)):
        raise ParamError("the upload id is malformed: upload the image again")
    return RunParams(goal, **picked, **numbers, scene_seed=None if seed is None else _number(body, "scene_seed"), upload=upload)


def _number(body: dict, name: str) -> int:
    least, most, default = NUMBERS[name]
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not least <= value <= most:
        raise ParamError(f"{name} must be a whole number from {least} to {most}, got {shown(value)}")
    return value


def shown(value: object) -> str:
    """A value as the page sent it (JSON), cut short."""
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_image(data: bytes) -> Image.Image:
    """The upload as an RGB image, if it is a PNG or JPEG within the limits; else ParamError."""
    if len(data) > UPLOAD_BYTES:
        raise ParamError(f"the image is over the {UPLOAD_BYTES // 2**20} MB limit: resize or compress it")
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format not in ("PNG", "JPEG"):
                raise ParamError(f"the file is a {image.format} image: upload a PNG or JPEG")
            width, height = image.size  # read from the header, before any decoding
            if width > UPLOAD_SIDE or height > UPLOAD_SIDE:
                raise ParamError(f"the image is {width}x{height} pixels, over the {UPLOAD_SIDE}x{UPLOAD_SIDE} limit: resize it")
            return image.convert("RGB")  # decodes every pixel: a truncated file fails here
    except ParamError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise ParamError("the file is not a PNG or JPEG image that can be read: upload a .png or .jpg picture") from None


def run_command(params: RunParams, out: Path, image: Path | None, world_model_path: str | None) -> list[str]:
    """The `spiral run` command of a run, as an argument list (never a shell line)."""
    start = ["--image", str(image)] if image is not None else ["--scene-seed", str(params.scene_seed)]
    command = [sys.executable, "-m", "spiral.cli", "run", f"--goal={params.goal}", *start, "--out", str(out)]
    command += ["--method", params.method, "--planner", params.planner, "--critic", params.critic]
    command += ["--max-tries", str(params.max_tries), "--max-replans", str(params.max_replans)]
    command += ["--max-generations", str(params.max_generations)]
    if world_model_path is not None:
        command += ["--world-model-path", str(world_model_path)]
    return command
