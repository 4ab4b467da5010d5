"""`spiral train grpo`: Progressive-Evolution GRPO on the embedded tabletop world model.

Reads top to bottom: set up (policy, optimizer, curriculum, reward, probes, guard; resume from the
checkpoint if there is one) -> per iteration: draw tasks at the curriculum's horizon, sample a group
per task, reward and normalise, one or more clipped-ratio updates -> now and then: probe the judge
and the reward side by side (the reward-hacking guard; the best reading's weights are kept as
`*.best.safetensors`), checkpoint -> export the last weights.

Everything random in an iteration is seeded by (seed, iteration, rank), so a resumed run continues
exactly as an uninterrupted one would; the checkpoint holds the weights, the reference, the
optimizer moments and the guard's readings. Under torchrun (or `accelerate launch`) each process
draws its share of the groups and the gradients are averaged over processes before every update
(gloo on the CPU), so every process keeps identical weights; process 0 writes the files.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from tqdm import tqdm

from spiral.checkpoints import export_half, optimizer_tensors, restore_optimizer, save_atomic, trim_log
from spiral.config import option, parse_key_values
from spiral.errors import SpiralError
from spiral.rl.curriculum import TabletopTasks, Task, horizon_at, parse_schedule
from spiral.rl.grpo import GRPOSettings, choose_steps, group_advantages, grpo_backward
from spiral.rl.guard import ProbeReading, RewardHackingGuard
from spiral.rl.policy import GroupRollout, Policy, TabletopPolicy
from spiral.rl.rewards import Judge, OracleReader, Reward, critic_judge, judged_success, make_reward, reward_names
from spiral.rl.task_file import FileTasks, read_task_file
from spiral.run_folder import claim_folder
from spiral.worldmodels.base import frame_shape
from spiral.worldmodels.tabletop import SamplerConfig, TabletopWorldModel
from spiral.worldmodels.tabletop_eval import make_probes
from spiral.worlds.tabletop.grammar import to_text

PROBE_STREAM = (4242,)  # guard probes: scenes no training task and no quality benchmark uses


@dataclass(frozen=True)
class GRPOTrainConfig:
    out: Path = option(Path("runs/grpo"), "run folder: checkpoint, log and the improved weights")
    world_model: str = option(
        "tabletop",
        "tabletop (full fine-tune) or a diffusers backbone trained through LoRA: wan-i2v, cogvideox-i2v, ltx-i2v, ltx-condition, hunyuan-i2v",
    )
    weights: str = option("", "tabletop weights to start from (default: the shipped tabletop model)")
    model_path: str = option("", "diffusers backbones: model folder or hub id (default: the backbone's reference model)")
    model_options: str = option(
        "", "diffusers backbones: KEY=VALUE,... of DiffusersConfig, e.g. 'height=480,width=832,num_frames=33,device=cuda'"
    )
    lora_rank: int = option(16, "diffusers backbones: LoRA rank (alpha = rank)")
    # Tabletop: 1 (no guidance) by default: rollouts cost half the net calls, and the shipped model,
    # trained so, improved at guidance 1 and at the sampler's 5 alike (docs/RESULTS.md at tag results-diary).
    # Diffusers backbones sample at their own guidance by default, as the closed loop will use them.
    guidance: float | None = option(
        None,
        "classifier-free guidance of the rollouts, and of their re-evaluation in training; "
        "default: 1 (none) for tabletop, the backbone's own for diffusers; 0 = the model's default",
    )
    iterations: int = option(100, "GRPO iterations in total (a resumed run stops here too)")
    groups: int = option(8, "groups (tasks) per iteration, shared out over the processes")
    oversample: int = option(
        1,
        "dynamic sampling (DAPO): draw up to this many times --groups and train on the groups whose clips the judge "
        "neither all passes nor all fails, topped up in draw order; 1 = train on every group drawn",
    )
    group_size: int = option(8, "clips sampled per group from the same start frame and action")
    updates: int = option(1, "optimizer updates per iteration (the groups split into this many minibatches)")
    lr: float = option(2e-5, "AdamW learning rate")
    grad_clip: float = option(1.0, "gradient norm clip")
    noise_level: float = option(0.7, "SDE noise level of the sampler (Flow-GRPO's a)")
    clip_range: float = option(1e-3, "PPO ratio clip range (ratios of per-element mean log-probs)")
    adv_clip: float = option(5.0, "advantages clipped to +- this")
    beta: float = option(0.004, "KL weight to the reference (the starting weights)")
    step_fraction: float = option(1.0, "share of the stochastic denoising steps trained per rollout")
    schedule: str = option("1:0", "curriculum HORIZON:START_ITERATION,... e.g. '1:0,2:40,4:80'")
    tasks: Path | None = option(
        None, "your own tasks: a JSONL file of start images and instructions (see spiral.rl.task_file); default: tabletop"
    )
    reward: str = option("oracle", "reward: oracle, learned, critic (--critic's score), or a mix like 'oracle=0.7,learned=0.3'")
    critic_weights: str = option("", "learned critic weights for the 'learned' reward (default: shipped)")
    critic: str = option("", "the CriticAgent of the 'critic' reward: openai, hf, learned, or module:callable")
    critic_model: str = option("", "the critic's model: openai, a name its server knows; hf, a local folder")
    critic_base_url: str = option("", "the openai critic's OpenAI-compatible server ('' = http://localhost:8000/v1)")
    api_key_env: str = option("OPENAI_API_KEY", "environment variable holding the openai critics' API key ('' for none)")
    judge: str = option(
        "", "tasks from a file: the CriticAgent whose verdict the reward-hacking guard watches ('' = --critic); "
        "tabletop tasks are judged by the oracle"
    )  # fmt: skip
    judge_model: str = option("", "the judge's model ('' = --critic-model)")
    judge_base_url: str = option("", "the openai judge's server ('' = --critic-base-url)")
    probes: int = option(32, "fixed probes on which the guard compares reward and judged success")
    eval_every: int = option(10, "iterations between probe evaluations (0: never, no guard)")
    guard: bool = option(True, "stop when reward rises while judged success falls (reward hacking)")
    guard_window: int = option(5, "the guard compares the newest probe reading with each of this many before it")
    seed: int = option(0, "seed of tasks, sampling noise and step choice")
    checkpoint_every: int = option(5, "iterations between checkpoints")
    threads: int = option(0, "torch threads; 0 = OMP_NUM_THREADS or 1")
    oracle_processes: int = option(
        0, "processes that read each iteration's clips with the oracle in parallel; 0 = as many as the torch threads"
    )

    def settings(self) -> GRPOSettings:
        return GRPOSettings(self.noise_level, self.clip_range, self.adv_clip, self.beta, self.step_fraction)


@dataclass
class Distributed:
    rank: int = 0
    world: int = 1

    @classmethod
    def from_env(cls, cuda: bool = False) -> Distributed:
        """cuda: the model's tensors live on GPUs (one per process, NCCL); else gloo on the CPU."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world == 1:
            return cls()
        import torch.distributed as dist

        if not dist.is_initialized():
            if cuda:  # "cuda" then means this process's own GPU
                torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            dist.init_process_group("nccl" if cuda else "gloo")
        return cls(dist.get_rank(), world)

    def average_gradients(self, params: list[torch.nn.Parameter]) -> None:
        if self.world == 1:
            return
        import torch.distributed as dist

        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            dist.all_reduce(p.grad)
            p.grad /= self.world

    def broadcast_flag(self, flag: bool) -> bool:
        """Process 0's decision, on every process."""
        if self.world == 1:
            return flag
        import torch.distributed as dist

        t = torch.tensor([int(flag)])
        dist.broadcast(t, src=0)
        return bool(t.item())


