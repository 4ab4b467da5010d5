"""Pool ActWM-Bench runs over sampling seeds and compare arms task by task.

    .venv/bin/python benchmarks/bench_pool.py NAME=RUN[,RUN...] NAME=RUN[,RUN...] ...

Each arm is a name and the run folders of `spiral bench run` (one per `--seed`) to pool. One run of
90 tasks gives a 95% interval about 20 points wide, so two in-loop critics a few points apart cannot
be told apart from one seed each. Pooled over seeds, each arm's goal success gets a Wilson interval;
then every arm after the first meets the first on the episodes both ran (the same task, method and
seed), and the exact McNemar p-value on the episodes where they disagree says whether the
difference is more than chance. Calls / step: generation calls over the task's expected steps, the
bench report's figure, averaged over episodes. Clips accepted: steps accepted over generation calls
(forced steps count as accepted). Replans / episode: how often the outer loop redid the plan.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from spiral.bench.metrics import level_order, mcnemar_exact, summarise_group
from spiral.bench.store import RunFolder


def read_arm(spec: str) -> tuple[str, dict[tuple, object]]:
    """'name=run1,run2' -> (name, {(task, method, seed): EpisodeMetrics})."""
    name, sep, runs = spec.partition("=")
    if not sep or not runs:
        raise SystemExit(f"an arm is NAME=RUN[,RUN...], got {spec!r}")
    rows = {}
    for run in runs.split(","):
        folder = RunFolder(Path(run))
        config = folder.read_config()
        if config is None:
            raise SystemExit(f"{run} is not a bench run folder (no config.json); make one with `spiral bench run --out {run}`")
        seed = config["fingerprint"]["seed"]
        for r in folder.read():
            rows[(r.task, r.method, seed)] = r
    return name, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("arms", nargs="+", help="NAME=RUN[,RUN...]: an arm and the run folders it pools")
    args = parser.parse_args()
    arms = [read_arm(spec) for spec in args.arms]
    levels = level_order({r.level for _, rows in arms for r in rows.values()})
    print("| arm | episodes | " + " | ".join(levels) + " | all (95% CI) | calls / step | clips accepted | replans / episode |")
    print("|---" * (len(levels) + 6) + "|")
    for name, rows in arms:
        eps = list(rows.values())
        rates = [summarise_group(name, lv, [r for r in eps if r.level == lv]).success for lv in levels]
        cells = [f"{c.value:.0%}" if c.value is not None else "–" for c in rates]
        overall = summarise_group(name, "all", eps)
        # How often the in-loop critic let a clip through, and how often the plan was redone.
        accepted = sum(r.steps_accepted for r in eps) / max(1, sum(r.generation_calls for r in eps))
        replans = sum(r.replans for r in eps) / len(eps)
        print(f"| {name} | {len(eps)} | " + " | ".join(cells) + f" | {overall.success.text(percent=True)} | "
              f"{overall.calls_per_step.value:.2f} | {accepted:.0%} | {replans:.2f} |")  # fmt: skip
    if len(arms) < 2:
        return
    base_name, base = arms[0]
    print(f"\npaired against {base_name} (episodes both ran): both / only {base_name} / only the arm / neither, exact McNemar p")
    for name, rows in arms[1:]:
        shared = sorted(set(base) & set(rows))
        a = [base[k].goal_success for k in shared]
        b = [rows[k].goal_success for k in shared]
        both = sum(x and y for x, y in zip(a, b, strict=True))
        only_a = sum(x and not y for x, y in zip(a, b, strict=True))
        only_b = sum(y and not x for x, y in zip(a, b, strict=True))
        print(f"  {name}: {len(shared)} episodes; {both} / {only_a} / {only_b} / {len(shared) - both - only_a - only_b}, "
              f"p = {mcnemar_exact(only_a, only_b):.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
