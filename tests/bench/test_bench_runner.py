"""The runner in-process: resume, refusing to mix configurations, torn lines, errors, methods."""

import json
from dataclasses import asdict

import numpy as np
import pytest

from spiral.bench.methods import METHODS, Backends, loop_config, parse_methods
from spiral.bench.metrics import EpisodeMetrics
from spiral.bench.runner import BenchConfig, run_bench
from spiral.bench.store import RunFolder
from spiral.config import config_from_flat
from spiral.errors import SpiralError
from spiral.loop import LoopConfig


def bench(out, **kw) -> BenchConfig:
    base = {
        "suite": "tabletop-short",
        "limit": 2,
        "methods": "stepwise",
        "world_model": "bench_fakes:sim_world_model",
        "planner": "symbolic",
        "progress": False,
    }
    return config_from_flat(BenchConfig, out=out, **(base | kw))


def lines(out):
    return [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]


def test_methods_are_loop_configs_and_bad_names_are_refused():
    budgets = LoopConfig(max_tries=5, seed=7)
    assert loop_config("closed-loop-no-inner", budgets) == LoopConfig(max_tries=5, seed=7, inner_loop=False)
    assert loop_config("closed-loop-no-memory", budgets).use_memory is False
    assert loop_config("closed-loop-no-goal-check", budgets).goal_check is False
    assert loop_config("oneshot", budgets).method == "oneshot" and len(METHODS) == 7
    assert parse_methods("stepwise, closed-loop") == ("stepwise", "closed-loop")
    for bad, message in (("closed-loop,magic", "unknown method 'magic'"), ("", "names no method"), ("oneshot,oneshot", "twice")):
        with pytest.raises(SpiralError, match=message):
            parse_methods(bad)
    with pytest.raises(SpiralError, match="unknown planner 'gpt'"):
        Backends("tabletop", None, "gpt", "oracle", "", "", "").check()
    with pytest.raises(SpiralError, match="cannot load the world model 'nowhere:wm'"):
        Backends("nowhere:wm", None, "symbolic", "oracle", "", "", "").check()


@pytest.mark.parametrize(
    "world_model, options, message",
    [("tabletop", "guidance=3", "unknown tabletop world model option.*guidance.*known options: guidance_scale, noise_level"),
     ("tabletop", "guidance_scale", "bad --world-model-options item 'guidance_scale': write KEY=VALUE"),
     ("tabletop", "guidance_scale=high", "guidance_scale='high': give a number >= 0"),
     ("tabletop", "num_inference_steps=2.5", "num_inference_steps=2.5: give a whole number"),
     ("tabletop", "decode=compose", "unknown tabletop world model option.*decode"),
     ("wan-i2v", "heigth=480", "unknown diffusers option.*heigth"),
     ("bench_fakes:sim_world_model", "guidance_scale=3", "apply to the built-in world models")],
)  # fmt: skip
def test_bad_world_model_options_fail_before_any_work(world_model, options, message):
    with pytest.raises(SpiralError, match=message):
        Backends(world_model, None, "symbolic", "oracle", "", "", "", world_model_options=options).check()


def test_the_tabletop_sampler_is_part_of_the_fingerprint(tmp_path):
    """Defaults included: results made before a default changed must not resume under the new one."""
    from spiral.bench.runner import fingerprint
    from spiral.worldmodels.tabletop import SamplerConfig

    def settings(**kw):
        return fingerprint(bench(tmp_path, world_model="tabletop", **kw), [], "oracle")["world_model_settings"]

    assert settings() == asdict(SamplerConfig())
    assert settings(world_model_options="guidance_scale=3") == asdict(SamplerConfig(guidance_scale=3.0))
    assert "world_model_settings" not in fingerprint(bench(tmp_path), [], "oracle")  # a factory's settings are its own


