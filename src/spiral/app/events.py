"""A run folder as the page's event stream. Every event is one line of the journal `spiral run`
writes as it goes (journal/calls.jsonl: each plan, batch of clips and critique the moment it
returns), with what the page needs to place it: which plan, step and try a clip belongs to, why a
replan was made, and each clip as a small mp4 a browser plays. The same reader serves a live run
(read again as the file grows) and a finished one, so a past run looks as it did live."""

from __future__ import annotations

import json
import threading
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spiral.data.video import upscale, write_video
from spiral.journal import CALLS as JOURNAL_CALLS
from spiral.loop import GOAL_CHECK
from spiral.outputs import VIEW_SIZE

CALLS = Path("journal") / JOURNAL_CALLS  # what `spiral run` writes as it goes
CLIPS = "serve-clips"  # the journal's clips as mp4, made for the page
_converting = threading.Lock()  # two tabs following one run must not write the same file at once


@dataclass
class _Attempt:
    plan: int | None
    step: int
    tried: int  # which try of the step (a batch of candidate clips is one try)
    instruction: str
    critique: dict | None = None

    @property
    def passed(self) -> bool:
        return self.critique is None or self.critique["verdict"] == "success"  # no critic (baselines): kept


@dataclass
class EpisodeReader:
    folder: Path
    url: str  # where the folder's files are served, e.g. /runs/<id>
    offset: int = 0
    plans: list[dict] = field(default_factory=list)
    attempts: list[_Attempt] = field(default_factory=list)
    batch: int = 0  # where the last batch of clips begins in attempts

    def read(self) -> list[dict]:
        """The events of the journal lines written since the last read (whole lines only)."""
        path = self.folder / CALLS
        if not path.is_file():
            return []
        with path.open("rb") as f:
            f.seek(self.offset)
            text = f.read()
        whole = text[: text.rfind(b"\n") + 1]  # a line still being written waits for the next read
        self.offset += len(whole)
        events: list[dict] = []
        for line in whole.decode(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line torn by a kill; the run's resume drops it too
            events += self._events(entry)
        return events

    def _events(self, entry: dict) -> list[dict]:
        kind, result = entry.get("kind"), entry.get("result", {})
        if kind == "plan":
            why = self._why()
            self.plans.append(result)
            holds = why == GOAL_CHECK and result.get("feasible", True) and not result.get("steps")
            return [{"type": "plan", "index": len(self.plans) - 1, "why": why, "goal_holds": holds, "plan": result}]
        if kind == "clips":
            return self._clips(next(iter(entry.get("files", {})), ""), result["clips"])
        waiting = [a for a in self.attempts[self.batch :] if a.critique is None]  # critiques follow their batch's clips in order
        if kind == "critique" and waiting:
            attempt = waiting[0]
            attempt.critique = result
            return [{"type": "critique", "n": self.attempts.index(attempt), "passed": attempt.passed, **result}]
        return []

    def _clips(self, name: str, metas: list[dict]) -> list[dict]:
        """One event per clip of a batch: one try of one step (several candidates where N > 1)."""
        plan = len(self.plans) - 1 if self.plans else None
        step = self._step_of(plan, metas[0]["instruction"])
        tried = len({a.tried for a in self.attempts if a.plan == plan and a.step == step})
        self.batch = len(self.attempts)
        events = []
        for i, meta in enumerate(metas):
            self.attempts.append(_Attempt(plan, step, tried, meta["instruction"]))
            video = clip_video(self.folder, name, i)
            url = None if video is None else f"{self.url}/{video.relative_to(self.folder).as_posix()}"
            events.append({"type": "clip", "n": len(self.attempts) - 1, "plan": plan, "step": step, "try": tried,
                           "candidate": i, "video": url, **meta})  # fmt: skip
        return events

    def _step_of(self, plan: int | None, instruction: str) -> int:
        """Which step of the plan a clip is for: a retry keeps the step (the same or the critic's
        refined wording); else the next step, or the later one named (a step given up is skipped)."""
        before = next((a for a in reversed(self.attempts) if a.plan == plan), None)
        if before is not None:
            best = self._best_of_try(before)
            if not best.passed and instruction in (best.instruction, (best.critique or {}).get("refined_instruction")):
                return before.step
        start = 0 if before is None else before.step + 1
        steps = [s["instruction"] for s in self.plans[plan]["steps"]] if plan is not None else []
        return next((j for j in range(start, len(steps)) if steps[j] == instruction), start)

    def _why(self) -> str:
        """Why the loop asked for this plan, in the words it uses (see spiral.loop)."""
        if not self.plans:
            return "initial"
        last = next((a for a in reversed(self.attempts) if a.critique is not None), None)
        if last is None or self._best_of_try(last).passed:
            return GOAL_CHECK
        c = self._best_of_try(last).critique
        if c["verdict"] == "global_drift" or c["failure_kind"] == "precondition_unmet":
            return f"{c['verdict']}: {c['feedback']}"
        tries = len({a.tried for a in self.attempts if a.plan == last.plan and a.step == last.step})
        steps = self.plans[last.plan]["steps"] if last.plan is not None else []
        instruction = steps[last.step]["instruction"] if last.step < len(steps) else last.instruction
        return f"step {last.step + 1} failed {tries} times: {instruction}"

    def _best_of_try(self, attempt: _Attempt) -> _Attempt:
        """The clip the loop kept of `attempt`'s try: one the critic passed, then the higher score."""
        same = [a for a in self.attempts if (a.plan, a.step, a.tried) == (attempt.plan, attempt.step, attempt.tried)]
        return max(same, key=lambda a: (a.passed, (a.critique or {}).get("score", 0.0)))


def clip_video(folder: Path, npz_name: str, index: int) -> Path | None:
    """The journal's clip as an mp4 a browser plays (H.264 4:2:0), enlarged nearest-neighbour so
    64x64 frames can be seen; made once, kept beside the journal. None if the clip cannot be read."""
    video = folder / CLIPS / f"{Path(npz_name).stem}-{index}.mp4"
    with _converting:
        if not video.is_file():
            try:
                with np.load(folder / "journal" / npz_name, allow_pickle=False) as data:
                    frames = data[f"clip{index}"]
            except (OSError, KeyError, ValueError, zipfile.BadZipFile):
                return None  # a folder copied in part, or a file damaged since: the page says so
            factor = max(1, VIEW_SIZE // max(frames.shape[1:3]))
            factor *= 2 if (frames.shape[1] * factor) % 2 or (frames.shape[2] * factor) % 2 else 1  # H.264 4:2:0: even sides
            video.parent.mkdir(exist_ok=True)
            write_video(video, upscale(frames, factor), for_people=True)
    return video


def end_event(folder: Path, url: str, state: str, error: str = "") -> dict:
    """How the run ended: the episode's summary and stitched video when `spiral run` finished it;
    else the state (cancelled, failed, interrupted) and why."""
    summary_path = folder / "summary.json"
    if not summary_path.is_file():
        return {"type": "end", "state": state, "error": error}
    try:
        summary = json.loads(summary_path.read_text())
    except (OSError, ValueError):
        return {"type": "end", "state": "failed", "error": f"{summary_path.name} cannot be read"}
    judged = summary.get("judged", {})
    files = {name: f"{url}/{name}" if (folder / name).is_file() else None for name in ("video.mp4", "viewer.html")}
    return {"type": "end", "state": "finished", "status": summary.get("status"), "error": summary.get("error") or "",
            "goal_success": judged.get("goal_success"), "not_judged": judged.get("not_judged", ""),
            "video": files["video.mp4"], "viewer": files["viewer.html"], "summary": summary}  # fmt: skip
