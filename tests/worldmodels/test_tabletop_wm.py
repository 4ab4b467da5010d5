import json
import re
from dataclasses import replace

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from tabletop_tiny import NetPixels

from spiral.checkpoints import export_half
from spiral.data.generate import DataMakeConfig, make_dataset
from spiral.errors import SpiralError
from spiral.rl.sde import sde_step_with_logprob
from spiral.worldmodels.base import check_world_model, prepare_frame
from spiral.worldmodels.tabletop import SamplerConfig, TabletopWorldModel, default_weights
from spiral.worldmodels.tabletop_data import load_clips
from spiral.worldmodels.tabletop_net import TabletopNet, TabletopNetConfig
from spiral.worldmodels.tabletop_train import (
    WorldModelTrainConfig,
    flow_matching_loss,
    lr_at,
    train_world_model,
)
from spiral.worldmodels.text import shared_text_encoder
from spiral.worlds.tabletop.render import render
from spiral.worlds.tabletop.scene import random_scene

TINY = TabletopNetConfig(dim=32, depth=1, heads=2)
FRAME = render(random_scene(np.random.default_rng(0)), 64)
INSTRUCTION = "move the red square to the left side"


def tiny_model(seed=0):
    torch.manual_seed(seed)
    net = TabletopNet(TINY)
    # Zero-initialised output layers would make every sample identical; give them some weight.
    torch.nn.init.normal_(net.out.weight, std=0.05)
    return NetPixels(net)


def test_tiny_random_model_passes_conformance():
    check_world_model(tiny_model(), FRAME, INSTRUCTION)


def test_the_input_gate_passes_the_noisy_input_through_as_far_as_it_is_open():
    net = tiny_model().net
    x = 0.08 * torch.randn(2, 7, 3, 32, 32)
    start = torch.rand(2, 3, 32, 32) * 2 - 1
    text, pad = shared_text_encoder().encode([INSTRUCTION] * 2)
    with torch.no_grad():
        for layer in (net.out, net.gate):  # the token's own prediction: nothing; the gate: the same everywhere
            layer.weight.zero_()
            layer.bias.zero_()
        for opening in (0.0, 0.5, 1.0):
            net.gate.bias.fill_(opening)
            torch.testing.assert_close(net(x, torch.full((2,), 0.3), start, text, pad), opening * x, rtol=0, atol=0)


def test_shipped_model_passes_conformance():
    assert default_weights().is_file(), "the trained tabletop model must ship in src/spiral/assets"
    wm = TabletopWorldModel.load()
    check_world_model(wm, FRAME, INSTRUCTION)
    assert wm.info["steps"] and wm.info["train_seconds"]


def test_missing_or_corrupt_weights_name_the_file_and_the_fix(tmp_path):
    with pytest.raises(
        SpiralError, match=r"missing world-model weights: .*nope.safetensors; re-create them with: make world-model"
    ):
        TabletopWorldModel.load(tmp_path / "nope.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header}")
    with pytest.raises(SpiralError, match="corrupt world-model weights .*bad.safetensors"):
        TabletopWorldModel.load(bad)


def test_prepare_frame_converts_modes_and_sizes():
    grey = np.full((40, 50), 128, np.uint8)
    assert prepare_frame(grey, 64).shape == (64, 64, 3)
    rgba = np.zeros((64, 64, 4), np.uint8)
    assert prepare_frame(rgba, 64).shape == (64, 64, 3)
    assert prepare_frame(np.ones((64, 64, 3)) * 0.5, 64)[0, 0, 0] == 128
    with pytest.raises(SpiralError, match="uint8, or float"):
        prepare_frame(np.full((64, 64, 3), 300.0), 64)


def test_long_clips_chain_and_bad_lengths_are_refused():
    wm = tiny_model()
    assert wm.generate(FRAME, INSTRUCTION, num_frames=15, seed=0).frames.shape == (15, 64, 64, 3)
    with pytest.raises(SpiralError, match="num_frames must be 1 \\+ k\\*7"):
        wm.generate(FRAME, INSTRUCTION, num_frames=10)


