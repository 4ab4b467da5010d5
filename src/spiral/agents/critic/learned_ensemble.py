"""Several `learned` critics trained apart, scoring together: every output is the mean of the
members' logits (each member's success logit already Platt-scaled, so the mean of two calibrated
logits stays close to calibrated).

Why: the 32x32 and the 64x64 objects critics rank different clips wrong, so their mean ranks
held-out rollouts better than either (ROC-AUC 0.92 against 0.90), though in the closed loop, at the
0.5 pass score, it did no better; so it is not the shipped critic (docs/RESULTS.md at tag results-diary, Two resolutions
together). Where the ranking matters more than one cut (GRPO compares rewards within a group), pass
its export as `--critic-model`, or to `spiral train grpo --critic-weights`. An ensemble file is an
ordinary critic export whose tensors are prefixed `members.<i>.` and whose metadata lists the
members' configs, so everything that loads a critic loads one.

    spiral train critic-ensemble --members runs/critic,runs/critic-64 --out runs/critic-ensemble
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from spiral.agents.critic.learned_net import Clips, CriticNet, CriticOutput, TextTable
from spiral.checkpoints import save_atomic
from spiral.config import option
from spiral.errors import SpiralError

STAGE_FILES = ("critic_sft.safetensors", "tabletop_critic.safetensors")  # what a training run exports


class CriticEnsemble(nn.Module):
    """Members' outputs averaged; each member reads the clip at its own resolution."""

    def __init__(self, members: list[CriticNet]):
        super().__init__()
        if len(members) < 2:
            raise SpiralError(f"an ensemble needs at least two critics, got {len(members)}")
        self.members = nn.ModuleList(members)

    @property
    def resolution(self) -> int:
        return max(m.resolution for m in self.members)

    def score(self, clips: Clips, rows: TextTable, calibrated: bool = True) -> CriticOutput:
        """As CriticNet.score."""
        outs = [m.score(clips, rows, calibrated) for m in self.members]

        def mean(key: str) -> torch.Tensor | None:
            parts = [getattr(o, key) for o in outs]
            return None if any(p is None for p in parts) else torch.stack(parts).mean(0)

        return CriticOutput(mean("success"), mean("kind"), mean("drift"), mean("objects"), mean("facts"))

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


@dataclass(frozen=True)
class CriticEnsembleConfig:
    members: str = option("", "comma-separated training runs (folders of `spiral train critic`) to average")
    out: Path = option(Path("runs/critic-ensemble"), "folder for the ensemble's SFT and SFT+RM exports")
    pass_score: float = option(0.5, "the pass threshold stored with the ensemble (a calibrated probability)")


def combine_critics(cfg: CriticEnsembleConfig) -> Path:
    """Each stage's exports of the member runs, in one file per stage under `out` (same names)."""
    from spiral.agents.critic.learned import load_net

    runs = [Path(r.strip()) for r in cfg.members.split(",") if r.strip()]
    if len(runs) < 2:
        raise SpiralError(f"--members {cfg.members!r}: name at least two `spiral train critic` run folders, comma-separated")
    if not 0.0 < cfg.pass_score < 1.0:
        raise SpiralError(f"--pass-score {cfg.pass_score}: use a probability in (0, 1)")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in STAGE_FILES:
        members = []
        for run in runs:
            path = run / name
            if not path.is_file():
                raise SpiralError(f"missing {path}: --members takes finished `spiral train critic --out RUN` folders")
            net, _ = load_net(path)  # names a corrupt file itself
            if isinstance(net, CriticEnsemble):
                raise SpiralError(f"{path} is not a single critic's export (an ensemble cannot be a member)")
            members.append(net)
        # fp16 on disk, as every critic export (the members were fp16 already, so nothing is lost)
        tensors = {k: v.half() for k, v in CriticEnsemble(members).state_dict().items()}
        meta = {
            "members": json.dumps([m.cfg.to_dict() for m in members]),
            "threshold": str(cfg.pass_score),
            "made_from": ",".join(str(r / name) for r in runs),
        }
        save_atomic(out / name, tensors, meta)
    return out / STAGE_FILES[1]
