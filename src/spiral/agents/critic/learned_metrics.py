"""How good a critic's scores are against the oracle: rank-based ROC-AUC, calibration error,
Platt scaling, and score histograms as text and SVG (shared by `spiral train critic` and
benchmarks/critic_quality.py)."""

from __future__ import annotations

import numpy as np
import torch

from spiral.bench.svg import histogram


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """P(score of a random positive > score of a random negative), ties counting half: the
    Mann-Whitney U statistic over the ranks (average ranks for ties). NaN without both classes."""
    s, y = np.asarray(scores, dtype=np.float64), np.asarray(labels).astype(bool)
    pos, neg = int(y.sum()), int((~y).sum())
    if pos == 0 or neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    i = 0
    while i < len(s):  # average rank over each run of equal scores
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[y].sum() - pos * (pos + 1) / 2.0) / (pos * neg))


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """Mean |accuracy - confidence| over equal-width probability bins, weighted by bin size."""
    p, y = np.asarray(probs, dtype=np.float64), np.asarray(labels, dtype=np.float64)
    which = np.minimum((p * bins).astype(int), bins - 1)
    return float(
        sum(abs(y[which == b].mean() - p[which == b].mean()) * (which == b).sum() for b in range(bins) if (which == b).any())
        / max(1, len(p))
    )


def fit_platt(logits: torch.Tensor, labels: torch.Tensor, steps: int = 200) -> tuple[float, float]:
    """(scale, bias) minimising the log loss of sigmoid(scale * logit + bias): temperature scaling
    with a bias, fitted on held-back clips. The scale stays positive so the ranking is kept."""
    log_scale = torch.zeros((), requires_grad=True)
    bias = torch.zeros((), requires_grad=True)
    opt = torch.optim.LBFGS([log_scale, bias], lr=0.5, max_iter=steps, line_search_fn="strong_wolfe")
    x, y = logits.detach().double(), labels.double()

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(x * log_scale.double().exp() + bias.double(), y)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_scale.detach().exp()), float(bias.detach())


def balanced_threshold(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """The score threshold with the best balanced accuracy (mean of the pass and fail recalls) on
    held-back clips. Passes are rare among rollouts, so a calibrated critic's probabilities can stay
    below 0.5 even for its most confident passes; at 0.5 it would then reject every clip."""
    s, y = scores.double(), labels.bool()
    if y.all() or not y.any():
        return 0.5
    cuts = torch.unique(s)
    best, best_cut = -1.0, 0.5
    for lo, hi in zip(torch.cat([cuts[:1] - 1e-3, cuts[:-1]]).tolist(), cuts.tolist(), strict=True):
        cut = (lo + hi) / 2  # between two neighbouring scores: passes are scores >= cut
        balanced = float(((s >= cut) & y).sum() / y.sum() + ((s < cut) & ~y).sum() / (~y).sum()) / 2
        if balanced > best:
            best, best_cut = balanced, cut
    return float(best_cut)


def critic_metrics(out, success: torch.Tensor, kind: torch.Tensor, drift: torch.Tensor, threshold: float = 0.5) -> dict:
    """How a critic's outputs (learned_net.CriticOutput) agree with the labels: ROC-AUC, accuracy
    at 0.5, calibration (ECE, Brier), on the failed clips the failure-kind and replan accuracy, and
    at the critic's pass `threshold` the share of failed clips it lets through and of passed clips
    it rejects (in the loop, a failure let through derails the steps after it; a rejected pass
    costs one more generation)."""
    p, y = torch.sigmoid(out.success).numpy(), success.numpy()
    fail = y == 0
    kind_hat = (out.kind[:, 1:].argmax(-1) + 1).numpy()  # the most likely way it failed
    replan_hat = torch.sigmoid(out.drift).numpy() >= 0.5

    def share(hit: np.ndarray) -> float:
        return float(hit.mean()) if len(hit) else float("nan")

    return {
        "clips": len(y), "pass_rate": share(y), "auc": roc_auc(p, y), "accuracy": share((p >= 0.5) == (y > 0)),
        "kind_accuracy": share(kind_hat[fail] == kind.numpy()[fail]),
        "replan_accuracy": share(replan_hat[fail] == (drift.numpy()[fail] > 0)),
        "ece": expected_calibration_error(p, y) if len(y) else float("nan"), "brier": share((p - y) ** 2),
        "mean_pass": share(p[~fail]), "mean_fail": share(p[fail]), "unsure": share((p > 0.2) & (p < 0.8)),
        "fails_passed": share(p[fail] >= threshold), "passes_rejected": share(p[~fail] < threshold), "scores": p,
    }  # fmt: skip


def metrics_table(rows: dict[str, dict]) -> str:
    """A markdown table of critic_metrics results, one row per name."""
    lines = ["| critic | clips | oracle pass | ROC-AUC | acc @0.5 | kind acc | replan acc | ECE | Brier | mean score pass / fail | unsure (0.2-0.8) | at threshold: fails passed / passes rejected |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, m in rows.items():
        lines.append(f"| {name} | {m['clips']} | {m['pass_rate']:.2f} | {m['auc']:.3f} | {m['accuracy']:.3f} | "
                     f"{m['kind_accuracy']:.3f} | {m['replan_accuracy']:.3f} | {m['ece']:.3f} | {m['brier']:.3f} | "
                     f"{m['mean_pass']:.2f} / {m['mean_fail']:.2f} | {m['unsure']:.1%} | "
                     f"{m['fails_passed']:.1%} / {m['passes_rejected']:.1%} |")  # fmt: skip
    return "\n".join(lines)


def text_histogram(title: str, groups: dict[str, np.ndarray], bins: int = 10, width: int = 40) -> str:
    """One row per score bin of [0, 1], one bar per group: each group's share of its clips."""
    lines = [title]
    shares = {}
    for name, v in groups.items():
        counts = np.bincount(np.minimum((np.asarray(v) * bins).astype(int), bins - 1), minlength=bins)
        shares[name] = counts / max(1, len(v))
    for b in range(bins):
        row = " | ".join(
            f"{name[:12]:>12} {'#' * round(shares[name][b] * width):<{width}} {shares[name][b]:4.0%}" for name in groups
        )
        lines.append(f"  [{b / bins:.1f}, {(b + 1) / bins:.1f}) {row}")
    return "\n".join(lines)


def score_histograms_svg(title: str, stages: dict[str, tuple[np.ndarray, np.ndarray]]) -> str:
    """One SVG per stage, stacked: the scores of clips the oracle passed and of those it failed."""
    plots = []
    for i, (stage, (scores, labels)) in enumerate(stages.items()):
        y = np.asarray(labels).astype(bool)
        groups = {"oracle: success": list(scores[y]), "oracle: failure": list(scores[~y])}
        svg = histogram(f"critic-{i}", f"{title} — {stage}", groups, bins=20, x_label="critic score")
        svg = svg.replace("share of episodes", "share of clips")
        plots.append(svg.replace("<svg ", f'<svg y="{i * 330}" ', 1))
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="560" height="{330 * len(plots)}">\n' + "\n".join(plots) + "\n</svg>\n"
