"""The goal solver: expands a high-level goal into atomic steps for a given scene.

    solve(scene, goal, rng, start=None) -> Solution | Infeasible

`start` is the scene the episode began in when a replan plans on from a later `scene`: goals are
judged against where things started (a swap trades the cells the objects *started* in).

Which steps a goal needs is decided by a planning pass whose randomness is seeded from the scene and
the goal themselves, so the number of steps (and so the task level) is a property of the task, the
same for every `rng`; `rng` then draws where each moved object lands, giving varied but equally
valid episodes. Each step's precondition holds in its `before` scene, `after` is
`actions.apply(before, action, target)`, every scene on the way is valid, and the goal holds
(strictly) at the end.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import numpy as np

from spiral.worlds.tabletop.actions import Action, Target, apply, cell_of, precondition_errors, sample_target
from spiral.worlds.tabletop.goal_spec import (
    COMPOUND,
    GATHER,
    HOLD_SLACK,
    LINE_UP,
    MOVE,
    SORT,
    SORT_REGIONS,
    STACK,
    SWAP,
    Goal,
    in_region,
    level_of,
    sort_region,
)
from spiral.worlds.tabletop.goal_text import and_list, goal_to_text, selector_text
from spiral.worlds.tabletop.grammar import to_text
from spiral.worlds.tabletop.scene import Scene, TableObject, validity_errors
from spiral.worlds.tabletop.solver_families import plan_goal
from spiral.worlds.tabletop.solver_plan import Move, NoPlan, Planner
from spiral.worlds.tabletop.solver_robust import robust_actions

# Draws of fresh landing spots before falling back to the planning pass's own spots.
REALISE_TRIES = 3


@dataclass(frozen=True)
class PlannedStep:
    """One atomic step: `after == actions.apply(before, action, target)`; `why` is the planner's reason."""

    action: Action
    target: Target
    before: Scene
    after: Scene
    why: str = ""

    @property
    def instruction(self) -> str:
        return to_text(self.action)


@dataclass(frozen=True)
class Solution:
    """The steps that achieve `goal` from `initial`, and the reasoning a planner would write."""

    steps: tuple[PlannedStep, ...]
    reasoning: str
    goal: Goal
    initial: Scene

    @property
    def final(self) -> Scene:
        return self.steps[-1].after if self.steps else self.initial

    @property
    def level(self) -> str:
        """The task level ("short", "medium" or "long") by the number of steps; an achieved goal is short."""
        return level_of(len(self.steps))


@dataclass(frozen=True)
class Infeasible:
    """The goal cannot be achieved from this scene (within the step limit); `reason` says why."""

    reason: str


def solve(scene: Scene, goal: Goal, rng: np.random.Generator, start: Scene | None = None) -> Solution | Infeasible:
    """Expand `goal` into atomic steps for `scene` (the episode began in `start`, default `scene`).
    Deterministic for a given generator state."""
    start = start or scene
    moves = plan_moves(scene, goal, start)
    if isinstance(moves, Infeasible):
        return moves
    steps = _realise(scene, goal, moves, rng, start) or _chain(scene, moves, [m.target for m in moves])
    assert steps is not None  # the planning pass checked its own targets
    steps = robust_actions(steps, goal, start, rng)  # instructions as tight as the goal needs
    moves = [replace(m, action=step.action, why=step.why) for m, step in zip(moves, steps, strict=True)]
    return Solution(tuple(steps), reasoning(scene, goal, moves, start), goal, scene)


def plan_moves(scene: Scene, goal: Goal, start: Scene | None = None) -> list[Move] | Infeasible:
    """The planning pass alone: which moves, with the planner's own landing spots."""
    problems = validity_errors(scene)
    if problems:
        return Infeasible(f"the scene is not physically valid: {'; '.join(problems)}")
    planner = Planner(start or scene, np.random.default_rng(_task_seed(scene, goal)), current=scene)
    try:
        plan_goal(planner, goal)
    except NoPlan as e:
        return Infeasible(str(e))
    return planner.moves


def steps_needed(scene: Scene, goal: Goal) -> int | None:
    """How many steps the solver takes for this task (None: infeasible); the same for every rng."""
    moves = plan_moves(scene, goal)
    return None if isinstance(moves, Infeasible) else len(moves)


