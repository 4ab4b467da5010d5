"""CLI smoke runs in a subprocess, with tiny budgets."""

import os
import signal
import subprocess
import sys
import time

from spiral.data.format import read_index

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def spiral(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "spiral.cli", *args], capture_output=True, text=True, env=ENV, timeout=timeout)


def test_data_make_then_resume(tmp_path):
    out = tmp_path / "ds"
    run = spiral("data", "make", "--world", "tabletop", "--episodes", "2", "--seed", "1", "--frame-size", "32", "--out", str(out))
    assert run.returncode == 0, run.stderr
    assert "wrote 2 episodes" in run.stdout
    run = spiral("data", "make", "--episodes", "3", "--seed", "1", "--frame-size", "32", "--out", str(out))
    assert run.returncode == 0 and "wrote 1 episodes (2 were already there)" in run.stdout


def test_data_make_survives_kill_9(tmp_path):
    """Kill the writer mid-run; the rerun finishes with every episode exactly once and the same
    contents as an uninterrupted run."""
    out, clean = tmp_path / "killed", tmp_path / "clean"
    args = ["--episodes", "12", "--seed", "5", "--frame-size", "32", "--levels", "short"]
    proc = subprocess.Popen([sys.executable, "-m", "spiral.cli", "data", "make", *args, "--out", str(out)], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline and (not (out / "index.jsonl").exists() or len(read_index(out, repair=False)) < 3):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = len(read_index(out, repair=True))
    assert 3 <= before < 12, "the writer should have been killed part way"
    assert spiral("data", "make", *args, "--out", str(out)).returncode == 0
    assert spiral("data", "make", *args, "--out", str(clean)).returncode == 0
    ids = [e["id"] for e in read_index(out)]
    assert ids == [f"ep-{i:06d}" for i in range(12)]
    for i in ids:
        assert (out / i / "episode.json").read_text() == (clean / i / "episode.json").read_text()


def test_bad_input_is_a_message_not_a_traceback(tmp_path):
    run = spiral("data", "make", "--frame-size", "8", "--out", str(tmp_path / "x"))
    assert run.returncode == 2
    assert "frame-size must be at least 32" in run.stderr and "Traceback" not in run.stderr


def test_demo_writes_video_and_episode(tmp_path):
    run = spiral("demo", "--out", str(tmp_path))
    assert run.returncode == 0, run.stderr
    assert "goal achieved (judged by the oracle from pixels): yes" in run.stdout
    assert (tmp_path / "demo.mp4").stat().st_size > 1000
    assert (tmp_path / "demo" / "episode.json").is_file()
