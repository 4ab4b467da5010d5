"""`spiral train world-model`: rectified-flow training of the tabletop model on an ActWM dataset.

Reads top to bottom: load clips -> loop (sample batch, noise it, predict the clean change, velocity
loss, AdamW step, EMA) -> checkpoint/evaluate now and then -> export EMA weights as safetensors.
A checkpoint holds the weights, the EMA, the optimizer moments and both random generators, so a
resumed run continues exactly as an uninterrupted one would.
"""

from __future__ import annotations

import copy
import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from tqdm import tqdm

from spiral.checkpoints import export_half, optimizer_tensors, prefixed, restore_optimizer, save_atomic, trim_log
from spiral.config import option
from spiral.errors import SpiralError
from spiral.run_folder import claim_folder
from spiral.worldmodels.tabletop import TabletopWorldModel, change_latent, to_model_space
from spiral.worldmodels.tabletop_data import SimulatorFeed, TrainingClips, load_clips
from spiral.worldmodels.tabletop_net import RETIRED, TabletopNet, TabletopNetConfig
from spiral.worldmodels.text import shared_text_encoder
from spiral.worlds.tabletop.paraphrase import paraphrase

T_FLOOR = 0.05  # the velocity loss divides by t; below this the weight would explode


@dataclass(frozen=True)
class WorldModelTrainConfig:
    data: Path | None = option(None, "ActWM dataset folder to train on (made by `spiral data make`); omit with --fresh 1")
    fresh: float = option(
        0.0, "share of each batch rendered fresh by the tabletop simulator (random scene and feasible action; never repeats)"
    )
    workers: int = option(1, "background processes that render the fresh clips ahead of training (0: in this process)")
    reuse: int = option(1, "times each fresh clip is trained on, on average (>1 lets a GPU outrun the simulator)")
    out: Path = option(Path("runs/world-model"), "run folder: checkpoint, log and exported weights")
    steps: int = option(4000, "optimizer steps in total (a resumed run stops here too)")
    batch_size: int = option(32, "clips per step")
    lr: float = option(3e-4, "AdamW learning rate after warm-up")
    warmup: int = option(200, "steps of linear learning-rate warm-up")
    lr_decay: int = option(0, "lower the learning rate linearly to 0 over the last N of --steps (0: constant)")
    init: Path | None = option(None, "start from these exported weights (e.g. the shipped model) instead of random ones")
    weight_decay: float = option(0.01, "AdamW weight decay")
    ema_decay: float = option(0.999, "exponential moving average of the weights, used for sampling")
    text_dropout: float = option(0.1, "share of samples shown without instruction (enables guidance)")
    resolution: int = option(32, "model resolution in pixels")
    dim: int = option(128, "transformer width")
    depth: int = option(6, "transformer blocks")
    heads: int = option(4, "attention heads")
    seed: int = option(0, "seed of initialisation, batches and noise")
    checkpoint_every: int = option(250, "steps between checkpoints")
    eval_every: int = option(1000, "steps between oracle evaluations on held-out probes (0: never)")
    eval_probes: int = option(48, "held-out probes per evaluation")
    threads: int = option(0, "torch threads; 0 = OMP_NUM_THREADS or 1")
    device: str = option("cpu", "torch device to train on (cpu, cuda, cuda:1, ...); on a GPU the net runs in bfloat16 autocast")

    def net_config(self) -> TabletopNetConfig:
        return TabletopNetConfig(resolution=self.resolution, dim=self.dim, depth=self.depth, heads=self.heads)


def flow_matching_loss(net: TabletopNet, frames: torch.Tensor, text, pad, gen: torch.Generator) -> torch.Tensor:
    """Velocity loss with x0-prediction: x_t = (1 - t) x0 + t eps, v = eps - x0, v_hat = (x_t - x0_hat) / t."""
    start = to_model_space(frames[:, 0], net.cfg.resolution)
    x0 = change_latent(to_model_space(frames[:, 1:], net.cfg.resolution), start)
    b = x0.shape[0]
    # Drawn on the CPU generator whatever the device, so a run's noise is the same on any machine.
    t = torch.sigmoid(torch.randn(b, generator=gen)).to(x0.device)  # logit-normal: most samples at mid noise
    eps = torch.randn(x0.shape, generator=gen).to(x0.device)
    tt = t.view(b, 1, 1, 1, 1)
    x_t = (1 - tt) * x0 + tt * eps
    x0_hat = net(x_t, t, start, text, pad)
    return (((x0_hat - x0) / tt.clamp(min=T_FLOOR)) ** 2).mean()


def drop_instructions(net: TabletopNet, emb: torch.Tensor, pad: torch.Tensor, drop: torch.Tensor):
    """Rows in `drop` see only the learned null token, so the model also learns the unconditional
    prediction that classifier-free guidance needs."""
    if not drop.any():
        return emb, pad
    emb, pad = emb.clone(), pad.clone()
    emb[drop] = 0.0
    emb[drop, 0] = net.null_text[0, 0]
    pad[drop] = True
    pad[drop, 0] = False
    return emb, pad


