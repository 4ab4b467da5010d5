"""CLI smoke runs in a subprocess, with tiny budgets."""

import json
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
    (tmp_path / "a-file").write_text("x")
    run = spiral("data", "make", "--episodes", "1", "--out", str(tmp_path / "a-file"))
    assert run.returncode == 2 and "is a file; give a folder" in run.stderr and "Traceback" not in run.stderr


def tiny_weights(tmp_path):
    """A tiny randomly initialised tabletop model, so `spiral run` smoke tests do not depend on
    how good the shipped one is."""
    import torch

    from spiral.worldmodels.tabletop_net import TabletopNet, TabletopNetConfig
    from spiral.worldmodels.tabletop_train import export_weights

    torch.manual_seed(0)
    path = tmp_path / "tiny.safetensors"
    export_weights(path, TabletopNet(TabletopNetConfig(dim=32, depth=1, heads=2)), {"steps": 0})
    return path


def test_run_closed_loop_writes_episode_video_and_viewer(tmp_path):
    out = tmp_path / "run"
    from spiral.demo import demo_request

    goal = demo_request(4, "medium").judge  # its canonical goal: the symbolic planner reads it exactly
    run = spiral("run", "--goal", goal, "--planner", "symbolic", "--scene-seed", "4", "--world-model-path",
                 str(tiny_weights(tmp_path)), "--max-generations", "4", "--out", str(out))  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "[plan 1] (initial)" in run.stderr and "goal achieved (judged by the oracle from pixels):" in run.stdout
    assert f"viewer:  {out / 'viewer.html'}" in run.stdout
    episode = json.loads((out / "episode" / "episode.json").read_text())
    assert episode["goal"] == goal and episode["extra"]["method"] == "closed-loop"
    assert 1 <= sum(len(s["attempts"]) for s in episode["steps"]) <= 4
    assert (out / "video.mp4").stat().st_size > 500
    assert "<script" not in (out / "viewer.html").read_text()


def test_run_again_resumes_its_episode_and_other_settings_are_refused(tmp_path):
    out, weights = tmp_path / "run", str(tiny_weights(tmp_path))
    args = ["run", "--goal", "clear the left side", "--planner", "symbolic", "--scene-seed", "4", "--world-model-path", weights,
            "--max-generations", "3", "--out", str(out)]  # fmt: skip
    first = spiral(*args)
    assert first.returncode == 0, first.stderr
    episode = json.loads((out / "episode" / "episode.json").read_text())
    again = spiral(*args)
    assert again.returncode == 0 and "resuming the episode" in again.stderr and "recorded calls to replay" in again.stderr
    resumed = json.loads((out / "episode" / "episode.json").read_text())

    def attempts(e: dict) -> list:
        return [(a["instruction"], a["critique"], a["video"]) for s in e["steps"] for a in s["attempts"]]

    assert attempts(resumed) == attempts(episode) and attempts(episode)
    assert all((out / "episode" / video).stat().st_size > 0 for *_, video in attempts(resumed))
    other = spiral(*args, "--seed", "1")
    assert other.returncode == 2 and "holds an episode with other settings (loop.seed)" in other.stderr
    assert "Traceback" not in other.stderr


