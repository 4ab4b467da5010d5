"""What the sentence encoder itself makes of the held-out wordings: for each probe's instruction in
an unseen wording, the canonical instruction nearest to it in the encoder's sentence embedding
(all-MiniLM-L6-v2, mean-pooled as sentence-transformers pools it), among every action on the same
subject (14 regions, 4 directions and "on" to each of the 17 other objects).

    .venv/bin/python benchmarks/wording_neighbours.py [--probes 200]

A wording whose nearest canonical instruction is the right action is one the encoder already
places near its meaning; one whose nearest is another action can only be learned from examples.
The world model cross-attends to the token embeddings rather than this pooled vector, so this is
a reading of the encoder's geometry, not of the model. The probes and wordings are those of
`world_model_quality.py` (same probe set, same paraphrase seed).
"""

from __future__ import annotations

import argparse
import os
import platform
from collections import Counter

import numpy as np
import torch
from torch.nn import functional as F

from spiral.worldmodels.tabletop_eval import make_probes
from spiral.worldmodels.text import TextEncoder
from spiral.worlds.tabletop.actions import Action, actions_on
from spiral.worlds.tabletop.grammar import to_text
from spiral.worlds.tabletop.paraphrase import paraphrase


def sentence_vectors(encoder: TextEncoder, texts: list[str]) -> torch.Tensor:
    rows = []
    for text in texts:
        tokens, _ = encoder.encode([text])  # one at a time: no padding to mask
        rows.append(F.normalize(tokens[0].mean(0), dim=0))
    return torch.stack(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--probes", type=int, default=200)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    probes = make_probes(args.probes)
    rng = np.random.default_rng(0)  # as tabletop_eval.evaluate draws the held-out wordings
    encoder = TextEncoder()
    found: dict[str, list[bool]] = {}
    read_as: dict[str, Counter] = {}
    by_subject: dict[str, tuple[list[Action], torch.Tensor]] = {}  # the candidates and their vectors
    for probe in probes:
        action = probe.action
        text = paraphrase(action, rng, "heldout")
        if action.subject not in by_subject:
            options = actions_on(action.subject)
            by_subject[action.subject] = options, sentence_vectors(encoder, [to_text(a) for a in options])
        options, vectors = by_subject[action.subject]
        nearest = options[int((vectors @ sentence_vectors(encoder, [text])[0]).argmax())]
        found.setdefault(action.relation, []).append(nearest == action)
        read_as.setdefault(action.relation, Counter())[nearest.relation] += 1
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}")
    print(f"{len(probes)} held-out probes, instructions in unseen wordings; nearest canonical instruction by the encoder:")
    print(f"  {'relation':<10} {'probes':>6} {'right action':>13}   relation of the nearest")
    for relation, hits in sorted(found.items(), key=lambda kv: -len(kv[1])):
        counts = ", ".join(f"{r} {n}" for r, n in read_as[relation].most_common())
        print(f"  {relation:<10} {len(hits):>6} {sum(hits) / len(hits):>12.1%}   {counts}")
    every = [hit for hits in found.values() for hit in hits]
    print(f"  {'all':<10} {len(every):>6} {sum(every) / len(every):>12.1%}")


if __name__ == "__main__":
    main()
