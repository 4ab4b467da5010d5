import json
from dataclasses import replace
from itertools import product

import numpy as np
import pytest
import torch
from safetensors import safe_open

from spiral.agents.critic.learned import LearnedCriticAgent, canonical, default_weights, load_net
from spiral.agents.critic.learned_data import CriticData, cached_rollouts, training_probes
from spiral.agents.critic.learned_metrics import balanced_threshold, fit_platt, roc_auc
from spiral.agents.critic.learned_net import KINDS, CriticNet, CriticNetConfig, TextTable, predict
from spiral.agents.critic.learned_train import CriticTrainConfig, prepare, train_critic
from spiral.agents.protocols import CriticAgent
from spiral.data.generate import DataMakeConfig, make_dataset
from spiral.errors import SpiralError
from spiral.memory import WorldMemory
from spiral.types import Clip, Critique, FailureKind, Step, StepAction, Verdict
from spiral.worldmodels.tabletop_eval import HELDOUT_SEED
from spiral.worldmodels.text import shared_text_encoder
from spiral.worlds.tabletop.actions import mirrored
from spiral.worlds.tabletop.grammar import parse, to_text
from spiral.worlds.tabletop.render import render
from spiral.worlds.tabletop.scene import random_scene

TINY = CriticNetConfig(dim=32, depth=1, heads=2)
STEP = Step("move the red square to the left of the blue circle", "red square", ("blue circle",),
            action=StepAction("red square", "left of", "blue circle"))  # fmt: skip


def tiny_agent(threshold=0.5) -> LearnedCriticAgent:
    torch.manual_seed(0)
    return LearnedCriticAgent(CriticNet(TINY), threshold=threshold)


