"""`spiral bench run`, `spiral bench report` and `spiral bench tasks`. spiral/cli.py hooks them in with
`add_bench_commands(sub)`; `python -m spiral.bench ...` runs them on their own (e.g. under torchrun:
`torchrun --nproc-per-node 2 -m spiral.bench run --suite tabletop-standard --out DIR`)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from spiral.config import add_config_args, config_from_args
from spiral.errors import SpiralError


def _cmd_run(ns: argparse.Namespace) -> int:
    from spiral.bench.metrics import ERRORED
    from spiral.bench.report import markdown, write_report
    from spiral.bench.runner import BenchConfig, run_bench

    outcome = run_bench(config_from_args(BenchConfig, ns))
    if not outcome.rows:  # a rank other than 0: rank 0 prints for everyone
        return 0
    report, files = write_report(outcome.out)
    ranks = (
        ""
        if len(outcome.ran_by_rank) == 1
        else f" ({' + '.join(map(str, outcome.ran_by_rank))} on {len(outcome.ran_by_rank)} ranks)"
    )
    print(f"{outcome.out}: ran {outcome.ran} episodes{ranks} ({outcome.skipped} were already done) in {outcome.seconds:.1f} s")
    print(markdown(report), end="")
    print(f"report: {files.html}")
    errored = [r for r in outcome.rows if r.status == ERRORED]
    if errored:
        print(f"spiral: {len(errored)} episodes errored (an agent's server could not be used: {errored[0].error}); they are "
              "left out of every rate: rerun the same command to redo them", file=sys.stderr)  # fmt: skip
        return 4
    return 0


def _cmd_report(ns: argparse.Namespace) -> int:
    from spiral.bench.report import markdown, summary_json, write_report

    report, files = write_report(Path(ns.dir))
    if ns.json:
        print(summary_json(report))
    else:
        print(markdown(report), end="")
        print(f"report: {files.html}\nmarkdown: {files.markdown}")
    return 0


def _cmd_tasks(ns: argparse.Namespace) -> int:
    from spiral.bench.tasks import to_jsonl, tuning_tasks

    tasks = tuning_tasks(ns.first, ns.size, ns.freeform)
    out = Path(ns.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(to_jsonl(tasks), encoding="utf-8")
    print(f"{out}: {len(tasks)} tasks, none in a built-in suite; run them with: spiral bench run --tasks {out} ...")
    return 0


def _cmd_plans(ns: argparse.Namespace) -> int:
    from spiral.worlds.tabletop.plan_eval import PlanEvalConfig, run_plan_eval, summary

    cfg = config_from_args(PlanEvalConfig, ns)
    rows = run_plan_eval(cfg)
    print(summary(rows))
    print(f"rows: {cfg.out / 'plans.jsonl'}")
    return 0


def add_bench_commands(subparsers) -> None:
    """Add `bench run` and `bench report` to the `spiral` command's subparsers."""
    from spiral.bench.runner import BenchConfig

    bench = subparsers.add_parser("bench", help="ActWM-Bench: run task suites and report with confidence intervals")
    sub = bench.add_subparsers(dest="bench_command", required=True)
    run = sub.add_parser("run", help="run methods on a task suite (resumable; shards under torchrun)")
    add_config_args(run, BenchConfig)
    run.set_defaults(func=_cmd_run)
    report = sub.add_parser("report", help="write report.html and report.md for a run folder")
    report.add_argument("dir", help="the run folder (--out of `spiral bench run`)")
    report.add_argument("--json", action="store_true", help="print the summary as JSON")
    report.set_defaults(func=_cmd_report)
    tasks = sub.add_parser("tasks", help="write a tuning task file: tabletop tasks of every level that no built-in suite holds")
    tasks.add_argument("--out", required=True, help="the JSONL file to write (for `spiral bench run --tasks`)")
    tasks.add_argument("--first", type=int, default=30, help="index of the first task of each level (from 30: not in a suite)")
    tasks.add_argument("--size", type=int, default=30, help="tasks per level")
    tasks.add_argument(
        "--freeform", action="store_true", help="free-form requests made like tabletop-freeform's (its tuning split)"
    )
    tasks.set_defaults(func=_cmd_tasks)
    from spiral.worlds.tabletop.plan_eval import PlanEvalConfig

    plans = sub.add_parser("plans", help="planner-only: carry out each plan exactly in the tabletop simulator and judge the goal")
    add_config_args(plans, PlanEvalConfig)
    plans.set_defaults(func=_cmd_plans)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    parser = argparse.ArgumentParser(prog="spiral", description="ActWM-Bench")
    add_bench_commands(parser.add_subparsers(dest="command", required=True))
    ns = parser.parse_args(["bench", *(sys.argv[1:] if argv is None else argv)])
    try:
        return ns.func(ns)
    except SpiralError as err:
        print(f"spiral: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("spiral: interrupted; finished episodes are kept and a rerun resumes", file=sys.stderr)
        return 130
