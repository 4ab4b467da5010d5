from dataclasses import replace

import numpy as np
import pytest
import torch

from spiral.agents.critic.learned import LearnedCriticAgent, load_net
from spiral.agents.critic.learned_ensemble import STAGE_FILES, CriticEnsemble, CriticEnsembleConfig, combine_critics
from spiral.agents.critic.learned_net import CriticNet, CriticNetConfig, TextTable, predict
from spiral.agents.critic.learned_train import export_weights
from spiral.cli import main
from spiral.errors import SpiralError
from spiral.memory import WorldMemory
from spiral.types import Clip, Step, StepAction, Verdict
from spiral.worldmodels.text import shared_text_encoder
from spiral.worlds.tabletop.render import render
from spiral.worlds.tabletop.scene import random_scene

TINY = CriticNetConfig(dim=32, depth=1, heads=2, arch="objects", fact_heads=True, extra_numbers=True)
STEP = Step("move the red square to the left of the blue circle", "red square", ("blue circle",),
            action=StepAction("red square", "left of", "blue circle"))  # fmt: skip


def fake_run(folder, resolution: int, seed: int) -> None:
    """A training run's two exports, each a differently initialised tiny critic (no training needed)."""
    folder.mkdir(parents=True)
    for k, name in enumerate(STAGE_FILES):
        torch.manual_seed(seed * 10 + k)
        net = CriticNet(replace(TINY, resolution=resolution))
        with torch.no_grad():  # a Platt scaling of its own, so the members' calibration is averaged too
            net.calib.copy_(torch.tensor([0.5 + k, 0.3 * seed]))
        export_weights(folder / name, net, {"stage": name, "threshold": 0.9})


def clips(n: int = 3) -> np.ndarray:
    rng = np.random.default_rng(4)
    frames = [render(random_scene(rng), 64) for _ in range(2 * n)]
    # each clip: one scene, then (from frame 4) another: something changed
    return np.stack([np.stack([frames[2 * i]] * 4 + [frames[2 * i + 1]] * 4) for i in range(n)])


@pytest.fixture
def ensemble(tmp_path):
    fake_run(tmp_path / "a", 32, 1)
    fake_run(tmp_path / "b", 64, 2)
    weights = combine_critics(CriticEnsembleConfig(members=f"{tmp_path / 'a'},{tmp_path / 'b'}", out=tmp_path / "ens"))
    return tmp_path, weights


def test_an_ensemble_scores_the_mean_of_its_members_logits(ensemble):
    root, weights = ensemble
    net, info = load_net(weights)
    assert isinstance(net, CriticEnsemble) and net.resolution == 64 and len(net.members) == 2
    assert info["threshold"] == "0.5" and "config" not in info and "members" not in info
    assert (root / "ens" / STAGE_FILES[0]).is_file()  # the SFT stage is combined too
    texts = [STEP.instruction]
    table = TextTable.build(texts, shared_text_encoder())
    frames, ids = torch.as_tensor(clips()), torch.zeros(3, dtype=torch.long)
    out = predict(net, frames, ids, table)
    members = [predict(load_net(root / run / STAGE_FILES[1])[0], frames, ids, table) for run in ("a", "b")]
    assert not torch.allclose(members[0].success, members[1].success, atol=1e-3)  # two different critics
    for key in ("success", "kind", "drift"):
        mean = (getattr(members[0], key) + getattr(members[1], key)) / 2
        assert torch.allclose(getattr(out, key), mean, atol=1e-5), key
    # The member at 32x32 read the clips downsampled, the other at 64x64 as they are: each as it was trained.
    assert [m.resolution for m in net.members] == [32, 64]


def test_the_agent_loads_an_ensemble_and_judges_clips_of_any_size(ensemble):
    _, weights = ensemble
    agent = LearnedCriticAgent.load(weights)
    assert agent.threshold == 0.5
    batch = clips(2)
    small = batch[0][:, ::2, ::2]  # a 32x32 clip beside a 64x64 one
    rewards = agent.reward([batch[1], small], STEP.instruction)
    assert rewards.shape == (2,) and bool(((rewards >= 0) & (rewards <= 1)).all())
    alone = agent.reward([batch[1]], STEP.instruction)
    assert float(alone[0]) == pytest.approx(float(rewards[0]), abs=1e-5)  # batch composition does not matter
    clip = Clip(batch[0], STEP.instruction, 0, "test")
    passed = LearnedCriticAgent.load(weights, threshold=1e-9).critique(STEP, clip, WorldMemory("goal"))
    failed = LearnedCriticAgent.load(weights, threshold=1.0).critique(STEP, clip, WorldMemory("goal"))
    assert passed.verdict == Verdict.SUCCESS and passed.score == pytest.approx(failed.score)
    assert failed.verdict in (Verdict.LOCAL_FAILURE, Verdict.GLOBAL_DRIFT) and "critic score" in failed.feedback


def test_bad_members_are_named(tmp_path, ensemble):
    root, weights = ensemble
    with pytest.raises(SpiralError, match="name at least two"):
        combine_critics(CriticEnsembleConfig(members=str(root / "a"), out=tmp_path / "x"))
    with pytest.raises(SpiralError, match="missing .*nowhere/critic_sft.safetensors"):
        combine_critics(CriticEnsembleConfig(members=f"{root / 'a'},{tmp_path / 'nowhere'}", out=tmp_path / "x"))
    with pytest.raises(SpiralError, match="an ensemble cannot be a member"):
        combine_critics(CriticEnsembleConfig(members=f"{root / 'a'},{root / 'ens'}", out=tmp_path / "x"))
    (tmp_path / "broken").mkdir()
    for name in STAGE_FILES:
        (tmp_path / "broken" / name).write_bytes(b"not safetensors")
    with pytest.raises(SpiralError, match="corrupt critic weights .*broken"):
        combine_critics(CriticEnsembleConfig(members=f"{root / 'a'},{tmp_path / 'broken'}", out=tmp_path / "x"))
    with pytest.raises(SpiralError, match="--pass-score 1.0"):
        combine_critics(CriticEnsembleConfig(members=f"{root / 'a'},{root / 'b'}", out=tmp_path / "x", pass_score=1.0))
    with pytest.raises(SpiralError, match="at least two critics"):
        CriticEnsemble([CriticNet(TINY)])


def test_the_cli_combines_runs(tmp_path, capsys):
    fake_run(tmp_path / "a", 32, 1)
    fake_run(tmp_path / "b", 32, 3)
    assert (
        main(["train", "critic-ensemble", "--members", f"{tmp_path / 'a'},{tmp_path / 'b'}", "--out", str(tmp_path / "e")]) == 0
    )
    assert "--critic-model" in capsys.readouterr().out
    assert isinstance(load_net(tmp_path / "e" / STAGE_FILES[1])[0], CriticEnsemble)
    assert main(["train", "critic-ensemble", "--members", str(tmp_path / "a")]) == 2  # a clear error, not a traceback
