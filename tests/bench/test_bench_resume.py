"""kill -9 in the middle of a run, then a rerun: every episode exactly once, and the same results as
a run that was never interrupted (which here also runs on 2 worker processes)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(HERE), "SIM_DELAY": "0.05"}
ARGS = ["--suite", "tabletop-short", "--limit", "4", "--methods", "stepwise,closed-loop", "--no-progress", "--planner", "symbolic",
        "--world-model", "bench_fakes:slow_sim_world_model"]  # fmt: skip
EPISODES = 8


def bench(*args):
    return subprocess.run(
        [sys.executable, "-m", "spiral.bench", "run", *ARGS, *args], env=ENV, capture_output=True, text=True, timeout=300
    )


def finished_lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def results(out: Path) -> dict:
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    keyed = {(r["task"], r["method"]): {k: v for k, v in r.items() if not k.endswith("_seconds")} for r in rows}
    assert len(keyed) == len(rows), "an episode was counted twice"
    return keyed


def test_a_run_killed_with_sigkill_resumes_without_losing_or_repeating_episodes(tmp_path):
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    proc = subprocess.Popen([sys.executable, "-m", "spiral.bench", "run", *ARGS, "--out", str(killed)], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline and finished_lines(killed / "results.jsonl") < 2 and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = finished_lines(killed / "results.jsonl")
    assert 2 <= done < EPISODES, "the run should have been killed part way"
    # A kill can also land inside a write; make sure this run has such a torn line to repair.
    with open(killed / "results.jsonl", "ab") as f:
        f.write(b'{"task": "short-00')

    resumed = bench("--out", str(killed))
    assert resumed.returncode == 0, resumed.stderr
    assert f"ran {EPISODES - done} episodes ({done} were already done)" in resumed.stdout
    uninterrupted = bench("--out", str(clean), "--workers", "2")
    assert uninterrupted.returncode == 0, uninterrupted.stderr

    got, want = results(killed), results(clean)
    assert len(want) == EPISODES and (killed / "results.jsonl").read_bytes().count(b"\n") == EPISODES
    assert got == want
