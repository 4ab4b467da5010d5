"""Clip checks for the tabletop world: did the step happen, and did anything else happen?

Every frame of the clip is read by the oracle (pixels only). Objects are tracked by colour from the
start frame (every object has its own colour). The report says whether the postcondition holds at
the end, what moved, vanished, appeared, doubled or changed, how smooth the subject's motion was and
how much the frames flicker; `critique` turns it into the critic's verdict.

Occlusion is not disappearance: an object that cannot be seen while an object that moved covers
where it was last seen (the subject carried over it, or set down on it) is "hidden", keeps its last
seen position, and is not reported as vanished. The subject itself is always on top, never hidden.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from spiral.errors import SpiralError
from spiral.types import Critique, FailureKind, Verdict
from spiral.worlds.tabletop.actions import (
    DIRECTIONS,
    REGION_MARGIN,
    REGIONS,
    Action,
    describe_postcondition,
    postcondition_holds,
    smoothstep,
)
from spiral.worlds.tabletop.oracle import Detection, detect, read_scene, scene_from_detections
from spiral.worlds.tabletop.scene import GAP, Scene, collides

# An object "moved" when its centre shifted more than this many table units, or pixels when that is
# more: readings are accurate to ~0.2 px (0.5 px under blur or occlusion), and the smallest drift
# the failure makers produce is 0.05 of the table (1.6 px at 32x32).
MOVE_TOL, MOVE_TOL_PX = 0.025, 1.2
# An object counts as possibly hidden under another when the other's footprint holds its own but for
# a ring this thin (pixels): a base's ring under a smaller object can be under a pixel at 32x32.
COVER_SLACK_PX = 1.0
# ... and one with another object on it (read from its rim alone) may move this many times more.
OCCLUDED_TOL_FACTOR = 2.0
# A detection this good is trusted for "a second copy appeared" or "a new colour appeared"; weaker
# ones may be seams or noise.
SURE_FIT = 0.6
# Evidence must last: an object missing, extra or doubled in this many frames (or in the last one).
PERSIST_FRAMES = 2
# A frame where fewer than this fraction of the visible start objects are found is unreadable.
READABLE_FRACTION = 0.5
# Flicker: mean absolute difference (grey levels) between consecutive frames on the background
# (pixels far from every object). A pair this much above the quiet pairs (the 25th percentile) is a
# burst; quiet pairs above FLICKER_MAX_MAE mean every frame is too noisy to trust (noise sigma ~22).
FLICKER_BURST_MAE, FLICKER_MAX_MAE = 8.0, 25.0
# Smoothness below this is a teleport (see `smoothness`).
SMOOTH_MIN = 0.5
# Two or more untouched objects drifting means the world no longer matches the plan.
DRIFT_OBJECTS = 2


@dataclass(frozen=True)
class ClipReport:
    """What the oracle saw in one clip. Object lists hold names ("red square") from the start frame."""

    action: Action
    num_frames: int
    start: Scene  # read from frame 0
    end: Scene  # read from the last frame; hidden objects at their last seen place
    precondition: bool  # the named objects are in the start frame
    postcondition: bool  # the action's postcondition holds in `end`
    subject_moved: bool
    subject_distance: float  # table units, start to end
    progress: float  # fraction of the way to the goal the subject covered, in [0, 1]
    vanished: tuple[str, ...]
    duplicated: tuple[str, ...]
    appeared: tuple[str, ...]  # names of new objects ("orange circle")
    changed_colour: tuple[str, ...]
    changed_shape: tuple[str, ...]
    collateral_moved: tuple[str, ...]  # objects other than the subject that moved
    crowded: tuple[str, ...]  # objects whose footprint the subject ends up inside (beyond read error; scene.collides)
    hidden: tuple[str, ...]  # not visible at the end, plausibly under another object
    unreadable_frames: tuple[int, ...]
    flicker: float  # VBench temporal flickering score, in [0, 1]; see `flicker_score`
    flicker_burst: float  # worst background MAE jump over the quiet frame pairs, grey levels
    background_mae: float  # background MAE of the quiet frame pairs (25th percentile), grey levels
    smoothness: float  # of the subject's motion, in [0, 1]; see `smoothness`

    @property
    def teleported(self) -> bool:
        return self.smoothness < SMOOTH_MIN

    @property
    def low_quality(self) -> bool:
        return bool(self.unreadable_frames) or self.flicker_burst > FLICKER_BURST_MAE or self.background_mae > FLICKER_MAX_MAE

    @property
    def hallucinated(self) -> tuple[str, ...]:
        return self.duplicated + self.appeared

    @property
    def physical(self) -> tuple[str, ...]:
        subject = (self.action.subject,) if self.teleported else ()
        return self.vanished + self.changed_colour + self.changed_shape + subject + self.crowded

    @property
    def ok(self) -> bool:
        return self.postcondition and self.failure_kind == FailureKind.NONE

    @property
    def failure_kind(self) -> FailureKind:
        if not self.precondition:
            return FailureKind.PRECONDITION_UNMET
        if self.num_frames - 1 in self.unreadable_frames:  # the end state cannot be judged
            return FailureKind.LOW_QUALITY
        if self.hallucinated:
            return FailureKind.HALLUCINATED_OBJECT
        if self.physical:
            return FailureKind.PHYSICAL_VIOLATION
        if self.collateral_moved:
            return FailureKind.WRONG_OBJECT
        if not self.postcondition:
            return FailureKind.INCOMPLETE
        if self.low_quality:
            return FailureKind.LOW_QUALITY
        return FailureKind.NONE

    @property
    def verdict(self) -> Verdict:
        if self.ok:
            return Verdict.SUCCESS
        drifted = len(self.collateral_moved) >= DRIFT_OBJECTS or self.vanished or self.appeared or self.duplicated
        return Verdict.GLOBAL_DRIFT if drifted or not self.precondition else Verdict.LOCAL_FAILURE

    @property
    def score(self) -> float:
        """1.0 for a clean success, lower for every problem: the postcondition (or 0.6 x progress
        without it), times 0.3 per hallucinated or physically impossible event, 0.6 per object moved
        by mistake, 0.7 for low quality, and 0.8 + 0.2 x smoothness."""
        if not self.precondition:
            return 0.0
        task = 1.0 if self.postcondition else 0.6 * self.progress
        integrity = 0.3 ** (len(self.hallucinated) + len(self.physical)) * 0.6 ** len(self.collateral_moved)
        quality = 0.7 if self.low_quality else 1.0
        return float(np.clip(task * integrity * quality * (0.8 + 0.2 * self.smoothness), 0.0, 1.0))

    @property
    def failure_reasons(self) -> list[str]:
        """Every reason the clip failed (it may have several), as short labels to count over many
        clips; `feedback` words the same checks for the planner. The subject's own problems are
        apart from the other objects': they point at different weaknesses of a model (drawing the
        object it moves, against keeping the rest of the scene)."""
        if not self.precondition:
            return ["a named object is missing from the start frame"]
        subject, out = self.action.subject, []
        for names, what in (
            (self.vanished, "vanished"),
            (self.duplicated, "was doubled"),
            (self.changed_colour, "changed colour"),
            (self.changed_shape, "changed shape"),
        ):
            if subject in names:
                out.append(f"the subject {what}")
            if any(name != subject for name in names):
                out.append(f"another object {what}")
        checks_failed = (
            (bool(self.appeared), "a new object appeared"),
            (self.teleported, "the subject jumped"),
            (bool(self.crowded), "the subject ends inside another object's footprint"),
            (bool(self.collateral_moved), "another object moved"),
            (not self.postcondition, "the postcondition does not hold"),
            (self.low_quality, "noise, flicker or unreadable frames"),
        )
        return out + [what for failed, what in checks_failed if failed]

    @property
    def feedback(self) -> str:
        a, parts = self.action, []
        if not self.precondition:
            missing = [n for n in a.named_objects() if not self.start.has(n)]
            return f"cannot check the step: no {' and no '.join(missing)} in the first frame"
        parts += [f"the {n} vanished" for n in self.vanished]
        parts += [f"a second {n} appeared" for n in self.duplicated]
        parts += [f"a {n} that was not there appeared" for n in self.appeared]
        for n in self.changed_colour:
            parts.append(f"the {n} changed colour")
        for n in self.changed_shape:
            parts.append(f"the {n} changed shape")
        for n in self.crowded:
            parts.append(f"the {a.subject} ends up too close to the {n}, inside its footprint")
        if self.teleported:
            parts.append(f"the {a.subject} jumped instead of moving smoothly (smoothness {self.smoothness:.2f})")
        if self.collateral_moved:
            stayed = "" if self.subject_moved else f", while the {a.subject} itself did not move"
            parts.append(f"the {', the '.join(self.collateral_moved)} moved although the step only moves the {a.subject}{stayed}")
        if not self.postcondition:
            goal = describe_postcondition(a)
            if not self.subject_moved:
                parts.append(f"the {a.subject} did not move, so it is not true that {goal}")
            else:
                parts.append(
                    f"the {a.subject} moved but stopped short ({self.progress:.0%} of the way): it is not true that {goal}"
                )
        if self.unreadable_frames:
            parts.append(f"frames {', '.join(str(t) for t in self.unreadable_frames)} could not be read")
        if self.flicker_burst > FLICKER_BURST_MAE:
            parts.append(f"the video flickers (a jump of {self.flicker_burst:.0f} grey levels between frames)")
        if self.background_mae > FLICKER_MAX_MAE:
            parts.append(f"every frame is noisy ({self.background_mae:.0f} grey levels of change between frames)")
        if not parts:
            return f"done: {describe_postcondition(a)}, and nothing else changed"
        return "; ".join(parts)


def check_postcondition(frame: np.ndarray, action: Action) -> bool:
    """Does the action's postcondition hold in this frame, read from its pixels?"""
    return postcondition_holds(read_scene(frame), action)


