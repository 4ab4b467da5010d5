"""`spiral train critic`: the `learned` tabletop critic, in two stages, from one command.

Reads top to bottom: labelled dataset clips + world-model rollouts labelled by the oracle (both
cached) -> split off validation scenes -> add, to training only, rendered near misses and the
mirror images of the training clips -> stage 1, SFT (BCE on success, CE on the failure kind, BCE
on "needs a replan", BCE on the oracle's per-object and clip facts) -> stage 2,
reward model (a Bradley-Terry ranking loss between passed and failed clips, most of them of the
same start frame and instruction, beside the SFT losses at a lower learning rate; by default on
the heads only, `--rm-scope all` retrains every weight, which lowered the ROC-AUC of most critics we
tried, docs/RESULTS.md at tag results-diary) -> Platt scaling fitted on the validation rollouts -> fp16 exports of both stages and
their score histograms. A checkpoint (safetensors) holds the weights, the optimizer moments, the
batch generator and the step, so a resumed run continues where it stopped. The log keeps the
validation ROC-AUC at every checkpoint.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch.nn import functional as F
from tqdm import tqdm

from spiral.agents.critic.learned_data import (
    ROLLOUT_GUIDANCE,
    CriticData,
    cached_renders,
    cached_rollouts,
    load_dataset,
    training_probes,
    weights_digest,
)
from spiral.agents.critic.learned_metrics import (
    balanced_threshold,
    critic_metrics,
    fit_platt,
    metrics_table,
    roc_auc,
    score_histograms_svg,
    text_histogram,
)
from spiral.agents.critic.learned_net import CriticNet, CriticNetConfig, TextTable, clips_to_input, predict
from spiral.checkpoints import export_half, optimizer_tensors, prefixed, restore_optimizer, save_atomic, trim_log
from spiral.config import option
from spiral.errors import SpiralError
from spiral.run_folder import claim_folder
from spiral.worldmodels.text import shared_text_encoder

RM_SCOPES = ("all", "head")
# Settings a run folder may record that have one value now (see run_folder.claim_folder).
RETIRED_SETTINGS = dict(arch="objects", extra_numbers="True", goal_numbers="True", footprint_numbers="True", decode="compose")
HEADS = ("head.", "norm.", "object_head.", "fact_head.")  # what rm_scope "head" trains


@dataclass(frozen=True)
class CriticTrainConfig:
    data: str = option("data/tabletop-train,data/critic-train", "comma-separated ActWM dataset folders (labelled clips)")
    world_model: str = option("", "world-model weights to roll out (default: the shipped tabletop_wm.safetensors)")
    rollouts: int = option(6144, "world-model rollouts from training scenes, labelled by the oracle (cached)")
    group_size: int = option(6, "rollouts per scene and instruction; the ranking pairs")
    near_misses: int = option(
        0, "guided rollouts towards targets moved off the true ones (scenes of their own; training only, not validation)"
    )
    near_renders: int = option(
        12288, "near misses rendered by the simulator (targets moved by up to --miss), labelled by the oracle (training only)"
    )
    miss: float = option(0.2, "how far (table units, at most) a near-miss rollout's or render's target is moved")
    miss_puts: bool = option(
        False, "rendered near misses of puts too: the subject off its base's centre by up to the base's half-size"
    )
    guided: int = option(2, "of each group, rollouts guided by the true motion (the rest: half ODE, half SDE)")
    rollout_guidance: float = option(
        ROLLOUT_GUIDANCE,
        "classifier-free guidance of the rollouts (5: the shipped critic's; the loop samples at the model's default)",
    )
    out: Path = option(Path("runs/critic"), "run folder: checkpoint, log, exported weights, histograms")
    cache: Path = option(Path("runs/critic-cache"), "cache of decoded dataset clips and rollouts")
    sft_steps: int = option(1600, "stage 1 (SFT) optimizer steps")
    rm_steps: int = option(300, "stage 2 (reward model) optimizer steps")
    batch_size: int = option(64, "clips per step")
    lr: float = option(1e-3, "stage 1 AdamW learning rate (cosine decay)")
    rm_lr: float = option(2e-4, "stage 2 AdamW learning rate (cosine decay)")
    rm_scope: str = option(
        "head",
        "what stage 2 trains: head (the heads, on the SFT body) or all (every weight; lowered the ranking of most critics tried)",
        choices=RM_SCOPES,
    )
    pass_score: float = option(
        0.5,
        "the pass threshold stored with the weights: 0 = the score with the best balanced accuracy on the validation "
        "rollouts; else this calibrated probability (0.5: pass what is more likely good than not)",
    )
    mirror: bool = option(True, "also train on the left-right mirror image of every training clip, instruction mirrored")
    swap_rate: float = option(0.35, "share of good dataset clips also shown with a mismatched instruction")
    rollout_share: float = option(0.5, "share of each batch drawn from the world-model rollouts")
    val_share: float = option(0.2, "share of scenes held back for validation and calibration")
    resolution: int = option(32, "input size the clips are downsampled to (64 = the tabletop frame itself)")
    dim: int = option(96, "transformer width")
    depth: int = option(3, "transformer blocks")
    seed: int = option(0, "seed of initialisation, splits, batches and rollouts")
    checkpoint_every: int = option(100, "steps between checkpoints")
    threads: int = option(0, "torch threads; 0 = OMP_NUM_THREADS or 1")


@dataclass
class Split:
    data: CriticData
    text_ids: torch.Tensor  # (N,) row of each clip's instruction in the embedding table
    train: torch.Tensor
    val: torch.Tensor
    mixed: tuple[list[torch.Tensor], list[torch.Tensor]]  # training groups with a pass and a fail (see mixed_groups)


def prepare(cfg: CriticTrainConfig, net_cfg: CriticNetConfig, progress: bool) -> tuple[Split, TextTable, str]:
    """All clips, their text rows, a train/validation split by group, and the text embedding table."""
    folders = [Path(d.strip()) for d in cfg.data.split(",") if d.strip()]
    parts = [load_dataset(folder, net_cfg.resolution, cfg.cache, cfg.swap_rate, progress) for folder in folders]
    digest = ""
    if cfg.rollouts > 0:
        wm_path = world_model_weights(cfg)
        digest = weights_digest(wm_path)
        probes = training_probes(math.ceil(cfg.rollouts / cfg.group_size), cfg.seed)
        res = net_cfg.resolution
        # The oracle labels over as many processes as torch has threads: the cores we were given.
        rollouts = cached_rollouts(
            wm_path, probes, "train", cfg.cache, cfg.group_size, cfg.seed, res, progress, cfg.guided, torch.get_num_threads(),
            guidance=cfg.rollout_guidance,
        )  # fmt: skip
        parts.append(rollouts)
    if not parts:
        raise SpiralError("nothing to train on: give --data folders or --rollouts > 0")
    data = CriticData.cat(parts)
    groups = torch.unique(data.group)
    held = groups[
        torch.randperm(len(groups), generator=torch.Generator().manual_seed(cfg.seed))[: int(len(groups) * cfg.val_share)]
    ]
    val_mask = torch.isin(data.group, held)
    train, val = torch.nonzero(~val_mask)[:, 0], torch.nonzero(val_mask)[:, 0]
    if cfg.near_misses > 0:  # training only: validation and calibration stay the clips the critic will judge
        near = near_miss_rollouts(cfg, net_cfg, progress)
        n = len(data)
        data = CriticData.cat([data, near])
        train = torch.cat([train, torch.arange(n, len(data))])
    if cfg.near_renders > 0:  # training only, as the near-miss rollouts; in batches they count as dataset clips
        renders = cached_renders(
            cfg.near_renders,
            cfg.seed,
            net_cfg.resolution,
            cfg.miss,
            net_cfg.num_frames,
            cfg.cache,
            progress,
            torch.get_num_threads(),
            cfg.miss_puts,
        )
        n = len(data)
        data = CriticData.cat([data, renders])
        train = torch.cat([train, torch.arange(n, len(data))])
    if cfg.mirror:  # mirror images of the training clips only: validation stays real clips
        n = len(data)
        data = CriticData.cat([data, data.subset(train).mirrored()])
        train = torch.cat([train, torch.arange(n, len(data))])
    texts = sorted(set(data.texts))
    table = TextTable.build(texts, shared_text_encoder())
    row = {t: i for i, t in enumerate(texts)}
    text_ids = torch.tensor([row[t] for t in data.texts])
    split = Split(data, text_ids, train, val, mixed_groups(data, train))
    return split, TextTable(table.emb.half(), table.pad, table.rgb, table.named, table.goal), digest


def world_model_weights(cfg: CriticTrainConfig) -> Path:
    """The world model the rollouts come from: --world-model, or the shipped one."""
    from spiral.worldmodels.tabletop import default_weights

    wm_path = Path(cfg.world_model) if cfg.world_model else default_weights()
    if not wm_path.is_file():
        raise SpiralError(f"missing world-model weights {wm_path}; pass --world-model, or --rollouts 0 --near-misses 0")
    return wm_path


def near_miss_rollouts(cfg: CriticTrainConfig, net_cfg: CriticNetConfig, progress: bool) -> CriticData:
    """Rollouts of scenes of their own, all guided towards targets moved by up to cfg.miss: ends on
    both sides of the postcondition's edge, each labelled by the oracle."""
    probes = training_probes(math.ceil(cfg.near_misses / cfg.group_size), cfg.seed, source=1)
    return cached_rollouts(
        world_model_weights(cfg), probes, "nearmiss", cfg.cache, cfg.group_size, cfg.seed, net_cfg.resolution, progress, cfg.group_size,
        torch.get_num_threads(), miss=cfg.miss, guidance=cfg.rollout_guidance,
    )  # fmt: skip


