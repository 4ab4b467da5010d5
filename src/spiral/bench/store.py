"""A run folder on disk: config.json (what was run), results.jsonl (one line per finished episode)
and, while a distributed run is going, parts/rank-R.jsonl (the other ranks' lines, merged into
results.jsonl by rank 0).

A line counts once it ends with a newline. Each is written with a single write() and fsync'd, so a
run killed at any moment (even kill -9) leaves at most one torn line at the end of a file; the
writer cuts it off when it resumes, and readers skip it. Keys (task, method) are unique: a key
found twice (a merge interrupted after writing but before deleting its part file) is the same
episode twice and is counted once.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from spiral.bench.metrics import ERRORED, EpisodeMetrics
from spiral.config import without_retired
from spiral.errors import SpiralError

CONFIG, RESULTS, PARTS = "config.json", "results.jsonl", "parts"
FORMAT = "spiral-bench/1"


@dataclass(frozen=True)
class RunFolder:
    root: Path

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG

    @property
    def results_path(self) -> Path:
        return self.root / RESULTS

    def part_path(self, rank: int) -> Path:
        return self.root / PARTS / f"rank-{rank}.jsonl"

    def part_paths(self) -> list[Path]:
        return sorted((self.root / PARTS).glob("rank-*.jsonl")) if (self.root / PARTS).is_dir() else []

    # ---- config ------------------------------------------------------------------------------
    def read_config(self) -> dict | None:
        if not self.config_path.is_file():
            return None
        try:
            data = json.loads(self.config_path.read_text())
            if data.get("format") != FORMAT or not isinstance(data.get("fingerprint"), dict):
                raise ValueError(f"format is not {FORMAT}")
            return data
        except (ValueError, AttributeError) as err:
            raise SpiralError(
                f"{self.config_path} is damaged ({err}); the finished episodes beside it are kept: move it aside "
                f"(mv {self.config_path} {self.config_path}.bad) and rerun the command that made the folder, with the same options"
            ) from None

    def claim(self, fingerprint: dict, extra: dict, retired: dict[str, dict] | None = None) -> dict:
        """Check that this folder holds results of the same configuration (or none), then record it.
        A different configuration is refused: mixing its results would compare apples with pears.
        `retired`: per fingerprint entry that is a dict, settings it no longer holds, with the one
        value they have now (see config.without_retired)."""
        self.root.mkdir(parents=True, exist_ok=True)
        old = self.read_config()
        if old is not None and not self.read() and not self.part_paths():
            old = None  # nothing was finished under the old configuration, so nothing can mix
        if old is not None:
            theirs = dict(old["fingerprint"])
            for key, settings in (retired or {}).items():
                if isinstance(theirs.get(key), dict):
                    theirs[key] = without_retired(theirs[key], settings, str(self.config_path))
            diffs = [f"{k}: {theirs.get(k)!r} there, {fingerprint.get(k)!r} now" for k in sorted(set(theirs) | set(fingerprint))
                     if theirs.get(k) != fingerprint.get(k)]  # fmt: skip
            if diffs:
                raise SpiralError(
                    f"{self.root} holds results of a different configuration, and mixing them would make the report "
                    f"meaningless ({'; '.join(diffs)}); use another --out folder or rerun with the same options"
                )
            extra = {**extra, "methods": list(dict.fromkeys(old.get("methods", []) + extra.get("methods", [])))}
        data = {"format": FORMAT, "fingerprint": fingerprint, **extra}
        tmp = self.config_path.with_name(f".{CONFIG}.tmp")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, self.config_path)
        return data

    # ---- results -----------------------------------------------------------------------------
    def read(self, repair: bool = False) -> list[EpisodeMetrics]:
        """Every finished episode: results.jsonl, then any part files; each key once."""
        if not self.results_path.is_file() and not self.part_paths():
            return []
        rows: dict[str, EpisodeMetrics] = {}
        for path in [self.results_path, *self.part_paths()]:
            for row in read_lines(path, repair):
                if row.key not in rows or rows[row.key].status == ERRORED:  # a redone episode replaces its errored row
                    rows[row.key] = row
        return list(rows.values())

    def merge_parts(self, extra: list[EpisodeMetrics] = ()) -> int:
        """Rank 0: move the part files' lines (and lines gathered from other ranks) into results.jsonl."""
        have = {r.key for r in read_lines(self.results_path, repair=True) if r.status != ERRORED}
        new = {}
        for row in [*extra, *(r for p in self.part_paths() for r in read_lines(p, repair=False))]:
            if row.key not in have and (row.key not in new or new[row.key].status == ERRORED):
                new[row.key] = row
        with Appender(self.results_path) as out:
            for row in new.values():
                out.append(row)
        for p in self.part_paths():  # every line of it is in results.jsonl now
            p.unlink()
        if (self.root / PARTS).is_dir() and not any((self.root / PARTS).iterdir()):
            (self.root / PARTS).rmdir()
        return len(new)


def read_lines(path: Path, repair: bool) -> list[EpisodeMetrics]:
    if not path.is_file():
        return []
    raw = path.read_bytes()
    end = raw.rfind(b"\n") + 1
    if end < len(raw) and repair:  # a torn last line: the writer was killed mid-write
        with open(path, "r+b") as f:
            f.truncate(end)
            os.fsync(f.fileno())
    rows = []
    for number, line in enumerate(raw[:end].split(b"\n")[:-1], start=1):
        if not line.strip():
            continue
        try:
            rows.append(EpisodeMetrics.from_dict(json.loads(line)))
        except (ValueError, TypeError) as err:  # JSONDecodeError is a ValueError
            raise SpiralError(f"corrupt results file {path}, line {number}: {err}") from None
    return rows


class Appender:
    """Appends one line per episode, each with a single write() then fsync."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def append(self, row: EpisodeMetrics) -> None:
        data = (json.dumps(row.to_dict()) + "\n").encode()
        written = os.write(self.fd, data)
        if written != len(data):  # only on a full disk; leave a torn line the next run repairs
            raise SpiralError(f"could not write a result line ({written} of {len(data)} bytes); is the disk full?")
        os.fsync(self.fd)

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> Appender:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
