"""Why closed-loop episodes failed: how each failed episode of some `spiral bench run` folders ended.

    .venv/bin/python benchmarks/loop_failures.py RUN [RUN ...]

For every episode the judge failed (RUN/results.jsonl), the row's own bookkeeping says whether a
step was forced (no fix was left) or every step passed the critic. Where the run saved its episodes
(`--save-episodes`; a rerun on the failed tasks alone gives the same episodes, seeds being per task),
the episode's plans say whether the loop's goal check ran and what it found, and the oracle reads
the start image and the long video's last frame: which objects are gone or changed, and whether the
end scene is physically valid.
"""

from __future__ import annotations

import argparse
import json
import platform
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from spiral.data.video import read_video
from spiral.loop import GOAL_CHECK
from spiral.worlds.tabletop.oracle import read_scene
from spiral.worlds.tabletop.scene import validity_errors


def how_it_ended(episode_dir: Path) -> str:
    record = json.loads(next(episode_dir.glob("*/episode.json")).read_text())
    plans = record["cot"].split("\n\nPlan ")
    checks = [p for p in plans if f"({GOAL_CHECK})" in p.split("\n")[0]]
    if not checks:
        return "no goal check: no replan was left"
    if "I cannot achieve this goal" not in checks[-1]:
        return "the goal check planned more steps; replans ran out before they were done"
    start = read_scene(np.asarray(Image.open(next(episode_dir.glob("*/start.png"))).convert("RGB")))
    end = read_scene(read_video(episode_dir / "video.mp4")[-1])
    gone = sorted(set(start.names()) - set(end.names()))
    if gone:
        return f"goal check: out of reach, an object the goal may need is gone or changed ({', '.join(gone)})"
    if validity_errors(end):
        return f"goal check: out of reach, every object there but the scene is not valid ({validity_errors(end)[0]})"
    return "goal check: out of reach, all objects there and the scene valid"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="spiral bench run folders")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}")
    failed, passed_every_step, ended = 0, 0, Counter()
    for run in args.runs:
        for line in (run / "results.jsonl").read_text().splitlines():
            row = json.loads(line)
            if row["goal_success"]:
                continue
            failed += 1
            passed_every_step += row["status"] == "completed" and row["forced_steps"] == 0
            episode_dir = run / "episodes" / f"{row['task']}--{row['method']}"
            how = how_it_ended(episode_dir) if episode_dir.is_dir() else "episode not saved"
            ended[how.split(" (")[0]] += 1
            print(f"  {run.name} {row['task']}: {how}")
    print(f"failed episodes: {failed}; of them ended with every step passed by the critic, none forced: {passed_every_step}")
    for how, count in ended.most_common():
        print(f"  {count:4d}  {how}")


if __name__ == "__main__":
    main()
