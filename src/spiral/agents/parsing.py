"""What every model-backed agent shares: pull the JSON object out of a reply, validate it into a
typed record, and ask again with the validation error when it is unusable (bounded repairs).

The API backends (chat.py) and the local transformers backends (hf_chat.py) both reach this code
through a `complete(messages) -> Reply` function, so repair behaves the same whatever the model.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Generic, Protocol, TypeVar

import numpy as np

from spiral.agents import schemas
from spiral.agents.prompts import Message, Prompt, load_prompt
from spiral.errors import SpiralError
from spiral.memory import WorldMemory
from spiral.types import Clip, Critique, FailureKind, Plan, Step, Verdict

T = TypeVar("T")
_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)
# Reasoning models (Qwen3, DeepSeek-R1) think aloud before answering; braces in there are not the answer.
_THINK = re.compile(r"<think>.*?</think>", re.DOTALL)


class ValidationError(ValueError):
    """The model's answer is unusable; the message is shown to the model so it can fix it."""


class AgentOutputError(SpiralError):
    """The model gave no usable answer within the allowed repairs. `raw` is its last reply and
    `reason` why it was rejected, so the loop can record the failure in the episode."""

    def __init__(self, message: str, *, raw: str, reason: str, tokens: int = 0, attempts: int = 0):
        super().__init__(message)
        self.raw, self.reason, self.tokens, self.attempts = raw, reason, tokens, attempts


@dataclass(frozen=True)
class Reply:
    """One model answer: its text and the tokens spent on it (prompt + completion; 0 if unknown)."""

    text: str
    tokens: int = 0


@dataclass(frozen=True)
class Answer(Generic[T]):
    """A validated answer: the record, the raw reply it came from, tokens spent over every try."""

    value: T
    raw: str
    tokens: int
    repairs: int  # how many times the model had to be asked again


def extract_json(text: str) -> dict:
    """The JSON object in a reply: bare, inside a ``` fence, or surrounded by prose."""
    text = _THINK.sub("", text or "").strip()
    if not text:
        raise ValidationError("the reply is empty; expected a JSON object")
    candidates = [text] + [m.group(1).strip() for m in _FENCE.finditer(text)]
    for cand in candidates:
        try:
            data = json.loads(cand)
        except json.JSONDecodeError:
            continue
        if isinstance(data, dict):
            return data
        raise ValidationError(f"expected a JSON object ({{...}}), got a JSON {type(data).__name__}")
    first_error: json.JSONDecodeError | None = None
    decoder = json.JSONDecoder()
    for start in (m.start() for m in re.finditer(r"\{", text)):
        try:
            data, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError as err:
            first_error = first_error or err
            continue
        if isinstance(data, dict):
            return data
    if first_error is None:
        raise ValidationError("the reply contains no JSON object")
    raise ValidationError(f"the JSON object is malformed: {first_error.msg} (at character {first_error.pos})")


def ask_json(
    complete: Callable[[list[Message]], Reply],
    messages: Sequence[Message],
    validate: Callable[[dict], T],
    max_repairs: int,
    repair: str | None = None,
) -> Answer[T]:
    """Ask, validate, and on a bad answer show the model its reply and the error, at most
    `max_repairs` times. `repair` is the follow-up template (slot {error}); default: chat.yaml's."""
    template = repair if repair is not None else load_prompt("chat").repair
    history, tokens = list(messages), 0
    for attempt in range(max_repairs + 1):
        reply = complete(history)
        tokens += reply.tokens
        try:
            return Answer(validate(extract_json(reply.text)), reply.text, tokens, attempt)
        except ValidationError as err:
            reason = str(err)
        history += [Message("assistant", reply.text), Message("user", template.replace("{error}", reason))]
    raise AgentOutputError(
        f"the model gave no usable answer in {max_repairs + 1} tries; last problem: {reason}",
        raw=reply.text,
        reason=reason,
        tokens=tokens,
        attempts=max_repairs + 1,
    )


