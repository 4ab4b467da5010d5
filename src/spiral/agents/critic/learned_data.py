"""Training data for the `learned` critic, kept at the critic's 32x32 and cached so it is made once:
labelled ActWM dataset clips, and world-model rollouts labelled by the oracle. Rollout scenes come
from `default_rng([ROLLOUT_STREAM, seed, i])`, apart from the held-out probes (integer seeds from
HELDOUT_SEED up) and from `spiral data make` (pairs (seed, i)). Each scene gets a group of samples
of one instruction (ODE as in the loop, SDE as in GRPO, and guided ones, see guided_frames): the
group's passes and fails are the pairs the reward-model stage ranks.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm import tqdm

from spiral.agents.critic.learned_net import KIND_INDEX, downsample
from spiral.agents.critic.learned_objects import CLIP_FACTS, OBJECT_FACTS, SLOTS
from spiral.data.format import read_episode, read_index
from spiral.data.video import read_video
from spiral.errors import DatasetError
from spiral.types import Verdict
from spiral.worldmodels.tabletop_eval import Probe, make_probes
from spiral.worlds.tabletop.actions import (
    REGIONS,
    RELATIONS,
    Action,
    Target,
    mirrored,
    postcondition_holds,
    precondition_errors,
    sample_target,
    trajectory,
)
from spiral.worlds.tabletop.grammar import parse, to_text
from spiral.worlds.tabletop.oracle import read_scene
from spiral.worlds.tabletop.oracle_pool import OraclePool
from spiral.worlds.tabletop.render import render_motion

ROLLOUT_STREAM = 4242
SDE_NOISE_LEVEL = 0.7  # Flow-GRPO's default noise level
# The shipped critic's rollouts are sampled at guidance 5; the loop samples at 2 (SamplerConfig),
# and held-out checks take either.
ROLLOUT_GUIDANCE = 5.0
CHUNK = 16  # scenes per cache file: an interrupted run redoes at most one chunk
FIELDS = ("frames", "success", "kind", "drift", "group", "rollout", "guided", "objects", "facts")
GUIDE_T = (0.5, 0.7)  # noise levels a guided rollout starts from (1 = pure noise, as in sampling)
# Near misses start from less noise: from GUIDE_T the world model redraws the motion towards a spot
# of its own, and its clips pass about as often as true-target ones (71% against 83% with targets
# moved up to 0.4; 35% from these levels, a throwaway check on 96 clips of the stage-9 model).
NEAR_MISS_T = (0.2, 0.35)


@dataclass
class CriticData:
    """Labelled clips. `group`: clips with the same start frame and instruction share an id."""

    frames: torch.Tensor  # (N, T, R, R, 3) uint8
    texts: list[str]  # the canonical instruction of each clip
    success: torch.Tensor  # (N,) float 0/1
    kind: torch.Tensor  # (N,) long, index into learned_net.KINDS
    drift: torch.Tensor  # (N,) float 0/1: the failure needs a replan (oracle verdict GLOBAL_DRIFT)
    group: torch.Tensor  # (N,) long
    rollout: torch.Tensor  # (N,) bool: a world-model rollout, not a dataset clip
    guided: torch.Tensor | None = None  # (N,) bool: guided by the true motion (guided_frames)
    objects: torch.Tensor | None = None  # (N, SLOTS, len(OBJECT_FACTS)) float 0/1; NaN: not known
    facts: torch.Tensor | None = None  # (N, len(CLIP_FACTS)) float 0/1; NaN: not known (dataset clips)

    def __post_init__(self) -> None:
        n = len(self.texts)
        if self.guided is None:
            self.guided = torch.zeros(n, dtype=torch.bool)
        if self.objects is None:
            self.objects = torch.full((n, SLOTS, len(OBJECT_FACTS)), float("nan"))
        if self.facts is None:
            self.facts = torch.full((n, len(CLIP_FACTS)), float("nan"))

    @property
    def has_facts(self) -> torch.Tensor:
        """(N,) bool: the oracle's report is known (rollouts labelled since the facts were kept)."""
        return torch.isfinite(self.facts).all(1)

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, idx: torch.Tensor) -> CriticData:
        tensors = {k: getattr(self, k)[idx] for k in FIELDS}
        return CriticData(texts=[self.texts[i] for i in idx.tolist()], **tensors)

    def mirrored(self) -> CriticData:
        """The left-right mirror image of every clip, with its instruction mirrored (left and right
        swap) and the same labels: the oracle judges a mirrored clip of the mirrored action as it
        judges the clip (tested), and the per-colour facts name no side."""
        image = {t: to_text(mirrored(parse(t))) for t in set(self.texts)}  # few instructions, many clips
        texts = [image[t] for t in self.texts]
        tensors = {k: getattr(self, k) for k in FIELDS if k != "frames"}
        return CriticData(self.frames.flip(-2), texts, **tensors)

    @staticmethod
    def cat(parts: list[CriticData]) -> CriticData:
        """Concatenate, renumbering groups so that different parts never share one."""
        groups, offset = [], 0
        for p in parts:
            groups.append(p.group + offset)
            offset += int(p.group.max()) + 1 if len(p) else 0
        cat = {k: torch.cat([getattr(p, k) for p in parts]) for k in FIELDS if k != "group"}
        return CriticData(texts=[t for p in parts for t in p.texts], group=torch.cat(groups), **cat)

    def save(self, path: Path, meta: dict | None = None) -> None:
        tensors = {k: getattr(self, k).contiguous() for k in FIELDS}
        tmp = path.with_name(path.name + ".tmp")
        save_file(tensors, str(tmp), metadata={"texts": json.dumps(self.texts)} | (meta or {}))
        os.replace(tmp, path)

    @staticmethod
    def load(path: Path, key: str | None = None) -> CriticData | None:
        """The cached data, or None when the file is missing, broken or made for another key."""
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                if key is not None and meta.get("key") != key:
                    return None
                tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no __iter__
            return CriticData(texts=json.loads(meta["texts"]), **tensors)
        except Exception:  # noqa: BLE001 - a broken cache is remade, never trusted
            return None


