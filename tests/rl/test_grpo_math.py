"""The GRPO arithmetic, the curriculum schedule, the reward-hacking guard and the reward specs:
plain unit tests, no model."""

import numpy as np
import pytest
import torch

import spiral.rl.rewards as rewards
from spiral.errors import SpiralError
from spiral.rl.curriculum import Stage, Task, horizon_at, parse_schedule
from spiral.rl.grpo import choose_steps, clipped_objective, group_advantages
from spiral.rl.guard import ProbeReading, RewardHackingGuard
from spiral.rl.rewards import OracleReader, judged_success, make_reward, oracle_reward
from spiral.worldmodels.tabletop_eval import random_feasible_action
from spiral.worlds.tabletop.actions import sample_target, trajectory
from spiral.worlds.tabletop.grammar import to_text
from spiral.worlds.tabletop.render import render
from spiral.worlds.tabletop.scene import random_scene


# ---- advantages ----------------------------------------------------------------------------------
def test_group_advantages_are_standardised_clipped_and_zero_without_signal():
    rewards = torch.tensor([0.2, 0.9, 0.4, 0.5, 0.1, 0.7])
    adv = group_advantages(rewards, clip=5.0, eps=0.0)
    torch.testing.assert_close(adv.mean(), torch.tensor(0.0), atol=1e-6, rtol=0)
    torch.testing.assert_close(adv.std(unbiased=False), torch.tensor(1.0))
    assert torch.equal(adv.argsort(), rewards.argsort()), "the order of the rewards is kept"
    assert adv.abs().max() < group_advantages(rewards, clip=5.0, eps=1e-4).abs().max() + 1e-3

    outlier = torch.tensor([0.0] * 99 + [1.0])  # the outlier is ~10 standard deviations out
    clipped = group_advantages(outlier, clip=2.5)
    assert clipped[-1] == 2.5 and clipped.max() == 2.5 and clipped.min() > -2.5

    for same in (torch.full((4,), 0.3), torch.zeros(8), torch.ones(2)):
        assert torch.equal(group_advantages(same, clip=5.0), torch.zeros_like(same))


# ---- the clipped surrogate -----------------------------------------------------------------------
def surrogate_grad(log_ratio: float, advantage: float, clip_range: float = 0.1) -> tuple[float, float]:
    """(loss, d loss / d log_prob) for one element at the given log-ratio."""
    log_probs = torch.tensor([[log_ratio]], requires_grad=True)
    loss, _ = clipped_objective(log_probs, torch.zeros(1, 1), torch.tensor([advantage]), clip_range)
    loss.sum().backward()
    return float(loss.detach()), float(log_probs.grad)


def test_clipped_objective_at_ratio_one_is_minus_the_advantage():
    old = torch.randn(3, 4)
    adv = torch.tensor([1.5, -0.5, 0.0])
    loss, ratio = clipped_objective(old.clone(), old, adv, clip_range=1e-3)
    assert loss.shape == (3, 4) and torch.equal(ratio, torch.ones(3, 4))
    assert torch.equal(loss, -adv[:, None].expand(3, 4))


def test_clipping_stops_the_gradient_only_past_the_bound_in_the_advantages_direction():
    up, down = np.log(1.2), np.log(0.8)  # ratios 1.2 and 0.8, outside a clip range of 0.1
    # Positive advantage: pushing the ratio further up earns nothing once it is past 1 + eps.
    loss, grad = surrogate_grad(up, 2.0)
    assert grad == 0.0 and loss == pytest.approx(-2.0 * 1.1)
    # Negative advantage: pushing the ratio further down earns nothing once it is below 1 - eps.
    loss, grad = surrogate_grad(down, -2.0)
    assert grad == 0.0 and loss == pytest.approx(2.0 * 0.9)
    # The other sides stay unclipped (pessimistic bound): the gradient pulls the ratio back.
    _, grad = surrogate_grad(down, 2.0)
    assert grad == pytest.approx(-2.0 * 0.8)
    _, grad = surrogate_grad(up, -2.0)
    assert grad == pytest.approx(2.0 * 1.2)
    # Inside the range the gradient is -advantage * ratio.
    _, grad = surrogate_grad(np.log(1.05), 3.0)
    assert grad == pytest.approx(-3.0 * 1.05)


