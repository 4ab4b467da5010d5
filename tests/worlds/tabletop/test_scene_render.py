import math

import numpy as np
import pytest

from spiral.errors import SpiralError
from spiral.worlds.tabletop.render import render
from spiral.worlds.tabletop.scene import (
    COLOURS,
    READ_SLACK,
    TABLE_RGB,
    Scene,
    TableObject,
    collides,
    random_scene,
    settle,
    validity_errors,
)


def test_random_scenes_are_valid_and_deterministic():
    for seed in range(300):
        scene = random_scene(np.random.default_rng(seed))
        assert 2 <= len(scene.objects) <= 6
        assert validity_errors(scene) == [], seed
        assert scene == random_scene(np.random.default_rng(seed))


def test_random_scenes_cover_every_colour_shape_size_and_stacking():
    scenes = [random_scene(np.random.default_rng(s)) for s in range(300)]
    objects = [o for s in scenes for o in s.objects]
    assert {o.colour for o in objects} == set(COLOURS)
    assert {o.shape for o in objects} == {"square", "circle", "triangle"}
    assert {o.size for o in objects} == {"small", "medium", "large"}
    assert any(o.on is not None for o in objects)


def test_validity_rejects_overlap_outside_and_bad_stacking():
    a = TableObject("red", "square", "large", 0.5, 0.5)
    assert "red square overlaps blue circle" in validity_errors(Scene((a, TableObject("blue", "circle", "small", 0.55, 0.5))))
    assert validity_errors(Scene((TableObject("red", "square", "large", 0.02, 0.5),))) == ["red square is not inside the table"]
    big_on_small = Scene(
        (TableObject("blue", "circle", "small", 0.5, 0.5), TableObject("red", "square", "large", 0.5, 0.5, on="blue circle"))
    )
    assert any("not smaller" in e for e in validity_errors(big_on_small))
    small_on_big = Scene((a, TableObject("blue", "circle", "small", 0.5, 0.5, on="red square")))
    assert validity_errors(small_on_big) == []


@pytest.mark.parametrize("size", [32, 64, 100])
def test_render_shapes_colours_and_antialiasing(size):
    scene = Scene((TableObject("red", "square", "large", 0.3, 0.3), TableObject("blue", "circle", "medium", 0.7, 0.7)))
    img = render(scene, size)
    assert img.shape == (size, size, 3) and img.dtype == np.uint8
    assert tuple(img[0, 0]) == TABLE_RGB
    assert tuple(img[int(0.3 * size), int(0.3 * size)]) == COLOURS["red"]
    assert tuple(img[int(0.7 * size), int(0.7 * size)]) == COLOURS["blue"]
    # Anti-aliased: the circle's rim has pixels strictly between table and object colour.
    blue_dist = np.abs(img.astype(int) - COLOURS["blue"]).sum(-1)
    table_dist = np.abs(img.astype(int) - TABLE_RGB).sum(-1)
    assert ((blue_dist > 10) & (table_dist > 10)).sum() > 0


def test_render_stacked_top_object_visible_and_base_ring_visible():
    base = TableObject("yellow", "square", "large", 0.5, 0.5)
    top = TableObject("green", "circle", "small", 0.5, 0.5, on="yellow square")
    img = render(Scene((top, base)), 64)  # order in the tuple must not matter: draw order follows stacking
    assert tuple(img[32, 32]) == COLOURS["green"]
    assert tuple(img[32, 26]) == COLOURS["yellow"]


def test_render_rejects_tiny_frames():
    with pytest.raises(SpiralError, match="at least 32"):
        render(Scene(), 16)


def test_painting_only_each_shapes_window_gives_the_whole_canvas_frame():
    # The reference paints every object's coverage over the whole canvas, as render once did.
    from spiral.worlds.tabletop.render import coverage

    rng = np.random.default_rng(11)
    for i in range(60):
        scene = random_scene(rng)
        size = (32, 48, 64, 100)[i % 4]
        on_top = scene.objects[0].name if i % 3 == 0 else None
        canvas = np.empty((size, size, 3), np.float32)
        canvas[:] = TABLE_RGB
        order = [o for o in scene.draw_order() if o.name != on_top] + ([scene.get(on_top)] if on_top else [])
        for obj in order:
            alpha = coverage(obj.shape, obj.x, obj.y, obj.half, size)[..., None]
            canvas = canvas * (1.0 - alpha) + alpha * np.asarray(COLOURS[obj.colour], np.float32)
        expected = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
        np.testing.assert_array_equal(render(scene, size, on_top=on_top), expected)


def test_settle_parts_objects_crowded_by_read_error_but_not_objects_painted_into_each_other():
    a = TableObject("red", "square", "medium", 0.3, 0.5)
    reach = a.radius + TableObject("blue", "circle", "small", 0, 0).radius
    crowded = Scene((a, TableObject("blue", "circle", "small", 0.3 + reach + 0.005, 0.5)))  # 0.01 short of GAP
    assert validity_errors(crowded)
    settled = settle(crowded)
    assert not validity_errors(settled)
    assert all(math.dist(o.pos, s.pos) <= READ_SLACK for o, s in zip(crowded.objects, settled.objects, strict=True))
    assert not collides(*crowded.objects)
    painted_in = Scene((a, TableObject("blue", "circle", "small", 0.3 + reach - 0.04, 0.5)))
    assert collides(*painted_in.objects)
    assert settle(painted_in) is painted_in, "an overlap beyond read error is not hidden"
    valid = random_scene(np.random.default_rng(3))
    assert settle(valid) is valid