def _labels(success: list[bool], kinds: list[str], drift: list[bool]) -> dict[str, torch.Tensor]:
    return {
        "success": torch.tensor(success, dtype=torch.float32),
        "kind": torch.tensor([KIND_INDEX[k] for k in kinds], dtype=torch.long),
        "drift": torch.tensor(drift, dtype=torch.float32),
    }


def report_facts(report) -> tuple[torch.Tensor, torch.Tensor]:
    """A ClipReport as (SLOTS, len(OBJECT_FACTS)) per-colour facts and (len(CLIP_FACTS),) clip facts."""
    from spiral.worlds.tabletop.scene import COLOURS

    colours = list(COLOURS)
    objects = torch.zeros(SLOTS, len(OBJECT_FACTS))
    moved = report.collateral_moved + ((report.action.subject,) if report.subject_moved else ())
    named = (report.vanished, report.changed_colour + report.changed_shape, moved, report.crowded,
             report.duplicated + report.appeared)  # fmt: skip
    for j, names in enumerate(named):
        for name in names:
            colour = name.split()[0]
            if colour in colours:
                objects[colours.index(colour), j] = 1.0
    facts = torch.tensor([report.postcondition, report.teleported, report.low_quality], dtype=torch.float32)
    return objects, facts


def mismatched(video: np.ndarray, action: Action, rng: np.random.Generator) -> tuple[Action, bool, str] | None:
    """Another instruction for a clean clip of `action`, labelled as the oracle would label it: when
    it names another subject, that one stayed put while another moved (WRONG_OBJECT); when it names
    the same subject, it succeeded only if its postcondition holds at the end. Without these, a
    critic could pass every clean-looking motion without reading the instruction at all."""
    start = read_scene(video[0])
    for _ in range(20):
        subject = action.subject if rng.random() < 0.5 else start.objects[int(rng.integers(len(start.objects)))].name
        relation = str(rng.choice(RELATIONS))
        names = [o.name for o in start.objects if o.name != subject]
        anchor = str(rng.choice(list(REGIONS))) if relation == "in" or not names else str(rng.choice(names))
        other = Action(subject, relation, anchor)
        if other == action or precondition_errors(start, other) or postcondition_holds(start, other):
            continue
        if subject != action.subject:
            return other, False, "wrong_object"
        ok = postcondition_holds(read_scene(video[-1]), other)
        return other, ok, "none" if ok else "incomplete"
    return None


