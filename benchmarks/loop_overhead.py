"""Loop overhead of the closed loop on the embedded default: wall time not spent inside the world
model's generate calls or the agents' plan/critique calls, as a share of episode time.

    .venv/bin/python benchmarks/loop_overhead.py [--episodes 5]

What counts as overhead: the loop's own bookkeeping, reading object states into memory (the
oracle's perception after each accepted step), building the memory summary, stitching.
"""

from __future__ import annotations

import argparse
import os
import platform

import numpy as np

from spiral.agents.critic.oracle import OracleCriticAgent
from spiral.agents.plan.symbolic import SymbolicPlanAgent
from spiral.backends import observer_for
from spiral.bench.tasks import load_suite
from spiral.loop import LoopConfig, run
from spiral.worldmodels.tabletop import TabletopWorldModel
from spiral.worlds.tabletop.render import render
from spiral.worlds.tabletop.scene import random_scene


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=5)
    args = parser.parse_args()
    wm = TabletopWorldModel.load()
    total = model = agents = 0.0
    calls = 0
    for seed, task in enumerate(load_suite("tabletop-long")[: args.episodes]):
        frame = render(random_scene(np.random.default_rng(task.scene_seed)), wm.frame_size)
        episode = run(
            task.goal,
            frame,
            wm,
            SymbolicPlanAgent(seed),
            OracleCriticAgent(),
            LoopConfig(seed=seed),
            observe=observer_for("tabletop"),
        )
        episode.video()  # stitching is part of the loop's work
        total += episode.seconds
        model += episode.model_seconds
        agents += episode.agent_seconds
        calls += episode.generation_calls
    overhead = total - model - agents
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    print(f"{args.episodes} long-horizon closed-loop episodes, {calls} generation calls, {total:.1f} s in all")
    print(f"  world model {model:.2f} s ({model / total:.1%}), agents {agents:.2f} s ({agents / total:.1%})")
    print(f"  loop overhead {overhead:.3f} s = {overhead / total:.2%} of episode time (target <= 2%)")


if __name__ == "__main__":
    main()
