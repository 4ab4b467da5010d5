"""Time of one GRPO iteration on the embedded tabletop model (issue target: 8 groups x 8 rollouts
in <= 30 s on 2 CPU cores), split into sampling + rewards and the update.

    .venv/bin/python benchmarks/grpo_iteration.py [--groups 8] [--group-size 8] [--repeats 3] [--threads 2]

Runs `spiral.rl.train.run_iteration` exactly as `spiral train grpo` does (horizon 1, every
stochastic denoising step trained, the KL term on), on the shipped weights, with the oracle reward.
The first iteration (text encoder and oracle warm-up) is not counted.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import time
from pathlib import Path

import torch

from spiral.rl.curriculum import TabletopTasks
from spiral.rl.rewards import make_reward
from spiral.rl.train import Distributed, GRPOTrainConfig, load_policy, run_iteration


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--groups", type=int, default=8)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    parser.add_argument("--weights", default="")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = GRPOTrainConfig(out=Path("/dev/null"), weights=args.weights, groups=args.groups, group_size=args.group_size)
    policy, wm = load_policy(cfg.weights)
    opt = torch.optim.AdamW(policy.trainable(), lr=cfg.lr, weight_decay=0.0)
    tasks, reward, dist = TabletopTasks(wm.frame_size), make_reward(cfg.reward), Distributed()
    run_iteration(policy, opt, tasks, reward, cfg, 0, dist, horizon=1)  # warm-up
    records, totals = [], []
    for i in range(args.repeats):
        began = time.perf_counter()
        records.append(run_iteration(policy, opt, tasks, reward, cfg, i + 1, dist, horizon=1))
        totals.append(time.perf_counter() - began)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    sample = statistics.median(r["sample_seconds"] for r in records)
    update = statistics.median(r["update_seconds"] for r in records)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch threads {args.threads}")
    print(f"GRPO iteration, {args.groups} groups x {args.group_size} rollouts, {wm.sampler.num_inference_steps} denoising steps:")
    print(f"  total   {statistics.median(totals):6.2f} s (median of {args.repeats}; target <= 30 s)")
    print(f"  sample  {sample:6.2f} s (SDE rollouts, decoding, oracle rewards)")
    print(f"  update  {update:6.2f} s (re-evaluation with gradients, reference pass for the KL, AdamW)")
    print(f"  peak memory {peak_mib:.0f} MiB")


if __name__ == "__main__":
    main()
