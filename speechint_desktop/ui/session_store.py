"""Every finished analysis is written to disk as it completes, so a crash loses nothing.

A session is a folder ``data_dir()/sessions/<id>/`` holding one sub-folder per file with the
JSON export of its ``Analysis`` (written by core.export, atomically), or an ``error.json`` for a
file that failed. On start the app reloads the current session from there (off the GUI thread).
"""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

from speechint_desktop.core.fsutil import atomic_write_text
from speechint_desktop.core.results import Analysis, FileError


def new_session_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


class SessionStore:
    """Writes results of one session; safe to call ``save`` from the analysis thread."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self._lock = threading.Lock()

    def _slot(self, source: str) -> Path:
        with self._lock:
            self.root.mkdir(parents=True, exist_ok=True)
            n = sum(1 for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
            stem = re.sub(r"[^\w.-]+", "_", Path(source).stem)[:60] or "item"
            slot = self.root / f"{n + 1:04d}-{stem}"
            slot.mkdir()
            return slot

    def save(self, analysis: Analysis) -> Path:
        from speechint_desktop.core import export

        return Path(export.write(analysis, "json", self._slot(analysis.source)))

    def save_error(self, error: FileError) -> Path:
        path = self._slot(error.source) / "error.json"
        atomic_write_text(path, json.dumps({"source": error.source, "message": error.message}))
        return path

    def load(self) -> list[Analysis | FileError]:
        """Everything saved in this session, oldest first; unreadable entries are skipped."""
        items: list[Analysis | FileError] = []
        if not self.root.is_dir():
            return items
        for slot in sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            for path in sorted(slot.glob("*.json")):
                try:
                    data = json.loads(path.read_text(encoding="utf-8"))
                    if path.name == "error.json":
                        items.append(FileError(str(data["source"]), str(data["message"])))
                    else:
                        items.append(Analysis.from_dict(data))
                except (OSError, ValueError, KeyError, TypeError):
                    continue
                break
        return items
