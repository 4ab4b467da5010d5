from collections import Counter
from dataclasses import replace

import numpy as np
import pytest

from spiral.errors import SpiralError
from spiral.worlds.tabletop import solver_plan
from spiral.worlds.tabletop.actions import apply, postcondition_holds, precondition_errors
from spiral.worlds.tabletop.goal_sampling import propose
from spiral.worlds.tabletop.goals import GOAL_FAMILIES, LEVELS, MAX_STEPS, Goal, goal_to_text, parse_goal, sample_goal
from spiral.worlds.tabletop.scene import Scene, TableObject, random_scene, validity_errors
from spiral.worlds.tabletop.solver import Infeasible, Solution, solve, steps_needed


def table(*objects: tuple) -> Scene:
    scene = Scene(tuple(TableObject(*o) for o in objects))
    assert not validity_errors(scene), validity_errors(scene)
    return scene


def checked(scene: Scene, goal: Goal, seed: int = 0) -> Solution:
    """Solve and check everything a solution promises."""
    return verified(scene, goal, solve(scene, goal, np.random.default_rng(seed)))


def verified(scene: Scene, goal: Goal, solution: Solution | Infeasible) -> Solution:
    assert isinstance(solution, Solution), getattr(solution, "reason", None)
    assert len(solution.steps) <= MAX_STEPS
    current = scene
    for step in solution.steps:
        assert step.before == current
        assert not precondition_errors(current, step.action), step.action
        assert step.after == apply(current, step.action, step.target)
        assert postcondition_holds(step.after, step.action), step.action
        assert not validity_errors(step.after)
        current = step.after
    assert solution.final == current
    assert goal.holds(scene, current) and goal.holds(scene, current, strict=True)
    return solution


def infeasible(scene: Scene, goal: Goal) -> str:
    result = solve(scene, goal, np.random.default_rng(0))
    assert isinstance(result, Infeasible), [s.instruction for s in result.steps]
    return result.reason


def instructions(solution: Solution) -> list[str]:
    return [s.instruction for s in solution.steps]


RED = ("red", "square", "large", 0.2, 0.2)
BLUE = ("blue", "circle", "medium", 0.8, 0.2)
GREEN = ("green", "triangle", "small", 0.5, 0.8)


# --- stack --------------------------------------------------------------------------------------


def test_stack_one_step():
    solution = checked(table(RED, BLUE, GREEN), parse_goal("stack the green triangle on the red square"))
    assert instructions(solution) == ["put the green triangle on the red square"]
    assert solution.level == "short"


def test_stack_clears_the_base_first():
    scene = table(RED, BLUE, GREEN, ("yellow", "circle", "small", 0.2, 0.2, "red square"))
    solution = checked(scene, parse_goal("stack the green triangle on the red square"))
    assert [s.action.subject for s in solution.steps] == ["yellow circle", "green triangle"]
    assert "stacked on the red square" in solution.steps[0].why


def test_tower_is_built_bottom_up_and_unloads_the_middle_object():
    scene = table(RED, BLUE, ("green", "triangle", "small", 0.8, 0.2, "blue circle"))
    solution = checked(scene, parse_goal("stack the green triangle on the blue circle on the red square"))
    assert [(s.action.subject, s.action.relation) for s in solution.steps][1:] == [
        ("blue circle", "on"),
        ("green triangle", "on"),
    ]
    assert len(solution.steps) == 3 and solution.level == "medium"


@pytest.mark.parametrize(
    "text, reason",
    [
        ("stack the red square on the blue circle", "the red square is larger than the blue circle, so it cannot rest on it"),
        ("stack the green triangle on the purple circle", "there is no purple circle in the scene"),
        ("stack the blue circle on the yellow square", "the blue circle is the same size as the yellow square"),
    ],
)
def test_stack_infeasible(text, reason):
    assert reason in infeasible(table(RED, BLUE, GREEN, ("yellow", "square", "medium", 0.5, 0.45)), parse_goal(text))


# --- line up ------------------------------------------------------------------------------------


