"""How well the `learned` critic agrees with the oracle on HELD-OUT world-model rollouts, for the
SFT stage alone and for SFT + reward model.

    .venv/bin/python benchmarks/critic_quality.py [--probes 300] [--group-size 2]
        [--world-model FILE] [--sft runs/critic/critic_sft.safetensors]
        [--rm FILE (default: the shipped critic)] [--svg docs/critic_scores.svg] [--training-rollouts 3072]
        [--chained] [--probe-seed 5000000] [--episodes RUN[,RUN...]] [--guidance G]

Probes are the held-out scenes of tabletop_eval (seeds from 1_000_000 up), never used in training;
each gets `group-size` samples of the world model (half ODE, half SDE, as in training) and the
oracle labels every clip (check_clip(...).ok and .failure_kind). ROC-AUC is rank-based against
those labels (target >= 0.95); failure-kind accuracy is on the clips the oracle failed; ECE and
Brier say how calibrated the scores are. Rollouts are cached per world-model digest. The SFT row
needs a training run's critic_sft.safetensors (the shipped critic is the SFT+RM one).
`--training-rollouts N` also scores the first N rollouts `spiral train critic` makes by default (its
training scenes, seed 0, groups of 6 with 2 guided; read from its cache), 80% of which the critic
trained on: how far its fit there is from its held-out figure says whether it memorised them.
`--chained` judges second steps instead (tabletop_eval.chained_probes): each held-out scene's step
is sampled once and a new step starts from that clip's last frame, a generated frame with the
model's artefacts, as most steps of the closed loop start. `--probe-seed S` draws the probes from
seeds S, S+1, ... instead (a tuning set of its own: choose recipes there, then measure once on the
held-out probes). `--episodes RUN,...` judges the clips of saved closed-loop episodes instead
(`spiral bench run ... --critic oracle --save-episodes --out RUN`): every attempt, labelled by the
oracle critic's verdict in the loop; later steps start from generated frames after several steps.
Each table is followed by a breakdown by what the oracle saw in the failed clips, and one by kind of action.
`--guidance G` samples the held-out rollouts at guidance G (default: the world model's sampler, as
the loop samples; it was 5 until the nineteenth session, and the critic trains on guidance-5 rollouts).
"""

from __future__ import annotations

import argparse
import collections
import math
import os
import platform
import time
from pathlib import Path

import torch

from spiral.agents.critic.learned import canonical, load_net
from spiral.agents.critic.learned_data import CriticData, cached_rollouts, training_probes
from spiral.agents.critic.learned_metrics import critic_metrics, metrics_table, roc_auc, score_histograms_svg, text_histogram
from spiral.agents.critic.learned_net import KIND_INDEX, KINDS, TextTable, downsample, predict
from spiral.agents.critic.learned_objects import CLIP_FACTS, OBJECT_FACTS
from spiral.agents.critic.learned_train import CriticTrainConfig
from spiral.data.format import EPISODE, read_episode
from spiral.data.video import read_video
from spiral.types import Verdict
from spiral.worldmodels.tabletop import SamplerConfig, default_weights
from spiral.worldmodels.tabletop_eval import HELDOUT_SEED, chained_probes, make_probes
from spiral.worldmodels.text import shared_text_encoder
from spiral.worlds.tabletop.grammar import parse

