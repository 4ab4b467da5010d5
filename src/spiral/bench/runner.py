"""`spiral bench run`: every (task, method) episode of a suite, judged and appended to results.jsonl
as it finishes. Resumable (a rerun skips what is done), parallel (`--workers N` processes on one
machine) and shardable (under torchrun / accelerate launch, rank r takes pending[r::world_size] and
rank 0 merges). See store.py for what makes a kill -9 safe.
"""

from __future__ import annotations

import hashlib
import logging
import time
import zlib
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from spiral.backends_config import MODEL_AGENTS, BackendsConfig
from spiral.bench.dist import Dist, init_dist
from spiral.bench.methods import AgentCache, loop_config, needs_critic, parse_methods
from spiral.bench.metrics import ERRORED, EpisodeMetrics
from spiral.bench.store import Appender, RunFolder
from spiral.bench.tasks import SUITES, Task, limit_tasks, load_suite, read_tasks, tasks_digest
from spiral.config import group, option, option_from, required
from spiral.errors import AgentUnavailable, SpiralError
from spiral.loop import LoopConfig

JUDGES = ("auto", "oracle", "vlm")
log = logging.getLogger(__name__)


def out_of_memory(err: BaseException) -> bool:
    """Host or GPU memory ran out (torch's OutOfMemoryError is matched by name: no torch import here)."""
    return isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError"


@dataclass(frozen=True)
class BenchConfig:
    out: Path = required("run folder: config.json, results.jsonl (appended as episodes finish), report")
    suite: str | None = option(None, "built-in task suite", choices=tuple(SUITES))
    tasks: Path | None = option(None, "your own task file (JSONL, one task per line); instead of --suite")
    methods: str = option("closed-loop", "comma-separated: oneshot, stepwise, closed-loop, closed-loop-no-inner, "
                          "closed-loop-no-outer, closed-loop-no-memory")  # fmt: skip
    limit: int | None = option(None, "run only the first N tasks of each level (a quick look)")
    workers: int = option(1, "worker processes on this machine (each uses one torch thread)")
    save_episodes: bool = option(False, "also write each episode (clips, long video, viewer) under OUT/episodes/")
    progress: bool = option(True, "show a progress bar")
    backends: BackendsConfig = group(BackendsConfig)
    judge: str = option("auto", "oracle (tabletop, reads pixels), vlm (real footage); auto: oracle for tabletop tasks",
                        choices=JUDGES)  # fmt: skip
    judge_model: str = option("", "vlm judge: its model (preferably not the critic's)")
    judge_base_url: str = option("", "vlm judge: its server ('' = --base-url)")
    judge_api_key_env: str | None = option(None, "vlm judge: the variable holding its key (unset = --api-key-env; '' for none)")
    max_tries: int = option_from(LoopConfig, "max_tries")
    max_replans: int = option_from(LoopConfig, "max_replans")
    max_generations: int = option_from(LoopConfig, "max_generations")
    max_seconds: float = option_from(LoopConfig, "max_seconds")
    candidates: int = option_from(LoopConfig, "candidates")
    oneshot_steps: int = option_from(LoopConfig, "oneshot_steps")
    seed: int = option_from(LoopConfig, "seed")

    def budgets(self) -> LoopConfig:
        return LoopConfig(max_tries=self.max_tries, max_replans=self.max_replans, max_generations=self.max_generations,
                          max_seconds=self.max_seconds, candidates=self.candidates, oneshot_steps=self.oneshot_steps,
                          seed=self.seed)  # fmt: skip


@dataclass(frozen=True)
class BenchOutcome:
    out: Path
    rows: list[EpisodeMetrics]  # every finished episode in the folder (rank 0), or this rank's
    ran_by_rank: tuple[int, ...]  # episodes run now, per rank (rank 0 knows them all)
    skipped: int  # episodes already done before this run started
    seconds: float

    @property
    def ran(self) -> int:
        return sum(self.ran_by_rank)


def load_tasks(cfg: BenchConfig) -> list[Task]:
    if (cfg.suite is None) == (cfg.tasks is None):
        raise SpiralError("give exactly one of --suite NAME or --tasks FILE")
    return load_suite(cfg.suite) if cfg.suite is not None else read_tasks(cfg.tasks)


