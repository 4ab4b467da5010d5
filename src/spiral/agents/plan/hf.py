"""PlanAgent backed by a local `transformers` chat model, given by its folder.

Same prompt (prompts/plan.yaml), JSON validation and bounded repair as the API planner; see
agents/hf_chat.py for how vision and text-only models are told apart (a text-only model plans from
memory.summary(), without the frame).

    planner = HFPlanAgent("models/Qwen2.5-1.5B-Instruct", device="auto")
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spiral.agents.hf_chat import HFChatConfig, HFChatModel
from spiral.agents.parsing import ask_plan
from spiral.agents.prompts import load_prompt
from spiral.memory import WorldMemory
from spiral.types import Plan


class HFPlanAgent:
    name = "hf"

    def __init__(self, model_path: str | Path, prompt: str = "plan", **options):
        """`options` are HFChatConfig fields: max_new_tokens, max_repairs, device, dtype."""
        self.model = HFChatModel(HFChatConfig(model_path=str(model_path), **options))
        self.prompt = load_prompt(prompt)

    def __repr__(self) -> str:
        return f"HFPlanAgent({self.model!r})"

    def reset(self, goal: str, frame: np.ndarray) -> None:
        """Nothing carries over from one episode to the next."""

    def plan(self, goal: str, frame: np.ndarray, memory: WorldMemory) -> Plan:
        return ask_plan(self.model, self.prompt, goal, frame, memory, planner=self.name)
