"""`spiral run` and `spiral demo`: build the backends named in the config, run one episode through the
loop with a live progress line, judge it, and write the outputs."""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from spiral.backends import (
    CRITICS,
    PLANNERS,
    WORLD_MODEL_OPTIONS_HELP,
    WORLD_MODELS,
    make_critic,
    make_planner,
    make_world_model,
    observer_for,
)
from spiral.config import option, parse_key_values, required
from spiral.data.format import writable_folder
from spiral.errors import SpiralError
from spiral.journal import JournaledCritic, JournaledPlanner, JournaledWorldModel, digest, open_journal
from spiral.loop import Attempt, Episode, LoopConfig, PlanEvent, run
from spiral.outputs import RunOutputs, write_run
from spiral.types import Verdict


@dataclass(frozen=True)
class RunConfig:
    goal: str = required("the high-level goal, e.g. 'stack the red square on the blue circle'")
    out: Path = required("folder for the episode, the long video and the viewer")
    image: Path | None = option(None, "start image file (PNG/JPEG); or use --scene-seed")
    scene_seed: int | None = option(None, "start from a random tabletop scene with this seed")
    world_model: str = option("tabletop", "world model backend", choices=WORLD_MODELS)
    world_model_path: str | None = option(None, "weights file (tabletop) or model folder / hub id (diffusers)")
    world_model_options: str = option("", WORLD_MODEL_OPTIONS_HELP)
    planner: str = option(
        "lm", "PlanAgent backend (lm: reads plain English; symbolic: the grammar and solver, an exact baseline)", choices=PLANNERS
    )
    critic: str = option(
        "learned", "CriticAgent backend (learned: the shipped tabletop critic; oracle: the judge's own checks)", choices=CRITICS
    )
    planner_weights: str = option("", "lm planner: its adapter file ('' = the shipped one)")
    judge: str | None = option(
        None, "tabletop: what the oracle checks at the end, a canonical goal or 'unchanged' (default: the goal, if it reads it)"
    )
    agent_model: str = option("", "openai: model name served at --base-url; hf: local model folder")
    critic_threshold: float = option(0.0, "learned critic: the score a clip must reach to pass (0 = the one in its weights)")
    base_url: str = option("http://localhost:8000/v1", "OpenAI-compatible server of the openai agents")
    api_key_env: str = option("OPENAI_API_KEY", "environment variable holding the API key ('' for none)")
    agent_timeout: float = option(60.0, "seconds one answer of an API agent may take in all, before a retry")
    agent_retries: int = option(4, "retries of an API agent's request after 429, 5xx, time-outs and refused connections")
    max_image_pixels: int = option(40_000_000, "largest start image accepted, in pixels (width x height)")

    def __post_init__(self) -> None:
        if self.scene_seed is not None and self.scene_seed < 0:
            raise SpiralError(f"--scene-seed must be >= 0, got {self.scene_seed}")
        if self.agent_timeout <= 0 or self.agent_retries < 0:
            raise SpiralError("--agent-timeout must be > 0 and --agent-retries >= 0")
        if self.max_image_pixels < 1:
            raise SpiralError(f"--max-image-pixels must be >= 1, got {self.max_image_pixels}")


@dataclass(frozen=True)
class RunResult:
    episode: Episode
    outputs: RunOutputs
    judged: dict


def start_frame(cfg: RunConfig, size: int) -> np.ndarray:
    if (cfg.image is None) == (cfg.scene_seed is None):
        raise SpiralError("give exactly one of --image FILE or --scene-seed N")
    if cfg.image is not None:
        try:
            with Image.open(cfg.image) as image:  # opening reads the header only: the size is known before decoding
                width, height = image.size
                if width * height > cfg.max_image_pixels:
                    raise SpiralError(
                        f"start image {cfg.image} is {width}x{height} pixels, over the limit of {cfg.max_image_pixels:,}: "
                        "resize it, or raise --max-image-pixels"
                    )
                return np.asarray(image.convert("RGB"))
        except Image.DecompressionBombError:
            raise SpiralError(
                f"start image {cfg.image} is too large to read safely: resize it below {cfg.max_image_pixels:,} pixels"
            ) from None
        except (FileNotFoundError, UnidentifiedImageError, OSError) as err:
            raise SpiralError(f"cannot read start image {cfg.image}: {err}") from None
    from spiral.worlds.tabletop.render import render
    from spiral.worlds.tabletop.scene import random_scene

    return render(random_scene(np.random.default_rng(cfg.scene_seed)), size)