def test_line_up_chains_right_of_moves():
    goal = parse_goal("line up the green triangle, the red square and the blue circle from left to right")
    solution = checked(table(RED, BLUE, GREEN), goal)
    assert 1 <= len(solution.steps) <= 3
    assert all(s.action.relation in ("right of", "left of", "in") for s in solution.steps)


def test_line_up_takes_objects_off_their_supports():
    red = ("red", "square", "large", 0.5, 0.5)
    scene = table(red, ("green", "triangle", "small", 0.5, 0.5, "red square"), BLUE)
    solution = checked(scene, parse_goal("line up the green triangle and the red square from left to right"))
    assert instructions(solution) == ["move the green triangle to the left of the red square"]


# --- gather -------------------------------------------------------------------------------------


def test_gather_by_shape_moves_only_what_is_missing():
    scene = table(RED, BLUE, GREEN, ("yellow", "circle", "small", 0.2, 0.8))
    solution = checked(scene, parse_goal("gather the circles in the left side"))
    assert instructions(solution) == ["move the blue circle to the left side"]


def test_gather_makes_room_by_moving_other_objects_out():
    # The red square fills the corner; the circles (too big to rest on it) fit once it has gone.
    red = ("red", "square", "medium", 0.2, 0.2)
    scene = table(red, ("blue", "circle", "medium", 0.8, 0.5), ("green", "circle", "medium", 0.5, 0.8))
    solution = checked(scene, parse_goal("gather the blue circle and the green circle in the top left corner"))
    assert solution.steps[0].action.subject == "red square" and len(solution.steps) == 3
    assert "takes room" in solution.steps[0].why


def test_gather_unloads_a_blocker_before_moving_it():
    scene = table(RED, ("yellow", "circle", "small", 0.2, 0.2, "red square"), ("blue", "circle", "large", 0.8, 0.8))
    solution = checked(scene, parse_goal("gather the circles in the top left corner"))
    assert len(solution.steps) == 4


def test_gather_infeasible():
    big = [
        (c, "square", "large", x, y)
        for c, x, y in [("red", 0.2, 0.2), ("blue", 0.8, 0.2), ("green", 0.2, 0.8), ("yellow", 0.8, 0.8)]
    ]
    assert infeasible(table(*big), parse_goal("gather the squares in the top left corner")) == (
        "there is no room in the top left corner for 4 objects"
    )
    assert infeasible(table(RED, BLUE), parse_goal("gather the red and purple objects in the centre")) == (
        "there is no purple object in the scene"
    )
    assert infeasible(table(RED, BLUE), parse_goal("gather the triangles in the centre")) == "there are no triangles in the scene"


# --- swap ---------------------------------------------------------------------------------------


def test_swap_directly_when_there_is_room():
    # Both sit near the outer corners of their cells, leaving room beside them.
    small = table(("red", "square", "small", 0.12, 0.12), ("blue", "circle", "small", 0.72, 0.72))
    solution = checked(small, parse_goal("swap the red square and the blue circle"))
    assert len(solution.steps) == 2


def test_swap_through_a_temporary_cell_when_cells_are_full():
    big = table(("red", "square", "large", 0.17, 0.17), ("blue", "square", "large", 0.83, 0.17))
    solution = checked(big, parse_goal("swap the red square and the blue square"))
    assert len(solution.steps) == 3 and solution.level == "medium"
    assert "waits in the" in solution.steps[0].why


def test_swap_in_one_cell_is_infeasible():
    scene = table(RED, ("blue", "circle", "small", 0.2, 0.2, "red square"))
    reason = infeasible(scene, parse_goal("swap the red square and the blue circle"))
    assert (
        reason
        == "the red square and the blue circle both start in the top left corner, so swapping their cells would change nothing"
    )


# --- sort and clear -----------------------------------------------------------------------------


def test_sort_by_colour_splits_a_mixed_stack():
    scene = table(("blue", "square", "large", 0.5, 0.5), ("red", "circle", "small", 0.5, 0.5, "blue square"), GREEN)
    solution = checked(scene, parse_goal("sort the objects by colour"))
    assert [s.action.subject for s in solution.steps][:1] == ["red circle"]
    assert len(solution.steps) == 3