def load_policy(weights: str, guidance: float = 0.0) -> tuple[TabletopPolicy, TabletopWorldModel]:
    sampler = SamplerConfig.overriding(guidance_scale=guidance or None)
    wm = TabletopWorldModel.load(weights or None, sampler=sampler)
    return TabletopPolicy(wm), wm


def parse_options(text: str) -> dict:
    """--model-options 'height=480,device=cuda' -> {'height': 480, 'device': 'cuda'}."""
    return parse_key_values(text, "--model-options")


def make_policy(cfg: GRPOTrainConfig) -> tuple[Policy, object]:
    """(policy, world model). Diffusers backbones get a fresh LoRA adapter on their denoiser."""
    if cfg.world_model == "tabletop":
        return load_policy(cfg.weights, 1.0 if cfg.guidance is None else cfg.guidance)
    from spiral.rl.diffusers_policy import DiffusersLoRAPolicy
    from spiral.worldmodels.diffusers.model import make_diffusers_world_model

    options = parse_options(cfg.model_options)
    if cfg.guidance:
        if "guidance_scale" in options and float(options["guidance_scale"]) != cfg.guidance:
            raise SpiralError("--guidance and --model-options guidance_scale disagree: give one of them")
        options["guidance_scale"] = cfg.guidance
    wm = make_diffusers_world_model(cfg.world_model, cfg.model_path or None, **options)
    return DiffusersLoRAPolicy(wm, rank=cfg.lora_rank, alpha=cfg.lora_rank), wm


