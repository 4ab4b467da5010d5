"""Training clips for the tabletop world model: a dataset's accepted step clips, and fresh clips the
simulator renders on the fly (a random scene, a random feasible action), which never repeat.

Fresh clip k of a run is a pure function of (seed, k), so a resumed run sees exactly the clips an
uninterrupted one would, and rendering can move to a worker process without changing anything.
"""

from __future__ import annotations

import json
import multiprocessing
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from tqdm import tqdm

from spiral.errors import DatasetError
from spiral.worldmodels.tabletop import to_model_space
from spiral.worldmodels.tabletop_eval import random_feasible_action
from spiral.worlds.tabletop.actions import Action, sample_target, trajectory
from spiral.worlds.tabletop.render import DEFAULT_SIZE, render_motion
from spiral.worlds.tabletop.scene import random_scene

FRESH_STREAM = 7  # fresh clips are seeded by (seed, FRESH_STREAM, k); held-out probes use plain ints


@dataclass
class TrainingClips:
    frames: torch.Tensor  # (N, T, R, R, 3) uint8 at model resolution
    actions: list[Action]


def small_uint8(video: np.ndarray | torch.Tensor, resolution: int) -> torch.Tensor:
    """(T, H, W, 3) uint8 frames -> (T, R, R, 3) uint8, area-averaged as the model sees them."""
    video = torch.as_tensor(video)
    small = (to_model_space(video, resolution) + 1.0) * 127.5
    return small.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)


def load_clips(data: Path, resolution: int) -> TrainingClips:
    """Every step's accepted (successful) clip, area-downsampled to the model resolution. The
    decoded tensors are cached next to the dataset, keyed by the index, to skip decoding next time."""
    # Imported here: reading mp4s needs PyAV, which training on fresh simulator clips does not.
    from spiral.data.format import read_episode, read_index
    from spiral.data.video import read_video

    entries = read_index(data)
    cache = Path(data) / f".cache-world-model-{resolution}.safetensors"
    key = f"{len(entries)}:{entries[-1]['id'] if entries else ''}"
    if cache.is_file():
        try:
            from safetensors import safe_open

            with safe_open(str(cache), framework="pt") as f:
                meta = f.metadata()
                if meta.get("key") == key:
                    actions = [Action(*a) for a in json.loads(meta["actions"])]
                    return TrainingClips(f.get_tensor("frames"), actions)
        except Exception:  # noqa: BLE001 - a broken cache is rebuilt, never trusted
            pass
    frames, actions = [], []
    for entry in tqdm(entries, desc="decoding clips", unit="ep"):
        episode = read_episode(Path(data) / entry["id"])
        for step in episode.steps:
            attempt = step.attempts[step.accepted] if step.accepted is not None else None
            if attempt is None or attempt.label_success is False:
                continue
            frames.append(small_uint8(read_video(Path(data) / entry["id"] / attempt.video), resolution))
            actions.append(Action(step.subject, step.relation, step.anchor))
    if not frames:
        raise DatasetError(f"{data} holds no successful step clips to train on")
    stacked = torch.stack(frames)
    meta = {"key": key, "actions": json.dumps([[a.subject, a.relation, a.anchor] for a in actions])}
    save_file({"frames": stacked}, str(cache), metadata=meta)
    return TrainingClips(stacked, actions)


def simulated_clip(seed: int, k: int, num_frames: int, resolution: int) -> tuple[torch.Tensor, Action]:
    """Fresh clip k: a random scene and a random feasible action, rendered as the dataset renders a
    step (64 px, the subject on top while it moves), then brought to the model resolution."""
    for attempt in range(100):
        rng = np.random.default_rng([seed, FRESH_STREAM, k, attempt])
        scene = random_scene(rng)
        action = random_feasible_action(scene, rng)
        target = None if action is None else sample_target(scene, action, rng)
        if target is not None:
            break
    else:  # pragma: no cover - nearly every random scene has some feasible action
        raise DatasetError(f"no feasible action in 100 random scenes for fresh clip {k}")
    video = render_motion(trajectory(scene, action, target, num_frames), DEFAULT_SIZE, action.subject)
    return small_uint8(video, resolution), action


def simulated_batch(job: tuple[int, int, int, int, int]) -> TrainingClips:
    """Fresh clips first..first+count-1 (a tuple argument, so a worker pool can map it)."""
    seed, first, count, num_frames, resolution = job
    clips = [simulated_clip(seed, k, num_frames, resolution) for k in range(first, first + count)]
    return TrainingClips(torch.stack([c[0] for c in clips]), [c[1] for c in clips])


class SimulatorFeed:
    """Batches of `per_step` fresh clips for steps start, start+1, ..., rendered `prefetch` steps
    ahead (default: twice the workers, at least 4) in `workers` background processes (0: in this
    process, when asked for).

    With `reuse` R > 1 each step renders only per_step / R new clips and draws its batch from the
    clips of its last 4R steps, so every clip is trained on R times on average: a GPU can then
    outrun the simulator's CPU cores. Which clips a step draws depends on (seed, step) alone.
    """

    def __init__(
        self,
        seed: int,
        per_step: int,
        num_frames: int,
        resolution: int,
        start: int,
        workers: int,
        prefetch: int | None = None,
        reuse: int = 1,
    ):
        self.seed, self.per_step, self.reuse = seed, per_step, reuse
        self.new_per_step = new = -(-per_step // reuse)  # rendered for each step
        self.job = lambda step: (seed, step * new, new, num_frames, resolution)
        self.next_step = self.submitted = start
        self.pool = multiprocessing.get_context("spawn").Pool(workers) if workers and per_step else None
        self.pending: deque = deque()
        self.window: deque[TrainingClips] = deque(maxlen=4 * reuse)  # the last steps' new clips
        if reuse > 1 and per_step:
            first = max(0, start - self.window.maxlen + 1)
            jobs = [self.job(step) for step in range(first, start)]
            self.window.extend(self.pool.map(simulated_batch, jobs) if self.pool else map(simulated_batch, jobs))
        if self.pool is not None:
            for _ in range(prefetch or max(4, 2 * workers)):
                self._submit()

    def _submit(self) -> None:
        self.pending.append(self.pool.apply_async(simulated_batch, (self.job(self.submitted),)))
        self.submitted += 1

    def next(self) -> TrainingClips:
        if self.pool is None:
            batch = simulated_batch(self.job(self.next_step))
        else:
            batch = self.pending.popleft().get()
            self._submit()
        if self.reuse > 1:
            self.window.append(batch)
            frames = torch.cat([b.frames for b in self.window])
            actions = [a for b in self.window for a in b.actions]
            pick = np.random.default_rng([self.seed, FRESH_STREAM, 1, self.next_step])
            idx = pick.choice(len(actions), self.per_step, replace=len(actions) < self.per_step)
            batch = TrainingClips(frames[torch.from_numpy(idx)], [actions[i] for i in idx])
        self.next_step += 1
        return batch

    def close(self) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool = None
