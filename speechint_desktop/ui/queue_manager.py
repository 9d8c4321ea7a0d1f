"""The analysis queue as the user manages it: add, analyse again (same model asks, another model
adds a row), retry, remove, clear with undo — and the queue written to the session as it changes,
so a crash or kill brings unfinished files back as "interrupted" with Retry.

The worker analyses ``QueueItem``s; this object turns its signals into ``ResultsModel`` rows and
keeps ``queue.json`` (``SessionStore.save_queue``) in step. The window asks it to do things and
listens to ``message`` (status line), ``row_changed(key)``, ``finished(key)`` and ``undo_changed``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QMessageBox

from speechint_desktop.core.results import FileError
from speechint_desktop.ui import session_store
from speechint_desktop.ui.analysis_worker import QueueItem
from speechint_desktop.ui.results_table import (
    CANCELLED,
    DONE,
    FAILED,
    INTERRUPTED,
    PENDING,
    QUEUED,
    RETRYABLE,
    RUNNING,
    Row,
)
from speechint_desktop.ui.summary import model_label
from speechint_desktop.ui.workers import run_job


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


class QueueManager(QObject):
    message = Signal(str)
    row_changed = Signal(str)  # key: status/progress of that row changed
    finished = Signal(str)  # key: a result arrived (the window shows it, then releases the worker)
    undo_changed = Signal(str)  # what Undo would undo ("" = nothing)

    def __init__(self, window, results, table, worker, settings, home: Path):
        super().__init__(window)
        self.window, self.results, self.table, self.worker = window, results, table, worker
        self.settings, self.home = settings, Path(home)
        if not settings.session:
            settings.session = session_store.new_session_id()
        self.store = session_store.SessionStore(self._session_dir(settings.session))
        worker.store = self.store
        self._batch = 0  # files in the current run of the queue (for "1.33 of 3 files")
        self._undo: list[tuple[str, Callable[[], None]]] = []
        self._saves = 0  # orders the queue writes (SessionStore.save_queue)
        # ask(question) -> bool; tests replace it to answer without a dialog
        self.ask: Callable[[str, str], bool] = self._ask_dialog
        w = worker
        w.started_file.connect(self._started)
        w.progress.connect(self._progress)
        w.decoded.connect(self._decoded)
        w.partial_file.connect(self._partial)
        w.finished_file.connect(self._finished)
        w.failed_file.connect(self._failed)
        w.cancelled_file.connect(self._cancelled)
        w.queue_done.connect(self._queue_done)

    def _session_dir(self, session: str) -> Path:
        return self.home / "sessions" / session

    # --- adding -------------------------------------------------------------------------------
    def enqueue(self, files: list[str], model: str | None = None) -> list[Row]:
        """Queue ``files`` with ``model`` (default: the picker's). A file already analysed with that
        model is analysed again in place only if the user says so; with another model it gets a
        new row. Returns the rows queued."""
        model = model or self.settings.model
        fresh, again, retry, busy = [], [], [], []
        for f in map(str, files):
            row = self.results.row_for(f, model)
            if row is None:
                fresh.append(f)
            elif row.status in PENDING:
                busy.append(row)
            elif row.status in RETRYABLE:  # no result to lose: just analyse it again
                retry.append(row)
            else:
                again.append(row)
        if again and not self.ask(
            "Analyse again?",
            f"{plural(len(again), 'file')} already analysed with {model_label(model)} "
            f"({', '.join(Path(r.path).name for r in again[:3])}{'…' if len(again) > 3 else ''}). "
            "Analyse again and replace that result?",
        ):
            again = []
        rows = [self.results.add(f, QUEUED, model) for f in fresh] + retry + again
        self._queue(rows, replacing=[*retry, *again])
        skipped = len(files) - len(rows)
        if rows:
            self.message.emit(
                f"Queued {plural(len(rows), 'file')} for {model_label(model)}."
                + (f" {skipped} already queued or kept as they were." if skipped else "")
            )
        elif files:
            self.message.emit("Nothing queued: those files are already queued or analysed with this model.")
        return rows

    def _queue(self, rows: list[Row], replacing: list[Row] = ()) -> None:
        if not rows:
            return
        if replacing:
            self.store.remove([r.key for r in replacing])  # the new result replaces the saved one
        if not self.worker.busy:
            self._batch = 0
        for r in rows:
            self.results.update(r.key, status=QUEUED, fraction=0.0, analysis=None, error=None, preview=None)
        self._batch += len(rows)
        self.worker.enqueue([QueueItem(r.key, r.path, r.model) for r in rows])
        self.save_queue()
        self.update_bar()

    def retry(self, rows: list[Row]) -> None:
        """Queue failed, cancelled and interrupted rows again, each with its own model."""
        rows = [r for r in rows if r.status in RETRYABLE]
        if not rows:
            self.message.emit("Select failed, cancelled or interrupted files to retry them.")
            return
        self._queue(rows)
        self.message.emit(f"Retrying {plural(len(rows), 'file')}.")

    def reanalyse(self, rows: list[Row], model: str | None = None) -> None:
        """Analyse the selected files again with ``model`` (default: the picker's)."""
        rows = [r for r in rows if r.status not in PENDING]
        if not rows:
            self.message.emit("Select finished files to analyse them again.")
            return
        self.enqueue(list(dict.fromkeys(r.path for r in rows)), model)

    # --- removing -----------------------------------------------------------------------------
    def remove(self, rows: list[Row]) -> None:
        """Take rows out of the queue and the session (queued/running ones are cancelled); Undo
        puts them back."""
        if not rows:
            self.message.emit("Select rows to remove them.")
            return
        keys = [r.key for r in rows]
        pending = [r.key for r in rows if r.status in PENDING]
        if pending:
            self.worker.cancel(pending)
        taken = self.results.remove(keys)
        hidden = self.store.remove(keys)
        store = self.store

        def undo():
            for _, r in taken:
                if r.status in PENDING:
                    r.status, r.fraction = CANCELLED, 0.0
            self.results.insert(taken)
            store.restore(hidden)
            self.save_queue()

        self._push(f"Remove {plural(len(taken), 'row')}", undo)
        self.save_queue()
        self.update_bar()
        self.message.emit(f"Removed {plural(len(taken), 'row')}. Edit ▸ Undo brings them back.")

    def clear(self, confirm: bool = True) -> bool:
        """Empty the table into a new session (after asking); Undo returns to the old one."""
        if not self.results.rows:
            self.message.emit("Nothing to clear.")
            return False
        if confirm and not self.ask(
            "Clear results?",
            f"Clear all {plural(len(self.results.rows), 'row')} and start a new session? "
            "Queued files are cancelled. You can undo this (Edit ▸ Undo) until you quit.",
        ):
            return False
        if self.worker.busy:
            self.worker.cancel_all()
        for r in self.results.rows:
            if r.status in PENDING:
                r.status, r.fraction = CANCELLED, 0.0
        self.save_queue()  # the old session keeps its rows (cancelled, not "interrupted")
        old_session, old_store = self.settings.session, self.store
        taken = self.results.clear()
        self._set_store(session_store.new_session_id(), None)

        def undo():
            self.results.clear()
            self._set_store(old_session, old_store)
            self.results.insert(taken)

        self._push("Clear results", undo)
        self.update_bar()
        self.message.emit("Started a new session. Edit ▸ Undo brings the results back.")
        return True

    def _set_store(self, session: str, store) -> None:
        self.settings.session = session
        self.store = store or session_store.SessionStore(self._session_dir(session))
        self.worker.store = self.store

    # --- undo ---------------------------------------------------------------------------------
    def _push(self, label: str, fn: Callable[[], None]) -> None:
        self._undo.append((label, fn))
        self.undo_changed.emit(label)

    @property
    def undo_label(self) -> str:
        return self._undo[-1][0] if self._undo else ""

    def undo(self) -> None:
        if not self._undo:
            self.message.emit("Nothing to undo.")
            return
        label, fn = self._undo.pop()
        fn()
        self.undo_changed.emit(self.undo_label)
        self.update_bar()
        self.message.emit(f"Undone: {label.lower()}.")

    # --- persistence --------------------------------------------------------------------------
    def save_queue(self) -> None:
        """Write the rows without a result (atomically) so a crash or kill can bring them back."""
        pending = [
            session_store.Pending(r.key, r.path, r.model, r.status)
            for r in self.results.rows
            if r.status in (*PENDING, INTERRUPTED, CANCELLED)
        ]
        self._saves += 1
        store, seq = self.store, self._saves
        # off the GUI thread: the write syncs to disk, which can take a while on a busy machine
        run_job(
            lambda: store.save_queue(pending, seq),
            None,
            lambda msg: self.message.emit(f"Could not save the queue: {msg}"),
            owner=self,
        )

    def restore(self, saved: list[session_store.Saved]) -> int:
        """Rows read back from the session (``SessionStore.load_rows``)."""
        for s in saved:
            if self.results.get(s.key) is not None:
                continue
            if s.item is None:
                status = CANCELLED if s.status == CANCELLED else INTERRUPTED
                self.results.add(s.path, status, s.model, s.key)
            elif isinstance(s.item, FileError):
                self.results.set_error(s.item, s.key, s.model)
            else:
                row = self.results.set_analysis(s.item, s.key)
                if s.model:
                    self.results.update(row.key, model=s.model)
        return len(saved)

    # --- worker signals -----------------------------------------------------------------------
    def _started(self, key: str) -> None:
        self.results.update(key, status=RUNNING, fraction=0.0)
        self.save_queue()
        self.update_bar()
        self.row_changed.emit(key)

    def _progress(self, key: str, fraction: float, text: str) -> None:
        row = self.results.get(key)
        if row is None:
            return
        self.results.update(key, status=RUNNING, fraction=max(0.0, min(1.0, fraction)))
        self.update_bar()
        name = Path(row.path).name
        text = text.removeprefix(f"{name}: ")  # the engine names the file too
        self.message.emit(f"Analysing {name}: {text} ({fraction:.0%})")
        self.row_changed.emit(key)

    def _decoded(self, key: str, duration: float) -> None:
        self.results.update(key, duration_s=duration)  # the time axis and Duration, before the result
        self.row_changed.emit(key)

    def _partial(self, key: str, analysis) -> None:
        """The analysis so far: the row's loudness columns and transcript fill in before the result."""
        row = self.results.get(key)
        if row is not None and row.status == RUNNING:
            self.results.update(key, preview=analysis)

    def _finished(self, key: str, analysis) -> None:
        if self.results.get(key) is None:  # removed meanwhile
            self.worker.result_shown()
            return
        model = self.results.get(key).model
        if getattr(analysis, "calibration", None) is None:
            analysis.calibration = self.settings.calibration  # dB SPL in the summary and exports
        self.results.set_analysis(analysis, key)
        if model:
            self.results.update(key, model=model)
        self.save_queue()
        self.update_bar()
        self.finished.emit(key)

    def _failed(self, key: str, error) -> None:
        if self.results.get(key) is not None:
            self.results.set_error(error, key)
        self.save_queue()
        self.update_bar()
        self.row_changed.emit(key)

    def _cancelled(self, key: str) -> None:
        self.results.update(key, status=CANCELLED, fraction=0.0, preview=None)
        self.save_queue()
        self.update_bar()
        self.row_changed.emit(key)

    def _queue_done(self) -> None:
        n = {s: self.results.count(s) for s in (DONE, FAILED, CANCELLED)}
        damaged = sum(bool(r.audio_note) for r in self.results.rows)
        done = f"{n[DONE]} done" + (f" ({damaged} damaged or truncated ⚠)" if damaged else "")
        parts = (
            [done]
            + ([f"{n[FAILED]} failed"] if n[FAILED] else [])
            + ([f"{n[CANCELLED]} cancelled"] if n[CANCELLED] else [])
        )
        self.message.emit("Queue finished: " + ", ".join(parts) + ".")
        self._batch = 0
        self.update_bar()

    # --- the status bar's queue progress ------------------------------------------------------
    def progress(self) -> tuple[float, int] | None:
        """(files done, counting the running file's fraction; files in this run) or None if idle."""
        pending = [r for r in self.results.rows if r.status in PENDING]
        if not pending:
            return None
        total = max(self._batch, len(pending))
        running = sum(r.fraction for r in pending if r.status == RUNNING)
        return total - len(pending) + running, total

    def update_bar(self) -> None:
        bar = self.window.queue_bar
        p = self.progress()
        if p is None:
            bar.setVisible(False)
            return
        done, total = p
        bar.setVisible(True)
        bar.setRange(0, total * 100)
        bar.setValue(int(done * 100))
        text = f"{done:.2f}".rstrip("0").rstrip(".")
        bar.setFormat(f"{text} of {plural(total, 'file')}")

    # --- dialogs ------------------------------------------------------------------------------
    def _ask_dialog(self, title: str, text: str) -> bool:
        answer = QMessageBox.question(
            self.window,
            title,
            text,
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes
