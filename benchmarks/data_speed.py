"""How fast `spiral data make` writes tabletop data on this machine (clips and episodes per second).

.venv/bin/python benchmarks/data_speed.py [--episodes 40] [--frame-size 64]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from spiral.data.format import read_index
from spiral.data.generate import DataMakeConfig, make_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--episodes", type=int, default=40)
    parser.add_argument("--frame-size", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = DataMakeConfig(out=Path(tmp), episodes=args.episodes, frame_size=args.frame_size)
        start = time.perf_counter()
        make_dataset(cfg, progress=False)
        seconds = time.perf_counter() - start
        entries = read_index(Path(tmp))
    clips = sum(e["num_clips"] for e in entries)
    steps = sum(e["num_steps"] for e in entries)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    print(
        f"data make: {args.episodes} episodes, {steps} steps, {clips} clips at {args.frame_size}x{args.frame_size} in {seconds:.1f} s"
    )
    print(f"  {clips / seconds:.1f} clips/s, {args.episodes / seconds:.2f} episodes/s (single process)")


if __name__ == "__main__":
    main()