def flicker_score(frames: np.ndarray) -> float:
    """VBench temporal flickering: mean over consecutive frame pairs of (255 - MAE) / 255, where MAE is
    the mean absolute difference over all pixels and channels (0..255). 1.0 for a frozen clip."""
    f = frames.astype(np.float32)
    mae = np.abs(f[1:] - f[:-1]).mean(axis=(1, 2, 3))
    return float(np.mean((255.0 - mae) / 255.0))


def smoothness(track: list[tuple[int, float, float]], num_frames: int, tol: float) -> float:
    """How smooth a motion is, in [0, 1], from (frame index, x, y) of the object's centre.

    J = the largest distance covered per frame in one step (frames missing from the track spread
    their step over the gap) / the total path length. The ground-truth motion, eased in and out
    over T frames, has J0 = the largest step of actions.smoothstep (about 1.5 / (T - 1)); a teleport
    puts the whole path in one step, J = 1. smoothness = clip(1 - (J - J0) / (1 - J0), 0, 1): 1 for
    motion at least as even as the ground truth, 0 for a jump. Paths shorter than `tol` and clips
    under 3 frames are smooth by definition (there is nothing to judge)."""
    pts = np.asarray(track, dtype=np.float64).reshape(-1, 3)
    if len(pts) < 3 or num_frames < 3:
        return 1.0
    steps = np.hypot(*np.diff(pts[:, 1:], axis=0).T)
    length = float(steps.sum())
    if length < tol:
        return 1.0
    j = float((steps / np.diff(pts[:, 0])).max()) / length
    j0 = float(np.max(np.diff([smoothstep(float(v)) for v in np.linspace(0.0, 1.0, num_frames)])))
    return float(np.clip(1.0 - (j - j0) / (1.0 - j0), 0.0, 1.0))


