"""`learned` CriticAgent for the tabletop world: a small video scorer (learned_net.py) trained by
`spiral train critic` on dataset clips and on world-model rollouts labelled by the oracle. It reads
only the clip's pixels and the instruction; the oracle stays the benchmark's judge.

The score is a calibrated probability that the step succeeded (Platt-scaled on held-back
rollouts). Below the threshold the failure-kind head names what went wrong, the drift head says
whether a retry can fix it (LOCAL_FAILURE) or the plan must be redone (GLOBAL_DRIFT), and the
feedback names the step's objects. The same model is a plain reward callable for GRPO.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open

from spiral.agents.critic.learned_net import KINDS, CriticNet, CriticNetConfig, CriticOutput, TextTable
from spiral.agents.critic.learned_objects import OBJECT_FACTS
from spiral.agents.critic.oracle import step_action
from spiral.errors import SpiralError
from spiral.memory import WorldMemory
from spiral.types import Clip, Critique, FailureKind, Step, Verdict
from spiral.worldmodels.text import TextEncoder, shared_text_encoder
from spiral.worlds.tabletop.actions import describe_postcondition
from spiral.worlds.tabletop.grammar import parse, to_text
from spiral.worlds.tabletop.scene import COLOURS

WEIGHTS_NAME = "tabletop_critic.safetensors"
RECREATE = (
    "make critic   (or: spiral train critic --out runs/critic; cp runs/critic/tabletop_critic.safetensors src/spiral/assets/)"
)

# What to tell the planner or the world model for each predicted kind. {s}: the subject, {a}: the
# anchor, {post}: the step's postcondition.
FEEDBACK: dict[FailureKind, str] = {
    FailureKind.INCOMPLETE: "the {s} does not seem to have got there: it is not true that {post}",
    FailureKind.WRONG_OBJECT: "something other than the {s} seems to have moved (the step moves only the {s})",
    FailureKind.HALLUCINATED_OBJECT: "an object seems to have appeared that was not in the start frame (a second {s}?)",
    FailureKind.PHYSICAL_VIOLATION: "an object seems to have vanished or changed colour or shape, or the {s} jumped",
    FailureKind.LOW_QUALITY: "the video is too noisy or flickers too much to see whether {post}",
}


# The fact heads also say which colour a failure is about: per failure kind, the facts that can
# explain it and how to say so ({c}: the colour, {s}: the subject).
FACT_FEEDBACK: dict[FailureKind, tuple[tuple[str, str], ...]] = {
    FailureKind.PHYSICAL_VIOLATION: (
        ("crowded", "the {s} seems to end inside the {c} object's footprint"),
        ("vanished", "the {c} object seems to have vanished"),
        ("changed", "the {c} object seems to have changed colour or shape"),
    ),
    FailureKind.WRONG_OBJECT: (("moved", "the {c} object seems to have moved (the step moves only the {s})"),),
    FailureKind.HALLUCINATED_OBJECT: (("extra", "a second {c} object seems to have appeared"),),
}
FACT_SURE = 0.5  # a fact head's probability from which it names the object


def object_feedback(kind: FailureKind, objects: torch.Tensor, subject: str) -> str:
    """The failure in the words of the most likely (colour, fact) pair among those that explain
    `kind`, from the fact heads' logits (SLOTS, len(OBJECT_FACTS)); "" when none is likely. The
    subject's own colour is left out: the feedback is about what else went wrong."""
    colours = list(COLOURS)
    own = subject.split()[0] if subject else ""
    best, text = FACT_SURE, ""
    for fact, words in FACT_FEEDBACK.get(kind, ()):
        probs = torch.sigmoid(objects[: len(colours), OBJECT_FACTS.index(fact)])
        for k, prob in enumerate(probs.tolist()):
            if colours[k] != own and prob > best:
                best, text = prob, words.format(c=colours[k], s=subject)
    return text


def default_weights() -> Path:
    return Path(str(resources.files("spiral") / "assets" / WEIGHTS_NAME))