def test_sort_by_shape():
    solution = checked(table(RED, BLUE, GREEN), parse_goal("sort the objects by shape"))
    assert {s.action.subject for s in solution.steps} == {"blue circle", "green triangle"}


def test_clear_moves_tops_first():
    scene = table(RED, ("yellow", "circle", "small", 0.2, 0.2, "red square"), BLUE)
    solution = checked(scene, parse_goal("clear the top left corner"))
    assert [s.action.subject for s in solution.steps] == ["yellow circle", "red square"]


# --- compound and general -----------------------------------------------------------------------


def test_compound_keeps_the_swap_against_the_start():
    scene = table(RED, BLUE, GREEN)
    solution = checked(
        scene, parse_goal("swap the red square and the blue circle, then stack the green triangle on the red square")
    )
    assert solution.steps[-1].action.relation == "on" and "Part 2" in solution.reasoning


def test_compound_that_undoes_itself_is_infeasible():
    goal = parse_goal("stack the green triangle on the red square, then clear the top left corner")
    assert "would undo 'stack the green triangle on the red square'" in infeasible(table(RED, BLUE, GREEN), goal)


def test_already_achieved_goal_needs_no_steps():
    scene = table(RED, BLUE, GREEN)
    solution = checked(scene, parse_goal("clear the centre"))
    assert solution.steps == () and solution.level == "short" and "already holds" in solution.reasoning


def test_step_limit_is_reported(monkeypatch):
    monkeypatch.setattr(solver_plan, "MAX_STEPS", 1)
    scene = table(RED, BLUE, GREEN, ("yellow", "circle", "small", 0.2, 0.2, "red square"))
    reason = infeasible(scene, parse_goal("stack the green triangle on the red square"))
    assert reason == "it would take more than 1 steps"


def test_any_proposed_goal_is_solved_or_reported_infeasible():
    outcomes = Counter()
    for seed in range(120):
        rng = np.random.default_rng(seed)
        scene = random_scene(rng)
        for family in GOAL_FAMILIES:
            goal = propose(scene, rng, family, list(LEVELS)[seed % 3])
            if goal is None:
                continue
            result = solve(scene, goal, rng)
            if isinstance(result, Infeasible):
                assert len(result.reason) > 20 and "Error" not in result.reason
                outcomes["infeasible"] += 1
            else:
                verified(scene, goal, result)
                outcomes["solved"] += 1
    assert outcomes["solved"] > outcomes["infeasible"] > 20, outcomes


def test_invalid_scene_is_reported_not_raised():
    clash = Scene((TableObject("red", "square", "large", 0.2, 0.2), TableObject("blue", "square", "large", 0.25, 0.2)))
    assert "not physically valid" in infeasible(clash, parse_goal("clear the centre"))


def test_reasoning_walks_through_the_plan():
    scene = table(RED, BLUE, GREEN, ("yellow", "circle", "small", 0.2, 0.2, "red square"))
    goal = parse_goal("stack the green triangle on the red square")
    solution = checked(scene, goal)
    text = solution.reasoning
    assert "I see 4 objects" in text and "a small yellow circle on the red square" in text
    assert goal_to_text(goal) in text
    positions = [text.index(s.instruction) for s in solution.steps]
    assert positions == sorted(positions) and all(s.why in text for s in solution.steps)


def test_deterministic_per_seed_and_step_count_independent_of_seed():
    scene = random_scene(np.random.default_rng(4), num_objects=6)
    goal = sample_goal(scene, np.random.default_rng(4), "long")
    a, b = solve(scene, goal, np.random.default_rng(1)), solve(scene, goal, np.random.default_rng(1))
    assert a == b
    others = [solve(scene, goal, np.random.default_rng(s)) for s in range(2, 6)]
    assert {len(o.steps) for o in others} == {len(a.steps)} == {steps_needed(scene, goal)}
    assert any(o.steps != a.steps for o in others)  # landing spots vary with the generator