ROLLOUT_SEED = 1  # the training rollouts use seed 0; another noise stream for the held-out ones
# `spiral train critic`'s default rollouts, for --training-rollouts
TRAIN_GROUP, TRAIN_GUIDED = CriticTrainConfig.group_size, CriticTrainConfig.guided


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--probes", type=int, default=300)
    parser.add_argument("--group-size", type=int, default=2)
    parser.add_argument("--world-model", default=None, help="default: the shipped tabletop_wm.safetensors")
    parser.add_argument("--sft", default="runs/critic/critic_sft.safetensors")
    parser.add_argument("--rm", default=None, help="default: the shipped tabletop_critic.safetensors")
    parser.add_argument("--cache", default="runs/critic-cache")
    parser.add_argument(
        "--guidance", type=float, default=SamplerConfig().guidance_scale,
        help="held-out rollouts' classifier-free guidance (default: the world model's, as the loop samples)",
    )  # fmt: skip
    parser.add_argument(
        "--svg",
        default=None,
        help="score histograms of both stages ('' for none; default: docs/critic_scores.svg for the held-out rollouts)",
    )
    parser.add_argument("--training-rollouts", type=int, default=0, help="also score this many training rollouts")
    parser.add_argument("--chained", action="store_true", help="second steps, from generated frames")
    parser.add_argument("--probe-seed", type=int, default=HELDOUT_SEED, help="first probe seed (default: the held-out probes)")
    parser.add_argument("--episodes", default="", help="judge the attempts of saved oracle-critic episodes of these runs")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    wm_path = Path(args.world_model) if args.world_model else default_weights()

    stages = {"SFT": args.sft, "SFT+RM": args.rm}
    if not Path(args.sft).is_file():  # only a training run leaves the SFT stage behind
        print(f"(no SFT-stage weights at {args.sft}: that row is left out)")
        del stages["SFT"]
    loaded = {stage: load_net(path) for stage, path in stages.items()}
    nets = {stage: net for stage, (net, _) in loaded.items()}
    # Each stage at the pass threshold `--critic learned` would use with it (the SFT export carries none: 0.5).
    cuts = {stage: float(info.get("threshold", 0.5)) for stage, (_, info) in loaded.items()}
    # Clips at the finest input any critic reads; a coarser critic area-downsamples them itself.
    resolution = max(net.resolution for net in nets.values())

    began = time.perf_counter()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}")
    if args.episodes:
        data = episode_attempts([Path(r) for r in args.episodes.split(",")], resolution)
        what = f"attempts of saved episodes ({args.episodes})"
    else:
        probes = make_probes(args.probes, seed=args.probe_seed)
        if args.chained:
            from spiral.worldmodels.tabletop import TabletopWorldModel

            wm = TabletopWorldModel.load(wm_path, sampler=SamplerConfig(guidance_scale=args.guidance))
            probes = chained_probes(wm, probes, seed=ROLLOUT_SEED)
        name = "heldout" if args.probe_seed == HELDOUT_SEED else f"probes{args.probe_seed}"
        data = cached_rollouts(
            wm_path, probes, name + ("-chained" if args.chained else ""), Path(args.cache), args.group_size, ROLLOUT_SEED,
            resolution, processes=args.threads, guidance=args.guidance,
        )  # fmt: skip
        print(f"world model: {wm_path}; guidance {args.guidance:g}")
        what = f"{name} rollouts{' (chained)' if args.chained else ''}: {len(probes)} probes x {args.group_size}"
    rollout_s = time.perf_counter() - began
    y = data.success.numpy()
    kinds = collections.Counter(KINDS[k].value for k in data.kind.tolist())
    print(
        f"{what}; {len(data)} clips made or read in {rollout_s:.0f} s; oracle passes {y.mean():.1%}; oracle kinds: {dict(kinds)}"
    )
    texts = sorted(set(data.texts))
    table = TextTable.build(texts, shared_text_encoder())
    ids = torch.tensor([texts.index(t) for t in data.texts])

    rows, hist = {}, {}
    for stage, net in nets.items():
        path = stages[stage]
        t0 = time.perf_counter()
        out = predict(net, data.frames, ids, table)
        ms = (time.perf_counter() - t0) / len(data) * 1000
        rows[stage] = critic_metrics(out, data.success, data.kind, data.drift, cuts[stage])
        hist[stage] = (rows[stage].pop("scores"), y)
        print(
            f"{stage}: {path or 'the shipped critic'} ({net.num_params() / 1e3:.0f}k parameters, {ms:.2f} ms per clip in batches)"
        )
    if args.training_rollouts:
        train = cached_rollouts(
            wm_path,
            training_probes(math.ceil(args.training_rollouts / TRAIN_GROUP), 0),
            "train",
            Path(args.cache),
            TRAIN_GROUP,
            0,
            resolution,
            guided=TRAIN_GUIDED,
            processes=args.threads,
        )
        train_texts = sorted(set(train.texts))
        train_table = TextTable.build(train_texts, shared_text_encoder())
        train_ids = torch.tensor([train_texts.index(t) for t in train.texts])
        for stage, net in nets.items():
            out = predict(net, train.frames, train_ids, train_table)
            rows[f"{stage}, training rollouts"] = critic_metrics(out, train.success, train.kind, train.drift, cuts[stage])
            rows[f"{stage}, training rollouts"].pop("scores")
    print()
    print(metrics_table(rows))
    print("(target: ROC-AUC >= 0.95 against the oracle; kind and replan accuracy on the clips the oracle failed)")
    print()
    print(breakdown_table(data, {stage: p for stage, (p, _) in hist.items()}, cuts))
    print()
    print(action_table(data, {stage: p for stage, (p, _) in hist.items()}, cuts))
    for stage, (p, labels) in hist.items():
        print()
        print(text_histogram(f"{stage} scores on these clips", {"oracle pass": p[labels > 0], "oracle fail": p[labels == 0]}))
    plain = not (args.episodes or args.chained or args.probe_seed != HELDOUT_SEED)
    svg = args.svg if args.svg is not None else ("docs/critic_scores.svg" if plain else "")  # the docs show the held-out set
    if svg:
        Path(svg).parent.mkdir(parents=True, exist_ok=True)
        Path(svg).write_text(score_histograms_svg("held-out world-model rollouts" if plain else what, hist))
        print(f"\nhistograms: {svg}")


