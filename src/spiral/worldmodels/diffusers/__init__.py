"""Real TI2V backbones through diffusers: Wan2.1/2.2 I2V, CogVideoX I2V, LTX-Video (I2V and
condition), HunyuanVideo I2V. Needs the `diffusers` extra: pip install 'spiral-actwm[diffusers]'."""

from spiral.worldmodels.diffusers.backbones import BACKBONES, Backbone, backbone
from spiral.worldmodels.diffusers.model import DiffusersConfig, DiffusersWorldModel, make_diffusers_world_model
from spiral.worldmodels.diffusers.sde import DiffusersRollout, ddim_step_with_logprob, rescore, sample_with_logprob

__all__ = [
    "BACKBONES",
    "Backbone",
    "DiffusersConfig",
    "DiffusersRollout",
    "DiffusersWorldModel",
    "backbone",
    "ddim_step_with_logprob",
    "make_diffusers_world_model",
    "rescore",
    "sample_with_logprob",
]