def _goal_distance(start: Scene, action: Action, x: float, y: float) -> float:
    """How far (table units) a subject centred at (x, y) is from where the action wants it."""
    if action.relation == "in":
        x0, x1, y0, y1 = REGIONS[action.anchor]
        m = REGION_MARGIN
        return math.hypot(max(x0 + m - x, 0.0, x - x1 + m), max(y0 + m - y, 0.0, y - y1 + m))
    ref = start.get(action.anchor)
    if action.relation == "on":
        return math.dist((x, y), ref.pos)
    dx, dy = DIRECTIONS[action.relation]
    reach = start.get(action.subject).radius + ref.radius + GAP + 0.025
    return math.dist((x, y), (ref.x + dx * reach, ref.y + dy * reach))


def _covered(dets: list[Detection], seen: Detection, first: dict[str, Detection], n: int, tol: float) -> bool:
    """Could another object be hiding `seen` (as last seen)? Only one that moved can have come over it
    since the start, and its footprint must hold seen's, up to a ring too thin to read."""
    slack = COVER_SLACK_PX / n

    def moved(d: Detection) -> bool:
        return d.colour not in first or math.dist((d.x, d.y), (first[d.colour].x, first[d.colour].y)) > tol

    return any(
        d.colour != seen.colour and moved(d) and max(abs(d.x - seen.x), abs(d.y - seen.y)) + seen.half <= d.half + slack
        for d in dets
    )