def export_path(out: Path, policy: Policy, best: bool = False) -> Path:
    """The tabletop model's weights file; a diffusers LoRA's folder (diffusers' own layout)."""
    if isinstance(policy, TabletopPolicy):
        return out / f"tabletop_wm{'.best' if best else ''}.safetensors"
    return out / f"lora{'.best' if best else ''}"


def is_best(reading: ProbeReading, earlier: list[ProbeReading]) -> bool:
    """The judge's pass rate decides, the reward breaks ties; the earliest of equals stays best."""
    return all((reading.judged, reading.reward) > (r.judged, r.reward) for r in earlier)


def export(path: Path, policy: Policy, info: dict) -> None:
    """The tabletop model as float16 weights in the shipped format; a LoRA adapter in the format
    diffusers' `load_lora_weights` reads (`--world-model-options lora=PATH` loads it)."""
    if isinstance(policy, TabletopPolicy):
        export_half(path, policy.net, policy.net.cfg.to_dict(), info)
    else:
        from spiral.rl.diffusers_policy import ADAPTER
        from spiral.worldmodels.diffusers.lora import export_lora

        export_lora(policy.pipe, ADAPTER, path, info)


@dataclass
class GroupResult:
    task: Task
    rollout: GroupRollout
    rewards: torch.Tensor
    advantages: torch.Tensor
    judged: torch.Tensor


def iteration_groups(cfg: GRPOTrainConfig, dist: Distributed) -> int:
    if cfg.groups % dist.world:
        raise SpiralError(f"--groups {cfg.groups} does not split evenly over {dist.world} processes")
    return cfg.groups // dist.world


