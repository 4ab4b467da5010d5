"""`spiral demo`: a long-horizon goal on the embedded tabletop world.

Until the learned world model lands, the clips come from the simulator (ground truth); the oracle
still judges the result from pixels, so the demo shows the whole pipeline end to end.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spiral.config import option
from spiral.data.format import EpisodeRecord, write_episode
from spiral.data.video import read_video, upscale, write_video


@dataclass(frozen=True)
class DemoConfig:
    out: Path = option(Path("out/demo"), "folder for the episode, the stitched video and its summary")
    seed: int = option(7, "seed of the scene and the goal")
    level: str = option("long", "task level of the goal", choices=("short", "medium", "long"))
    frame_size: int = option(64, "frame size in pixels")


@dataclass(frozen=True)
class DemoResult:
    episode_dir: Path
    video: Path
    record: EpisodeRecord
    goal_achieved: bool


def run_demo(cfg: DemoConfig) -> DemoResult:
    from spiral.worlds.tabletop.episodes import EpisodeSpec, make_episode
    from spiral.worlds.tabletop.goals import parse_goal
    from spiral.worlds.tabletop.oracle import read_scene

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    spec = EpisodeSpec(frame_size=cfg.frame_size, failure_rate=0.0, level=cfg.level)
    episode = make_episode("demo", np.random.default_rng(cfg.seed), spec)
    episode_dir = write_episode(out, episode.record, episode.start_frame, episode.clips)
    clips = [read_video(episode_dir / step.video) for step in episode.record.steps if step.video]
    # Each clip starts on the previous clip's last frame, so drop that repeated frame when stitching.
    stitched = np.concatenate([clips[0]] + [c[1:] for c in clips[1:]])
    video = write_video(out / "demo.mp4", upscale(stitched, max(1, 256 // cfg.frame_size)), for_people=True)
    goal = parse_goal(episode.record.goal)
    achieved = goal.holds(read_scene(episode.start_frame), read_scene(stitched[-1]))
    return DemoResult(episode_dir, video, episode.record, achieved)
