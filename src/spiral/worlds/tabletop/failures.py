"""Labelled failure clips: the ways a world model gets a step wrong, made on purpose.

Each maker takes the step's start scene, its action and the ground-truth target, and returns the
scene at every frame plus the name of the object to paint on top. They give a critic the negative
examples it must learn to spot: the motion stops short, the wrong object moves, an object vanishes,
the rest of the table drifts, an object doubles or changes colour.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from spiral.types import Critique, FailureKind, Verdict
from spiral.worlds.tabletop.actions import (
    Action,
    Target,
    describe_postcondition,
    postcondition_holds,
    sample_target,
    smoothstep,
    trajectory,
)
from spiral.worlds.tabletop.render import render_motion
from spiral.worlds.tabletop.scene import COLOURS, Scene, validity_errors

# Objects that drift move this far over the clip (table units): several pixels at 64x64, far more
# than the oracle's tolerance for "did not move", yet small enough to look like slow drift.
DRIFT_DISTANCE = (0.05, 0.1)


@dataclass(frozen=True)
class FailureClip:
    kind: str  # one of FAILURE_KINDS
    scenes: tuple[Scene, ...]
    on_top: str | None

    def render(self, size: int) -> np.ndarray:
        return render_motion(self.scenes, size, self.on_top)


def incomplete(scene: Scene, action: Action, target: Target, n: int, rng: np.random.Generator) -> FailureClip | None:
    """The subject sets off but stops between a fifth and three fifths of the way."""
    stop = rng.uniform(0.2, 0.6)
    start = scene.get(action.subject)
    x, y = start.x + stop * (target.x - start.x), start.y + stop * (target.y - start.y)
    end = Target(round(x, 4), round(y, 4))
    frames = trajectory(scene, action, end, n)
    if postcondition_holds(frames[-1], action) or validity_errors(frames[-1]):
        return None
    return FailureClip("incomplete", tuple(frames), action.subject)


def wrong_object(scene: Scene, action: Action, target: Target, n: int, rng: np.random.Generator) -> FailureClip | None:
    """Another free object does the move; the named subject stays put."""
    others = [o for o in scene.objects if o.name not in action.named_objects() and scene.is_clear(o.name) and o.on is None]
    rng.shuffle(others)
    relation, anchor = (action.relation, action.anchor) if action.relation != "on" else ("in", "centre")
    for other in others:
        # A wrong "put" moves another object to the table centre: the base may not fit it.
        swapped = Action(other.name, relation, anchor)
        wrong_target = sample_target(scene, swapped, rng)
        if wrong_target is not None:
            return FailureClip("wrong_object", tuple(trajectory(scene, swapped, wrong_target, n)), other.name)
    return None


def vanish(scene: Scene, action: Action, target: Target, n: int, rng: np.random.Generator) -> FailureClip | None:
    """The subject (or, half the time, a bystander) disappears part way through the clip."""
    frames = trajectory(scene, action, target, n)
    bystanders = [o.name for o in scene.objects if o.name not in action.named_objects() and scene.is_clear(o.name)]
    victim = action.subject if not bystanders or rng.random() < 0.5 else str(rng.choice(bystanders))
    gone_from = int(rng.integers(1, n - 1))
    out = [f if k < gone_from else Scene(tuple(o for o in f.objects if o.name != victim)) for k, f in enumerate(frames)]
    return FailureClip("vanish", tuple(out), action.subject if victim != action.subject else None)


def drift(scene: Scene, action: Action, target: Target, n: int, rng: np.random.Generator) -> FailureClip | None:
    """The step itself succeeds, but untouched objects slide away with it (global drift)."""
    frames = trajectory(scene, action, target, n)
    movers = [o for o in scene.objects if o.name not in action.named_objects() and o.on is None and scene.is_clear(o.name)]
    if not movers:
        return None
    count = int(rng.integers(1, len(movers) + 1))
    chosen = [movers[i] for i in rng.permutation(len(movers))[:count]]
    offsets = {}
    for o in chosen:
        for _ in range(10):  # a drift clamped at the table edge must still be a visible drift
            angle, dist = rng.uniform(0, 2 * np.pi), rng.uniform(*DRIFT_DISTANCE)
            dx = float(np.clip(o.x + dist * np.cos(angle), o.half, 1 - o.half)) - o.x
            dy = float(np.clip(o.y + dist * np.sin(angle), o.half, 1 - o.half)) - o.y
            if np.hypot(dx, dy) >= DRIFT_DISTANCE[0]:
                offsets[o.name] = (dx, dy)
                break
    if not offsets:
        return None
    out = []
    for k, f in enumerate(frames):
        s = smoothstep(k / (n - 1))
        for name, (dx, dy) in offsets.items():
            start = scene.get(name)
            f = f.moved(name, start.x + s * dx, start.y + s * dy, None)
        out.append(f)
    return FailureClip("drift", tuple(out), action.subject)


def duplicate(scene: Scene, action: Action, target: Target, n: int, rng: np.random.Generator) -> FailureClip | None:
    """The subject arrives, but a copy of it stays behind at the start (a hallucinated object)."""
    ghost = replace(scene.get(action.subject), on=None)
    if math.dist(ghost.pos, (target.x, target.y)) < 2 * ghost.radius:
        return None  # the copy would overlap the arriving subject
    frames = trajectory(scene, action, target, n)
    appears = int(rng.integers(1, n - 1))
    out = [f if k < appears else Scene(f.objects + (ghost,)) for k, f in enumerate(frames)]
    # No object on top: the copy shares the subject's name, and painting "the subject" last would
    # paint only one of the two.
    return FailureClip("duplicate", tuple(out), None)


def colour_change(scene: Scene, action: Action, target: Target, n: int, rng: np.random.Generator) -> FailureClip | None:
    """The subject reaches its target but turns into a colour no object in the scene has."""
    free = [c for c in COLOURS if scene.by_colour(c) is None]
    if not free:
        return None
    new_colour = str(rng.choice(free))
    frames = trajectory(scene, action, target, n)
    changes = int(rng.integers(1, n))
    out = []
    for k, f in enumerate(frames):
        if k >= changes:
            f = Scene(tuple(replace(o, colour=new_colour) if o.name == action.subject else o for o in f.objects))
        out.append(f)
    return FailureClip("colour_change", tuple(out), None)


FailureMaker = Callable[[Scene, Action, Target, int, np.random.Generator], "FailureClip | None"]
FAILURE_MAKERS: dict[str, FailureMaker] = {
    "incomplete": incomplete,
    "wrong_object": wrong_object,
    "vanish": vanish,
    "drift": drift,
    "duplicate": duplicate,
    "colour_change": colour_change,
}
FAILURE_KINDS = tuple(FAILURE_MAKERS)


def make_failure(
    scene: Scene, action: Action, target: Target, n: int, rng: np.random.Generator, kind: str | None = None
) -> FailureClip | None:
    """A failure of the given kind (or a random feasible one); None when no kind fits this step."""
    kinds = [kind] if kind is not None else [str(k) for k in rng.permutation(FAILURE_KINDS)]
    for k in kinds:
        clip = FAILURE_MAKERS[k](scene, action, target, n, rng)
        if clip is not None:
            return clip
    return None


# What each made-on-purpose failure is, in the critic's terms, with the feedback a perfect critic
# would give. {s} is the subject, {post} the postcondition that does not hold.
FAILURE_LABELS: dict[str, tuple[Verdict, FailureKind, str]] = {
    "incomplete": (Verdict.LOCAL_FAILURE, FailureKind.INCOMPLETE, "the {s} stopped short: it is not true that {post}"),
    "wrong_object": (Verdict.LOCAL_FAILURE, FailureKind.WRONG_OBJECT, "another object moved instead of the {s}"),
    "vanish": (Verdict.GLOBAL_DRIFT, FailureKind.PHYSICAL_VIOLATION, "an object vanished during the step"),
    "drift": (Verdict.GLOBAL_DRIFT, FailureKind.WRONG_OBJECT, "objects the step does not name drifted away"),
    "duplicate": (Verdict.GLOBAL_DRIFT, FailureKind.HALLUCINATED_OBJECT, "a second {s} appeared"),
    "colour_change": (Verdict.LOCAL_FAILURE, FailureKind.PHYSICAL_VIOLATION, "the {s} changed colour"),
}


def ground_truth_critique(action: Action, failure: str | None) -> Critique:
    """The annotation of a simulator clip, known exactly: success, or the failure it was made with."""
    post = describe_postcondition(action)
    if failure is None:
        return Critique(1.0, Verdict.SUCCESS, FailureKind.NONE, f"done: {post}, and nothing else changed")
    verdict, kind, feedback = FAILURE_LABELS[failure]
    return Critique(0.0, verdict, kind, feedback.format(s=action.subject, post=post))