def breakdown_table(data, scores: dict, cuts: dict) -> str:
    """Per kind of failure the oracle saw: how many failed clips, each critic's ROC-AUC of those
    clips against all passed ones, and the share of them it lets through at its threshold. Rollouts
    carry the oracle's per-object facts; episode attempts only the failure kind."""
    passed = data.success > 0
    groups = {f"failure kind: {KINDS[k].value}": data.kind == k for k in range(1, len(KINDS))}
    if data.has_facts.any():
        # ("moved" counts the subject too, so it is in nearly every clip: left out)
        facts = {
            f"any object {fact}": data.objects[:, :, j].amax(1) > 0 for j, fact in enumerate(OBJECT_FACTS) if fact != "moved"
        }
        groups |= facts
        groups["the postcondition does not hold"] = data.facts[:, CLIP_FACTS.index("postcondition")] == 0
    head = "| failed clips in which the oracle saw | clips | " + " | ".join(f"{s}: ROC-AUC / passed" for s in scores) + " |"
    lines = [head, "|" + "---|" * (2 + len(scores))]
    for name, mask in groups.items():
        fails = mask & ~passed
        if not fails.any():
            continue
        cells = []
        for stage, p in scores.items():
            p = torch.as_tensor(p)
            both = torch.cat([p[passed], p[fails]]).numpy()
            auc = roc_auc(both, torch.cat([torch.ones(int(passed.sum())), torch.zeros(int(fails.sum()))]).numpy())
            cells.append(f"{auc:.3f} / {float((p[fails] >= cuts[stage]).float().mean()):.0%}")
        lines.append(f"| {name} | {int(fails.sum())} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


ACTION_KINDS = {
    "into a region": ("in",),
    "left / right of": ("left of", "right of"),
    "above / below": ("above", "below"),
    "onto an object": ("on",),
}


def action_table(data, scores: dict, cuts: dict) -> str:
    """Per kind of action: how many clips and failed clips, each critic's ROC-AUC within them, and
    the share of their failed clips it lets through at its threshold."""
    relations = [parse(t).relation for t in data.texts]
    passed = data.success > 0
    head = "| kind of action | clips | failed | " + " | ".join(f"{s}: ROC-AUC / fails passed" for s in scores) + " |"
    lines = [head, "|" + "---|" * (3 + len(scores))]
    for name, kinds in ACTION_KINDS.items():
        mask = torch.tensor([r in kinds for r in relations])
        fails = mask & ~passed
        if not (mask & passed).any() or not fails.any():
            continue
        cells = []
        for stage, p in scores.items():
            p = torch.as_tensor(p)
            auc = roc_auc(p[mask].numpy(), data.success[mask].numpy())
            cells.append(f"{auc:.3f} / {float((p[fails] >= cuts[stage]).float().mean()):.0%}")
        lines.append(f"| {name} | {int(mask.sum())} | {int(fails.sum())} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def episode_attempts(runs: list[Path], resolution: int) -> CriticData:
    """Every attempt of the episodes saved under each run's episodes/ folder, labelled by the in-loop
    critic's verdict (run them with --critic oracle) and failure kind."""
    frames, texts, success, kinds, drift = [], [], [], [], []
    for folder in sorted(p.parent for run in runs for p in run.glob(f"episodes/*/*/{EPISODE}")):
        for step in read_episode(folder).steps:
            for attempt in step.attempts:
                c = attempt.critique
                if c is None or c.failure_kind.value not in KIND_INDEX:  # no critique, or a start the oracle could not read
                    continue
                frames.append(downsample(read_video(folder / attempt.video), resolution))
                texts.append(canonical(attempt.instruction))
                success.append(c.verdict == Verdict.SUCCESS)
                kinds.append(KIND_INDEX[c.failure_kind.value])
                drift.append(c.verdict == Verdict.GLOBAL_DRIFT)
    if not frames:
        raise SystemExit(
            f"no saved episodes with oracle critiques under {', '.join(map(str, runs))}/episodes (use --save-episodes)"
        )
    n = len(frames)
    return CriticData(
        torch.stack(frames), texts, torch.tensor(success, dtype=torch.float32), torch.tensor(kinds),
        torch.tensor(drift, dtype=torch.float32), torch.arange(n), torch.zeros(n, dtype=torch.bool),
    )  # fmt: skip


if __name__ == "__main__":
    main()
