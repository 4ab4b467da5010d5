"""How the solver achieves each goal family, as moves recorded on a `Planner`.

Each strategy raises `NoPlan` with a reason when the goal cannot be reached; where several ways
exist (which object anchors a row, a direct or a three-step swap), each is tried on a fork of the
planner and the one with the fewest steps wins.
"""

from __future__ import annotations

import math
from itertools import pairwise

from spiral.worlds.tabletop.actions import CELLS, DIRECTIONS, Action, Target, cell_of
from spiral.worlds.tabletop.goal_spec import (
    CLEAR,
    COMPOUND,
    GATHER,
    HOLD_SLACK,
    LINE_UP,
    MOVE,
    SORT,
    STACK,
    SWAP,
    Goal,
    line_pair_ok,
    sort_region,
)
from spiral.worlds.tabletop.goal_text import goal_to_text, selector_text
from spiral.worlds.tabletop.scene import COOL_COLOURS, SIZE_ORDER, WARM_COLOURS, can_rest_on
from spiral.worlds.tabletop.solver_plan import NoPlan, Planner, cell_centre, cells_in, strictly_in, touches

# Fresh tries of a compound goal when a later part undid an earlier one: where things get parked is
# random, and another draw may spare the earlier part.
COMPOUND_TRIES = 3

# An object is in the way of the next spot of a row when its footprint comes this close to it.
ROW_CLEARANCE = 0.05


def plan_goal(p: Planner, goal: Goal) -> None:
    """Record on `p` the moves that achieve `goal` (strictly) from `p.scene`."""
    missing = [n for n in named_objects(goal) if not p.initial.has(n)]
    if missing:
        raise NoPlan(f"there is no {missing[0]} in the scene")
    if goal.family == COMPOUND:
        return _compound(p, goal)
    if goal.holds(p.initial, p.scene, strict=True):
        return None
    _STRATEGIES[goal.family](p, goal)
    if not goal.holds(p.initial, p.scene, strict=True):  # pragma: no cover - each strategy ends in its goal
        raise NoPlan(f"could not find a way to {goal_to_text(goal)}")
    return None


def named_objects(goal: Goal) -> list[str]:
    return [n for part in (goal.parts or (goal,)) for n in part.objects]


def _size(p: Planner, name: str) -> str:
    return p.get(name).size


def _stack(p: Planner, goal: Goal) -> None:
    pairs = list(pairwise(goal.objects))
    for top, base in pairs:
        if not can_rest_on(p.get(top), p.get(base)):
            than = "the same size as" if _size(p, top) == _size(p, base) else "larger than"
            raise NoPlan(f"the {top} is {than} the {base}, so it cannot rest on it")
    for top, base in reversed(pairs):  # bottom up: an object with something on it cannot move
        if p.get(top).on == base:
            continue
        p.free(base, f"for the {top} to rest on it")
        p.free(top, "before it can move")
        why = f"the {top} ({_size(p, top)}) is smaller than the {base} ({_size(p, base)}), so it can rest on it"
        if len(pairs) > 1:
            why += "; the tower is built from the bottom up"
        p.do(Action(top, "on", base), Target(p.get(base).x, p.get(base).y, on=base), why)


def _line_up(p: Planner, goal: Goal) -> None:
    names = goal.objects
    n = len(names)
    # Keep one object where it is and build the row around it; move that anchor only if no
    # object can stay.
    options: list[tuple[int, str | None]] = [(k, None) for k in range(n)]
    for k in range(n):
        column = ("middle left", "centre", "middle right")[0 if k == 0 else 2 if k == n - 1 else 1]
        column_cells = [c for c in CELLS if cell_centre(c)[0] == cell_centre(column)[0]]
        y = p.get(names[k]).y
        options += [(k, c) for c in sorted(column_cells, key=lambda c: abs(cell_centre(c)[1] - y))]
    # A row that moves one object per pair out of order is as short as can be expected: stop there.
    broken = sum(not line_pair_ok(p.get(a), p.get(b), -HOLD_SLACK) for a, b in pairwise(names))
    best, reasons = None, []
    for k, cell in options:
        if best is not None and (cell is not None or len(best.moves) - len(p.moves) <= broken):
            break  # move an anchor only when no row can be built around an object where it stands
        trial = p.fork()
        try:
            _build_row(trial, names, k, cell)
        except NoPlan as e:
            reasons.append(str(e))
            continue
        if best is None or len(trial.moves) < len(best.moves):
            best = trial
    if best is None:
        raise NoPlan(min(reasons, key=len) if reasons else "no room to line them up")
    p.adopt(best)


