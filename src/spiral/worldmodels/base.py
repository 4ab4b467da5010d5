"""The WorldModel protocol every backbone implements, and the conformance check they all pass."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
from PIL import Image

from spiral.errors import SpiralError
from spiral.types import Clip


@runtime_checkable
class WorldModel(Protocol):
    """Generates a clip from a start frame and an instruction.

    `generate` returns a Clip whose frames[0] is the (prepared) start frame. `generate_group` samples
    `group_size` clips from the same start and instruction; member i uses seed `seed + i`, so a
    group of one equals `generate` with the same seed. `context` is the memory's text summary;
    backends that cannot use it ignore it and may say so with `uses_context = False`, which spares
    the loop building the summary.
    """

    name: str
    frame_size: int
    num_frames: int

    def generate(
        self, frame: np.ndarray, instruction: str, *, num_frames: int | None = None, seed: int = 0, context: str | None = None
    ) -> Clip: ...

    def generate_group(
        self,
        frame: np.ndarray,
        instruction: str,
        *,
        group_size: int,
        seed: int = 0,
        num_frames: int | None = None,
        context: str | None = None,
    ) -> list[Clip]: ...


FITS = ("crop", "pad", "stretch")


def frame_shape(wm) -> tuple[int, int]:
    """(height, width) of a world model's frames: `frame_shape` where it has one, else square."""
    return tuple(getattr(wm, "frame_shape", (wm.frame_size, wm.frame_size)))


def prepare_frame(frame: np.ndarray | Image.Image, size: int | tuple[int, int], fit: str = "crop") -> np.ndarray:
    """Any RGB/RGBA/grey image (array or PIL, uint8 or float in [0, 1]) -> (height, width, 3) uint8,
    `size` being one side (square) or (height, width). An image of another aspect ratio is scaled
    to cover the frame and centre-cropped (`fit="crop"`), scaled to fit inside and letterboxed in
    black ("pad"), or squashed ("stretch"); what cannot be read is a clear error."""
    height, width = (size, size) if isinstance(size, int) else size
    if isinstance(frame, Image.Image):
        image = frame
    else:
        array = np.asarray(frame)
        if array.dtype != np.uint8:
            if not np.issubdtype(array.dtype, np.floating) or array.size == 0 or array.min() < 0 or array.max() > 1:
                raise SpiralError(f"start frame must be uint8, or float in [0, 1]; got dtype {array.dtype}")
            array = np.rint(array * 255).astype(np.uint8)
        if array.ndim == 3 and array.shape[-1] == 1:
            array = array[..., 0]
        if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
            raise SpiralError(f"start frame must be (H, W), (H, W, 3) or (H, W, 4); got shape {array.shape}")
        image = Image.fromarray(array)
    image = image.convert("RGB")
    if image.size == (width, height):
        return np.asarray(image, dtype=np.uint8).copy()
    if fit not in FITS:
        raise SpiralError(f"unknown fit {fit!r}; use one of {', '.join(FITS)}")
    w, h = image.size
    scale = {"crop": max, "pad": min, "stretch": max}[fit](width / w, height / h)
    inner = (width, height) if fit == "stretch" else (max(1, round(w * scale)), max(1, round(h * scale)))
    image = image.resize(inner, Image.Resampling.BOX if scale < 1 else Image.Resampling.BILINEAR)
    canvas = Image.new("RGB", (width, height))
    # Crop: a negative offset places the centre of the larger image on the frame; pad: a positive one.
    canvas.paste(image, ((width - inner[0]) // 2, (height - inner[1]) // 2))
    return np.asarray(canvas, dtype=np.uint8).copy()


def check_instruction(instruction: str) -> str:
    if not isinstance(instruction, str) or not instruction.strip():
        raise SpiralError(
            "empty instruction; tell the world model what should happen, e.g. 'move the red square to the left side'"
        )
    return instruction.strip()


def check_world_model(wm: WorldModel, frame: np.ndarray, instruction: str) -> None:
    """Conformance: shapes, dtype, value range, seeded determinism, group of one == single call,
    group members differ, other sizes/modes accepted, bad input rejected clearly. Raises
    AssertionError naming the first broken promise."""
    clip = wm.generate(frame, instruction, seed=3)
    n, (h, w) = wm.num_frames, frame_shape(wm)
    start = prepare_frame(frame, (h, w), getattr(wm, "fit", "crop"))
    assert isinstance(clip, Clip), f"generate must return a Clip, got {type(clip).__name__}"
    assert clip.frames.shape == (n, h, w, 3), f"frames shape {clip.frames.shape} != {(n, h, w, 3)}"
    assert clip.frames.dtype == np.uint8, f"frames dtype {clip.frames.dtype} is not uint8"
    assert np.array_equal(clip.frames[0], start), "frames[0] must be the start frame"
    again = wm.generate(frame, instruction, seed=3)
    assert np.array_equal(clip.frames, again.frames), "the same seed must give the same clip"
    other = wm.generate(frame, instruction, seed=4)
    assert not np.array_equal(clip.frames, other.frames), "different seeds should give different clips"
    group = wm.generate_group(frame, instruction, group_size=1, seed=3)
    assert len(group) == 1 and np.array_equal(group[0].frames, clip.frames), "a group of one must equal generate()"
    group = wm.generate_group(frame, instruction, group_size=3, seed=3)
    assert len(group) == 3 and all(g.frames.shape == clip.frames.shape for g in group), "group shapes"
    # Batched maths may round differently from single calls: allow one grey level.
    assert np.abs(group[0].frames.astype(int) - clip.frames.astype(int)).max() <= 1, "group member 0 must match seed 3"
    assert not np.array_equal(group[0].frames, group[1].frames), "group members must differ"
    big = np.asarray(Image.fromarray(start).resize((w * 2 + 6, h * 2)))
    assert wm.generate(big, instruction, seed=1).frames.shape == (n, h, w, 3), "other sizes must be fitted"
    for bad_frame, bad_text, what in (
        (np.zeros((4, 4, 7), np.uint8), instruction, "a 7-channel frame"),
        (frame, "  ", "an empty instruction"),
    ):
        try:
            wm.generate(bad_frame, bad_text, seed=0)
        except SpiralError:
            continue
        raise AssertionError(f"{what} must raise SpiralError")
