"""Ground-truth tabletop episodes for the ActWM-Dataset: a random scene, a goal of a chosen level,
the solver's plan and reasoning, one simulator clip per step, and (sometimes) a labelled failed
attempt before it, every clip annotated by the oracle critic."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spiral.data.format import AttemptRecord, EpisodeRecord, StepRecord
from spiral.errors import SpiralError
from spiral.worlds.tabletop import checks
from spiral.worlds.tabletop.actions import describe_postcondition, describe_precondition, trajectory
from spiral.worlds.tabletop.failures import ground_truth_critique, make_failure
from spiral.worlds.tabletop.goals import goal_to_text, sample_goal
from spiral.worlds.tabletop.grammar import to_text
from spiral.worlds.tabletop.render import render, render_motion
from spiral.worlds.tabletop.scene import random_scene
from spiral.worlds.tabletop.solver import Infeasible, PlannedStep, solve

NUM_FRAMES = 8  # frames per step clip, the start frame included; see README "Clips"


@dataclass(frozen=True)
class EpisodeSpec:
    frame_size: int = 64
    num_frames: int = NUM_FRAMES
    failure_rate: float = 0.3  # chance that a step first gets a failed attempt
    level: str | None = None  # None: any level
    annotator: str = "simulator"  # "simulator": exact labels; "oracle": the oracle critic reads the pixels


@dataclass(frozen=True)
class GeneratedEpisode:
    record: EpisodeRecord
    start_frame: np.ndarray
    clips: dict[str, np.ndarray]


def ground_truth_clip(step: PlannedStep, num_frames: int, frame_size: int) -> np.ndarray:
    return render_motion(trajectory(step.before, step.action, step.target, num_frames), frame_size, step.action.subject)


def annotate(frames: np.ndarray, action, failure: str | None, annotator: str):
    return checks.critique(frames, action) if annotator == "oracle" else ground_truth_critique(action, failure)


def make_episode(episode_id: str, rng: np.random.Generator, spec: EpisodeSpec) -> GeneratedEpisode:
    """One episode, fully determined by the generator's state."""
    for _ in range(50):
        scene = random_scene(rng)
        try:
            goal = sample_goal(scene, rng, level=spec.level)
        except SpiralError:  # this scene admits no goal of the level (e.g. too few objects for long)
            continue
        solution = solve(scene, goal, rng)
        if not isinstance(solution, Infeasible) and solution.steps:
            break
    else:  # pragma: no cover - sample_goal only proposes feasible goals
        raise SpiralError(f"could not sample a feasible goal of level {spec.level}")
    clips: dict[str, np.ndarray] = {}
    steps = []
    for i, step in enumerate(solution.steps):
        instruction = to_text(step.action)
        attempts = []
        if rng.random() < spec.failure_rate:
            failure = make_failure(step.before, step.action, step.target, spec.num_frames, rng)
            if failure is not None:
                frames = failure.render(spec.frame_size)
                name = f"step-{i:02d}-a{len(attempts)}.mp4"
                clips[name] = frames
                critique = annotate(frames, step.action, failure.kind, spec.annotator)
                attempts.append(AttemptRecord(name, instruction, critique, False, failure.kind))
        frames = ground_truth_clip(step, spec.num_frames, spec.frame_size)
        name = f"step-{i:02d}-a{len(attempts)}.mp4"
        clips[name] = frames
        attempts.append(AttemptRecord(name, instruction, annotate(frames, step.action, None, spec.annotator), True, None))
        steps.append(
            StepRecord(
                index=i,
                instruction=instruction,
                subject=step.action.subject,
                relation=step.action.relation,
                anchor=step.action.anchor,
                precondition=describe_precondition(step.action),
                postcondition=describe_postcondition(step.action),
                attempts=tuple(attempts),
                accepted=len(attempts) - 1,
            )
        )
    record = EpisodeRecord(
        id=episode_id,
        world="tabletop",
        goal=goal_to_text(goal),
        cot=solution.reasoning,
        steps=tuple(steps),
        level=solution.level,
        extra={"start_scene": scene.to_dict(), "final_scene": solution.steps[-1].after.to_dict()},
    )
    return GeneratedEpisode(record, render(scene, spec.frame_size), clips)