def get(data: dict, key: str, kind: type | tuple[type, ...], where: str = "", default: object = ...) -> object:
    """data[key] checked against `kind`; a bool never passes for a number."""
    label = f"{where}field {key!r}" if where else f"field {key!r}"
    if key not in data or data[key] is None:
        if default is not ...:
            return default
        raise ValidationError(f"{label} is missing")
    value = data[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise ValidationError(f"{label} must be {names}, got {json.dumps(value)[:80]}")
    return value


def _canonical(name: str) -> str:
    words = name.lower().split()
    return " ".join(words[1:] if words[:1] == ["the"] else words)


def plan_validator(goal: str, memory: WorldMemory, planner: str) -> Callable[[dict], Plan]:
    """A validator for planner answers. Object names are checked only when memory knows the objects."""
    known = {_canonical(n): n for n in memory.object_names()}

    def name(value: str, where: str) -> str:
        if not known:
            return value.strip()
        if _canonical(value) not in known:
            raise ValidationError(f"{where} names unknown object {value!r}; objects in the scene: {', '.join(known.values())}")
        return known[_canonical(value)]

    def subject_of(instruction: str, where: str) -> str:
        """The object an instruction names first, for a step that left out its subject."""
        text = f" {instruction.lower()} "
        found = sorted((text.find(f" {c} "), n) for c, n in known.items() if f" {c} " in text)
        if not found:
            raise ValidationError(f"{where}field 'subject' is missing and the instruction names no object in the scene")
        return found[0][1]

    def validate(data: dict) -> Plan:
        # Left out, 'feasible' is what the rest of the answer says: steps, or no reason to refuse.
        implied = bool(data.get("steps")) or not str(data.get("reason") or "").strip()
        feasible = get(data, "feasible", bool, default=implied)
        reasoning = get(data, "reasoning", str, default="")
        reason = get(data, "reason", str, default="")
        if not feasible:
            if not reason.strip():
                raise ValidationError("the plan is marked not feasible, so 'reason' must say why")
            return Plan(goal, (), reasoning, planner, feasible=False, reason=reason)
        raw_steps = get(data, "steps", list)  # none: the goal already holds in the scene
        steps = []
        for i, item in enumerate(raw_steps, 1):
            where = f"step {i} "
            if not isinstance(item, dict):
                raise ValidationError(f"step {i} must be a JSON object, got {json.dumps(item)[:80]}")
            instruction = get(item, "instruction", str, where).strip()
            if not instruction:
                raise ValidationError(f"step {i} has an empty instruction")
            targets = get(item, "targets", list, where, default=[])
            if not all(isinstance(t, str) for t in targets):
                raise ValidationError(f"step {i} field 'targets' must be a list of object names")
            steps.append(
                Step(
                    instruction=instruction,
                    subject=name(
                        get(item, "subject", str, where, default=None) or subject_of(instruction, where), f"step {i} subject"
                    ),
                    targets=tuple(name(t, f"step {i} targets") for t in targets),
                    precondition=get(item, "precondition", str, where, default=""),
                    postcondition=get(item, "postcondition", str, where, default=""),
                )
            )
        return Plan(goal, tuple(steps), reasoning, planner, feasible=True, reason=reason)

    return validate


def validate_critique(data: dict) -> Critique:
    score = get(data, "score", (int, float))
    if not 0.0 <= score <= 1.0:
        raise ValidationError(f"field 'score' must be between 0 and 1, got {score}")
    verdicts, kinds = [v.value for v in Verdict], [k.value for k in FailureKind]
    verdict = get(data, "verdict", str)
    if verdict not in verdicts:
        raise ValidationError(f"field 'verdict' must be one of {', '.join(verdicts)}; got {verdict!r}")
    # A success needs no failure kind: null or a missing field reads as 'none'.
    kind = get(data, "failure_kind", str, default=FailureKind.NONE.value if verdict == Verdict.SUCCESS.value else ...)
    if kind not in kinds:
        raise ValidationError(f"field 'failure_kind' must be one of {', '.join(kinds)}; got {kind!r}")
    # A success that names a failure (or the reverse) would send the loop down the wrong branch.
    if (verdict == Verdict.SUCCESS.value) != (kind == FailureKind.NONE.value):
        raise ValidationError("use failure_kind 'none' exactly when the verdict is 'success'")
    refined = get(data, "refined_instruction", str, default=None)
    return Critique(
        score=float(score),
        verdict=Verdict(verdict),
        failure_kind=FailureKind(kind),
        feedback=get(data, "feedback", str),
        refined_instruction=(refined or "").strip() or None,
    )


class ChatBackend(Protocol):
    """What the agents need from a model: one chat turn (answering in `schema`'s shape where the
    backend can enforce it), and how many repairs to allow."""

    max_repairs: int

    def complete(self, messages: list[Message], schema: schemas.ResponseSchema | None = None) -> Reply: ...


def key_frame_indices(total: int, k: int) -> list[int]:
    """First, evenly spaced, last: the frames a critic sees of a `total`-frame clip."""
    return sorted({int(round(x)) for x in np.linspace(0, total - 1, min(k, total))})


def ask_plan(backend: ChatBackend, prompt: Prompt, goal: str, frame: np.ndarray, memory: WorldMemory, planner: str) -> Plan:
    """The planner turn shared by the API and local planners."""
    slots = {
        "goal": goal,
        "objects": ", ".join(memory.object_names()) or "(unknown; read them from the image)",
        "memory": memory.summary(),
    }
    validate = plan_validator(goal, memory, planner)
    complete = partial(backend.complete, schema=schemas.PLAN)
    answer = ask_json(complete, prompt.messages([frame], **slots), validate, backend.max_repairs, prompt.repair or None)
    return replace(answer.value, tokens=answer.tokens)


def ask_critique(backend: ChatBackend, prompt: Prompt, step: Step, clip: Clip, memory: WorldMemory, key_frames: int) -> Critique:
    """The critic turn shared by the API and local critics."""
    total = len(clip.frames)
    if total == 0:
        raise SpiralError(f"cannot critique an empty clip for step {step.instruction!r}")
    frames = key_frame_indices(total, key_frames)
    slots = {
        "instruction": step.instruction,
        "subject": step.subject or "(not given)",
        "targets": ", ".join(step.targets) or "(none)",
        "precondition": step.precondition or "(not given)",
        "postcondition": step.postcondition or "(not given)",
        "objects": ", ".join(memory.object_names()) or "(unknown; read them from the first frame)",
        "memory": memory.summary(),
        "frames": ", ".join(str(i) for i in frames),
        "total": str(total),
        "verdicts": ", ".join(v.value for v in Verdict),
        "failure_kinds": ", ".join(k.value for k in FailureKind),
    }
    messages = prompt.messages([clip.frames[i] for i in frames], **slots)
    complete = partial(backend.complete, schema=schemas.CRITIQUE)
    return ask_json(complete, messages, validate_critique, backend.max_repairs, prompt.repair or None).value
