"""Where the world model puts the subject for "above" and "below" steps, worded canonically and in
the held-out wordings ("behind", "in front of"): above the anchor, below it, level with it, not
moved, or lost. A 0% success rate alone does not say whether the model ignores the words or reads
them the wrong way round; this does.

    .venv/bin/python benchmarks/wording_direction.py [--probes 400] [--weights FILE]

Probes are the held-out scenes of `world_model_quality.py` (seeds from 1,000,000), keeping those
whose action is "above" or "below"; one sample each (seed k), wordings drawn as
`tabletop_eval.evaluate` draws them. The end scene is read by the oracle from the last frame; "above"
means the subject's centre ends more than 0.05 of the table higher than the anchor's.
"""

from __future__ import annotations

import argparse
import os
import platform
from collections import Counter

import numpy as np
import torch

from spiral.worldmodels.tabletop import TabletopWorldModel, default_weights
from spiral.worldmodels.tabletop_eval import make_probes
from spiral.worlds.tabletop.grammar import to_text
from spiral.worlds.tabletop.oracle import read_scene
from spiral.worlds.tabletop.paraphrase import paraphrase

LEVEL = 0.05  # table units: closer than this in height is "level"
STILL = 0.03  # table units: a subject that moved less did not move


def where(start, end, action) -> str:
    if not end.has(action.subject) or not end.has(action.anchor):
        return "lost"
    s0, s1, anchor = start.get(action.subject), end.get(action.subject), end.get(action.anchor)
    if np.hypot(s1.x - s0.x, s1.y - s0.y) < STILL:
        return "not moved"
    dy = s1.y - anchor.y  # y grows downwards in the picture
    return "above" if dy < -LEVEL else "below" if dy > LEVEL else "level"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--probes", type=int, default=400, help="held-out probes to draw from (about a quarter are above/below)")
    parser.add_argument("--weights", default=None, help="default: the shipped tabletop_wm.safetensors")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    wm = TabletopWorldModel.load(args.weights or default_weights())
    probes = [p for p in make_probes(args.probes) if p.action.relation in ("above", "below")]
    counts: dict[tuple[str, str], Counter] = {}
    for wording in ("canonical", "heldout"):
        rng = np.random.default_rng(0)
        for k, probe in enumerate(probes):
            text = to_text(probe.action) if wording == "canonical" else paraphrase(probe.action, rng, wording)
            clip = wm.generate(probe.frame, text, seed=k)
            counts.setdefault((probe.action.relation, wording), Counter())[
                where(probe.scene, read_scene(clip.frames[-1]), probe.action)
            ] += 1
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}")
    print(f"{len(probes)} above/below probes of the first {args.probes} held-out ones\n")
    places = ("above", "below", "level", "not moved", "lost")
    print("| asked | wording | steps | " + " | ".join(f"ends {p}" for p in places) + " |")
    print("|" + "---|" * (3 + len(places)))
    for (relation, wording), c in sorted(counts.items()):
        n = sum(c.values())
        shown = "canonical" if wording == "canonical" else {"above": '"behind"', "below": '"in front of"'}[relation]
        print(f"| {relation} | {shown} | {n} | " + " | ".join(f"{c[p]}" for p in places) + " |")


if __name__ == "__main__":
    main()
