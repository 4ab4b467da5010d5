"""Which world model, planner and critic a command uses, and where its model-backed agents are
served: one config for `spiral run`, `spiral bench run` and (its planner part) `spiral bench plans`,
whose fields are their flags (--planner, --critic-model, ...).

The shared agent settings (--agent-model, --base-url, --api-key-env) are both agents' defaults;
--planner-* and --critic-* give one agent its own, e.g. an API planner beside the embedded learned
critic, or a planner and a critic on two servers. The learned critic's weights come from
--critic-model only: --agent-model names a chat model, never a weights file.

A backend named `module:callable` is your own: the callable is called with no arguments and returns
the world model, planner or critic (tests inject fakes so). `check()` refuses what cannot work
before any model loads.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path

from spiral.agents.hf_chat import HFChatConfig, check_device_dtype
from spiral.backends import (
    CRITICS,
    PLANNERS,
    WORLD_MODEL_OPTIONS_HELP,
    WORLD_MODELS,
    check_critic_threshold,
    check_world_model_options,
    make_critic,
    make_planner,
    make_world_model,
    need_model,
)
from spiral.config import option, option_from, parse_key_values
from spiral.errors import SpiralError

MODEL_AGENTS = ("openai", "hf")  # the agents that talk to a chat model named by --agent-model / --<role>-model
# A flag that only some backends read -> (the role it belongs to, those backends). Given to another
# backend it would be ignored, which hides a mistake (a weights file passed to the wrong agent).
READ_BY = {
    "planner_weights": ("planner", ("lm",)),
    "planner_model": ("planner", MODEL_AGENTS),
    "planner_base_url": ("planner", ("openai",)),
    "planner_api_key_env": ("planner", ("openai",)),
    "critic_model": ("critic", ("learned", *MODEL_AGENTS)),
    "critic_base_url": ("critic", ("openai",)),
    "critic_api_key_env": ("critic", ("openai",)),
}


@dataclass(frozen=True)
class AgentServer:
    """One agent's model and server, its own settings over the shared ones."""

    model: str
    base_url: str
    api_key_env: str
    # The flags that set them, for messages: the agent's own ("--planner-model") or the shared one.
    model_flag: str
    url_flag: str
    key_flag: str


