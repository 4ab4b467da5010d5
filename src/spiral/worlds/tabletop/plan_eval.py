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
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from spiral.bench.tasks import LEVEL_ORDER, SUITES, Task, limit_tasks, load_suite, read_tasks
from spiral.config import option, required
from spiral.errors import SpiralError
from spiral.memory import WorldMemory
from spiral.types import Plan
from spiral.worlds.tabletop.actions import Target, apply, precondition_errors, relation_holds, sample_target
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
    planner: str = option("lm", "PlanAgent backend (lm, symbolic, openai, hf)")
    planner_weights: str = option("", "lm planner: its adapter file ('' = the shipped one)")
    agent_model: str = option("", "openai: model name served at --base-url; hf: local model folder")
    base_url: str = option("http://localhost:8000/v1", "OpenAI-compatible server of the openai planner")
    api_key_env: str = option("OPENAI_API_KEY", "environment variable holding the API key ('' for none)")
    limit: int | None = option(None, "only the first N tasks of each level")
    seed: int = option(0, "seed of the planner and of where the simulator lands each object")

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
    steps: int
    seconds: float  # the planner's own time
    error: str = ""  # the planner failed (no usable answer, a goal it cannot read, a step it cannot do)


def execute(scene: Scene, plan: Plan, rng: np.random.Generator) -> tuple[Scene, str]:
    """The scene after the plan's steps, each done exactly; and why execution stopped early ('' if it did not)."""
    current = scene
    for i, step in enumerate(plan.steps, 1):
        try:
            action = parse(step.instruction)
        except SpiralError as err:
            return current, f"step {i} cannot be read: {err}"
        problems = precondition_errors(current, action)
        target = None if problems else sample_target(current, action, rng) or _grid_target(current, action)
        if target is None:
            return current, f"step {i} cannot be done: {'; '.join(problems) or 'no room'}"
        current = apply(current, action, target)
    return current, ""


def _grid_target(scene: Scene, action) -> Target | None:
    """The first free spot of the solver's grid where the step's postcondition holds: a perfect
    executor finds room wherever there is some, not only where random draws land."""
    for x, y in free_spots(scene, action):
        target = Target(float(x), float(y), on=action.anchor if action.relation == "on" else None)
        after = apply(scene, action, target)
        if relation_holds(after, action.subject, action.relation, action.anchor) and not validity_errors(after):
            return target
    return None


def evaluate_task(task: Task, planner, seed: int) -> PlanRow:
    if task.scene_seed is None:
        raise SpiralError(f"task {task.id}: planner-only evaluation needs tabletop tasks with a scene_seed")
    scene = random_scene(np.random.default_rng(task.scene_seed))
    began = time.perf_counter()
    try:
        plan = planner.plan(task.goal, render(scene, 64), WorldMemory(goal=task.goal))
    except SpiralError as err:
        return PlanRow(task.id, task.level, False, False, 0, time.perf_counter() - began, str(err).splitlines()[0])
    seconds = time.perf_counter() - began
    final, stopped = execute(scene, plan, np.random.default_rng([seed, task.scene_seed]))
    success = not stopped and bool(judged_condition(task.goal, task.judge).holds(scene, final))
    return PlanRow(task.id, task.level, success, plan.feasible, len(plan.steps), seconds, stopped)


def evaluate_plans(tasks: list[Task], make_planner: Callable[[], object], out: Path, seed: int = 0) -> list[PlanRow]:
    """Every task's row, from `out/plans.jsonl` where already there; a planner is made per task."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "plans.jsonl"
    done = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                row = PlanRow(**json.loads(line))
            except (json.JSONDecodeError, TypeError):
                continue  # a line cut by a kill is redone
            done[row.task] = row
    rows = []
    for task in tasks:
        if task.id not in done:
            done[task.id] = evaluate_task(task, make_planner(), seed)
            with path.open("a") as f:
                f.write(json.dumps(asdict(done[task.id])) + "\n")
        rows.append(done[task.id])
    return rows


def run_plan_eval(cfg: PlanEvalConfig) -> list[PlanRow]:
    from spiral.backends import make_planner

    tasks = cfg.load_tasks()

    def planner():
        return make_planner(cfg.planner, cfg.agent_model, cfg.base_url, cfg.api_key_env, cfg.seed, cfg.planner_weights)

    planner()  # a planner that cannot be built (a missing adapter, a bad name) fails before any work
    return evaluate_plans(tasks, planner, cfg.out, cfg.seed)


def summary(rows: list[PlanRow]) -> str:
    lines = ["level    tasks  plan success  errors", "-------  -----  ------------  ------"]
    for level in [lv for lv in LEVEL_ORDER if any(r.level == lv for r in rows)] + ["all"]:
        mine = [r for r in rows if level in ("all", r.level)]
        ok = sum(r.success for r in mine)
        lines.append(f"{level:<7}  {len(mine):>5}  {ok / len(mine):>11.1%}  {sum(bool(r.error) for r in mine):>6}")
    secs = np.array([r.seconds for r in rows])
    lines.append(f"plan time: median {np.median(secs):.2f} s, p95 {np.percentile(secs, 95):.2f} s, max {secs.max():.2f} s")
    return "\n".join(lines)