def run_iteration(
    policy: Policy, opt: torch.optim.Optimizer, tasks: TabletopTasks | FileTasks, reward: Reward, cfg: GRPOTrainConfig,
    iteration: int, dist: Distributed, horizon: int, reader: OracleReader | None = None, judge: Judge | None = None,
) -> dict:  # fmt: skip
    """One GRPO iteration on this process's share of groups; returns its log record. `reader`
    judges all the groups' clips at once, over its processes, before the rewards are computed."""
    s = cfg.settings()
    judge = judge or judged_success
    rng = np.random.default_rng([cfg.seed, iteration, dist.rank])
    began = time.perf_counter()
    want = iteration_groups(cfg, dist)
    limit = want * max(1, cfg.oversample)  # groups drawn at most
    mixed: list[tuple[int, GroupResult]] = []  # (draw, group): the judge both passed and failed some clips
    flat: list[tuple[int, GroupResult]] = []
    drawn = 0
    # At a high pass rate most groups pass every clip and teach only the reward's finer grades, so
    # with --oversample more groups are drawn, a batch at a time, until `want` of them are mixed.
    while len(mixed) < want and drawn < limit:
        new: list[tuple[Task, GroupRollout]] = []
        for g in range(drawn, min(drawn + want - len(mixed), limit)):
            task = tasks.sample(rng, horizon, policy)
            first = (cfg.seed * 1_000_003 + iteration * 9_973 + dist.rank * 101 + g) * cfg.group_size
            seeds = [first + i for i in range(cfg.group_size)]
            new.append((task, policy.rollout(task.start, task.instruction, seeds, s.noise_level)))
        drawn += len(new)
        if reader is not None:
            reader.prefetch([(rollout.frames, task) for task, rollout in new])
        for k, (task, rollout) in enumerate(new, start=drawn - len(new)):
            rewards = reward(rollout.frames, task)
            judged = judge(rollout.frames, task)
            group = GroupResult(task, rollout, rewards, group_advantages(rewards, s.adv_clip, s.eps), judged)
            (mixed if 0 < float(judged.sum()) < len(judged) else flat).append((k, group))
    # The mixed groups (never more than `want`: each batch draws only the groups still missing),
    # topped up with the first flat ones drawn, in draw order (all of them, as drawn, without oversampling).
    groups = [group for _, group in sorted(mixed + flat[: want - len(mixed)], key=lambda kg: kg[0])]
    sampled = time.perf_counter()
    params = policy.trainable()
    stats = {"policy": [], "kl": [], "clipped": [], "ratio_dev": []}
    for batch in np.array_split(np.arange(len(groups)), max(1, min(cfg.updates, len(groups)))):
        opt.zero_grad(set_to_none=True)
        for i in batch:
            group = groups[i]
            steps = choose_steps(policy.stochastic_steps(group.rollout), s.step_fraction, rng)
            part = grpo_backward(policy, group.rollout, group.advantages, steps, s, scale=1.0 / len(batch))
            for key in stats:
                stats[key].append(getattr(part, key))
        dist.average_gradients(params)
        grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
    rewards = torch.cat([g.rewards for g in groups])
    return {
        "iteration": iteration + 1,
        "horizon": horizon,
        "reward": float(rewards.mean()),
        "judged": float(torch.cat([g.judged for g in groups]).mean()),
        "groups_with_signal": sum(float(g.rewards.std()) > 0 for g in groups) / len(groups),
        "groups_drawn": drawn,
        "groups_mixed": len(mixed),
        **{k: float(np.mean(v)) for k, v in stats.items()},
        "grad_norm": float(grad_norm),
        "sample_seconds": round(sampled - began, 3),
        "update_seconds": round(time.perf_counter() - sampled, 3),
    }


def probe_reading(
    policy: Policy, probes: list[Task], reward: Reward, iteration: int, reader: OracleReader | None = None,
    judge: Judge | None = None,
) -> ProbeReading:  # fmt: skip
    """Deterministic clips on the fixed probes: mean reward and the judge's pass rate."""
    judge = judge or judged_success
    clips = policy.sample_frames(np.stack([p.start for p in probes]), [p.instruction for p in probes], list(range(len(probes))))
    if reader is not None:
        reader.prefetch([(c[None], t) for c, t in zip(clips, probes, strict=True)])
    rewards = [float(reward(c[None], t)[0]) for c, t in zip(clips, probes, strict=True)]
    judged = [float(judge(c[None], t)[0]) for c, t in zip(clips, probes, strict=True)]
    return ProbeReading(iteration, float(np.mean(rewards)), float(np.mean(judged)))


def tabletop_probes(count: int, frame_size: int) -> list[Task]:
    return [Task(p.frame, p.action, to_text(p.action), 1, 0) for p in make_probes(count, frame_size, stream=PROBE_STREAM)]


def critic_from(cfg: GRPOTrainConfig, judge: bool = False):
    """The reward's critic, or the guard's judge (its own flags over the critic's)."""
    from spiral.backends_config import BackendsConfig

    name = (cfg.judge or cfg.critic) if judge else cfg.critic
    model = (cfg.judge_model or cfg.critic_model) if judge else cfg.critic_model
    url = (cfg.judge_base_url or cfg.critic_base_url) if judge else cfg.critic_base_url
    flag = "--judge" if judge else "--critic"
    if not name:
        raise SpiralError(
            f"{flag} is needed: the CriticAgent that judges clips of your own tasks (e.g. openai, or module:callable)"
        )
    backends = BackendsConfig(critic=name, critic_model=model, critic_base_url=url, api_key_env=cfg.api_key_env)
    backends.check()
    return backends.critic_agent()


