"""`spiral data make`: write an ActWM dataset, deterministically by seed and resumably.

Episode i is drawn from its own generator seeded by (seed, i), so an interrupted run that resumes
writes exactly the episodes an uninterrupted run would have, and none twice.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from spiral.config import option, required
from spiral.data.format import (
    FORMAT,
    INDEX,
    META,
    append_index,
    episode_damage,
    file_sizes,
    read_index,
    rewrite_index,
    writable_folder,
    write_episode,
    write_json_atomic,
)
from spiral.errors import DatasetError, SpiralError

WORLDS = ("tabletop",)
LEVELS = ("short", "medium", "long")
ANNOTATORS = ("simulator", "oracle")


@dataclass(frozen=True)
class DataMakeConfig:
    out: Path = required("folder to write the dataset into; an existing one made with the same settings is resumed")
    world: str = option("tabletop", "world to generate episodes in", choices=WORLDS)
    episodes: int = option(100, "total number of episodes the folder should hold")
    seed: int = option(0, "random seed; the same seed gives the same dataset")
    frame_size: int = option(64, "frame width and height in pixels (>= 32)")
    num_frames: int = option(8, "frames per step clip, the start frame included")
    failure_rate: float = option(0.3, "chance that a step also gets a labelled failed attempt before its good clip")
    levels: str = option("short,medium,long", "comma-separated task levels, used in rotation")
    annotator: str = option(
        "simulator",
        "who writes the critic annotations: the simulator's exact labels, or the oracle critic reading pixels",
        choices=ANNOTATORS,
    )

    def settings(self) -> dict:
        """What must match for a folder to be resumed (not the folder itself, nor how many episodes)."""
        return {k: v for k, v in asdict(self).items() if k not in ("out", "episodes")}

    def level_list(self) -> list[str]:
        levels = [s.strip() for s in self.levels.split(",") if s.strip()]
        unknown = [lv for lv in levels if lv not in LEVELS]
        if unknown or not levels:
            raise SpiralError(f"unknown level(s) {unknown or self.levels!r}; known levels: {', '.join(LEVELS)}")
        return levels


@dataclass(frozen=True)
class MakeResult:
    out: Path
    written: int
    already_there: int  # of the episodes asked for
    in_folder: int = 0  # whole episodes the folder held before this run, asked for or not
    redone: dict[str, str] = field(default_factory=dict)  # damaged episodes made again, and what was wrong


def episode_id(i: int) -> str:
    return f"ep-{i:06d}"


def _prepare(cfg: DataMakeConfig) -> tuple[set[str], dict[str, str]]:
    """Create or reopen the folder; returns the ids already finished and whole, and the damaged
    ones it will redo, with why."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    meta_path = out / META
    settings = cfg.settings()
    if meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as err:
            raise DatasetError(f"corrupt dataset file {meta_path}: {err}") from None
        if meta.get("settings") != settings:
            theirs = meta.get("settings", {})
            diff = ", ".join(f"{k}={theirs.get(k)!r} (asked {v!r})" for k, v in settings.items() if theirs.get(k) != v)
            raise DatasetError(f"{out} was made with other settings: {diff}; use another --out or the same settings")
    else:
        write_json_atomic(meta_path, {"format": FORMAT, "world": cfg.world, "settings": settings})
        (out / INDEX).touch()
    entries = read_index(out, repair=True)
    damaged = {e["id"]: why for e in entries if (why := episode_damage(out / e["id"], e))}
    if damaged:  # resume trusts what it checked: a damaged episode leaves the index and is made again
        rewrite_index(out, [e for e in entries if e["id"] not in damaged])
    done = {e["id"] for e in entries} - set(damaged)
    for leftover in out.iterdir():  # half-written episodes from an interrupted run are redone
        if leftover.is_dir() and (leftover.name.startswith(".tmp-") or leftover.name not in done):
            shutil.rmtree(leftover)
    return done, damaged


def make_dataset(cfg: DataMakeConfig, progress: bool = True) -> MakeResult:
    from spiral.worlds.tabletop.episodes import EpisodeSpec, make_episode

    if cfg.frame_size < 32:
        raise SpiralError(f"--frame-size must be at least 32, got {cfg.frame_size}")
    if cfg.episodes < 0:
        raise SpiralError(f"--episodes must be >= 0, got {cfg.episodes}")
    levels = cfg.level_list()
    writable_folder(Path(cfg.out))
    done, damaged = _prepare(cfg)
    todo = [i for i in range(cfg.episodes) if episode_id(i) not in done]
    bar = tqdm(total=cfg.episodes, initial=cfg.episodes - len(todo), desc="episodes", unit="ep", disable=not progress)
    for i in todo:
        spec = EpisodeSpec(cfg.frame_size, cfg.num_frames, cfg.failure_rate, levels[i % len(levels)], cfg.annotator)
        episode = make_episode(episode_id(i), np.random.default_rng([cfg.seed, i]), spec)
        folder = write_episode(Path(cfg.out), episode.record, episode.start_frame, episode.clips)
        record = episode.record
        append_index(
            Path(cfg.out),
            {"id": record.id, "goal": record.goal, "level": record.level, "num_steps": len(record.steps),
             "num_clips": len(episode.clips), "files": file_sizes(folder)},
        )  # fmt: skip
        bar.update(1)
    bar.close()
    if damaged:  # redone episodes were appended last: the index goes back to id order
        rewrite_index(Path(cfg.out), sorted(read_index(Path(cfg.out)), key=lambda e: e["id"]))
    return MakeResult(Path(cfg.out), len(todo), cfg.episodes - len(todo), len(done), damaged)
