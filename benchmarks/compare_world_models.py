"""Is world model B better than A at single steps? A paired comparison on the same held-out probes.

    .venv/bin/python benchmarks/compare_world_models.py --a FILE --b FILE [--probes 200] [--guidance G] [--noise-level A]
        [--guidance-a G] [--guidance-b G] [--wording canonical|heldout]

A and B may be the same weights sampled at two guidance scales.

Both models meet the same probes with the same sampling seeds (tabletop_eval.evaluate), so each
probe is a pair of outcomes. Prints how many probes both / only A / only B / neither passed, and the
exact two-sided McNemar p-value on the discordant pairs (the probes where they disagree): a
"better" model should win clearly more of those than it loses, not just score a few points higher.
"""

from __future__ import annotations

import argparse
import os
import platform
from dataclasses import replace

import torch

from spiral.bench.metrics import mcnemar_exact
from spiral.worldmodels.tabletop import SamplerConfig, TabletopWorldModel
from spiral.worldmodels.tabletop_eval import HELDOUT_SEED, evaluate, make_probes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--a", required=True, help="weights of model A (e.g. the shipped one)")
    parser.add_argument("--b", required=True, help="weights of model B (e.g. a GRPO run's)")
    parser.add_argument("--probes", type=int, default=200)
    parser.add_argument("--guidance", type=float, default=None, help="classifier-free guidance (default: the sampler's)")
    parser.add_argument(
        "--noise-level", type=float, default=None, help="> 0: sample with the SDE GRPO trains with (default: the ODE sampler)"
    )
    for side in ("a", "b"):
        parser.add_argument(
            f"--guidance-{side}", type=float, default=None, help=f"model {side.upper()}'s guidance (default: --guidance)"
        )
    parser.add_argument(
        "--probe-seed",
        type=int,
        default=HELDOUT_SEED,
        help="first probe scene's seed (5000000: the tuning probes)",
    )
    parser.add_argument(
        "--wording", choices=("canonical", "heldout"), default="canonical",
        help="instructions as canonical text, or in the held-out wordings (the same wording for A and B)",
    )  # fmt: skip
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sampler = SamplerConfig.overriding(guidance_scale=args.guidance, noise_level=args.noise_level)
    probes = make_probes(args.probes, seed=args.probe_seed)
    results = {}
    sides = {"A": (args.a, args.guidance_a), "B": (args.b, args.guidance_b)}
    samplers = {
        name: replace(sampler, guidance_scale=sampler.guidance_scale if guidance is None else guidance)
        for name, (_, guidance) in sides.items()
    }
    for name, (path, _) in sides.items():
        results[name] = evaluate(TabletopWorldModel.load(path, sampler=samplers[name]), probes, args.wording, seed=0)
    a, b = results["A"].passed, results["B"].passed
    both = sum(x and y for x, y in zip(a, b, strict=True))
    only_a = sum(x and not y for x, y in zip(a, b, strict=True))
    only_b = sum(y and not x for x, y in zip(a, b, strict=True))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}")
    sampling = "ODE (Euler)" if not sampler.noise_level else f"SDE, noise_level {sampler.noise_level}"
    print(
        f"A: {args.a} (guidance {samplers['A'].guidance_scale})\n"
        f"B: {args.b} (guidance {samplers['B'].guidance_scale})\n"
        f"probes: {len(probes)} from seed {args.probe_seed}, {sampling}, {args.wording} wording"
    )
    print(f"single-step success: A {results['A'].success:.1%}, B {results['B'].success:.1%}")
    print(f"objects preserved:   A {results['A'].preserved:.1%}, B {results['B'].preserved:.1%}")
    print(f"pairs: both pass {both}, only A {only_a}, only B {only_b}, neither {len(probes) - both - only_a - only_b}")
    print(f"exact McNemar p = {mcnemar_exact(only_a, only_b):.3f} (two-sided)")


if __name__ == "__main__":
    main()
