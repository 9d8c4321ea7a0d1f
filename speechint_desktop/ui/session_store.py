"""Every finished analysis and the queue itself are written to disk as they change, so a crash or a
kill loses nothing.

A session is a folder ``data_dir()/sessions/<id>/`` holding one sub-folder ("slot") per result
with the JSON export of its ``Analysis`` (written by core.export, atomically), or an
``error.json`` for a file that failed, and a ``row.key`` naming the queue row it belongs to.
``queue.json`` lists the rows still waiting or running (key, path, model), rewritten atomically
whenever that changes: on start the app reloads the results and brings the rest back as
"interrupted". A removed row's slot is renamed to a hidden ``.removed-…`` name (undo renames it
back). Loading runs off the GUI thread.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from speechint_desktop.core.fsutil import atomic_write_text, remove_leftover_temps
from speechint_desktop.core.results import Analysis, FileError

QUEUE_FILE = "queue.json"
KEY_FILE = "row.key"
REMOVED = ".removed-"
STALE_TEMP_S = 120  # a temporary this old is a killed app's: no save takes that long


def new_session_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


@dataclass
class Pending:
    """A queue row without a result: waiting, running, cancelled or interrupted."""

    key: str
    path: str
    model: str
    status: str = "queued"


@dataclass
class Saved:
    """One row as it comes back from disk: a result, an error, or an interrupted file."""

    key: str
    path: str
    model: str
    item: Analysis | FileError | None  # None: no result (see status)
    status: str = ""  # for item None: "cancelled", else "interrupted" (queued/running at the stop)


class SessionStore:
    """Writes results of one session; ``save``/``save_error`` are safe from the analysis thread."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self._lock = threading.Lock()
        self._queue_lock = threading.Lock()
        self._queue_seq = 0

    def _slots(self, hidden: bool = False) -> list[Path]:
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.iterdir() if p.is_dir() and (hidden or not p.name.startswith(".")))

    def _slot(self, source: str, key: str | None, model: str = "") -> Path:
        with self._lock:
            self.root.mkdir(parents=True, exist_ok=True)
            numbers = [int(m.group(1)) for p in self._slots(True) if (m := re.search(r"(\d{4,})-", p.name))]
            stem = re.sub(r"[^\w.-]+", "_", Path(source).stem)[:60] or "item"
            slot = self.root / f"{max(numbers, default=0) + 1:04d}-{stem}"
            slot.mkdir()
            if key:
                atomic_write_text(slot / KEY_FILE, f"{key}\n{model}\n")
            return slot

    def save(self, analysis: Analysis, key: str | None = None, model: str | None = None) -> Path:
        """``model``: the name the row asked for (a catalogue name or a checkpoint folder)."""
        from speechint_desktop.core import export

        slot = self._slot(analysis.source, key, model or analysis.model)
        return Path(export.write(analysis, "json", slot))

    def save_error(self, error: FileError, key: str | None = None, model: str = "") -> Path:
        path = self._slot(error.source, key, model) / "error.json"
        atomic_write_text(path, json.dumps({"source": error.source, "message": error.message}))
        return path

    def save_queue(self, pending: list[Pending], seq: int = 0) -> None:
        """The rows not finished yet, in queue order (atomic: a kill leaves the old or the new list).

        Safe from any thread: ``seq`` orders the states, so an older one that arrives late is
        dropped rather than written over a newer one."""
        data = [{"key": p.key, "path": p.path, "model": p.model, "status": p.status} for p in pending]
        with self._queue_lock:
            if seq < self._queue_seq:
                return
            self._queue_seq = seq
            atomic_write_text(self.root / QUEUE_FILE, json.dumps(data, indent=1))

    def remove(self, keys) -> list[Path]:
        """Hide the slots of rows the user removed; returns them for ``restore``."""
        keys, moved = set(keys), []
        for slot in self._slots():
            if _slot_meta(slot)[0] in keys:
                target = slot.with_name(REMOVED + slot.name)
                slot.rename(target)
                moved.append(target)
        return moved

    def restore(self, hidden: list[Path]) -> None:
        for slot in hidden:
            if slot.exists():
                slot.rename(slot.with_name(slot.name[len(REMOVED) :]))

    def load(self) -> list[Analysis | FileError]:
        """Everything saved in this session, oldest first; unreadable entries are skipped."""
        return [s.item for s in self.load_rows() if s.item is not None]

    def load_rows(self) -> list[Saved]:
        """The results, then the files that were still queued or running ("interrupted").

        Also removes what a killed app left half-written (hidden temporaries as large as a
        result); the window may already be saving new results, so only old ones go."""
        remove_leftover_temps(self.root, {QUEUE_FILE}, STALE_TEMP_S)
        for slot in self._slots(hidden=True):
            remove_leftover_temps(slot, None, STALE_TEMP_S)
        rows: list[Saved] = []
        for slot in self._slots():
            for path in sorted(slot.glob("*.json")):
                try:
                    data = json.loads(path.read_text(encoding="utf-8"))
                    if path.name == "error.json":
                        item = FileError(str(data["source"]), str(data["message"]))
                        model = _slot_meta(slot)[1]
                    else:
                        item = Analysis.from_dict(data)
                        model = _slot_meta(slot)[1] or item.model
                except (OSError, ValueError, KeyError, TypeError):
                    continue
                key = _slot_meta(slot)[0] or slot.name
                rows = [r for r in rows if r.key != key]  # analysed again: the latest result counts
                rows.append(Saved(key, item.source, model, item))
                break
        done = {r.key for r in rows}
        try:
            queue = json.loads((self.root / QUEUE_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            queue = []
        for entry in queue if isinstance(queue, list) else []:
            try:
                key, path, model = str(entry["key"]), str(entry["path"]), str(entry.get("model", ""))
                status = "cancelled" if entry.get("status") == "cancelled" else "interrupted"
            except (KeyError, TypeError, AttributeError):
                continue
            if key not in done:
                rows.append(Saved(key, path, model, None, status))
        return rows


def _slot_meta(slot: Path) -> tuple[str | None, str]:
    """(row key, model) written beside a result; (None, "") for slots from older versions."""
    try:
        lines = (slot / KEY_FILE).read_text(encoding="utf-8").splitlines()
    except OSError:
        return None, ""
    return (lines[0].strip() or None) if lines else None, lines[1].strip() if len(lines) > 1 else ""