def test_world_model_options_reach_the_tabletop_sampler(tmp_path):
    """The options set the sampler of the model the episodes use; the rest keep their defaults."""
    import torch

    from spiral.worldmodels.tabletop import SamplerConfig
    from spiral.worldmodels.tabletop_net import TabletopNet, TabletopNetConfig
    from spiral.worldmodels.tabletop_train import export_weights

    torch.manual_seed(0)
    export_weights(tmp_path / "wm.safetensors", TabletopNet(TabletopNetConfig(dim=32, depth=1, heads=2)), {"steps": 0})
    wm = Backends("tabletop", str(tmp_path / "wm.safetensors"), "symbolic", "oracle", "", "", "",
                  world_model_options="guidance_scale=2.5, num_inference_steps=3,shift=2").world()  # fmt: skip
    assert wm.sampler == SamplerConfig(guidance_scale=2.5, num_inference_steps=3, shift=2.0)


def test_a_folder_recording_the_retired_decode_setting_resumes_at_its_one_value(tmp_path):
    import torch

    from spiral.worldmodels.tabletop_net import TabletopNet, TabletopNetConfig
    from spiral.worldmodels.tabletop_train import export_weights

    torch.manual_seed(0)
    export_weights(tmp_path / "wm.safetensors", TabletopNet(TabletopNetConfig(dim=32, depth=1, heads=2)), {"steps": 0})
    cfg = bench(tmp_path / "run", world_model="tabletop", world_model_path=str(tmp_path / "wm.safetensors"), limit=1)
    assert run_bench(cfg).ran == 1
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    config["fingerprint"]["world_model_settings"]["decode"] = "compose"
    (tmp_path / "run" / "config.json").write_text(json.dumps(config))
    assert run_bench(cfg).skipped == 1
    config["fingerprint"]["world_model_settings"]["decode"] = "copy"
    (tmp_path / "run" / "config.json").write_text(json.dumps(config))
    with pytest.raises(SpiralError, match="decode = 'copy', a setting this version fixes at 'compose'.*rejected-variants"):
        run_bench(cfg)


def test_a_rerun_skips_finished_episodes_and_new_methods_join(tmp_path):
    first = run_bench(bench(tmp_path))
    assert (first.ran, first.skipped, len(first.rows)) == (2, 0, 2)
    again = run_bench(bench(tmp_path))
    assert (again.ran, again.skipped) == (0, 2) and len(lines(tmp_path)) == 2
    more = run_bench(bench(tmp_path, methods="stepwise,oneshot", limit=3))
    assert (more.ran, more.skipped) == (4, 2) and len(lines(tmp_path)) == 6
    assert json.loads((tmp_path / "config.json").read_text())["methods"] == ["stepwise", "oneshot"]


@pytest.mark.parametrize(
    "change, why",
    [({"seed": 1}, "seed: 0 there, 1 now"), ({"planner": "bench_fakes:failing_planner"}, "planner: 'symbolic' there"),
     ({"suite": "tabletop-medium"}, "tasks: '"), ({"max_tries": 5}, "max_tries: 3 there, 5 now"),
     ({"candidates": 4}, "candidates: None there, 4 now"),
     ({"critic_threshold": 0.9}, "critic_threshold: None there, 0.9 now")],
)  # fmt: skip
def test_results_of_another_configuration_are_refused(tmp_path, change, why):
    run_bench(bench(tmp_path, limit=1))
    before = (tmp_path / "results.jsonl").read_bytes()
    with pytest.raises(SpiralError, match=f"holds results of a different configuration.*{why}"):
        run_bench(bench(tmp_path, limit=1, **change))
    assert (tmp_path / "results.jsonl").read_bytes() == before


def test_a_torn_last_line_is_cut_off_and_its_episode_rerun(tmp_path):
    run_bench(bench(tmp_path))
    path = tmp_path / "results.jsonl"
    good = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(good[0] + good[1][:40])  # killed while writing the second line
    assert len(RunFolder(tmp_path).read()) == 1 and path.read_bytes().endswith(good[1][:40])  # readers leave it alone
    outcome = run_bench(bench(tmp_path))
    assert outcome.ran == 1 and sorted(r["task"] for r in lines(tmp_path)) == ["short-000", "short-001"]