def lr_at(step: int, cfg: WorldModelTrainConfig) -> float:
    warm = min(1.0, (step + 1) / max(1, cfg.warmup))
    decay = min(1.0, (cfg.steps - step) / cfg.lr_decay) if cfg.lr_decay else 1.0
    return cfg.lr * warm * decay


def initial_net(cfg: WorldModelTrainConfig) -> tuple[TabletopNet, dict]:
    """Random weights, or --init's, and the training behind them: {"steps": ..., "train_seconds": ...}.
    The architecture options must match the file's."""
    if cfg.init is None:
        return TabletopNet(cfg.net_config()), {"steps": 0, "train_seconds": 0.0}
    wm = TabletopWorldModel.load(cfg.init)  # names the file and the fix if it is bad
    net = wm.net.train()
    if net.cfg != cfg.net_config():
        theirs, ours = net.cfg.to_dict(), cfg.net_config().to_dict()
        listed = ", ".join(f"{k} {theirs[k]} (given {ours[k]})" for k in theirs if theirs[k] != ours[k])
        raise SpiralError(f"--init {cfg.init} has another architecture: {listed}; pass the same options")
    before = {"steps": int(wm.info.get("steps", 0)), "train_seconds": float(wm.info.get("train_seconds", 0.0))}
    return net.requires_grad_(True), before


# ---- checkpoints (safetensors only; no pickle) -------------------------------------------------
def save_checkpoint(path: Path, net, ema, opt, gen: torch.Generator, rng: np.random.Generator, step: int, extra: dict) -> None:
    tensors = {f"net.{k}": v for k, v in net.state_dict().items()} | {f"ema.{k}": v for k, v in ema.state_dict().items()}
    opt_tensors, param_groups = optimizer_tensors(opt)
    tensors |= opt_tensors | {"gen_state": gen.get_state()}
    meta = {
        "step": str(step),
        "param_groups": param_groups,
        "rng": json.dumps(rng.bit_generator.state),
        "extra": json.dumps(extra),
    }
    save_atomic(path, tensors, meta)


def load_checkpoint(path: Path, net, ema, opt, gen: torch.Generator, rng: np.random.Generator) -> tuple[int, dict]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    tensors = load_file(str(path))
    net.load_state_dict(prefixed(tensors, "net"))
    ema.load_state_dict(prefixed(tensors, "ema"))
    restore_optimizer(opt, tensors, meta["param_groups"])
    gen.set_state(tensors["gen_state"])
    rng.bit_generator.state = json.loads(meta["rng"])
    return int(meta["step"]), json.loads(meta["extra"])


def export_weights(path: Path, ema: TabletopNet, info: dict) -> None:
    """The EMA weights, in float16, as the shipped asset."""
    export_half(path, ema, ema.cfg.to_dict(), info)


# ---- the loop ---------------------------------------------------------------------------------
def train_world_model(cfg: WorldModelTrainConfig, progress: bool = True) -> Path:
    from spiral.worldmodels.tabletop_eval import make_probes

    torch.set_num_threads(cfg.threads or int(os.environ.get("OMP_NUM_THREADS", "1")))
    if cfg.lr_decay < 0:
        raise SpiralError(f"--lr-decay must be 0 (constant) or a number of steps, got {cfg.lr_decay}")
    fresh_per_step = round(cfg.batch_size * cfg.fresh)
    if not 0.0 <= cfg.fresh <= 1.0:
        raise SpiralError(f"--fresh is a share of each batch, between 0 and 1; got {cfg.fresh}")
    if cfg.reuse < 1:
        raise SpiralError(f"--reuse must be at least 1 (each fresh clip used once), got {cfg.reuse}")
    if cfg.data is None and fresh_per_step < cfg.batch_size:
        raise SpiralError("no --data given: pass an ActWM dataset folder, or --fresh 1 to train on simulator clips only")
    device = training_device(cfg.device)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    settings = {
        k: str(v)
        for k, v in asdict(cfg).items()
        if k not in ("steps", "out", "threads", "workers", "device", "eval_every", "checkpoint_every")
    }
    # A setting added to the code after the run began counts as matching at its default, which is what the run used.
    defaults = {f: str(getattr(WorldModelTrainConfig, f, None)) for f in settings}
    retired = {k: str(v) for k, v in RETIRED.items()}
    claim_folder(out, settings, "a world model training run", defaults, retired=retired)

    clips = load_clips(cfg.data, cfg.resolution) if cfg.data is not None else None
    torch.manual_seed(cfg.seed)
    net, before = initial_net(cfg)
    net = net.to(device)
    ema = copy.deepcopy(net).requires_grad_(False)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    text = shared_text_encoder()
    ckpt = out / "checkpoint.safetensors"
    step, extra = load_checkpoint(ckpt, net, ema, opt, gen, rng) if ckpt.is_file() else (0, {"seconds": 0.0})
    trim_log(out / "log.jsonl", "step", step)
    probes = make_probes(cfg.eval_probes) if cfg.eval_every else []
    feed = SimulatorFeed(
        cfg.seed, fresh_per_step, cfg.net_config().num_frames, cfg.resolution, step, cfg.workers, reuse=cfg.reuse
    )
    try:
        step, last_loss = _train_steps(cfg, net, ema, opt, gen, rng, text, clips, feed, probes, step, extra, progress)
    finally:
        feed.close()
    # steps and train_seconds count the --init weights' training too: what it took to make these.
    info = {
        "steps": before["steps"] + step, "batch_size": cfg.batch_size, "clips": 0 if clips is None else len(clips.actions),
        "data": str(cfg.data), "fresh": cfg.fresh,
        "fresh_clips": step * feed.new_per_step,
        "train_seconds": round(before["train_seconds"] + extra["seconds"], 1), "threads": torch.get_num_threads(),
        "init": "" if cfg.init is None else str(cfg.init), "steps_this_run": step, "lr_decay": cfg.lr_decay,
        "machine": f"{platform.machine()} {os.cpu_count()} cores" + gpu_name(device), "final_loss": None if last_loss is None else round(last_loss, 5),
    }  # fmt: skip
    weights = out / "tabletop_wm.safetensors"
    export_weights(weights, ema.cpu(), info)
    return weights


