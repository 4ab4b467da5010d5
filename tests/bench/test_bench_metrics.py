"""Per-episode records and the 95% intervals, against values worked out by hand or from tables."""

import math
from dataclasses import replace

import pytest

from spiral.bench.metrics import EpisodeMetrics, mcnemar_exact, mean_ci, summarise, t_quantile, wilson
from spiral.errors import SpiralError


def row(task="t1", method="closed-loop", level="short", success=True, **kw) -> EpisodeMetrics:
    base = EpisodeMetrics(
        task, method, level, "tabletop", "oracle", "completed", success, 1.0, 1.0, 1.0, 0, 0.0, 1.0, 0.99, 0.98, 1.0,
        2, 2, 2, 0, 0, 3, 0, 0, 0.9, (0.4, 0.9), 1.5, 1.0, 0.3, 0.2,
    )  # fmt: skip
    return replace(base, **kw)


def test_wilson_interval_matches_hand_values():
    e = wilson(0, 10)
    assert e.value == 0 and e.lo == 0 and e.hi == pytest.approx(0.2775, abs=1e-4)
    e = wilson(5, 10)
    assert (e.lo, e.hi) == (pytest.approx(0.2366, abs=1e-4), pytest.approx(0.7634, abs=1e-4))
    e = wilson(10, 10)
    assert e.lo == pytest.approx(0.7225, abs=1e-4) and e.hi == 1.0
    assert wilson(0, 0).value is None


def test_mcnemar_exact_matches_the_two_sided_binomial_tail():
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(0, 6) == mcnemar_exact(6, 0) == pytest.approx(2 / 64)  # all six discordant pairs one way
    assert mcnemar_exact(3, 3) == 1.0
    assert mcnemar_exact(2, 10) == pytest.approx(2 * (1 + 12 + 66) / 4096)


@pytest.mark.parametrize(
    "df, table", [(1, 12.706), (2, 4.303), (3, 3.182), (4, 2.776), (5, 2.571), (10, 2.228), (29, 2.045), (120, 1.980)]
)
def test_t_quantile_matches_the_tables(df, table):
    assert t_quantile(df) == pytest.approx(table, abs=0.01)


def test_mean_interval_is_the_student_t_interval_clipped_to_the_range():
    e = mean_ci([1, 2, 3, 4, 5])
    half = 2.776 * math.sqrt(2.5) / math.sqrt(5)
    assert e.value == 3 and e.lo == pytest.approx(3 - half, abs=0.01) and e.hi == pytest.approx(3 + half, abs=0.01)
    clipped = mean_ci([0.0, 1.0, 1.0], bounds=(0.0, 1.0))
    assert clipped.lo >= 0.0 and clipped.hi == 1.0
    assert mean_ci([0.5]).lo is None and mean_ci([]).value is None


def test_records_round_trip_and_bad_lines_say_which_field():
    r = row()
    assert EpisodeMetrics.from_dict(r.to_dict()) == r
    d = r.to_dict()
    del d["goal_success"]
    with pytest.raises(ValueError, match="goal_success"):
        EpisodeMetrics.from_dict(d)
    with pytest.raises(ValueError, match="'flicker' is null"):
        EpisodeMetrics.from_dict({**r.to_dict(), "flicker": None})
    assert "wall_seconds" not in r.without_timing() and "goal_success" in r.without_timing()


def test_summaries_group_by_method_and_level_in_order():
    rows = [
        row("a", level="long", success=False, critic_mean=0.3),
        row("b", level="short"),
        row("c", level="short", success=False),
        row("a", method="stepwise", level="long", critic_mean=None, step_completion=None),
    ]
    groups = summarise(rows, ["stepwise", "closed-loop"])
    assert [(g.method, g.level, g.episodes) for g in groups] == [
        ("stepwise", "long", 1), ("stepwise", "all", 1),
        ("closed-loop", "short", 2), ("closed-loop", "long", 1), ("closed-loop", "all", 3),
    ]  # fmt: skip
    everything = groups[-1]
    assert everything.success.value == pytest.approx(1 / 3)
    assert everything.critic_success == (0.9,) and sorted(everything.critic_failure) == [0.3, 0.9]
    assert groups[0].step_completion.value is None  # None values are left out, not counted as 0
    assert everything.calls_per_step.value == pytest.approx(1.5)  # 3 calls / 2 expected steps
    with pytest.raises(SpiralError, match="no finished episodes"):
        summarise([])
