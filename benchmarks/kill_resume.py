"""kill -9 at random points of `spiral run`, `spiral bench run` and `spiral data make`, then the same
command again, until it finishes: is anything lost, duplicated or different from a run that was
never interrupted?

    .venv/bin/python benchmarks/kill_resume.py [--kills 20] [--seed 0] [--commands run,bench,data] [--out runs/kill-resume]

For each command: one uninterrupted run; then rounds in fresh folders, each killed (SIGKILL) at a
random point of its progress (after a random number of the episodes, journal lines or results it
writes, plus up to half a second), restarted with the same command, killed again..., until it exits
0, until `--kills` kills in all. The finished folders are compared with the uninterrupted one
after leaving out what differs between any two runs (wall-clock times): every episode of the
uninterrupted run is there (none lost), none twice (none duplicated), and each equals its
counterpart. Prints one line per command and exits 1 if any differs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SPIRAL = [sys.executable, "-m", "spiral.cli"]
GOAL = "line up the purple square, the red square and the green circle from left to right"
COMMANDS = {
    "run": ["run", "--goal", GOAL, "--scene-seed", "3", "--planner", "symbolic", "--max-tries", "2"],
    "bench": ["bench", "run", "--suite", "tabletop-short", "--limit", "4", "--planner", "symbolic", "--no-progress"],
    "data": ["data", "make", "--episodes", "12", "--seed", "5"],
}
TIMES = ("seconds", "generate_seconds", "critique_seconds", "agent_seconds", "model_seconds", "plan_seconds", "wall_seconds")


def without_times(value):
    if isinstance(value, dict):
        return {k: without_times(v) for k, v in value.items() if k not in TIMES and not k.endswith("_seconds")}
    if isinstance(value, list):
        return [without_times(v) for v in value]
    return value


def episodes(command: str, folder: Path) -> list[tuple[str, object]]:
    """(id, content without times) of every episode the finished folder holds, in file order."""
    if command == "run":
        episode = json.loads((folder / "episode" / "episode.json").read_text())
        return [("episode", without_times(episode))]
    if command == "bench":
        rows = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines() if line.strip()]
        return [(f"{r.get('task')}/{r.get('method')}", without_times(r)) for r in rows]
    entries = [json.loads(line) for line in (folder / "index.jsonl").read_text().splitlines() if line.strip()]
    return [(e["id"], without_times(json.loads((folder / e["id"] / "episode.json").read_text()))) for e in entries]


# What each command appends as it finishes a piece of work: a kill is aimed at a random point of
# that progress (wall-clock aiming misses when the machine's load changes from run to run).
PROGRESS = {"run": "journal/calls.jsonl", "bench": "results.jsonl", "data": "index.jsonl"}


def lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def run_to_end(command: str, folder: Path, rng: np.random.Generator, total: int, kills_left: int) -> int:
    """Run the command, killing it (at most `kills_left` times) once it has written a random number
    of its `total` progress lines, plus up to half a second (so some kills land mid-write); the kills made."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    progress = folder / PROGRESS[command]
    kills = 0
    while True:
        proc = subprocess.Popen(
            [*SPIRAL, *COMMANDS[command], "--out", str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env
        )
        done = lines(progress)
        target = int(rng.integers(done, total)) if kills < kills_left and done < total else None
        extra = float(rng.uniform(0.0, 0.5))
        reached = None
        while proc.poll() is None:
            if target is not None and reached is None and lines(progress) > target:
                reached = time.monotonic()
            if reached is not None and time.monotonic() - reached >= extra:
                break
            time.sleep(0.01)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            continue
        if proc.returncode != 0:
            raise SystemExit(f"{command} failed after {kills} kills: {proc.stderr.read().decode()[-400:]}")
        return kills


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--commands", default="run,bench,data")
    parser.add_argument("--out", type=Path, default=Path("runs/kill-resume"))
    a = parser.parse_args()
    rng = np.random.default_rng(a.seed)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; {a.kills} kills per command, seed {a.seed}")
    shutil.rmtree(a.out, ignore_errors=True)
    failed = False
    for command in a.commands.split(","):
        began = time.monotonic()
        run_to_end(command, a.out / command / "straight", rng, 0, kills_left=0)
        duration = time.monotonic() - began
        expected = episodes(command, a.out / command / "straight")
        total = lines(a.out / command / "straight" / PROGRESS[command])
        kills = rounds = lost = duplicated = differing = 0
        while kills < a.kills:
            folder = a.out / command / f"round-{rounds}"
            kills += run_to_end(command, folder, rng, total, kills_left=a.kills - kills)
            rounds += 1
            got = episodes(command, folder)
            ids = [i for i, _ in got]
            duplicated += len(ids) - len(set(ids))
            mine = dict(got)
            lost += sum(i not in mine for i, _ in expected)
            differing += sum(i in mine and mine[i] != content for i, content in expected)
        ok = lost == duplicated == differing == 0
        failed |= not ok
        print(
            f"{command}: {kills} kills over {rounds} rounds (uninterrupted {duration:.1f} s, {len(expected)} episodes): "
            f"{lost} lost, {duplicated} duplicated, {differing} differing — {'same as uninterrupted' if ok else 'DIFFERENT'}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