def load_dataset(root: Path, resolution: int, cache_dir: Path, swap_rate: float = 0.0, progress: bool = True) -> CriticData:
    """Every labelled attempt of an ActWM dataset (the good clips and the failures made on purpose),
    and, for a `swap_rate` share of the good clips, the same clip under a mismatched instruction."""
    entries = read_index(root)
    key = f"{Path(root).resolve()}:{len(entries)}:{entries[-1]['id'] if entries else ''}:{resolution}:{swap_rate}"
    cache = Path(cache_dir) / f"dataset-{hashlib.sha256(key.encode()).hexdigest()[:16]}.safetensors"
    cached = CriticData.load(cache, key)
    if cached is not None:
        return cached
    frames, texts, success, kinds, drift, groups = [], [], [], [], [], []
    step_id = 0  # a step's failed attempt and its good clip share a start frame and instruction
    for entry in tqdm(entries, desc=f"decoding {Path(root).name}", unit="ep", disable=not progress):
        episode = read_episode(Path(root) / entry["id"])
        for step in episode.steps:
            step_id += 1
            action = Action(step.subject, step.relation, step.anchor)
            text = to_text(action)
            for attempt in step.attempts:
                c = attempt.critique
                ok = (
                    attempt.label_success if attempt.label_success is not None else c is not None and c.verdict == Verdict.SUCCESS
                )
                if c is None or c.failure_kind.value not in KIND_INDEX:
                    continue  # nothing to learn the failure kind from
                video = read_video(Path(root) / entry["id"] / attempt.video)
                labels = [(text, bool(ok), "none" if ok else c.failure_kind.value, not ok and c.verdict == Verdict.GLOBAL_DRIFT)]
                rng = np.random.default_rng([ROLLOUT_STREAM, step_id])
                swap = mismatched(video, action, rng) if ok and rng.random() < swap_rate else None
                if swap is not None:
                    labels.append((to_text(swap[0]), swap[1], swap[2], False))
                small = downsample(video, resolution)
                for t, y, kind, replan in labels:  # a swap shares the clip's group: the ranking pair
                    frames.append(small)
                    texts.append(t)
                    success.append(y)
                    kinds.append(kind)
                    drift.append(replan)
                    groups.append(step_id)
    if not frames:
        raise DatasetError(f"{root} holds no labelled clips to train a critic on")
    n = len(frames)
    data = CriticData(
        torch.stack(frames),
        texts,
        group=torch.tensor(groups),
        rollout=torch.zeros(n, dtype=torch.bool),
        **_labels(success, kinds, drift),
    )
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    data.save(cache, {"key": key})
    return data


def training_probes(count: int, seed: int, frame_size: int = 64, source: int = 0) -> list[Probe]:
    """Start scenes and feasible actions for training rollouts (never a held-out probe). `source`
    1 and 2 are streams of their own, for the near-miss rollouts and the rendered near misses."""
    return make_probes(count, frame_size, stream=(ROLLOUT_STREAM, seed) if not source else (ROLLOUT_STREAM, seed, source))