def task_source(cfg: GRPOTrainConfig, wm) -> tuple[object, Judge, list[Task]]:
    """(where tasks are drawn, the guard's judge, the guard's probes): the tabletop curriculum judged
    by the oracle, or a task file judged by a critic."""
    if cfg.tasks is None:
        probes = tabletop_probes(cfg.probes, wm.frame_size) if cfg.eval_every else []
        return TabletopTasks(wm.frame_size), judged_success, probes
    if "oracle" in cfg.reward or cfg.schedule != "1:0":
        raise SpiralError("tasks from a file are single steps judged by a critic: use --reward critic and leave --schedule out")
    files = FileTasks(read_task_file(cfg.tasks), frame_shape(wm), getattr(wm, "fit", "crop"))
    return files, critic_judge(critic_from(cfg, judge=True)), files.probes(cfg.probes) if cfg.eval_every else []


# ---- checkpoints (safetensors only) --------------------------------------------------------------
def save_checkpoint(path: Path, policy: Policy, opt, iteration: int, guard: RewardHackingGuard, seconds: float) -> None:
    opt_tensors, param_groups = optimizer_tensors(opt)
    meta = {
        "iteration": str(iteration),
        "param_groups": param_groups,
        "guard": json.dumps(guard.to_list()),
        "seconds": str(seconds),
    }
    save_atomic(path, policy.state_dict() | opt_tensors, meta)


def load_checkpoint(path: Path, policy: Policy, opt, guard: RewardHackingGuard) -> tuple[int, float]:
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    tensors = load_file(str(path))
    policy.load_state_dict({k: v for k, v in tensors.items() if not k.startswith("opt.")})
    restore_optimizer(opt, tensors, meta["param_groups"])
    guard.load(json.loads(meta["guard"]))
    return int(meta["iteration"]), float(meta["seconds"])


def check_settings(out: Path, cfg: GRPOTrainConfig) -> None:
    """A run folder belongs to one configuration; resuming with other settings would mix runs."""
    unrelated = ("iterations", "out", "threads", "oracle_processes", "checkpoint_every")  # change no result
    settings = {k: str(v) for k, v in asdict(cfg).items() if k not in unrelated}
    claim_folder(out, settings, "a GRPO run", retired={"decode": "compose"})


# ---- the loop ------------------------------------------------------------------------------------
@dataclass
class GRPOOutcome:
    weights: Path
    iterations: int
    stopped_by_guard: str | None


