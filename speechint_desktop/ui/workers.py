"""Background work: small one-off jobs on the thread pool (``run_job``) and the one-line error
text every worker shows. The analysis queue's QThread is ``analysis_worker``.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import shiboken6
from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

log = logging.getLogger(__name__)


def one_line(exc: BaseException, source: str | None = None) -> str:
    """A single user-facing line for an unexpected exception (the traceback goes to the log)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if source and Path(source).name not in text:
        text = f"{Path(source).name}: {text}"
    return text


class _JobSignals(QObject):
    done = Signal(object)
    failed = Signal(str)


class Job(QRunnable):
    """Run ``fn`` on the global thread pool; ``done(result)`` or ``failed(one line)`` on the GUI."""

    def __init__(self, fn: Callable[[], object]):
        super().__init__()
        self.fn = fn
        self.signals = _JobSignals()

    def run(self) -> None:
        try:
            result = self.fn()
        except Exception as exc:  # noqa: BLE001
            log.error("background job failed:\n%s", traceback.format_exc())
            self.signals.failed.emit(one_line(exc))
            return
        self.signals.done.emit(result)


_alive: set[Job] = set()


def run_job(fn: Callable[[], object], on_done=None, on_failed=None, owner: QObject | None = None) -> Job:
    """Start ``fn`` off the GUI thread and keep the job alive until it reports.

    With an ``owner`` widget, the callbacks are skipped if it was deleted in the meantime (a
    window closed while its job was still running).
    """
    job = Job(fn)
    job.setAutoDelete(False)
    _alive.add(job)

    def alive() -> bool:
        return owner is None or shiboken6.isValid(owner)

    def finish_ok(result):
        _alive.discard(job)
        if on_done is not None and alive():
            on_done(result)

    def finish_err(msg):
        _alive.discard(job)
        if on_failed is not None and alive():
            on_failed(msg)

    job.signals.done.connect(finish_ok)
    job.signals.failed.connect(finish_err)
    QThreadPool.globalInstance().start(job)
    return job


def load_envelope(path: str):
    """Decode a file block by block into its waveform envelope (for results reloaded from a
    session)."""
    from speechint_desktop.ui.envelope import stream_envelope

    t = time.perf_counter()
    env = stream_envelope(path)
    log.debug("envelope of %s in %.2f s", path, time.perf_counter() - t)
    return env