def weights_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def miss_target(probe: Probe, target: Target, miss: float, rng: np.random.Generator, puts: bool = False) -> Target:
    """The target moved a random distance of up to `miss` (table units) in a random direction, kept
    on the table: the subject then ends on either side of its postcondition's edge, or against
    another object, the near misses that the world model's failures mostly are and that
    the dataset's made-on-purpose failures (a move stopped halfway, another object moved) are not.
    A put is kept as it is, or with `puts` moved off its base's centre by up to the base's half-size,
    still painted over it: the world model's failed puts mostly look like that, and the oracle
    counts the subject as on its base only within half that distance (oracle.STACK_RADIUS)."""
    if target.on is not None and not puts:
        return target
    reach = miss if target.on is None else probe.scene.get(target.on).half
    r, angle = reach * float(np.sqrt(rng.random())), float(rng.uniform(0, 2 * np.pi))
    if target.on is not None:
        return Target(round(target.x + r * np.cos(angle), 4), round(target.y + r * np.sin(angle), 4), target.on)
    half = probe.scene.get(probe.action.subject).half
    x = float(np.clip(target.x + r * np.cos(angle), half, 1 - half))
    y = float(np.clip(target.y + r * np.sin(angle), half, 1 - half))
    return Target(round(x, 4), round(y, 4))


