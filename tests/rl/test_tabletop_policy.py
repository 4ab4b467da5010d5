"""TabletopPolicy on a tiny random net: rollouts, exact on-policy ratios, the frozen reference, a
GRPO step moving the policy, the state round trip; and the curriculum's tasks."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from grpo_tiny import tiny_net
from tabletop_tiny import NetPixels

from spiral.rl.curriculum import TabletopTasks
from spiral.rl.grpo import GRPOSettings, clipped_objective, group_advantages, grpo_backward
from spiral.rl.policy import TabletopPolicy
from spiral.rl.sde import gaussian_kl
from spiral.worlds.tabletop.actions import worth_doing
from spiral.worlds.tabletop.grammar import to_text
from spiral.worlds.tabletop.oracle import read_scene
from spiral.worlds.tabletop.render import render
from spiral.worlds.tabletop.scene import random_scene

FRAME = render(random_scene(np.random.default_rng(0)), 64)
INSTRUCTION = "move the red square to the left side"
SEEDS = [11, 12, 13]


def make_policy(std=0.05) -> TabletopPolicy:
    return TabletopPolicy(NetPixels(tiny_net(std)))


@pytest.fixture(scope="module")
def fresh():
    policy = make_policy()
    return policy, policy.rollout(FRAME, INSTRUCTION, SEEDS, noise_level=0.7)


def test_rollout_shapes_and_exact_on_policy_ratio(fresh):
    policy, rollout = fresh
    steps = policy.wm.sampler.num_inference_steps
    assert rollout.frames.shape == (3, 8, 64, 64, 3) and rollout.frames.dtype == np.uint8
    assert np.array_equal(rollout.frames[:, 0], np.stack([FRAME] * 3))
    assert len(rollout.latents) == steps + 1 and len(rollout.timesteps) == steps + 1
    assert rollout.log_probs.shape == (3, steps) and torch.isfinite(rollout.log_probs).all()
    assert rollout.seeds == SEEDS and rollout.instruction == INSTRUCTION and rollout.noise_level == 0.7
    stochastic = policy.stochastic_steps(rollout)
    assert stochastic == list(range(steps - 1))  # the last move, to t = 0, is deterministic
    assert (rollout.log_probs[:, stochastic] != 0).all() and (rollout.log_probs[:, -1] == 0).all()

    current = policy.evaluate(rollout, stochastic)
    assert current.log_probs.shape == (3, steps - 1) and current.log_probs.requires_grad
    ratio = torch.exp(current.log_probs - rollout.log_probs[:, stochastic])
    assert torch.equal(ratio, torch.ones_like(ratio)), "re-scoring before any update must give ratio exactly 1"
    assert [m.shape for m in current.means] == [rollout.latents[0].shape] * len(stochastic)
    assert all(float(s) > 0 for s in current.stds)

    reference = policy.evaluate(rollout, stochastic, reference=True)
    assert not reference.log_probs.requires_grad
    assert torch.equal(reference.log_probs, current.log_probs.detach())
    assert all(torch.equal(r, c.detach()) for r, c in zip(reference.means, current.means, strict=True))

    # A subset of steps gives the same numbers as those steps inside the full evaluation.
    assert torch.equal(policy.evaluate(rollout, [2, 5]).log_probs.detach(), current.log_probs[:, [2, 5]].detach())


def test_a_grpo_step_moves_the_policy_off_the_reference_and_the_state_round_trips():
    policy = make_policy()
    rollout = policy.rollout(FRAME, INSTRUCTION, SEEDS, noise_level=0.7)
    steps = policy.stochastic_steps(rollout)
    advantages = group_advantages(torch.tensor([0.1, 0.5, 0.3]), clip=5.0)
    opt = torch.optim.AdamW(policy.trainable(), lr=1e-3)
    part = grpo_backward(policy, rollout, advantages, steps, GRPOSettings(), scale=1.0)
    assert part.kl == 0.0 and part.ratio_dev == 0.0 and part.clipped == 0.0
    opt.step()

    after = policy.evaluate(rollout, steps)
    ratio = torch.exp(after.log_probs - rollout.log_probs[:, steps]).detach()
    assert not torch.equal(ratio, torch.ones_like(ratio)) and (ratio - 1).abs().max() > 0
    # The step favoured the best clip (advantage > 0) over the worst: its log-probs rose relative to them.
    gained = (after.log_probs - rollout.log_probs[:, steps]).detach().sum(dim=1)
    assert gained[1] > gained[0]
    assert grpo_backward(policy, rollout, advantages, steps, GRPOSettings(), 1.0).kl > 0
    reference = policy.evaluate(rollout, steps, reference=True)
    fresh_ref = make_policy().evaluate(rollout, steps)
    assert torch.equal(reference.log_probs, fresh_ref.log_probs.detach()), "the reference stays the starting weights"

    state = policy.state_dict()
    assert any(k.startswith("net.") for k in state) and any(k.startswith("ref.") for k in state)
    other = TabletopPolicy(NetPixels(tiny_net(seed=7)))
    other.load_state_dict(state)
    again = other.evaluate(rollout, steps)
    assert torch.equal(again.log_probs, after.log_probs)
    assert torch.equal(other.evaluate(rollout, steps, reference=True).log_probs, reference.log_probs)


def test_backward_step_by_step_gives_the_gradient_of_the_whole_loss():
    """GRPO backpropagates each step as it is evaluated (one step's graph in memory); the sum of
    those backward passes is the gradient of the loss written over all steps at once."""
    policy = make_policy()
    rollout = policy.rollout(FRAME, INSTRUCTION, SEEDS, noise_level=0.7)
    steps, s = policy.stochastic_steps(rollout)[:4], GRPOSettings(beta=0.5, clip_range=0.2)
    advantages = group_advantages(torch.tensor([0.1, 0.9, 0.3]), clip=5.0)
    with torch.no_grad():  # off the reference, so the KL and the ratios are not trivially 0 and 1
        for p in policy.trainable():
            p.add_(torch.randn_like(p) * 1e-3)
    current, reference = policy.evaluate(rollout, steps), policy.evaluate(rollout, steps, reference=True)
    per_element, _ = clipped_objective(current.log_probs, rollout.log_probs[:, steps], advantages, s.clip_range)
    kl = torch.stack([gaussian_kl(m, r, std) for m, r, std in zip(current.means, reference.means, current.stds, strict=True)])
    ((per_element.mean() + s.beta * kl.mean()) * 0.5).backward()
    whole = [p.grad.clone() for p in policy.trainable()]
    for p in policy.trainable():
        p.grad = None
    part = grpo_backward(policy, rollout, advantages, steps, s, scale=0.5)
    assert part.kl > 0 and any(g.abs().sum() > 0 for g in whole)
    for a, b in zip(whole, [p.grad for p in policy.trainable()], strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-7)


class RecordingPolicy(TabletopPolicy):
    """Remembers what the curriculum asked the model to generate."""

    def __init__(self, wm):
        super().__init__(wm)
        self.calls = []

    def sample_frames(self, starts, instructions, seeds):
        frames = super().sample_frames(starts, instructions, seeds)
        self.calls.append((starts.copy(), frames))
        return frames


def test_curriculum_tasks_atomic_and_chained_from_the_models_own_frames():
    # A faint random model: its frames stay readable by the planner, yet are its own.
    policy = RecordingPolicy(NetPixels(tiny_net(std=0.005)))
    tasks = TabletopTasks(64)
    rng = np.random.default_rng(3)
    for _ in range(3):
        task = tasks.sample(rng, 1, policy)
        assert (task.horizon, task.step_index) == (1, 0)
        assert task.start.shape == (64, 64, 3) and task.start.dtype == np.uint8
        assert task.instruction == to_text(task.action)
        assert worth_doing(read_scene(task.start), task.action), "an atomic task is feasible on its scene"
    assert policy.calls == [], "atomic tasks start from a fresh render, not from the model"

    chained = []
    for _ in range(6):
        policy.calls.clear()
        task = tasks.sample(rng, 3, policy)
        assert 1 <= task.horizon <= 3 and 0 <= task.step_index < task.horizon
        assert task.instruction == to_text(task.action)
        if task.step_index > 0:
            chained.append(task)
            assert len(policy.calls) == task.step_index
            first_start, _ = policy.calls[0]
            _, last_frames = policy.calls[-1]
            assert np.array_equal(task.start, last_frames[0, -1]), "the step starts from the model's own frame"
            assert not np.array_equal(task.start, first_start[0]), "which differs from the fresh render"
    assert chained, "max horizon 3 over 6 draws should give some chained tasks"


def test_fallback_actions_handle_frames_read_as_one_object_or_none():
    """A chain step from a model frame where the oracle finds one object (only region moves are
    possible) or none must not crash the curriculum."""
    from spiral.worldmodels.tabletop_eval import random_feasible_action
    from spiral.worlds.tabletop.scene import random_scene

    rng = np.random.default_rng(0)
    scene = random_scene(rng)
    one = replace(scene, objects=scene.objects[:1])
    action = random_feasible_action(one, rng)
    assert action is not None and action.relation == "in" and action.subject == one.objects[0].name
    assert random_feasible_action(replace(scene, objects=()), rng) is None
