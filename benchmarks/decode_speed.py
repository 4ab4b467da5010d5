"""What copying moved objects sharp (tabletop_copy) and composing every object (tabletop_compose) cost,
against the blurred decoding, in one run.

    .venv/bin/python benchmarks/decode_speed.py [--probes 10] [--repeats 5] [--weights FILE]

For each held-out probe, one clip and one group of 8 are generated end to end (text encoding,
sampling, decoding) with each decoding in turn, the decodings alternating so that a noisy machine slows
all alike. Prints the medians over probes and repeats, each decoding against blur, and the targets
of issue 8 (one clip <= 0.3 s, a group of 8 <= 1.5 s).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from dataclasses import replace

import torch

from spiral.worldmodels.tabletop import TabletopWorldModel
from spiral.worldmodels.tabletop_copy import DECODINGS
from spiral.worldmodels.tabletop_eval import make_probes
from spiral.worlds.tabletop.grammar import to_text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--probes", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--weights", default=None)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    wm = TabletopWorldModel.load(args.weights)
    probes = make_probes(args.probes)
    wm.generate(probes[0].frame, to_text(probes[0].action), seed=0)  # load the text encoder first
    times: dict[tuple[str, int], list[float]] = {(d, g): [] for d in DECODINGS for g in (1, 8)}
    for k, probe in enumerate(probes):
        text = to_text(probe.action)
        for _ in range(args.repeats):
            for group in (1, 8):
                for decoding in DECODINGS:
                    wm.sampler = replace(wm.sampler, decode=decoding)
                    began = time.perf_counter()
                    wm.generate_group(probe.frame, text, group_size=group, seed=k)
                    times[decoding, group].append(time.perf_counter() - began)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}")
    print(f"{args.probes} held-out probes x {args.repeats} repeats, decodings alternating; medians")
    for group, target in ((1, 0.3), (8, 1.5)):
        median = {d: statistics.median(times[d, group]) for d in DECODINGS}
        label = "one clip" if group == 1 else "group of 8"
        cells = "   ".join(f"{d} {median[d]:.3f} s" for d in DECODINGS)
        ratios = "   ".join(f"{d} / blur {median[d] / median['blur']:.2f}" for d in DECODINGS if d != "blur")
        print(f"  {label:<10}  {cells}   {ratios}   (target <= {target} s)")


if __name__ == "__main__":
    main()
