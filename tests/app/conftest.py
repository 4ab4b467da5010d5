"""Fixtures of the `spiral serve` tests: tiny world-model weights (tests/test_cli.py builds them), and
one real episode made by `spiral run` with them, shared by the tests that read a finished run."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from serve_helpers import ENV, GOAL, SCENE  # noqa: E402

from test_cli import tiny_weights  # noqa: E402


@pytest.fixture(scope="session")
def weights(tmp_path_factory) -> Path:
    return tiny_weights(tmp_path_factory.mktemp("weights"))


@pytest.fixture(scope="session")
def cli_run(tmp_path_factory, weights) -> Path:
    """A finished episode made by hand with `spiral run` (no serve.json): 3 clips, one replan."""
    out = tmp_path_factory.mktemp("made") / "cli-run"
    run = subprocess.run([sys.executable, "-m", "spiral.cli", "run", "--goal", GOAL, "--scene-seed", str(SCENE), "--planner", "symbolic",
                          "--critic", "oracle", "--world-model-path", str(weights), "--max-tries", "1", "--max-replans", "1",
                          "--max-generations", "3", "--out", str(out)], capture_output=True, text=True, env=ENV, timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr
    return out


@pytest.fixture
def root(tmp_path, cli_run) -> Path:
    """A root of run folders holding a copy of the finished episode."""
    root = tmp_path / "root"
    shutil.copytree(cli_run, root / "cli-run")
    return root
