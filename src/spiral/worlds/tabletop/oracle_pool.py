"""The oracle's clip check over worker processes. `checks.check_clip` is single-threaded numpy and
most of the time of a GRPO iteration and of labelling rollouts for the critic (8 frames x 25-35 ms
a world-model clip), so where cores are free, clips are judged side by side. The workers run the
same code on the same arrays: their reports equal the in-process ones in every field (tested).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from spiral.worlds.tabletop import checks
from spiral.worlds.tabletop.actions import Action


def _context() -> multiprocessing.context.BaseContext:
    """Forked workers where the platform has fork (they run numpy only, never torch). Spawned ones
    would re-run the caller's script first, which, without an `if __name__ == "__main__":` guard,
    re-runs whatever it does (a whole training run) in every worker; on platforms without fork
    (macOS and Windows default to spawn) the caller's script needs that guard."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


class OraclePool:
    """`check_clips` over `processes` workers, started on first use; 1 or fewer: in this process."""

    def __init__(self, processes: int):
        self.processes = processes
        self._pool: ProcessPoolExecutor | None = None

    @property
    def parallel(self) -> bool:
        return self.processes > 1

    def check_clips(self, clips: Sequence[np.ndarray], actions: Sequence[Action]) -> list[checks.ClipReport]:
        if not self.parallel or len(clips) < 2:
            return [checks.check_clip(clip, action) for clip, action in zip(clips, actions, strict=True)]
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.processes, mp_context=_context())
        chunk = max(1, len(clips) // (4 * self.processes))
        return list(self._pool.map(checks.check_clip, clips, actions, chunksize=chunk))

    def __enter__(self) -> OraclePool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