def _build_row(p: Planner, names: tuple[str, ...], k: int, cell: str | None) -> None:
    anchor = names[k]
    if cell is not None:
        p.free(anchor, "before it can move")
        why = f"the {anchor} is number {k + 1} in the row; in the {cell} there is room around it"
        if not p.place_in(anchor, cell, why):
            raise NoPlan(f"no room in the {cell} for the {anchor}")
    elif p.get(anchor).on is not None:
        raise NoPlan(f"the {anchor} rests on the {p.get(anchor).on}, so the row cannot start from it")
    for i in range(k + 1, len(names)):
        _row_step(p, names, names[i - 1], names[i], "right of")
    for i in range(k - 1, -1, -1):
        _row_step(p, names, names[i + 1], names[i], "left of")


def _row_step(p: Planner, names: tuple[str, ...], ref: str, cur: str, relation: str) -> None:
    left, right = (ref, cur) if relation == "right of" else (cur, ref)
    if line_pair_ok(p.get(left), p.get(right), -HOLD_SLACK):
        return
    p.free(cur, "before it can move")
    action = Action(cur, relation, ref)
    side = "right after" if relation == "right of" else "just before"
    why = f"the {cur} comes {side} the {ref} in the row, at the same height"
    if p.try_move(action, why):
        return
    # Something stands where the object must go: move it away from the row, once or twice.
    r, o = p.get(ref), p.get(cur)
    dx = 1.0 if relation == "right of" else -1.0
    spot = (r.x + dx * (r.radius + o.radius + 0.04), r.y)
    near = [b for b in p.scene.objects if math.dist(b.pos, spot) < b.radius + o.radius + ROW_CLEARANCE]
    blockers = [b for b in near if b.on is None and b.name not in names and p.scene.is_clear(b.name)]
    for b in sorted(blockers, key=lambda b: math.dist(b.pos, spot))[:2]:
        out_of_row = lambda s, n=b.name: abs(s.get(n).y - r.y) > s.get(n).radius + o.radius  # noqa: E731
        p.park(b.name, f"the {b.name} stands where the {cur} has to go", out_of_row)
        if p.try_move(action, why):
            return
    raise NoPlan(f"there is no room {relation.replace(' of', '')} of the {ref} to line them up")


def _gather(p: Planner, goal: Goal) -> None:
    region = goal.region
    assert region is not None
    names = goal.selected(p.initial)
    if goal.colours and set(goal.colours) not in (set(WARM_COLOURS), set(COOL_COLOURS)):
        absent = [c for c in goal.colours if p.initial.by_colour(c) is None]
        if absent:
            raise NoPlan(f"there is no {absent[0]} object in the scene")
    if not names:
        raise NoPlan(f"there are no {selector_text(goal).removeprefix('the ')} in the scene")
    # Random spots look natural; packing into the region's corner first fits more objects.
    trial = p.fork()
    try:
        _gather_into(trial, goal, names, region, pack=False)
    except NoPlan:
        trial = p.fork()
        _gather_into(trial, goal, names, region, pack=True)
    p.adopt(trial)


