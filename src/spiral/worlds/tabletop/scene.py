"""Scenes of the tabletop world: coloured shapes on a table, seen from above.

Coordinates are table units: x and y in [0, 1], x to the right, y *down* (image convention), so
"top" means small y. Every object in a scene has its own colour, so colour alone names it and the
oracle can track it from pixels; the shape is the second half of its identity ("the red square").

Objects come in three sizes. An object can rest on a strictly larger one (centred on it); that is
the only overlap a valid scene allows, and it is why the top object never hides the one below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from spiral.errors import SpiralError

# RGB in 0..255. Chosen far apart in hue and far from the table colour, so a pixel's colour class
# survives noise and blur (see benchmarks/oracle_accuracy.py).
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "orange": (245, 145, 20),
    "yellow": (240, 220, 40),
    "green": (40, 170, 60),
    "blue": (40, 90, 225),
    "purple": (145, 55, 190),
}
WARM_COLOURS = ("red", "orange", "yellow")
COOL_COLOURS = ("green", "blue", "purple")
TABLE_RGB = (200, 200, 195)
SHAPES = ("square", "circle", "triangle")

# Half-extent (half the bounding-box side) in table units, by size class.
SIZES: dict[str, float] = {"small": 0.07, "medium": 0.09, "large": 0.115}
SIZE_ORDER = ("small", "medium", "large")

# Clearance kept between objects that are not stacked, and between an object and the table edge.
GAP = 0.015
# How far an object read from pixels may sit from where a valid scene would have it. Reading the
# simulator's own renders puts pairs up to 0.0025 closer than GAP (benchmarks/read_clearance.py);
# a world model's frames are rougher. See `settle` and `collides`.
READ_SLACK = GAP


def circumradius(shape: str, half: float) -> float:
    """Radius of the smallest circle around the object centre that holds the whole shape."""
    return half if shape == "circle" else half * math.sqrt(2.0)


@dataclass(frozen=True)
class TableObject:
    """One shape on the table. `on` names the object it rests on (None: on the table)."""

    colour: str
    shape: str
    size: str
    x: float
    y: float
    on: str | None = None

    @property
    def name(self) -> str:
        """The object's identity and its name in instructions, e.g. "red square"."""
        return f"{self.colour} {self.shape}"

    @property
    def half(self) -> float:
        return SIZES[self.size]

    @property
    def radius(self) -> float:
        return circumradius(self.shape, self.half)

    @property
    def pos(self) -> tuple[float, float]:
        return (self.x, self.y)


@dataclass(frozen=True)
class Scene:
    """An immutable arrangement of objects. Methods return new scenes."""

    objects: tuple[TableObject, ...] = field(default_factory=tuple)

    def names(self) -> list[str]:
        return [o.name for o in self.objects]

    def get(self, name: str) -> TableObject:
        for o in self.objects:
            if o.name == name:
                return o
        raise SpiralError(f"no {name} in the scene; objects present: {', '.join(self.names()) or 'none'}")

    def has(self, name: str) -> bool:
        return any(o.name == name for o in self.objects)

    def by_colour(self, colour: str) -> TableObject | None:
        return next((o for o in self.objects if o.colour == colour), None)

    def supported_by(self, name: str) -> list[TableObject]:
        """Objects resting directly on `name`."""
        return [o for o in self.objects if o.on == name]

    def is_clear(self, name: str) -> bool:
        return not self.supported_by(name)

    def stack_depth(self, name: str) -> int:
        """0 for an object on the table, 1 for one resting on such an object, and so on."""
        depth, o = 0, self.get(name)
        while o.on is not None:
            depth, o = depth + 1, self.get(o.on)
        return depth

    def with_object(self, obj: TableObject) -> Scene:
        """The scene with the object of the same name replaced by `obj`."""
        return Scene(tuple(obj if o.name == obj.name else o for o in self.objects))

    def moved(self, name: str, x: float, y: float, on: str | None) -> Scene:
        return self.with_object(replace(self.get(name), x=x, y=y, on=on))

    def draw_order(self) -> list[TableObject]:
        """Objects from bottom to top, so later ones paint over earlier ones."""
        return sorted(self.objects, key=lambda o: self.stack_depth(o.name))

    def to_dict(self) -> dict:
        return {"objects": [o.__dict__.copy() for o in self.objects]}

    @staticmethod
    def from_dict(d: dict) -> Scene:
        return Scene(tuple(TableObject(**o) for o in d["objects"]))


def inside_table(shape: str, size: str, x: float, y: float) -> bool:
    h = SIZES[size] + GAP
    return h <= x <= 1 - h and h <= y <= 1 - h


def overlaps(a: TableObject, b: TableObject) -> bool:
    """True when the two objects' footprints (with clearance) would touch. Conservative: uses
    circumscribed circles, so a valid scene never has touching shapes."""
    return math.dist(a.pos, b.pos) < a.radius + b.radius + GAP


def can_rest_on(top: TableObject, bottom: TableObject) -> bool:
    """Only a strictly smaller object can rest on another, so the lower one stays visible."""
    return SIZE_ORDER.index(top.size) < SIZE_ORDER.index(bottom.size)


