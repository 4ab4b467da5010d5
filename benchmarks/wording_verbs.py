"""Is it the verb or the phrase? Left / right-of steps worded four ways: a training verb or a held-out
verb, each with the canonical relation phrase or the held-out one.

    .venv/bin/python benchmarks/wording_verbs.py [--probes 80] [--probe-seed 5000000] [--weights FILE]

Held-out wordings change the verb ("drag", "carry", "bring") and the relation phrase ("on the
left-hand side of", "on the right side of") at once, so `world_model_quality.py` cannot say which of
the two the model fails on. Here every probe is sampled four times with the same seed, once per
wording:

    move the X to the left of the Y                  training verb, canonical phrase
    drag the X to the left of the Y                  held-out verb, canonical phrase
    move the X on the left-hand side of the Y        training verb, held-out phrase
    drag the X on the left-hand side of the Y        held-out verb, held-out phrase (as held out)

The held-out verbs take turns over the probes. Probes are the first `--probes` left / right-of ones
among the scenes seeded from `--probe-seed` (default: the tuning probes, not the held-out ones).
Success is the oracle's, from pixels, as in `world_model_quality.py`.
"""

from __future__ import annotations

import argparse
import os
import platform
from collections import Counter

import torch

from spiral.worldmodels.tabletop import SamplerConfig, TabletopWorldModel, default_weights
from spiral.worldmodels.tabletop_eval import make_probes
from spiral.worlds.tabletop import checks
from spiral.worlds.tabletop.actions import Action
from spiral.worlds.tabletop.paraphrase import WORDINGS

TUNING_SEED = 5_000_000
KINDS = ("left of", "right of")
TRAINING_VERB = "move"


def wordings(action: Action, k: int) -> dict[str, str]:
    """The four wordings of the probe, named; the held-out split's own template for relations."""
    held_out = WORDINGS["heldout"]
    verbs = {"training verb": TRAINING_VERB, "held-out verb": held_out["verbs"][k % len(held_out["verbs"])]}
    phrases = {
        "canonical phrase": f"to the {action.relation}",  # as grammar.to_text words left / right of
        "held-out phrase": held_out["relations"][action.relation][0],
    }
    template = held_out["relation"][0]
    return {
        f"{verb_kind}, {phrase_kind}": template.format(verb=verb, s=action.subject, rel=phrase, a=action.anchor)
        for phrase_kind, phrase in phrases.items()
        for verb_kind, verb in verbs.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--probes", type=int, default=80, help="left / right-of probes to sample")
    parser.add_argument("--probe-seed", type=int, default=TUNING_SEED)
    parser.add_argument("--weights", default=None, help="default: the shipped tabletop_wm.safetensors")
    parser.add_argument("--guidance", type=float, default=None, help="classifier-free guidance (default: the sampler's)")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sampler = SamplerConfig.overriding(guidance_scale=args.guidance)
    wm = TabletopWorldModel.load(args.weights or default_weights(), sampler=sampler)
    # About a third of the probes' actions are left / right of; six times as many scenes is plenty.
    probes = [p for p in make_probes(6 * args.probes, seed=args.probe_seed) if p.action.relation in KINDS]
    probes = probes[: args.probes]
    passed: Counter[str] = Counter()
    reasons: dict[str, Counter[str]] = {}
    for k, probe in enumerate(probes):
        for name, text in wordings(probe.action, k).items():
            report = checks.check_clip(wm.generate(probe.frame, text, seed=k).frames, probe.action)
            passed[name] += bool(report.ok)
            if not report.ok:
                reasons.setdefault(name, Counter()).update(report.failure_reasons)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}")
    print(f"weights: {args.weights or 'shipped'}; guidance {wm.sampler.guidance_scale}")
    print(f"{len(probes)} left / right-of probes from seed {args.probe_seed}, one sample each per wording\n")
    print("| wording | success | most common failures |")
    print("|---|---|---|")
    for name in wordings(probes[0].action, 0):
        top = ", ".join(f"{why} {n}" for why, n in reasons.get(name, Counter()).most_common(2))
        print(f"| {name} | {passed[name]} / {len(probes)} ({passed[name] / len(probes):.1%}) | {top} |")


if __name__ == "__main__":
    main()
