"""Steps named as tightly as the goal needs.

The solver picks a landing spot for every move, but a step's instruction names only a region or a
relation ("move the yellow triangle to the top side"), and the world model lands the object
anywhere that instruction allows. When part of a compound goal was reached earlier, many of those
spots undo it: the yellow triangle sorted into the left side lands in the top side's middle, or the
second object of a line lands left of the first. Here, step by step, the rest of the plan is run
many times from the step's scene with every step landing at a random spot its wording allows; when
a tighter wording of the step (a cell or corner inside its region, or a relation to an object
standing next to its spot) reaches the goal clearly more often than the planner's, it takes its
place. The moves, their spots and the number of steps stay the same. (PlannedStep records are
passed in; solver.py imports this module, so they are not named in the annotations.)
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from spiral.worlds.tabletop.actions import (
    DIRECTIONS,
    REGIONS,
    Action,
    apply,
    precondition_errors,
    relation_holds,
    sample_target,
)
from spiral.worlds.tabletop.goal_spec import Goal
from spiral.worlds.tabletop.scene import Scene, validity_errors

SAMPLES = 32  # random runs of the rest of the plan per candidate wording
# A tighter wording replaces the solver's own only when it keeps the goal this much more often:
# the solver's wording is the more natural one, and 32 runs are noisy.
MARGIN = 0.15
TIGHTER_WHY = "named this tightly because more of the places that wording allows keep the goal"


def robust_actions(steps: list, goal: Goal, start: Scene, rng: np.random.Generator) -> list:
    """`steps` (PlannedStep records, chained) with fragile actions renamed, first to last; see the
    module text."""
    actions = [step.action for step in steps]
    for i, step in enumerate(steps):
        actions[i] = _tightest(step, actions[i + 1 :], goal, start, rng)
    return [
        step if action == step.action else replace(step, action=action, why=f"{step.why}; {TIGHTER_WHY}")
        for step, action in zip(steps, actions, strict=True)
    ]


def _tightest(step, rest: list[Action], goal: Goal, start: Scene, rng: np.random.Generator) -> Action:
    own = step.action
    if own.relation == "on":  # a put lands on its base: nothing to tighten
        return own
    own_share = finish_share(step.before, [own, *rest], goal, start, rng)
    if own_share == 1.0:
        return own
    best, best_share = own, own_share
    for action in alternatives(step):
        share = finish_share(step.before, [action, *rest], goal, start, rng)
        if share > best_share:
            best, best_share = action, share
    return best if best_share >= own_share + MARGIN else own


def alternatives(step) -> list[Action]:
    """Wordings that also hold at the step's own spot: regions inside its region, and relations to
    objects standing on the table next to the spot."""
    own, after, subject = step.action, step.after, step.action.subject
    options = []
    if own.relation == "in":
        x0, x1, y0, y1 = REGIONS[own.anchor]
        options += [
            Action(subject, "in", name)
            for name, (a0, a1, b0, b1) in REGIONS.items()
            if name != own.anchor and x0 <= a0 and a1 <= x1 and y0 <= b0 and b1 <= y1
        ]
    for o in after.objects:
        if o.name != subject and o.on is None:
            options += [Action(subject, relation, o.name) for relation in DIRECTIONS]
    return [
        a for a in options if relation_holds(after, subject, a.relation, a.anchor) and not precondition_errors(step.before, a)
    ]


def finish_share(
    before: Scene, actions: list[Action], goal: Goal, start: Scene, rng: np.random.Generator, runs: int = SAMPLES
) -> float:
    """How often the goal holds (as the judge reads it) after doing these actions from `before`, each
    landing where `sample_target` puts it: uniformly in a region, or close beside a relation's
    anchor. The shipped world model lands beside an anchor about as close (docs/RESULTS.md at tag results-diary, "Steps
    named as tightly as the goal needs"); sampling the whole of "next to" instead made the loop no
    better than the untightened wording."""
    good = 0
    for _ in range(runs):
        scene = before
        for action in actions:
            target = None if precondition_errors(scene, action) else sample_target(scene, action, rng)
            if target is None:
                break
            scene = apply(scene, action, target)
        else:
            good += not validity_errors(scene) and goal.holds(start, scene)
    return good / runs
