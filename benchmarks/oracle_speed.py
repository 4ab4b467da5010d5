"""How long the oracle takes to judge world-model clips (what GRPO, the critic's data and the bench
spend their time on), with a digest of its reports so two versions can be checked to agree.

    .venv/bin/python benchmarks/oracle_speed.py [--probes 64] [--weights FILE]

Clips: the world model's on held-out probes, two per probe (the deterministic sampler, and the
SDE at noise_level 0.7 as GRPO samples), generated first and not timed. To compare two versions
of the oracle, run this file with PYTHONPATH set to each version's src/: equal digests mean equal
reports in every field.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import time

import torch

from spiral.worldmodels.tabletop import TabletopWorldModel
from spiral.worldmodels.tabletop_eval import make_probes
from spiral.worlds.tabletop import checks
from spiral.worlds.tabletop.grammar import to_text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--probes", type=int, default=64)
    parser.add_argument("--weights", default=None)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    wm = TabletopWorldModel.load(args.weights)
    clips, actions = [], []
    for k, probe in enumerate(make_probes(args.probes, stream=(777,))):
        for noise_level, seed in ((0.0, k), (0.7, k + 1000)):
            clips.append(wm.sample_frames(probe.frame[None], [to_text(probe.action)], [seed], noise_level)[0])
            actions.append(probe.action)
    began = time.perf_counter()
    reports = [checks.check_clip(clip, action) for clip, action in zip(clips, actions, strict=True)]
    seconds = (time.perf_counter() - began) / len(clips)
    digest = hashlib.blake2b(repr(reports).encode(), digest_size=8).hexdigest()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores")
    print(f"oracle: {seconds:.3f} s per clip of {clips[0].shape[0]} frames ({len(clips)} clips); reports digest {digest}")


if __name__ == "__main__":
    main()
