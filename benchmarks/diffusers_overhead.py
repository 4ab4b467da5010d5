"""Adapter overhead over the raw diffusers call (target: <= 2%), on a tiny random Wan I2V on CPU.

Runs the raw pipeline call and the adapter's generate() alternately with the same seed, several
times, and prints the median of the paired time ratios; it also times the adapter's own work
(frame preparation, call arguments, uint8 conversion) on its own, which is what the ratio measures
through the noise of a shared machine.

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/diffusers_overhead.py [--repeats 15]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "worldmodels"))
from diffusers_tiny import INSTRUCTION, start_frame, tiny_wan  # noqa: E402

from spiral.worldmodels.diffusers import DiffusersConfig, DiffusersWorldModel  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--num-frames", type=int, default=9)
    parser.add_argument("--num-inference-steps", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(1)
    size, n, steps = args.size, args.num_frames, args.num_inference_steps
    pipe = tiny_wan()
    wm = DiffusersWorldModel("wan-i2v", pipe, DiffusersConfig(height=size, width=size, num_frames=n, num_inference_steps=steps))
    frame = start_frame(size)

    def raw() -> np.ndarray:
        out = pipe(
            image=Image.fromarray(frame),
            prompt=INSTRUCTION,
            height=size,
            width=size,
            num_frames=n,
            num_inference_steps=steps,
            guidance_scale=wm.guidance_scale,
            generator=torch.Generator().manual_seed(0),
            output_type="np",
        )
        return out.frames

    def adapter() -> np.ndarray:
        return wm.generate(frame, INSTRUCTION, seed=0).frames

    raw(), adapter()  # warm-up
    ratios, raw_times = [], []
    for i in range(args.repeats):
        # Alternate the order so drifts in machine load hit both sides alike.
        order = (raw, adapter) if i % 2 == 0 else (adapter, raw)
        times = {}
        for fn in order:
            began = time.perf_counter()
            fn()
            times[fn] = time.perf_counter() - began
        ratios.append(times[adapter] / times[raw])
        raw_times.append(times[raw])

    video = raw()
    began = time.perf_counter()
    for _ in range(200):
        start = wm.prepare(frame)
        wm.call_kwargs(start, INSTRUCTION, [0], n)
        wm.to_clips(start, video, n)
    own = (time.perf_counter() - began) / 200
    median_raw = statistics.median(raw_times)
    print(f"tiny Wan I2V on CPU, {size}x{size}, {n} frames, {steps} steps, {args.repeats} paired repeats")
    print(f"raw pipeline call: median {median_raw * 1000:.1f} ms")
    print(f"adapter / raw time ratio: median {statistics.median(ratios):.4f} (min {min(ratios):.4f}, max {max(ratios):.4f})")
    print(f"adapter's own work: {own * 1e6:.0f} us per call = {own / median_raw * 100:.3f}% of the raw call (target <= 2%)")


if __name__ == "__main__":
    main()