def resolve_judge(cfg: BenchConfig, tasks: list[Task]) -> str:
    tabletop = all(t.world == "tabletop" for t in tasks)
    judge = ("oracle" if tabletop else "vlm") if cfg.judge == "auto" else cfg.judge
    if judge == "oracle" and not tabletop:
        raise SpiralError("the oracle judge reads tabletop scenes only; these tasks include real footage: use --judge vlm")
    if judge == "vlm" and not cfg.judge_model:
        raise SpiralError("the vlm judge needs --judge-model (the model name at --judge-base-url)")
    return judge


def _weights_digest(cfg: BenchConfig) -> str | None:
    """Results of a retrained model must not mix with the old ones: the weights file is part of the
    configuration."""
    b = cfg.backends
    path = Path(b.world_model_path) if b.world_model_path else None
    if path is None and b.world_model == "tabletop":
        from spiral.worldmodels.tabletop import default_weights

        path = default_weights()
    return _file_digest(path)


def _world_model_settings(cfg: BenchConfig) -> dict:
    """The tabletop model's whole sampler, defaults included, so a changed default does not resume
    old results; for other backends the options given."""
    options = cfg.backends.world_model_options_dict()
    if cfg.backends.world_model != "tabletop":
        return options
    from spiral.worldmodels.tabletop import sampler_from_options

    return asdict(sampler_from_options(options))


def _critic_digest(cfg: BenchConfig) -> str | None:
    """The learned critic's weights (--critic-model, or the shipped ones), as for the world model's."""
    if cfg.backends.critic != "learned":
        return None
    from spiral.agents.critic.learned import default_weights

    return _file_digest(Path(cfg.backends.critic_model) if cfg.backends.critic_model else default_weights())


def _planner_digest(cfg: BenchConfig) -> str | None:
    """The lm planner's adapter (--planner-weights, or the shipped one)."""
    if cfg.backends.planner != "lm":
        return None
    from spiral.worlds.tabletop.lm_planner import ADAPTER

    return _file_digest(Path(cfg.backends.planner_weights) if cfg.backends.planner_weights else ADAPTER)


def _file_digest(path: Path | None) -> str | None:
    if path is None or not path.is_file():
        return None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def fingerprint(cfg: BenchConfig, tasks: list[Task], judge: str) -> dict:
    """Everything that changes an episode's result. Not in it: which methods, --limit, workers."""
    b = cfg.backends
    api, models = "openai" in (b.planner, b.critic), {b.planner, b.critic} & set(MODEL_AGENTS)
    return {
        "tasks": tasks_digest(tasks), "world_model": b.world_model, "world_model_path": b.world_model_path,
        "world_model_weights": _weights_digest(cfg), "planner": b.planner, "critic": b.critic,
        "critic_weights": _critic_digest(cfg), "agent_model": b.agent_model if models else "",
        "base_url": b.base_url if api else "", "judge": judge, "judge_model": cfg.judge_model if judge == "vlm" else "",
        "max_tries": cfg.max_tries, "max_replans": cfg.max_replans, "max_generations": cfg.max_generations,
        "oneshot_steps": cfg.oneshot_steps, "seed": cfg.seed,
        # Always there for tabletop: folders made before the default guidance changed must not resume.
        **({"world_model_settings": settings} if (settings := _world_model_settings(cfg)) else {}),
        # Added later: present only when it changes anything, so folders made before still resume.
        **({"candidates": cfg.candidates} if cfg.candidates != 1 else {}),
        **({"max_seconds": cfg.max_seconds} if cfg.max_seconds else {}),
        **({"critic_threshold": b.critic_threshold} if b.critic_threshold else {}),
        **({"planner_weights": _planner_digest(cfg)} if b.planner == "lm" else {}),
        # An agent's own model or server: check() refuses them for backends that do not read them.
        **{k: v for k in ("planner_model", "planner_base_url", "critic_base_url") if (v := getattr(b, k))},
        **({"critic_model": b.critic_model} if b.critic_model and b.critic in MODEL_AGENTS else {}),
        **({"agent_device": b.agent_device, "agent_dtype": b.agent_dtype} if "hf" in models else {}),
    }  # fmt: skip


