"""The `spiral` command line. Options are generated from each command's config dataclass."""

from __future__ import annotations

import argparse
import os
import sys

from spiral.config import add_config_args, config_from_args
from spiral.errors import SpiralError


def _cmd_data_make(ns: argparse.Namespace) -> int:
    from spiral.data.generate import DataMakeConfig, make_dataset

    result = make_dataset(config_from_args(DataMakeConfig, ns))
    extra = result.in_folder - result.already_there
    beyond = f"; the folder also holds {extra} more, kept" if extra > 0 else ""
    for episode, why in result.redone.items():
        print(f"{result.out}: {episode} was damaged ({why}); made it again")
    print(f"{result.out}: wrote {result.written} episodes ({result.already_there} were already there{beyond})")
    return 0


def _report(result) -> int:
    episode, out = result.episode, result.outputs
    print(f"goal: {episode.goal}")
    print(f"method {episode.method}: {episode.status}, {len(episode.accepted)} steps accepted, "
          f"{episode.generation_calls} generation calls, {episode.replans} replans, {episode.seconds:.1f} s")  # fmt: skip
    if episode.error:
        print(f"stopped: {episode.error}")
    if "goal_success" in result.judged:
        print(f"goal achieved (judged by the oracle from pixels): {'yes' if result.judged['goal_success'] else 'no'}")
    elif "not_judged" in result.judged:
        print(f"not judged: {result.judged['not_judged']}")
    print(f"video:   {out.video}")
    print(f"viewer:  {out.viewer}")
    print(f"episode: {out.episode_dir / 'episode.json'}")
    return 0


def _cmd_demo(ns: argparse.Namespace) -> int:
    from spiral.demo import DemoConfig, run_demo

    return _report(run_demo(config_from_args(DemoConfig, ns)))


def _cmd_run(ns: argparse.Namespace) -> int:
    from spiral.loop import LoopConfig
    from spiral.run import RunConfig, run_goal

    return _report(run_goal(config_from_args(RunConfig, ns), config_from_args(LoopConfig, ns)))


def _cmd_train_world_model(ns: argparse.Namespace) -> int:
    from spiral.worldmodels.tabletop_train import WorldModelTrainConfig, train_world_model

    weights = train_world_model(config_from_args(WorldModelTrainConfig, ns))
    print(f"weights: {weights}")
    print(f"to ship them as the default: cp {weights} src/spiral/assets/")
    return 0


def _cmd_train_grpo(ns: argparse.Namespace) -> int:
    from spiral.rl.train import GRPOTrainConfig, train_grpo

    outcome = train_grpo(config_from_args(GRPOTrainConfig, ns))
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    print(f"weights: {outcome.weights} (after {outcome.iterations} iterations)")
    if outcome.stopped_by_guard:
        print(f"spiral: warning: {outcome.stopped_by_guard}", file=sys.stderr)
        return 3
    print(f"to ship them as the default: cp {outcome.weights} src/spiral/assets/")
    return 0


def _cmd_train_critic(ns: argparse.Namespace) -> int:
    from spiral.agents.critic.learned_train import CriticTrainConfig, train_critic

    weights = train_critic(config_from_args(CriticTrainConfig, ns))
    print(f"weights: {weights}")
    print(f"to ship them: cp {weights} src/spiral/assets/")
    return 0


def _cmd_train_planner(ns: argparse.Namespace) -> int:
    from spiral.worlds.tabletop.lm_planner_train import PlannerTrainConfig, train_planner

    adapter = train_planner(config_from_args(PlannerTrainConfig, ns))
    print(f"adapter: {adapter}")
    print(f"to use it: spiral run --planner lm --planner-weights {adapter}; to ship it: cp {adapter} src/spiral/assets/")
    return 0


def _cmd_serve(ns: argparse.Namespace) -> int:
    from spiral.app.config import ServeConfig
    from spiral.app.server import serve

    return serve(config_from_args(ServeConfig, ns))


def build_parser() -> argparse.ArgumentParser:
    from spiral.data.generate import DataMakeConfig
    from spiral.demo import DemoConfig
    from spiral.loop import LoopConfig
    from spiral.run import RunConfig
    from spiral.worldmodels.tabletop_train import WorldModelTrainConfig

    parser = argparse.ArgumentParser(prog="spiral", description="SPIRAL: closed-loop action world models")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run a long-horizon goal on the embedded tabletop world")
    add_config_args(demo, DemoConfig)
    demo.set_defaults(func=_cmd_demo)
    run = sub.add_parser("run", help="carry out a goal from a start image with the closed loop (or a baseline)")
    add_config_args(run, RunConfig)
    add_config_args(run, LoopConfig)
    run.set_defaults(func=_cmd_run)
    from spiral.app.config import ServeConfig

    serve = sub.add_parser("serve", help="a local web page to run the loop and watch each plan, clip and critique live")
    add_config_args(serve, ServeConfig)
    serve.set_defaults(func=_cmd_serve)
    data = sub.add_parser("data", help="ActWM-Dataset tools").add_subparsers(dest="data_command", required=True)
    make = data.add_parser("make", help="generate an ActWM dataset (resumable, deterministic by seed)")
    add_config_args(make, DataMakeConfig)
    make.set_defaults(func=_cmd_data_make)
    train = sub.add_parser("train", help="training").add_subparsers(dest="train_command", required=True)
    world_model = train.add_parser("world-model", help="train the tabletop world model (resumable)")
    add_config_args(world_model, WorldModelTrainConfig)
    world_model.set_defaults(func=_cmd_train_world_model)
    from spiral.agents.critic.learned_train import CriticTrainConfig

    critic = train.add_parser("critic", help="train the learned tabletop critic (SFT, then reward model)")
    add_config_args(critic, CriticTrainConfig)
    critic.set_defaults(func=_cmd_train_critic)
    from spiral.worlds.tabletop.lm_planner_train import PlannerTrainConfig

    planner = train.add_parser("planner", help="fine-tune the lm planner's language model on free-form requests (resumable)")
    add_config_args(planner, PlannerTrainConfig)
    planner.set_defaults(func=_cmd_train_planner)
    from spiral.rl.train import GRPOTrainConfig

    grpo = train.add_parser("grpo", help="post-train the tabletop world model with GRPO (resumable, torchrun-ready)")
    add_config_args(grpo, GRPOTrainConfig)
    grpo.set_defaults(func=_cmd_train_grpo)
    from spiral.bench.cli import add_bench_commands

    add_bench_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    ns = build_parser().parse_args(argv)
    try:
        return ns.func(ns)
    except SpiralError as err:
        print(f"spiral: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("spiral: interrupted; finished work is kept and a rerun resumes", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
