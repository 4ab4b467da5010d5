"""Run by test_grpo_train.py under torchrun: a tiny GRPO run with a brightness reward (the oracle
gives a random model no signal) whose guard, on process 0 only, fires at iteration 3 on scripted
probe readings; then each process writes what it ended with.

usage: grpo_dist_script.py WEIGHTS OUT
"""

import json
import sys
from pathlib import Path

from grpo_tiny import brightness, digest, no_judge
from tabletop_tiny import NetPixels

import spiral.rl.train as train
from spiral.rl.guard import ProbeReading
from spiral.worldmodels.tabletop import TabletopWorldModel

# Process 0's guard fires at iteration 3 (reward up 0.1, judged success down 0.2 against iteration 1).
READINGS = {0: (0.30, 0.80), 1: (0.30, 0.80), 2: (0.31, 0.80), 3: (0.40, 0.60), 4: (0.5, 0.5), 5: (0.6, 0.4)}


def scripted_probe_reading(policy, probes, reward, iteration, reader=None, judge=None):
    return ProbeReading(iteration, *READINGS[iteration])


def main() -> None:
    weights, out = sys.argv[1], Path(sys.argv[2])
    seen, tasks = {}, []
    load_policy = train.load_policy

    def capturing_load_policy(path, guidance=0.0):
        policy, wm = load_policy(path, guidance)
        seen["policy"], seen["start"] = policy, digest(policy.net.state_dict())
        return policy, wm

    def reward(clips, task):
        tasks.append(task.instruction)
        return brightness(clips, task)

    train.load_policy = capturing_load_policy
    train.judged_success = no_judge
    train.probe_reading = scripted_probe_reading
    TabletopWorldModel.decode = NetPixels.decode  # the brightness reward reads the net's own pixels
    cfg = train.GRPOTrainConfig(weights=weights, out=out, iterations=6, groups=2, group_size=2, lr=1e-3, eval_every=1, probes=2)
    outcome = train.train_grpo(cfg, progress=False, reward=reward)
    dist = train.Distributed.from_env()
    state = seen["policy"].net.state_dict()
    record = {
        "rank": dist.rank,
        "world": dist.world,
        "iterations": outcome.iterations,
        "stopped": outcome.stopped_by_guard,
        "start": seen["start"],
        "final": digest(state),
        "final_half": digest({k: v.half() for k, v in state.items()}),
        "tasks": tasks,
    }
    (out / f"rank{dist.rank}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    main()
