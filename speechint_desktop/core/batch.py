"""Batches that survive a kill: a record per finished file, and a CSV summary kept current.

Each finished file leaves a *record*, the JSON of its ``Analysis`` plus the ``settings`` that
made it (model, compute, head, ``TranscribeOptions``) and the size and mtime of the source. The
record is the user's ``<name>.json`` when JSON is one of the formats, otherwise a small copy
without the loudness traces in ``<out>/.speechint/<name>.json``, so a CSV- or SRT-only batch
can be resumed too. A file is *done* when a record loads, names the same source file, unchanged
since, and was made with the same settings; anything else (no record, a corrupt or foreign one,
other settings, a failed file) is analysed again. Device, threads and batch size are left out of
the settings: they change the speed, not the result.

The CSV (``speechint-results.csv``) is rewritten atomically after every finished file, one row
per done file in input order, so a ``kill -9`` leaves it valid and at most the file being
written behind the records; failed files get no row, as before.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import asdict
from pathlib import Path

from . import export
from .fsutil import atomic_write_text, remove_leftover_temps
from .results import Analysis

CSV_NAME = "speechint-results.csv"
RECORD_DIR = ".speechint"


def settings(model: str, compute: str, head, options, backend: str = "auto") -> dict:
    """What decides a file's result; a record made with other settings is not reused.

    ``options`` is a ``TranscribeOptions``. The dict is JSON-normalised (tuples → lists) so it
    compares equal to its own round trip through a record.
    """
    s = {
        "model": str(model),
        "compute": str(compute),
        "backend": str(backend),
        "head": None if head is None else os.fspath(head),
        "options": asdict(options),
    }
    return json.loads(json.dumps(s))


def _source_stat(path: Path) -> dict | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _differences(a, b, prefix: str = "") -> list[str]:
    """The keys (dotted) where two settings dicts differ, for the user's "redo" line."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            out += _differences(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]


class Batch:
    """The outputs of one ``speechint analyze`` run over ``files`` into ``out_dir``.

    ``resume()`` finds the done files (re-rendering any of their SRT/VTT/TXT that are missing
    or stale); ``pending`` is what is left to analyse; ``finish(analysis)`` writes a new
    result's files, its record, then the CSV.
    """

    def __init__(
        self, files, out_dir, formats, settings: dict, word_cues: bool = False, names: dict | None = None
    ):
        self.files = [Path(f) for f in files]
        self.out_dir = Path(out_dir)
        self.formats = list(formats)
        self.settings = settings
        self.word_cues = word_cues
        if names is None:  # a part of a bigger batch (a cluster task) is given the whole batch's names
            sources = [str(f) for f in self.files]
            names = dict(zip(sources, export.output_names(sources), strict=True))
        self.names = dict(names)
        self.rows: dict[str, dict] = {}  # source → CSV row, for every done file
        self.skipped: list[Path] = []
        self.finished = 0

    # --- records ----------------------------------------------------------------------------

    def _records(self, path: Path) -> list[Path]:
        """Where a record of ``path`` may be, best first."""
        name = self.names[str(path)]
        user_json = self.out_dir / f"{name}.json"
        if "json" in self.formats:
            return [user_json]  # the hidden record has no traces: it cannot stand in for the JSON
        return [self.out_dir / RECORD_DIR / f"{name}.json", user_json]

    def check(self, path) -> tuple[Analysis | None, str]:
        """``(analysis, "done")`` if ``path`` has a valid record made with these settings, else
        ``(None, why not)``."""
        path = Path(path)
        why = "no result"
        for record in self._records(path):
            analysis, reason = self._check_record(record, path)
            if analysis is not None:
                return analysis, "done"
            if reason != "no result":
                why = reason
        return None, why

    def _check_record(self, record: Path, path: Path) -> tuple[Analysis | None, str]:
        try:
            data = json.loads(record.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None, "no result"
        except (OSError, ValueError):
            return None, "unreadable result"
        try:
            analysis = Analysis.from_dict(data)
        except (KeyError, TypeError, ValueError, AttributeError):
            return None, "unreadable result"
        if not isinstance(data, dict) or "settings" not in data:
            return None, "result without settings"
        if Path(analysis.source).resolve() != path.resolve():
            return None, f"result is of another file ({analysis.source})"
        if data.get("source_file") != _source_stat(path):
            return None, "source changed since"
        diff = _differences(data["settings"], self.settings)
        if diff:
            return None, f"made with other settings: {', '.join(diff)}"
        return analysis, "done"

    # --- the run ----------------------------------------------------------------------------

    def resume(self) -> list[tuple[Path, str]]:
        """Mark every done file skipped (its CSV row kept, missing per-file formats rendered
        from its record) and write the CSV. Returns ``(file, why not done)`` for files that
        had a record which could not be reused."""
        redo = []
        for path in self.files:
            analysis, why = self.check(path)
            if analysis is None:
                if why != "no result":
                    redo.append((path, why))
                continue
            self._render(analysis, ("srt", "vtt", "txt"))
            self.rows[str(path)] = export.csv_row(analysis)
            self.skipped.append(path)
        self.write_csv()
        return redo

    @property
    def pending(self) -> list[Path]:
        return [f for f in self.files if str(f) not in self.rows]

    def finish(self, analysis: Analysis) -> None:
        """A new result: its per-file formats, its record, then the CSV (in that order, so the
        CSV never names a file without a record)."""
        self._render(analysis, ("srt", "vtt", "txt"), always=True)
        name = self.names.get(analysis.source) or Path(analysis.source).stem or "recording"
        extra = {"settings": self.settings, "source_file": _source_stat(Path(analysis.source))}
        if "json" in self.formats:
            export.write_json(analysis, self.out_dir / f"{name}.json", traces=True, extra=extra)
        else:
            export.write_json(analysis, self.out_dir / RECORD_DIR / f"{name}.json", traces=False, extra=extra)
        self.rows[analysis.source] = export.csv_row(analysis)
        self.finished += 1
        self.write_csv()

    def _render(self, analysis: Analysis, fmts, always: bool = False) -> None:
        """Write the asked per-file text formats; for a done file only those missing or stale
        (e.g. ``--word-cues`` changed), so unchanged files keep their mtime."""
        name = self.names.get(analysis.source) or Path(analysis.source).stem or "recording"
        for fmt in (f for f in self.formats if f in fmts):
            path = self.out_dir / f"{name}.{fmt}"
            text = export.render(analysis, fmt, word_cues=self.word_cues)
            if not always:
                try:
                    if path.read_text(encoding="utf-8") == text:
                        continue
                except (OSError, ValueError):
                    pass
            atomic_write_text(path, text)

    def remove_leftovers(self, extra=()) -> int:
        """At a run's end: remove the temporary files of this batch's outputs (and of ``extra``
        names in ``out_dir``) that a killed writer left, on this run or one before it."""
        names = set(self.names.values())
        top = {f"{n}.{fmt}" for n in names for fmt in self.formats if fmt != "csv"}
        top |= {CSV_NAME, *extra}
        hidden = {f"{n}.json" for n in names}
        removed = remove_leftover_temps(self.out_dir, top)
        removed += remove_leftover_temps(self.out_dir / RECORD_DIR, hidden)
        return len(removed)

    def write_csv(self) -> Path | None:
        """All rows so far, in input order, atomically (nothing before the first row)."""
        if "csv" not in self.formats or not self.rows:
            return None
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=export.CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for f in self.files:
            row = self.rows.get(str(f))
            if row is not None:
                writer.writerow(row)
        return atomic_write_text(self.out_dir / CSV_NAME, buf.getvalue())
