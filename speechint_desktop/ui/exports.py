"""Exports from the app: JSON/SRT/VTT/TXT per file, the CSV summary, and the word table (CSV).

Everything is written by ``core.export`` (atomically, through ``core.fsutil``) on the thread
pool; the user hears how it went in the status line (``message``).
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


class Exporter(QObject):
    """The Export menu's actions for a window: ``selected()``/``everything()`` give the analyses."""

    message = Signal(str)

    def __init__(
        self,
        parent: QWidget,
        settings,
        selected: Callable[[], list[Analysis]],
        everything: Callable[[], list[Analysis]],
    ):
        super().__init__(parent)
        self.widget, self.settings = parent, settings
        self.selected, self.everything = selected, everything
        self.menu = QMenu("Export", parent)
        for fmt, label in (
            ("json", "JSON (everything)"),
            ("srt", "SRT subtitles"),
            ("vtt", "WebVTT"),
            ("txt", "Text"),
        ):
            self.menu.addAction(f"Selected as {label}…", lambda f=fmt: self.export_dialog(f, selected=True))
        self.menu.addAction("Selected: words as CSV (one row per word)…", self.words_dialog)
        self.menu.addSeparator()
        self.menu.addAction("All as JSON…", lambda: self.export_dialog("json", selected=False))
        self.menu.addAction(
            "All as CSV (one row per file)…", lambda: self.export_dialog("csv", selected=False)
        )

    def _start_dir(self) -> Path:
        return Path(self.settings.export_dir or str(Path.home()))

    def export_dialog(self, fmt: str, selected: bool) -> None:
        analyses = self.selected() if selected else self.everything()
        if not analyses:
            self.message.emit(
                "Nothing to export: select analysed files first." if selected else "Nothing to export yet."
            )
            return
        if fmt == "csv":
            path, _ = QFileDialog.getSaveFileName(
                self.widget, "Export CSV", str(self._start_dir() / "speechint.csv"), "CSV (*.csv)"
            )
            if path:
                self.settings.export_dir = str(Path(path).parent)
                self.export(analyses, "csv", path)
            return
        folder = QFileDialog.getExistingDirectory(
            self.widget, f"Export {fmt.upper()} to folder", str(self._start_dir())
        )
        if folder:
            self.settings.export_dir = folder
            self.export(analyses, fmt, folder)

    def export(self, analyses: list[Analysis], fmt: str, target: str) -> None:
        """Write exports off the GUI thread; ``target`` is a folder (or the CSV file)."""

        def work():
            from speechint_desktop.core import export

            if fmt == "csv":
                return [export.write_csv(analyses, target)]
            names = export.output_names([a.source for a in analyses])
            return [export.write(a, fmt, target, name=n) for a, n in zip(analyses, names, strict=True)]

        def done(paths):
            where = paths[0] if len(paths) == 1 else Path(target)
            self.message.emit(f"Exported {len(paths)} file{'s' if len(paths) != 1 else ''} to {where}.")

        run_job(work, done, lambda msg: self.message.emit(f"Export failed: {msg}"), owner=self)

    def words_dialog(self, analyses: list[Analysis] | None = None) -> None:
        """Ask where, then write the word table of ``analyses`` (default: the selected files)."""
        analyses = [a for a in (self.selected() if analyses is None else analyses) if a is not None]
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
