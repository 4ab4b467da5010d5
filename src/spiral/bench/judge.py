"""The Judge: scores a finished episode for the benchmark. It is never the in-loop critic object (the
runner checks), and for the tabletop world it reads pixels only, with the oracle's perception.

Metrics (all in [0, 1] unless said otherwise; higher is better except drift):

goal_success          condition.holds(read_scene(first frame), read_scene(last frame)), where the
                      condition is the task's `judge` or else its goal (worlds/tabletop/judging.py)
step_completion       accepted steps whose postcondition holds at the end of their clip (oracle
                      check_clip on the clip's pixels) / (accepted steps + steps of the final plan
                      never reached, or + 1 if it calls the rest infeasible). None for oneshot.
action_alignment      mean over accepted clips of (1 if the postcondition holds else the share of the
                      way the subject moved), times 0 if anything else moved, vanished, appeared or
                      changed colour/shape in the clip. None for oneshot.
identity_persistence  start objects (read from the first frame) present in the last frame with the
                      same colour, shape and size / start objects. hallucinated_objects: last-frame
                      objects absent at the start.
collateral_drift      objects the task never needs to move (not a subject of the reference solution
                      nor of any accepted step) that moved more than the oracle's tolerance, first
                      to last frame / such objects.
temporal_consistency  kept / (start objects + hallucinated) x (1 - collateral_drift).
flicker               VBench temporal flickering on the stitched video V (T frames, uint8):
                      mean_{t=1..T-1} (255 - mean|V_t - V_{t-1}|) / 255  (spiral.worlds.tabletop.checks
                      .flicker_score); 1.0 for a still video.
motion_smoothness     VBench motion smoothness with linear interpolation in place of the AMT frame
                      interpolator: mean_{t=1..T-2} (255 - mean|V_t - (V_{t-1} + V_{t+1}) / 2|) / 255.
subject_smoothness    mean oracle smoothness of each accepted clip's moving object (checks.smoothness).
"""

from __future__ import annotations

import math
import time

import numpy as np

from spiral.bench.metrics import EpisodeMetrics
from spiral.bench.tasks import Task
from spiral.errors import SpiralError
from spiral.loop import Episode
from spiral.types import Status


def flicker(video: np.ndarray) -> float:
    if len(video) < 2:
        return 1.0
    from spiral.worlds.tabletop.checks import flicker_score

    return flicker_score(video)


def motion_smoothness(video: np.ndarray) -> float:
    if len(video) < 3:
        return 1.0
    f = video.astype(np.float32)
    mae = np.abs(f[1:-1] - 0.5 * (f[:-2] + f[2:])).mean(axis=(1, 2, 3))
    return float(np.mean((255.0 - mae) / 255.0))


def steps_planned(episode: Episode) -> int:
    """Accepted steps (each from the plan it belonged to) plus the final plan's steps never reached.
    A final plan that calls the rest of the goal infeasible counts as one step never reached: the
    remainder is unknown, but it is not done."""
    if not episode.plans:
        return 0
    last = episode.plans[-1]
    if not last.plan.feasible:
        return len(episode.accepted) + 1
    reached = sum(1 for a in episode.accepted if a.plan == last.index)
    return len(episode.accepted) + max(0, len(last.plan.steps) - reached)


def accounting(task: Task, method: str, episode: Episode, judge: str) -> dict:
    """The fields every judge fills the same way: the episode's own bookkeeping and the pixels."""
    video = episode.video()
    accepted = [a for a in episode.accepted if a.critique is not None]
    return {
        "task": task.id, "method": method, "level": task.level, "world": task.world, "judge": judge,
        "status": episode.status, "error": episode.error, "expected_steps": task.expected_steps,
        "flicker": flicker(video), "motion_smoothness": motion_smoothness(video),
        "steps_planned": steps_planned(episode), "steps_accepted": len(episode.accepted),
        "forced_steps": sum(a.forced for a in episode.accepted if a.critique is not None),
        "replans": episode.replans, "generation_calls": episode.generation_calls,
        "agent_tokens": episode.agent_tokens,
        "critic_mean": float(np.mean([a.critique.score for a in accepted])) if accepted else None,
        "critic_scores": tuple(a.critique.score for a in episode.attempts if a.critique is not None),
        "wall_seconds": episode.seconds, "model_seconds": episode.model_seconds, "agent_seconds": episode.agent_seconds,
    }  # fmt: skip


