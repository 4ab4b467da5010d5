"""`spiral run` writes its episode as it goes, and the same command continues it after an
interruption (a crash, Ctrl-C, kill -9, a server that went away).

Every call the loop makes to its backends is journaled the moment it returns: each plan, each
batch of clips (frames in an .npz written atomically) and each critique, one JSON line per call in
`<out>/journal/calls.jsonl`, keyed by a digest of the call's inputs. A rerun replays the journal in
order: the world model's clips are read back instead of generated again, local agents (the
embedded planner and critic, deterministic) are asked again and must answer as recorded, and API
agents' recorded answers are used as they are (asking again would pay again and could differ). So
a resumed episode is the episode an uninterrupted run makes, wherever the seed makes it one.

Resume trusts only what it checks: a torn last line, a clip file missing or of the wrong size, ends
the trusted part there; a call whose inputs differ from the record (or a local agent answering
otherwise) ends replay there, and the rest of the journal is dropped and made again.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from spiral.run_folder import claim_folder
from spiral.types import Clip, Critique, Plan

CALLS = "calls.jsonl"


def digest(*parts: object) -> str:
    h = hashlib.sha256()
    for part in parts:
        data = np.ascontiguousarray(part).tobytes() if isinstance(part, np.ndarray) else repr(part).encode()
        h.update(len(data).to_bytes(8, "little") + data)
    return h.hexdigest()[:32]


class Journal:
    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.entries, self.dropped = self._trusted()
        self.position = 0
        self.replayed = 0

    def _trusted(self) -> tuple[list[dict], str]:
        """The recorded calls up to the first that cannot be trusted, and why the rest was dropped."""
        path = self.folder / CALLS
        entries: list[dict] = []
        why = ""
        lines = path.read_text().split("\n") if path.exists() else []
        for line in lines[:-1]:  # the text after the last newline is a line cut short
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                why = f"line {len(entries) + 1} of {path} is damaged"
                break
            damage = self._damage(entry)
            if damage:
                why = damage
                break
            entries.append(entry)
        if lines and lines[-1] and not why:
            why = f"the last line of {path} was cut short"
        if why or (lines and lines[-1]):
            self._rewrite(entries)
        return entries, why

    def _damage(self, entry: dict) -> str:
        for name, size in entry.get("files", {}).items():
            file = self.folder / name
            if not file.is_file() or file.stat().st_size != size:
                return f"{file} is missing or damaged"
        return ""

    def _rewrite(self, entries: list[dict]) -> None:
        path = self.folder / CALLS
        tmp = path.with_name(f".{CALLS}.tmp")
        tmp.write_text("".join(json.dumps(e) + "\n" for e in entries))
        os.replace(tmp, path)

    def replay(self, kind: str, key: str) -> dict | None:
        """The recorded result of this call if the journal holds it next; else None, and whatever the
        journal holds from here on is dropped (the episode has gone another way)."""
        if self.position < len(self.entries):
            entry = self.entries[self.position]
            if entry["kind"] == kind and entry["key"] == key:
                self.position += 1
                self.replayed += 1
                return entry
            self.drop_rest()
        return None

    def take_back(self) -> None:
        """The call just replayed did not go as recorded: it and everything after it are dropped."""
        self.position -= 1
        self.replayed -= 1
        self.drop_rest()

    def drop_rest(self) -> None:
        self.entries = self.entries[: self.position]
        self._rewrite(self.entries)

    def record(self, kind: str, key: str, result: dict, arrays: dict[str, np.ndarray] | None = None) -> None:
        entry: dict = {"kind": kind, "key": key, "result": result}
        if arrays:
            name = f"call-{self.position:05d}.npz"
            tmp = self.folder / f".{name}.tmp.npz"
            np.savez(tmp, **arrays)
            os.replace(tmp, self.folder / name)
            entry["files"] = {name: (self.folder / name).stat().st_size}
        with (self.folder / CALLS).open("a") as f:
            f.write(json.dumps(entry) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.entries.append(entry)
        self.position += 1

    def arrays(self, entry: dict) -> dict[str, np.ndarray]:
        (name,) = entry["files"]
        with np.load(self.folder / name) as data:
            return {k: data[k] for k in data.files}


# --- The backends, journaled ----------------------------------------------------------------------


class JournaledWorldModel:
    """A world model whose clips are journaled, and read back on a rerun."""

    def __init__(self, wm, journal: Journal):
        self.wm, self.journal = wm, journal

    def __getattr__(self, name: str):
        return getattr(self.wm, name)

    def generate(self, frame, instruction, *, num_frames=None, seed=0, context=None) -> Clip:
        key = digest(frame, instruction, num_frames, seed, context, 1)
        clips = self._replayed(key)
        if clips is None:
            clips = [self.wm.generate(frame, instruction, num_frames=num_frames, seed=seed, context=context)]
            self._record(key, clips)
        return clips[0]

    def generate_group(self, frame, instruction, *, group_size, seed, num_frames=None, context=None) -> list[Clip]:
        key = digest(frame, instruction, num_frames, seed, context, group_size)
        clips = self._replayed(key)
        if clips is None:
            clips = self.wm.generate_group(
                frame, instruction, group_size=group_size, seed=seed, num_frames=num_frames, context=context
            )
            self._record(key, clips)
        return clips

    def _replayed(self, key: str) -> list[Clip] | None:
        entry = self.journal.replay("clips", key)
        if entry is None:
            return None
        arrays = self.journal.arrays(entry)
        return [Clip(arrays[f"clip{i}"], **meta) for i, meta in enumerate(entry["result"]["clips"])]

    def _record(self, key: str, clips: list[Clip]) -> None:
        metas = [
            {"instruction": c.instruction, "seed": c.seed, "source": c.source, "seconds": c.seconds, "fps": c.fps} for c in clips
        ]
        self.journal.record("clips", key, {"clips": metas}, {f"clip{i}": c.frames for i, c in enumerate(clips)})


class JournaledPlanner:
    """A planner whose plans are journaled; `replay`: use the recorded plans (API agents) rather
    than asking again and checking the answer is the recorded one (local agents)."""

    def __init__(self, planner, journal: Journal, replay: bool):
        self.planner, self.journal, self.replay = planner, journal, replay
        self.name = getattr(planner, "name", type(planner).__name__)

    def __getattr__(self, name: str):
        return getattr(self.planner, name)

    def plan(self, goal, frame, memory) -> Plan:
        key = digest(goal, frame, len(memory.events))  # the memory is what the calls before made it
        return _journaled(self.journal, "plan", key, self.replay, lambda: self.planner.plan(goal, frame, memory), Plan.from_dict)


class JournaledCritic:
    """A critic whose critiques are journaled (see JournaledPlanner for `replay`)."""

    def __init__(self, critic, journal: Journal, replay: bool):
        self.critic, self.journal, self.replay = critic, journal, replay
        self.name = getattr(critic, "name", type(critic).__name__)

    def __getattr__(self, name: str):
        return getattr(self.critic, name)

    def critique(self, step, clip, memory) -> Critique:
        key = digest(step.to_dict(), clip.frames, len(memory.events))
        ask = lambda: self.critic.critique(step, clip, memory)
        return _journaled(self.journal, "critique", key, self.replay, ask, Critique.from_dict)


def _journaled(journal: Journal, kind: str, key: str, replay: bool, ask, read):
    """The call's result from the journal, or asked and recorded."""
    entry = journal.replay(kind, key)
    if entry is not None and replay:
        return read(entry["result"])
    answer = ask()
    if entry is not None:
        if answer.to_dict() == entry["result"]:
            return answer
        journal.take_back()  # a local agent that answers otherwise: the record ends here
    journal.record(kind, key, answer.to_dict())
    return answer


def open_journal(out: Path, settings: dict, defaults: dict | None = None) -> Journal:
    """The run folder's journal, claimed for these settings (another configuration is refused);
    `defaults` as for claim_folder."""
    folder = Path(out) / "journal"
    if not lines_in(folder / CALLS):  # nothing recorded yet: the folder takes the new configuration
        (folder / "config.json").unlink(missing_ok=True)
    claim_folder(folder, settings, "an episode", defaults)
    return Journal(folder)


def lines_in(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.is_file() else 0


__all__ = ["Journal", "JournaledCritic", "JournaledPlanner", "JournaledWorldModel", "digest", "open_journal"]