def gpu_name(device: torch.device) -> str:
    return f", {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""


def training_device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise SpiralError(f"--device {name!r} is not a torch device ({err}); use cpu or cuda[:N]") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SpiralError(f"--device {name}: this machine has no CUDA GPU (torch {torch.__version__}); use --device cpu")
    return device


def batch_clips(clips: TrainingClips | None, feed: SimulatorFeed, size: int, fresh: int, gen: torch.Generator) -> TrainingClips:
    """`size - fresh` clips drawn from the dataset, then `fresh` new ones from the simulator."""
    parts = []
    if size - fresh:
        idx = torch.randint(len(clips.actions), (size - fresh,), generator=gen)
        parts.append(TrainingClips(clips.frames[idx], [clips.actions[i] for i in idx.tolist()]))
    if fresh:
        parts.append(feed.next())
    return TrainingClips(torch.cat([p.frames for p in parts]), [a for p in parts for a in p.actions])


def _train_steps(cfg, net, ema, opt, gen, rng, text, clips, feed, probes, step, extra, progress) -> tuple[int, float | None]:
    """The optimizer steps from `step` to cfg.steps, checkpointing as they go; `extra` carries the
    run's seconds and last loss into each checkpoint."""
    from spiral.worldmodels.tabletop_eval import evaluate

    out = Path(cfg.out)
    ckpt = out / "checkpoint.safetensors"
    fresh_per_step = round(cfg.batch_size * cfg.fresh)
    device = next(net.parameters()).device
    bar = tqdm(total=cfg.steps, initial=step, desc="world model", unit="step", disable=not progress)
    began, seconds_before = time.perf_counter(), extra["seconds"]
    last_loss = extra.get("last_loss")
    while step < cfg.steps:
        batch = batch_clips(clips, feed, cfg.batch_size, fresh_per_step, gen)
        texts = [paraphrase(action, rng, "train") for action in batch.actions]
        emb, pad = (x.to(device) for x in text.encode(texts))
        drop = (torch.rand(cfg.batch_size, generator=gen) < cfg.text_dropout).to(device)
        emb, pad = drop_instructions(net, emb, pad, drop)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = flow_matching_loss(net, batch.frames.to(device), emb, pad, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            for e, p in zip(ema.parameters(), net.parameters(), strict=True):
                e.lerp_(p, 1.0 - cfg.ema_decay)
        step += 1
        last_loss = extra["last_loss"] = loss.item()
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}")
        record = {"step": step, "loss": loss.item(), "grad_norm": float(grad_norm)}
        if cfg.eval_every and step % cfg.eval_every == 0:  # the world model samples on the CPU
            on_cpu = ema if device.type == "cpu" else copy.deepcopy(ema).cpu()
            result = evaluate(TabletopWorldModel(on_cpu, sampler=None), probes)
            record |= {"probe_success": result.success, "probe_preserved": result.preserved}
            bar.write(f"step {step}: held-out single-step success {result.success:.2f}, objects preserved {result.preserved:.2f}")
        with open(out / "log.jsonl", "a") as log:
            log.write(json.dumps(record) + "\n")
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            extra["seconds"] = seconds_before + time.perf_counter() - began
            save_checkpoint(ckpt, net, ema, opt, gen, rng, step, extra)
    bar.close()
    extra["seconds"] = seconds_before + time.perf_counter() - began
    return step, last_loss
