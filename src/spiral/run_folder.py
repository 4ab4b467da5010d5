"""The one rule every resumable command keeps: a run folder holds the work of one configuration.
Its settings are written to `config.json` on first use; a later run whose settings differ is
refused before any work, naming what differs, so results of two configurations never mix."""

from __future__ import annotations

import json
from pathlib import Path

from spiral.config import without_retired
from spiral.data.format import write_json_atomic
from spiral.errors import SpiralError


def claim_folder(
    out: Path, settings: dict, what: str, defaults: dict | None = None, file: str = "config.json", retired: dict | None = None
) -> None:
    """Make `out` (if missing) the folder of `settings`, or check that it already is. `defaults`:
    the value a setting had before it was recorded (one added to the code after the run began);
    `retired`: settings the command no longer takes, with the one value they have now (see
    config.without_retired)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / file
    if path.is_file():
        try:
            saved = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise SpiralError(
                f"{path} is damaged, so what {out} holds cannot be checked: restore the file to resume, or use another --out"
            ) from None
        saved = without_retired(saved, retired or {}, str(path))
        known = defaults or {}
        differs = [k for k in sorted(settings.keys() | saved.keys()) if saved.get(k, known.get(k)) != settings.get(k)]
        if differs:
            raise SpiralError(
                f"{out} holds {what} with other settings ({', '.join(differs)}): rerun with those to resume it, or use another --out"
            )
    write_json_atomic(path, settings)
