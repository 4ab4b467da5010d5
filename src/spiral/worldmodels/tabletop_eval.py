"""Single-step quality of a tabletop world model on held-out scenes, judged by the oracle from pixels.

A probe is a start scene no training episode used (seeds from HELDOUT_SEED up; `spiral data make`
seeds its episodes by (seed, index) pairs, a different stream) and one feasible action. Success:
the postcondition holds at the end and nothing else changed (checks.check_clip(...).ok).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from spiral.worldmodels.base import WorldModel
from spiral.worlds.tabletop import checks
from spiral.worlds.tabletop.actions import (
    Action,
    random_action,
    sample_target,
    worth_doing,
)
from spiral.worlds.tabletop.grammar import to_text
from spiral.worlds.tabletop.paraphrase import paraphrase
from spiral.worlds.tabletop.render import render
from spiral.worlds.tabletop.scene import Scene, random_scene

HELDOUT_SEED = 1_000_000


@dataclass(frozen=True)
class Probe:
    scene: Scene
    action: Action
    frame: np.ndarray


@dataclass(frozen=True)
class QualityResult:
    probes: int
    success: float  # share of clips where the step succeeded and nothing else changed
    preserved: float  # share of clips where no object vanished, doubled, appeared or changed identity
    postcondition: float  # share where the postcondition holds, whatever else happened
    seconds_per_clip: float
    passed: tuple[bool, ...] = ()  # per probe, in order: did the step succeed (for paired comparisons)
    # failed clips per reason (checks.ClipReport.failure_reasons), most common first
    reasons: dict[str, int] = field(default_factory=dict)
    texts: tuple[str, ...] = ()  # per probe, in order: the instruction as worded


def random_feasible_action(scene: Scene, rng: np.random.Generator) -> Action | None:
    """A feasible action that is not already done, or None. A scene read off a model's frame may
    hold a single object (only region moves) or none."""
    if not scene.objects:
        return None
    relation = "in" if len(scene.objects) == 1 else None
    for _ in range(50):
        action = random_action(scene, rng, relation)
        if not worth_doing(scene, action):
            continue
        if sample_target(scene, action, rng) is not None:
            return action
    return None


def make_probes(count: int, frame_size: int = 64, seed: int = HELDOUT_SEED, stream: tuple[int, ...] | None = None) -> list[Probe]:
    """Scenes seeded by seed + i (held-out probes), or by (*stream, i) when a stream is given."""
    probes, i = [], 0
    while len(probes) < count:
        rng = np.random.default_rng(seed + i if stream is None else [*stream, i])
        i += 1
        scene = random_scene(rng)
        action = random_feasible_action(scene, rng)
        if action is not None:
            probes.append(Probe(scene, action, render(scene, frame_size)))
    return probes


def chained_probes(wm: WorldModel, probes: list[Probe], seed: int = 0) -> list[Probe]:
    """Second steps, as the closed loop meets most of its steps: each probe's action sampled once
    by `wm`, then a new feasible action on the scene read from that clip's last frame, which is
    the new probe's start frame. Probes whose last frame holds no feasible action are dropped."""
    from spiral.worlds.tabletop.oracle import read_scene

    out = []
    for k, probe in enumerate(probes):
        last = wm.generate(probe.frame, to_text(probe.action), seed=seed * 100_003 + k).frames[-1]
        scene = read_scene(last)
        action = random_feasible_action(scene, np.random.default_rng([seed, k]))
        if action is not None:
            out.append(Probe(scene, action, np.ascontiguousarray(last)))
    return out


def evaluate(wm: WorldModel, probes: list[Probe], wording: str = "canonical", seed: int = 0) -> QualityResult:
    """One sample per probe. wording: "canonical", or a paraphrase split ("train", "heldout")."""
    rng = np.random.default_rng(seed)
    kept = post = 0
    passed: list[bool] = []
    texts: list[str] = []
    reasons: Counter[str] = Counter()
    seconds = 0.0
    for k, probe in enumerate(probes):
        text = to_text(probe.action) if wording == "canonical" else paraphrase(probe.action, rng, wording)
        texts.append(text)
        clip = wm.generate(probe.frame, text, seed=seed * 100_003 + k)
        seconds += clip.seconds
        report = checks.check_clip(clip.frames, probe.action)
        passed.append(bool(report.ok))
        if not report.ok:
            reasons.update(report.failure_reasons)
        post += report.postcondition
        kept += not (report.vanished or report.duplicated or report.appeared or report.changed_colour or report.changed_shape)
    n = len(probes)
    return QualityResult(
        n, sum(passed) / n, kept / n, post / n, seconds / n, tuple(passed), dict(reasons.most_common()), tuple(texts)
    )
