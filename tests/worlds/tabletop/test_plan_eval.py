"""Planner-only evaluation: plans carried out exactly (or with slips and replans) in the simulator."""

import json

import pytest

from spiral.agents.plan.symbolic import SymbolicPlanAgent
from spiral.bench.tasks import Task, limit_tasks, load_suite
from spiral.errors import SpiralError
from spiral.types import Plan
from spiral.worlds.tabletop.plan_eval import PlanEvalConfig, evaluate_plans, run_plan_eval, summary


class Refuser:
    name = "refuser"

    def reset(self, goal, frame):
        pass

    def plan(self, goal, frame, memory):
        return Plan(goal, (), "no", self.name, feasible=False, reason="no")


def test_exact_plans_reach_their_goals_and_a_refusal_is_right_only_where_nothing_should_move(tmp_path):
    tasks = limit_tasks(load_suite("tabletop-standard"), 2)
    rows = evaluate_plans(tasks, SymbolicPlanAgent, tmp_path / "a")
    assert len(rows) == 6 and sum(r.success for r in rows) >= 5 and all(r.memory for r in rows)
    refuse = Task("r", "tabletop", "paint it", "refusal", 0, tasks[0].scene_seed, judge="unchanged")
    rows = evaluate_plans([tasks[0], refuse], Refuser, tmp_path / "b")
    assert [r.success for r in rows] == [False, True] and not any(r.feasible for r in rows)


def test_slips_replan_with_and_without_memory_and_a_rerun_skips_what_is_done(tmp_path):
    cfg = PlanEvalConfig(out=tmp_path, suite="tabletop-standard", planner="symbolic", limit=2, slip=0.5)
    rows = run_plan_eval(cfg)
    assert len(rows) == 12 and {r.memory for r in rows} == {True, False}
    assert any(r.replans for r in rows) and all(r.replans <= 2 for r in rows)
    assert "without memory" in (tmp_path / "plans.html").read_text() and "no      all" in summary(rows)
    before = (tmp_path / "plans.jsonl").read_text()
    assert run_plan_eval(cfg) == rows and (tmp_path / "plans.jsonl").read_text() == before
    assert len([json.loads(x) for x in before.splitlines()]) == 12
    with pytest.raises(SpiralError, match="other settings"):
        run_plan_eval(PlanEvalConfig(out=tmp_path, suite="tabletop-standard", planner="symbolic", limit=2, slip=0.3))
    with pytest.raises(SpiralError, match="--slip must be in"):
        PlanEvalConfig(out=tmp_path, suite="tabletop-standard", slip=1.5)
