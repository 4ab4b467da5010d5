"""The ActWM-Dataset format on disk.

    DATASET/
      dataset.json          format version, world and the settings that made it
      index.jsonl           one line per finished episode (appended as each one finishes)
      ep-000000/
        episode.json        goal, chain of thought, steps (instruction, pre/postcondition, attempts)
        start.png           the start frame
        step-00-a0.mp4      one clip per attempt of each step; the accepted one is marked

An episode folder is written under a temporary name and renamed into place, and only then listed
in the index, so a reader never sees half an episode and an interrupted writer can resume.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from spiral.data.video import DEFAULT_FPS, write_video
from spiral.errors import DatasetError, SpiralError
from spiral.types import Critique

FORMAT = "actwm-dataset/1"
INDEX = "index.jsonl"
META = "dataset.json"
EPISODE = "episode.json"
START_IMAGE = "start.png"


@dataclass(frozen=True)
class AttemptRecord:
    """One generated clip for a step, with the critic's annotation.

    `label_success` / `label_failure` are ground truth where it is known (the simulator made the
    clip, or made it fail on purpose); the critique is what a critic said of the pixels.
    """

    video: str
    instruction: str
    critique: Critique | None  # None where no critic looked (the open-loop baselines)
    label_success: bool | None = None
    label_failure: str | None = None


@dataclass(frozen=True)
class StepRecord:
    index: int
    instruction: str
    subject: str
    anchor: str
    relation: str
    precondition: str
    postcondition: str
    attempts: tuple[AttemptRecord, ...]
    accepted: int | None  # index into attempts of the clip that was kept, None if none was

    @property
    def video(self) -> str | None:
        return None if self.accepted is None else self.attempts[self.accepted].video


@dataclass(frozen=True)
class EpisodeRecord:
    id: str
    world: str
    goal: str
    cot: str
    steps: tuple[StepRecord, ...]
    level: str | None = None
    fps: int = DEFAULT_FPS
    start_image: str = START_IMAGE
    extra: dict = field(default_factory=dict)  # world-specific facts, e.g. the start scene

    def to_dict(self) -> dict:
        d = asdict(self)
        for step, sd in zip(self.steps, d["steps"], strict=True):
            for attempt, ad in zip(step.attempts, sd["attempts"], strict=True):
                ad["critique"] = attempt.critique.to_dict() if attempt.critique else None
        return {"format": FORMAT, **d}

    @staticmethod
    def from_dict(d: dict) -> EpisodeRecord:
        steps = tuple(
            StepRecord(
                **{k: v for k, v in s.items() if k != "attempts"},
                attempts=tuple(AttemptRecord(**{**a, "critique": _critique(a["critique"])}) for a in s["attempts"]),
            )
            for s in d["steps"]
        )
        fields = {k: v for k, v in d.items() if k not in ("format", "steps")}
        return EpisodeRecord(**fields, steps=steps)


def _critique(d: dict | None) -> Critique | None:
    return None if d is None else Critique.from_dict(d)


def write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def write_episode(root: Path, record: EpisodeRecord, start_frame: np.ndarray, clips: dict[str, np.ndarray]) -> Path:
    """Write one episode folder atomically: build it under a temporary name, then rename it."""
    final = root / record.id
    tmp = root / f".tmp-{record.id}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    Image.fromarray(start_frame).save(tmp / record.start_image)
    for name, frames in clips.items():
        write_video(tmp / name, frames, fps=record.fps)
    write_json_atomic(tmp / EPISODE, record.to_dict())
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    return final


def read_episode(folder: Path) -> EpisodeRecord:
    path = Path(folder) / EPISODE
    if not path.is_file():
        raise DatasetError(f"missing episode file: {path}")
    try:
        data = json.loads(path.read_text())
        if data.get("format") != FORMAT:
            raise DatasetError(f"{path}: format {data.get('format')!r} is not {FORMAT!r}")
        return EpisodeRecord.from_dict(data)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise DatasetError(f"corrupt episode file {path}: {err}") from None


def append_index(root: Path, entry: dict) -> None:
    """Append one line and fsync, so a crash leaves at most one partial line (dropped on resume)."""
    with open(root / INDEX, "a") as f:
        f.write(json.dumps(entry) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_index(root: Path, repair: bool = False) -> list[dict]:
    """The index's entries. A torn last line (the writer was killed mid-write) is an error for a
    reader, and is cut off when `repair` is set (the writer resuming)."""
    path = Path(root) / INDEX
    if not path.is_file():
        raise DatasetError(f"missing dataset index: {path} (is {root} an ActWM dataset? make one with `spiral data make`)")
    raw = path.read_bytes()
    entries, good_bytes = [], 0
    lines = raw.split(b"\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            good_bytes += len(line) + 1
            continue
        try:
            entry = json.loads(line)
            if not isinstance(entry, dict) or "id" not in entry:
                raise ValueError("no 'id' field")
        except ValueError as err:
            is_torn_tail = number == len(lines) and not raw.endswith(b"\n")
            if repair and is_torn_tail:
                with open(path, "r+b") as f:
                    f.truncate(good_bytes)
                break
            raise DatasetError(f"corrupt dataset index {path}, line {number}: {err}") from None
        entries.append(entry)
        good_bytes += len(line) + 1
    return entries


def writable_folder(path: Path, flag: str = "--out") -> Path:
    """`path` as a folder this process can write (made if missing); a one-line SpiralError naming
    the flag otherwise, before any work is done."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise SpiralError(f"{flag} {path} is a file; give a folder (it is made if missing)")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".spiral-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise SpiralError(f"{flag} {path} cannot be written ({err.strerror}); give a folder you can write to") from None
    return path


def file_sizes(folder: Path) -> dict[str, int]:
    """What an index entry records of an episode folder, so a resume can tell it is whole."""
    return {p.name: p.stat().st_size for p in sorted(Path(folder).iterdir()) if p.is_file()}


def episode_damage(folder: Path, entry: dict) -> str:
    """Why an indexed episode cannot be trusted ('' when it is whole): its folder, its episode file
    and every file it names must be there, at the sizes the index recorded (where it recorded them)."""
    if not folder.is_dir():
        return "its folder is missing"
    try:
        record = read_episode(folder)
    except DatasetError as err:
        return str(err)
    named = [record.start_image] + [a.video for s in record.steps for a in s.attempts]
    missing = [n for n in named if not (folder / n).is_file()]
    if missing:
        return f"{missing[0]} is missing"
    have = file_sizes(folder)
    changed = [n for n, size in entry.get("files", {}).items() if have.get(n) != size]
    return f"{changed[0]} is not the size the index recorded" if changed else ""


def rewrite_index(root: Path, entries: list[dict]) -> None:
    """Replace the index whole (written aside, then renamed into place)."""
    path = Path(root) / INDEX
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(json.dumps(e) + "\n" for e in entries))
    os.replace(tmp, path)
