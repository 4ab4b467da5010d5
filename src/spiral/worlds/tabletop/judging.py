"""What the tabletop judge checks at the end of an episode: the goal itself when the grammar reads
it, or a task's `judge` condition, which lets a goal in free English be judged exactly while the
loop sees only the free text. The judge never reads anything a planner wrote.

A judge condition is one of:
    a canonical goal            "stack the blue circle on the red square, then clear the centre"
                                (any text `parse_goal` reads; see goals.EXAMPLE_GOALS)
    unchanged                   the request should be refused (impossible, ambiguous, or it names
                                nothing in the scene): success when every object ends where it started
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from spiral.errors import SpiralError
from spiral.worlds.tabletop.checks import MOVE_TOL
from spiral.worlds.tabletop.goals import Goal, parse_goal
from spiral.worlds.tabletop.scene import Scene

UNCHANGED = "unchanged"


@dataclass(frozen=True)
class Unchanged:
    """Every object of the start scene is still there, within the oracle's motion tolerance."""

    def holds(self, initial: Scene, final: Scene, *, strict: bool = False) -> bool:
        return all(final.has(o.name) and math.dist(o.pos, final.get(o.name).pos) <= MOVE_TOL for o in initial.objects)


def judged_condition(goal: str, judge: str | None = None) -> Goal | Unchanged:
    """The condition an episode's end is judged by; SpiralError when there is none to read."""
    if judge is not None:
        if judge.strip() == UNCHANGED:
            return Unchanged()
        try:
            return parse_goal(judge)
        except SpiralError as err:
            raise SpiralError(f"cannot read the judge condition {judge!r}: {err}") from None
    try:
        return parse_goal(goal)
    except SpiralError:
        raise SpiralError(
            f"the judge cannot read the goal {goal!r} (goals in free English need a judge condition: "
            f"a canonical goal such as 'stack the blue circle on the red square', or '{UNCHANGED}')"
        ) from None
