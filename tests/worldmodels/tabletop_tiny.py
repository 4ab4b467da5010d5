"""The embedded tabletop model's clips as its net drew them, for tests of tiny random nets."""

from __future__ import annotations

import numpy as np
import torch

from spiral.worldmodels.tabletop import TabletopWorldModel


class NetPixels(TabletopWorldModel):
    """Clips as the net drew them (TabletopWorldModel.blend), not composed. A tiny random net moves
    no object, so composing the start frame's objects where it put them would give every seed and
    every update the same clip; tests of seeding, sampling and rewards read the net's own pixels."""

    def decode(self, starts: np.ndarray, latent: torch.Tensor) -> np.ndarray:
        return self.blend(starts, latent)[0]
