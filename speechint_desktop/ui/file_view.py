"""What the selected row shows below the queue: transcript, plots, summary and delivery panel.

A row with a result shows it (the waveform loads in the background if this session has not got
it); a row without one shows its status, and while it is analysed its own waveform and time axis
(as soon as it is decoded) with the progress — never the previous file's view — then fills in:
its loudness and speech once the file is read, its transcript batch by batch (the engine's
``partial`` previews), until the result replaces them.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject

from speechint_desktop.ui.results_table import QUEUED, RETRYABLE, RUNNING
from speechint_desktop.ui.workers import load_envelope, run_job


class FileView(QObject):
    def __init__(self, window, table, transcript, plots, summary, compliance, navigator):
        super().__init__(window)
        self.table, self.transcript, self.plots = table, transcript, plots
        self.summary, self.compliance, self.navigator = summary, compliance, navigator
        self.status = window.status
        self.envelopes: dict[str, object] = {}
        self._loading: set[str] = set()
        self.shown: str | None = None  # the key of the row on show
        self._status_shown: tuple[str, str] | None = None  # (key, status) the summary says

    def show_current(self) -> None:
        row = self.table.current_row()
        if row is None:
            return
        a = row.analysis
        if self.shown != row.key or a is None:
            self.navigator.reset()
        self.shown = row.key
        if a is None:
            part = row.preview if row.status == RUNNING else None
            self.transcript.set_analysis(part)
            self.plots.clear()
            if part is not None:
                self.plots.set_analysis(part)
            else:
                self.show_pending(row)
            self._show_status(row)
            if row.status == RUNNING:
                self.plots.set_envelope(self.envelopes.get(row.path))
            return
        self.transcript.set_analysis(a)
        self.plots.set_analysis(a)
        self.summary.show_analysis(a)
        self.compliance.show_analysis(a)
        env = self.envelopes.get(row.path)
        self.plots.set_envelope(env)
        if env is None and row.path not in self._loading and Path(row.path).exists():
            self._loading.add(row.path)
            run_job(
                lambda p=row.path: (p, load_envelope(p)),
                lambda res: (self._loading.discard(res[0]), self.waveform(*res)),
                lambda msg, p=row.path: (self._loading.discard(p), self.status(msg)),
                owner=self,
            )

    def _show_status(self, row) -> None:
        """The row's state in the panels that have no result to show (summary, delivery)."""
        self.summary.show_status(row.path, row.status, row.error)
        self.compliance.show_analysis(None, f"{Path(row.path).name}: {row.status}")
        self._status_shown = (row.key, row.status)

    def show_pending(self, row) -> None:
        """A row without a result: its own time axis (once decoded) and what is happening."""
        if row.status == RUNNING:
            text = f"Analysing… {row.fraction:.0%}"
        elif row.status == QUEUED:
            text = "Queued"
        else:
            text = row.status.capitalize() + (" — right-click ▸ Retry" if row.status in RETRYABLE else "")
        self.plots.show_pending(row.duration_s, text)

    def row_changed(self, key: str) -> None:
        current = self.table.current_row()
        if current is not None and current.key == key:
            if current.analysis is None and self.shown == key and current.status == RUNNING:
                if current.preview is None:
                    self.show_pending(current)  # just the progress text: cheap
                if self._status_shown != (key, RUNNING):  # selected while queued: say it runs now
                    self._show_status(current)
            else:
                self.show_current()

    def partial(self, key: str, analysis) -> None:
        """The analysis so far of a running file (``Row.preview``, kept by the queue manager):
        shown at once if it is the selected row."""
        current = self.table.current_row()
        if current is None or current.key != key or current.analysis is not None:
            return
        first = self.shown == key and self.plots.analysis is None
        self.transcript.set_analysis(analysis)
        self.plots.set_analysis(analysis, keep_view=not first)
        self.plots.set_envelope(self.envelopes.get(current.path))

    def waveform(self, path: str, envelope) -> None:
        self.envelopes[path] = envelope
        current = self.table.current_row()
        if current is not None and current.path == path:
            self.plots.set_envelope(envelope)

    def clear(self) -> None:
        self.envelopes.clear()
        self.shown = None
        self.transcript.set_analysis(None)
        self.plots.clear()
        self.summary.show_empty()
        self.compliance.show_analysis(None)