def failed_episode(task: Task, method: str, error: str, seconds: float, judge: str, status: str = Status.ERROR) -> EpisodeMetrics:
    """An episode that raised before it finished: "error" (e.g. the planner could not read the goal)
    or ERRORED (an agent's server could not be used; not the method's failure)."""
    return EpisodeMetrics(
        task.id, method, task.level, task.world, judge, status, False, None, None, None, None, None, None,
        1.0, 1.0, None, task.expected_steps, 0, 0, 0, 0, 0, 0, 0, None, (), seconds, 0.0, 0.0, 0.0, error,
    )  # fmt: skip


class OracleJudge:
    """The tabletop judge: the oracle reading pixels."""

    name = "oracle"

    def judge(self, task: Task, method: str, episode: Episode) -> EpisodeMetrics:
        from spiral.agents.critic.oracle import step_action
        from spiral.worlds.tabletop import checks
        from spiral.worlds.tabletop.goals import Goal
        from spiral.worlds.tabletop.judging import judged_condition
        from spiral.worlds.tabletop.oracle import read_scene
        from spiral.worlds.tabletop.solver import Infeasible, plan_moves

        if task.world != "tabletop":
            raise SpiralError(f"the oracle judge reads tabletop scenes only; task {task.id} is {task.world!r} (use --judge vlm)")
        began = time.perf_counter()
        video = episode.video()
        goal = judged_condition(task.goal, task.judge)
        first, last = read_scene(episode.start_frame), read_scene(video[-1])
        success = bool(goal.holds(first, last))

        planned = bool(episode.plans)
        completed, align, smooth, subjects = 0, [], [], set()
        for a in episode.accepted if planned else ():
            try:
                action = step_action(episode.plans[a.plan].plan.steps[a.step])
            except SpiralError:  # a step no parser can read counts as not done
                align.append(0.0)
                continue
            subjects.add(action.subject)
            r = checks.check_clip(a.clip.frames, action)
            completed += r.postcondition
            clean = not (r.collateral_moved or r.hallucinated or r.physical)
            align.append((1.0 if r.postcondition else r.progress) * clean)
            smooth.append(r.smoothness)
        total = steps_planned(episode)
        step_completion = (completed / total if total else float(success)) if planned else None

        start_ids = {(o.name, o.size) for o in first.objects}
        end_ids = {(o.name, o.size) for o in last.objects}
        kept = len(start_ids & end_ids)
        appeared = len({n for n, _ in end_ids} - {o.name for o in first.objects})
        moves = plan_moves(first, goal) if isinstance(goal, Goal) else []
        subjects |= set() if isinstance(moves, Infeasible) else {m.action.subject for m in moves}
        bystanders = [o for o in first.objects if o.name not in subjects]
        tol = max(checks.MOVE_TOL, checks.MOVE_TOL_PX / video.shape[1])
        drifted = [o for o in bystanders if last.has(o.name) and math.dist(o.pos, last.get(o.name).pos) > tol]
        drift = len(drifted) / len(bystanders) if bystanders else 0.0
        persistence = kept / len(start_ids) if start_ids else 1.0
        consistency = (kept / (len(start_ids) + appeared) if start_ids else 1.0) * (1.0 - drift)

        return EpisodeMetrics(
            **accounting(task, method, episode, self.name),
            goal_success=success, step_completion=step_completion,
            action_alignment=float(np.mean(align)) if align else None,
            identity_persistence=persistence, hallucinated_objects=appeared, collateral_drift=drift,
            temporal_consistency=consistency, subject_smoothness=float(np.mean(smooth)) if smooth else None,
            judge_tokens=0, judge_seconds=time.perf_counter() - began,
        )  # fmt: skip