def train_grpo(cfg: GRPOTrainConfig, progress: bool = True, reward: Reward | None = None) -> GRPOOutcome:
    """`reward` overrides cfg.reward with any callable (clips, task) -> (G,) rewards."""
    threads = cfg.threads or int(os.environ.get("OMP_NUM_THREADS", "1"))
    torch.set_num_threads(threads)
    dist = Distributed.from_env(cuda=cfg.world_model != "tabletop" and torch.cuda.is_available())
    iteration_groups(cfg, dist)  # refuse a bad split before any work
    stages = parse_schedule(cfg.schedule)
    out = Path(cfg.out)
    main = dist.rank == 0
    policy, wm = make_policy(cfg)
    if cfg.critic and "critic" not in reward_names(cfg.reward):
        raise SpiralError(f"--critic is the critic of the 'critic' reward, and --reward {cfg.reward!r} has none: drop it")
    critic = critic_from(cfg) if "critic" in reward_names(cfg.reward) else None
    reward = reward or make_reward(cfg.reward, cfg.critic_weights or None, critic)
    tasks, judge, probes = task_source(cfg, wm)
    if main:  # only once the weights and the reward are known good: a typo must not claim the folder
        out.mkdir(parents=True, exist_ok=True)
        check_settings(out, cfg)
    opt = torch.optim.AdamW(policy.trainable(), lr=cfg.lr, weight_decay=0.0)
    guard = RewardHackingGuard(window=cfg.guard_window)
    ckpt = out / "checkpoint.safetensors"
    iteration, seconds_before = load_checkpoint(ckpt, policy, opt, guard) if ckpt.is_file() else (0, 0.0)
    if main:
        trim_log(out / "log.jsonl", "iteration", iteration)
    # The oracle reads tabletop clips only; tasks from a file are read by critics, in this process.
    with OracleReader((cfg.oracle_processes or threads) if cfg.tasks is None else 1) as reader:
        if main and cfg.eval_every and not guard.readings:
            first = probe_reading(policy, probes, reward, 0, reader, judge)
            guard.add(first)
            log(out, {"iteration": 0, "probe_reward": first.reward, "probe_judged": first.judged})
            export(export_path(out, policy, best=True), policy, run_info(cfg, wm, 0, 0.0, dist) | {"probe_iteration": 0})
        bar = tqdm(total=cfg.iterations, initial=iteration, desc="grpo", unit="it", disable=not (progress and main))
        began, stopped = time.perf_counter(), None

        def elapsed() -> float:  # training seconds over every resumed part of the run
            return seconds_before + time.perf_counter() - began

        while iteration < cfg.iterations and stopped is None:
            horizon = horizon_at(stages, iteration)
            record = run_iteration(policy, opt, tasks, reward, cfg, iteration, dist, horizon, reader, judge)
            iteration += 1
            bar.update(1)
            bar.set_postfix(reward=f"{record['reward']:.3f}", judged=f"{record['judged']:.2f}", h=horizon)
            if main and cfg.eval_every and iteration % cfg.eval_every == 0:
                reading = probe_reading(policy, probes, reward, iteration, reader, judge)
                record |= {"probe_reward": reading.reward, "probe_judged": reading.judged}
                if is_best(reading, guard.readings):  # keep the best probe reading's weights: late updates can undo gains
                    info = run_info(cfg, wm, iteration, elapsed(), dist) | {"probe_iteration": iteration}
                    export(export_path(out, policy, best=True), policy, info)
                    record["best"] = True
                warning = guard.add(reading)
                bar.write(f"iteration {iteration}: probe reward {reading.reward:.3f}, judged success {reading.judged:.3f}")
                if warning and cfg.guard:
                    stopped = warning
                    record["guard"] = warning
                    bar.write(f"WARNING: {warning}; stopping (the checkpoint and weights are kept)")
            stop_all = dist.broadcast_flag(stopped is not None)
            if stop_all and stopped is None:
                stopped = "stopped by process 0's reward-hacking guard"
            if main:
                record["seconds"] = round(elapsed(), 2)
                log(out, record)
                if iteration % cfg.checkpoint_every == 0 or iteration == cfg.iterations or stopped:
                    save_checkpoint(ckpt, policy, opt, iteration, guard, elapsed())
        bar.close()
    weights = export_path(out, policy)
    if main:
        export(weights, policy, run_info(cfg, wm, iteration, elapsed(), dist) | {"stopped_by_guard": stopped or ""})
    return GRPOOutcome(weights, iteration, stopped)


def run_info(cfg: GRPOTrainConfig, wm, iteration: int, seconds: float, dist: Distributed) -> dict:
    """What an exported file says about the run that made it (and the base model's own record)."""
    base = getattr(wm, "info", {})
    info = {
        "base": cfg.weights or cfg.model_path or f"default {cfg.world_model}", "grpo_iterations": iteration,
        "groups": cfg.groups, "group_size": cfg.group_size, "reward": cfg.reward, "schedule": cfg.schedule,
        "grpo_seconds": round(seconds, 1), "processes": dist.world, "machine": f"{platform.machine()} {os.cpu_count()} cores",
    } | {f"base_{k}": v for k, v in base.items()}  # fmt: skip
    if "steps" in base:  # the tabletop model's record goes on (`--init` reads it): its steps, all training time
        info |= {"steps": base["steps"], "train_seconds": round(float(base.get("train_seconds", 0.0)) + seconds, 1)}
    return info


def log(out: Path, record: dict) -> None:
    with open(out / "log.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")
