"""How close the oracle reads objects that the simulator keeps apart: for true step clips (random
scene, random feasible action, rendered at 64 px), the margin between the moved subject and every
other object on the table at the end, as read from pixels: distance - (sum of circumscribed radii).
Valid scenes keep at least GAP; read error eats into it. `scene.settle` and `scene.collides` are
sized from this.

    .venv/bin/python benchmarks/read_clearance.py [--clips 300]
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from spiral.worldmodels.tabletop_eval import random_feasible_action
from spiral.worlds.tabletop.actions import sample_target, trajectory
from spiral.worlds.tabletop.checks import check_clip
from spiral.worlds.tabletop.render import render_motion
from spiral.worlds.tabletop.scene import GAP, READ_SLACK, random_scene


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=300)
    args = parser.parse_args()
    margins = []
    for k in range(args.clips):
        rng = np.random.default_rng([5, k])
        scene = random_scene(rng)
        action = random_feasible_action(scene, rng)
        target = None if action is None else sample_target(scene, action, rng)
        if target is None:
            continue
        end = check_clip(render_motion(trajectory(scene, action, target, 8), 64, action.subject), action).end
        if not end.has(action.subject) or end.get(action.subject).on is not None:
            continue
        subject = end.get(action.subject)
        for o in end.objects:
            if o.name != subject.name and o.on is None:
                margins.append(math.dist(subject.pos, o.pos) - subject.radius - o.radius)
    m = np.array(margins)
    print(f"{len(m)} subject-object pairs from true clips; the simulator keeps every margin >= GAP = {GAP}")
    print(f"  read margin: min {m.min():.4f}, 1st percentile {np.percentile(m, 1):.4f}, median {np.median(m):.4f}")
    print(f"  pairs read under GAP (a planner without settle refuses the scene): {np.mean(m < GAP):.1%}")
    print(
        f"  pairs read under GAP - 2 x READ_SLACK = {GAP - 2 * READ_SLACK:.3f} (collides): {np.mean(m < GAP - 2 * READ_SLACK):.1%}"
    )


if __name__ == "__main__":
    main()
