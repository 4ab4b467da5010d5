"""The think-act-reflect runner, and the open-loop baselines through the same code.

    plan -> for each step: generate -> critique
              success          -> accept the clip, update memory, next step
              local failure    -> inner loop: refined instruction + new seed, up to K tries
              (with N candidates, each try samples N clips from the same frame in one batched
               call and keeps the one the critic scores best: best-of-N at the cost of one call)
              drift / precondition unmet / K tries spent -> outer loop: replan from the last
                                                            accepted frame, up to R times

Rejected clips never enter the long video: it is the accepted clips stitched, so it stays one
continuous take. When a step cannot be fixed and no replan is left (or the outer loop is ablated),
the best attempt is accepted anyway ("forced") and the episode goes on open-loop; so it does when a
replan finds the goal infeasible from the current frame (only a first plan can end an episode as
infeasible).

`run_episode` is a generator: it yields each Plan event, Attempt and finally the Episode, so a
progress bar, a log and the viewer all read the same stream.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from enum import StrEnum

import numpy as np

from spiral.agents.parsing import AgentOutputError
from spiral.agents.protocols import CriticAgent, PlanAgent
from spiral.config import option
from spiral.errors import AgentUnavailable, SpiralError
from spiral.memory import MemoryEvent, ObjectState, WorldMemory
from spiral.types import Clip, Critique, FailureKind, Outcome, Plan, Status, Step, Verdict
from spiral.worldmodels.base import WorldModel, frame_shape, prepare_frame

METHODS = ("closed-loop", "stepwise", "oneshot")


@dataclass(frozen=True)
class LoopConfig:
    method: str = option("closed-loop", "closed-loop, or a baseline: stepwise (no critic), oneshot (one clip)", choices=METHODS)
    max_tries: int = option(3, "K: attempts per step in the inner loop")
    max_replans: int = option(2, "R: replans in the outer loop")
    max_generations: int = option(30, "total clips the world model may generate per episode (candidates count one each)")
    max_seconds: float = option(0.0, "wall-clock limit of an episode in seconds, checked before each clip (0: none)")
    candidates: int = option(1, "N: clips sampled per try in one batched call; the critic's best is kept (closed loop)")
    inner_loop: bool = option(True, "retry a failed step (ablation: --no-inner-loop)")
    outer_loop: bool = option(True, "replan on drift or repeated failure (ablation: --no-outer-loop)")
    goal_check: bool = option(
        True,
        "when every step is accepted, the planner looks at the last frame and plans on if the goal does not hold yet; takes a replan (ablation: --no-goal-check)",
    )
    use_memory: bool = option(True, "agents see the history of the episode (ablation: --no-use-memory)")
    oneshot_steps: int = option(4, "oneshot baseline: length of its single clip, in step-clips")
    seed: int = option(0, "seed of the world model's sampling")

    def __post_init__(self) -> None:
        for name, least in (("max_tries", 1), ("max_replans", 0), ("max_generations", 1), ("candidates", 1),
                            ("oneshot_steps", 1), ("seed", 0)):  # fmt: skip
            value = getattr(self, name)
            if value < least:
                raise SpiralError(f"--{name.replace('_', '-')} must be >= {least}, got {value}")
        if self.max_seconds < 0:
            raise SpiralError(f"--max-seconds must be >= 0 (0: no limit), got {self.max_seconds}")


GOAL_CHECK = "goal check: every step was accepted"


@dataclass(frozen=True)
class PlanEvent:
    index: int  # 0 for the first plan, then one per replan
    plan: Plan
    why: str  # "initial", GOAL_CHECK, or what triggered the replan
    seconds: float

    @property
    def goal_holds(self) -> bool:
        """A goal check whose planner found nothing left to do: the episode ends, no replan made."""
        return self.why == GOAL_CHECK and self.plan.feasible and not self.plan.steps


@dataclass(frozen=True)
class Attempt:
    plan: int
    step: int
    attempt: int  # try number within the step
    instruction: str
    clip: Clip
    critique: Critique | None  # None for the baselines, which have no critic
    generate_seconds: float
    critique_seconds: float
    accepted: bool = False
    forced: bool = False  # accepted without the critic's approval (no fix was left)
    candidate: int = 0  # which of the try's candidate clips
    candidates: int = 1  # how many clips the try sampled

    @property
    def label(self) -> str:
        """ "try 2", or "try 2, candidate 3 of 4" when the try sampled several clips."""
        which = f", candidate {self.candidate + 1} of {self.candidates}" if self.candidates > 1 else ""
        return f"try {self.attempt + 1}{which}"


@dataclass
class Episode:
    goal: str
    method: str
    start_frame: np.ndarray
    plans: list[PlanEvent] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    memory: WorldMemory | None = None
    status: Status = Status.RUNNING
    error: str = ""  # why a plan_error ended the episode
    seconds: float = 0.0

    @property
    def accepted(self) -> list[Attempt]:
        return [a for a in self.attempts if a.accepted]

    @property
    def generation_calls(self) -> int:
        return len(self.attempts)

    @property
    def replans(self) -> int:
        """Planner calls after the first plan, less a final goal check that found the goal holding
        (a look, not a replan)."""
        return sum(not p.goal_holds for p in self.plans[1:])

    @property
    def agent_seconds(self) -> float:
        return sum(p.seconds for p in self.plans) + sum(a.critique_seconds for a in self.attempts)

    @property
    def model_seconds(self) -> float:
        return sum(a.generate_seconds for a in self.attempts)

    @property
    def agent_tokens(self) -> int:
        return sum(p.plan.tokens for p in self.plans)

    def video(self) -> np.ndarray:
        """The accepted clips stitched: each clip starts on the previous one's last frame."""
        clips = [a.clip.frames for a in self.accepted]
        if not clips:
            return self.start_frame[None]
        return np.concatenate([clips[0]] + [c[1:] for c in clips[1:]])


