"""`spiral bench report DIR`: report.html (tables per method x level with 95% CIs, success vs
horizon per method, the in-loop critic's scores for episodes the judge found successful vs failed),
report.md (the table in Markdown), and with --json the summary on stdout.

It reads a run folder without changing it, so it also works on a run still in progress.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from html import escape
from pathlib import Path

from spiral.bench.metrics import ERRORED, EpisodeMetrics, GroupSummary, level_order, summarise
from spiral.bench.store import RunFolder
from spiral.bench.svg import histogram, line_plot
from spiral.errors import SpiralError

# (header, GroupSummary field, as percent)
COLUMNS = (
    ("success", "success", True), ("step completion", "step_completion", True),
    ("action alignment", "action_alignment", False), ("temporal consistency", "temporal_consistency", False),
    ("flicker", "flicker", False), ("motion smoothness", "motion_smoothness", False),
    ("generation calls", "generation_calls", False), ("calls / step", "calls_per_step", False),
    ("wall s", "wall_seconds", False), ("agent tokens", "agent_tokens", False),
)  # fmt: skip


@dataclass(frozen=True)
class Report:
    config: dict
    rows: list[EpisodeMetrics]
    groups: list[GroupSummary]

    def summary(self) -> dict:
        return {"config": self.config, "episodes": len(self.rows), "groups": [g.to_dict() for g in self.groups]}


def load_report(folder: Path) -> Report:
    run = RunFolder(Path(folder))
    config = run.read_config()
    if config is None:
        raise SpiralError(f"{folder} is not a bench run folder (no config.json); make one with `spiral bench run --out {folder}`")
    rows = run.read(repair=False)
    if not rows:
        raise SpiralError(f"{folder} has no finished episodes yet")
    return Report(config, rows, summarise(rows, config.get("methods")))


def errored_note(report: Report) -> str:
    errored = [r for r in report.rows if r.status == ERRORED]
    if not errored:
        return ""
    return (f"{len(errored)} episode(s) errored (an agent's server could not be used) and are left out of every "
            f"rate; rerun the same command to redo them. First: {errored[0].task} ({errored[0].method}): {errored[0].error}")  # fmt: skip


def markdown(report: Report) -> str:
    head = ["method", "level", "n", *(c[0] for c in COLUMNS)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for g in report.groups:
        cells = [g.method, g.level, str(g.episodes), *(getattr(g, f).text(percent=p) for _, f, p in COLUMNS)]
        lines.append("| " + " | ".join(cells) + " |")
    note = errored_note(report)
    return "\n".join(lines) + "\n" + (f"\n{note}\n" if note else "")


def _table(report: Report) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in ["method", "level", "n", *(c[0] for c in COLUMNS)])
    body = []
    for g in report.groups:
        cls = ' class="all"' if g.level == "all" else ""
        cells = [g.method, g.level, str(g.episodes), *(getattr(g, f).text(percent=p) for _, f, p in COLUMNS)]
        body.append(f"<tr{cls}>" + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>")
    return f'<table id="results"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _success_plot(report: Report) -> str:
    levels = level_order({g.level for g in report.groups if g.level != "all"})
    series = {}
    for method in dict.fromkeys(g.method for g in report.groups):
        by_level = {g.level: g.success for g in report.groups if g.method == method}
        series[method] = [(e.value, e.lo, e.hi) if (e := by_level.get(lv)) is not None else None for lv in levels]
    return line_plot("success-vs-horizon", "Goal success vs horizon (95% Wilson CI)", levels, series,
                     "goal success", "task level (horizon)")  # fmt: skip


def _critic_plots(report: Report) -> list[str]:
    plots = []
    for g in report.groups:
        if g.level == "all" and (g.critic_success or g.critic_failure):
            groups = {"judged successful": list(g.critic_success), "judged failed": list(g.critic_failure)}
            plots.append(histogram(f"critic-{g.method}", f"{g.method}: mean critic score of accepted clips", groups,
                                   x_label="in-loop critic score"))  # fmt: skip
    return plots


STYLE = """body{font-family:sans-serif;margin:24px;color:#222}
table{border-collapse:collapse;font-size:13px} th,td{border:1px solid #ccc;padding:4px 8px;text-align:right;white-space:nowrap}
th{background:#f3f3f3} td:first-child,td:nth-child(2){text-align:left} tr.all td{font-weight:bold;background:#fafafa}
.plots{display:flex;flex-wrap:wrap;gap:16px;margin-top:16px} code{background:#f3f3f3}"""


def html(report: Report) -> str:
    cfg = report.config
    fp = cfg.get("fingerprint", {})
    about = ", ".join(f"{k}: {fp.get(k)}" for k in ("world_model", "planner", "critic", "judge", "max_tries", "max_replans",
                                                    "max_generations", "seed"))  # fmt: skip
    critic = _critic_plots(report)
    critic_html = "".join(critic) or '<p id="no-critic">No in-loop critic scores: only baselines without a critic ran.</p>'
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>ActWM-Bench report</title><style>{STYLE}</style></head>
<body>
<h1>ActWM-Bench report</h1>
<p>Tasks: <code>{escape(str(cfg.get("tasks_source", "?")))}</code>; {len(report.rows)} episodes; {escape(about)}.</p>
<p>Intervals are 95%: Wilson for success, Student t for means. Metrics are defined in <code>spiral/bench/judge.py</code>.</p>
<h2>Results by method and level</h2>
{_table(report)}
{f'<p id="errored">{escape(errored_note(report))}</p>' if errored_note(report) else ""}
<h2>Success vs horizon</h2>
<div class="plots">{_success_plot(report)}</div>
<h2>In-loop critic scores, by the judge's verdict</h2>
<div class="plots">{critic_html}</div>
<p class="machine">Report made on {escape(platform.node() or "?")} ({escape(platform.machine())}).</p>
</body></html>
"""


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    markdown: Path


def write_report(folder: Path) -> tuple[Report, ReportFiles]:
    report = load_report(folder)
    files = ReportFiles(Path(folder) / "report.html", Path(folder) / "report.md")
    files.html.write_text(html(report), encoding="utf-8")
    files.markdown.write_text(markdown(report), encoding="utf-8")
    return report, files


def summary_json(report: Report) -> str:
    return json.dumps(report.summary(), indent=1)
