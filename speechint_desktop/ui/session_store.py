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
from dataclasses import fields
from pathlib import Path

import numpy as np

from speechint_desktop.core.fsutil import atomic_write_text
from speechint_desktop.core.results import Analysis, FileError, Loudness, LoudnessTrace, Segment, Timings


def new_session_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


def _pick(cls, d: dict) -> dict:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in d.items() if k in names}


def _arr(values) -> np.ndarray:
    return np.array([-np.inf if v is None else v for v in (values or [])], dtype=np.float64)


def analysis_from_dict(d: dict) -> Analysis:
    """Rebuild an ``Analysis`` from its JSON export (nulls in traces become -inf again)."""
    d = d.get("analysis", d)
    loud = dict(d["loudness"])
    trace = loud.get("trace")
    if trace:
        loud["trace"] = LoudnessTrace(
            times=np.array(trace.get("times") or [], dtype=np.float64),
            momentary_lufs=_arr(trace.get("momentary_lufs")),
            short_term_lufs=_arr(trace.get("short_term_lufs")),
            rms_dbfs=_arr(trace.get("rms_dbfs")),
            step=float(trace.get("step") or 0.01),
        )
    for key in ("rms_dbfs", "sample_peak_dbfs"):
        if loud.get(key) is None:
            loud[key] = float("-inf")
    out = _pick(Analysis, d)
    out["loudness"] = Loudness(**_pick(Loudness, loud))
    out["segments"] = [Segment(**_pick(Segment, s)) for s in d.get("segments") or []]
    out["timings"] = Timings(**_pick(Timings, d.get("timings") or {}))
    return Analysis(**out)


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
                        items.append(analysis_from_dict(data))
                except (OSError, ValueError, KeyError, TypeError):
                    continue
                break
        return items