def _lies_near(a: Detection, b: Detection) -> bool:
    return math.dist((a.x, a.y), (b.x, b.y)) < max(a.half, b.half)


def _background_mae(frames: np.ndarray, dets: list[list[Detection]]) -> np.ndarray:
    """Mean absolute difference of each consecutive frame pair over pixels far from every object."""
    n = frames.shape[1]
    c = (np.arange(n) + 0.5) / n
    far = np.ones((len(frames), n, n), dtype=bool)
    for t, ds in enumerate(dets):
        for d in ds:
            r = d.half * math.sqrt(2.0) + 2.0 / n
            far[t] &= ~((np.abs(c[None, :] - d.x) < r) & (np.abs(c[:, None] - d.y) < r))
    f = frames.astype(np.float32)
    out = []
    for t in range(len(frames) - 1):
        mask = far[t] & far[t + 1]
        diff = np.abs(f[t + 1] - f[t]).mean(-1)
        out.append(float(diff[mask].mean()) if mask.any() else float(diff.mean()))
    return np.asarray(out)


def _check_clip(frames: np.ndarray) -> np.ndarray:
    if not isinstance(frames, np.ndarray) or frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        got = f"{frames.dtype} array of shape {frames.shape}" if isinstance(frames, np.ndarray) else type(frames).__name__
        raise SpiralError(f"a clip must be a (T, H, W, 3) uint8 RGB array, got {got}")
    if len(frames) < 2:
        raise SpiralError(f"a clip needs at least 2 frames (start and end), got {len(frames)}")
    return frames


