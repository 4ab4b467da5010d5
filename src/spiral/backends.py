"""Backends by name: world models, planners and critics, built from CLI/config values. Unknown
names list the known ones. backends_config.py holds the flags that choose them."""

from __future__ import annotations

from spiral.errors import SpiralError

DIFFUSERS_WORLD_MODELS = ("wan-i2v", "cogvideox-i2v", "ltx-i2v", "ltx-condition", "hunyuan-i2v")
WORLD_MODELS = ("tabletop", *DIFFUSERS_WORLD_MODELS)
WORLD_MODEL_OPTIONS_HELP = (
    "KEY=VALUE,... world model settings: tabletop sampler (guidance_scale, num_inference_steps, shift, noise_level), "
    "or a diffusers backbone's DiffusersConfig (device, dtype, height, width, num_frames, ...)"
)
PLANNERS = ("symbolic", "lm", "openai", "hf")
CRITICS = ("oracle", "learned", "openai", "hf")


def _unknown(kind: str, name: str, known: tuple[str, ...]) -> SpiralError:
    return SpiralError(f"unknown {kind} {name!r}; known {kind}s: {', '.join(known)}")


def make_world_model(name: str, path: str | None = None, **options):
    """`options` are the tabletop model's SamplerConfig fields (guidance_scale, num_inference_steps,
    shift, noise_level) or a diffusers backbone's DiffusersConfig fields (dtype, device, height, ...)."""
    if name == "tabletop":
        from spiral.worldmodels.tabletop import TabletopWorldModel, sampler_from_options

        return TabletopWorldModel.load(path, sampler=sampler_from_options(options))
    if name in DIFFUSERS_WORLD_MODELS:
        from spiral.worldmodels.diffusers import make_diffusers_world_model

        return make_diffusers_world_model(name, path, **options)
    raise _unknown("world model", name, WORLD_MODELS)


def check_world_model_options(name: str, options: dict) -> None:
    """Options a backend cannot take (unknown names, bad values) fail before any model loads."""
    if not options:
        return
    if ":" in name:
        raise SpiralError(
            f"--world-model-options apply to the built-in world models, not to {name!r}: pass settings inside your factory"
        )
    if name == "tabletop":
        from spiral.worldmodels.tabletop import sampler_from_options

        sampler_from_options(options)
    elif name in DIFFUSERS_WORLD_MODELS:
        from spiral.worldmodels.diffusers.model import check_diffusers_options

        check_diffusers_options(options)


def make_planner(
    name: str,
    model: str = "",
    base_url: str = "",
    api_key_env: str = "OPENAI_API_KEY",
    seed: int = 0,
    weights: str = "",
    timeout_s: float = 60.0,
    retries: int = 4,
    device: str = "auto",
    dtype: str = "auto",
):
    """`model`: the openai planner's model name or the hf planner's folder; `weights`: the lm
    planner's adapter ('' = the shipped one); `timeout_s` and `retries`: how long one answer of an
    API planner may take in all, and how often a failed request is retried; `device`, `dtype`: where
    and how the hf planner's model runs."""
    if name == "symbolic":
        from spiral.agents.plan.symbolic import SymbolicPlanAgent

        return SymbolicPlanAgent(seed=seed)
    if name == "lm":
        from spiral.worlds.tabletop.lm_planner import LMPlanAgent

        return LMPlanAgent(adapter=weights or None, seed=seed)
    if name == "openai":
        from spiral.agents.plan.openai import OpenAIPlanAgent

        return OpenAIPlanAgent(_chat_config("planner", model, base_url, api_key_env, timeout_s, retries))
    if name == "hf":
        from spiral.agents.plan.hf import HFPlanAgent

        return HFPlanAgent(need_model(model, name, "planner"), device=device, dtype=dtype)
    raise _unknown("planner", name, PLANNERS)


def make_critic(
    name: str,
    model: str = "",
    base_url: str = "",
    api_key_env: str = "OPENAI_API_KEY",
    threshold: float = 0.0,
    timeout_s: float = 60.0,
    retries: int = 4,
    device: str = "auto",
    dtype: str = "auto",
):
    """`model`: the learned critic's weights file ('' = the shipped ones), the openai critic's model
    name or the hf critic's folder; threshold (learned critic only): the score a clip must reach to
    pass, 0 = the one in its weights. `timeout_s`, `retries`, `device`, `dtype`: as for make_planner."""
    check_critic_threshold(name, threshold)
    if name == "oracle":
        from spiral.agents.critic.oracle import OracleCriticAgent

        return OracleCriticAgent()
    if name == "learned":
        from spiral.agents.critic.learned import LearnedCriticAgent

        return LearnedCriticAgent.load(model or None, threshold=threshold or None)
    if name == "openai":
        from spiral.agents.critic.openai import OpenAICriticAgent

        return OpenAICriticAgent(_chat_config("critic", model, base_url, api_key_env, timeout_s, retries))
    if name == "hf":
        from spiral.agents.critic.hf import HFCriticAgent

        return HFCriticAgent(need_model(model, name, "critic"), device=device, dtype=dtype)
    raise _unknown("critic", name, CRITICS)


def check_critic_threshold(critic: str, threshold: float) -> None:
    if threshold and critic != "learned":
        raise SpiralError(f"--critic-threshold sets the learned critic's pass score; the {critic!r} critic has none: drop it")
    if not 0.0 <= threshold < 1.0:
        raise SpiralError(f"--critic-threshold must be in [0, 1) (0 = the one stored in the weights), got {threshold}")


def observer_for(world_model: str):
    """How the loop reads object states into memory: the tabletop oracle's perception; None for
    real footage (agents then see only the frames)."""
    if world_model != "tabletop":
        return None
    from spiral.memory import ObjectState
    from spiral.worlds.tabletop.actions import cell_of
    from spiral.worlds.tabletop.oracle import read_scene

    def observe(frame):
        return [ObjectState(o.name, round(o.x, 3), round(o.y, 3), cell_of(o.x, o.y), o.on) for o in read_scene(frame).objects]

    return observe


def _chat_config(role: str, model: str, base_url: str, api_key_env: str, timeout_s: float, retries: int):
    from spiral.agents.chat import ChatConfig

    return ChatConfig(base_url, need_model(model, "openai", role), api_key_env, timeout_s=timeout_s, max_retries=retries)


def need_model(model: str, backend: str, role: str) -> str:
    if not model:
        what = "a name the server knows" if backend == "openai" else "a local model folder"
        raise SpiralError(f"the {backend} {role} needs a model ({what}): give --{role}-model, or --agent-model for both agents")
    return model
