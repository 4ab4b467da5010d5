"""Which training word the sentence encoder puts nearest to "behind" and "front", layer by layer.

    .venv/bin/python benchmarks/direction_words_by_layer.py

The world model reads an instruction through all-MiniLM-L6-v2's token embeddings. "behind" (above)
and "in front of" (below) are held out, and the model reads both the wrong way round
(`wording_direction.py`). Here each is put in a held-out sentence ("drag the red square behind the
blue circle"), and its token's vector at every layer of the encoder (0: the embedding layer's
output, 6: the last layer, which the model reads) is compared by cosine with the direction words of
the training wordings for above and below, each in a training sentence of the same frame ("move
the red square at the back of the blue circle"). A word nearest to words of the other direction
can only be read right from examples, which the held-out split forbids.
"""

from __future__ import annotations

import platform

import torch
from torch.nn import functional as F

from spiral.worldmodels.text import TextEncoder
from spiral.worlds.tabletop.paraphrase import WORDINGS

FRAME = "{verb} the red square {rel} the blue circle"
HELD_OUT = {"behind": ("behind", "above"), "front": ("in front of", "below")}
NOT_DIRECTION = {"the", "of", "to", "at", "on", "than", "just", "directly", "side", "from", "camera", "up"}


def token_states(encoder: TextEncoder, sentence: str) -> list[tuple[str, torch.Tensor]]:
    """Each token of the sentence with its vectors at every layer, (layers + 1, 384)."""
    batch = encoder._tokenizer([sentence], return_tensors="pt")
    with torch.no_grad():
        states = torch.stack(encoder._model(**batch, output_hidden_states=True).hidden_states)[:, 0]
    tokens = encoder._tokenizer.convert_ids_to_tokens(batch["input_ids"][0])
    return [(token, states[:, i]) for i, token in enumerate(tokens)]


def main() -> None:
    encoder = TextEncoder()
    encoder._load()
    training = []  # (word, relation, its vectors per layer)
    for relation in ("above", "below"):
        for phrase in WORDINGS["train"]["relations"][relation]:
            words = set(phrase.split()) - NOT_DIRECTION
            for token, states in token_states(encoder, FRAME.format(verb="move", rel=phrase)):
                if token in words and token not in {w for w, r, _ in training if r == relation}:
                    training.append((token, relation, states))
    print(f"machine: {platform.machine()}; {len(training)} training direction words for above / below\n")
    print("| held-out word (means) | layer | nearest training words (their direction, cosine) |")
    print("|---|---|---|")
    for word, (phrase, meaning) in HELD_OUT.items():
        states = dict(token_states(encoder, FRAME.format(verb="drag", rel=phrase)))[word]
        for layer in range(states.shape[0]):
            near = sorted(
                ((F.cosine_similarity(states[layer], s[layer], dim=0).item(), w, r) for w, r, s in training), reverse=True
            )[:3]
            shown = ", ".join(f"{w} ({r}, {c:.2f})" for c, w, r in near)
            print(f"| {word} ({meaning}) | {layer} | {shown} |")


if __name__ == "__main__":
    main()