def validity_errors(scene: Scene) -> list[str]:
    """Why the scene is not physically valid; empty when it is."""
    errors: list[str] = []
    names = scene.names()
    if len(set(names)) != len(names) or len({o.colour for o in scene.objects}) != len(names):
        errors.append("every object must have its own colour")
    for o in scene.objects:
        if o.colour not in COLOURS or o.shape not in SHAPES or o.size not in SIZES:
            errors.append(f"{o.name}: unknown colour, shape or size")
            continue
        if o.on is None and not inside_table(o.shape, o.size, o.x, o.y):
            errors.append(f"{o.name} is not inside the table")
        if o.on is not None:
            if not scene.has(o.on):
                errors.append(f"{o.name} rests on {o.on}, which is not in the scene")
                continue
            base = scene.get(o.on)
            if not can_rest_on(o, base):
                errors.append(f"{o.name} is not smaller than {base.name}, so it cannot rest on it")
            if len(scene.supported_by(base.name)) > 1:
                errors.append(f"more than one object rests on {base.name}")
            if math.dist(o.pos, base.pos) > 1e-6:
                errors.append(f"{o.name} is not centred on {base.name}")
    grounded = [o for o in scene.objects if o.on is None]
    for i, a in enumerate(grounded):
        for b in grounded[i + 1 :]:
            if overlaps(a, b):
                errors.append(f"{a.name} overlaps {b.name}")
    return errors


def collides(a: TableObject, b: TableObject) -> bool:
    """True when two objects on the table are closer than `settle` can part: each is inside the
    other's footprint (the circumscribed circle plus GAP that `overlaps` keeps clear) by more than
    read error explains. Conservative for squares and triangles: two squares side by side can be a
    pixel apart and still collide, but no scene this world calls valid is within 2 x READ_SLACK."""
    return math.dist(a.pos, b.pos) < a.radius + b.radius + GAP - 2 * READ_SLACK


def settle(scene: Scene, slack: float = READ_SLACK) -> Scene:
    """A scene read from pixels, with objects on the table pushed apart (and into the table) by at
    most `slack` each, so that read error alone (two objects a little closer than GAP) does not make
    it invalid. Stacked objects move with their support. Returns the scene unchanged when it is
    already valid, or when making it valid would move some object further than `slack` (then the
    scene really is broken, e.g. one object painted over another)."""
    if not validity_errors(scene):
        return scene
    pos = {o.name: [o.x, o.y] for o in scene.objects if o.on is None}
    grounded = [o for o in scene.objects if o.on is None]
    for _ in range(20):  # a few passes settle chains of crowded objects
        moved = False
        for i, a in enumerate(grounded):
            for b in grounded[i + 1 :]:
                (ax, ay), (bx, by) = pos[a.name], pos[b.name]
                dist = math.dist((ax, ay), (bx, by))
                deficit = a.radius + b.radius + GAP - dist
                if deficit <= 0 or dist < 1e-9:
                    continue
                push = (deficit / 2 + 1e-6) / dist
                dx, dy = (ax - bx) * push, (ay - by) * push
                pos[a.name], pos[b.name] = [ax + dx, ay + dy], [bx - dx, by - dy]
                moved = True
        for o in grounded:
            h = o.half + GAP
            pos[o.name] = [min(max(v, h), 1 - h) for v in pos[o.name]]
        if not moved:
            break
    if any(math.dist(pos[o.name], o.pos) > slack for o in grounded):
        return scene

    def at(o: TableObject) -> tuple[float, float]:
        while o.on is not None:
            o = scene.get(o.on)
        return tuple(pos[o.name])

    settled = Scene(tuple(replace(o, x=at(o)[0], y=at(o)[1]) for o in scene.objects))
    return scene if validity_errors(settled) else settled


def is_valid(scene: Scene) -> bool:
    return not validity_errors(scene)


def footprint_free(scene: Scene, shape: str, size: str, x: float, y: float, ignore: tuple[str, ...] = ()) -> bool:
    """Could an object of this shape and size stand on the table at (x, y)?"""
    if not inside_table(shape, size, x, y):
        return False
    probe = TableObject("probe", shape, size, x, y)
    return not any(overlaps(probe, o) for o in scene.objects if o.on is None and o.name not in ignore)


def random_scene(rng: np.random.Generator, num_objects: int | None = None, stacked_prob: float = 0.15) -> Scene:
    """A random valid scene of 2..6 objects with distinct colours; sometimes one object rests on
    another. Deterministic for a given generator state."""
    n = int(rng.integers(2, 7)) if num_objects is None else num_objects
    if not 2 <= n <= len(COLOURS):
        raise SpiralError(f"a scene holds 2 to {len(COLOURS)} objects, not {n}")
    for _ in range(200):
        colours = rng.permutation(list(COLOURS))[:n]
        scene = Scene()
        for colour in colours:
            shape = str(rng.choice(SHAPES))
            size = str(rng.choice(SIZE_ORDER))
            obj = _place_randomly(scene, str(colour), shape, size, rng, stacked_prob)
            if obj is None:
                break
            scene = Scene(scene.objects + (obj,))
        else:
            return scene
    raise SpiralError(f"could not place {n} objects on the table")  # pragma: no cover - never seen


def _place_randomly(
    scene: Scene, colour: str, shape: str, size: str, rng: np.random.Generator, stacked_prob: float
) -> TableObject | None:
    if rng.random() < stacked_prob:
        bases = [o for o in scene.objects if scene.is_clear(o.name) and SIZE_ORDER.index(size) < SIZE_ORDER.index(o.size)]
        if bases:
            base = bases[int(rng.integers(len(bases)))]
            return TableObject(colour, shape, size, base.x, base.y, on=base.name)
    half = SIZES[size] + GAP
    for _ in range(100):
        x, y = (round(float(v), 4) for v in rng.uniform(half, 1 - half, size=2))
        if footprint_free(scene, shape, size, x, y):
            return TableObject(colour, shape, size, x, y)
    return None
