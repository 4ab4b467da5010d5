"""How long the lm planner takes to plan (issue targets on 2 CPU cores: median <= 2 s, p95 <= 5 s),
and how long loading it takes, on the free-form suite's requests.

    .venv/bin/python benchmarks/planner_latency.py [--suite tabletop-freeform] [--limit N] [--threads 2] [--weights W]

Each request is planned from its rendered start frame by a fresh agent (as the bench does), so a
plan's time is the model reading the request plus the solver; the model is loaded once, first,
and that load is reported on its own. The symbolic planner's time on tabletop-standard is printed
beside it, measured in the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import time

import numpy as np
import torch

from spiral.bench.tasks import limit_tasks, load_suite
from spiral.errors import SpiralError
from spiral.memory import WorldMemory
from spiral.worlds.tabletop.render import render
from spiral.worlds.tabletop.scene import random_scene


def plan_seconds(tasks, make) -> list[float]:
    seconds = []
    for task in tasks:
        frame = render(random_scene(np.random.default_rng(task.scene_seed)), 64)
        agent = make()
        agent.reset(task.goal, frame)  # the episode's start, as the loop does it: not part of a plan's time
        began = time.perf_counter()
        with contextlib.suppress(SpiralError):  # an unusable reading costs its time too
            agent.plan(task.goal, frame, WorldMemory(goal=task.goal))
        seconds.append(time.perf_counter() - began)
    return seconds


def line(name: str, seconds: list[float]) -> str:
    s = np.array(seconds)
    return f"{name:<28} n={len(s):>3}  median {np.median(s):.2f} s  p95 {np.percentile(s, 95):.2f} s  max {s.max():.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="tabletop-freeform")
    parser.add_argument("--limit", type=int, default=None, help="first N tasks of each level")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--weights", default=None, help="the lm planner's adapter (default: the shipped one)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from spiral.agents.plan.symbolic import SymbolicPlanAgent
    from spiral.worlds.tabletop.lm_planner import LMPlanAgent

    began = time.perf_counter()
    LMPlanAgent(adapter=args.weights)
    load = time.perf_counter() - began
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads")
    print(f"lm planner load (base from the cache, adapter merged): {load:.1f} s")
    tasks = limit_tasks(load_suite(args.suite), args.limit)
    print(line(f"lm on {args.suite}", plan_seconds(tasks, lambda: LMPlanAgent(adapter=args.weights))))
    standard = limit_tasks(load_suite("tabletop-standard"), args.limit)
    print(line("lm on tabletop-standard", plan_seconds(standard, lambda: LMPlanAgent(adapter=args.weights))))
    print(line("symbolic on tabletop-standard", plan_seconds(standard, SymbolicPlanAgent)))


if __name__ == "__main__":
    main()