def test_a_corrupt_complete_line_is_an_error_not_silently_dropped(tmp_path):
    run_bench(bench(tmp_path, limit=1))
    with open(tmp_path / "results.jsonl", "a") as f:
        f.write('{"task": "x"}\n')
    with pytest.raises(SpiralError, match="corrupt results file .*line 2: missing fields"):
        run_bench(bench(tmp_path, limit=1))


def test_part_files_of_a_killed_distributed_run_merge_once(tmp_path):
    run_bench(bench(tmp_path, limit=1))
    folder = RunFolder(tmp_path)
    (row,) = folder.read()
    other = EpisodeMetrics.from_dict({**row.to_dict(), "task": "short-001"})
    folder.part_path(1).parent.mkdir()
    folder.part_path(1).write_text(json.dumps(row.to_dict()) + "\n" + json.dumps(other.to_dict()) + "\n" + '{"task": "sh')
    assert folder.merge_parts() == 1 and not (tmp_path / "parts").exists()
    assert [r.task for r in folder.read()] == ["short-000", "short-001"]


def test_an_episode_that_raises_is_recorded_as_a_failure(tmp_path):
    outcome = run_bench(bench(tmp_path, planner="bench_fakes:failing_planner", limit=1))
    (r,) = outcome.rows
    assert r.status == "error" and not r.goal_success and "unreachable" in r.error and r.generation_calls == 0


@pytest.mark.parametrize("failure", ["server", "memory"])
def test_an_unusable_agent_server_errors_the_episode_and_a_rerun_redoes_it(tmp_path, monkeypatch, failure):
    from spiral.bench.report import load_report, markdown

    down = tmp_path / "down"
    down.write_text("")
    monkeypatch.setenv("PLANNER_DOWN", str(down))
    monkeypatch.setenv("PLANNER_FAILURE", failure)
    cfg = bench(tmp_path / "run", planner="bench_fakes:down_planner", world_model="bench_fakes:perfect_world_model")
    outcome = run_bench(cfg)
    assert [r.status for r in outcome.rows] == ["errored", "errored"] and outcome.ran == 2
    with pytest.raises(SpiralError, match="only errored ones"):
        load_report(tmp_path / "run")
    down.unlink()  # the server is back
    outcome = run_bench(cfg)
    assert outcome.ran == 2 and outcome.skipped == 0  # the errored episodes were not counted as done
    assert sorted(r.status for r in outcome.rows) == ["completed", "completed"] and all(r.goal_success for r in outcome.rows)
    assert run_bench(cfg).ran == 0  # and now they are
    assert "errored" not in markdown(load_report(tmp_path / "run"))


def test_the_real_tabletop_model_plugs_in(tmp_path):
    """A tiny randomly initialised TabletopWorldModel (no trained weights needed) through the bench."""
    cfg = bench(
        tmp_path, world_model="bench_fakes:tiny_tabletop", methods="oneshot", limit=1, oneshot_steps=1, save_episodes=True
    )
    (r,) = run_bench(cfg).rows
    assert r.generation_calls == 1 and r.judge == "oracle" and 0 < r.flicker <= 1 and r.identity_persistence is not None
    assert (tmp_path / "episodes" / "short-000--oneshot" / "video.mp4").is_file()


