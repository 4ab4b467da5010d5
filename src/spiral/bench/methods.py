"""Methods (the loop's baselines and ablations), by name, and each worker's agents.

A method is a LoopConfig: the loop runs every method through the same code, so a method is only a
choice of `method` and the ablation switches. Backends are chosen as for `spiral run`
(spiral.backends_config: the known names, or `module:callable` for one of your own).
"""

from __future__ import annotations

from dataclasses import replace

from spiral.backends_config import BackendsConfig
from spiral.errors import SpiralError
from spiral.loop import LoopConfig

# name -> the LoopConfig fields that make it that method (budgets come from the run's config).
METHODS: dict[str, dict] = {
    "oneshot": {"method": "oneshot"},
    "stepwise": {"method": "stepwise"},
    "closed-loop": {"method": "closed-loop"},
    "closed-loop-no-inner": {"method": "closed-loop", "inner_loop": False},
    "closed-loop-no-outer": {"method": "closed-loop", "outer_loop": False},
    "closed-loop-no-goal-check": {"method": "closed-loop", "goal_check": False},
    "closed-loop-no-memory": {"method": "closed-loop", "use_memory": False},
}
# Agents that carry state from one call to the next (the symbolic planner counts its calls to draw
# new landing spots on a replan) are built afresh for every episode, so an episode's result does not
# depend on which episodes the same worker ran before it: a resumed or sharded run then gives the
# same results as one uninterrupted run. Others (API clients, local models) are built once per worker.
FRESH_PER_EPISODE = {"symbolic", "lm", "oracle"}  # lm: its language model is loaded once per process


def parse_methods(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise SpiralError(f"--methods names no method; known methods: {', '.join(METHODS)}")
    for n in names:
        if n not in METHODS:
            raise SpiralError(f"unknown method {n!r}; known methods: {', '.join(METHODS)}")
    if len(set(names)) != len(names):
        raise SpiralError(f"--methods names a method twice: {text}")
    return names


def loop_config(method: str, budgets: LoopConfig) -> LoopConfig:
    """The method's LoopConfig, with the run's budgets (K, R, generation budget, seed)."""
    if method not in METHODS:
        raise SpiralError(f"unknown method {method!r}; known methods: {', '.join(METHODS)}")
    return replace(
        budgets, **({"inner_loop": True, "outer_loop": True, "goal_check": True, "use_memory": True} | METHODS[method])
    )


def needs_critic(method: str) -> bool:
    return METHODS[method]["method"] == "closed-loop"


# The name bench code and its tests know the backends config by.
Backends = BackendsConfig


class AgentCache:
    """One worker's agents: shared across episodes unless they must be fresh (see FRESH_PER_EPISODE)."""

    def __init__(self, backends: BackendsConfig):
        self.backends, self._planner, self._critic = backends, None, None

    def planner(self, seed: int):
        b = self.backends
        if b.planner in FRESH_PER_EPISODE or ":" in b.planner:
            return b.planner_agent(seed)
        self._planner = self._planner or b.planner_agent(seed)
        return self._planner

    def critic(self):
        b = self.backends
        if b.critic in FRESH_PER_EPISODE or ":" in b.critic:
            return b.critic_agent()
        self._critic = self._critic or b.critic_agent()
        return self._critic
