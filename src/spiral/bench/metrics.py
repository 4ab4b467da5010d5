"""The per-episode metric record, and aggregates with 95% confidence intervals.

Success rates get the Wilson score interval (right near 0 and 1, where the normal interval is not);
means get the Student t interval. Groups are (method, level) plus (method, "all").
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import get_type_hints

from spiral.errors import SpiralError
from spiral.types import Status

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile
TIMING = ("wall_seconds", "model_seconds", "agent_seconds", "judge_seconds")  # vary run to run


# An episode the infrastructure failed (an agent's server unreachable or failing after its retries):
# kept in the results to be shown, left out of every rate, and redone by the next run of the command.
ERRORED = Status.ERRORED


@dataclass(frozen=True)
class EpisodeMetrics:
    """What the judge and the episode's own accounting say about one (task, method) episode.
    Quality fields are None where the judge cannot measure them (e.g. steps of the oneshot
    baseline, which has no plan; object identities in real footage)."""

    task: str
    method: str
    level: str
    world: str
    judge: str  # "oracle" or "vlm"; never the in-loop critic object
    status: str  # the loop's status (completed, infeasible, budget_exhausted, plan_error), "error", or ERRORED
    goal_success: bool  # every final postcondition of the goal holds, judged on the start and last frame
    step_completion: float | None  # share of the plan's steps whose postcondition held after their clip
    action_alignment: float | None  # mean over accepted clips: instructed motion done, and only it
    identity_persistence: float | None  # share of start objects present at the end, same colour/shape/size
    hallucinated_objects: int | None  # objects at the end that were not there at the start
    collateral_drift: float | None  # share of objects the task never needed to move that moved
    temporal_consistency: float | None  # identity x (1 - drift); see judge.py
    flicker: float  # VBench temporal flickering of the stitched video; 1 = no change between frames
    motion_smoothness: float  # VBench-style, linear interpolation in place of a learned interpolator
    subject_smoothness: float | None  # mean oracle smoothness of each step's moving object
    expected_steps: int | None
    steps_planned: int
    steps_accepted: int
    forced_steps: int
    replans: int
    generation_calls: int
    agent_tokens: int
    judge_tokens: int
    critic_mean: float | None  # mean in-loop critic score of the accepted clips (closed loop only)
    critic_scores: tuple[float, ...]  # every in-loop critique's score, in order
    wall_seconds: float
    model_seconds: float
    agent_seconds: float
    judge_seconds: float
    error: str = ""

    def to_dict(self) -> dict:
        return {**asdict(self), "critic_scores": list(self.critic_scores)}

    @staticmethod
    def from_dict(d: dict) -> EpisodeMetrics:
        hints = get_type_hints(EpisodeMetrics)
        names = [f.name for f in fields(EpisodeMetrics)]
        missing = [n for n in names if n not in d and n != "error"]
        if missing:
            raise ValueError(f"missing fields {', '.join(missing)}")
        values = {n: d[n] for n in names if n in d}
        for n, v in values.items():
            if v is None and "None" not in str(hints[n]):
                raise ValueError(f"field {n!r} is null")
        return EpisodeMetrics(**{**values, "critic_scores": tuple(float(s) for s in values["critic_scores"])})

    @property
    def key(self) -> str:
        return f"{self.task}\t{self.method}"

    def without_timing(self) -> dict:
        return {k: v for k, v in self.to_dict().items() if k not in TIMING}


@dataclass(frozen=True)
class Estimate:
    value: float | None
    lo: float | None
    hi: float | None
    n: int

    def text(self, digits: int = 2, percent: bool = False) -> str:
        if self.value is None:
            return "–"
        f = (lambda x: f"{100 * x:.0f}%") if percent else (lambda x: f"{x:.{digits}f}")
        return f(self.value) if self.lo is None else f"{f(self.value)} [{f(self.lo)}, {f(self.hi)}]"


def wilson(successes: int, n: int, z: float = Z95) -> Estimate:
    """Wilson score interval for a proportion."""
    if n == 0:
        return Estimate(None, None, None, 0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # At 0 or n successes the bound is exactly 0 or 1; say so rather than leave a rounding error.
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return Estimate(p, lo, hi, n)


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Paired comparison: the two-sided exact binomial test of the discordant pairs (only A passed,
    only B passed) against an even split."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(only_a, only_b) + 1)) / 2**n
    return min(1.0, 2 * tail)


def t_quantile(df: int, z: float = Z95) -> float:
    """Student t quantile matching the normal quantile z (two-sided 95% by default): exact for 1 and
    2 degrees of freedom, the Cornish-Fisher expansion (Abramowitz & Stegun 26.7.5) above; within
    0.01 of the tables from df = 3 on, so no scipy is needed."""
    if df < 1:
        raise ValueError("df must be >= 1")
    p = 0.5 * (1 + math.erf(z / math.sqrt(2)))
    if df == 1:
        return math.tan(math.pi * (p - 0.5))
    if df == 2:
        return (2 * p - 1) * math.sqrt(2 / (4 * p * (1 - p)))
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4


def mean_ci(values: list[float], bounds: tuple[float, float] = (-math.inf, math.inf)) -> Estimate:
    """Mean with a 95% Student t interval (no interval for fewer than two values), clipped to the
    range the quantity can take (`bounds`): a share cannot be below 0 or above 1 however few the
    episodes."""
    xs = [float(v) for v in values if v is not None]
    n = len(xs)
    if n == 0:
        return Estimate(None, None, None, 0)
    m = sum(xs) / n
    if n == 1:
        return Estimate(m, None, None, 1)
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1))
    half = t_quantile(n - 1) * sd / math.sqrt(n)
    return Estimate(m, max(bounds[0], m - half), min(bounds[1], m + half), n)


@dataclass(frozen=True)
class GroupSummary:
    method: str
    level: str  # a level, or "all"
    episodes: int
    success: Estimate
    step_completion: Estimate
    action_alignment: Estimate
    temporal_consistency: Estimate
    flicker: Estimate
    motion_smoothness: Estimate
    generation_calls: Estimate
    calls_per_step: Estimate  # generation calls / the task's expected steps
    wall_seconds: Estimate
    agent_tokens: Estimate
    critic_success: tuple[float, ...]  # per-episode critic_mean, episodes the judge calls successful
    critic_failure: tuple[float, ...]

    def to_dict(self) -> dict:
        return asdict(self)


def level_order(levels) -> list[str]:
    from spiral.bench.tasks import LEVEL_ORDER

    known = [lv for lv in LEVEL_ORDER if lv in levels]
    return known + sorted(set(levels) - set(LEVEL_ORDER))


def summarise_group(method: str, level: str, rows: list[EpisodeMetrics]) -> GroupSummary:
    def col(name: str) -> list:
        return [getattr(r, name) for r in rows if getattr(r, name) is not None]

    per_step = [r.generation_calls / max(1, r.expected_steps or r.steps_planned or 1) for r in rows]
    unit, positive = (0.0, 1.0), (0.0, math.inf)
    return GroupSummary(
        method, level, len(rows), wilson(sum(r.goal_success for r in rows), len(rows)),
        mean_ci(col("step_completion"), unit), mean_ci(col("action_alignment"), unit),
        mean_ci(col("temporal_consistency"), unit), mean_ci(col("flicker"), unit), mean_ci(col("motion_smoothness"), unit),
        mean_ci(col("generation_calls"), positive), mean_ci(per_step, positive), mean_ci(col("wall_seconds"), positive),
        mean_ci(col("agent_tokens"), positive),
        tuple(r.critic_mean for r in rows if r.goal_success and r.critic_mean is not None),
        tuple(r.critic_mean for r in rows if not r.goal_success and r.critic_mean is not None),
    )  # fmt: skip


def summarise(rows: list[EpisodeMetrics], methods: list[str] | None = None) -> list[GroupSummary]:
    """One summary per (method, level) and per (method, "all"); methods in the given order."""
    rows = [r for r in rows if r.status != ERRORED]
    if not rows:
        raise SpiralError("no finished episodes to summarise yet (only errored ones: rerun the command to redo them)")
    order = methods or list(dict.fromkeys(r.method for r in rows))
    out = []
    for m in order:
        mine = [r for r in rows if r.method == m]
        if not mine:
            continue
        for level in level_order({r.level for r in mine}):
            out.append(summarise_group(m, level, [r for r in mine if r.level == level]))
        out.append(summarise_group(m, "all", mine))
    return out