def _task_seed(scene: Scene, goal: Goal) -> int:
    # Records print every field, floats exactly; a move's relation is left out where it is empty, so
    # goals made before moves existed keep their seeds (and the shipped suites their step counts).
    text = repr((scene.objects, goal)).replace(", relation=None", "")
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def _realise(scene: Scene, goal: Goal, moves: list[Move], rng: np.random.Generator, start: Scene) -> list[PlannedStep] | None:
    """The same moves at landing spots drawn from `rng`; None when no draw worked out."""
    for _ in range(REALISE_TRIES):
        targets: list[Target] = []
        current = scene
        for m in moves:
            if precondition_errors(current, m.action):
                break
            target = sample_target(current, m.action, rng)
            if target is None:
                break
            targets.append(target)
            current = apply(current, m.action, target)
        else:
            if goal.holds(start, current, strict=True):
                return _chain(scene, moves, targets)
    return None


def _chain(scene: Scene, moves: list[Move], targets: list[Target]) -> list[PlannedStep] | None:
    steps, current = [], scene
    for m, target in zip(moves, targets, strict=True):
        after = apply(current, m.action, target)
        if precondition_errors(current, m.action) or validity_errors(after):
            return None
        steps.append(PlannedStep(m.action, target, current, after, m.why))
        current = after
    return steps


def reasoning(scene: Scene, goal: Goal, moves: list[Move], start: Scene | None = None) -> str:
    """The chain of thought behind a plan: what is on the table, what the goal needs, each step and
    why, and the check at the end."""
    lines = [f"I see {len(scene.objects)} objects: " + "; ".join(describe(scene, o) for o in scene.objects) + "."]
    lines.append(f"The goal is to {goal_to_text(goal)}. {needs(scene, goal, start or scene)}")
    if not moves:
        lines.append("This already holds, so nothing has to move.")
        return "\n".join(lines)
    lines.append(f"Plan ({len(moves)} step{'s' if len(moves) > 1 else ''}):")
    numbered = [(i, m) for i, m in enumerate(moves, 1)]
    for k, part in enumerate(goal.parts or (goal,)):
        mine = [(i, m) for i, m in numbered if m.part == k]
        if goal.family == COMPOUND:
            lines.append(f"Part {k + 1}, {goal_to_text(part)}:" + ("" if mine else " it already holds."))
        lines += [f"{i}. {to_text(m.action)}: {m.why}." for i, m in mine]
    lines.append("After these steps the goal holds.")
    return "\n".join(lines)


def describe(scene: Scene, o: TableObject) -> str:
    where = f"on the {o.on}" if o.on else f"in the {cell_of(o.x, o.y)}"
    return f"a {o.size} {o.name} {where}"


def needs(scene: Scene, goal: Goal, start: Scene) -> str:
    """What the goal asks for, in terms of this scene (and, for a swap, where the objects started)."""
    f = goal.family
    if f == COMPOUND:
        return "Each part must still hold at the end, so I do them in order and keep what earlier parts achieved."
    if f == STACK:
        chain = " on ".join(f"the {n}" for n in goal.objects)
        return f"Sizes must shrink upward ({chain}); only a strictly smaller object can rest on another."
    if f == LINE_UP:
        return "They must stand on the table in one row, each to the right of the one before."
    if f == GATHER:
        named = and_list(["the " + n for n in goal.selected(start)]) if goal.selected(start) else selector_text(goal)
        return f"That means {named} must end with their centres in the {goal.region}."
    if f == MOVE:
        where = f"in the {goal.region}" if goal.region else f"{goal.relation} the {goal.objects[-1]}, next to it"
        return f"The {goal.objects[0]} must end {where}."
    if f == SWAP:
        a, b = goal.objects
        cell_a, cell_b = (cell_of(*start.get(n).pos) if start.has(n) else "?" for n in (a, b))
        return f"The {a} starts in the {cell_a} and the {b} in the {cell_b}; each must end in the other's cell."
    if f == SORT:
        assert goal.key is not None
        homes: dict[str, list[str]] = {}
        for trait, region in SORT_REGIONS[goal.key].items():
            homes.setdefault(region, []).append(trait)
        noun = "" if goal.key == "shape" else " objects"
        rule = "; ".join(
            f"{and_list([t + ('s' if not noun else '') for t in ts])}{noun} go in the {r}" for r, ts in homes.items()
        )
        away = [o.name for o in scene.objects if not in_region(o, sort_region(o, goal.key), -HOLD_SLACK)]
        return f"Sorted by {goal.key}, {rule}. {_out_of_place(away, 'not in place yet')}"
    assert goal.region is not None
    inside = [o.name for o in scene.objects if in_region(o, goal.region, HOLD_SLACK)]
    return f"No object may keep its centre in the {goal.region}. {_out_of_place(inside, 'there now')}"


def _out_of_place(names: list[str], state: str) -> str:
    if not names:
        return ""
    verb = "is" if len(names) == 1 else "are"
    return f"{and_list(['the ' + n for n in names]).capitalize()} {verb} {state}."
