"""Time of one GRPO iteration on the embedded tabletop model (issue target: 8 groups x 8 rollouts
in <= 30 s on 2 CPU cores), split into sampling + rewards and the update.

    .venv/bin/python benchmarks/grpo_iteration.py [--groups 8] [--group-size 8] [--repeats 3] [--threads 2] [--guidance 1]

Runs `spiral.rl.train.run_iteration` exactly as `spiral train grpo` does (horizon 1, every
stochastic denoising step trained, the KL term on), on the shipped weights, with the oracle reward,
twice in the same run: the oracle in this process, then over --threads worker processes (what
`spiral train grpo` does by default). The first iteration of each (text encoder, oracle and worker
warm-up) is not counted.
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
from spiral.rl.rewards import OracleReader, make_reward
from spiral.rl.train import Distributed, GRPOTrainConfig, load_policy, run_iteration


def timed_iterations(policy, opt, tasks, reward, cfg, dist, reader, repeats: int) -> tuple[float, float, float]:
    """Median (total, sample, update) seconds over `repeats` iterations after a warm-up one."""
    run_iteration(policy, opt, tasks, reward, cfg, 0, dist, 1, reader)
    records, totals = [], []
    for i in range(repeats):
        began = time.perf_counter()
        records.append(run_iteration(policy, opt, tasks, reward, cfg, i + 1, dist, 1, reader))
        totals.append(time.perf_counter() - began)
    return (
        statistics.median(totals),
        statistics.median(r["sample_seconds"] for r in records),
        statistics.median(r["update_seconds"] for r in records),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--groups", type=int, default=8)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    parser.add_argument(
        "--guidance", type=float, default=GRPOTrainConfig.guidance, help="rollout guidance (as `spiral train grpo`)"
    )
    parser.add_argument("--weights", default="")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = GRPOTrainConfig(
        out=Path("/dev/null"), weights=args.weights, groups=args.groups, group_size=args.group_size, guidance=args.guidance
    )
    policy, wm = load_policy(cfg.weights, cfg.guidance)
    opt = torch.optim.AdamW(policy.trainable(), lr=cfg.lr, weight_decay=0.0)
    tasks, reward, dist = TabletopTasks(wm.frame_size), make_reward(cfg.reward), Distributed()
    rows = []
    for processes in sorted({1, args.threads}):
        with OracleReader(processes) as reader:
            rows.append((processes, *timed_iterations(policy, opt, tasks, reward, cfg, dist, reader, args.repeats)))
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch threads {args.threads}")
    print(
        f"GRPO iteration, {args.groups} groups x {args.group_size} rollouts, {wm.sampler.num_inference_steps} denoising steps, "
        f"guidance {wm.sampler.guidance_scale:g} (median of {args.repeats}; target <= 30 s):"
    )
    print("  oracle processes   total   sample   update    (sample: SDE rollouts, decoding, oracle rewards;")
    for processes, total, sample, update in rows:  # update: re-evaluation with gradients, reference pass, AdamW)
        print(f"  {processes:16d} {total:6.2f} s {sample:6.2f} s {update:6.2f} s")
    if len(rows) == 2:
        print(f"  parallel oracle / in-process, total time: {rows[1][1] / rows[0][1]:.2f}")
    print(f"  peak memory of the main process {peak_mib:.0f} MiB")


if __name__ == "__main__":
    main()
