"""Rewards for GRPO: any callable (clips, task) -> one number per clip, and a weighted mix.

`oracle` is the oracle critic's graded score from pixels (1 for a clean success; partial credit
for progress; penalties for vanished, duplicated or changed objects, collateral moves, flicker and
jumps), `learned` is the learned CriticAgent's success probability, `critic` the score of any
CriticAgent (a VLM served by vLLM, your own `module:callable`): the reward for tasks from your own
footage, where there is no oracle. A spec names one or mixes several: "oracle", "learned",
"oracle=0.7,learned=0.3". The judge the reward-hacking guard watches is the oracle's pass/fail on
tabletop tasks; on tasks from a file, a critic's verdict (best another critic than the reward's).
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import torch

from spiral.errors import SpiralError
from spiral.memory import WorldMemory
from spiral.rl.curriculum import Task
from spiral.types import Clip, Critique, Step, Verdict
from spiral.worlds.tabletop import checks
from spiral.worlds.tabletop.oracle_pool import OraclePool

Reward = Callable[[np.ndarray, Task], torch.Tensor]  # (G, T, H, W, 3) uint8 clips -> (G,) rewards
Judge = Callable[[np.ndarray, Task], torch.Tensor]  # clips -> (G,) 1.0 where the step was carried out


_REPORTS: OrderedDict[tuple, checks.ClipReport] = OrderedDict()
_REPORTS_KEPT = 512  # a few iterations' clips


def _report_key(clip: np.ndarray, task: Task) -> tuple:
    return (hashlib.blake2b(clip.tobytes(), digest_size=16).digest(), clip.shape, task.action)


def _keep(key: tuple, report: checks.ClipReport) -> None:
    _REPORTS[key] = report
    if len(_REPORTS) > _REPORTS_KEPT:
        _REPORTS.popitem(last=False)


def oracle_report(clip: np.ndarray, task: Task) -> checks.ClipReport:
    """The oracle's report on a clip, computed once: with the oracle reward the judge reads the same
    clips again, and the oracle is the slowest part of a GRPO iteration."""
    key = _report_key(clip, task)
    if key not in _REPORTS:
        _keep(key, checks.check_clip(clip, task.action))
    return _REPORTS[key]


class OracleReader:
    """Reads a batch of clips with the oracle over worker processes (an OraclePool) before the
    rewards and the judge ask for them; the reports are the same numbers as in-process, only
    sooner. processes <= 1 reads nothing ahead (everything stays in this process)."""

    def __init__(self, processes: int):
        self.pool = OraclePool(processes)

    def prefetch(self, batches: list[tuple[np.ndarray, Task]]) -> None:
        """batches: (clips (G, T, H, W, 3), their task) pairs; fills the report cache."""
        todo: dict[tuple, tuple[np.ndarray, Task]] = {}
        for clips, task in batches:
            for clip in clips:
                key = _report_key(clip, task)
                if key not in _REPORTS:
                    todo.setdefault(key, (clip, task))
        # Past the cache's size the first reports would be dropped before anyone read them.
        if not self.pool.parallel or len(todo) < 2 or len(todo) > _REPORTS_KEPT:
            return
        reports = self.pool.check_clips([clip for clip, _ in todo.values()], [task.action for _, task in todo.values()])
        for key, report in zip(todo, reports, strict=True):
            _keep(key, report)

    def __enter__(self) -> OracleReader:
        return self

    def __exit__(self, *exc) -> None:
        self.pool.close()


def oracle_reward(clips: np.ndarray, task: Task) -> torch.Tensor:
    return torch.tensor([oracle_report(c, task).score for c in clips], dtype=torch.float32)


def judged_success(clips: np.ndarray, task: Task) -> torch.Tensor:
    """The judge: 1 where the oracle finds the step done and nothing else changed."""
    return torch.tensor([float(oracle_report(c, task).ok) for c in clips])


def critiques(critic, clips: np.ndarray, task: Task) -> list[Critique]:
    """The critic's judgement of each clip as a step of its own: the task's instruction, carried
    out from the task's start frame, with nothing before it in memory."""
    step = Step(task.instruction, subject="")
    critic.reset(task.instruction, task.start)
    return [
        critic.critique(step, Clip(frames, task.instruction, seed=i, source="grpo"), WorldMemory(task.instruction))
        for i, frames in enumerate(clips)
    ]


def critic_reward(critic) -> Reward:
    """Any CriticAgent's score in [0, 1] as the reward."""

    def reward(clips: np.ndarray, task: Task) -> torch.Tensor:
        return torch.tensor([c.score for c in critiques(critic, clips, task)], dtype=torch.float32)

    return reward


def critic_judge(critic) -> Judge:
    """A CriticAgent's verdict as the guard's judge: 1 where it finds the step carried out."""

    def judge(clips: np.ndarray, task: Task) -> torch.Tensor:
        return torch.tensor([float(c.verdict == Verdict.SUCCESS) for c in critiques(critic, clips, task)])

    return judge


def learned_reward(path: str | None = None) -> Reward:
    from spiral.agents.critic.learned import LearnedCriticAgent

    critic = LearnedCriticAgent.load(path)

    def reward(clips: np.ndarray, task: Task) -> torch.Tensor:
        return critic.reward(list(clips), task.instruction).float()

    return reward


def mixed_reward(parts: list[tuple[float, Reward]]) -> Reward:
    total = sum(w for w, _ in parts)

    def reward(clips: np.ndarray, task: Task) -> torch.Tensor:
        return sum(w * fn(clips, task) for w, fn in parts) / total

    return reward


def reward_names(spec: str) -> list[str]:
    """'oracle=0.7,critic=0.3' -> ['oracle', 'critic']."""
    return [item.strip().partition("=")[0] for item in spec.split(",")]


def make_reward(spec: str, critic_weights: str | None = None, critic=None) -> Reward:
    """`critic`: the CriticAgent the `critic` reward asks (built by the caller from its flags)."""
    makers = {"oracle": lambda: oracle_reward, "learned": lambda: learned_reward(critic_weights)}
    if critic is not None:
        makers["critic"] = lambda: critic_reward(critic)
    parts = []
    for item in spec.split(","):
        name, _, weight = item.strip().partition("=")
        if name == "critic" and critic is None:
            raise SpiralError("the 'critic' reward needs --critic: the CriticAgent whose score it is (e.g. openai)")
        if name not in makers:
            raise SpiralError(
                f"unknown reward {name!r} in {spec!r}; use oracle, learned, critic or a mix like 'oracle=0.7,learned=0.3'"
            )
        try:
            w = float(weight) if weight else 1.0
        except ValueError:
            raise SpiralError(f"bad reward weight {weight!r} in {spec!r}: write name=number") from None
        if not (w > 0 and math.isfinite(w)):  # nan and inf would pass a plain w <= 0
            raise SpiralError(f"reward weights must be > 0, got {item!r}")
        parts.append((w, makers[name]()))
    return parts[0][1] if len(parts) == 1 and parts[0][0] == 1.0 else mixed_reward(parts)
