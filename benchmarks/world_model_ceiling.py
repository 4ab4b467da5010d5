"""Where the tabletop world model loses its clips: given the simulator's true clip of each held-out
probe, noised to flow time t0 and denoised by the model (SDEdit), how often does the oracle pass
the result? t0 = 0 is the true clip through the model's 32x32 change space and decoder alone (the
ceiling of the representation); t0 = 1 would be plain sampling from noise.

    .venv/bin/python benchmarks/world_model_ceiling.py [--probes 100] [--weights FILE] [--guidance G]

A low pass rate already at small t0 means the net cannot even reproduce a nearly clean clip; a
drop between mid and high t0 means it cannot commit to a clean object from noise.

Then one denoising step's error: at each flow time t, the mean squared error of the net's clean
change x0_hat (no guidance) on the pixels that change, beside that of the noisy input itself
(x_t / (1 - t)): a net no better than its input at small t cannot copy what it is given.
"""

from __future__ import annotations

import argparse
import os
import platform

import torch

from spiral.agents.critic.learned_data import guided_frames, true_changes
from spiral.worldmodels.tabletop import SamplerConfig, TabletopWorldModel
from spiral.worldmodels.tabletop_eval import make_probes
from spiral.worlds.tabletop import checks
from spiral.worlds.tabletop.grammar import to_text

T0S = (0.0, 0.02, 0.1, 0.3, 0.5, 0.75)
ERROR_TS = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)
CHANGED = 0.02  # a pixel "changes" when its change latent exceeds this in some frame (about 5 grey levels)


@torch.no_grad()
def x0_errors(wm, probes, seeds) -> list[tuple[float, float, float]]:
    """(t, net's x0 error, noisy input's error) on changing pixels, one net call per probe and t."""
    _, start, x0 = true_changes(wm, probes, seeds)
    text, pad = wm.text.encode([to_text(p.action) for p in probes])
    noise = wm.initial_noise(seeds)
    changed = (x0.abs().amax(dim=(1, 2), keepdim=True) > CHANGED).expand_as(x0)
    rows = []
    for t in ERROR_TS:
        x_t = (1 - t) * x0 + t * noise
        x0_hat = wm.net(x_t, torch.full((len(probes),), t), start, text, pad)
        rows.append((t, ((x0_hat - x0)[changed] ** 2).mean().item(), ((x_t / (1 - t) - x0)[changed] ** 2).mean().item()))
    return rows


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
    print("x0 error on changing pixels, one step, no guidance (change latent units):")
    for t, net_error, input_error in x0_errors(wm, probes, seeds):
        print(f"  t = {t:4.2f}: net {net_error:.5f}   noisy input {input_error:.5f}")


if __name__ == "__main__":
    main()
