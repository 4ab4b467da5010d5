"""How well the oracle reads scenes and judges clips from pixels, clean and corrupted.

    .venv/bin/python benchmarks/oracle_accuracy.py [--scenes 150] [--steps 30] [--seed 0]

Scene reading: a scene counts as right when every object is found with its colour, shape, size
class, stacking and centre within 1 pixel (for the occluder rows: every object at least half
visible). Clip judgement: ground-truth clips must be judged ok, synthetic failures (the makers in
failures.py, plus a teleport and a flicker burst) must be judged not ok; "kind" is the share of
failures given the expected failure kind. Also the oracle's speed per frame.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from spiral.types import FailureKind
from spiral.worlds.tabletop import corrupt
from spiral.worlds.tabletop.actions import (
    random_action,
    sample_target,
    trajectory,
    worth_doing,
)
from spiral.worlds.tabletop.checks import check_clip
from spiral.worlds.tabletop.failures import FAILURE_KINDS, make_failure
from spiral.worlds.tabletop.oracle import detect, read_scene
from spiral.worlds.tabletop.render import coverage, render, render_motion
from spiral.worlds.tabletop.scene import random_scene

CONDITIONS = {
    "clean": corrupt.Corruption("none"),
    "noise s=12": corrupt.Corruption("noise", 12),
    "blur s=0.8px": corrupt.Corruption("blur", 0.8),
    "jpeg q=85": corrupt.Corruption("jpeg", 85),
    "bar occluder": corrupt.Corruption("bar", 0.1),
}
CLIP_CONDITIONS = ("clean", "noise s=12", "blur s=0.8px")
EXPECTED = {
    "incomplete": FailureKind.INCOMPLETE,
    "wrong_object": FailureKind.WRONG_OBJECT,
    "vanish": FailureKind.PHYSICAL_VIOLATION,
    "drift": FailureKind.WRONG_OBJECT,
    "duplicate": FailureKind.HALLUCINATED_OBJECT,
    "colour_change": FailureKind.PHYSICAL_VIOLATION,
    "teleport": FailureKind.PHYSICAL_VIOLATION,
    "flicker": FailureKind.LOW_QUALITY,
}


def scene_right(scene, frame, n, clean) -> bool:
    got = read_scene(frame)
    hidden = np.abs(frame.astype(int) - clean.astype(int)).sum(-1) > 30 if frame is not clean else None
    for o in scene.objects:
        if hidden is not None:
            cov = coverage(o.shape, o.x, o.y, o.half, n)
            if (cov * hidden).sum() > 0.5 * cov.sum():
                continue  # mostly under the occluder: nobody could read it
        if not got.has(o.name):
            return False
        r = got.get(o.name)
        if r.size != o.size or r.on != o.on or math.dist(r.pos, o.pos) * n > 1.0:
            return False
    return True


def step_cases(count, seed0):
    cases, seed = [], seed0
    while len(cases) < count:
        rng = np.random.default_rng(seed)
        seed += 1
        scene = random_scene(rng, num_objects=int(rng.integers(3, 6)))
        action = random_action(scene, rng)
        if not worth_doing(scene, action):
            continue
        target = sample_target(scene, action, rng)
        if target is not None:
            cases.append((scene, action, target, rng))
    return cases


def clips_for(scene, action, target, rng, n):
    """(kind, frames): the ground truth and every failure that can be made for this step."""
    scenes = trajectory(scene, action, target, 8)
    gt = render_motion(scenes, n, action.subject)
    out = [
        ("ground truth", gt),
        ("teleport", np.stack([gt[0]] * 4 + [gt[-1]] * 4)),
        ("flicker", corrupt.flicker(gt, int(rng.integers(1 << 30)))),
    ]
    for kind in FAILURE_KINDS:
        failure = make_failure(scene, action, target, 8, rng, kind=kind)
        if failure is not None:
            out.append((kind, failure.render(n)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=150, help="random scenes per reading condition")
    parser.add_argument("--steps", type=int, default=20, help="steps (each: ground truth + failures) per clip condition")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    t0 = time.time()

    print(f"scene reading (all objects right), {args.scenes} random scenes each")
    print(f"{'size':>5} {'condition':<14} {'accuracy':>9} {'stacked scenes':>15}")
    for n, names in ((64, list(CONDITIONS)), (32, ["clean"])):
        for name in names:
            right = stacked = stacked_right = 0
            for i in range(args.scenes):
                scene = random_scene(np.random.default_rng(args.seed + i))
                clean = render(scene, n)
                ok = scene_right(scene, CONDITIONS[name].apply(clean, seed=i), n, clean)
                right += ok
                if any(o.on for o in scene.objects):
                    stacked, stacked_right = stacked + 1, stacked_right + ok
            print(f"{n:>5} {name:<14} {right / args.scenes:>9.1%} {stacked_right:>6}/{stacked:<4} right")

    print(f"\nclip judgement at 64x64, {args.steps} steps (ground truth + synthetic failures each)")
    print(f"{'condition':<14} {'clip kind':<14} {'clips':>6} {'judged right':>13} {'kind right':>11}")
    cases = step_cases(args.steps, args.seed + 10_000)
    for name in CLIP_CONDITIONS:
        tally: dict[str, list[int]] = {}
        for i, case in enumerate(cases):
            for kind, frames in clips_for(*case[:3], np.random.default_rng(args.seed + i), 64):
                report = check_clip(CONDITIONS[name].apply(frames, seed=i), case[1])
                right = report.ok if kind == "ground truth" else not report.ok
                t = tally.setdefault(kind, [0, 0, 0])
                t[0], t[1], t[2] = t[0] + 1, t[1] + right, t[2] + (report.failure_kind == EXPECTED.get(kind, FailureKind.NONE))
        total = [sum(v[k] for v in tally.values()) for k in range(3)]
        for kind, (count, right, named) in [*tally.items(), ("all", total)]:
            print(f"{name:<14} {kind:<14} {count:>6} {right / count:>13.1%} {named / count:>11.1%}")

    # CPU time is what the oracle costs; wall time also counts other processes sharing the machine.
    print("\nspeed of detect(), one thread (run with OMP_NUM_THREADS=1)")
    for n in (32, 64, 128):
        frames = [render(random_scene(np.random.default_rng(args.seed + i)), n) for i in range(40)]
        wall, cpu = time.perf_counter(), time.process_time()
        for f in frames:
            detect(f)
        wall, cpu = (time.perf_counter() - wall) / len(frames), (time.process_time() - cpu) / len(frames)
        print(f"{n:>5}x{n:<4} {1000 * cpu:6.2f} ms CPU per frame ({1000 * wall:.2f} ms wall)")
    print(f"\ntotal {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
