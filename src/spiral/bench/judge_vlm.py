"""The VLM judge, for real footage where no oracle can read the scene: an OpenAI-compatible vision
model looks at key frames of the stitched video and says whether the goal was achieved and which
of the accepted steps were carried out (prompts/judge.yaml).

It returns the same EpisodeMetrics as the oracle judge where it can: goal success and step
completion come from the model's answer; flicker and motion smoothness from the pixels; object
identities, drift and action alignment need an oracle and stay None. Build it on its own client
(and preferably another model) than the in-loop critic: a judge that shares the critic's blind
spots would grade the loop's own mistakes as successes.
"""

from __future__ import annotations

import time
from importlib import resources

from spiral.agents.chat import ChatClient, ChatConfig
from spiral.agents.parsing import ValidationError, ask_json, get, key_frame_indices
from spiral.agents.prompts import load_prompt
from spiral.bench.judge import accounting, steps_planned
from spiral.bench.metrics import EpisodeMetrics
from spiral.bench.tasks import Task
from spiral.errors import SpiralError
from spiral.loop import Episode


def judge_prompt():
    return load_prompt(str(resources.files("spiral.bench") / "prompts" / "judge.yaml"))


def verdict_validator(count: int):
    def validate(data: dict) -> tuple[bool, list[bool], str]:
        achieved = get(data, "goal_achieved", bool)
        done = get(data, "steps_done", list)
        if len(done) != count or not all(isinstance(d, bool) for d in done):
            raise ValidationError(f"'steps_done' must be a list of exactly {count} true/false values, got {len(done)} entries")
        return achieved, done, get(data, "reason", str, default="")

    return validate


class VLMJudge:
    name = "vlm"

    def __init__(self, config: ChatConfig | None = None, *, key_frames: int = 6, client=None):
        """`client`: anything with `complete(messages) -> Reply` and `max_repairs` (a ChatClient
        is made from `config` when it is not given)."""
        if key_frames < 2:
            raise SpiralError(f"the judge needs at least 2 key frames (first and last), got {key_frames}")
        if client is None and config is None:
            raise SpiralError("the VLM judge needs a ChatConfig (server and model)")
        self.client = client if client is not None else ChatClient(config)
        self.key_frames, self.prompt = key_frames, judge_prompt()

    def judge(self, task: Task, method: str, episode: Episode) -> EpisodeMetrics:
        began = time.perf_counter()
        video = episode.video()
        steps = [a.instruction for a in episode.accepted] if episode.plans else []
        frames = key_frame_indices(len(video), self.key_frames)
        listed = "\n".join(f"{i + 1}. {s}" for i, s in enumerate(steps)) or "(no steps: the goal was one prompt)"
        messages = self.prompt.messages(
            [video[i] for i in frames], goal=task.goal, steps=listed, count=str(len(steps)),
            frames=", ".join(str(i) for i in frames), total=str(len(video)),
        )  # fmt: skip
        answer = ask_json(self.client.complete, messages, verdict_validator(len(steps)), self.client.max_repairs,
                          self.prompt.repair or None)  # fmt: skip
        achieved, done, _ = answer.value
        total = steps_planned(episode)
        return EpisodeMetrics(
            **accounting(task, method, episode, self.name),
            goal_success=achieved,
            step_completion=(sum(done) / total if total else float(achieved)) if episode.plans else None,
            action_alignment=None, identity_persistence=None, hallucinated_objects=None, collateral_drift=None,
            temporal_consistency=None, subject_smoothness=None,
            judge_tokens=answer.tokens, judge_seconds=time.perf_counter() - began,
        )  # fmt: skip
