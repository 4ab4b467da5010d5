"""benchmarks/gpu_real_shapes.py cannot rot unseen: its --tiny run goes through the same code (published
configs scaled down, random weights, a clip and a GRPO update) on the CPU, and without a GPU the real
run says so and exits cleanly."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_real_shapes.py"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=ENV, timeout=120, cwd=ROOT)


def test_tiny_run_measures_a_clip_and_a_grpo_update_per_model(tmp_path):
    out = tmp_path / "shapes.json"
    done = run("--tiny", "--backbones", "wan-i2v,cogvideox-i2v", "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text())
    assert report["tiny"] and "prompt_embeds" in report["text_encoders"]
    rows = report["rows"]
    assert {r["backbone"] for r in rows} == {"wan-i2v", "cogvideox-i2v"}
    assert [r["model"] for r in rows] == ["Wan2.1-I2V-14B-480P", "Wan2.2-TI2V-5B", "CogVideoX-5b-I2V"]
    for row in rows:
        assert row["status"] == "ok", row
        for key in ("clip_seconds", "seconds_per_step", "grpo_rollout_seconds", "grpo_update_seconds"):
            assert row[key] > 0, (row["model"], key)
        assert row["trained_steps"] == [0] and row["lora_parameters"] > 0
    assert "| Wan2.2-TI2V-5B |" in done.stdout and "| clip s |" in done.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="the real run would start on this GPU")
def test_without_a_gpu_the_real_run_says_so_and_exits_0(tmp_path):
    out = tmp_path / "shapes.json"
    done = run("--out", str(out))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1 and "needs a CUDA GPU" in lines[0] and "HunyuanVideo-I2V" in lines[0]
    assert not out.exists()
