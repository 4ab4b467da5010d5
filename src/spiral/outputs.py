"""What a run leaves behind: the episode in the ActWM-Dataset format (every attempt's clip, so runs
can become training data), the accepted clips stitched into one mp4, and the HTML viewer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spiral.data.format import AttemptRecord, EpisodeRecord, StepRecord, write_episode, write_json_atomic
from spiral.data.video import upscale, write_video
from spiral.loop import Episode
from spiral.types import DEFAULT_FPS
from spiral.viewer import write_viewer

VIEW_SIZE = 256  # people watch clips at this size (nearest-neighbour enlarged)


@dataclass(frozen=True)
class RunOutputs:
    episode_dir: Path
    video: Path
    viewer: Path
    summary: Path


def to_record(episode: Episode, episode_id: str, world: str) -> tuple[EpisodeRecord, dict[str, np.ndarray]]:
    """Steps in the order they were tried: one StepRecord per (plan, step) pair that was attempted."""
    clips: dict[str, np.ndarray] = {}
    groups: dict[tuple[int, int], list] = {}
    for attempt in episode.attempts:
        groups.setdefault((attempt.plan, attempt.step), []).append(attempt)
    steps = []
    for i, ((plan_index, step_index), attempts) in enumerate(groups.items()):
        plan = episode.plans[plan_index].plan if episode.plans else None
        step = plan.steps[step_index] if plan is not None else None
        records = []
        for k, a in enumerate(attempts):
            name = f"step-{i:02d}-a{k}.mp4"
            clips[name] = a.clip.frames
            records.append(AttemptRecord(name, a.instruction, a.critique))
        accepted = next((k for k, a in enumerate(attempts) if a.accepted), None)
        action = step.action if step is not None else None
        steps.append(
            StepRecord(
                index=i,
                instruction=step.instruction if step is not None else episode.goal,
                subject=step.subject if step is not None else "",
                relation=action.relation if action else "",
                anchor=action.anchor if action else "",
                precondition=step.precondition if step is not None else "",
                postcondition=step.postcondition if step is not None else "",
                attempts=tuple(records),
                accepted=accepted,
            )
        )
    cot = "\n\n".join(f"Plan {p.index + 1} ({p.why}):\n{p.plan.reasoning}" for p in episode.plans)
    extra = {
        "method": episode.method,
        "status": episode.status,
        "error": episode.error,
        "plans": [{"index": p.index, "why": p.why, "seconds": p.seconds, **p.plan.to_dict()} for p in episode.plans],
        "forced": [a.step for a in episode.accepted if a.forced],
        "memory": episode.memory.to_dict() if episode.memory else None,
        "seconds": episode.seconds,
        "generation_calls": episode.generation_calls,
    }
    return EpisodeRecord(episode_id, world, episode.goal, cot, tuple(steps), fps=episode_fps(episode), extra=extra), clips


def episode_fps(episode: Episode) -> int:
    """The rate the world model generated at, so its clips play at their own speed."""
    clips = [a.clip for a in episode.attempts]
    return clips[0].fps if clips else DEFAULT_FPS


def write_run(
    episode: Episode, out: Path, world: str = "tabletop", episode_id: str = "episode", judged: dict | None = None
) -> RunOutputs:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    record, clips = to_record(episode, episode_id, world)
    episode_dir = write_episode(out, record, episode.start_frame, clips)
    frames = episode.video()
    factor = max(1, VIEW_SIZE // frames.shape[1])
    video = write_video(out / "video.mp4", upscale(frames, factor), fps=episode_fps(episode), for_people=True)
    summary = out / "summary.json"
    write_json_atomic(
        summary,
        {"goal": episode.goal, "method": episode.method, "status": episode.status, "steps_accepted": len(episode.accepted),
         "generation_calls": episode.generation_calls, "replans": episode.replans,
         "seconds": round(episode.seconds, 3), "error": episode.error, "judged": judged or {}},
    )  # fmt: skip
    viewer = write_viewer(out / "viewer.html", episode, video_name=video.name, judged=judged)
    return RunOutputs(episode_dir, video, viewer, summary)