def test_sde_sampling_gives_finite_logprobs_that_rescore_exactly():
    wm = tiny_model()
    starts = np.stack([FRAME, FRAME])
    rollout = wm.sample(starts, [INSTRUCTION] * 2, seeds=[1, 2], noise_level=0.7)
    steps = wm.sampler.num_inference_steps
    assert rollout.log_probs.shape == (2, steps) and torch.isfinite(rollout.log_probs).all()
    assert (rollout.log_probs[:, :-1] != 0).all()  # every step but the last (t -> 0) is stochastic
    # Re-scoring the stored transition under the same model gives the same log-prob (GRPO ratio 1).
    text, pad = shared_text_encoder().encode([INSTRUCTION] * 2)
    from spiral.worldmodels.tabletop import to_model_space, velocity

    start = to_model_space(torch.from_numpy(starts), wm.cfg.resolution)
    t, t_next = rollout.timesteps[1], rollout.timesteps[2]
    with torch.no_grad():
        null = wm.net.null_condition(2)
        v = velocity(wm.net, rollout.latents[1], t, start, text, pad, wm.sampler.guidance_scale, null)
    _, lp = sde_step_with_logprob(rollout.latents[1], v, t, t_next, 0.7, prev_sample=rollout.latents[2])
    torch.testing.assert_close(lp, rollout.log_probs[:, 1])
    ode = wm.sample(starts, [INSTRUCTION] * 2, seeds=[1, 2], noise_level=0.0)
    assert (ode.log_probs == 0).all() and not torch.equal(ode.x0, rollout.x0)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("wmdata")
    make_dataset(DataMakeConfig(out=out, episodes=6, seed=2, frame_size=32, failure_rate=0.0, levels="medium"), progress=False)
    return out


def tiny_cfg(data, out, steps):
    return WorldModelTrainConfig(
        data=data, out=out, steps=steps, batch_size=8, lr=2e-3, warmup=5, dim=32, depth=1, heads=2,
        checkpoint_every=5, eval_every=0, ema_decay=0.5,
    )  # fmt: skip


def test_tiny_training_run_lowers_the_loss(tiny_data, tmp_path):
    cfg = tiny_cfg(tiny_data, tmp_path / "run", 100)
    weights = train_world_model(cfg, progress=False)
    clips = load_clips(tiny_data, 32)
    text, pad = shared_text_encoder().encode(["move the red square to the left side"] * 16)
    frames = clips.frames[:16]

    def held_loss(net):
        with torch.no_grad():
            return flow_matching_loss(net, frames, text, pad, torch.Generator().manual_seed(123)).item()

    torch.manual_seed(cfg.seed)
    untrained = TabletopNet(cfg.net_config())
    trained = TabletopWorldModel.load(weights).net
    assert held_loss(trained) < 0.8 * held_loss(untrained)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert len(log) == 100 and all(np.isfinite(r["loss"]) for r in log)


def test_resumed_training_continues_identically(tiny_data, tmp_path):
    straight = train_world_model(tiny_cfg(tiny_data, tmp_path / "a", 10), progress=False)
    train_world_model(tiny_cfg(tiny_data, tmp_path / "b", 5), progress=False)
    with open(tmp_path / "b" / "log.jsonl", "a") as log:  # as if killed after logging steps past the checkpoint
        log.write("".join(json.dumps({"step": s, "loss": 0.0}) + "\n" for s in (6, 7)))
    resumed = train_world_model(tiny_cfg(tiny_data, tmp_path / "b", 10), progress=False)
    steps = [json.loads(line)["step"] for line in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 11))  # the redone steps are logged once
    assert train_world_model(tiny_cfg(tiny_data, tmp_path / "b", 10), progress=False) == resumed  # finished: export only
    a, b = TabletopWorldModel.load(straight).net.state_dict(), TabletopWorldModel.load(resumed).net.state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    with pytest.raises(SpiralError, match="other settings"):
        train_world_model(
            WorldModelTrainConfig(**{**tiny_cfg(tiny_data, tmp_path / "b", 10).__dict__, "lr": 1.0}), progress=False
        )


def test_learning_rate_warms_up_then_decays_to_zero_over_the_last_steps(tmp_path):
    cfg = WorldModelTrainConfig(data=tmp_path, steps=100, lr=1e-3, warmup=10, lr_decay=40)
    assert lr_at(0, cfg) == pytest.approx(1e-4)
    assert lr_at(30, cfg) == lr_at(60, cfg) == pytest.approx(1e-3)
    assert lr_at(80, cfg) == pytest.approx(0.5e-3) and lr_at(99, cfg) == pytest.approx(1e-3 / 40)
    assert lr_at(99, replace(cfg, lr_decay=0)) == pytest.approx(1e-3)
    with pytest.raises(SpiralError, match="--lr-decay must be 0"):
        train_world_model(replace(cfg, lr_decay=-5, out=tmp_path / "run"), progress=False)