def true_changes(wm, probes: list[Probe], seeds: list[int], miss: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The simulator's true clip of each probe (a target drawn with the probe's seed, moved by up to
    `miss`, see miss_target): its uint8 frames (B, T, H, W, 3), and as the world model sees it, the
    start frame in model space and the clean change latent x0."""
    from spiral.worldmodels.tabletop import change_latent, to_model_space

    truth = []
    for p, seed in zip(probes, seeds, strict=True):
        rng = np.random.default_rng(seed)
        target = next(t for t in (sample_target(p.scene, p.action, rng) for _ in range(20)) if t is not None)
        if miss > 0:
            target = miss_target(p, target, miss, rng)
        truth.append(render_motion(trajectory(p.scene, p.action, target, wm.num_frames), p.frame.shape[0], p.action.subject))
    frames = torch.from_numpy(np.stack(truth))
    start = to_model_space(frames[:, 0], wm.cfg.resolution)
    return frames, start, change_latent(to_model_space(frames[:, 1:], wm.cfg.resolution), start)


@torch.no_grad()
def guided_frames(wm, probes: list[Probe], seeds: list[int], t0: float, miss: float = 0.0) -> np.ndarray:
    """SDEdit on the world model: the simulator's true motion of each probe, noised to flow time t0,
    then denoised by the world model with the instruction. The clips carry the model's own
    artefacts but succeed far more often than samples from pure noise: positives and near misses
    from the domain the critic judges, of which a weak world model alone gives too few. `miss` > 0
    guides towards a target moved off the true one (see miss_target)."""
    from spiral.worldmodels.tabletop import timesteps, velocity

    frames, start, x0 = true_changes(wm, probes, seeds, miss)
    text, pad = wm.text.encode([to_text(p.action) for p in probes])
    null = wm.net.null_condition(len(probes))
    x = (1 - t0) * x0 + t0 * wm.initial_noise(seeds)
    ts = [t0] + [t for t in timesteps(wm.sampler.num_inference_steps, wm.sampler.shift) if t < t0]
    for t, t_next in zip(ts[:-1], ts[1:], strict=True):
        x = x + (t_next - t) * velocity(wm.net, x, t, start, text, pad, wm.sampler.guidance_scale, null)
    return wm.decode(frames[:, 0].numpy(), x.clamp(-1.0, 1.0))


def label_rollouts(
    wm, probes: list[Probe], group_size: int, seed: int, resolution: int, first_group: int = 0, guided: int = 0,
    oracle: OraclePool | None = None, miss: float = 0.0,
) -> CriticData:  # fmt: skip
    """Sample `group_size` clips per probe and label each by the oracle (over `oracle`'s processes):
    the last `guided` of each group by guided_frames (towards targets moved by up to `miss`), the
    others from pure noise, half ODE and half SDE."""
    starts = np.stack([p.frame for p in probes for _ in range(group_size)])
    texts = [to_text(p.action) for p in probes for _ in range(group_size)]
    seeds = [seed * 1_000_003 + (first_group + k // group_size) * group_size + k % group_size for k in range(len(texts))]
    member = np.arange(len(texts)) % group_size
    free = group_size - guided
    modes = np.where(member >= free, 2 + member % 2, (member >= (free + 1) // 2).astype(int))  # 0 ODE, 1 SDE, 2-3 guided
    clips = np.empty((len(texts), wm.num_frames, *starts.shape[1:]), dtype=np.uint8)
    for mode in range(4):
        idx = np.flatnonzero(modes == mode)
        if mode < 2 and len(idx):
            noise = SDE_NOISE_LEVEL if mode == 1 else 0.0
            clips[idx] = wm.sample_frames(starts[idx], [texts[i] for i in idx], [seeds[i] for i in idx], noise_level=noise)
        elif len(idx):
            clips[idx] = guided_frames(
                wm,
                [probes[i // group_size] for i in idx],
                [seeds[i] for i in idx],
                (NEAR_MISS_T if miss else GUIDE_T)[mode - 2],
                miss,
            )
    reports = (oracle or OraclePool(1)).check_clips(list(clips), [probes[k // group_size].action for k in range(len(clips))])
    kinds = [r.failure_kind.value for r in reports]
    objects, facts = zip(*(report_facts(r) for r in reports), strict=True)
    # Probes meet their preconditions, so every oracle kind is one the head knows.
    return CriticData(
        downsample(clips, resolution),
        texts,
        group=torch.tensor([first_group + k // group_size for k in range(len(texts))]),
        rollout=torch.ones(len(texts), dtype=torch.bool),
        guided=torch.from_numpy(modes >= 2),
        objects=torch.stack(objects),
        facts=torch.stack(facts),
        **_labels([r.ok for r in reports], kinds, [r.verdict == Verdict.GLOBAL_DRIFT for r in reports]),
    )


RENDER_SOURCE = 2  # the rendered near misses' own stream of scenes and targets (see training_probes)
RENDER_CHUNK = 128  # renders per cache file


def label_renders(
    probes: list[Probe], seed: int, resolution: int, miss: float, num_frames: int, first: int, oracle: OraclePool,
    puts: bool = False,
) -> CriticData:  # fmt: skip
    """The simulator's own motion of each probe's step towards a target moved by up to `miss` (see
    miss_target), rendered and labelled by the oracle. A rollout is the start frame's objects
    redrawn where the model put them (tabletop_compose), so these look like rollouts that end on
    either side of the postcondition's edge or against another object: the cases the critic
    confuses most, many more of them than the world model's own failures give, at no model cost."""
    clips, kept = [], []
    for i, p in enumerate(probes):
        rng = np.random.default_rng([ROLLOUT_STREAM, seed, RENDER_SOURCE, first + i])
        target = next((t for t in (sample_target(p.scene, p.action, rng) for _ in range(20)) if t is not None), None)
        if target is None:  # no room found for the subject: no clip of this probe
            continue
        ends = trajectory(p.scene, p.action, miss_target(p, target, miss, rng, puts), num_frames)
        clips.append(render_motion(ends, p.frame.shape[0], p.action.subject))
        kept.append(i)
    reports = oracle.check_clips(clips, [probes[i].action for i in kept])
    # A start frame the oracle cannot read (an object hidden under another) is no example of anything.
    known = [j for j, r in enumerate(reports) if r.failure_kind.value in KIND_INDEX]
    reports, kept = [reports[j] for j in known], [kept[j] for j in known]
    objects, facts = zip(*(report_facts(r) for r in reports), strict=True)
    return CriticData(
        downsample(np.stack([clips[j] for j in known]), resolution),
        [to_text(probes[i].action) for i in kept],
        group=first + torch.tensor(kept),
        rollout=torch.zeros(len(kept), dtype=torch.bool),
        objects=torch.stack(objects),
        facts=torch.stack(facts),
        **_labels(
            [r.ok for r in reports], [r.failure_kind.value for r in reports], [r.verdict == Verdict.GLOBAL_DRIFT for r in reports]
        ),
    )


def cached_renders(
    count: int,
    seed: int,
    resolution: int,
    miss: float,
    num_frames: int,
    cache_dir: Path,
    progress: bool = True,
    processes: int = 1,
    puts: bool = False,
) -> CriticData:
    """`count` rendered near misses (label_renders) of training scenes of their own, cached chunk by
    chunk. `puts`: puts miss too (see miss_target)."""
    probes = training_probes(count, seed, source=RENDER_SOURCE)
    folder = Path(cache_dir) / f"renders-s{seed}-miss{miss:g}{'-puts' if puts else ''}-f{num_frames}-r{resolution}"

    def make(chunk: list[Probe], start: int, oracle: OraclePool) -> CriticData:
        return label_renders(chunk, seed, resolution, miss, num_frames, start, oracle, puts)

    return cached_chunks(folder, probes, RENDER_CHUNK, "rendered near misses", make, progress, processes)


def cached_rollouts(
    wm_path: Path,
    probes: list[Probe],
    name: str,
    cache_dir: Path,
    group_size: int,
    seed: int,
    resolution: int,
    progress: bool = True,
    guided: int = 0,
    processes: int = 1,
    miss: float = 0.0,
    guidance: float = ROLLOUT_GUIDANCE,
) -> CriticData:
    """World-model rollouts of these probes, labelled by the oracle, cached chunk by chunk under a
    folder named by the weights' digest, the clip size and the decoding (new weights or a new decoding
    never reuse another's rollouts).
    `guided`: how many of each group are guided by the true motion (see guided_frames).
    `processes`: how many processes the oracle labels over (the labels do not depend on it).
    `miss`: guided rollouts head for targets moved by up to this much (near misses; see miss_target).
    `guidance`: the sampler's classifier-free guidance.
    A cached chunk without the oracle's per-object facts is made again: the fact heads train on them."""
    from spiral.worldmodels.tabletop import SamplerConfig, TabletopWorldModel

    sampler = SamplerConfig(guidance_scale=guidance)
    # The default guidance adds no tag and the decoding keeps its name, so the rollouts the shipped
    # critic was trained on are found again in a cache made for it.
    suffix = (
        (f"-guided{guided}" if guided else "") + (f"-miss{miss:g}" if miss else "") + "-compose"
        + ("" if guidance == ROLLOUT_GUIDANCE else f"-cfg{guidance:g}")
    )  # fmt: skip
    folder = Path(cache_dir) / f"rollouts-{name}-{weights_digest(wm_path)}-g{group_size}-s{seed}-r{resolution}{suffix}"
    loaded = []  # the world model, loaded only when a chunk has to be made

    def make(chunk: list[Probe], start: int, oracle: OraclePool) -> CriticData:
        if not loaded:
            loaded.append(TabletopWorldModel.load(wm_path, frame_size=chunk[0].frame.shape[0], sampler=sampler))
        return label_rollouts(
            loaded[0], chunk, group_size, seed, resolution, first_group=start, guided=guided, oracle=oracle, miss=miss
        )

    def stale(data: CriticData) -> bool:
        return not bool(data.has_facts.all())

    return cached_chunks(folder, probes, CHUNK, f"{name} rollouts", make, progress, processes, stale)


def cached_chunks(
    folder: Path,
    probes: list[Probe],
    size: int,
    desc: str,
    make: Callable[[list[Probe], int, OraclePool], CriticData],
    progress: bool = True,
    processes: int = 1,
    stale: Callable[[CriticData], bool] = lambda data: False,
) -> CriticData:
    """Labelled clips of `probes`, `size` probes at a time: each chunk read from its cache file under
    `folder` (keyed by the chunk's actions), or made by make(chunk, first probe index, oracle) and
    saved, so an interrupted run redoes at most one chunk. `stale`: cached chunks to make again."""
    folder.mkdir(parents=True, exist_ok=True)
    parts = []
    with OraclePool(processes) as oracle:
        for start in tqdm(range(0, len(probes), size), desc=desc, unit="chunk", disable=not progress):
            chunk = probes[start : start + size]
            key = json.dumps([[p.action.subject, p.action.relation, p.action.anchor] for p in chunk])
            path = folder / f"chunk-{start // size:05d}.safetensors"
            data = CriticData.load(path, key)
            if data is None or stale(data):
                data = make(chunk, start, oracle)
                data.save(path, {"key": key})
            parts.append(data)
    return CriticData.cat(parts) if len(parts) > 1 else parts[0]