Event = PlanEvent | Attempt | Episode
Observer = Callable[[np.ndarray], list[ObjectState]]


class _Runner:
    """State of one episode; methods are the loop's phases."""

    def __init__(self, goal, frame, wm, planner, critic, cfg: LoopConfig, observe: Observer | None):
        if cfg.method not in METHODS:
            raise SpiralError(f"unknown method {cfg.method!r}; known methods: {', '.join(METHODS)}")
        if cfg.method == "closed-loop" and critic is None:
            raise SpiralError("the closed-loop method needs a critic (--critic)")
        self.wm, self.planner, self.critic, self.cfg, self.observe = wm, planner, critic, cfg, observe
        # Fitted once, here: the planner and critic see the very frame the model conditions on.
        self.frame = prepare_frame(frame, frame_shape(wm), getattr(wm, "fit", "crop"))
        self.memory = WorldMemory(goal, use_history=cfg.use_memory)
        self.episode = Episode(goal, cfg.method, self.frame, memory=self.memory)
        for role, agent in (("planner", planner), ("critic", critic)):
            if agent is not None:
                if not callable(getattr(agent, "reset", None)):
                    raise SpiralError(f"the {role} {agent!r} has no reset(goal, frame): add one (spiral.agents.protocols)")
                agent.reset(goal, self.frame)
        self.began = time.perf_counter()
        self._observe()

    def out_of_time(self) -> bool:
        return bool(self.cfg.max_seconds) and time.perf_counter() - self.began > self.cfg.max_seconds

    def _observe(self) -> None:
        if self.observe is not None:
            frame, observe = self.frame, self.observe
            self.memory.observe_later(lambda: observe(frame))

    def plan(self, why: str) -> PlanEvent:
        began = time.perf_counter()
        plan = self.planner.plan(self.memory.goal, self.frame, self.memory)
        event = PlanEvent(len(self.episode.plans), plan, why, time.perf_counter() - began)
        self.episode.plans.append(event)
        return event

    def generate(self, instruction: str, num_frames: int | None = None, count: int = 1) -> list[Clip]:
        """`count` clips from the current frame; one batched call when there are several."""
        seed = self.cfg.seed * 100_003 + len(self.episode.attempts)  # a fresh seed for every clip
        wants_context = self.cfg.use_memory and getattr(self.wm, "uses_context", True)
        context = self.memory.summary() if wants_context else None
        if count == 1:
            return [self.wm.generate(self.frame, instruction, num_frames=num_frames, seed=seed, context=context)]
        return self.wm.generate_group(
            self.frame, instruction, group_size=count, seed=seed, num_frames=num_frames, context=context
        )

    def accept(self, attempt: Attempt, forced: bool = False) -> Attempt:
        accepted = replace(attempt, accepted=True, forced=forced)
        # By identity: candidates of one try differ only in their clips, which == cannot compare.
        where = next(i for i, a in enumerate(self.episode.attempts) if a is attempt)
        self.episode.attempts[where] = accepted
        self.frame = attempt.clip.last_frame
        self._observe()
        self.memory.record(MemoryEvent(attempt.step, attempt.plan, attempt.instruction, Outcome.ACCEPTED, _score(attempt)))
        return accepted