def test_training_can_start_from_exported_weights(tiny_data, tmp_path):
    first = TabletopWorldModel.load(train_world_model(tiny_cfg(tiny_data, tmp_path / "a", 10), progress=False)).net
    cfg = replace(tiny_cfg(tiny_data, tmp_path / "b", 3), init=tmp_path / "a" / "tabletop_wm.safetensors", lr=1e-5)
    tuned = TabletopWorldModel.load(train_world_model(cfg, progress=False)).net
    torch.manual_seed(1)
    fresh = TabletopNet(cfg.net_config())

    def distance(a, b):
        return sum((p - q).abs().sum().item() for p, q in zip(a.parameters(), b.parameters(), strict=True))

    # Three small steps from the first run's weights stay near them, far nearer than any random start.
    assert distance(tuned, first) < 0.05 * distance(fresh, first)
    with pytest.raises(SpiralError, match=r"another architecture: dim 32 \(given 64\)"):
        train_world_model(replace(cfg, out=tmp_path / "c", dim=64), progress=False)
    with pytest.raises(SpiralError, match="missing world-model weights"):
        train_world_model(replace(cfg, out=tmp_path / "d", init=tmp_path / "none.safetensors"), progress=False)


def test_a_run_started_before_a_setting_existed_resumes_at_its_default(tiny_data, tmp_path):
    out = tmp_path / "run"
    train_world_model(tiny_cfg(tiny_data, out, 5), progress=False)
    saved = json.loads((out / "config.json").read_text())
    del saved["lr_decay"]  # as written by a version without the option
    (out / "config.json").write_text(json.dumps(saved))
    train_world_model(tiny_cfg(tiny_data, out, 6), progress=False)
    with pytest.raises(SpiralError, match="other settings"):
        train_world_model(replace(tiny_cfg(tiny_data, out, 7), lr_decay=3), progress=False)


def test_training_on_fresh_simulator_clips_alone_resumes_identically_with_a_worker(tmp_path):
    cfg = replace(tiny_cfg(None, tmp_path / "a", 6), fresh=1.0, workers=0)
    straight = train_world_model(cfg, progress=False)
    train_world_model(replace(cfg, out=tmp_path / "b", steps=3, workers=1), progress=False)
    resumed = train_world_model(replace(cfg, out=tmp_path / "b", workers=1), progress=False)
    a, b = TabletopWorldModel.load(straight), TabletopWorldModel.load(resumed)
    for k, v in a.net.state_dict().items():
        torch.testing.assert_close(v, b.net.state_dict()[k], rtol=0, atol=0)
    assert a.info["fresh_clips"] == "48" and a.info["clips"] == "0"
    with pytest.raises(SpiralError, match="no --data given"):
        train_world_model(replace(cfg, out=tmp_path / "c", fresh=0.5), progress=False)
    with pytest.raises(SpiralError, match="--fresh is a share"):
        train_world_model(replace(cfg, out=tmp_path / "d", fresh=1.5), progress=False)
    with pytest.raises(SpiralError, match="--reuse must be at least 1"):
        train_world_model(replace(cfg, out=tmp_path / "e", reuse=0), progress=False)
    reused = TabletopWorldModel.load(train_world_model(replace(cfg, out=tmp_path / "f", reuse=4), progress=False))
    assert reused.info["fresh_clips"] == "12"  # 2 new clips a step


def test_weights_recording_retired_settings_load_at_their_one_value_and_are_refused_at_any_other(tmp_path):
    torch.manual_seed(0)
    net = TabletopNet(TINY)
    shipped = {"change_scale": 1.0, "sigma_data": 0.0, "skip_head": 0, "input_gate": True}  # as the shipped file has them
    export_half(tmp_path / "old.safetensors", net, net.cfg.to_dict() | shipped, {"steps": 0})
    loaded = TabletopWorldModel.load(tmp_path / "old.safetensors").net
    assert loaded.cfg == TINY and all(torch.equal(v, net.state_dict()[k].half().float()) for k, v in loaded.state_dict().items())
    for key, value in (("sigma_data", 0.08), ("skip_head", 16), ("input_gate", False), ("change_scale", 6.0)):
        export_half(tmp_path / "other.safetensors", net, net.cfg.to_dict() | shipped | {key: value}, {"steps": 0})
        with pytest.raises(SpiralError, match=rf"{key} = {value!r}, a setting this version fixes .*tagged rejected-variants"):
            TabletopWorldModel.load(tmp_path / "other.safetensors")
    gateless = {k: v for k, v in net.state_dict().items() if not k.startswith("gate.")}
    save_file({k: v.half() for k, v in gateless.items()}, str(tmp_path / "gateless.safetensors"),
              metadata={"config": json.dumps(TINY.to_dict())})  # fmt: skip
    with pytest.raises(SpiralError, match="have no input gate; the commit tagged rejected-variants loads them"):
        TabletopWorldModel.load(tmp_path / "gateless.safetensors")


