"""Planner-only evaluation (no world model): each task's plan is carried out exactly by the simulator
and the goal (or the task's judge condition) is judged on the scene it leaves.

    spiral bench plans --suite tabletop-standard --planner lm --out out/plans-lm

This measures the planner alone, fast: whether its steps, done perfectly, achieve the goal, and how
long it takes to plan. A plan that calls the goal infeasible moves nothing. Rows are appended to
`plans.jsonl` as they are made, so a rerun of the same command skips what is done.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np

from spiral.backends_config import BackendsConfig
from spiral.bench.tasks import SUITES, Task, limit_tasks, load_suite, read_tasks, tasks_digest
from spiral.config import option, option_from, required
from spiral.errors import SpiralError
from spiral.memory import MemoryEvent, WorldMemory
from spiral.run_folder import claim_folder
from spiral.types import Outcome, Plan
from spiral.worlds.tabletop.actions import CELLS, Action, Target, apply, precondition_errors, relation_holds, sample_target
from spiral.worlds.tabletop.grammar import parse
from spiral.worlds.tabletop.judging import judged_condition
from spiral.worlds.tabletop.render import render
from spiral.worlds.tabletop.scene import Scene, random_scene, validity_errors
from spiral.worlds.tabletop.solver_plan import free_spots


@dataclass(frozen=True)
class PlanEvalConfig:
    out: Path = required("folder for plans.jsonl (a rerun skips the tasks already there)")
    suite: str | None = option(None, "built-in task suite", choices=tuple(SUITES))
    tasks: Path | None = option(None, "your own task file (JSONL); instead of --suite")
    # The planner's settings of BackendsConfig (`spiral run`'s), and only those: no world model or critic here.
    planner: str = option_from(BackendsConfig, "planner")
    planner_weights: str = option_from(BackendsConfig, "planner_weights")
    planner_model: str = option_from(BackendsConfig, "planner_model")
    agent_model: str = option_from(BackendsConfig, "agent_model")
    base_url: str = option_from(BackendsConfig, "base_url")
    api_key_env: str = option_from(BackendsConfig, "api_key_env")
    planner_base_url: str = option_from(BackendsConfig, "planner_base_url")
    planner_api_key_env: str | None = option_from(BackendsConfig, "planner_api_key_env")
    agent_timeout: float = option_from(BackendsConfig, "agent_timeout")
    agent_retries: int = option_from(BackendsConfig, "agent_retries")
    agent_device: str = option_from(BackendsConfig, "agent_device")
    agent_dtype: str = option_from(BackendsConfig, "agent_dtype")
    limit: int | None = option(None, "only the first N tasks of each level")
    slip: float = option(
        0.0,
        "chance that a step's object lands in a random cell instead; then the planner replans, "
        "and every task runs with memory and without (success against horizon, plans.html)",
    )
    max_replans: int = option(2, "replans after slips, per task")
    seed: int = option(0, "seed of the planner and of where the simulator lands each object")

    def __post_init__(self) -> None:
        if not 0.0 <= self.slip < 1.0 or self.max_replans < 0:
            raise SpiralError("--slip must be in [0, 1) and --max-replans >= 0")

    def backends(self) -> BackendsConfig:
        return BackendsConfig(**{f.name: getattr(self, f.name) for f in fields(BackendsConfig) if hasattr(self, f.name)})

    def load_tasks(self) -> list[Task]:
        if (self.suite is None) == (self.tasks is None):
            raise SpiralError("give exactly one of --suite NAME or --tasks FILE")
        return limit_tasks(load_suite(self.suite) if self.suite else read_tasks(Path(str(self.tasks))), self.limit)


@dataclass(frozen=True)
class PlanRow:
    task: str
    level: str
    success: bool  # the goal holds after the plan's steps, done exactly
    feasible: bool  # the planner made a plan (an infeasible answer moves nothing)
    steps: int  # over every plan of the task
    seconds: float  # the planner's own time, over every plan
    error: str = ""  # the planner failed (no usable answer, a goal it cannot read, a step it cannot do)
    memory: bool = True  # replans saw the episode's memory
    replans: int = 0
    expected_steps: int | None = None  # the task's horizon


def execute(
    scene: Scene, plan: Plan, rng: np.random.Generator, slip: float = 0.0, memory: WorldMemory | None = None, index: int = 0
) -> tuple[Scene, str, bool]:
    """The scene after the plan's steps, each done exactly unless it slips (see evaluate_task); why
    execution stopped early ('' if it did not); and whether a step slipped (then the rest waits for
    a replan). Each step is recorded in `memory` as the loop would."""
    current = scene
    for i, step in enumerate(plan.steps):
        try:
            action = parse(step.instruction)
        except SpiralError as err:
            return current, f"step {i + 1} cannot be read: {err}", False
        problems = precondition_errors(current, action)
        target = None if problems else sample_target(current, action, rng) or _grid_target(current, action)
        if target is None:
            return current, f"step {i + 1} cannot be done: {'; '.join(problems) or 'no room'}", False
        if slip > 0 and rng.random() < slip:
            wrong = sample_target(current, Action(action.subject, "in", CELLS[int(rng.integers(len(CELLS)))]), rng)
            if wrong is not None:
                current = apply(current, action, wrong)
                if memory is not None:
                    memory.record(MemoryEvent(i, index, step.instruction, Outcome.FAILED, 0.0, "the object landed elsewhere"))
                return current, "", True
        current = apply(current, action, target)
        if memory is not None:
            memory.record(MemoryEvent(i, index, step.instruction, Outcome.ACCEPTED, 1.0))
    return current, "", False


def _grid_target(scene: Scene, action) -> Target | None:
    """The first free spot of the solver's grid where the step's postcondition holds: a perfect
    executor finds room wherever there is some, not only where random draws land."""
    for x, y in free_spots(scene, action):
        target = Target(float(x), float(y), on=action.anchor if action.relation == "on" else None)
        after = apply(scene, action, target)
        if relation_holds(after, action.subject, action.relation, action.anchor) and not validity_errors(after):
            return target
    return None


def evaluate_task(task: Task, planner, seed: int, slip: float = 0.0, max_replans: int = 2, memory: bool = True) -> PlanRow:
    """Plan, then carry the plan out in the simulator. With `slip` > 0 each step's object lands, with
    that chance, in a random cell instead, and the planner replans from the frame it then sees (up
    to `max_replans` times), with the episode's memory or, `memory=False`, without it."""
    if task.scene_seed is None:
        raise SpiralError(f"task {task.id}: planner-only evaluation needs tabletop tasks with a scene_seed")
    scene = current = random_scene(np.random.default_rng(task.scene_seed))
    rng = np.random.default_rng([seed, task.scene_seed])
    mind = WorldMemory(goal=task.goal, use_history=memory)
    planner.reset(task.goal, render(scene, 64))
    seconds, replans, steps, stopped = 0.0, 0, 0, ""
    while True:
        began = time.perf_counter()
        try:
            plan = planner.plan(task.goal, render(current, 64), mind)
        except SpiralError as err:
            row = PlanRow(
                task.id, task.level, False, False, steps, seconds + time.perf_counter() - began, str(err).splitlines()[0]
            )
            return replace(row, memory=memory, replans=replans)
        seconds += time.perf_counter() - began
        steps += len(plan.steps)
        current, stopped, slipped = execute(current, plan, rng, slip, mind, replans)
        if not slipped or replans >= max_replans:
            break
        replans += 1
    holds = bool(judged_condition(task.goal, task.judge).holds(scene, current))
    # A refusal moves nothing: it is right only where nothing should move.
    success = holds if not plan.feasible else holds and not stopped
    return PlanRow(task.id, task.level, success, plan.feasible, steps, seconds, stopped, memory, replans, task.expected_steps)