def _gather_into(p: Planner, goal: Goal, names: tuple[str, ...], region: str, pack: bool) -> None:
    region_cells = tuple(cells_in(region))
    evict_why = f"the {{name}} takes room in the {region} and is not one of {selector_text(goal)}"
    # One object per pass, as making room can move an object already gathered off its support.
    while True:
        todo = [n for n in names if not strictly_in(p.get(n), region)]
        if not todo:
            return
        # Tops before what they rest on (a loaded object cannot move), big before small (packing).
        name = min(todo, key=lambda n: (-p.scene.stack_depth(n), -SIZE_ORDER.index(_size(p, n))))
        p.free(name, "before it can move", None, region_cells)
        why = f"the {name} must end in the {region}"
        while not p.place_in(name, region, why, stack_on=lambda o: True, pack=pack):
            if not p.evict(region, set(names), evict_why):
                raise NoPlan(f"there is no room in the {region} for {len(names)} objects")


def _swap(p: Planner, goal: Goal) -> None:
    a, b = goal.objects
    cell_a, cell_b = cell_of(*p.initial.get(a).pos), cell_of(*p.initial.get(b).pos)
    if cell_a == cell_b:
        raise NoPlan(f"the {a} and the {b} both start in the {cell_a}, so swapping their cells would change nothing")
    dest = {a: cell_b, b: cell_a}
    temps = sorted((c for c in CELLS if c not in (cell_a, cell_b)), key=lambda c: math.dist(cell_centre(c), p.get(a).pos))
    plans = [[a, b], [b, a]] + [[(a, t), b, a] for t in temps[:2]] + [[(b, t), a, b] for t in temps[:2]]
    best, reasons = None, []
    for plan in plans:
        if best is not None and len(plan) > len(best.moves):
            break
        trial = p.fork()
        try:
            for item in plan:
                name, cell = item if isinstance(item, tuple) else (item, dest[item])
                _swap_move(trial, goal, name, cell, dest)
        except NoPlan as e:
            reasons.append(str(e))
            continue
        if best is None or len(trial.moves) < len(best.moves):
            best = trial
    if best is None:
        raise NoPlan(min(reasons, key=len))
    p.adopt(best)


def _swap_move(p: Planner, goal: Goal, name: str, cell: str, dest: dict[str, str]) -> None:
    if strictly_in(p.get(name), cell):
        return
    swap_cells = tuple(dest.values())
    p.free(name, "before it can move", None, swap_cells)
    other = next(n for n in dest if n != name)
    if cell == dest[name]:
        why = f"the {name} goes to the {cell}, where the {other} started"
    else:
        why = f"the {other} still holds the {dest[name]} and there is no room beside it, so the {name} waits in the {cell}"
    while not p.place_in(name, cell, why):
        if not p.evict(cell, set(dest), f"the {{name}} takes room in the {cell}, which the {name} needs", swap_cells):
            raise NoPlan(f"there is no room in the {cell} for the {name}")


def _sort(p: Planner, goal: Goal) -> None:
    key = goal.key
    assert key is not None

    def home(name: str) -> str:
        return sort_region(p.get(name), key)

    def misplaced() -> list[str]:
        names = [o.name for o in p.scene.objects if not strictly_in(o, home(o.name))]
        return sorted(names, key=lambda n: (-p.scene.stack_depth(n), -SIZE_ORDER.index(_size(p, n))))

    reasons: list[str] = []
    while misplaced():
        progress = False
        for name in misplaced():
            if strictly_in(p.get(name), home(name)):
                continue  # sent home already, as the top of another object
            trial = p.fork()
            try:
                _send_home(trial, name, key, home)
            except NoPlan as e:
                reasons.append(str(e))
                continue
            p.adopt(trial)
            progress = True
        if not progress:  # the step limit, when it was hit, is the reason to report
            raise NoPlan(min(reasons, key=lambda r: "steps" not in r))