def clip(size=64, frames=8) -> Clip:
    frame = render(random_scene(np.random.default_rng(1)), size)
    return Clip(np.repeat(frame[None], frames, axis=0), STEP.instruction, 0, "test")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A tiny training run on a small dataset made mostly of failures (no world model needed),
    without the shipped recipe's extras (mirror images, rendered near misses, a fixed pass score, a
    head-only reward stage), so each of those is tested on its own."""
    root = tmp_path_factory.mktemp("critic")
    make_dataset(DataMakeConfig(out=root / "data", episodes=16, seed=5, frame_size=32, failure_rate=0.8), progress=False)
    cfg = CriticTrainConfig(data=str(root / "data"), rollouts=0, out=root / "run", cache=root / "cache", sft_steps=160, swap_rate=0.0,
                            rm_steps=10, batch_size=32, lr=2e-3, dim=32, depth=1, val_share=0.0, checkpoint_every=40,
                            mirror=False, near_renders=0, pass_score=0.0, rm_scope="all")  # fmt: skip
    return cfg, train_critic(cfg, progress=False)


def test_roc_auc_is_the_pairwise_win_rate_with_ties_counting_half():
    rng = np.random.default_rng(0)
    s, y = rng.integers(0, 5, 60).astype(float), rng.random(60) < 0.4
    wins = [1.0 if a > b else 0.5 if a == b else 0.0 for a, b in product(s[y], s[~y])]
    assert roc_auc(s, y) == pytest.approx(np.mean(wins))
    assert roc_auc(np.arange(4.0), np.array([0, 0, 1, 1])) == 1.0
    assert np.isnan(roc_auc(np.ones(3), np.ones(3)))


def test_platt_scaling_keeps_the_order_and_fits_the_labels():
    logits = torch.linspace(-4, 4, 200)
    labels = (torch.rand(200, generator=torch.Generator().manual_seed(0)) < torch.sigmoid(0.5 * logits - 1)).float()
    scale, bias = fit_platt(logits, labels)
    assert 0 < scale < 1.0 and bias < 0


def test_tiny_training_run_learns(tiny_run):
    cfg, weights = tiny_run
    log = [json.loads(line) for line in (cfg.out / "log.jsonl").read_text().splitlines()]
    sft = [r["bce"] for r in log if r["stage"] == 1]
    assert len(log) == cfg.sft_steps + cfg.rm_steps and any("rank" in r for r in log)
    assert np.mean(sft[-15:]) < np.mean(sft[:15]) - 0.15, "the success loss did not fall"
    # AUC of the shipped (fp16) export on its own training clips, well above chance (0.5).
    net, info = load_net(weights)
    assert net.cfg == CriticNetConfig(dim=cfg.dim, depth=cfg.depth)
    data = CriticData.load(next(cfg.cache.glob("dataset-*.safetensors")))
    out = predict(net, data.frames, torch.arange(len(data)), TextTable.build(data.texts, shared_text_encoder()))
    assert roc_auc(out.success.numpy(), data.success.numpy()) > 0.8
    assert info["stage"] == "sft+rm" and (cfg.out / "critic_sft.safetensors").is_file()
    with safe_open(str(weights), framework="pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}  # noqa: SIM118


def test_a_finished_run_resumes_without_training_again(tiny_run):
    cfg, weights = tiny_run
    lines = (cfg.out / "log.jsonl").read_text().count("\n")
    assert train_critic(cfg, progress=False) == weights
    assert (cfg.out / "log.jsonl").read_text().count("\n") == lines
    with pytest.raises(SpiralError, match="other settings"):
        train_critic(CriticTrainConfig(**{**cfg.__dict__, "sft_steps": 5}), progress=False)


def test_learned_critic_follows_the_critic_agent_protocol():
    agent = tiny_agent()
    assert isinstance(agent, CriticAgent) and agent.name == "learned"
    critique = agent.critique(STEP, clip(), WorldMemory("test goal"))
    assert isinstance(critique, Critique) and 0.0 <= critique.score <= 1.0
    assert (critique.verdict == Verdict.SUCCESS) == (critique.score >= agent.threshold)
    # The same clip twice gives the same judgement (no hidden randomness).
    assert agent.critique(STEP, clip(), WorldMemory("test goal")) == critique


def test_failures_name_the_kind_the_objects_and_a_canonical_retry():
    failed = tiny_agent(threshold=1.01).critique(STEP, clip(), WorldMemory("test goal"))
    assert failed.verdict in (Verdict.LOCAL_FAILURE, Verdict.GLOBAL_DRIFT)
    assert failed.failure_kind in KINDS[1:] and failed.failure_kind != FailureKind.NONE
    assert "square" in failed.feedback or "object" in failed.feedback
    if failed.verdict == Verdict.LOCAL_FAILURE:
        assert failed.refined_instruction == STEP.instruction
    passed = tiny_agent(threshold=0.0).critique(STEP, clip(), WorldMemory("test goal"))
    assert passed.verdict == Verdict.SUCCESS and passed.failure_kind == FailureKind.NONE


def test_reward_is_a_plain_callable_with_one_score_in_0_1_per_clip():
    agent = tiny_agent()
    clips = [clip(64), clip(32), clip(64, frames=15)]  # sizes and lengths may differ
    r = agent(clips, [STEP.instruction] * 3)
    assert isinstance(r, torch.Tensor) and r.shape == (3,) and ((r >= 0) & (r <= 1)).all()
    batch = np.stack([clip().frames] * 2)
    assert agent.reward(batch, STEP.instruction).shape == (2,)
    assert torch.allclose(agent.reward([clips[0].frames], [STEP.instruction]), r[:1], atol=1e-6)
    assert canonical("slide the red square onto the blue circle") == "put the red square on the blue circle"
    with pytest.raises(SpiralError, match="instructions"):
        agent.reward(clips, ["one"])


def test_missing_or_corrupt_weights_name_the_file_and_the_fix(tmp_path):
    with pytest.raises(
        SpiralError, match=r"missing critic weights: .*nope.safetensors; re-create them with: make critic .*spiral train critic"
    ):
        LearnedCriticAgent.load(tmp_path / "nope.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(SpiralError, match=r"corrupt critic weights .*bad.safetensors.*spiral train critic"):
        LearnedCriticAgent.load(bad)


def test_rollouts_come_from_training_scenes_and_are_cached(tmp_path, monkeypatch):
    from spiral.agents.critic import learned_data
    from spiral.worldmodels.tabletop_net import TabletopNet, TabletopNetConfig
    from spiral.worldmodels.tabletop_train import export_weights

    torch.manual_seed(0)
    export_weights(tmp_path / "wm.safetensors", TabletopNet(TabletopNetConfig(dim=32, depth=1, heads=2)), {})
    probes = training_probes(3, seed=0, frame_size=32)
    heldout_frames = {render(random_scene(np.random.default_rng(HELDOUT_SEED + i)), 32).tobytes() for i in range(50)}
    assert not heldout_frames & {p.frame.tobytes() for p in probes}
    data = cached_rollouts(tmp_path / "wm.safetensors", probes, "train", tmp_path, 2, 0, 32, progress=False, guided=1)
    assert len(data) == 6 and data.rollout.all() and data.frames.shape[1:] == (8, 32, 32, 3)
    assert data.group.tolist() == [0, 0, 1, 1, 2, 2] and data.guided.tolist() == [False, True] * 3
    assert data.has_facts.all() and data.objects.shape == (6, 7, 5)  # the oracle's report is kept
    monkeypatch.setattr(learned_data, "label_rollouts", lambda *a, **k: pytest.fail("rollouts were made twice"))
    again = cached_rollouts(tmp_path / "wm.safetensors", probes, "train", tmp_path, 2, 0, 32, progress=False, guided=1)
    assert torch.equal(again.frames, data.frames) and again.texts == data.texts
    # Another guidance never reads these: it makes its own (and the made-twice guard above fires).
    with pytest.raises(pytest.fail.Exception, match="made twice"):
        cached_rollouts(tmp_path / "wm.safetensors", probes, "train", tmp_path, 2, 0, 32, progress=False, guided=1, guidance=2.0)


def test_shipped_weights_load_and_judge_a_clip():
    if not default_weights().is_file():
        pytest.skip("no shipped critic weights yet (spiral train critic, then copy them to src/spiral/assets)")
    agent = LearnedCriticAgent.load()
    critique = agent.critique(STEP, clip(), WorldMemory("test goal"))
    assert 0.0 <= critique.score <= 1.0 and agent.info["stage"] == "sft+rm"
    assert agent.threshold == float(agent.info["threshold"]) and 0.0 < agent.threshold < 1.0  # chosen in training
    assert LearnedCriticAgent.load(threshold=0.9).threshold == 0.9


def test_the_pass_threshold_is_chosen_for_balanced_accuracy():
    # Calibrated scores of rare passes stay low: every pass scores 0.2-0.4, every fail below 0.15
    # but one at 0.3. 0.5 would reject everything; the chosen cut keeps all passes, loses one fail.
    passes, fails = torch.tensor([0.2, 0.25, 0.3, 0.4]), torch.tensor([0.01, 0.05, 0.1, 0.12, 0.14, 0.3])
    cut = balanced_threshold(torch.cat([passes, fails]), torch.tensor([1] * 4 + [0] * 6))
    assert 0.14 < cut <= 0.2
    assert balanced_threshold(passes, torch.ones(4)) == 0.5  # one class only: nothing to choose


def test_a_finer_input_judges_full_size_clips():
    torch.manual_seed(0)
    agent = LearnedCriticAgent(CriticNet(replace(TINY, resolution=64)))
    critique = agent.critique(STEP, clip(64), WorldMemory("g"))
    assert 0.0 <= critique.score <= 1.0
    with pytest.raises(SpiralError, match="critic resolution 40: use a multiple of 16"):
        CriticNet(replace(TINY, resolution=40))


def test_the_critic_round_trips_through_its_export(tmp_path):
    from spiral.agents.critic.learned_train import export_weights

    torch.manual_seed(0)
    net = CriticNet(TINY)
    path = tmp_path / "critic.safetensors"
    export_weights(path, net, {"stage": "test"})
    loaded, info = load_net(path)
    assert loaded.cfg == TINY and info == {"stage": "test"}
    one = LearnedCriticAgent(net).reward([clip(64).frames], STEP.instruction)
    assert 0.0 <= float(one[0]) <= 1.0
    again = LearnedCriticAgent(loaded).reward([clip(64).frames], STEP.instruction)
    assert float(again[0]) == pytest.approx(float(one[0]), abs=2e-3)  # fp16 export


def test_weights_recording_retired_settings_load_at_their_one_value_and_are_refused_at_any_other(tmp_path):
    from safetensors.torch import save_file

    from spiral.checkpoints import export_half

    torch.manual_seed(0)
    net = CriticNet(TINY)
    shipped = {"arch": "objects", "colour_masks": True, "fact_heads": True, "extra_numbers": True, "goal_numbers": True,
               "footprint_numbers": True}  # fmt: skip
    export_half(tmp_path / "old.safetensors", net, TINY.to_dict() | shipped, {"stage": "test"})
    assert load_net(tmp_path / "old.safetensors")[0].cfg == TINY
    for key, value in (("arch", "grid"), ("arch", "slots"), ("goal_numbers", False), ("fact_heads", False)):
        export_half(tmp_path / "other.safetensors", net, TINY.to_dict() | shipped | {key: value}, {})
        with pytest.raises(SpiralError, match=rf"{key} = {value!r}, a setting this version fixes .*tagged rejected-variants"):
            load_net(tmp_path / "other.safetensors")
    tensors = {f"members.{i}.{k}": v.half() for i in range(2) for k, v in net.state_dict().items()}
    save_file(tensors, str(tmp_path / "ensemble.safetensors"), metadata={"members": json.dumps([TINY.to_dict()] * 2)})
    with pytest.raises(SpiralError, match="hold an ensemble of critics.*tagged rejected-variants"):
        LearnedCriticAgent.load(tmp_path / "ensemble.safetensors")


def test_a_critic_run_folder_recording_retired_settings_resumes_at_their_one_value(tiny_run):
    cfg, weights = tiny_run
    saved = json.loads((cfg.out / "config.json").read_text())
    retired = {
        "arch": "objects",
        "extra_numbers": "True",
        "goal_numbers": "True",
        "footprint_numbers": "True",
        "decode": "compose",
    }
    (cfg.out / "config.json").write_text(json.dumps(saved | retired))
    assert train_critic(cfg, progress=False) == weights  # finished: exports only
    (cfg.out / "config.json").write_text(json.dumps(saved | retired | {"arch": "grid"}))
    with pytest.raises(SpiralError, match="arch = 'grid'.*rejected-variants"):
        train_critic(cfg, progress=False)
    (cfg.out / "config.json").write_text(json.dumps(saved))


def test_report_facts_name_the_colours_the_oracle_saw_vanish_and_move():
    from spiral.agents.critic.learned_data import CLIP_FACTS, OBJECT_FACTS, report_facts
    from spiral.worlds.tabletop.checks import check_clip
    from spiral.worlds.tabletop.grammar import parse
    from spiral.worlds.tabletop.scene import COLOURS, Scene

    scene = random_scene(np.random.default_rng(3))
    clear = [o for o in scene.objects if scene.is_clear(o.name) and o.on is None]
    subject, other = clear[0], clear[1]
    action = parse(f"move the {subject.name} to the left of the {other.name}")
    gone = Scene(tuple(o for o in scene.objects if o is not other))  # the anchor vanishes, nothing moves
    report = check_clip(np.stack([render(scene, 64)] * 4 + [render(gone, 64)] * 4), action)
    objects, facts = report_facts(report)
    colours = list(COLOURS)
    assert report.vanished == (other.name,)
    assert objects[colours.index(other.colour), OBJECT_FACTS.index("vanished")] == 1.0
    assert objects[:, OBJECT_FACTS.index("vanished")].sum() == 1.0
    assert objects[:, OBJECT_FACTS.index("moved")].sum() == 0.0
    assert facts[CLIP_FACTS.index("postcondition")] == float(report.postcondition)


def test_the_fact_heads_learn_the_facts_beside_the_verdict():
    from spiral.agents.critic.learned_train import Split, losses, mixed_groups

    rng = np.random.default_rng(0)
    frames = torch.from_numpy(np.stack([np.stack([render(random_scene(rng), 32)] * 8) for _ in range(4)]))
    objects = torch.zeros(4, 7, 5)
    objects[:2, 0, 0] = 1.0  # "red vanished" in the first two
    known = torch.tensor([True, True, True, False])  # the last one is a dataset clip: no report
    facts = torch.where(known[:, None], torch.zeros(4, 3), torch.tensor(float("nan")))
    data = CriticData(frames, [STEP.instruction] * 4, torch.tensor([0.0, 0, 1, 1]), torch.tensor([4, 4, 0, 0]),
                      torch.zeros(4), torch.arange(4), known, objects=objects, facts=facts)  # fmt: skip
    table = TextTable.build([STEP.instruction], shared_text_encoder())
    ids = torch.zeros(4, dtype=torch.long)
    split = Split(data, ids, torch.arange(4), torch.arange(0), mixed_groups(data, torch.arange(4)))
    torch.manual_seed(0)
    net = CriticNet(TINY)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3)
    first = None
    for _ in range(30):
        loss, parts = losses(net, split, torch.arange(4), table, stage=1)
        first = first if first is not None else parts["facts"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert parts["facts"] < 0.5 * first, "the fact heads did not learn"


def test_a_head_only_reward_stage_leaves_the_sft_body_as_it_was(tiny_run, tmp_path):
    from dataclasses import replace

    from safetensors.torch import load_file

    from spiral.agents.critic.learned_train import HEADS

    cfg, _ = tiny_run
    head = replace(cfg, out=tmp_path / "head", sft_steps=20, rm_steps=10, rm_scope="head")
    weights = train_critic(head, progress=False)
    sft, rm = load_file(str(head.out / "critic_sft.safetensors")), load_file(str(weights))
    body = [k for k in sft if not k.startswith((*HEADS, "calib"))]
    assert body and all(torch.equal(sft[k], rm[k]) for k in body)
    assert not torch.equal(sft["head.weight"], rm["head.weight"])


def test_critic_metrics_count_what_the_threshold_lets_through_and_turns_away():
    from spiral.agents.critic.learned_metrics import critic_metrics, metrics_table
    from spiral.agents.critic.learned_net import CriticOutput

    p = torch.tensor([0.9, 0.8, 0.6, 0.3, 0.7, 0.2, 0.1, 0.05])  # four passes, then four fails
    out = CriticOutput(torch.logit(p), torch.zeros(8, len(KINDS)), torch.zeros(8))
    y = torch.tensor([1.0] * 4 + [0.0] * 4)
    m = critic_metrics(out, y, torch.zeros(8, dtype=torch.long), torch.zeros(8), threshold=0.65)
    assert m["fails_passed"] == 0.25 and m["passes_rejected"] == 0.5  # 0.7 let through; 0.6, 0.3 turned away
    assert m["auc"] == pytest.approx(14 / 16)  # 0.7 beats 0.6 and 0.3: two of the sixteen pairs lost
    m.pop("scores")
    assert "25.0% / 50.0%" in metrics_table({"x": m})


def test_mirror_adds_the_mirror_image_of_every_training_clip_and_none_of_validation(tiny_run):
    cfg, _ = tiny_run
    plain = replace(cfg, val_share=0.5)
    split, _, _ = prepare(plain, CriticNetConfig(), progress=False)
    mirror, table, _ = prepare(replace(plain, mirror=True), CriticNetConfig(), progress=False)
    n = len(split.data)
    assert len(mirror.data) == n + len(split.train)
    assert torch.equal(mirror.val, split.val) and len(mirror.train) == 2 * len(split.train)
    image = mirror.data.subset(torch.arange(n, len(mirror.data)))
    source = split.data.subset(split.train)
    assert torch.equal(image.frames, source.frames.flip(-2)) and torch.equal(image.success, source.success)
    assert image.texts == [to_text(mirrored(parse(t))) for t in source.texts]
    assert any("left" in t for t in source.texts) and image.texts != source.texts
    assert not set(image.group.tolist()) & set(source.group.tolist())  # a mirror image is no ranking pair of its source
    assert len(table.emb) == len(set(mirror.data.texts))


def test_a_near_miss_target_moves_at_most_miss_stays_on_the_table_and_leaves_puts_alone_unless_asked():
    from spiral.agents.critic.learned_data import miss_target
    from spiral.worlds.tabletop.actions import sample_target

    moved = puts = 0
    for k, probe in enumerate(training_probes(40, seed=0, source=1)):
        rng = np.random.default_rng(k)
        target = next(t for t in (sample_target(probe.scene, probe.action, rng) for _ in range(20)) if t is not None)
        off = miss_target(probe, target, 0.15, np.random.default_rng(k))
        half = probe.scene.get(probe.action.subject).half
        if target.on is not None:
            assert off == target
            # With puts: off its base's centre by at most the base's half-size, still resting on it.
            put = miss_target(probe, target, 0.15, np.random.default_rng(k), puts=True)
            assert (
                put.on == target.on and 0 < np.hypot(put.x - target.x, put.y - target.y) <= probe.scene.get(target.on).half + 1e-3
            )
            puts += 1
            continue
        assert off == miss_target(probe, target, 0.15, np.random.default_rng(k), puts=True)  # other moves: the same
        assert np.hypot(off.x - target.x, off.y - target.y) <= 0.15 + 1e-3 and off.on is None
        assert half - 1e-3 <= off.x <= 1 - half + 1e-3 and half - 1e-3 <= off.y <= 1 - half + 1e-3
        assert off == miss_target(probe, target, 0.15, np.random.default_rng(k))  # seeded
        moved += (off.x, off.y) != (target.x, target.y)
    assert moved >= 20 and puts >= 2
    assert training_probes(3, seed=0, source=1)[0].frame.tobytes() != training_probes(3, seed=0)[0].frame.tobytes()


def test_near_miss_rollouts_are_guided_and_go_to_training_only(tiny_run, tmp_path):
    from spiral.worldmodels.tabletop_net import TabletopNet, TabletopNetConfig
    from spiral.worldmodels.tabletop_train import export_weights

    torch.manual_seed(0)
    export_weights(tmp_path / "wm.safetensors", TabletopNet(TabletopNetConfig(dim=32, depth=1, heads=2)), {})
    cfg, _ = tiny_run
    plain = replace(cfg, val_share=0.5, world_model=str(tmp_path / "wm.safetensors"), group_size=2, cache=tmp_path / "cache")
    split, _, _ = prepare(plain, CriticNetConfig(), progress=False)
    near, _, _ = prepare(replace(plain, near_misses=4), CriticNetConfig(), progress=False)
    n = len(split.data)
    assert len(near.data) == n + 4 and torch.equal(near.val, split.val)
    assert torch.equal(near.train, torch.cat([split.train, torch.arange(n, n + 4)]))
    added = near.data.subset(torch.arange(n, n + 4))
    assert added.rollout.all() and added.guided.all()
    assert not set(added.group.tolist()) & set(split.data.group.tolist())  # no ranking pair with another clip


def test_near_misses_without_world_model_weights_name_the_file_and_the_fix(tiny_run, tmp_path):
    cfg, _ = tiny_run
    missing = replace(cfg, near_misses=4, world_model=str(tmp_path / "nope.safetensors"), cache=tmp_path / "cache")
    with pytest.raises(SpiralError, match=r"missing world-model weights .*nope.safetensors; pass --world-model"):
        prepare(missing, CriticNetConfig(), progress=False)


def test_critic_threshold_overrides_the_learned_critics_pass_score_and_is_refused_elsewhere():
    from spiral.backends import make_critic

    assert make_critic("learned").threshold == float(LearnedCriticAgent.load().info["threshold"])
    assert make_critic("learned", threshold=0.9).threshold == 0.9
    with pytest.raises(SpiralError, match="the 'oracle' critic has none: drop it"):
        make_critic("oracle", threshold=0.9)
    with pytest.raises(SpiralError, match=r"--critic-threshold must be in \[0, 1\).*got 1.5"):
        make_critic("learned", threshold=1.5)


def test_object_features_measure_where_each_colour_is_what_moved_and_what_the_subject_covers():
    from spiral.agents.critic.learned_net import clips_to_input
    from spiral.agents.critic.learned_objects import EXTRA_NUMBERS, PER_FRAME, RELATIVE, SLOTS, feature_size
    from spiral.worlds.tabletop.actions import RELATIONS
    from spiral.worlds.tabletop.scene import COLOURS

    scene = random_scene(np.random.default_rng(3), num_objects=3, stacked_prob=0.0)
    subject, anchor, other = scene.objects
    onto = scene.moved(subject.name, anchor.x, anchor.y, anchor.name)  # the subject ends on the anchor
    frames = np.stack([render(scene, 64)] * 6 + [render(onto, 64)] * 2)
    cfg = replace(TINY, resolution=64)
    table = TextTable.build([f"put the {subject.name} on the {anchor.name}"], shared_text_encoder())
    x = clips_to_input(frames, cfg, table)[0]
    assert x.shape == (SLOTS, feature_size(8))
    colours, end = list(COLOURS), 7 * PER_FRAME
    s, a, o = (colours.index(obj.colour) for obj in (subject, anchor, other))
    # Centroids in [-1, 1] table coordinates (a triangle's lies a little below its centre).
    for k, obj in ((s, subject), (a, anchor), (o, other)):
        assert x[k, 1:3].tolist() == pytest.approx([2 * obj.x - 1, 2 * obj.y - 1], abs=0.08), obj.name
    shift = [2 * (anchor.x - subject.x), 2 * (anchor.y - subject.y)]
    assert (x[s, end + 1 : end + 3] - x[s, 1:3]).tolist() == pytest.approx(shift, abs=0.03)
    r = 8 * PER_FRAME  # where the relative numbers begin, then the extra ones
    moved, cover, to_subject, to_anchor, roles = r, r + 2, slice(r + 3, r + 5), slice(r + 5, r + 7), slice(r + 11, r + 13)
    gap, ratio, on_start, path, largest = (r + RELATIVE + k for k in range(5))
    # Only the subject moved; the anchor's visible part shifts a little as the subject covers it.
    assert x[s, moved] > 0.5 and x[o, moved] < 0.05 and x[a, moved] < 0.2 * x[s, moved]
    assert x[a, end] < 0.8 * x[a, 0]  # the anchor is partly hidden under it at the end
    assert x[a, cover] > 0.3 and x[o, cover] < 0.01  # ... by the subject, which covers nothing else
    assert x[s, to_anchor].norm() < 0.2 < x[o, to_anchor].norm() and x[o, to_subject].norm() > 0.2
    assert x[s, roles].tolist() == [1.0, 0.0] and x[a, roles].tolist() == [0.0, 1.0] and x[o, roles].sum() == 0
    # Contact: the subject's end outline overlaps the anchor's start outline (a negative gap, centres
    # far closer than the larger reach) and about half of it (the larger of the two) lies on its start
    # mask; the other object is clear of it.
    assert x[a, gap] < 0 < x[o, gap] and x[a, ratio] < 0.5 < x[o, ratio] and x[a, on_start] > 0.4 and x[o, on_start] == 0
    # Motion: the subject's whole path is one step (frames 5 to 6: a jump); the other did not move.
    assert x[s, path] == pytest.approx(4 * float(np.hypot(*shift)), rel=0.05) and x[s, largest] == pytest.approx(1.0, abs=0.02)
    assert x[o, path] < 0.05 and x[o, largest] == 0
    absent = [k for k in range(len(colours)) if k not in (s, a, o)]
    goal = r + RELATIVE + EXTRA_NUMBERS  # every token carries the step's relation, then its own goal numbers
    assert x[absent, :goal].abs().max() == 0.0 and x[absent, goal + len(RELATIONS) :].abs().max() == 0.0  # nothing measured
    assert (x[absent, goal : goal + len(RELATIONS)] == torch.tensor([float(k == "on") for k in RELATIONS])).all()
    # The table: no flicker, and no smears but the few pixels where one colour meets another.
    assert x[-1, 8:15].max() < 0.1 and x[-1, :8].max() < 0.2
    noisy = frames.copy()
    noisy[-1, 40:48, 40:48] = 255  # a white blotch in the last frame: no blend of the colours makes white
    assert clips_to_input(noisy, cfg, table)[0, -1, 7] > x[-1, 7] + 0.3


def test_goal_numbers_say_where_the_subject_ends_against_the_steps_region_or_anchor():
    from spiral.agents.critic.learned_net import clips_to_input
    from spiral.agents.critic.learned_objects import EXTRA_NUMBERS, GOAL_NUMBERS, PER_FRAME, RELATIVE
    from spiral.worlds.tabletop.actions import RELATIONS
    from spiral.worlds.tabletop.scene import COLOURS, SIZES, Scene, TableObject

    subject, anchor = TableObject("red", "square", "small", 0.15, 0.2), TableObject("blue", "circle", "medium", 0.6, 0.8)
    scene = Scene((subject, anchor))
    cfg = TINY
    s, a = list(COLOURS).index("red"), list(COLOURS).index("blue")
    g = 8 * PER_FRAME + RELATIVE + EXTRA_NUMBERS
    relation, margins, smallest, along, across, on_base = (
        slice(g, g + 6),
        slice(g + 6, g + 10),
        g + 10,
        g + 11,
        g + 12,
        slice(g + 13, g + 16),
    )
    assert GOAL_NUMBERS == 16

    def numbers(instruction: str, x: float, y: float, on: str | None = None) -> torch.Tensor:
        end = scene.moved("red square", x, y, on)
        frames = np.stack([render(scene, 64)] * 4 + [render(end, 64)] * 4)
        return clips_to_input(frames, cfg, TextTable.build([instruction], shared_text_encoder()))[0]

    # Into the middle column (x from 1/3 to 2/3): inside it, every margin is positive; left short of
    # it (the demo's miss), the left margin and so the smallest is negative, by about the shortfall.
    inside, short = (
        numbers("move the red square to the middle column", 0.5, 0.2),
        numbers("move the red square to the middle column", 0.25, 0.2),
    )
    assert inside[s, relation].tolist() == [float(r == "in") for r in RELATIONS]
    assert inside[s, smallest] > 0 and (inside[s, margins] > 0).all()
    assert short[s, smallest] == pytest.approx(4 * 2 * (0.25 - 1 / 3), abs=0.04) and short[s, margins][1:].min() > 0
    assert inside[s, along] == 0 and inside[s, across] == 0  # no anchor object
    # Left of the blue circle: along the direction (leftwards) positive, across it the vertical offset.
    left = numbers("move the red square to the left of the blue circle", 0.4, 0.75)
    assert left[s, relation].tolist() == [float(r == "left of") for r in RELATIONS]
    assert left[s, along] == pytest.approx(4 * 2 * 0.2, abs=0.15) and left[s, across] == pytest.approx(4 * 2 * 0.05, abs=0.15)
    assert numbers("move the red square to the right of the blue circle", 0.4, 0.75)[s, along] < -1.0
    assert left[s, margins].abs().max() == 0 and left[a, along] == 0  # no region; the anchor is where it is
    # Onto the blue circle: the subject's box centre against the circle's, in the circle's half-sizes.
    half = SIZES["medium"]
    centred, off = (numbers("put the red square on the blue circle", 0.6 + dx * half, 0.8, "blue circle") for dx in (0.0, 0.8))
    assert centred[s, on_base][2] < 0.15 and off[s, on_base].tolist() == pytest.approx([0.8, 0.0, 0.8], abs=0.05)
    assert centred[s, margins].abs().max() == 0 and centred[s, along] == 0 and left[s, on_base].abs().max() == 0
    # Text the grammar cannot parse has no goal.
    assert numbers("wiggle it", 0.5, 0.2)[:, g:].abs().max() == 0


@pytest.mark.parametrize("shape", ["square", "circle", "triangle"])
def test_boxes_are_read_to_a_fraction_of_a_pixel_and_triangles_by_their_spread(shape):
    from spiral.agents.critic.learned_net import downsample
    from spiral.agents.critic.learned_objects import _box, read_pixels
    from spiral.worlds.tabletop.scene import SIZES, Scene, TableObject

    r = 32
    per_table = 2 * r / (r - 1)  # coordinate units per table unit
    for size, x, y in (("small", 0.5, 0.5), ("large", 0.513, 0.527)):
        obj = TableObject("blue", shape, size, x, y)
        frame = downsample(render(Scene((obj,)), 64)[None, None], r)[0].float().movedim(-1, -3) / 127.5 - 1.0
        centre, half, triangle = _box(read_pixels(frame[None])[0][0, 0, 4])  # blue's mask
        # Within a tenth of a 32x32 pixel (0.003 table units) of where the world put it.
        assert centre.tolist() == pytest.approx([(2 * x - 1) * r / (r - 1), (2 * y - 1) * r / (r - 1)], abs=0.1 * per_table / r)
        assert float(half) == pytest.approx(SIZES[size] * per_table, abs=0.15 * per_table / r)
        assert float(triangle) == (1.0 if shape == "triangle" else 0.0)


def test_footprint_numbers_measure_the_clearance_the_oracles_crowding_test_measures():
    from spiral.agents.critic.learned_net import clips_to_input
    from spiral.agents.critic.learned_objects import FOOTPRINT_NUMBERS, colour_features
    from spiral.worlds.tabletop.scene import COLOURS, GAP, READ_SLACK, Scene, TableObject, collides

    cfg = TINY
    f = colour_features(8) - FOOTPRINT_NUMBERS  # where they begin: last
    s, o = list(COLOURS).index("red"), list(COLOURS).index("blue")
    for subject_shape, other_shape in (("square", "circle"), ("triangle", "square"), ("circle", "triangle")):
        other, subject = (
            TableObject("blue", other_shape, "medium", 0.5, 0.5),
            TableObject("red", subject_shape, "small", 0.15, 0.15),
        )
        limit = other.radius + subject.radius + GAP - 2 * READ_SLACK  # closer than this is crowded
        for gap in (-0.03, 0.03):
            scene = Scene((other, subject))  # the subject is drawn last, over the other, as it moves over them
            end = scene.moved("red " + subject_shape, 0.5 - 0.8 * (limit + gap), 0.5 + 0.6 * (limit + gap), None)
            assert collides(end.get("red " + subject_shape), other) == (gap < 0)
            frames = np.stack([render(scene, 64)] * 4 + [render(end, 64)] * 4)
            table = TextTable.build([f"move the red {subject_shape} to the middle left"], shared_text_encoder())
            x = clips_to_input(frames, cfg, table)[0]
            clearance = float(x[o, f]) / 8 * (31 / 32)  # in table units
            assert clearance == pytest.approx(gap, abs=0.015), (subject_shape, other_shape, gap)
            assert (x[o, f + 1] < 1) == (gap < 0) and x[s, f : f + 2].abs().max() == 0  # the subject's own token: none


def test_rendered_near_misses_are_labelled_by_the_oracle_cached_and_go_to_training_only(tiny_run, tmp_path, monkeypatch):
    from spiral.agents.critic import learned_data
    from spiral.agents.critic.learned_data import RENDER_SOURCE, cached_renders
    from spiral.worlds.tabletop.checks import check_clip
    from spiral.worlds.tabletop.render import render_motion

    data = cached_renders(6, 0, 32, 0.2, 8, tmp_path, progress=False)
    assert len(data) == 6 and not data.rollout.any() and data.has_facts.all() and data.frames.shape[1:] == (8, 32, 32, 3)
    assert 0 < data.success.sum() < 6  # both sides of the edge
    # Each clip is the simulator's motion towards its target moved by up to 0.2, and its label is the oracle's.
    probe = training_probes(6, 0, source=RENDER_SOURCE)[0]
    rng = np.random.default_rng([learned_data.ROLLOUT_STREAM, 0, RENDER_SOURCE, 0])
    target = next(t for t in (learned_data.sample_target(probe.scene, probe.action, rng) for _ in range(20)) if t is not None)
    moved = learned_data.miss_target(probe, target, 0.2, rng)
    clip = render_motion(learned_data.trajectory(probe.scene, probe.action, moved, 8), 64, probe.action.subject)
    assert bool(data.success[0]) == check_clip(clip, probe.action).ok and data.texts[0] == to_text(probe.action)
    monkeypatch.setattr(learned_data, "label_renders", lambda *a, **k: pytest.fail("renders were made twice"))
    assert torch.equal(cached_renders(6, 0, 32, 0.2, 8, tmp_path, progress=False).frames, data.frames)
    monkeypatch.undo()
    cfg, _ = tiny_run
    plain = replace(cfg, val_share=0.5, cache=tmp_path / "cache")
    split, _, _ = prepare(plain, CriticNetConfig(), progress=False)
    more, _, _ = prepare(replace(plain, near_renders=6), CriticNetConfig(), progress=False)
    n = len(split.data)
    assert len(more.data) == n + 6 and torch.equal(more.val, split.val)
    assert torch.equal(more.train, torch.cat([split.train, torch.arange(n, n + 6)]))


def test_read_pixels_gives_a_rim_between_two_objects_to_them_not_to_a_third_colour():
    from spiral.agents.critic.learned_objects import read_pixels
    from spiral.worlds.tabletop.scene import COLOURS, Scene, TableObject

    base = TableObject("yellow", "circle", "large", 0.5, 0.5)
    stack = Scene((base, TableObject("red", "triangle", "small", 0.5, 0.5, on=base.name)))
    frame = render(stack, 64)
    x = torch.from_numpy(frame).float().permute(2, 0, 1)[None, None] / 127.5 - 1.0
    cover, misfit = read_pixels(x)
    colours = list(COLOURS)
    # Half red, half yellow is close to orange: read as a blend of the two, it is none of orange.
    assert cover[0, 0, colours.index("orange")].sum() < 0.5

    # Each object covers as much as it does alone on the table (the yellow one: but for what the red covers).
    def lone_cover(obj):
        lone = torch.from_numpy(render(Scene((replace(obj, on=None),)), 64)).float().permute(2, 0, 1)[None, None] / 127.5 - 1.0
        return float(read_pixels(lone)[0][0, 0, colours.index(obj.colour)].sum())

    alone = {o.colour: lone_cover(o) for o in stack.objects}
    red, yellow = colours.index("red"), colours.index("yellow")
    assert float(cover[0, 0, red].sum()) == pytest.approx(alone["red"], rel=0.05)
    assert float(cover[0, 0, red].sum() + cover[0, 0, yellow].sum()) == pytest.approx(alone["yellow"], rel=0.05)
    assert misfit.sum() < 1.0


def test_a_given_pass_score_is_stored_in_place_of_the_balanced_one(tiny_run, tmp_path):
    cfg, _ = tiny_run
    quick = replace(cfg, out=tmp_path / "run", sft_steps=20, rm_steps=2, checkpoint_every=20)
    weights = train_critic(replace(quick, pass_score=0.5), progress=False)
    assert LearnedCriticAgent.load(weights).threshold == 0.5
    with pytest.raises(SpiralError, match="--pass-score 1.5: use a probability in"):
        train_critic(replace(quick, out=tmp_path / "bad", pass_score=1.5), progress=False)


def test_the_fact_heads_name_the_object_a_failure_is_about():
    from spiral.agents.critic.learned import object_feedback
    from spiral.agents.critic.learned_objects import OBJECT_FACTS

    crowded = OBJECT_FACTS.index("crowded")
    logits = torch.full((7, len(OBJECT_FACTS)), -5.0)
    logits[4, crowded] = 3.0  # blue
    logits[0, crowded] = 6.0  # red: the subject itself, left out
    said = object_feedback(FailureKind.PHYSICAL_VIOLATION, logits, "red square")
    assert said == "the red square seems to end inside the blue object's footprint"
    assert object_feedback(FailureKind.WRONG_OBJECT, logits, "red square") == ""  # no other object moved
    assert object_feedback(FailureKind.INCOMPLETE, logits, "red square") == ""
    # Through the agent: a net whose heads say "physical violation" and "crowded" for every colour.
    torch.manual_seed(0)
    net = CriticNet(TINY)
    with torch.no_grad():
        net.head.weight[2:].zero_()
        net.head.bias[2:] = torch.tensor([-9.0, -9, -9, -9, 9, -9])  # KINDS[4]: physical violation
        net.object_head.weight.zero_()
        net.object_head.bias.fill_(-5.0)
        net.object_head.bias[crowded] = 5.0
    failed = LearnedCriticAgent(net, threshold=1.01).critique(STEP, clip(), WorldMemory("test goal"))
    assert failed.failure_kind == FailureKind.PHYSICAL_VIOLATION
    assert failed.feedback.startswith("the red square seems to end inside the orange object's footprint (critic score")