def evaluate_plans(
    tasks: list[Task], make_planner: Callable[[], object], out: Path, seed: int = 0, slip: float = 0.0, max_replans: int = 2
) -> list[PlanRow]:
    """Every task's row (with slips: one with memory and one without), from `out/plans.jsonl`
    where already there; a planner is made per row."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "plans.jsonl"
    done = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                row = PlanRow(**json.loads(line))
            except (json.JSONDecodeError, TypeError):
                continue  # a line cut by a kill is redone
            done[row.task, row.memory] = row
    rows = []
    for memory in (True, False) if slip > 0 else (True,):
        for task in tasks:
            if (task.id, memory) not in done:
                done[task.id, memory] = evaluate_task(task, make_planner(), seed, slip, max_replans, memory)
                with path.open("a") as f:
                    f.write(json.dumps(asdict(done[task.id, memory])) + "\n")
            rows.append(done[task.id, memory])
    return rows


def run_plan_eval(cfg: PlanEvalConfig) -> list[PlanRow]:
    tasks = cfg.load_tasks()
    backends = cfg.backends()
    backends.check(with_critic=False)

    def planner():
        return backends.planner_agent(cfg.seed)

    planner()  # a planner that cannot be built (a missing adapter, an unreadable model) fails before any work
    fingerprint = {"tasks": tasks_digest(tasks), "planner": cfg.planner, "planner_weights": cfg.planner_weights,
                   "agent_model": cfg.agent_model, "seed": cfg.seed, "slip": cfg.slip, "max_replans": cfg.max_replans,
                   **({"planner_model": cfg.planner_model} if cfg.planner_model else {})}  # fmt: skip
    claim_folder(cfg.out, fingerprint, "planner rows")
    rows = evaluate_plans(tasks, planner, cfg.out, cfg.seed, cfg.slip, cfg.max_replans)
    write_plans_report(cfg.out, rows, fingerprint)
    return rows


def write_plans_report(out: Path, rows: list[PlanRow], fingerprint: dict) -> Path:
    """plans.html: success by level, and success against the horizon with and without memory."""
    from html import escape

    from spiral.bench.metrics import wilson
    from spiral.bench.svg import line_plot

    horizons = sorted({r.expected_steps for r in rows if r.expected_steps})
    series = {}
    for memory in sorted({r.memory for r in rows}, reverse=True):
        points = []
        for h in horizons:
            mine = [r for r in rows if r.memory == memory and r.expected_steps == h]
            e = wilson(sum(r.success for r in mine), len(mine)) if mine else None
            points.append((e.value, e.lo, e.hi) if e else None)
        series["with memory" if memory else "without memory"] = points
    plot = line_plot(
        "horizon", "Plan success against horizon", [str(h) for h in horizons], series, "plan success", "steps the task needs"
    )
    about = escape(", ".join(f"{k}: {v}" for k, v in fingerprint.items()))
    page = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Planner-only evaluation</title></head><body>"
            f"<h1>Planner-only evaluation</h1><p>{about}</p><pre>{escape(summary(rows))}</pre>{plot}</body></html>")  # fmt: skip
    path = out / "plans.html"
    path.write_text(page, encoding="utf-8")
    return path


def summary(rows: list[PlanRow]) -> str:
    from spiral.bench.metrics import level_order, wilson

    lines = ["memory  level     tasks  plan success (95% CI)  errors", "------  --------  -----  ---------------------  ------"]
    for memory in sorted({r.memory for r in rows}, reverse=True):
        kept = [r for r in rows if r.memory == memory]
        for level in [*level_order({r.level for r in kept}), "all"]:
            mine = [r for r in kept if level in ("all", r.level)]
            e = wilson(sum(r.success for r in mine), len(mine))
            ci = f"{e.value:.1%} [{e.lo:.1%}, {e.hi:.1%}]"
            lines.append(
                f"{'yes' if memory else 'no':<6}  {level:<8}  {len(mine):>5}  {ci:>21}  {sum(bool(r.error) for r in mine):>6}"
            )
    secs = np.array([r.seconds for r in rows])
    lines.append(f"plan time: median {np.median(secs):.2f} s, p95 {np.percentile(secs, 95):.2f} s, max {secs.max():.2f} s")
    return "\n".join(lines)