def _send_home(p: Planner, name: str, key: str, home) -> None:
    while not p.scene.is_clear(name):  # what rests on it goes straight to its own place
        top = p.scene.supported_by(name)[0].name
        _send_home(p, top, key, home)
    o = p.get(name)
    trait = o.colour if key == "colour" else o.shape
    reason = (
        f"{trait} is a {'warm' if trait in WARM_COLOURS else 'cool'} colour"
        if key == "colour"
        else f"{trait}s go in the {home(name)}"
    )
    why = f"{reason}, so the {name} belongs in the {home(name)}"
    if not p.place_in(name, home(name), why, stack_on=lambda b: home(b.name) == home(name)):
        raise NoPlan(f"there is no room in the {home(name)} for the {name}")


def _clear(p: Planner, goal: Goal) -> None:
    region = goal.region
    assert region is not None
    inside = [o.name for o in p.scene.objects if touches(o, region)]
    inside.sort(key=lambda n: -p.scene.stack_depth(n))  # tops first: a loaded object cannot move
    for name in inside:
        if not touches(p.get(name), region):
            continue
        try:
            p.park(
                name,
                f"the {name} is in the {region}, which must be empty",
                lambda s, n=name: not touches(s.get(n), region),
                tuple(cells_in(region)),
            )
        except NoPlan:
            raise NoPlan(f"there is no room outside the {region} for the {name}") from None


def _compound(p: Planner, goal: Goal) -> None:
    reason = ""
    for _ in range(COMPOUND_TRIES):
        trial = p.fork()
        for i, part in enumerate(goal.parts):
            trial.keep, trial.part = goal.parts[:i], i
            plan_goal(trial, part)  # a part that cannot be reached at all fails the same way every try
            undone = next((q for q in goal.parts[:i] if not q.holds(p.initial, trial.scene, strict=True)), None)
            if undone is not None:
                reason = f"'{goal_to_text(part)}' would undo '{goal_to_text(undone)}'"
                break
        else:
            p.adopt(trial)
            return
    raise NoPlan(reason)


def _move(p: Planner, goal: Goal) -> None:
    name = goal.objects[0]
    p.free(name, "before it can move")
    if goal.region is not None:
        why = f"the goal asks for the {name} in the {goal.region}"
        while not p.place_in(name, goal.region, why):
            if not p.evict(goal.region, {name}, f"the {{name}} takes the room the {name} needs in the {goal.region}"):
                raise NoPlan(f"there is no room in the {goal.region} for the {name}")
        return
    assert goal.relation is not None
    anchor, action = goal.objects[1], Action(name, goal.relation, goal.objects[1])
    why = f"the goal asks for the {name} {goal.relation} the {anchor}"
    if p.try_move(action, why):
        return
    # Something stands where the object must go: park the nearest standing objects there, once or twice.
    a, o = p.get(anchor), p.get(name)
    dx, dy = DIRECTIONS[goal.relation]
    reach = a.radius + o.radius + 0.04
    spot = (a.x + dx * reach, a.y + dy * reach)
    near = [b for b in p.scene.objects if math.dist(b.pos, spot) < b.radius + o.radius + ROW_CLEARANCE]
    blockers = [b for b in near if b.on is None and b.name not in goal.objects and p.scene.is_clear(b.name)]
    for b in sorted(blockers, key=lambda b: math.dist(b.pos, spot))[:2]:
        away = lambda s, n=b.name: math.dist(s.get(n).pos, spot) >= s.get(n).radius + o.radius + ROW_CLEARANCE  # noqa: E731
        p.park(b.name, f"the {b.name} stands where the {name} has to go", away)
        if p.try_move(action, why):
            return
    # No room beside the anchor where it stands (a table edge, a crowd): bring it to the centre first.
    trial = p.fork()
    try:
        trial.free(anchor, "before it can move")
        if trial.place_in(anchor, "centre", f"there is no room {goal.relation} the {anchor} where it stands") and trial.try_move(
            action, why
        ):
            p.adopt(trial)
            return
    except NoPlan:
        pass
    raise NoPlan(f"there is no room {goal.relation} the {anchor} for the {name}")


_STRATEGIES = {MOVE: _move, STACK: _stack, LINE_UP: _line_up, GATHER: _gather, SWAP: _swap, SORT: _sort, CLEAR: _clear}
