"""Background work: the analysis queue on a QThread, and small one-off jobs on the thread pool.

The GUI thread never decodes audio, loads a model or runs inference: the ``AnalysisWorker``
imports the engine (and with it torch) in its own thread, keeps one loaded model, and reports
through signals that carry the core's dataclasses.
"""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import shiboken6
from PySide6.QtCore import QObject, QRunnable, QThread, QThreadPool, Signal

log = logging.getLogger(__name__)


def one_line(exc: BaseException, source: str | None = None) -> str:
    """A single user-facing line for an unexpected exception (the traceback goes to the log)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if source and Path(source).name not in text:
        text = f"{Path(source).name}: {text}"
    return text


def inference_threads() -> int:
    """CPU threads for inference: all cores but one, so the GUI thread always has a core.

    ``$SPEECHINT_THREADS`` overrides (the engine reads it too).
    """
    from speechint_desktop.core.paths import THREADS_ENV

    env = os.environ.get(THREADS_ENV, "")
    if env.strip().isdigit() and int(env) > 0:
        return int(env)
    return max(1, (os.cpu_count() or 2) - 1)


@dataclass
class DeviceChoice:
    """A compute device the user can pick: ``key`` goes to the engine, ``label`` to the menu."""

    key: str
    label: str


def _device_choices(devices) -> list[DeviceChoice]:
    """Turn core.device.list_devices() entries (dataclasses, tuples or strings) into choices."""
    out = []
    for d in devices:
        if isinstance(d, str):
            out.append(DeviceChoice(d, d))
            continue
        if isinstance(d, tuple):
            out.append(DeviceChoice(str(d[0]), str(d[1] if len(d) > 1 else d[0])))
            continue
        key = str(getattr(d, "name", None) or getattr(d, "key", None) or d)
        label = getattr(d, "label", None)
        if not label:
            name = getattr(d, "name", key)
            mem = getattr(d, "memory_gb", None) or getattr(d, "total_memory_gb", None)
            if mem is None and getattr(d, "memory_bytes", None):
                mem = d.memory_bytes / 2**30
            label = f"{name} ({mem:.1f} GB)" if mem else str(name)
        out.append(DeviceChoice(key, str(label)))
    return out


@dataclass(frozen=True)
class QueueItem:
    """One queued analysis: the results row it fills (``key``), the file, the model to use."""

    key: str
    path: str
    model: str = ""  # "": whatever model is loaded


class AnalysisWorker(QThread):
    """Loads the engine once, then analyses queued files one at a time.

    Each ``QueueItem`` names its model: a different one is loaded before that file (so a file
    re-analysed with another model gets that model even if the picker changed since). Signals
    carry the item's ``key``. ``cancel_current`` stops the file in progress; ``cancel_all`` also
    empties the queue; ``cancel(keys)`` drops some. A file that fails becomes a ``FileError`` and
    the queue carries on.
    """

    model_loading = Signal(str)  # model name
    model_progress = Signal(float, str)  # first-use install/convert progress
    model_ready = Signal(str, str)  # model name, device in use
    model_failed = Signal(str)  # one-line reason
    devices_found = Signal(object)  # list[DeviceChoice]
    started_file = Signal(str)  # key
    progress = Signal(str, float, str)  # key, fraction, message
    finished_file = Signal(str, object)  # key, Analysis
    failed_file = Signal(str, object)  # key, FileError
    cancelled_file = Signal(str)  # key
    decoded = Signal(str, float)  # key, duration (s): the file decoded, analysis starting
    partial_file = Signal(str, object)  # key, Analysis so far (core.recording.preview)
    waveform_ready = Signal(str, object)  # path, Envelope
    queue_done = Signal()
    delivery_ready = Signal()  # core.delivery imported: compliance checks may run

    def __init__(
        self, model: str, device: str = "auto", store=None, options=None, parent: QObject | None = None
    ):
        super().__init__(parent)
        # Every Python paint call in the GUI thread re-takes the GIL from this busy thread; a
        # shorter switch interval keeps those hand-offs (and so repaints) short.
        sys.setswitchinterval(min(sys.getswitchinterval(), 0.001))
        self._jobs: queue.Queue[QueueItem | None] = queue.Queue()
        self._lock = threading.Lock()
        self._pending_model: tuple[str, str] | None = (model, device)
        self._engine = None
        self._engine_model: str | None = None
        self._device = device
        self._dropped: set[str] = set()  # keys cancelled while still queued
        self._model_error: str | None = None
        self._cancel = threading.Event()
        self._shown = threading.Event()
        self._current: QueueItem | None = None
        self._stopping = False
        self.store = store
        self._options = options  # core.options.TranscribeOptions; None: the engine's defaults

    # --- called from the GUI thread -------------------------------------------------------
    def enqueue(self, items) -> None:
        """Queue ``QueueItem``s (plain paths: a new key each, the loaded model)."""
        for item in items:
            if not isinstance(item, QueueItem):
                item = QueueItem(os.urandom(6).hex(), str(item))
            with self._lock:
                self._dropped.discard(item.key)
            self._jobs.put(item)

    def set_model(self, model: str, device: str = "auto") -> None:
        with self._lock:
            self._pending_model = (model, device)
            self._device = device
        self._jobs.put(None)  # wake the loop so the model loads now, not with the next file

    @property
    def options(self):
        """The ``TranscribeOptions`` the next file is analysed with."""
        with self._lock:
            return self._options

    def set_options(self, options) -> None:
        """Use ``options`` from the next file on (the file in progress keeps its own)."""
        with self._lock:
            self._options = options

    def result_shown(self) -> None:
        """The GUI has displayed the last result: the worker may start the next file."""
        self._shown.set()

    def cancel_current(self) -> None:
        self._cancel.set()

    def cancel(self, keys) -> None:
        """Drop these rows: the running one stops, queued ones are skipped (each reports cancelled)."""
        keys = set(keys)
        current = self._current
        with self._lock:
            self._dropped |= keys
        if current is not None and current.key in keys:
            self._cancel.set()

    def cancel_all(self) -> None:
        dropped = []
        while True:
            try:
                item = self._jobs.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                dropped.append(item)
        for item in dropped:
            self.cancelled_file.emit(item.key)
        if self._current is not None:
            self._cancel.set()
        elif dropped:
            self.queue_done.emit()

    def stop(self, wait_ms: int = 60000) -> None:
        self._stopping = True
        self._cancel.set()
        self._shown.set()
        self._jobs.put(None)
        self.wait(wait_ms)

    @property
    def busy(self) -> bool:
        return self._current is not None or not self._jobs.empty()

    # --- the worker thread ----------------------------------------------------------------
    def run(self) -> None:
        self._import_delivery()
        while not self._stopping:
            self._maybe_load_model()
            try:
                item = self._jobs.get(timeout=0.2)
            except queue.Empty:
                continue
            if item is None or self._stopping:
                continue
            with self._lock:
                dropped = item.key in self._dropped
                self._dropped.discard(item.key)
            if dropped:
                self.cancelled_file.emit(item.key)
            else:
                if item.model and item.model != self._engine_model:
                    with self._lock:
                        self._pending_model = (item.model, self._device)
                    self._maybe_load_model()
                self._analyse(item)
            if self._jobs.empty() and not self._stopping:
                self.queue_done.emit()

    def _import_delivery(self) -> None:
        """Import ``core.delivery`` here, not on the GUI thread (it brings the meters, ~0.2 s, which
        the engine needs anyway). The compliance panel and the Spec column wait for this."""
        try:
            import speechint_desktop.core.delivery  # noqa: F401
        except Exception:  # noqa: BLE001 — the app works without compliance checks
            log.error("delivery checks unavailable:\n%s", traceback.format_exc())
            return
        self.delivery_ready.emit()

    def _maybe_load_model(self) -> None:
        with self._lock:
            pending, self._pending_model = self._pending_model, None
        if pending is None:
            return
        model, device = pending
        self.model_loading.emit(model)
        self._engine, self._engine_model = None, model
        try:
            from speechint_desktop.core.engine import Engine

            engine = Engine(
                model,
                device,
                threads=inference_threads(),
                progress=lambda f, m: self.model_progress.emit(float(f), str(m)),
            )
            self._engine, self._engine_model = engine, model
            self._model_error = None
            self.model_ready.emit(model, str(getattr(engine, "device", device)))
        except Exception as exc:  # noqa: BLE001 — any load failure becomes one line for the user
            log.error("model load failed:\n%s", traceback.format_exc())
            self._model_error = f"could not load model {model}: {one_line(exc)}"
            self.model_failed.emit(self._model_error)
        try:
            from speechint_desktop.core.device import list_devices

            self.devices_found.emit(_device_choices(list_devices()))
        except Exception:  # noqa: BLE001 — the picker then keeps just "Auto" and "CPU"
            log.warning("device listing failed:\n%s", traceback.format_exc())

    def _analyse(self, item: QueueItem) -> None:
        from speechint_desktop.core.results import FileError

        path, key = item.path, item.key
        self._cancel.clear()
        self._current = item
        self.started_file.emit(key)
        try:
            if self._engine is None:
                raise RuntimeError(self._model_error or "no model loaded")
            from speechint_desktop.core import audio
            from speechint_desktop.core.engine import Cancelled
            from speechint_desktop.ui.envelope import EnvelopeBuilder

            try:
                options = self.options  # read once: a change applies from the next file
                self.progress.emit(key, 0.0, "decoding")
                with audio.stream(path) as s:  # opened, not decoded: one-line errors, the length
                    info = s.info
                # the time axis at once; the file is then read once, block by block, for the
                # analysis and the waveform together (never held whole: hours of 48 kHz stereo
                # would take gigabytes)
                self.decoded.emit(key, float(info.duration_s))
                waveform = EnvelopeBuilder(info.sample_rate, info.frames)
                shown = []

                def partial(a) -> None:
                    if not shown:  # the first preview comes once the file is read
                        shown.append(True)
                        self._emit_waveform(path, waveform.finish)
                    self._partial(key, path, a)

                analysis = self._engine.analyze(
                    path,
                    progress=lambda f, m: self.progress.emit(key, float(f), str(m)),
                    cancel=self._cancel,
                    options=options,
                    partial=partial,
                    tap=waveform.feed,
                )
                analysis.source = path
                if self.store is not None:
                    try:
                        self.store.save(analysis, key, item.model or None)
                    except Exception:  # noqa: BLE001 — the result is still shown; the log says why
                        log.error("could not save session entry:\n%s", traceback.format_exc())
                self._shown.clear()
                self.finished_file.emit(key, analysis)
                # Let the GUI draw the result before the next file competes with it for the GIL
                # and the cores; it calls result_shown() once it has (never more than 0.5 s).
                self._shown.wait(0.5)
            except Cancelled:
                self.cancelled_file.emit(key)
        except Exception as exc:  # noqa: BLE001 — AudioError and the rest: one line, queue goes on
            from speechint_desktop.core.audio import AudioError

            if not isinstance(exc, AudioError):
                log.error("analysis of %s failed:\n%s", path, traceback.format_exc())
            error = FileError(path, one_line(exc, path))
            if self.store is not None:
                try:
                    self.store.save_error(error, key, item.model or self._engine_model or "")
                except Exception:  # noqa: BLE001
                    log.error("could not save session entry:\n%s", traceback.format_exc())
            self.failed_file.emit(key, error)
        finally:
            self._current = None

    def _partial(self, key: str, path: str, analysis) -> None:
        analysis.source = path
        self.partial_file.emit(key, analysis)

    def _emit_waveform(self, path: str, build) -> None:
        try:
            self.waveform_ready.emit(path, build())
        except Exception:  # noqa: BLE001 — no waveform is not worth failing the file
            log.warning("waveform for %s failed:\n%s", path, traceback.format_exc())


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