def load_net(path: str | Path | None = None) -> tuple[CriticNet, dict]:
    """The critic network and its metadata from a safetensors export (fp16 on disk, fp32 here)."""
    path = Path(path) if path is not None else default_weights()
    if not path.is_file():
        raise SpiralError(f"missing critic weights: {path}; re-create them with: {RECREATE}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        if "members" in meta:
            raise SpiralError(
                f"critic weights {path} hold an ensemble of critics, which this version does not load; "
                "the commit tagged rejected-variants does"
            )
        net = CriticNet(CriticNetConfig.from_dict(json.loads(meta["config"]), f"critic weights {path}"))
        net.load_state_dict({k: v.float() for k, v in load_file(str(path)).items()})
    except (SafetensorError, KeyError, json.JSONDecodeError, RuntimeError, OSError, TypeError, ValueError) as err:
        raise SpiralError(f"corrupt critic weights {path} ({str(err)[:120]}); re-create them with: {RECREATE}") from None
    return net.eval(), {k: v for k, v in meta.items() if k != "config"}


def canonical(instruction: str) -> str:
    """The canonical wording the critic was trained on, where the grammar can parse the text."""
    try:
        return to_text(parse(instruction))
    except (SpiralError, ValueError):
        return instruction


def _frames(clip) -> torch.Tensor:
    frames = clip.frames if isinstance(clip, Clip) else clip
    x = torch.as_tensor(np.asarray(frames))
    if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[-1] != 3:
        raise SpiralError(f"a clip must be (T, H, W, 3) uint8 frames, got {x.dtype} {tuple(x.shape)}")
    return x


class LearnedCriticAgent:
    """CriticAgent backend `learned`. Load with `LearnedCriticAgent.load()`."""

    name = "learned"

    def __init__(self, net: CriticNet, threshold: float = 0.5, text: TextEncoder | None = None, info: dict | None = None):
        self.net = net.eval()
        self.threshold = threshold
        self.text = text or shared_text_encoder()
        self.info = info or {}

    @classmethod
    def load(cls, path: str | Path | None = None, threshold: float | None = None) -> LearnedCriticAgent:
        """threshold: the score at which a clip passes; by default the one training chose on
        held-back rollouts (best balanced accuracy), or 0.5 for weights that carry none."""
        net, info = load_net(path)
        return cls(net, float(info.get("threshold", 0.5)) if threshold is None else threshold, info=info)

    @torch.no_grad()
    def _outputs(self, clips: Sequence, instructions: Sequence[str]) -> CriticOutput:
        """The network's raw outputs (logits) for one or more clips, one instruction each."""
        table = TextTable.build([canonical(t) for t in instructions], self.text)
        return self.net.score([_frames(c) for c in clips], table)

    def predict(self, clips: Sequence, instructions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(success probability (B,), failure-kind probabilities (B, len(KINDS)), replan probability (B,))."""
        if len(clips) != len(instructions):
            raise SpiralError(f"got {len(clips)} clips but {len(instructions)} instructions")
        if not len(clips):
            return torch.zeros(0), torch.zeros(0, len(KINDS)), torch.zeros(0)
        out = self._outputs(clips, instructions)
        return torch.sigmoid(out.success), torch.softmax(out.kind, dim=-1), torch.sigmoid(out.drift)

    def reward(self, clips: Sequence, instructions: Sequence[str] | str) -> torch.Tensor:
        """A reward per clip in [0, 1] (TRL RewardFunc style: a plain callable). `clips`: Clips or
        (T, H, W, 3) uint8 arrays, or one (B, T, H, W, 3) array; one instruction or one per clip."""
        if isinstance(instructions, str):
            instructions = [instructions] * len(clips)
        return self.predict(list(clips), list(instructions))[0]

    __call__ = reward

    def reset(self, goal: str, frame: np.ndarray) -> None:
        """Nothing carries over from one episode to the next."""

    def critique(self, step: Step, clip: Clip, memory: WorldMemory) -> Critique:
        try:
            action = step_action(step)
            text, subject, anchor, post = to_text(action), action.subject, action.anchor, describe_postcondition(action)
        except (SpiralError, ValueError):  # not tabletop grammar: judge the words as given
            text, subject = step.instruction, step.subject
            anchor, post = (step.targets[0] if step.targets else ""), step.postcondition or "the step is done"
        out = self._outputs([clip], [text])
        p = float(torch.sigmoid(out.success[0]).clamp(0.0, 1.0))
        if p >= self.threshold:
            return Critique(p, Verdict.SUCCESS, FailureKind.NONE, f"looks done: {post}, and nothing else seems to have changed")
        kind = KINDS[1 + int(out.kind[0, 1:].argmax())]  # the most likely way it failed
        verdict = Verdict.GLOBAL_DRIFT if float(torch.sigmoid(out.drift[0])) >= 0.5 else Verdict.LOCAL_FAILURE
        feedback = (
            object_feedback(kind, out.objects[0], subject) or FEEDBACK[kind].format(s=subject, a=anchor, post=post)
        ) + f" (critic score {p:.2f})"
        return Critique(p, verdict, kind, feedback, text if verdict == Verdict.LOCAL_FAILURE else None)