def _score(attempt: Attempt) -> float | None:
    return None if attempt.critique is None else attempt.critique.score


def run_episode(
    goal: str,
    frame: np.ndarray,
    wm: WorldModel,
    planner: PlanAgent | None,
    critic: CriticAgent | None,
    cfg: LoopConfig,
    observe: Observer | None = None,
) -> Iterator[Event]:
    began = time.perf_counter()
    r = _Runner(goal, frame, wm, planner, critic, cfg, observe)
    if cfg.method == "oneshot":
        yield from _oneshot(r)
    else:
        yield from _planned(r)
    r.episode.seconds = time.perf_counter() - began
    yield r.episode


def _oneshot(r: _Runner) -> Iterator[Event]:
    """The whole goal as one prompt, one long clip, open loop."""
    began = time.perf_counter()
    (clip,) = r.generate(r.memory.goal, num_frames=1 + (r.wm.num_frames - 1) * r.cfg.oneshot_steps)
    attempt = Attempt(0, 0, 0, r.memory.goal, clip, None, time.perf_counter() - began, 0.0)
    r.episode.attempts.append(attempt)
    yield r.accept(attempt, forced=True)
    r.episode.status = Status.COMPLETED


def _planned(r: _Runner) -> Iterator[Event]:
    try:
        event = r.plan("initial")
    except AgentOutputError as err:  # a model that gave no usable plan; a goal no parser reads stays an input error
        r.episode.status, r.episode.error = Status.PLAN_ERROR, str(err)
        return
    yield event
    step_index = 0
    while True:
        plan = event.plan
        if not plan.feasible:
            r.episode.status = Status.INFEASIBLE
            return
        if step_index >= len(plan.steps):
            # The critic passed each step, but steps can pass and the goal still not hold (a step's
            # wording allows a spot the rest of the plan did not expect, or the critic was wrong):
            # the planner looks again, and an unfinished goal gets a plan of its own.
            if not _goal_check_due(r, event):
                r.episode.status = Status.COMPLETED
                return
            try:
                check = r.plan(GOAL_CHECK)
            except AgentUnavailable:
                raise
            except SpiralError as err:  # the accepted steps are kept; only the check is missing
                r.episode.status, r.episode.error = Status.PLAN_ERROR, f"the goal check failed: {err}"
                return
            yield check
            if check.plan.feasible and check.plan.steps:
                event, step_index = check, 0
                continue
            r.episode.status = Status.COMPLETED
            return
        step = plan.steps[step_index]
        end = yield from _attempt_step(r, event.index, step_index, step)
        if end.how == StepEnd.OUT_OF_BUDGET:
            r.episode.status, r.episode.error = Status.BUDGET_EXHAUSTED, end.why
            return
        if end.how == StepEnd.ACCEPTED:
            step_index += 1
            continue
        # The step could not be fixed here: replan from the last accepted frame, or push on.
        if _replans_left(r):
            r.memory.record(MemoryEvent(step_index, event.index, step.instruction, Outcome.REPLANNED, None, end.why))
            try:
                replan = r.plan(end.why)
            except AgentUnavailable:
                raise  # the server, not the plan: the bench redoes the episode
            except SpiralError as err:  # e.g. an API planner that kept answering malformed JSON
                r.episode.status, r.episode.error = Status.PLAN_ERROR, str(err)
                return
            yield replan
            # A planner that finds no way on from a mid-episode frame has most often misread what
            # the model made (the goal was feasible at the start), so ending the episode there
            # throws away a step that may have nearly worked: the old plan goes on instead.
            if replan.plan.feasible:
                event, step_index = replan, 0
                continue
        best = max(
            (a for a in r.episode.attempts if a.plan == event.index and a.step == step_index), key=lambda a: _score(a) or 0.0
        )
        yield r.accept(best, forced=True)
        step_index += 1


def _replans_left(r: _Runner) -> bool:
    return r.cfg.outer_loop and len(r.episode.plans) <= r.cfg.max_replans


