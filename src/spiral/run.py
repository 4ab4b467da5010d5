"""`spiral run` and `spiral demo`: build the backends named in the config, run one episode through the
loop with a live progress line, judge it, and write the outputs."""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from spiral.backends import observer_for
from spiral.backends_config import BackendsConfig
from spiral.config import flat_settings, group, option, required
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
    backends: BackendsConfig = group(BackendsConfig)
    judge: str | None = option(
        None, "tabletop: what the oracle checks at the end, a canonical goal or 'unchanged' (default: the goal, if it reads it)"
    )
    max_image_pixels: int = option(40_000_000, "largest start image accepted, in pixels (width x height)")

    def __post_init__(self) -> None:
        if self.scene_seed is not None and self.scene_seed < 0:
            raise SpiralError(f"--scene-seed must be >= 0, got {self.scene_seed}")
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


def progress_printer(stream=None):
    """Prints the loop's events to `stream`, default the stderr of the moment it is made (a default
    argument would bind the one of the moment this module was imported, which may since be closed)."""
    stream = stream or sys.stderr

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
NOT_RESULTS = ("out", "judge", "base_url", "api_key_env", "planner_base_url", "planner_api_key_env", "critic_base_url",
               "critic_api_key_env", "agent_timeout", "agent_retries", "max_image_pixels")  # fmt: skip
# Agents whose answers a rerun reads from the journal rather than asking again.
API_AGENTS = ("openai",)


def run_settings(cfg: RunConfig, loop: LoopConfig, frame: np.ndarray) -> dict:
    """What an episode's folder is claimed for: the settings that shape it, and its start frame."""
    settings = {k: str(v) for k, v in flat_settings(cfg).items() if k not in NOT_RESULTS}
    return settings | {f"loop.{k}": str(v) for k, v in asdict(loop).items()} | {"start_frame": digest(frame)}


def settings_defaults() -> dict:
    """A backend setting that a folder's recorded settings lack was at its default (claim_folder's `defaults`)."""
    return {k: str(v) for k, v in flat_settings(BackendsConfig()).items()}


def run_goal(cfg: RunConfig, loop: LoopConfig, quiet: bool = False) -> RunResult:
    writable_folder(Path(cfg.out))
    if cfg.judge is not None:  # a condition that cannot be read fails before any work
        from spiral.worlds.tabletop.judging import judged_condition

        judged_condition(cfg.goal, cfg.judge)
    b = cfg.backends
    b.check(with_critic=loop.method == "closed-loop")
    wm = b.world()
    frame = start_frame(cfg, wm.frame_size)
    planner = b.planner_agent(loop.seed)
    critic = b.critic_agent() if loop.method == "closed-loop" else None
    # A factory's model says which world it draws by its name; the tabletop one is read by the oracle.
    world = getattr(wm, "name", "") if ":" in b.world_model else b.world_model
    journal = open_journal(Path(cfg.out), run_settings(cfg, loop, frame), settings_defaults())  # once every input is checked
    if journal.entries and not quiet:
        print(f"resuming the episode in {cfg.out}: {len(journal.entries)} recorded calls to replay", file=sys.stderr)
    if journal.dropped and not quiet:
        print(f"  (the journal is trusted up to there: {journal.dropped})", file=sys.stderr)
    episode = run(
        cfg.goal,
        frame,
        JournaledWorldModel(wm, journal),
        JournaledPlanner(planner, journal, replay=b.planner in API_AGENTS),
        None if critic is None else JournaledCritic(critic, journal, replay=b.critic in API_AGENTS),
        loop,
        observe=observer_for(world),
        on_event=None if quiet else progress_printer(),
    )
    judged = judge_tabletop(cfg.goal, episode, cfg.judge) if world == "tabletop" else {}
    outputs = write_run(episode, Path(cfg.out), judged=judged)
    return RunResult(episode, outputs, judged)
