"""High-level goals of the tabletop world, in one place.

A goal ("stack the green triangle on the red square", "sort the objects by colour") is a typed
`Goal` record; `goal.holds(initial, final)` judges it on two scenes (also ones read back from
pixels); `goal_to_text` / `parse_goal` convert it to and from text; `sample_goal` draws one of a
chosen task level for a scene; `solver.solve` expands it into atomic steps.

The record and its meaning live in `goal_spec.py`, the text in `goal_text.py`, sampling in
`goal_sampling.py` (which needs the solver, itself built on the record).
"""

from spiral.worlds.tabletop.goal_sampling import sample_goal
from spiral.worlds.tabletop.goal_spec import (
    BASIC_FAMILIES,
    CLEAR,
    COMPOUND,
    GATHER,
    GOAL_FAMILIES,
    HOLD_SLACK,
    LEVELS,
    LINE_UP,
    MAX_STEPS,
    SORT,
    SORT_KEYS,
    SORT_REGIONS,
    STACK,
    SWAP,
    Goal,
    level_of,
)
from spiral.worlds.tabletop.goal_text import EXAMPLE_GOALS, goal_to_text, parse_goal

__all__ = [
    "BASIC_FAMILIES", "CLEAR", "COMPOUND", "EXAMPLE_GOALS", "GATHER", "GOAL_FAMILIES", "HOLD_SLACK", "LEVELS",
    "LINE_UP", "MAX_STEPS", "SORT", "SORT_KEYS", "SORT_REGIONS", "STACK", "SWAP", "Goal", "goal_to_text",
    "level_of", "parse_goal", "sample_goal",
]  # fmt: skip
