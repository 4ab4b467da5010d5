"""A self-contained HTML page for one episode: the plans with their reasoning, every attempt as a
filmstrip with its critique, and the memory at the end. Images are embedded as PNG data URLs (no
codec needed to look at clips); every piece of text is HTML-escaped, since goals, plans and
critiques may come from a language model."""

from __future__ import annotations

import base64
import io
from html import escape
from pathlib import Path

import numpy as np
from PIL import Image

from spiral.loop import Episode

STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;max-width:1100px;color:#222}
h1{font-size:1.3em} h2{font-size:1.1em;margin-top:1.5em} pre{white-space:pre-wrap;background:#f5f5f0;padding:.6em}
.attempt{border:1px solid #ccc;border-radius:6px;padding:.5em;margin:.5em 0}
.ok{border-color:#3a3}.bad{border-color:#c33} .strip{image-rendering:pixelated;width:100%;max-width:1024px}
table{border-collapse:collapse} td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}
"""


def png_data_url(image: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def filmstrip(frames: np.ndarray) -> np.ndarray:
    return np.concatenate(list(frames), axis=1)


def _attempt_html(a) -> str:
    c = a.critique
    verdict = "no critic" if c is None else f"{c.verdict.value} · {c.failure_kind.value} · score {c.score:.2f}"
    status = "accepted" + (" (forced)" if a.forced else "") if a.accepted else "rejected"
    feedback = "" if c is None or not c.feedback else f"<div>feedback: {escape(c.feedback)}</div>"
    refined = "" if c is None or not c.refined_instruction else f"<div>refined: {escape(c.refined_instruction)}</div>"
    return (
        f'<div class="attempt {"ok" if a.accepted else "bad"}"><div><b>plan {a.plan + 1}, step {a.step + 1}, {a.label}</b>'
        f" — {escape(a.instruction)} — <i>{escape(status)}</i></div><div>{escape(verdict)}</div>{feedback}{refined}"
        f'<img class="strip" alt="clip" src="{png_data_url(filmstrip(a.clip.frames))}">'
        f"<div>generate {a.generate_seconds:.2f}s, critique {a.critique_seconds:.2f}s, seed {a.clip.seed}</div></div>"
    )


def render_viewer(episode: Episode, video_name: str | None = None, judged: dict | None = None) -> str:
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>SPIRAL episode</title><style>{STYLE}</style></head><body>"]
    parts.append(f"<h1>Goal: {escape(episode.goal)}</h1>")
    parts.append(
        f"<p>method <b>{escape(episode.method)}</b> · status <b>{escape(episode.status)}</b> · "
        f"{episode.generation_calls} generation calls · {len(episode.plans)} plan(s) · {episode.seconds:.1f}s</p>"
    )
    if episode.error:
        parts.append(f"<p class='error'>stopped: {escape(episode.error)}</p>")
    if judged:
        parts.append(
            "<table>"
            + "".join(f"<tr><th>{escape(str(k))}</th><td>{escape(str(v))}</td></tr>" for k, v in judged.items())
            + "</table>"
        )
    parts.append(
        f'<h2>Start frame</h2><img class="strip" style="max-width:256px" alt="start" src="{png_data_url(episode.start_frame)}">'
    )
    if video_name:
        parts.append(
            f'<h2>Long video</h2><p><a href="{escape(video_name)}">{escape(video_name)}</a> (accepted clips stitched)</p>'
        )
        parts.append(
            f'<img class="strip" alt="accepted clips" src="{png_data_url(filmstrip(episode.video()[:: max(1, len(episode.video()) // 16)]))}">'
        )
    for p in episode.plans:
        steps = "".join(f"<li>{escape(s.instruction)}</li>" for s in p.plan.steps)
        note = "" if p.plan.feasible else f"<p><b>infeasible:</b> {escape(p.plan.reason)}</p>"
        note += "<p>the planner finds the goal holds: nothing left to do</p>" if p.goal_holds else ""
        parts.append(f"<h2>Plan {p.index + 1} ({escape(p.why)}) by {escape(p.plan.planner)}</h2>{note}<ol>{steps}</ol>")
        parts.append(f"<details><summary>reasoning</summary><pre>{escape(p.plan.reasoning)}</pre></details>")
    parts.append("<h2>Attempts</h2>" + "".join(_attempt_html(a) for a in episode.attempts))
    if episode.memory is not None:
        parts.append(f"<h2>Memory at the end</h2><pre>{escape(episode.memory.summary(max_failures=50))}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_viewer(path: Path, episode: Episode, video_name: str | None = None, judged: dict | None = None) -> Path:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(render_viewer(episode, video_name, judged))
    tmp.replace(path)
    return path
