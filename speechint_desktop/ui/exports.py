"""Exports from the app: JSON/SRT/VTT/TXT per file, the CSV summary, and the word table (CSV),
of the selected rows or of all of them.

Everything is written by ``core.export`` (atomically, through ``core.fsutil``) on the thread
pool; the user hears how it went in the status line (``message``), including the files left out
because they have no result (failed, cancelled, still queued).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog, QMenu, QWidget

from speechint_desktop.core.results import Analysis
from speechint_desktop.ui.workers import run_job


def words_csv(analyses: list[Analysis]) -> str:
    """``core.export.to_words_csv`` of each analysis, one header (the ``source`` column tells files apart)."""
    from speechint_desktop.core.export import to_words_csv

    parts = [to_words_csv(a) for a in analyses]
    return parts[0] + "".join(p.split("\n", 1)[1] for p in parts[1:]) if parts else ""


FORMATS = (
    ("json", "JSON (everything)"),
    ("csv", "CSV (one row per file)"),
    ("srt", "SRT subtitles"),
    ("vtt", "WebVTT"),
    ("txt", "Text"),
)


def left_out_text(rows) -> str:
    """ " Left out 1 file with no result: broken.wav (failed)." — or "" when every row has one."""
    missing = [r for r in rows if r.analysis is None]
    if not missing:
        return ""
    names = ", ".join(f"{Path(r.path).name} ({r.status})" for r in missing[:5])
    more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
    n = len(missing)
    return f" Left out {n} file{'s' if n != 1 else ''} with no result: {names}{more}."


class Exporter(QObject):
    """The Export menu's actions for a window: ``selected()``/``everything()`` give the rows
    (``results_table.Row``; those without an analysis are reported, not written)."""

    message = Signal(str)

    def __init__(
        self, parent: QWidget, settings, selected: Callable[[], list], everything: Callable[[], list]
    ):
        super().__init__(parent)
        self.widget, self.settings = parent, settings
        self.selected, self.everything = selected, everything
        self.menu = QMenu("Export", parent)
        selected_menu = self.menu.addMenu("Selected rows")
        all_menu = self.menu.addMenu("All rows")
        for fmt, label in FORMATS:
            selected_menu.addAction(f"{label}…", lambda f=fmt: self.export_dialog(f, selected=True))
            all_menu.addAction(f"{label}…", lambda f=fmt: self.export_dialog(f, selected=False))
        self.menu.addSeparator()
        self.menu.addAction("Selected: words as CSV (one row per word)…", self.words_dialog)

    def _start_dir(self) -> Path:
        return Path(self.settings.export_dir or str(Path.home()))

    def export_dialog(self, fmt: str, selected: bool) -> None:
        rows = self.selected() if selected else self.everything()
        analyses = [r.analysis for r in rows if r.analysis is not None]
        if not analyses:
            self.message.emit(
                ("Nothing to export: select analysed files first." if selected else "Nothing to export yet.")
                + left_out_text(rows)
            )
            return
        if fmt == "csv":
            path, _ = QFileDialog.getSaveFileName(
                self.widget, "Export CSV", str(self._start_dir() / "speechint.csv"), "CSV (*.csv)"
            )
            if path:
                self.settings.export_dir = str(Path(path).parent)
                self.export(analyses, "csv", path, left_out_text(rows))
            return
        folder = QFileDialog.getExistingDirectory(
            self.widget, f"Export {fmt.upper()} to folder", str(self._start_dir())
        )
        if folder:
            self.settings.export_dir = folder
            self.export(analyses, fmt, folder, left_out_text(rows))

    def export(self, analyses: list[Analysis], fmt: str, target: str, note: str = "") -> None:
        """Write exports off the GUI thread; ``target`` is a folder (or the CSV file); ``note``
        ends the message (the files left out)."""

        def work():
            from speechint_desktop.core import export

            if fmt == "csv":
                return [export.write_csv(analyses, target)]
            names = export.output_names([a.source for a in analyses])
            return [export.write(a, fmt, target, name=n) for a, n in zip(analyses, names, strict=True)]

        def done(paths):
            n = len(analyses)
            if fmt == "csv":
                text = f"Exported {n} row{'s' if n != 1 else ''} (one per file) to {paths[0]}."
            else:
                where = paths[0] if len(paths) == 1 else Path(target)
                text = f"Exported {n} file{'s' if n != 1 else ''} as {fmt.upper()} to {where}."
            self.message.emit(text + note)

        run_job(work, done, lambda msg: self.message.emit(f"Export failed: {msg}"), owner=self)

    def words_dialog(self, analyses: list[Analysis] | None = None) -> None:
        """Ask where, then write the word table of ``analyses`` (default: the selected files)."""
        if analyses is None:
            analyses = [r.analysis for r in self.selected()]
        analyses = [a for a in analyses if a is not None]
        if not any(s.words for a in analyses for s in a.segments):
            self.message.emit("No word timings to export: select an analysed file with words first.")
            return
        name = f"{Path(analyses[0].source).stem}-words.csv" if len(analyses) == 1 else "speechint-words.csv"
        path, _ = QFileDialog.getSaveFileName(
            self.widget, "Export words (CSV)", str(self._start_dir() / name), "CSV (*.csv)"
        )
        if path:
            self.settings.export_dir = str(Path(path).parent)
            self.export_words(analyses, path)

    def export_words(self, analyses: list[Analysis], path: str) -> None:
        """One row per word (``core.export.WORDS_CSV_COLUMNS``), written atomically off the GUI thread."""

        def work():
            from speechint_desktop.core.fsutil import atomic_write_text

            text = words_csv(analyses)
            atomic_write_text(path, text)
            return text.count("\n") - 1

        run_job(
            work,
            lambda n: self.message.emit(f"Exported {n} word{'s' if n != 1 else ''} to {path}."),
            lambda msg: self.message.emit(f"Export failed: {msg}"),
            owner=self,
        )
