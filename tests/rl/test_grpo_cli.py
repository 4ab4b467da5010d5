"""`spiral train grpo` smoke runs in a subprocess with the real oracle reward and judge."""

import json
import os
import subprocess
import sys

import pytest
from grpo_tiny import tiny_weights
from safetensors import safe_open

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def spiral(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "spiral.cli", *args], capture_output=True, text=True, env=ENV, timeout=timeout)


@pytest.fixture(scope="module")
def faint_weights(tmp_path_factory):
    # Faint changes keep the oracle fast: it reads a random model's loud noise at ~1 s a clip.
    return tiny_weights(tmp_path_factory.mktemp("tiny") / "tiny.safetensors", std=0.005)


def test_train_grpo_writes_weights_log_and_checkpoint(faint_weights, tmp_path):
    out = tmp_path / "grpo"
    # A typo first: refused with a message, and the folder is not claimed by the bad settings.
    bad = spiral("train", "grpo", "--weights", str(faint_weights), "--out", str(out), "--reward", "oracel")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "spiral: error: unknown reward 'oracel' in 'oracel'; use oracle, learned" in bad.stderr
    assert not (out / "config.json").exists()

    args = ["--weights", str(faint_weights), "--out", str(out), "--iterations", "2", "--groups", "2",
            "--group-size", "2", "--probes", "2", "--eval-every", "1"]  # fmt: skip
    run = spiral("train", "grpo", *args)
    assert run.returncode == 0, run.stderr
    weights = out / "tabletop_wm.safetensors"
    assert f"weights: {weights} (after 2 iterations)" in run.stdout
    assert f"cp {weights} src/spiral/assets/" in run.stdout
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in log] == [0, 1, 2]
    assert all(0 <= r["probe_judged"] <= 1 for r in log) and all(0 <= r["judged"] <= 1 for r in log[1:])
    with safe_open(str(out / "checkpoint.safetensors"), framework="pt") as f:
        assert f.metadata()["iteration"] == "2"
    with safe_open(str(weights), framework="pt") as f:
        info = f.metadata()
    assert info["grpo_iterations"] == "2" and info["reward"] == "oracle" and info["base"] == str(faint_weights)
    assert json.loads((out / "config.json").read_text())["reward"] == "oracle"

    again = spiral("train", "grpo", *args)  # finished: exports again, no new iterations
    assert again.returncode == 0 and "(after 2 iterations)" in again.stdout
    assert len((out / "log.jsonl").read_text().splitlines()) == 3


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--schedule", "1:0,2", "spiral: error: bad curriculum stage '2': write HORIZON:START_ITERATION"),
        ("--schedule", "2:10", "spiral: error: the curriculum '2:10' must start at iteration 0"),
        ("--reward", "oracle=-1", "spiral: error: reward weights must be > 0, got 'oracle=-1'"),
        ("--reward", "judge", "spiral: error: unknown reward 'judge'"),
    ],
)
def test_bad_options_are_a_message_not_a_traceback(faint_weights, tmp_path, option, value, message):
    out = tmp_path / "x"
    run = spiral("train", "grpo", "--weights", str(faint_weights), "--out", str(out), option, value)
    assert run.returncode == 2
    assert message in run.stderr and "Traceback" not in run.stderr
    assert not (out / "config.json").exists()