# ---- step choice ---------------------------------------------------------------------------------
def test_choose_steps_is_a_sorted_subset_of_the_right_size():
    stochastic = [0, 1, 2, 3, 4, 5, 6]
    rng = np.random.default_rng(0)
    for fraction, count in [(1.0, 7), (0.5, 4), (0.3, 2), (0.0, 1), (0.01, 1)]:
        for _ in range(5):
            steps = choose_steps(stochastic, fraction, rng)
            assert len(steps) == count and len(set(steps)) == count
            assert steps == sorted(steps) and set(steps) <= set(stochastic)
            assert all(isinstance(k, int) for k in steps)
    draws = {tuple(choose_steps(stochastic, 0.3, rng)) for _ in range(30)}
    assert len(draws) > 3, "the subset is random"
    assert choose_steps([4], 0.5, rng) == [4]
    a, b = np.random.default_rng(7), np.random.default_rng(7)
    assert [choose_steps(stochastic, 0.5, a) for _ in range(3)] == [choose_steps(stochastic, 0.5, b) for _ in range(3)]


# ---- curriculum schedule -------------------------------------------------------------------------
def test_parse_schedule_and_horizon_at():
    stages = parse_schedule("1:0,2:100,4:250")
    assert stages == [Stage(1, 0), Stage(2, 100), Stage(4, 250)]
    assert [horizon_at(stages, i) for i in (0, 99, 100, 249, 250, 10_000)] == [1, 1, 2, 2, 4, 4]
    assert parse_schedule(" 3:0 , 1:5") == [Stage(3, 0), Stage(1, 5)]
    assert horizon_at(parse_schedule("2:0"), 7) == 2


@pytest.mark.parametrize(
    "text, message",
    [
        ("", r"bad curriculum stage '': write HORIZON:START_ITERATION, e\.g\. '1:0,2:100,4:250'"),
        ("1", r"bad curriculum stage '1': write HORIZON:START_ITERATION"),
        ("1:0,2", r"bad curriculum stage '2'"),
        ("1:0:3", r"bad curriculum stage '1:0:3'"),
        ("a:0", r"bad curriculum stage 'a:0'"),
        ("1:0,2:x", r"bad curriculum stage '2:x'"),
        ("1:0,", r"bad curriculum stage ''"),
        ("1:5", r"the curriculum '1:5' must start at iteration 0"),
        ("1:0,2:100,3:100", r"curriculum stages must start at increasing iterations: '1:0,2:100,3:100'"),
        ("1:0,2:100,3:50", r"increasing iterations"),
        ("0:0", r"curriculum horizons must be >= 1: '0:0'"),
        ("1:0,-2:10", r"horizons must be >= 1"),
    ],
)
def test_bad_schedules_are_refused_with_a_helpful_message(text, message):
    with pytest.raises(SpiralError, match=message):
        parse_schedule(text)


# ---- the reward-hacking guard --------------------------------------------------------------------
def feed(guard: RewardHackingGuard, readings: list[tuple[float, float]]) -> list[str | None]:
    return [guard.add(ProbeReading(i * 10, r, j)) for i, (r, j) in enumerate(readings)]


def test_guard_fires_when_reward_rises_while_judged_success_falls():
    out = feed(RewardHackingGuard(window=2), [(0.40, 0.60), (0.41, 0.60), (0.45, 0.50)])
    assert out[:2] == [None, None]
    assert out[2] == (
        "reward hacking suspected at iteration 20: since iteration 0 the critic's reward rose 0.400 -> 0.450 "
        "while the judge's success fell 0.600 -> 0.500"
    )
    # A drift too slow to show between neighbouring readings is caught within the window only.
    slow = [(0.40, 0.60), (0.415, 0.57), (0.43, 0.54)]
    assert feed(RewardHackingGuard(window=1), slow) == [None] * 3
    assert feed(RewardHackingGuard(window=2), slow)[2] is not None


def test_guard_stays_quiet_below_the_thresholds_or_when_both_rise():
    both_rise = [(0.40, 0.50), (0.50, 0.60), (0.60, 0.70), (0.70, 0.80)]
    assert feed(RewardHackingGuard(), both_rise) == [None] * 4
    both_fall = [(0.60, 0.70), (0.50, 0.60), (0.40, 0.50)]
    assert feed(RewardHackingGuard(), both_fall) == [None] * 3
    small_rise = [(0.40, 0.60), (0.40, 0.50), (0.41, 0.40)]  # +0.01 < 0.02
    assert feed(RewardHackingGuard(), small_rise) == [None] * 3
    small_drop = [(0.40, 0.60), (0.50, 0.60), (0.60, 0.57)]  # -0.03 < 0.05
    assert feed(RewardHackingGuard(), small_drop) == [None] * 3
    # The first reading has nothing to compare against; the second already has.
    first, second = feed(RewardHackingGuard(window=2), [(0.0, 1.0), (1.0, 0.0)])
    assert first is None and second is not None
    custom = RewardHackingGuard(window=1, reward_rise=0.2, judged_drop=0.2)
    assert feed(custom, [(0.0, 1.0), (0.1, 0.0), (0.4, 0.0)]) == [None, None, None]