class Worker:
    """One process's backends (the world model is built once) and the episode procedure."""

    def __init__(self, cfg: BenchConfig, judge: str):
        self.cfg, self.backends = cfg, cfg.backends
        self.wm = self.backends.world()
        self.agents = AgentCache(self.backends)
        self.judge = _make_judge(cfg) if judge == "vlm" else _oracle_judge()

    def run(self, task: Task, method: str) -> EpisodeMetrics:
        from spiral.backends import observer_for
        from spiral.bench.judge import failed_episode
        from spiral.bench.metrics import ERRORED
        from spiral.loop import run
        from spiral.run import RunConfig, start_frame

        began = time.perf_counter()
        # Agents are built outside the try: a backend that cannot be built (no API key, no model
        # folder) stops the run instead of filling the results with failed episodes.
        loop = replace(loop_config(method, self.cfg.budgets()), seed=task_seed(self.cfg.seed, task.id))
        planner = None if loop.method == "oneshot" else self.agents.planner(loop.seed)
        critic = self.agents.critic() if needs_critic(method) else None
        if critic is not None and critic is self.judge:
            raise SpiralError("the judge must not be the in-loop critic object")
        try:
            frame = start_frame(RunConfig(goal=task.goal, out=Path("."), image=task.image, scene_seed=task.scene_seed),
                                self.wm.frame_size)  # fmt: skip
            episode = run(task.goal, frame, self.wm, planner, critic, loop, observe=observer_for(task.world))
            row = self.judge.judge(task, method, episode)
        except AgentUnavailable as err:  # the infrastructure failed: errored, not failed, and redone by a rerun
            return failed_episode(task, method, str(err), time.perf_counter() - began, self.judge.name, ERRORED)
        except SpiralError as err:  # this episode's input was bad (e.g. a goal the planner cannot read)
            return failed_episode(task, method, str(err), time.perf_counter() - began, self.judge.name)
        except Exception as err:  # noqa: BLE001 - a backend crashed on what the model made
            if out_of_memory(err):  # the machine, not the method: errored, and redone by a rerun
                why = f"out of memory ({type(err).__name__}: {err}); free memory or lower --workers, then rerun"
                return failed_episode(task, method, why, time.perf_counter() - began, self.judge.name, ERRORED)
            # One episode's crash must not end a long benchmark: it is recorded as a failed episode,
            # and the traceback is logged so the bug behind it stays visible.
            log.exception("task %s, method %s crashed", task.id, method)
            return failed_episode(task, method, f"{type(err).__name__}: {err}", time.perf_counter() - began, self.judge.name)
        if self.cfg.save_episodes:
            from spiral.outputs import write_run

            judged = {"goal_success": row.goal_success, "step_completion": row.step_completion}
            write_run(episode, self.cfg.out / "episodes" / f"{task.id}--{method}", world=task.world, episode_id=task.id,
                      judged=judged)  # fmt: skip
        return row


def task_seed(seed: int, task_id: str) -> int:
    """Each task its own sampling seed (the same for every method, so methods meet the same luck):
    with one seed for all, every task's k-th generation would draw the same noise."""
    return (seed * 1_000_003 + zlib.crc32(task_id.encode())) % 2**31


def _oracle_judge():
    from spiral.bench.judge import OracleJudge

    return OracleJudge()


def _make_judge(cfg: BenchConfig):
    from spiral.agents.chat import ChatConfig
    from spiral.bench.judge_vlm import VLMJudge

    b = cfg.backends
    key = b.api_key_env if cfg.judge_api_key_env is None else cfg.judge_api_key_env
    return VLMJudge(ChatConfig(base_url=cfg.judge_base_url or b.base_url, model=cfg.judge_model, api_key_env=key,
                               timeout_s=b.agent_timeout, max_retries=b.agent_retries))  # fmt: skip


# ---- worker processes (--workers N) --------------------------------------------------------------
_STATE: dict = {}


def _pool_init(cfg: BenchConfig, judge: str) -> None:
    import torch

    torch.set_num_threads(1)  # N workers on N cores: more threads each only fight over them
    _STATE.update(cfg=cfg, judge=judge)


