"""GRPO tasks from a file: start images of your own footage and the instruction each should carry out.

One JSON object per line, image paths relative to the file:

    {"image": "frames/kitchen_01.png", "instruction": "put the red cup on the plate"}

Every line is checked when the file is read (a missing image, an empty instruction, a line that is
not JSON: one error naming the line), and each image is fitted once to the model's frame, as the
closed loop fits its start frame. Such tasks have no tabletop action, so their rewards and the
guard's judge come from a critic (`spiral.rl.rewards.critic_reward`, `critic_judge`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from spiral.errors import SpiralError
from spiral.rl.curriculum import Task
from spiral.worldmodels.base import prepare_frame


@dataclass(frozen=True)
class TaskLine:
    image: Path
    instruction: str


def read_task_file(path: Path) -> list[TaskLine]:
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as err:
        raise SpiralError(f"cannot read the task file {path}: {err.strerror or err}") from None
    tasks = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}, line {number}"
        try:
            item = json.loads(line)
        except json.JSONDecodeError as err:
            raise SpiralError(f'{where} is not JSON ({err.msg}): write {{"image": ..., "instruction": ...}}') from None
        if not isinstance(item, dict) or not isinstance(item.get("image"), str) or not isinstance(item.get("instruction"), str):
            raise SpiralError(f'{where}: each line needs "image" (a path) and "instruction" (text)')
        if not item["instruction"].strip():
            raise SpiralError(f"{where}: the instruction is empty")
        image = (path.parent / item["image"]).expanduser()
        if not image.is_file():
            raise SpiralError(f"{where}: no image at {image}")
        tasks.append(TaskLine(image, item["instruction"].strip()))
    if not tasks:
        raise SpiralError(f"the task file {path} holds no tasks")
    return tasks


class FileTasks:
    """Draws the tasks of a task file, their images fitted to the model's (height, width)."""

    def __init__(self, lines: list[TaskLine], shape: tuple[int, int], fit: str = "crop"):
        self.tasks = [Task(_load(t.image, shape, fit), None, t.instruction, 1, 0) for t in lines]

    def sample(self, rng: np.random.Generator, max_horizon: int, policy) -> Task:
        """Tasks from a file are single steps: the horizon of the curriculum does not apply."""
        return self.tasks[int(rng.integers(len(self.tasks)))]

    def probes(self, count: int) -> list[Task]:
        """The guard's fixed probes: the file's first `count` tasks."""
        return self.tasks[:count]


def _load(path: Path, shape: tuple[int, int], fit: str) -> np.ndarray:
    try:
        with Image.open(path) as image:
            return prepare_frame(image.convert("RGB"), shape, fit)
    except (UnidentifiedImageError, OSError) as err:
        raise SpiralError(f"cannot read the task image {path}: {err}") from None
