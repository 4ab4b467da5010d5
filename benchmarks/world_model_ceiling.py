"""Where the tabletop world model loses its clips: given the simulator's true clip of each held-out
probe, noised to flow time t0 and denoised by the model (SDEdit), how often does the oracle pass
the result? t0 = 0 is the true clip through the model's 32x32 change space and decoder alone (the
ceiling of the representation); t0 = 1 would be plain sampling from noise.

    .venv/bin/python benchmarks/world_model_ceiling.py [--probes 100] [--weights FILE] [--guidance G]

A low pass rate already at small t0 means the net cannot even reproduce a nearly clean clip; a
drop between mid and high t0 means it cannot commit to a clean object from noise.
"""

from __future__ import annotations

import argparse
import os
import platform

import torch

from spiral.agents.critic.learned_data import guided_frames
from spiral.worldmodels.tabletop import SamplerConfig, TabletopWorldModel
from spiral.worldmodels.tabletop_eval import make_probes
from spiral.worlds.tabletop import checks

T0S = (0.0, 0.02, 0.1, 0.3, 0.5, 0.75)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--probes", type=int, default=100)
    parser.add_argument("--weights", default=None)
    parser.add_argument("--guidance", type=float, default=None, help="classifier-free guidance (default: the sampler's)")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sampler = SamplerConfig() if args.guidance is None else SamplerConfig(guidance_scale=args.guidance)
    wm = TabletopWorldModel.load(args.weights, sampler=sampler)
    probes = make_probes(args.probes)
    seeds = list(range(len(probes)))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; weights {args.weights or 'shipped'}, "
          f"{wm.info.get('steps')} steps; guidance {wm.sampler.guidance_scale}; {len(probes)} held-out probes")  # fmt: skip
    for t0 in T0S:
        frames = guided_frames(wm, probes, seeds, t0)
        passed = sum(checks.check_clip(clip, p.action).ok for clip, p in zip(frames, probes, strict=True))
        print(f"  true clip noised to t0 = {t0:4.2f}, then denoised: oracle passes {passed / len(probes):6.1%}")


if __name__ == "__main__":
    main()