def _pool_run(unit: tuple[Task, str]) -> EpisodeMetrics:
    if "worker" not in _STATE:  # built on first use, so a bad backend is an error, not a respawn loop
        _STATE["worker"] = Worker(_STATE["cfg"], _STATE["judge"])
    return _STATE["worker"].run(*unit)


def _run_units(cfg: BenchConfig, judge: str, units: list[tuple[Task, str]], sink: Appender, dist: Dist) -> int:
    from tqdm import tqdm

    bar = tqdm(total=len(units), desc="bench" if dist.world_size == 1 else f"bench rank {dist.rank}", unit="ep",
               position=dist.rank, disable=not cfg.progress, dynamic_ncols=True)  # fmt: skip
    done = successes = 0

    def finished(row: EpisodeMetrics) -> None:
        nonlocal done, successes
        sink.append(row)
        done, successes = done + 1, successes + row.goal_success
        bar.update(1)
        bar.set_postfix(success=f"{successes}/{done}", last=row.task)

    try:
        if cfg.workers <= 1 or len(units) <= 1:
            worker = Worker(cfg, judge) if units else None
            for task, method in units:
                finished(worker.run(task, method))
        else:
            import multiprocessing as mp

            # spawn, not fork: a forked torch runtime (threads, OpenMP pools) can deadlock.
            with mp.get_context("spawn").Pool(min(cfg.workers, len(units)), _pool_init, (cfg, judge)) as pool:
                for row in pool.imap_unordered(_pool_run, units):
                    finished(row)
    finally:
        bar.close()
    return done


def run_bench(cfg: BenchConfig) -> BenchOutcome:
    began = time.perf_counter()
    if cfg.workers < 1:
        raise SpiralError(f"--workers must be at least 1, got {cfg.workers}")
    methods = parse_methods(cfg.methods)
    all_tasks = load_tasks(cfg)  # every line checked before any work starts
    tasks = limit_tasks(all_tasks, cfg.limit)
    judge = resolve_judge(cfg, all_tasks)
    cfg.backends.check(with_critic=any(needs_critic(m) for m in methods))
    folder = RunFolder(Path(cfg.out))
    dist = init_dist()
    try:
        plan: dict = {}
        if dist.main:  # rank 0 alone touches config.json and results.jsonl; the others wait for its word
            try:
                folder.claim(
                    fingerprint(cfg, all_tasks, judge),
                    {"tasks_source": cfg.suite or str(cfg.tasks), "methods": list(methods)},
                    retired={"world_model_settings": {"decode": "compose"}},
                )
                folder.merge_parts()  # lines a killed distributed run left in part files
                done = {r.key for r in folder.read(repair=True) if r.status != ERRORED}  # errored ones are redone
                units = [(t, m) for t in tasks for m in methods]
                plan = {"pending": [u for u in units if f"{u[0].id}\t{u[1]}" not in done], "skipped": len(units)}
                plan["skipped"] -= len(plan["pending"])
            except SpiralError as err:
                plan = {"error": str(err)}
        plan = dist.broadcast(plan)
        if "error" in plan:
            raise SpiralError(plan["error"])
        mine = plan["pending"][dist.rank :: dist.world_size]
        path = folder.results_path if dist.main else folder.part_path(dist.rank)
        with Appender(path) as sink:
            ran_by_rank = (_run_units(cfg, judge, mine, sink, dist),)
        if dist.world_size > 1:
            from spiral.bench.store import read_lines

            theirs = dist.gather([] if dist.main else read_lines(folder.part_path(dist.rank), repair=False))
            if dist.main:
                folder.merge_parts([r for rows in theirs for r in rows])
                ran_by_rank += tuple(len(rows) for rows in theirs[1:])
            dist.barrier()
            if not dist.main:  # rank 0 has merged these lines; without a shared disk it could not delete them
                folder.part_path(dist.rank).unlink(missing_ok=True)
        rows = folder.read() if dist.main else []
        return BenchOutcome(Path(cfg.out), rows, ran_by_rank, plan["skipped"], time.perf_counter() - began)
    finally:
        dist.close()
