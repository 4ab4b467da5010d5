"""PlanAgent backed by any OpenAI-compatible chat API (OpenAI, vLLM, Ollama, ...).

The model sees the goal, the current frame and memory.summary() (prompts/plan.yaml) and answers in
JSON; unusable answers are repaired a bounded number of times (agents/parsing.py), after which
`plan` raises AgentOutputError carrying the last reply for the episode record.
"""

from __future__ import annotations

import numpy as np

from spiral.agents.chat import ChatClient, ChatConfig
from spiral.agents.parsing import ask_plan
from spiral.agents.prompts import load_prompt
from spiral.memory import WorldMemory
from spiral.types import Plan


class OpenAIPlanAgent:
    name = "openai"

    def __init__(self, config: ChatConfig, prompt: str = "plan"):
        self.config = config
        self.client = ChatClient(config)
        self.prompt = load_prompt(prompt)

    def __repr__(self) -> str:
        return f"OpenAIPlanAgent({self.client!r})"

    def reset(self, goal: str, frame: np.ndarray) -> None:
        """Nothing carries over from one episode to the next."""

    def plan(self, goal: str, frame: np.ndarray, memory: WorldMemory) -> Plan:
        return ask_plan(self.client, self.prompt, goal, frame, memory, planner=self.name)