def check_clip(frames: np.ndarray, action: Action) -> ClipReport:
    """Check a clip (T, H, W, 3) uint8, frame 0 being the start state, against the action."""
    frames = _check_clip(frames)
    n, last_t = frames.shape[1], len(frames) - 1
    tol = max(MOVE_TOL, MOVE_TOL_PX / n)
    dets = [detect(f) for f in frames]
    start = scene_from_detections(dets[0])
    first = {d.colour: d for d in sorted(dets[0], key=lambda d: d.pixels)}  # largest blob per colour wins
    objs = [first[o.colour] for o in start.objects]

    # Frames whose background jumps in both pairs around them (or the last pair) are bursts.
    mae = _background_mae(frames, dets)
    quiet = float(np.percentile(mae, 25))  # the baseline, even when most pairs flicker
    jump = mae - quiet
    burst = {t for t in range(1, last_t + 1) if jump[t - 1] > FLICKER_BURST_MAE and (t == last_t or jump[t] > FLICKER_BURST_MAE)}

    last = {d.colour: d for d in objs}
    track: dict[str, list[tuple[int, float, float]]] = {d.colour: [] for d in objs}
    missing: dict[str, list[int]] = {d.colour: [] for d in objs}
    unreadable, extra, doubled = [], {}, {}
    for t, ds in enumerate(dets):
        expected, found = 0, 0
        for o in objs:
            mine = [d for d in ds if d.colour == o.colour]
            prev = last[o.colour]
            if mine:
                d = min(mine, key=lambda d: math.dist((d.x, d.y), (prev.x, prev.y)))
                last[o.colour] = d
                expected, found = expected + 1, found + 1
                if t not in burst:
                    track[o.colour].append((t, d.x, d.y))
                if sum(m.fit >= SURE_FIT for m in mine) >= 2:
                    doubled.setdefault(o.colour, []).append(t)
            elif o.name == action.subject or not _covered(ds, prev, first, n, tol):  # the subject is always on top
                expected += 1
                missing[o.colour].append(t)
        if found < READABLE_FRACTION * expected or (t in burst and t == last_t):
            unreadable.append(t)
        for d in ds:
            if d.colour not in last and d.fit >= SURE_FIT:
                extra.setdefault(d.colour, []).append((t, d))
    bad = set(unreadable) | burst

    def persists(ts: list[int]) -> bool:
        good = [t for t in ts if t not in bad]
        return last_t in good or len(good) >= PERSIST_FRAMES

    seen_last = {d.colour for d in dets[-1]}
    final = {o.colour: last[o.colour] for o in objs if o.colour in seen_last}  # the tracked copy, not a duplicate
    vanished = [o for o in objs if persists(missing[o.colour])]
    hidden = [o for o in objs if o.colour not in final and o not in vanished]
    appeared = {c: hits[-1][1] for c, hits in extra.items() if persists([t for t, _ in hits])}
    # A vanished object whose shape turns up in a new colour where it was has changed colour.
    changed_colour, recoloured = [], []
    for o in list(vanished):
        prev = last[o.colour]
        near = [
            d
            for d in appeared.values()
            if d.shape == o.shape and (o.name == action.subject or math.dist((d.x, d.y), (prev.x, prev.y)) < 2 * prev.half)
        ]
        if near:
            changed_colour.append(o)
            vanished.remove(o)
            recoloured.append(appeared.pop(min(near, key=lambda d: math.dist((d.x, d.y), (prev.x, prev.y))).colour))
    # Shapes are judged only on objects with nothing on them (a thin ring says little about shape).
    clear = [
        o
        for o in objs
        if o.colour in final and not any(d.colour != o.colour and _lies_near(d, final[o.colour]) for d in dets[-1])
    ]
    changed_shape = [o for o in clear if final[o.colour].shape != o.shape and final[o.colour].fit >= SURE_FIT]
    # The end state: every start object where it was last seen (the tracked copy, not a duplicate),
    # whatever appeared, and objects that changed colour under their new colour.
    end = scene_from_detections(
        [last[o.colour] for o in objs if o not in vanished + changed_colour] + list(appeared.values()) + recoloured
    )

    subject = next((o for o in objs if o.name == action.subject), None)
    precondition = all(start.has(name) for name in action.named_objects())

    # An object with another on it is read from its rim alone: give its position twice the slack.
    def shifted(o: Detection) -> float:
        covered = any(d.colour != o.colour and _lies_near(d, e) for e in (o, final[o.colour]) for d in dets[0] + dets[-1])
        return math.dist((o.x, o.y), (final[o.colour].x, final[o.colour].y)) / (OCCLUDED_TOL_FACTOR if covered else 1.0)

    moved = [o.name for o in objs if o is not subject and o.colour in final and shifted(o) > tol]
    crowded = _crowded(start, end, action.subject)
    post = precondition and postcondition_holds(end, action)
    distance, progress, smooth = 0.0, 1.0 if post else 0.0, 1.0
    if precondition and subject is not None:
        now = last[subject.colour]
        distance = math.dist((subject.x, subject.y), (now.x, now.y))
        d0 = _goal_distance(start, action, subject.x, subject.y)
        if not post and d0 > tol:
            progress = float(np.clip(1.0 - _goal_distance(start, action, now.x, now.y) / d0, 0.0, 1.0))
        smooth = smoothness(track[subject.colour], len(frames), tol)
    return ClipReport(
        action=action,
        num_frames=len(frames),
        start=start,
        end=end,
        precondition=precondition,
        postcondition=post,
        subject_moved=distance > tol,
        subject_distance=distance,
        progress=progress,
        vanished=tuple(o.name for o in vanished),
        duplicated=tuple(o.name for o in objs if persists(doubled.get(o.colour, []))),
        appeared=tuple(d.name for d in appeared.values()),
        changed_colour=tuple(o.name for o in changed_colour),
        changed_shape=tuple(o.name for o in changed_shape),
        collateral_moved=tuple(moved),
        crowded=crowded,
        hidden=tuple(o.name for o in hidden),
        unreadable_frames=tuple(unreadable),
        flicker=flicker_score(frames),
        flicker_burst=float(max(0.0, jump.max())),
        background_mae=quiet,
        smoothness=smooth,
    )


def _crowded(start: Scene, end: Scene, subject: str) -> tuple[str, ...]:
    """Objects on the table the subject ends up overlapping, unless they already did at the start:
    the next plan could not start from such a scene, nor the oracle read either object whole."""
    if not end.has(subject) or end.get(subject).on is not None:
        return ()
    moved = end.get(subject)
    before = start.get(subject) if start.has(subject) else None

    def was_crowded(name: str) -> bool:
        return before is not None and start.has(name) and collides(before, start.get(name))

    return tuple(
        o.name for o in end.objects if o.on is None and o.name != subject and collides(moved, o) and not was_crowded(o.name)
    )


def critique(frames: np.ndarray, action: Action) -> Critique:
    """The oracle critic's judgement of a clip (see ClipReport for how it is reached)."""
    report = check_clip(frames, action)
    return Critique(score=report.score, verdict=report.verdict, failure_kind=report.failure_kind, feedback=report.feedback)