def test_guard_readings_round_trip():
    guard = RewardHackingGuard(window=2)
    feed(guard, [(0.40, 0.60), (0.41, 0.60)])
    again = RewardHackingGuard(window=2)
    again.load(guard.to_list())
    assert again.readings == guard.readings
    assert again.add(ProbeReading(20, 0.45, 0.50)) is not None, "a resumed guard remembers its window"


# ---- reward specs --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def oracle_task_and_clips():
    rng = np.random.default_rng(5)
    scene = random_scene(rng)
    action = random_feasible_action(scene, rng)
    frames = [render(s, 64) for s in trajectory(scene, action, sample_target(scene, action, rng), 4)]
    task = Task(frames[0], action, to_text(action), 1, 0)
    done = np.stack(frames)
    still = np.repeat(frames[0][None], 4, axis=0)  # nothing moves: no credit
    return task, np.stack([done, still])


def test_make_reward_oracle_and_mixes(oracle_task_and_clips):
    task, clips = oracle_task_and_clips
    assert make_reward("oracle") is oracle_reward
    assert make_reward(" oracle ") is oracle_reward
    assert make_reward("oracle=1") is oracle_reward
    expected = oracle_reward(clips, task)
    assert expected.shape == (2,) and expected.dtype == torch.float32
    assert expected[0] > 0.9 and expected[1] < expected[0], "a clean success scores, a still clip does not"
    for spec in ("oracle=0.7,oracle=0.3", "oracle=2", "oracle=0.5, oracle=3"):
        torch.testing.assert_close(make_reward(spec)(clips, task), expected)


def test_the_oracle_reader_judges_clips_in_worker_processes_as_this_process_would(oracle_task_and_clips, monkeypatch):
    task, clips = oracle_task_and_clips
    backwards = clips[:1, ::-1].copy()  # the step undone: a failure
    monkeypatch.setattr(rewards, "_REPORTS", type(rewards._REPORTS)())
    with OracleReader(2) as reader:
        reader.prefetch([(clips, task), (backwards, task)])
        assert reader.pool._pool is not None, "two processes read in parallel"
    assert len(rewards._REPORTS) == 3

    def no_oracle(*args):
        raise AssertionError("the reports should have been read ahead")

    read_ahead = [rewards.oracle_report(c, task) for c in (*clips, *backwards)]
    monkeypatch.setattr(rewards.checks, "check_clip", no_oracle)
    judged, scores = judged_success(clips, task), oracle_reward(backwards, task)
    monkeypatch.undo()
    assert read_ahead == [rewards.checks.check_clip(c, task.action) for c in (*clips, *backwards)]
    assert judged.tolist() == [1.0, 0.0] and scores[0] < 0.5


def test_one_oracle_process_reads_nothing_ahead(oracle_task_and_clips, monkeypatch):
    task, clips = oracle_task_and_clips
    monkeypatch.setattr(rewards, "_REPORTS", type(rewards._REPORTS)())
    with OracleReader(1) as reader:
        reader.prefetch([(clips, task)])
        assert reader.pool._pool is None and not rewards._REPORTS


@pytest.mark.parametrize(
    "spec, message",
    [
        ("nope", r"unknown reward 'nope' in 'nope'; use oracle, learned, critic or a mix like 'oracle=0\.7,learned=0\.3'"),
        ("oracle=0.7,critic=0.3", r"the 'critic' reward needs --critic"),
        ("", r"unknown reward ''"),
        ("oracle=abc", r"bad reward weight 'abc' in 'oracle=abc': write name=number"),
        ("oracle=0", r"reward weights must be > 0, got 'oracle=0'"),
        ("oracle=-1", r"reward weights must be > 0"),
        ("oracle=nan", r"reward weights must be > 0"),
        ("oracle=inf", r"reward weights must be > 0"),
    ],
)
def test_bad_reward_specs_are_refused(spec, message):
    with pytest.raises(SpiralError, match=message):
        make_reward(spec)
