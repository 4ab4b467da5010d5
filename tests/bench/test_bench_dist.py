"""Sharding with torch.distributed: two CPU processes on gloo, launched the way torchrun launches
them; rank r runs pending[r::2], rank 0 merges, and the results equal a single-process run."""

import json
import os
import subprocess
import sys
from pathlib import Path

from spiral.bench.runner import BenchConfig, run_bench
from spiral.config import config_from_flat

HERE = Path(__file__).parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(HERE)}
OPTIONS = {
    "suite": "tabletop-short",
    "limit": 3,
    "methods": "stepwise,closed-loop",
    "world_model": "bench_fakes:sim_world_model",
    "planner": "symbolic",
}


def test_torchrun_two_gloo_processes_shard_and_merge(tmp_path):
    out = tmp_path / "dist"
    args = [f"--{k.replace('_', '-')}={v}" for k, v in OPTIONS.items()]
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "spiral.bench", "run", *args, "--no-progress", "--out", str(out)],
        env=ENV, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "ran 6 episodes (3 + 3 on 2 ranks)" in run.stdout
    assert not (out / "parts").exists()
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and len({(r["task"], r["method"]) for r in rows}) == 6

    single = run_bench(config_from_flat(BenchConfig, out=tmp_path / "single", progress=False, **OPTIONS))
    want = {r.key: r.without_timing() for r in single.rows}
    got = {f"{r['task']}\t{r['method']}": {k: v for k, v in r.items() if not k.endswith("_seconds")} for r in rows}
    assert got == want
