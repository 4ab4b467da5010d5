"""Reading an ActWM dataset back as torch-ready samples, one per generated clip."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypedDict

import torch
from torch.utils.data import Dataset

from spiral.data.format import EpisodeRecord, read_episode, read_index
from spiral.data.video import read_video


class Sample(TypedDict):
    """One clip. `video` is uint8 (T, 3, H, W); frame 0 is the step's start frame. DataLoader's
    default collate stacks the tensors and lists the strings."""

    video: torch.Tensor
    instruction: str
    goal: str
    success: torch.Tensor  # float 0/1: ground-truth label (the oracle critique's verdict if none)
    score: torch.Tensor  # float in [0, 1]: the stored critic score
    failure_kind: str  # the stored critique's failure kind ("none" on success)
    synthetic_failure: str  # how the clip was made to fail on purpose ("" if it was not)
    episode_id: str
    step: int
    attempt: int


@dataclass(frozen=True)
class ClipRef:
    episode: EpisodeRecord
    folder: Path
    step: int
    attempt: int


class ActWMDataset(Dataset):
    """All clips of a dataset folder (`attempts="all"`) or only each step's accepted clip.

    The index and every episode.json are read up front, so a missing or corrupt file is reported
    (by name) before training starts; videos are decoded on access.
    """

    def __init__(self, root: str | Path, attempts: Literal["all", "accepted"] = "all"):
        self.root = Path(root)
        self.refs: list[ClipRef] = []
        for entry in read_index(self.root):
            folder = self.root / entry["id"]
            episode = read_episode(folder)
            for i, step in enumerate(episode.steps):
                chosen = (
                    range(len(step.attempts)) if attempts == "all" else ([step.accepted] if step.accepted is not None else [])
                )
                # A clip nobody judged (an open-loop baseline's) has no label to learn from.
                labelled = [a for a in chosen if step.attempts[a].label_success is not None or step.attempts[a].critique]
                self.refs += [ClipRef(episode, folder, i, a) for a in labelled]

    def __len__(self) -> int:
        return len(self.refs)

    def __getitem__(self, i: int) -> Sample:
        ref = self.refs[i]
        step = ref.episode.steps[ref.step]  # ref.step is the position in the episode's steps
        attempt = step.attempts[ref.attempt]
        frames = read_video(ref.folder / attempt.video)
        if attempt.label_success is not None:
            success = attempt.label_success
        else:
            success = attempt.critique is not None and attempt.critique.verdict.value == "success"
        return Sample(
            video=torch.from_numpy(frames).permute(0, 3, 1, 2).contiguous(),
            instruction=attempt.instruction,
            goal=ref.episode.goal,
            success=torch.tensor(float(success)),
            score=torch.tensor(attempt.critique.score if attempt.critique else float(success)),
            failure_kind=attempt.critique.failure_kind.value if attempt.critique else "none",
            synthetic_failure=attempt.label_failure or "",
            episode_id=ref.episode.id,
            step=ref.step,
            attempt=ref.attempt,
        )
