"""Task suites: shipped files equal the generator, and bad task files fail before any work."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from spiral.bench.runner import BenchConfig, run_bench
from spiral.bench.tasks import LEVEL_ORDER, SUITE_SIZE, SUITES, limit_tasks, load_suite, read_tasks, suite_file, write_suites
from spiral.errors import SpiralError
from spiral.worlds.tabletop.goals import LEVELS

GOOD = {"id": "a", "world": "tabletop", "scene_seed": 3, "goal": "clear the centre", "level": "short", "expected_steps": 1}


def test_shipped_suites_equal_what_the_generator_makes(tmp_path):
    write_suites(tmp_path)
    for name in SUITES:
        assert (tmp_path / f"{name}.jsonl").read_text() == suite_file(name).read_text(), (
            f"{name} no longer matches its generator (goal sampling, solver or oracle changed?): rewrite the suites "
            "with `python -m spiral.bench.tasks`, and do not compare results across the change"
        )


def test_suites_have_their_size_levels_and_step_counts():
    joined = []
    for level in LEVEL_ORDER:
        tasks = load_suite(f"tabletop-{level}")
        lo, hi = LEVELS[level]
        assert len(tasks) == SUITE_SIZE and {t.level for t in tasks} == {level}
        assert all(lo <= t.expected_steps <= hi and t.scene_seed is not None for t in tasks)
        joined += tasks
    assert load_suite("tabletop-standard") == joined
    assert len({t.id for t in joined}) == len(joined)


def test_limit_takes_the_first_tasks_of_every_level():
    ids = [t.id for t in limit_tasks(load_suite("tabletop-standard"), 2)]
    assert ids == ["short-000", "short-001", "medium-000", "medium-001", "long-000", "long-001"]


def write(tmp_path, *lines):
    path = tmp_path / "tasks.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    "bad, where",
    [
        ('{"id": "b", "world": "tabletop"', "line 3: not valid JSON"),
        (json.dumps({k: v for k, v in GOOD.items() if k != "goal"} | {"id": "b"}), "line 3, field 'goal'"),
        (json.dumps(GOOD | {"id": "b", "scene_seed": "7"}), "line 3, field 'scene_seed'"),
        (json.dumps(GOOD | {"id": "b", "image": "x.png"}), "line 3, field 'scene_seed'"),
        (json.dumps(GOOD | {"id": "b", "expected_steps": -1}), "line 3, field 'expected_steps'"),
        (json.dumps(GOOD | {"id": "b", "expected_steps": True}), "line 3, field 'expected_steps'"),
        (json.dumps(GOOD | {"id": "b", "levle": "short"}), "line 3, field 'levle'"),
        (json.dumps(GOOD | {"id": "b", "goal": "juggle the cubes"}), "line 3, field 'goal'"),
        (json.dumps(GOOD | {"id": "a"}), "line 3, field 'id'.*already the id of line 1"),
        (json.dumps({k: v for k, v in GOOD.items() if k != "scene_seed"} | {"id": "b", "world": "real", "image": "no.png"}),
         "line 3, field 'image'.*no such file"),
        ("[1, 2]", "line 3: expected a JSON object"),
    ],
)  # fmt: skip
def test_a_malformed_line_is_named_by_number_and_field(tmp_path, bad, where):
    path = write(tmp_path, json.dumps(GOOD), "", bad)
    with pytest.raises(SpiralError, match=where):
        read_tasks(path)


def test_image_tasks_resolve_paths_from_the_task_file(tmp_path):
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "start.png")
    task = {"id": "r", "world": "real", "image": "start.png", "goal": "pour the tea", "level": "long"}
    (loaded,) = read_tasks(write(tmp_path, json.dumps(task)))
    assert loaded.image == str((tmp_path / "start.png").resolve()) and loaded.scene_seed is None


def test_a_bad_task_file_stops_the_run_before_any_work(tmp_path):
    path = write(tmp_path, json.dumps(GOOD), json.dumps(GOOD | {"id": "b", "level": ""}))
    with pytest.raises(SpiralError, match="line 2, field 'level'"):
        run_bench(BenchConfig(out=tmp_path / "out", tasks=path, progress=False))
    assert not (tmp_path / "out").exists()
    cli = subprocess.run([sys.executable, "-m", "spiral.bench", "run", "--tasks", str(path), "--out", str(tmp_path / "o2")],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert cli.returncode == 2 and "line 2, field 'level'" in cli.stderr and "Traceback" not in cli.stderr
    assert not (tmp_path / "o2").exists()


def test_unknown_suite_and_both_sources_are_refused(tmp_path):
    with pytest.raises(SpiralError, match="unknown suite 'tabletop-huge'"):
        load_suite("tabletop-huge")
    with pytest.raises(SpiralError, match="exactly one of --suite NAME or --tasks FILE"):
        run_bench(BenchConfig(out=tmp_path, progress=False))


def test_tuning_tasks_are_made_like_the_suites_but_none_is_in_one(tmp_path):
    out = tmp_path / "tuning.jsonl"
    cli = subprocess.run([sys.executable, "-m", "spiral.bench", "tasks", "--first", "30", "--size", "2", "--out", str(out)],
                         capture_output=True, text=True)  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    tasks = read_tasks(out)
    assert [t.id for t in tasks] == [f"{level}-{i:03d}" for level in LEVEL_ORDER for i in (30, 31)]
    for t in tasks:
        lo, hi = LEVELS[t.level]
        assert lo <= t.expected_steps <= hi
    standard = load_suite("tabletop-standard")
    assert not {t.scene_seed for t in tasks} & {t.scene_seed for t in standard}
    assert not {(t.goal, t.scene_seed) for t in tasks} & {(t.goal, t.scene_seed) for t in standard}
    low = subprocess.run(
        [sys.executable, "-m", "spiral.bench", "tasks", "--first", "29", "--out", str(out)], capture_output=True, text=True
    )
    assert low.returncode == 2 and "tasks below 30 are the built-in suites' own" in low.stderr and "Traceback" not in low.stderr


def test_a_free_form_goal_is_judged_by_its_judge_condition(tmp_path):
    from spiral.bench.tasks import parse_tasks
    from spiral.worlds.tabletop.judging import Unchanged, judged_condition
    from spiral.worlds.tabletop.scene import Scene, TableObject

    line = {
        "id": "ff",
        "world": "tabletop",
        "scene_seed": 3,
        "level": "short",
        "goal": "park the ball beside the box, on its left",
    }
    with pytest.raises(SpiralError, match="line 1, field 'goal'.*judge condition"):
        parse_tasks(json.dumps(line), "t.jsonl")
    (task,) = parse_tasks(json.dumps({**line, "judge": "move the blue circle to the left of the red square"}), "t.jsonl")
    assert task.judge and task.to_dict()["judge"] == task.judge
    with pytest.raises(SpiralError, match="field 'judge'.*cannot read the judge condition"):
        parse_tasks(json.dumps({**line, "judge": "make it nice"}), "t.jsonl")
    assert isinstance(judged_condition(line["goal"], "unchanged"), Unchanged)
    start = Scene((TableObject("red", "square", "large", 0.2, 0.2),))
    assert Unchanged().holds(start, start) and not Unchanged().holds(start, start.moved("red square", 0.5, 0.5, None))


def test_the_free_form_suite_and_its_tuning_split():
    from spiral.bench.tasks import FREEFORM, REFUSAL, tuning_tasks
    from spiral.worlds.tabletop.judging import UNCHANGED

    suite = load_suite(FREEFORM)
    assert len(suite) >= 90 and {t.level for t in suite} == {*LEVEL_ORDER, REFUSAL}
    for t in suite:
        assert t.judge and (t.judge == UNCHANGED) == (t.level == REFUSAL)
        if t.level != REFUSAL:
            lo, hi = LEVELS[t.level]
            assert lo <= t.expected_steps <= hi
    tuning = tuning_tasks(30, 1, freeform=True)
    assert [t.id for t in tuning] == [f"ff-{level}-030" for level in LEVEL_ORDER] + ["ff-refusal-030"]
    assert not {t.scene_seed for t in tuning} & {t.scene_seed for t in suite}