@dataclass(frozen=True)
class BackendsConfig:
    """The backends of one command. The first seven fields stay in this order: callers pass them
    positionally (Backends(world_model, path, planner, critic, agent_model, base_url, api_key_env))."""

    world_model: str = option("tabletop", f"world model backend ({', '.join(WORLD_MODELS)}), or module:callable returning one")
    world_model_path: str | None = option(None, "weights file (tabletop) or model folder / hub id (diffusers)")
    planner: str = option(
        "lm",
        "PlanAgent backend: lm (reads plain English), symbolic (the goal grammar and solver, an exact baseline), "
        "openai, hf; or module:callable",
    )
    critic: str = option(
        "learned",
        "CriticAgent backend of the closed loop: learned (the shipped tabletop critic), oracle (the judge's own checks), "
        "openai, hf; or module:callable",
    )
    agent_model: str = option("", "the openai and hf agents' model (openai: a name the server knows; hf: a local folder), "
                              "unless --planner-model / --critic-model give one their own")  # fmt: skip
    base_url: str = option("http://localhost:8000/v1", "OpenAI-compatible server of the openai agents (or of one, "
                           "with --planner-base-url / --critic-base-url)")  # fmt: skip
    api_key_env: str = option("OPENAI_API_KEY", "environment variable holding the openai agents' API key ('' for none)")
    world_model_options: str = option("", WORLD_MODEL_OPTIONS_HELP)
    planner_weights: str = option("", "lm planner: its adapter file ('' = the shipped one)")
    planner_model: str = option("", "openai / hf planner: its model ('' = --agent-model)")
    planner_base_url: str = option("", "openai planner: its server ('' = --base-url)")
    planner_api_key_env: str | None = option(
        None, "openai planner: the variable holding its key (unset = --api-key-env; '' for none)"
    )
    critic_model: str = option("", "openai / hf critic: its model ('' = --agent-model); learned critic: its weights file "
                               "('' = the shipped ones)")  # fmt: skip
    critic_base_url: str = option("", "openai critic: its server ('' = --base-url)")
    critic_api_key_env: str | None = option(
        None, "openai critic: the variable holding its key (unset = --api-key-env; '' for none)"
    )
    critic_threshold: float = option(0.0, "learned critic: the score a clip must reach to pass (0 = the one in its weights)")
    agent_timeout: float = option(60.0, "seconds one answer of an API agent may take in all, before a retry")
    agent_retries: int = option(4, "retries of an API agent's request after 429, 5xx, time-outs and refused connections")
    agent_device: str = option_from(HFChatConfig, "device")
    agent_dtype: str = option_from(HFChatConfig, "dtype")

    def __post_init__(self) -> None:
        if self.agent_timeout <= 0 or self.agent_retries < 0:
            raise SpiralError("--agent-timeout must be > 0 and --agent-retries >= 0")

    def check(self, with_critic: bool = True) -> None:
        """Unknown names, options a backend cannot take, flags no chosen backend reads, a missing
        model, folder or API key: one-line errors before any model loads. `with_critic=False`: the
        methods run have no critic, so its model and key are not needed."""
        for kind, name, known in (("world model", self.world_model, WORLD_MODELS), ("planner", self.planner, PLANNERS),
                                  ("critic", self.critic, CRITICS)):  # fmt: skip
            if ":" in name:
                load_factory(name, kind)
            elif name not in known:
                raise SpiralError(f"unknown {kind} {name!r}; known {kind}s: {', '.join(known)} (or module:callable)")
        check_world_model_options(self.world_model, self.world_model_options_dict())
        check_critic_threshold(self.critic, self.critic_threshold)
        check_device_dtype(self.agent_device, self.agent_dtype)
        roles = ("planner", "critic") if with_critic else ("planner",)
        self._check_flags_are_read(roles)
        for role in roles:
            self._check_agent(role)

    def world_model_options_dict(self) -> dict:
        return parse_key_values(self.world_model_options, "--world-model-options")

    def server(self, role: str) -> AgentServer:
        """The model and server of the planner or the critic. The learned critic's model is its
        weights file, which never comes from --agent-model."""
        own_model, own_url, own_key = (getattr(self, f"{role}_{k}") for k in ("model", "base_url", "api_key_env"))
        shared_model = self.agent_model if getattr(self, role) in MODEL_AGENTS else ""
        return AgentServer(
            own_model or shared_model,
            own_url or self.base_url,
            self.api_key_env if own_key is None else own_key,
            f"--{role}-model" if own_model or not shared_model else "--agent-model",
            f"--{role}-base-url" if own_url else "--base-url",
            "--api-key-env" if own_key is None else f"--{role}-api-key-env",
        )

    def world(self):
        if ":" in self.world_model:
            return load_factory(self.world_model, "world model")()
        return make_world_model(self.world_model, self.world_model_path, **self.world_model_options_dict())

    def planner_agent(self, seed: int):
        if ":" in self.planner:
            return load_factory(self.planner, "planner")()
        s = self.server("planner")
        return make_planner(self.planner, s.model, s.base_url, s.api_key_env, seed, self.planner_weights, self.agent_timeout,
                            self.agent_retries, device=self.agent_device, dtype=self.agent_dtype)  # fmt: skip

    def critic_agent(self):
        if ":" in self.critic:
            return load_factory(self.critic, "critic")()
        s = self.server("critic")
        return make_critic(self.critic, s.model, s.base_url, s.api_key_env, self.critic_threshold, self.agent_timeout,
                           self.agent_retries, device=self.agent_device, dtype=self.agent_dtype)  # fmt: skip

    def _check_flags_are_read(self, roles: tuple[str, ...]) -> None:
        backends = [getattr(self, role) for role in roles]
        if self.agent_model and not set(backends) & set(MODEL_AGENTS):
            which = " nor ".join(f"the {role} ({backend})" for role, backend in zip(roles, backends, strict=True))
            which = f"neither {which} is one" if len(roles) > 1 else f"{which} is not one"
            weights = "; the learned critic's weights go in --critic-model" if "learned" in backends[1:] else ""
            raise SpiralError(f"--agent-model is the model of the openai and hf agents, and {which}: drop it{weights}")
        for name, (role, readers) in READ_BY.items():
            backend = getattr(self, role)
            if role in roles and getattr(self, name) not in ("", None) and backend not in readers:
                raise SpiralError(f"--{name.replace('_', '-')} is read by the {' / '.join(readers)} {role} only, and the "
                                  f"{role} is {backend!r}: drop it, or choose such a --{role}")  # fmt: skip
        if (self.agent_device, self.agent_dtype) != ("auto", "auto") and "hf" not in backends:
            raise SpiralError("--agent-device and --agent-dtype set the hf agents' model, and no agent here is hf: drop them")

    def _check_agent(self, role: str) -> None:
        backend, s = getattr(self, role), self.server(role)
        if backend == "learned" and s.model and not Path(s.model).is_file():
            raise SpiralError(f"--critic-model {s.model}: no such weights file (leave it out for the shipped learned critic)")
        if backend not in MODEL_AGENTS:
            return
        need_model(s.model, backend, role)
        if backend == "hf" and not Path(s.model).expanduser().is_dir():
            raise SpiralError(f"{s.model_flag} {s.model}: no such folder; the hf {role} reads a local model "
                              f"(download one first, e.g. hf download REPO --local-dir {s.model})")  # fmt: skip
        if backend == "openai" and not s.base_url.startswith(("http://", "https://")):
            raise SpiralError(f"{s.url_flag} must start with http:// or https://, got {s.base_url!r}")
        if backend == "openai" and s.api_key_env and not os.environ.get(s.api_key_env):
            raise SpiralError(f"the openai {role}'s API key is missing: set the environment variable {s.api_key_env} "
                              f"(export {s.api_key_env}=...), or pass {s.key_flag} '' for a server that needs no key")  # fmt: skip


def load_factory(spec: str, kind: str):
    module_name, _, attr = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise SpiralError(f"cannot load the {kind} {spec!r} ({err}); use a known name or module:callable") from None
    if not callable(factory):
        raise SpiralError(f"the {kind} {spec!r} is not callable")
    return factory