def judge_tabletop(goal: str, episode: Episode, judge: str | None = None) -> dict:
    """The oracle, reading the first and last frame, says whether the goal (or the `judge`
    condition) holds. It is the judge, never the same object as the in-loop critic; a goal in free
    English with no judge condition is not judged, and the result says why."""
    from spiral.worlds.tabletop.judging import judged_condition
    from spiral.worlds.tabletop.oracle import read_scene

    try:
        condition = judged_condition(goal, judge)
    except SpiralError as err:
        return {"not_judged": str(err)}
    final = episode.video()[-1]
    return {"goal_success": bool(condition.holds(read_scene(episode.start_frame), read_scene(final)))}


def progress_printer(stream=sys.stderr):
    def show(event) -> None:
        if isinstance(event, PlanEvent) and event.goal_holds:
            print(f"[{event.why}] the planner finds the goal holds", file=stream)
        elif isinstance(event, PlanEvent):
            state = "" if event.plan.feasible else f" — infeasible: {event.plan.reason}"
            print(f"[plan {event.index + 1}] ({event.why}) {len(event.plan.steps)} steps{state}", file=stream)
            for i, s in enumerate(event.plan.steps):
                print(f"    {i + 1}. {s.instruction}", file=stream)
        elif isinstance(event, Attempt) and event.forced and event.critique is not None:
            print(f"  → no fix left: keeping the best try of step {event.step + 1} ({event.label})", file=stream)
        elif isinstance(event, Attempt):
            c = event.critique
            verdict = "no critic" if c is None else f"{c.verdict.value} ({c.score:.2f}) {c.feedback}"
            # "·": passed, but another candidate of the same try scored higher and was kept.
            mark = "✓" if event.accepted else "·" if c is not None and c.verdict == Verdict.SUCCESS else "✗"
            print(f"  {mark} step {event.step + 1} {event.label}: {event.instruction} — {verdict}", file=stream)

    return show


# Settings that change nothing an episode holds: a rerun with other values resumes it.
NOT_RESULTS = ("out", "judge", "base_url", "api_key_env", "agent_timeout", "agent_retries", "max_image_pixels")
# Agents whose answers a rerun reads from the journal rather than asking again.
API_AGENTS = ("openai",)


def run_settings(cfg: RunConfig, loop: LoopConfig, frame: np.ndarray) -> dict:
    """What an episode's folder is claimed for: the settings that shape it, and its start frame."""
    settings = {k: str(v) for k, v in asdict(cfg).items() if k not in NOT_RESULTS}
    return settings | {f"loop.{k}": str(v) for k, v in asdict(loop).items()} | {"start_frame": digest(frame)}


def run_goal(cfg: RunConfig, loop: LoopConfig, quiet: bool = False) -> RunResult:
    writable_folder(Path(cfg.out))
    if cfg.judge is not None:  # a condition that cannot be read fails before any work
        from spiral.worlds.tabletop.judging import judged_condition

        judged_condition(cfg.goal, cfg.judge)
    wm = make_world_model(
        cfg.world_model, cfg.world_model_path, **parse_key_values(cfg.world_model_options, "--world-model-options")
    )
    frame = start_frame(cfg, wm.frame_size)
    limits = {"timeout_s": cfg.agent_timeout, "retries": cfg.agent_retries}
    planner = make_planner(cfg.planner, cfg.agent_model, cfg.base_url, cfg.api_key_env, loop.seed, cfg.planner_weights, **limits)
    critic = (
        None
        if loop.method != "closed-loop"
        else make_critic(cfg.critic, cfg.agent_model, cfg.base_url, cfg.api_key_env, cfg.critic_threshold, **limits)
    )
    journal = open_journal(Path(cfg.out), run_settings(cfg, loop, frame))  # claimed once every input has been checked
    if journal.entries and not quiet:
        print(f"resuming the episode in {cfg.out}: {len(journal.entries)} recorded calls to replay", file=sys.stderr)
    if journal.dropped and not quiet:
        print(f"  (the journal is trusted up to there: {journal.dropped})", file=sys.stderr)
    episode = run(
        cfg.goal,
        frame,
        JournaledWorldModel(wm, journal),
        JournaledPlanner(planner, journal, replay=cfg.planner in API_AGENTS),
        None if critic is None else JournaledCritic(critic, journal, replay=cfg.critic in API_AGENTS),
        loop,
        observe=observer_for(cfg.world_model),
        on_event=None if quiet else progress_printer(),
    )
    judged = judge_tabletop(cfg.goal, episode, cfg.judge) if cfg.world_model == "tabletop" else {}
    outputs = write_run(episode, Path(cfg.out), judged=judged)
    return RunResult(episode, outputs, judged)
