"""CriticAgent backed by a local `transformers` model, given by its folder; meant for a
vision-language model (a text-only model gets the frames as "not available" notes and can only
judge from the step and memory; see agents/hf_chat.py).

Same prompt (prompts/critic.yaml), key-frame choice, JSON validation and bounded repair as the
API critic.

    critic = HFCriticAgent("models/Qwen2.5-VL-3B-Instruct", key_frames=4, device="auto")
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spiral.agents.hf_chat import HFChatConfig, HFChatModel
from spiral.agents.parsing import ask_critique
from spiral.agents.prompts import load_prompt
from spiral.errors import SpiralError
from spiral.memory import WorldMemory
from spiral.types import Clip, Critique, Step


class HFCriticAgent:
    name = "hf"

    def __init__(self, model_path: str | Path, key_frames: int = 4, prompt: str = "critic", **options):
        """`options` are HFChatConfig fields: max_new_tokens, max_repairs, device, dtype."""
        if key_frames < 2:
            raise SpiralError(f"key_frames must be >= 2 (the first and the last frame), got {key_frames}")
        self.key_frames = key_frames
        self.model = HFChatModel(HFChatConfig(model_path=str(model_path), **options))
        self.prompt = load_prompt(prompt)

    def __repr__(self) -> str:
        return f"HFCriticAgent({self.model!r}, key_frames={self.key_frames})"

    def reset(self, goal: str, frame: np.ndarray) -> None:
        """Nothing carries over from one episode to the next."""

    def critique(self, step: Step, clip: Clip, memory: WorldMemory) -> Critique:
        return ask_critique(self.model, self.prompt, step, clip, memory, self.key_frames)
