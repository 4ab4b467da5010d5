"""Methods (the loop's baselines and ablations) and backends, by name.

A method is a LoopConfig: the loop runs every method through the same code, so a method is only a
choice of `method` and the ablation switches. Backends are the names `spiral run` knows
(spiral.backends), or `module:callable` for one of your own: the callable is called with no
arguments and returns the world model, planner or critic (tests use this to inject fakes).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, replace

from spiral.backends import (
    CRITICS,
    PLANNERS,
    WORLD_MODELS,
    check_critic_threshold,
    check_world_model_options,
    make_critic,
    make_planner,
    make_world_model,
)
from spiral.config import parse_key_values
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


@dataclass(frozen=True)
class Backends:
    world_model: str
    world_model_path: str | None
    planner: str
    critic: str
    agent_model: str
    base_url: str
    api_key_env: str
    critic_threshold: float = 0.0  # learned critic: its pass score (0 = the one in its weights)
    world_model_options: str = ""  # KEY=VALUE,... of the world model's sampler / DiffusersConfig
    planner_weights: str = ""  # lm planner: its adapter ('' = the shipped one)
    agent_timeout: float = 60.0  # API agents: seconds one answer may take in all
    agent_retries: int = 4  # API agents: retries of a failed request

    def check(self) -> None:
        """Unknown names, bad world model options and a pass score for a critic without one fail
        here, before any work starts."""
        check_critic_threshold(self.critic, self.critic_threshold)
        check_world_model_options(self.world_model, self.world_model_options_dict())
        for kind, name, known in (("world model", self.world_model, WORLD_MODELS), ("planner", self.planner, PLANNERS),
                                  ("critic", self.critic, CRITICS)):  # fmt: skip
            if ":" in name:
                load_factory(name, kind)
            elif name not in known:
                raise SpiralError(f"unknown {kind} {name!r}; known {kind}s: {', '.join(known)} (or module:callable)")

    def world_model_options_dict(self) -> dict:
        return parse_key_values(self.world_model_options, "--world-model-options")

    def world(self):
        if ":" in self.world_model:
            return load_factory(self.world_model, "world model")()
        return make_world_model(self.world_model, self.world_model_path, **self.world_model_options_dict())

    def planner_agent(self, seed: int):
        if ":" in self.planner:
            return load_factory(self.planner, "planner")()
        return make_planner(self.planner, self.agent_model, self.base_url, self.api_key_env, seed, self.planner_weights,
                            self.agent_timeout, self.agent_retries)  # fmt: skip

    def critic_agent(self):
        if ":" in self.critic:
            return load_factory(self.critic, "critic")()
        return make_critic(self.critic, self.agent_model, self.base_url, self.api_key_env, self.critic_threshold,
                           self.agent_timeout, self.agent_retries)  # fmt: skip


class AgentCache:
    """One worker's agents: shared across episodes unless they must be fresh (see FRESH_PER_EPISODE)."""

    def __init__(self, backends: Backends):
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


def load_factory(spec: str, kind: str):
    module_name, _, attr = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise SpiralError(f"cannot load the {kind} {spec!r} ({err}); use a known name or module:callable") from None
    if not callable(factory):
        raise SpiralError(f"the {kind} {spec!r} is not callable")
    return factory