def test_a_run_folder_recording_retired_settings_resumes_at_their_one_value(tiny_data, tmp_path):
    out = tmp_path / "run"
    train_world_model(tiny_cfg(tiny_data, out, 5), progress=False)
    saved = json.loads((out / "config.json").read_text())
    retired = {"change_scale": "1.0", "sigma_data": "0.0", "skip_head": "0", "input_gate": "True"}
    (out / "config.json").write_text(json.dumps(saved | retired))
    train_world_model(tiny_cfg(tiny_data, out, 6), progress=False)
    (out / "config.json").write_text(json.dumps(saved | retired | {"input_gate": "False"}))
    with pytest.raises(SpiralError, match="input_gate = 'False'.*rejected-variants"):
        train_world_model(tiny_cfg(tiny_data, out, 7), progress=False)


def test_a_device_that_is_not_there_is_refused_before_the_run_folder_is_touched(tiny_data, tmp_path):
    for device, message in (("tpu", "is not a torch device"), ("cuda", "no CUDA GPU")):
        if device == "cuda" and torch.cuda.is_available():
            continue
        with pytest.raises(SpiralError, match=message):
            train_world_model(replace(tiny_cfg(tiny_data, tmp_path / "run", 3), device=device), progress=False)
        assert not (tmp_path / "run").exists()


def test_quality_evaluation_reports_each_probes_outcome_for_paired_comparisons():
    from spiral.worldmodels.tabletop_eval import evaluate, make_probes

    probes = make_probes(6)
    result = evaluate(TabletopWorldModel.load(default_weights()), probes, "canonical", seed=0)
    assert len(result.passed) == 6 and result.success == sum(result.passed) / 6
    again = evaluate(TabletopWorldModel.load(default_weights()), probes, "canonical", seed=0)
    assert again.passed == result.passed  # same probes, same seeds: the pairs line up


def test_generation_can_sample_with_the_sde_seeded_like_the_ode():
    ode = tiny_model()
    sde = NetPixels(ode.net, sampler=replace(ode.sampler, noise_level=0.7))
    check_world_model(sde, FRAME, INSTRUCTION)
    a, b = sde.generate(FRAME, INSTRUCTION, seed=3), sde.generate(FRAME, INSTRUCTION, seed=3)
    assert np.array_equal(a.frames, b.frames), "seeded"
    assert not np.array_equal(a.frames, ode.generate(FRAME, INSTRUCTION, seed=3).frames), "the SDE is not the ODE"


def test_sampler_options_not_given_keep_their_defaults():
    sampler = SamplerConfig.overriding(guidance_scale=1.0, noise_level=None, num_inference_steps=None)
    assert sampler == replace(SamplerConfig(), guidance_scale=1.0)


@pytest.mark.parametrize(
    "setting, message",
    [({"shift": 0.0}, "shift=0.0: give a number >= 0.001"), ({"guidance_scale": -1.0}, "guidance_scale=-1.0: give a number >= 0"),
     ({"num_inference_steps": 0}, "num_inference_steps=0: give a whole number >= 1"),
     ({"num_inference_steps": 2.5}, "num_inference_steps=2.5: give a whole number"), ({"noise_level": "x"}, "noise_level='x'")],
)  # fmt: skip
def test_the_sampler_refuses_settings_it_cannot_sample_with_from_any_caller(setting, message):
    with pytest.raises(SpiralError, match=re.escape(message)):
        SamplerConfig(**setting)


def test_a_whole_number_guidance_is_the_same_setting_as_its_float():
    assert SamplerConfig(guidance_scale=3) == SamplerConfig(guidance_scale=3.0)
    assert isinstance(SamplerConfig(guidance_scale=3).guidance_scale, float)
