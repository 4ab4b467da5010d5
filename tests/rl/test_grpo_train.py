"""`train_grpo` end to end on tiny random tabletop models: it learns, it resumes bit for bit, the
reward-hacking guard stops it, a folder keeps its settings, and two torchrun processes stay in step.

The oracle judge is replaced by a stub in most tests (on a random model's noise it takes ~1 s a
clip); the CLI smoke tests run the real one.
"""

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from grpo_tiny import SMALL, brightness, darkness, digest, no_judge, tiny_weights
from safetensors import safe_open
from safetensors.torch import load_file
from tabletop_tiny import NetPixels

import spiral.rl.train as train
from spiral.errors import SpiralError
from spiral.rl.guard import ProbeReading
from spiral.rl.policy import TabletopPolicy
from spiral.rl.train import GRPOTrainConfig, train_grpo
from spiral.worldmodels.tabletop import SamplerConfig, TabletopWorldModel
from spiral.worldmodels.tabletop_eval import make_probes
from spiral.worlds.tabletop.grammar import to_text

HERE = Path(__file__).parent
TIMING = ("sample_seconds", "update_seconds", "seconds")


@pytest.fixture(autouse=True)
def stub_judge(monkeypatch):
    monkeypatch.setattr(train, "judged_success", no_judge)
    # The brightness rewards score the tiny nets' own pixels (see tabletop_tiny.NetPixels).
    monkeypatch.setattr(TabletopWorldModel, "decode", NetPixels.decode)


@pytest.fixture(scope="module")
def small_weights(tmp_path_factory):
    return tiny_weights(tmp_path_factory.mktemp("tiny") / "small.safetensors", out_seed=0, **SMALL)


def config(weights, out, **kw) -> GRPOTrainConfig:
    # Guidance off: the settings of the learning test were tuned for the plain sampler.
    base = dict(
        weights=str(weights), out=out, iterations=4, groups=2, group_size=4, lr=1e-3, eval_every=0, probes=2, guidance=1.0
    )
    return GRPOTrainConfig(**(base | kw))


def read_log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def mean_brightness(weights: Path) -> float:
    """Brightness of SDE clips (what GRPO optimises) on 8 fixed scenes x 4 fixed seeds."""
    policy = TabletopPolicy(TabletopWorldModel.load(weights, sampler=SamplerConfig(guidance_scale=1.0)))
    probes = make_probes(8, 64, stream=(99,))
    return float(
        np.mean([brightness(policy.rollout(p.frame, to_text(p.action), [100, 101, 102, 103], 0.7).frames).mean() for p in probes])
    )


def test_grpo_learns_to_brighten_or_darken_the_clips_on_demand(small_weights, tmp_path):
    """Both directions from the same start: any drift of the weights (which darkens on the white
    table) cannot pass for learning. A strong KL keeps that drift down; lr and iterations were
    chosen so that seeds 0-5 all pass with a margin of >= 0.015 (0.01 asserted)."""
    cfg = config(small_weights, tmp_path / "bright", iterations=30, beta=0.4)
    before = mean_brightness(small_weights)
    bright = train_grpo(cfg, progress=False, reward=brightness)
    dark = train_grpo(replace(cfg, out=tmp_path / "dark"), progress=False, reward=darkness)
    assert bright.iterations == dark.iterations == 30 and bright.stopped_by_guard is None
    after_bright, after_dark = mean_brightness(bright.weights), mean_brightness(dark.weights)
    assert after_bright > before + 0.01, (before, after_bright)
    assert after_dark < before - 0.01, (before, after_dark)
    log = read_log(tmp_path / "bright")
    assert len(log) == 30 and all(np.isfinite(r["policy"]) and r["grad_norm"] > 0 for r in log)
    assert all(r["groups_with_signal"] == 1.0 for r in log)
    assert log[0]["kl"] == 0.0 and log[-1]["kl"] > 0, "the first update starts at the reference"


def test_a_resumed_run_continues_exactly_as_an_uninterrupted_one(small_weights, tmp_path):
    a, b = tmp_path / "straight", tmp_path / "resumed"
    kw = dict(eval_every=2, schedule="1:0,2:2")  # probes and guard readings, and a horizon-2 stage
    straight = train_grpo(config(small_weights, a, **kw), progress=False, reward=brightness)
    half = train_grpo(config(small_weights, b, iterations=2, **kw), progress=False, reward=brightness)
    assert half.iterations == 2
    meta = safe_open(str(b / "checkpoint.safetensors"), framework="pt").metadata()
    assert meta["iteration"] == "2" and len(json.loads(meta["guard"])) == 2
    resumed = train_grpo(config(small_weights, b, **kw), progress=False, reward=brightness)
    assert straight.iterations == resumed.iterations == 4

    wa, wb = load_file(str(straight.weights)), load_file(str(resumed.weights))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    start = load_file(str(small_weights))
    assert any(not torch.equal(wa[k], start[k]) for k in wa), "training changed the weights"
    la, lb = read_log(a), read_log(b)
    strip = [[{k: v for k, v in r.items() if k not in TIMING} for r in log] for log in (la, lb)]
    assert strip[0] == strip[1]
    assert [r["iteration"] for r in la] == [0, 1, 2, 3, 4] and [r["horizon"] for r in la[1:]] == [1, 1, 2, 2]
    assert "probe_reward" in la[2] and "probe_reward" not in la[1]

    # A finished run only exports again.
    again = train_grpo(config(small_weights, b, **kw), progress=False, reward=brightness)
    assert again.iterations == 4 and len(read_log(b)) == 5
    wc = load_file(str(again.weights))
    assert all(torch.equal(wa[k], wc[k]) for k in wa)

    # Records written after the last checkpoint (a kill between checkpoints) are redone on resume,
    # so they must not stay in the log twice.
    with open(b / "log.jsonl", "a") as f:
        f.write(json.dumps({"iteration": 5, "reward": 0.0}) + "\n")
    train_grpo(config(small_weights, b, **kw), progress=False, reward=brightness)
    assert [r["iteration"] for r in read_log(b)] == [0, 1, 2, 3, 4]


