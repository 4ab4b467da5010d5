"""CriticAgent backed by any OpenAI-compatible vision chat API (OpenAI, vLLM, Ollama, ...).

The model sees the step (instruction, pre/postcondition), `key_frames` frames of the clip (the
first, evenly spaced ones, the last) and memory.summary() (prompts/critic.yaml) and answers in
JSON; unusable answers are repaired a bounded number of times, then AgentOutputError.
"""

from __future__ import annotations

import numpy as np

from spiral.agents.chat import ChatClient, ChatConfig
from spiral.agents.parsing import ask_critique
from spiral.agents.prompts import load_prompt
from spiral.errors import SpiralError
from spiral.memory import WorldMemory
from spiral.types import Clip, Critique, Step


class OpenAICriticAgent:
    name = "openai"

    def __init__(self, config: ChatConfig, key_frames: int = 4, prompt: str = "critic"):
        if key_frames < 2:
            raise SpiralError(f"key_frames must be >= 2 (the first and the last frame), got {key_frames}")
        self.config, self.key_frames = config, key_frames
        self.client = ChatClient(config)
        self.prompt = load_prompt(prompt)

    def __repr__(self) -> str:
        return f"OpenAICriticAgent({self.client!r}, key_frames={self.key_frames})"

    def reset(self, goal: str, frame: np.ndarray) -> None:
        """Nothing carries over from one episode to the next."""

    def critique(self, step: Step, clip: Clip, memory: WorldMemory) -> Critique:
        return ask_critique(self.client, self.prompt, step, clip, memory, self.key_frames)
