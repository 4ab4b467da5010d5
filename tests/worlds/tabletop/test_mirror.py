"""The left-right mirror the critic's training data is augmented with: mirrored actions, and an
oracle that judges a mirrored clip of the mirrored action as it judges the clip."""

import numpy as np

from spiral.agents.critic.learned_data import training_probes
from spiral.worldmodels.tabletop import TabletopWorldModel, default_weights
from spiral.worlds.tabletop.actions import OBJECT_NAMES, Action, actions_on, mirrored, sample_target, trajectory
from spiral.worlds.tabletop.checks import check_clip
from spiral.worlds.tabletop.failures import make_failure
from spiral.worlds.tabletop.grammar import to_text
from spiral.worlds.tabletop.render import render_motion


def test_mirrored_swaps_left_and_right_and_undoes_itself():
    s, a = OBJECT_NAMES[0], OBJECT_NAMES[1]
    assert mirrored(Action(s, "in", "top left corner")) == Action(s, "in", "top right corner")
    assert mirrored(Action(s, "in", "middle right")) == Action(s, "in", "middle left")
    assert mirrored(Action(s, "in", "centre")) == Action(s, "in", "centre")
    assert mirrored(Action(s, "left of", a)) == Action(s, "right of", a)
    assert mirrored(Action(s, "above", a)) == Action(s, "above", a)
    every = actions_on(s)
    assert sorted(map(to_text, map(mirrored, every))) == sorted(map(to_text, every))
    assert all(mirrored(mirrored(x)) == x for x in every)


def verdicts(clip: np.ndarray, action: Action) -> tuple[bool, bool]:
    """Whether the oracle passes the clip, and whether it judges its mirror image alike."""
    a = check_clip(clip, action)
    b = check_clip(np.ascontiguousarray(clip[:, :, ::-1]), mirrored(action))
    return a.ok, (a.ok, a.failure_kind) == (b.ok, b.failure_kind)


def test_the_oracle_judges_mirror_images_alike():
    probes = training_probes(16, seed=0)
    judged = []  # (passed, mirror image judged alike) per clip
    for i, p in enumerate(probes):
        rng = np.random.default_rng(i)
        target = sample_target(p.scene, p.action, rng)
        clips = [render_motion(trajectory(p.scene, p.action, target, 8), 64, p.action.subject)]
        failure = make_failure(p.scene, p.action, target, 8, rng)
        clips += [failure.render(64)] if failure is not None else []
        judged += [verdicts(c, p.action) for c in clips]
    # World-model samples, with their imperfections, are what the critic is trained on.
    wm = TabletopWorldModel.load(default_weights(), frame_size=64)
    samples = wm.sample_frames(np.stack([p.frame for p in probes]), [to_text(p.action) for p in probes], list(range(16)))
    judged += [verdicts(c, p.action) for c, p in zip(samples, probes, strict=True)]
    oks, alike = zip(*judged, strict=True)
    assert any(oks) and not all(oks)  # both verdicts were compared
    assert all(alike)