def test_real_footage_is_judged_by_the_vlm_judge(tmp_path):
    from bench_fakes import AnsweringServer
    from PIL import Image

    Image.fromarray(np.full((64, 64, 3), 90, np.uint8)).save(tmp_path / "kitchen.png")
    task = {"id": "k1", "world": "real", "image": "kitchen.png", "goal": "tidy the table", "level": "short"}
    (tmp_path / "tasks.jsonl").write_text(json.dumps(task) + "\n")
    options = {"tasks": tmp_path / "tasks.jsonl", "suite": None, "limit": None, "world_model": "bench_fakes:still_world_model",
               "planner": "bench_fakes:two_step_planner", "api_key_env": ""}  # fmt: skip
    with pytest.raises(SpiralError, match="the vlm judge needs --judge-model"):
        run_bench(bench(tmp_path / "out", **options))
    with pytest.raises(SpiralError, match="oracle judge reads tabletop scenes only"):
        run_bench(bench(tmp_path / "out", judge="oracle", **options))
    server = AnsweringServer('{"goal_achieved": true, "steps_done": [true, false], "reason": "the cup stays put"}')
    try:
        (r,) = run_bench(bench(tmp_path / "out", judge_model="judge-vlm", judge_base_url=server.url, **options)).rows
    finally:
        server.close()
    assert r.judge == "vlm" and r.goal_success and r.step_completion == 0.5 and r.judge_tokens == 120
    assert r.identity_persistence is None and r.flicker == 1.0 and r.generation_calls == 2
    assert server.requests[0]["model"] == "judge-vlm" and "tidy the table" in json.dumps(server.requests[0])


def test_a_folder_without_finished_episodes_takes_the_new_configuration(tmp_path):
    RunFolder(tmp_path).claim({"seed": 0}, {"methods": ["stepwise"]})  # e.g. a run that failed to load its model
    assert run_bench(bench(tmp_path, limit=1, seed=3)).ran == 1
    assert json.loads((tmp_path / "config.json").read_text())["fingerprint"]["seed"] == 3


def test_a_learned_critic_s_weights_are_part_of_the_fingerprint(tmp_path):
    from spiral.bench.runner import fingerprint

    one, two = tmp_path / "one.safetensors", tmp_path / "two.safetensors"
    one.write_bytes(b"critic one")
    two.write_bytes(b"critic two")
    prints = [fingerprint(bench(tmp_path, critic="learned", critic_model=str(p)), [], "oracle") for p in (one, two)]
    assert prints[0]["critic_weights"] and prints[0]["critic_weights"] != prints[1]["critic_weights"]
    assert fingerprint(bench(tmp_path, critic="oracle"), [], "oracle")["critic_weights"] is None
    # --agent-model is a chat model's name: it never reaches the learned critic, and alone it is refused.
    shipped = [fingerprint(bench(tmp_path, critic="learned", agent_model=str(p)), [], "oracle") for p in (one, two)]
    assert shipped[0] == shipped[1] and shipped[0]["critic_weights"] not in (None, prints[0]["critic_weights"])
    with pytest.raises(SpiralError, match="--agent-model is the model of the openai and hf agents.*--critic-model"):
        run_bench(bench(tmp_path / "x", methods="closed-loop", critic="learned", agent_model=str(one)))


def test_the_vlm_judge_takes_the_shared_server_settings_unless_given_its_own(tmp_path, monkeypatch):
    from spiral.bench.runner import _make_judge

    monkeypatch.delenv("SHARED_KEY", raising=False)
    monkeypatch.setenv("JUDGE_KEY", "sk-judge")
    shared = {"base_url": "http://agents:8000/v1", "api_key_env": "SHARED_KEY", "agent_timeout": 9.0, "judge_model": "vlm-j"}
    own = _make_judge(bench(tmp_path, **shared, judge_base_url="http://judge:9/v1", judge_api_key_env="JUDGE_KEY")).client.config
    assert (own.base_url, own.api_key_env, own.timeout_s, own.model) == ("http://judge:9/v1", "JUDGE_KEY", 9.0, "vlm-j")
    with pytest.raises(SpiralError, match="set the environment variable SHARED_KEY"):
        _make_judge(bench(tmp_path, **shared))  # unset: --base-url and --api-key-env, whose key is missing here
    keyless = _make_judge(bench(tmp_path, **shared, judge_api_key_env="")).client.config
    assert (keyless.base_url, keyless.api_key_env) == ("http://agents:8000/v1", "")