def _goal_check_due(r: _Runner, event: PlanEvent) -> bool:
    """Closed loop with a replan left, after a plan that had steps (a plan of none says the goal holds)."""
    cfg = r.cfg
    return cfg.method == "closed-loop" and cfg.goal_check and _replans_left(r) and bool(event.plan.steps)


class StepEnd(StrEnum):
    """How a step's tries ended."""

    ACCEPTED = "accepted"
    OUT_OF_BUDGET = "out_of_budget"  # no generation left in the episode's budget
    UNFIXED = "unfixed"  # the outer loop takes over: drift, an unmet precondition, or every try failed


@dataclass(frozen=True)
class StepResult:
    how: StepEnd
    why: str = ""  # for UNFIXED: what the replan is told


def _attempt_step(r: _Runner, plan_index: int, step_index: int, step: Step) -> Iterator[Attempt]:
    """Generate (and, closed-loop, critique and retry) one step; yields its attempts and returns
    a StepResult."""
    cfg = r.cfg
    closed = cfg.method == "closed-loop"
    tries = cfg.max_tries if (closed and cfg.inner_loop) else 1
    instruction = step.instruction
    for try_index in range(tries):
        count = min(cfg.candidates if closed else 1, cfg.max_generations - len(r.episode.attempts))
        if count <= 0:
            return StepResult(StepEnd.OUT_OF_BUDGET, f"all {cfg.max_generations} generations were used (--max-generations)")
        if r.out_of_time():
            return StepResult(StepEnd.OUT_OF_BUDGET, f"the episode ran past its limit of {cfg.max_seconds:g} s (--max-seconds)")
        began = time.perf_counter()
        clips = r.generate(instruction, count=count)
        each = (time.perf_counter() - began) / count  # a batched call's time, shared out
        tried = replace(step, instruction=instruction)
        attempts = [
            _critiqued(
                r,
                Attempt(plan_index, step_index, try_index, instruction, clip, None, each, 0.0, candidate=k, candidates=count),
                tried,
            )
            for k, clip in enumerate(clips)
        ]
        r.episode.attempts.extend(attempts)
        best = max(attempts, key=_preference)
        yield from (a for a in attempts if a is not best)
        critique = best.critique
        if critique is None or critique.verdict == Verdict.SUCCESS:
            yield r.accept(best)
            return StepResult(StepEnd.ACCEPTED)
        yield best
        r.memory.record(MemoryEvent(step_index, plan_index, instruction, Outcome.FAILED, critique.score, critique.feedback))
        if critique.verdict == Verdict.GLOBAL_DRIFT or critique.failure_kind == FailureKind.PRECONDITION_UNMET:
            return StepResult(StepEnd.UNFIXED, f"{critique.verdict.value}: {critique.feedback}")
        instruction = critique.refined_instruction or step.instruction
    return StepResult(StepEnd.UNFIXED, f"step {step_index + 1} failed {tries} times: {step.instruction}")


def _critiqued(r: _Runner, attempt: Attempt, step: Step) -> Attempt:
    """The attempt with the critic's verdict on its clip (closed loop; the baselines have no critic)."""
    if r.cfg.method != "closed-loop":
        return attempt
    began = time.perf_counter()
    try:
        critique = r.critic.critique(step, attempt.clip, r.memory)
    except AgentUnavailable:
        raise  # the server, not the clip: the bench redoes the episode
    except SpiralError as err:  # recorded in the episode; the try counts as failed
        critique = Critique(0.0, Verdict.LOCAL_FAILURE, FailureKind.AGENT_ERROR, f"critic error: {err}")
    return replace(attempt, critique=critique, critique_seconds=time.perf_counter() - began)


def _preference(attempt: Attempt) -> tuple[bool, float]:
    """Which candidate of a try to keep: one the critic passed, then the higher score."""
    critique = attempt.critique
    return (critique is None or critique.verdict == Verdict.SUCCESS, _score(attempt) or 0.0)


def run(goal, frame, wm, planner, critic, cfg: LoopConfig, observe: Observer | None = None, on_event=None) -> Episode:
    """Run an episode to the end; `on_event` sees every event as it happens."""
    episode = None
    for event in run_episode(goal, frame, wm, planner, critic, cfg, observe):
        if on_event is not None:
            on_event(event)
        if isinstance(event, Episode):
            episode = event
    assert episode is not None
    return episode