def sample_batch(split: Split, cfg: CriticTrainConfig, gen: torch.Generator, stage: int) -> torch.Tensor:
    """Stage 1: rollouts (classes square-root balanced) and dataset clips (half failures). Stage 2:
    whole groups that hold both a pass and a fail, plus a quarter of random rollouts."""
    d, idx = split.data, split.train
    roll = idx[d.rollout[idx]]
    dset = idx[~d.rollout[idx]]
    n_roll = round(cfg.batch_size * cfg.rollout_share) if len(roll) else 0
    if stage == 2:
        mixed = split.mixed
        # A handful of mixed rollout groups is not drawn half the time (learnt by heart): share grows to 200.
        roll_share = cfg.rollout_share * min(1.0, len(mixed[1]) / 200) if mixed[0] else 1.0
        if mixed[0] or mixed[1]:
            picks, size = [], 0
            while size < cfg.batch_size - n_roll // 2:
                use_roll = bool(mixed[1]) and bool(torch.rand((), generator=gen) < roll_share)
                pool = mixed[1] if use_roll else mixed[0]
                picks.append(pool[int(torch.randint(len(pool), (1,), generator=gen))])
                size += len(picks[-1])
            rand = roll[torch.randint(len(roll), (n_roll // 2,), generator=gen)] if n_roll else roll[:0]
            return torch.cat([*picks, rand])
    out = []
    if n_roll:
        y = d.success[roll].long()
        w = torch.bincount(y, minlength=2).clamp(min=1).float()[y].rsqrt()
        out.append(roll[torch.multinomial(w, n_roll, replacement=True, generator=gen)])
    if len(dset):
        y = d.success[dset].long()
        w = 1.0 / torch.bincount(y, minlength=2).clamp(min=1).float()[y]  # half passes, half fails
        out.append(dset[torch.multinomial(w, cfg.batch_size - n_roll, replacement=True, generator=gen)])
    return torch.cat(out)


def mixed_groups(d: CriticData, idx: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Groups with at least one passed and one failed clip among idx: (dataset ones, rollout ones)."""
    idx = idx[~d.guided[idx]]  # guided clips look unlike samples: ranking them against samples teaches the wrong thing
    order = idx[torch.argsort(d.group[idx], stable=True)]
    groups = torch.split(order, torch.unique_consecutive(d.group[order], return_counts=True)[1].tolist())
    mixed = [g for g in groups if 0 < d.success[g].sum() < len(g)]
    return [g for g in mixed if not d.rollout[g[0]]], [g for g in mixed if d.rollout[g[0]]]


def losses(net: CriticNet, split: Split, idx: torch.Tensor, table: TextTable, stage: int) -> tuple[torch.Tensor, dict]:
    d = split.data
    rows = table.take(split.text_ids[idx])
    x = clips_to_input(d.frames[idx], net.cfg, rows)
    out = net(x, rows.emb.float(), rows.pad, calibrated=False)
    y, fail = d.success[idx], d.success[idx] == 0
    bce = F.binary_cross_entropy_with_logits(out.success, y)
    ce = F.cross_entropy(out.kind, d.kind[idx])
    drift = F.binary_cross_entropy_with_logits(out.drift[fail], d.drift[idx][fail]) if fail.any() else out.drift.sum() * 0
    loss = bce + 0.5 * ce + 0.25 * drift
    parts = {"bce": bce.item(), "ce": ce.item()}
    known = d.has_facts[idx]
    if out.objects is not None and known.any():
        # The oracle's per-object and clip facts, where the clip's report was kept (rollouts).
        facts = F.binary_cross_entropy_with_logits(out.objects[known], d.objects[idx][known]) + \
            F.binary_cross_entropy_with_logits(out.facts[known], d.facts[idx][known])  # fmt: skip
        loss = loss + 0.5 * facts
        parts["facts"] = facts.item()
    if stage == 2:
        # Bradley-Terry: every (pass, fail) pair in the batch; pairs of the same start frame and
        # instruction weigh most, since telling those apart is exactly what a retry decision needs.
        diff = out.success[:, None] - out.success[None, :]
        pair = (y[:, None] > 0) & (y[None, :] == 0) & ~(d.guided[idx][:, None] | d.guided[idx][None, :])  # samples only
        same = d.group[idx][:, None] == d.group[idx][None, :]
        w = pair.float() * torch.where(same, 1.0, 0.25)
        rank = (F.softplus(-diff) * w).sum() / w.sum().clamp(min=1e-6)
        loss = rank + 0.5 * loss
        parts["rank"] = rank.item()
    return loss, parts


def validation_auc(net: CriticNet, split: Split, table: TextTable) -> dict:
    """ROC-AUC of the raw success logit on the validation rollouts (samples only): the learning
    curve the log keeps at every checkpoint (a few seconds; the dataset clips would take minutes)."""
    d = split.data
    idx = split.val[d.rollout[split.val] & ~d.guided[split.val]]
    if not len(idx) or not 0 < int(d.success[idx].sum()) < len(idx):
        return {}
    logits = predict(net, d.frames[idx], split.text_ids[idx], table, calibrated=False).success
    return {"val_auc": round(roc_auc(logits.numpy(), d.success[idx].numpy()), 4)}


def cosine_lr(step: int, total: int, base: float) -> float:
    warm = min(1.0, (step + 1) / 20)
    return base * warm * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, step / max(1, total)))))


# ---- checkpoints and exports (safetensors only; no pickle) ---------------------------------------
def save_checkpoint(path: Path, net: CriticNet, opt, gen: torch.Generator, step: int, extra: dict) -> None:
    opt_tensors, param_groups = optimizer_tensors(opt)
    tensors = {f"net.{k}": v for k, v in net.state_dict().items()} | opt_tensors | {"gen_state": gen.get_state()}
    save_atomic(path, tensors, {"step": str(step), "param_groups": param_groups, "extra": json.dumps(extra)})


def load_checkpoint(path: Path, net: CriticNet, opt, gen: torch.Generator) -> tuple[int, dict]:
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    tensors = load_file(str(path))
    net.load_state_dict(prefixed(tensors, "net"))
    restore_optimizer(opt, tensors, meta["param_groups"])
    gen.set_state(tensors["gen_state"])
    return int(meta["step"]), json.loads(meta["extra"])


def export_weights(path: Path, net: CriticNet, info: dict) -> None:
    """float16 weights (the loader casts back to float32) with the config and how they were made."""
    export_half(path, net, net.cfg.to_dict(), info)


# ---- the run ------------------------------------------------------------------------------------
def train_critic(cfg: CriticTrainConfig, progress: bool = True) -> Path:
    from spiral.agents.critic.learned import WEIGHTS_NAME, load_net

    if not 0.0 <= cfg.pass_score < 1.0:
        raise SpiralError(f"--pass-score {cfg.pass_score}: use a probability in (0, 1), or 0 for the balanced-accuracy threshold")
    torch.set_num_threads(cfg.threads or int(os.environ.get("OMP_NUM_THREADS", "1")))
    began = time.perf_counter()
    out = Path(cfg.out)
    settings = {k: str(v) for k, v in asdict(cfg).items() if k not in ("out", "threads", "checkpoint_every", "cache")}
    claim_folder(out, settings, "a critic training run", retired=RETIRED_SETTINGS)
    net_cfg = CriticNetConfig(resolution=cfg.resolution, dim=cfg.dim, depth=cfg.depth)
    split, table, digest = prepare(cfg, net_cfg, progress)
    d = split.data
    real, guided = d.rollout & ~d.guided, d.guided
    print(f"clips: {len(d)}; world-model rollouts: {int(real.sum())} sampled ({d.success[real].mean():.0%} pass the oracle), "
          f"{int(guided.sum())} guided ({d.success[guided].mean():.0%} pass); {len(split.train)} train, {len(split.val)} val")  # fmt: skip

    torch.manual_seed(cfg.seed)
    net = CriticNet(net_cfg)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=0.01)
    gen = torch.Generator().manual_seed(cfg.seed)
    ckpt = out / "checkpoint.safetensors"
    step, extra = load_checkpoint(ckpt, net, opt, gen) if ckpt.is_file() else (0, {"seconds": 0.0})
    trim_log(out / "log.jsonl", "step", step)
    seconds_before, t0 = extra["seconds"] + 0.0, time.perf_counter()
    total = cfg.sft_steps + cfg.rm_steps
    sft_path = out / "critic_sft.safetensors"
    bar = tqdm(total=total, initial=step, desc="critic", unit="step", disable=not progress)
    for stage, first, last, base_lr in ((1, 0, cfg.sft_steps, cfg.lr), (2, cfg.sft_steps, total, cfg.rm_lr)):
        if step >= last and (stage == 2 or sft_path.is_file()):
            continue
        if stage == 2 and step == first:  # fresh moments: ranking is a new objective
            opt = torch.optim.AdamW(net.parameters(), lr=base_lr, weight_decay=0.01)
        if stage == 2 and cfg.rm_scope == "head":  # the body stays as SFT left it (AdamW skips weights without grads)
            for name, weight in net.named_parameters():
                weight.requires_grad_(name.startswith(HEADS))
        while step < last:
            for group in opt.param_groups:
                group["lr"] = cosine_lr(step - first, last - first, base_lr)
            net.train()
            loss, parts = losses(net, split, sample_batch(split, cfg, gen, stage), table, stage)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            step += 1
            bar.update(1)
            bar.set_postfix(stage="SFT" if stage == 1 else "RM", loss=f"{loss.item():.3f}")
            checkpoint = step % cfg.checkpoint_every == 0 or step == last
            row = {"step": step, "stage": stage, "loss": loss.item(), **parts}
            if checkpoint:
                row |= validation_auc(net, split, table)
            with open(out / "log.jsonl", "a") as log:
                log.write(json.dumps(row) + "\n")
            if checkpoint:
                extra["seconds"] = seconds_before + time.perf_counter() - t0
                save_checkpoint(ckpt, net, opt, gen, step, extra)
        if stage == 1:
            export_weights(sft_path, net, {"stage": "sft", "steps": step})
    bar.close()

    # Platt scaling on the validation rollouts (the clips the critic will see); all validation
    # clips when the rollouts hold too few passes or fails to fit two numbers on.
    val_roll = split.val[d.rollout[split.val] & ~d.guided[split.val]]  # real samples only
    y_roll = d.success[val_roll]
    fit_on = val_roll if min(int(y_roll.sum()), int((1 - y_roll).sum())) >= 5 else split.val
    logits = predict(net, d.frames[fit_on], split.text_ids[fit_on], table, calibrated=False).success
    scale, bias = 1.0, 0.0  # nothing held back (or one class only): leave the scores as they are
    if 0 < int(d.success[fit_on].sum()) < len(fit_on):
        scale, bias = fit_platt(logits, d.success[fit_on])
    net.calib.copy_(torch.tensor([scale, bias]))
    # The pass threshold on the same clips' calibrated scores (what the net now outputs for them),
    # unless a calibrated probability is given.
    threshold = cfg.pass_score or balanced_threshold(torch.sigmoid(logits * net.calib[0] + net.calib[1]), d.success[fit_on])
    weights = out / WEIGHTS_NAME
    info = {
        "stage": "sft+rm", "sft_steps": cfg.sft_steps, "rm_steps": cfg.rm_steps, "clips": len(d),
        "rollouts": int(d.rollout.sum()), "world_model_sha256_16": digest, "data": cfg.data,
        "platt_scale": round(scale, 4), "platt_bias": round(bias, 4), "threshold": round(threshold, 4),
        "train_seconds": round(seconds_before + time.perf_counter() - t0, 1), "threads": torch.get_num_threads(),
    }  # fmt: skip
    export_weights(weights, net, info)

    report: dict = {"seconds_total_this_run": round(time.perf_counter() - began, 1), **info}
    rows, hist = {}, {}
    for name, path in (("SFT", sft_path), ("SFT+RM", weights)):
        shipped, _ = load_net(path)  # measure what was exported (fp16), not the fp32 in memory
        for part, idx in (("rollouts", val_roll), ("dataset", split.val[~d.rollout[split.val]])):
            if len(idx):
                o = predict(shipped, d.frames[idx], split.text_ids[idx], table)
                m = rows[f"{name}, val {part}"] = critic_metrics(o, d.success[idx], d.kind[idx], d.drift[idx])
                scores = m.pop("scores")
                if part == "rollouts":
                    hist[name] = (scores, d.success[idx].numpy())
    print(metrics_table(rows))
    report |= rows
    for name, (scores, labels) in hist.items():
        print(
            text_histogram(f"{name} scores on validation rollouts", {"passed": scores[labels > 0], "failed": scores[labels == 0]})
        )
    if hist:
        (out / "critic_scores.svg").write_text(score_histograms_svg("validation rollouts", hist))
    finite = json.loads(json.dumps(report, default=float).replace("NaN", "null"))  # NaN is not JSON
    (out / "metrics.json").write_text(json.dumps(finite, indent=1))
    return weights
