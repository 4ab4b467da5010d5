"""ActWM-Bench on `tabletop-standard` (90 tasks: 30 short, 30 medium, 30 long): wall time, and goal
success by level with 95% Wilson intervals, for the closed loop (and, if asked, the baselines).

    .venv/bin/python benchmarks/bench_standard.py [--methods closed-loop,stepwise,oneshot] [--workers 2]
                                                  [--limit N] [--out DIR] [--world-model NAME|module:callable]

The budget this suite is sized for: the closed loop on all 90 tasks within 15 minutes on 2 cores
(--workers 2). Results go to a fresh temporary folder unless --out is given (a folder that already
holds results of the same configuration is resumed, never mixed with another one).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from spiral.bench.metrics import summarise
from spiral.bench.runner import BenchConfig, run_bench
from spiral.config import config_from_flat
from spiral.errors import SpiralError

BUDGET_S = 15 * 60


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", default="closed-loop")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None, help="first N tasks of each level")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--world-model", default="tabletop")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="bench-standard-"))
    cfg = config_from_flat(BenchConfig, out=out, suite="tabletop-standard", methods=args.methods, workers=args.workers,
                           limit=args.limit, world_model=args.world_model, progress=sys.stderr.isatty())  # fmt: skip
    began = time.perf_counter()
    try:
        outcome = run_bench(cfg)
    except SpiralError as err:
        print(f"bench_standard: {err}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - began
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, "
          f"workers={args.workers}, world model: {args.world_model}")  # fmt: skip
    tasks = len({r.task for r in outcome.rows})
    print(f"tabletop-standard: {tasks} tasks x {args.methods}: {outcome.ran} episodes run in {seconds:.1f} s "
          f"({outcome.skipped} already done) -> {out}")  # fmt: skip
    for g in summarise(outcome.rows, cfg.methods.split(",")):
        print(f"  {g.method:22s} {g.level:7s} n={g.episodes:3d}  success {g.success.text(percent=True):18s} "
              f"calls/step {g.calls_per_step.text()}  wall/episode {g.wall_seconds.text(1)} s")  # fmt: skip
    if args.limit is None and "closed-loop" in args.methods.split(","):
        verdict = "within" if seconds <= BUDGET_S else "OVER"
        print(f"closed-loop budget: {seconds / 60:.1f} min, {verdict} the {BUDGET_S // 60}-minute budget")
    return 0


if __name__ == "__main__":
    sys.exit(main())