def scripted_probes(readings: dict[int, tuple[float, float]]):
    def probe_reading(policy, probes, reward, iteration, reader=None, judge=None):
        return ProbeReading(iteration, *readings[iteration])

    return probe_reading


# Reward up, judged success down: the guard (window 2) fires at iteration 2.
HACKED = {0: (0.30, 0.80), 1: (0.31, 0.80), 2: (0.40, 0.60), 3: (0.50, 0.40), 4: (0.6, 0.2), 5: (0.7, 0.1), 6: (0.8, 0.0)}


def test_the_guard_stops_training_and_keeps_the_checkpoint(small_weights, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(train, "probe_reading", scripted_probes(HACKED))
    out = tmp_path / "run"
    outcome = train_grpo(config(small_weights, out, iterations=6, eval_every=1), progress=False, reward=brightness)
    assert outcome.iterations == 2
    assert outcome.stopped_by_guard == (
        "reward hacking suspected at iteration 2: since iteration 0 the critic's reward rose 0.300 -> 0.400 while "
        "the judge's success fell 0.800 -> 0.600"
    )
    assert f"WARNING: {outcome.stopped_by_guard}; stopping" in capsys.readouterr().out
    log = read_log(out)
    assert [r["iteration"] for r in log] == [0, 1, 2]
    assert log[-1]["guard"] == outcome.stopped_by_guard and "guard" not in log[1]
    assert (log[-1]["probe_reward"], log[-1]["probe_judged"]) == (0.40, 0.60)
    with safe_open(str(out / "checkpoint.safetensors"), framework="pt") as f:
        meta = f.metadata()
    assert meta["iteration"] == "2" and [r["iteration"] for r in json.loads(meta["guard"])] == [0, 1, 2]
    with safe_open(str(outcome.weights), framework="pt") as f:
        info = f.metadata()
    assert info["grpo_iterations"] == "2" and info["stopped_by_guard"] == outcome.stopped_by_guard
    # The world model's own record goes on, so `train world-model --init` can continue from these weights.
    assert info["steps"] == info["base_steps"] == "0" and float(info["train_seconds"]) == float(info["grpo_seconds"]) > 0

    # With the guard off the same readings only get logged.
    off = train_grpo(config(small_weights, tmp_path / "off", iterations=4, eval_every=1, guard=False), False, brightness)
    assert off.iterations == 4 and off.stopped_by_guard is None
    assert not any("guard" in r for r in read_log(tmp_path / "off"))


# Judged success peaks at iteration 2 (the tie at 3 keeps the earlier one, 4's lower reward loses).
PEAKED = {0: (0.30, 0.50), 1: (0.30, 0.60), 2: (0.35, 0.70), 3: (0.35, 0.70), 4: (0.20, 0.70), 5: (0.40, 0.50)}


def test_the_best_probe_readings_weights_are_kept(small_weights, tmp_path, monkeypatch):
    monkeypatch.setattr(train, "probe_reading", scripted_probes(PEAKED))
    out = tmp_path / "run"
    outcome = train_grpo(config(small_weights, out, iterations=5, eval_every=1, guard=False), False, brightness)
    best = out / "tabletop_wm.best.safetensors"
    with safe_open(str(best), framework="pt") as f:
        meta = f.metadata()
    assert meta["probe_iteration"] == meta["grpo_iterations"] == "2" and meta["steps"] == "0"  # the full run record
    assert [r.get("best", False) for r in read_log(out)[1:]] == [True, True, False, False, False]
    last, kept = load_file(str(outcome.weights)), load_file(str(best))
    assert any(not torch.equal(last[k], kept[k]) for k in last)  # three more updates moved the last weights

    # A resumed run compares with the readings from before the resume, not only its own.
    monkeypatch.setattr(train, "probe_reading", scripted_probes(PEAKED | {6: (0.5, 0.65)}))
    train_grpo(config(small_weights, out, iterations=6, eval_every=1, guard=False), False, brightness)
    with safe_open(str(best), framework="pt") as f:
        assert f.metadata()["probe_iteration"] == "2"


def test_the_cli_warns_and_exits_3_when_the_guard_stops(small_weights, tmp_path, monkeypatch, capsys):
    from spiral import cli

    monkeypatch.setattr(train, "probe_reading", scripted_probes(HACKED))
    monkeypatch.setattr(train, "make_reward", lambda spec, weights=None, critic=None: brightness)
    code = cli.main(["train", "grpo", "--weights", str(small_weights), "--out", str(tmp_path / "cli"),
                     "--iterations", "5", "--groups", "1", "--group-size", "2", "--probes", "1", "--eval-every", "1"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 3
    assert "spiral: warning: reward hacking suspected at iteration 2" in captured.err
    assert "(after 2 iterations)" in captured.out and "cp " not in captured.out


def test_a_run_folder_refuses_other_settings(small_weights, tmp_path):
    out = tmp_path / "run"
    train_grpo(config(small_weights, out, iterations=1), progress=False, reward=brightness)
    for change in (dict(lr=2e-3), dict(schedule="1:0,2:5"), dict(group_size=2), dict(seed=1)):
        with pytest.raises(SpiralError, match=r"holds a GRPO run with other settings \(.*\).*use another --out"):
            train_grpo(config(small_weights, out, iterations=2, **change), progress=False, reward=brightness)
    assert len(read_log(out)) == 1, "a refused run does no work"
    # Only the total, the folder, the threads and the checkpoint interval may change on resume.
    train_grpo(config(small_weights, out, iterations=2, threads=1, checkpoint_every=1), progress=False, reward=brightness)
    assert len(read_log(out)) == 2


def test_bad_inputs_are_refused_before_the_folder_is_claimed(small_weights, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(SpiralError, match="--groups 3 does not split evenly over 2 processes"):
        train.iteration_groups(config(small_weights, out, groups=3), train.Distributed(0, 2))
    with pytest.raises(SpiralError, match="unknown reward 'oracel'"):
        train_grpo(config(small_weights, out, reward="oracel"), progress=False)
    with pytest.raises(SpiralError, match="missing world-model weights"):
        train_grpo(config(tmp_path / "nope.safetensors", out), progress=False)
    assert not (out / "config.json").exists()
    # The corrected command runs in the same folder.
    assert train_grpo(config(small_weights, out, iterations=1), progress=False, reward=brightness).iterations == 1


def test_torchrun_two_gloo_processes_keep_identical_weights_and_stop_together(small_weights, tmp_path):
    out = tmp_path / "dist"
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join([str(HERE), str(HERE.parent / "worldmodels")]),
    }
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         str(HERE / "grpo_dist_script.py"), str(small_weights), str(out)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2] and [r["rank"] for r in ranks] == [0, 1]
    assert ranks[0]["final"] == ranks[1]["final"], "every process ends with the same weights"
    assert ranks[0]["final"] != ranks[0]["start"], "and they trained"
    assert ranks[0]["tasks"] != ranks[1]["tasks"], "each process drew its own groups"
    # Process 0's guard stopped every process at the same iteration (else they would deadlock).
    assert ranks[0]["iterations"] == ranks[1]["iterations"] == 3
    assert ranks[0]["stopped"].startswith("reward hacking suspected at iteration 3")
    assert ranks[1]["stopped"] == "stopped by process 0's reward-hacking guard"
    # Process 0 alone wrote: one log line per iteration (plus the first probe reading), one checkpoint.
    log = read_log(out)
    assert [r["iteration"] for r in log] == [0, 1, 2, 3] and all("probe_reward" in r for r in log)
    assert "guard" in log[-1]
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoint.safetensors", "config.json", "log.jsonl", "rank0.json", "rank1.json",
        "tabletop_wm.best.safetensors", "tabletop_wm.safetensors",
    ]  # fmt: skip
    exported = load_file(str(out / "tabletop_wm.safetensors"))
    assert digest(exported) == ranks[0]["final_half"]


def test_dynamic_sampling_draws_more_groups_until_the_judge_both_passes_and_fails_in_each(small_weights, tmp_path, monkeypatch):
    def judge(clips, task):  # a scripted judge: mixed verdicts for instructions of even length only
        return torch.tensor([1.0] + [0.0] * (len(clips) - 1)) if len(task.instruction) % 2 == 0 else torch.zeros(len(clips))

    monkeypatch.setattr(train, "judged_success", judge)
    plain = train_grpo(config(small_weights, tmp_path / "plain", iterations=3), progress=False, reward=brightness)
    dynamic = train_grpo(
        config(small_weights, tmp_path / "dynamic", iterations=3, oversample=6), progress=False, reward=brightness
    )
    assert plain.iterations == dynamic.iterations == 3
    for r in read_log(tmp_path / "plain"):
        assert r["groups_drawn"] == 2 and r["groups_mixed"] <= 2
    for r in read_log(tmp_path / "dynamic"):
        # Drawn until both kept groups are mixed (or 12 were drawn); the mixed judged mean is 1/4.
        assert 2 <= r["groups_drawn"] <= 12
        assert r["groups_mixed"] == 2 or r["groups_drawn"] == 12
        assert r["judged"] == pytest.approx(0.25 * r["groups_mixed"] / 2)