def test_run_bad_input_gives_clear_messages(tmp_path):
    weights = str(tiny_weights(tmp_path))
    cases = [
        (["--goal", "juggle the planets", "--scene-seed", "1", "--planner", "symbolic"], "goals look like: "),  # with examples
        (["--goal", "clear the left side", "--scene-seed", "1", "--image", "x.png"], "exactly one of --image"),
        (["--goal", "clear the left side", "--image", str(tmp_path / "none.png")], "cannot read start image"),
        (["--goal", "clear the left side", "--scene-seed", "1", "--planner", "openai", "--agent-model", "m"], "OPENAI_API_KEY"),
        (["--goal", "clear the left side", "--scene-seed", "1", "--planner", "gpt"], "unknown planner 'gpt'; known planners:"),
        (
            ["--goal", "clear the left side", "--scene-seed", "1", "--agent-model", "c.safetensors"],
            "weights go in --critic-model",
        ),
        (
            ["--goal", "clear the left side", "--scene-seed", "1", "--world-model-options", "steps=4"],
            "unknown tabletop world model option(s) steps",
        ),
    ]
    from PIL import Image

    small, a_file = tmp_path / "small.png", tmp_path / "a-file"
    Image.new("RGB", (20, 20)).save(small)
    a_file.write_text("x")
    goal = ["--goal", "clear the left side", "--scene-seed", "1"]
    cases += [
        ([*goal, "--max-tries", "0"], "--max-tries must be >= 1, got 0"),
        ([*goal, "--max-replans", "-1"], "--max-replans must be >= 0"),
        (["--goal", "clear the left side", "--scene-seed", "-1"], "--scene-seed must be >= 0"),
        ([*goal, "--seed", "-1"], "--seed must be >= 0"),
        (["--goal", "clear the left side", "--image", str(small), "--max-image-pixels", "100"], "over the limit of 100"),
        ([*goal, "--out", str(a_file)], "is a file; give a folder"),
        ([*goal, "--judge", "make it nice"], "cannot read the judge condition"),
    ]
    for args, message in cases:
        run = subprocess.run([sys.executable, "-m", "spiral.cli", "run", "--out", str(tmp_path / "o"), *args, "--world-model-path", weights],
                             capture_output=True, text=True, env={k: v for k, v in ENV.items() if k != "OPENAI_API_KEY"}, timeout=300)  # fmt: skip
        assert run.returncode == 2, (args, run.stderr)
        assert message in run.stderr and "Traceback" not in run.stderr, (args, run.stderr)


def test_run_takes_backends_of_your_own_as_module_callable(tmp_path):
    from spiral.demo import demo_request

    goal = demo_request(4, "medium").judge
    (tmp_path / "my_world.py").write_text(
        "from spiral.worldmodels.tabletop import SamplerConfig, TabletopWorldModel\n\n\n"
        "def fast():\n    return TabletopWorldModel.load(sampler=SamplerConfig(num_inference_steps=4))\n"
    )
    args = ["run", "--goal", goal, "--scene-seed", "4", "--world-model", "my_world:fast",
            "--planner", "spiral.agents.plan.symbolic:SymbolicPlanAgent", "--critic",
            "spiral.agents.critic.oracle:OracleCriticAgent", "--max-generations", "2", "--out", str(tmp_path / "run")]  # fmt: skip
    env = {**ENV, "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), ENV.get("PYTHONPATH")]))}
    run = subprocess.run([sys.executable, "-m", "spiral.cli", *args], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "[plan 1] (initial)" in run.stderr and "step 1" in run.stderr
    assert "goal achieved (judged by the oracle from pixels):" in run.stdout  # a factory's tabletop model is judged too


def test_demo_runs_the_closed_loop_on_the_shipped_model(tmp_path):
    run = spiral("demo", "--out", str(tmp_path))
    assert run.returncode == 0, run.stderr
    assert "method closed-loop:" in run.stdout and "goal achieved (judged by the oracle from pixels):" in run.stdout
    assert (tmp_path / "video.mp4").stat().st_size > 1000 and (tmp_path / "viewer.html").is_file()
    assert (tmp_path / "episode" / "episode.json").is_file()


def test_data_make_resume_redoes_damaged_episodes(tmp_path):
    out, clean = tmp_path / "ds", tmp_path / "clean"
    args = ["data", "make", "--episodes", "4", "--seed", "2", "--frame-size", "32", "--levels", "short"]
    assert spiral(*args, "--out", str(out)).returncode == 0
    assert spiral(*args, "--out", str(clean)).returncode == 0
    import shutil

    shutil.rmtree(out / "ep-000001")  # a deleted folder
    episode = out / "ep-000002" / "episode.json"
    episode.write_text(episode.read_text()[:100])  # a truncated episode file
    next((out / "ep-000003").glob("*.mp4")).unlink()  # a deleted clip
    run = spiral(*args, "--out", str(out))
    assert run.returncode == 0, run.stderr
    for i, why in ((1, "folder is missing"), (2, "corrupt episode file"), (3, ".mp4 is missing")):
        assert f"ep-00000{i} was damaged (" in run.stdout and why in run.stdout
    assert "wrote 3 episodes (1 were already there)" in run.stdout
    assert [e["id"] for e in read_index(out)] == [f"ep-{i:06d}" for i in range(4)]
    for i in range(4):
        assert (out / f"ep-{i:06d}" / "episode.json").read_text() == (clean / f"ep-{i:06d}" / "episode.json").read_text()
