"""The runs the page starts: each is an ordinary `spiral run` subprocess writing its own folder
under the root, queued so that at most `parallel` go at once. A run's parameters and state are
kept in <root>/<id>/serve.json (written atomically), so the list shows them after a restart too.
Cancelling terminates the subprocess: what it journaled stays, and rerunning its command resumes it."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import queue
import re
import secrets
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from spiral.app.params import ParamError, RunParams, check_image, run_command
from spiral.data.format import write_json_atomic

SERVE_JSON, LOG = "serve.json", "serve.log"
UPLOADS = ".uploads"  # accepted start images, re-encoded as PNG, named by their content's digest
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
OVER = ("finished", "cancelled", "failed", "interrupted")


@dataclass
class Run:
    id: str
    folder: Path
    params: dict
    command: list[str]
    created: float = field(default_factory=time.time)
    state: str = "queued"  # then running, and finished, cancelled or failed
    error: str = ""
    proc: subprocess.Popen | None = None

    def record(self) -> dict:
        return {"id": self.id, "params": self.params, "command": self.command, "created": self.created, "state": self.state,
                "error": self.error}  # fmt: skip


class RunManager:
    def __init__(self, root: Path, world_model_path: str | None = None, parallel: int = 1, grace: float = 5.0):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.world_model_path = None if world_model_path is None else str(Path(world_model_path).resolve())
        self.grace = grace
        self.runs: dict[str, Run] = {}  # the runs this server started
        self.lock = threading.Lock()
        self.waiting: queue.Queue[str | None] = queue.Queue()
        self.workers = [threading.Thread(target=self._work, daemon=True) for _ in range(parallel)]
        for worker in self.workers:
            worker.start()

    # --- starting, queueing, cancelling ------------------------------------------------------

    def submit(self, params: RunParams) -> Run:
        run_id = time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)
        folder = self.root / run_id
        image = None
        if params.upload is not None:
            upload = self.root / UPLOADS / f"{params.upload}.png"
            if not upload.is_file():
                raise ParamError("the uploaded image is no longer on the server: upload it again")
            folder.mkdir()
            image = folder / "start.png"  # the run folder holds its own start, so it can be rerun as it is
            shutil.copyfile(upload, image)
        folder.mkdir(exist_ok=True)
        run = Run(run_id, folder, params.to_dict(), run_command(params, folder, image, self.world_model_path))
        with self.lock:
            self.runs[run_id] = run
            self._save(run)
        self.waiting.put(run_id)
        return run

    def _work(self) -> None:
        while (run_id := self.waiting.get()) is not None:
            run = self.runs[run_id]
            with self.lock:
                if run.state != "queued":  # cancelled while it waited
                    continue
                env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}
                with (run.folder / LOG).open("ab") as log:
                    run.proc = subprocess.Popen(run.command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                                env=env, start_new_session=True)  # fmt: skip
                run.state = "running"
                self._save(run)
            code = run.proc.wait()
            with self.lock:
                if run.state == "running":
                    run.state = "finished" if code == 0 else "failed"
                    run.error = "" if code == 0 else last_line(run.folder / LOG) or f"spiral run exited with code {code}"
                self._save(run)

    def cancel(self, run_id: str, why: str = "cancelled from the page") -> str:
        """Stop a run: a queued one never starts; a running one gets SIGTERM, then SIGKILL after the
        grace period. Returns its state."""
        with self.lock:
            run = self.runs.get(run_id)
            if run is None or run.state not in ("queued", "running"):
                return self.state(run_id)[0]
            proc, run.state, run.error = run.proc, "cancelled", why
            self._save(run)
        if proc is not None:
            _signal(proc, signal.SIGTERM)
            try:
                proc.wait(self.grace)
            except subprocess.TimeoutExpired:
                _signal(proc, signal.SIGKILL)
                proc.wait()
        return "cancelled"

    def shutdown(self) -> None:
        for run_id in list(self.runs):
            self.cancel(run_id, "the server stopped")
        for _ in self.workers:
            self.waiting.put(None)

    def _save(self, run: Run) -> None:
        write_json_atomic(run.folder / SERVE_JSON, run.record())

    # --- reading ----------------------------------------------------------------------------

    def folder(self, run_id: str) -> Path | None:
        """The run folder of this id, if it is a real folder right inside the root."""
        if not RUN_ID.fullmatch(run_id):
            return None
        folder = self.root / run_id
        if folder.is_symlink() or not folder.is_dir() or folder.resolve().parent != self.root:
            return None
        return folder

    def state(self, run_id: str) -> tuple[str, str]:
        """(state, why) of a run: this server's word for its own runs, else what its folder holds."""
        run = self.runs.get(run_id)
        if run is not None:
            return run.state, run.error
        folder = self.root / run_id
        if (folder / "summary.json").is_file():
            return "finished", ""
        record = read_json(folder / SERVE_JSON)
        if record.get("state") in ("cancelled", "failed"):
            return record["state"], str(record.get("error", ""))
        return "interrupted", "the run stopped before it finished (rerun its command to resume it)"

    def position(self, run_id: str) -> int:
        """How many runs wait before this one (0 for the next to start)."""
        with self.lock:
            waiting = [r.id for r in sorted(self.runs.values(), key=lambda r: r.created) if r.state == "queued"]
        return waiting.index(run_id) if run_id in waiting else 0

    def info(self, run_id: str) -> dict:
        """What a run was asked to do: its goal and parameters (serve.json, or the journal's settings
        for a run started by hand)."""
        folder = self.root / run_id
        record = read_json(folder / SERVE_JSON)
        params = record.get("params", {})
        goal = params.get("goal") or read_json(folder / "journal" / "config.json").get("goal", "")
        return {"id": run_id, "goal": str(goal), "params": params, "command": record.get("command", [])}

    def listing(self) -> list[dict]:
        """The run folders under the root, newest first: episodes (with their goal and state) and
        bench runs (with their report)."""
        items = []
        for path in self.root.iterdir():
            if path.name.startswith(".") or self.folder(path.name) is None:
                continue
            if (path / "results.jsonl").is_file() and (path / "report.html").is_file():
                items.append({"id": path.name, "kind": "bench", "report": f"/runs/{path.name}/report.html"})
            elif (path / SERVE_JSON).is_file() or (path / "journal").is_dir():
                state, why = self.state(path.name)
                items.append({**self.info(path.name), "kind": "run", "state": state, "error": why})
            else:
                continue
            items[-1]["modified"] = path.stat().st_mtime
        return sorted(items, key=lambda item: item["modified"], reverse=True)

    # --- uploads -----------------------------------------------------------------------------

    def save_upload(self, data: bytes) -> dict:
        image = check_image(data)
        upload_id = hashlib.sha256(data).hexdigest()[:32]
        folder = self.root / UPLOADS
        folder.mkdir(exist_ok=True)
        path = folder / f"{upload_id}.png"
        tmp = folder / f".{upload_id}.tmp.png"
        image.save(tmp, format="PNG")  # re-encoded: the run reads exactly the pixels checked here
        os.replace(tmp, path)
        return {"upload": upload_id, "width": image.width, "height": image.height, "url": f"/api/uploads/{upload_id}.png"}

    def upload_path(self, upload_id: str) -> Path | None:
        path = self.root / UPLOADS / f"{upload_id}.png"
        return path if re.fullmatch(r"[0-9a-f]{32}", upload_id) and path.is_file() else None


def _signal(proc: subprocess.Popen, sig: int) -> None:
    """Signal the run's process group (its own session, so the server is never hit)."""
    with contextlib.suppress(ProcessLookupError):  # it had already ended
        os.killpg(proc.pid, sig)


def read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def last_line(path: Path) -> str:
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1][:500] if lines else ""