def jittered(scene: Scene, rng: np.random.Generator, drop_links: bool) -> Scene:
    """A scene as a pixel reader might return it: positions off by up to a pixel, and maybe no
    `on` links (a stacked object then sits at its base's centre, read separately)."""
    objs = []
    for o in scene.objects:
        dx, dy = rng.uniform(-0.01, 0.01, size=2)
        objs.append(replace(o, x=o.x + dx, y=o.y + dy, on=None if drop_links else o.on))
    return Scene(tuple(objs))


@pytest.mark.slow
def test_random_scenes_and_goals_of_every_level():
    """1000 random scenes, a sampled goal of each level in turn, solved and executed step by step."""
    hit, missed, families = Counter(), Counter(), Counter()
    for seed in range(1000):
        rng = np.random.default_rng(seed)
        scene = random_scene(rng)
        level = list(LEVELS)[seed % len(LEVELS)]
        try:
            goal = sample_goal(scene, rng, level)
        except SpiralError:
            missed[level, len(scene.objects)] += 1
            continue
        solution = checked(scene, goal, seed)
        lo, hi = LEVELS[level]
        assert lo <= len(solution.steps) <= hi and solution.level == level
        assert goal.holds(jittered(scene, rng, False), jittered(solution.final, rng, seed % 2 == 0))
        hit[level] += 1
        families[goal.family] += 1
    # Only long goals can be out of reach (two to four objects rarely need five steps without
    # undoing themselves), and medium ones on a table of two objects; the rest are met.
    assert all(level == "long" or n == 2 for level, n in missed), missed
    assert sum(v for (_, n), v in missed.items() if n >= 5) <= 5, missed
    assert hit["short"] + hit["medium"] > 640 and hit["long"] > 180 and len(families) == 7, (hit, families)


def test_steps_are_named_as_tightly_as_a_compound_goal_needs():
    """Line up, then gather: moved into the bottom side anywhere, the second object of the line
    lands on the wrong side of the first about half the time; named relative to it, it keeps the
    line. Random landing spots for every step (as a world model picks them) reach the goal far more
    often with the solver's wording than with the planning pass's own."""
    from spiral.worlds.tabletop.solver import plan_moves
    from spiral.worlds.tabletop.solver_robust import TIGHTER_WHY, finish_share

    scene = random_scene(np.random.default_rng(2103903924))
    goal = parse_goal(
        "line up the orange square and the red square from left to right, then gather the red and orange objects in the bottom side"
    )
    solution = checked(scene, goal)
    planned = [m.action for m in plan_moves(scene, goal)]
    named = [s.action for s in solution.steps]
    renamed = [(a, b) for a, b in zip(planned, named, strict=True) if a != b]
    assert renamed and all(b.subject == a.subject for a, b in renamed)
    assert all(TIGHTER_WHY in s.why for s in solution.steps if s.action not in planned)
    assert TIGHTER_WHY in solution.reasoning
    rng = np.random.default_rng(0)
    before, after = (finish_share(scene, actions, goal, scene, rng) for actions in (planned, named))
    assert after >= 0.8 and after >= before + 0.3, (before, after)


def test_a_wording_is_replaced_only_when_clearly_better(monkeypatch):
    """The solver's own wording stays unless another keeps the goal MARGIN more often; a wording that
    always keeps it is not even compared."""
    from spiral.worlds.tabletop import solver_robust

    scene = random_scene(np.random.default_rng(2103903924))
    goal = parse_goal(
        "line up the orange square and the red square from left to right, then gather the red and orange objects in the bottom side"
    )
    step = next(s for s in checked(scene, goal).steps if s.action.relation != "on")
    own, other = step.action, solver_robust.alternatives(step)[0]

    def pick(shares: dict) -> object:
        monkeypatch.setattr(solver_robust, "finish_share", lambda before, actions, *a: shares.get(actions[0], 0.0))
        return solver_robust._tightest(replace(step, action=own), [], goal, scene, np.random.default_rng(0))

    assert pick({own: 1.0, other: 1.0}) == own
    assert pick({own: 0.5, other: 0.5 + solver_robust.MARGIN / 2}) == own
    assert pick({own: 0.5, other: 0.5 + solver_robust.MARGIN}) == other
