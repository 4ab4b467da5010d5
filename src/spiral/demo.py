"""`spiral demo`: a long-horizon request, worded as a person would word it, on the embedded default —
the lm planner reads it and plans, the learned tabletop world model generates every clip, the
learned tabletop critic drives the inner and outer loops, and the oracle (as judge, reading pixels)
says whether the goal was achieved.

The request is drawn from the free-form generator's held-out wordings (ones the planner never
trained on) for the demo's scene, at the chosen level; the judge checks the canonical goal it means,
which the loop never sees."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spiral.config import option
from spiral.errors import SpiralError
from spiral.loop import LoopConfig
from spiral.run import RunConfig, RunResult, run_goal

DRAWS = 400  # requests drawn until one of the level comes up


@dataclass(frozen=True)
class DemoConfig:
    out: Path = option(Path("out/demo"), "folder for the episode, the long video and the viewer")
    scene_seed: int = option(4, "seed of the start scene")
    level: str = option("long", "task level of the goal", choices=("short", "medium", "long"))
    filmstrip: Path | None = option(
        None, "also save a PNG of the start frame and each accepted step's last frame (the README's picture)"
    )


@dataclass(frozen=True)
class DemoRequest:
    text: str  # what the loop is asked
    judge: str  # the canonical goal it means, for the judge


def demo_request(scene_seed: int, level: str) -> DemoRequest:
    from spiral.worlds.tabletop.freeform import sample_request
    from spiral.worlds.tabletop.goals import LEVELS
    from spiral.worlds.tabletop.scene import random_scene
    from spiral.worlds.tabletop.solver import steps_needed

    scene = random_scene(np.random.default_rng(scene_seed))
    lo, hi = LEVELS[level]
    first = None
    for i in range(DRAWS):
        request = sample_request(scene, np.random.default_rng([scene_seed, 1, i]), "heldout")
        if request is None or request.goal is None or not lo <= (steps_needed(scene, request.goal) or 0) <= hi:
            continue
        if request.goal.family == "compound":  # a request of several parts shows the most of what the planner reads
            return DemoRequest(request.text, request.target)
        first = first or DemoRequest(request.text, request.target)
    if first is not None:
        return first
    raise SpiralError(f"scene {scene_seed} has no {level} request in {DRAWS} draws; try another --scene-seed or --level")


def run_demo(cfg: DemoConfig) -> RunResult:
    request = demo_request(cfg.scene_seed, cfg.level)
    result = run_goal(RunConfig(goal=request.text, judge=request.judge, out=cfg.out, scene_seed=cfg.scene_seed), LoopConfig())
    if cfg.filmstrip is not None:
        save_filmstrip(result.episode, cfg.filmstrip)
    return result


def save_filmstrip(episode, path: Path, size: int = 160) -> None:
    from PIL import Image, ImageDraw

    frames = [episode.start_frame] + [a.clip.last_frame for a in episode.accepted]
    strip = Image.new("RGB", (size * len(frames) + 6 * (len(frames) - 1), size + 22), "white")
    draw = ImageDraw.Draw(strip)
    for i, frame in enumerate(frames):
        strip.paste(Image.fromarray(frame).resize((size, size), Image.NEAREST), (i * (size + 6), 0))
        draw.text((i * (size + 6) + 4, size + 5), "start" if i == 0 else f"step {i}", fill="black")
    strip.save(path, optimize=True)
