"""The analysis queue's worker: a QThread that loads the engine once and analyses queued files.

The GUI thread never decodes audio, loads a model or runs inference: the ``AnalysisWorker``
imports the engine (and with it torch) in its own thread, keeps one loaded model, and reports
through signals that carry the core's dataclasses. Short clips queued together are decoded
together (``Engine.decode_group``: their speech shares windows and batches, as the CLI's
``analyze_many`` does); a longer file is analysed alone, its transcript filling in batch by batch.
"""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
import traceback
from dataclasses import dataclass

from PySide6.QtCore import QObject, QThread, Signal

from speechint_desktop.ui.workers import one_line

log = logging.getLogger(__name__)

# Files up to one decoding window long join the short clips queued after them (same model and
# options) and are decoded together; a longer file fills batches by itself, so it is analysed
# alone with its previews (the loudness once read, the transcript after each batch).
GROUP_MAX_S = 30.0


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


class _Rows:
    """``is_set()`` for the core's cancel checks: the worker's cancel, or all these rows dropped."""

    def __init__(self, worker: AnalysisWorker, keys):
        self.worker, self.keys = worker, list(keys)

    def is_set(self) -> bool:
        return self.worker._cancel.is_set() or all(k in self.worker._dropped for k in self.keys)


class AnalysisWorker(QThread):
    """Loads the engine once, then analyses queued files in order.

    Each ``QueueItem`` names its model: a different one is loaded before that file (so a file
    re-analysed with another model gets that model even if the picker changed since). Short
    clips queued one after another are decoded together (``GROUP_MAX_S``); each still gets its
    own signals, which carry the item's ``key``. ``cancel_current`` stops the files in progress;
    ``cancel_all`` also empties the queue; ``cancel(keys)`` drops some (a running group stops
    once all of its rows are dropped; the others' results are kept). A file that fails becomes a
    ``FileError`` and the queue carries on.
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
        self._dropped: set[str] = set()  # keys cancelled while queued or running
        self._model_error: str | None = None
        self._cancel = threading.Event()
        self._shown = threading.Event()
        self._running: list[QueueItem] = []  # started, not yet reported
        self._carry: QueueItem | None = None  # taken from the queue but not for this group: next
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
        """Use ``options`` from the next file on (the files in progress keep their own)."""
        with self._lock:
            self._options = options

    def result_shown(self) -> None:
        """The GUI has displayed the last result: the worker may start the next file."""
        self._shown.set()

    def cancel_current(self) -> None:
        self._cancel.set()

    def cancel(self, keys) -> None:
        """Drop these rows: running ones stop (a group once all its rows are dropped), queued ones
        are skipped; each reports cancelled."""
        with self._lock:
            self._dropped |= set(keys)

    def cancel_all(self) -> None:
        dropped = []
        with self._lock:
            if self._carry is not None:
                dropped.append(self._carry)
                self._carry = None
        while True:
            try:
                item = self._jobs.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                dropped.append(item)
        for item in dropped:
            self.cancelled_file.emit(item.key)
        if self._running:
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
        return bool(self._running) or self._carry is not None or not self._jobs.empty()

    # --- the worker thread ----------------------------------------------------------------
    def run(self) -> None:
        self._import_delivery()
        while not self._stopping:
            self._maybe_load_model()
            item = self._take()
            if item is None or self._stopping:
                continue
            if self._was_dropped(item.key):
                self.cancelled_file.emit(item.key)
            else:
                if item.model and item.model != self._engine_model:
                    with self._lock:
                        self._pending_model = (item.model, self._device)
                    self._maybe_load_model()
                self._analyse(item)
            if self._jobs.empty() and self._carry is None and not self._stopping:
                self.queue_done.emit()

    def _take(self, wait: float = 0.2) -> QueueItem | None:
        """The next item: the one a group left over, else the queue's (``None`` after ``wait``)."""
        with self._lock:
            item, self._carry = self._carry, None
        if item is not None:
            return item
        try:
            return self._jobs.get(timeout=wait) if wait else self._jobs.get_nowait()
        except queue.Empty:
            return None

    def _was_dropped(self, key: str) -> bool:
        """Whether the row was cancelled; forgets it, so the row can be queued again."""
        with self._lock:
            dropped = key in self._dropped
            self._dropped.discard(key)
        return dropped

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
                # every core, as the CLI: one left to the window took the long set from 21.6 to
                # 34.6 s on two cores, while the window's worst stall stayed ~100-130 ms either way
                threads=None,
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

    # --- analysing ------------------------------------------------------------------------
    def _analyse(self, first: QueueItem) -> None:
        """Analyse ``first``: alone if it is long, else with the short clips queued after it."""
        self._cancel.clear()
        options = self.options  # read once: a change applies from the next file
        try:
            if self._engine is None:
                raise RuntimeError(self._model_error or "no model loaded")
            engine, info = self._engine, self._open(first)
        except Exception as exc:  # noqa: BLE001 — AudioError and the rest: one line, queue goes on
            self._start(first)
            self._fail(first, exc)
            return
        if not (engine.groups(options) and info.duration_s <= GROUP_MAX_S):
            self._alone(first, info, engine, options)
            return
        group, item = [], first
        while item is not None:
            p = self._prepare(item, info, engine, options)
            if p is not None:
                group.append((item, p))
            if engine.group_full([p for _, p in group]) or self._cancel.is_set():
                break
            item, info = self._next_short(engine, options)
        self._decode_group(group, engine)

    def _open(self, item: QueueItem):
        """The file's ``AudioInfo``: opened, not decoded (one-line errors, the length at once)."""
        from speechint_desktop.core import audio

        with audio.stream(item.path) as s:
            return s.info

    def _next_short(self, engine, options):
        """(the next queued item, its info) if it may join the group: a clip up to
        ``GROUP_MAX_S`` for the loaded model and the group's options. Otherwise it is kept for
        later and (None, None)."""
        while not self._stopping and not self._cancel.is_set():
            with self._lock:
                # the user picked another model or changed the options: the group ends here
                if self._pending_model is not None or self._options != options:
                    return None, None
            item = self._take(wait=0)
            if item is None:
                return None, None
            if self._was_dropped(item.key):
                self.cancelled_file.emit(item.key)
                continue
            if not (item.model and item.model != self._engine_model):
                try:
                    info = self._open(item)
                except Exception as exc:  # noqa: BLE001 — reported now; the group goes on
                    self._start(item)
                    self._fail(item, exc)
                    continue
                if info.duration_s <= GROUP_MAX_S:
                    return item, info
            with self._lock:
                self._carry = item
            return None, None
        return None, None

    def _start(self, item: QueueItem) -> None:
        self._running.append(item)
        self.started_file.emit(item.key)

    def _begin(self, item: QueueItem, info):
        """A row starts: its time axis at once, and the ``EnvelopeBuilder`` its waveform is built
        in as the file is read (once, block by block, for the analysis and the waveform together:
        never held whole, as hours of 48 kHz stereo would take gigabytes)."""
        from speechint_desktop.ui.envelope import EnvelopeBuilder

        self._start(item)
        self.progress.emit(item.key, 0.0, "decoding")
        self.decoded.emit(item.key, float(info.duration_s))
        return EnvelopeBuilder(info.sample_rate, info.frames)

    def _prepare(self, item: QueueItem, info, engine, options):
        """Read one short clip of a group (``Engine.prepare``) and show its loudness and waveform;
        ``None`` if it failed or was cancelled (said so)."""
        from speechint_desktop.core.engine import Cancelled
        from speechint_desktop.core.recording import preview

        key = item.key
        waveform = self._begin(item, info)
        try:
            p = engine.prepare(
                item.path,
                progress=lambda f, m: self.progress.emit(key, float(f), str(m)),
                cancel=_Rows(self, [key]),
                options=options,
                tap=waveform.feed,
            )
        except Cancelled:
            self._cancelled(item)
            return None
        except Exception as exc:  # noqa: BLE001
            self._fail(item, exc)
            return None
        self._emit_waveform(item.path, waveform.finish)
        self._partial(key, item.path, preview(p, engine.model_name))
        return p

    def _decode_group(self, group: list, engine) -> None:
        """Decode the group's clips together; each row gets the group's progress, then its result."""
        from speechint_desktop.core.engine import VAD_SHARE, Cancelled
        from speechint_desktop.core.results import FileError

        live = []
        for item, p in group:
            if item.key in self._dropped:
                self._cancelled(item)
            else:
                live.append((item, p))
        if not live:
            return

        others = len(live) - 1
        said = (
            f"transcribing with {others} other clip{'s' if others != 1 else ''}" if others else "transcribing"
        )

        def progress(f: float, message: str) -> None:
            for item, _ in live:
                self.progress.emit(item.key, VAD_SHARE + (1 - VAD_SHARE) * float(f), said)

        try:
            cancel = _Rows(self, [item.key for item, _ in live])
            results = list(engine.decode_group([p for _, p in live], progress, cancel))
        except Cancelled:
            for item, _ in live:
                self._cancelled(item)
            return
        except Exception as exc:  # noqa: BLE001 — decode_group isolates files; this is a bug
            for item, _ in live:
                self._fail(item, exc)
            return
        self._shown.clear()
        for (item, _), result in zip(live, results, strict=True):
            if item.key in self._dropped:
                self._cancelled(item)
            elif isinstance(result, FileError):
                self._failed(item, result)
            else:
                self._deliver(item, result)
        self._shown.wait(0.5)  # as in ``_alone``

    def _alone(self, item: QueueItem, info, engine, options) -> None:
        """Analyse one file (``Engine.analyze``), its view filling in as it goes."""
        from speechint_desktop.core.engine import Cancelled

        path, key = item.path, item.key
        try:
            waveform = self._begin(item, info)
            shown = []

            def partial(a) -> None:
                if not shown:  # the first preview comes once the file is read
                    shown.append(True)
                    self._emit_waveform(path, waveform.finish)
                self._partial(key, path, a)

            analysis = engine.analyze(
                path,
                progress=lambda f, m: self.progress.emit(key, float(f), str(m)),
                cancel=_Rows(self, [key]),
                options=options,
                partial=partial,
                tap=waveform.feed,
            )
        except Cancelled:
            self._cancelled(item)
            return
        except Exception as exc:  # noqa: BLE001 — AudioError and the rest: one line, queue goes on
            self._fail(item, exc)
            return
        self._shown.clear()
        self._deliver(item, analysis)
        # Let the GUI draw the result before the next file competes with it for the GIL and
        # the cores; it calls result_shown() once it has (never more than 0.5 s).
        self._shown.wait(0.5)

    # --- reporting a row ------------------------------------------------------------------
    def _done(self, item: QueueItem) -> None:
        if item in self._running:
            self._running.remove(item)
        self._was_dropped(item.key)

    def _deliver(self, item: QueueItem, analysis) -> None:
        analysis.source = item.path
        if self.store is not None:
            try:
                self.store.save(analysis, item.key, item.model or None)
            except Exception:  # noqa: BLE001 — the result is still shown; the log says why
                log.error("could not save session entry:\n%s", traceback.format_exc())
        self._done(item)
        self.finished_file.emit(item.key, analysis)

    def _cancelled(self, item: QueueItem) -> None:
        self._done(item)
        self.cancelled_file.emit(item.key)

    def _fail(self, item: QueueItem, exc: BaseException) -> None:
        from speechint_desktop.core.audio import AudioError
        from speechint_desktop.core.results import FileError

        if not isinstance(exc, AudioError):
            log.error("analysis of %s failed:\n%s", item.path, "".join(traceback.format_exception(exc)))
        self._failed(item, FileError(item.path, one_line(exc, item.path)))

    def _failed(self, item: QueueItem, error) -> None:
        if self.store is not None:
            try:
                self.store.save_error(error, item.key, item.model or self._engine_model or "")
            except Exception:  # noqa: BLE001
                log.error("could not save session entry:\n%s", traceback.format_exc())
        self._done(item)
        self.failed_file.emit(item.key, error)

    def _partial(self, key: str, path: str, analysis) -> None:
        analysis.source = path
        self.partial_file.emit(key, analysis)

    def _emit_waveform(self, path: str, build) -> None:
        try:
            self.waveform_ready.emit(path, build())
        except Exception:  # noqa: BLE001 — no waveform is not worth failing the file
            log.warning("waveform for %s failed:\n%s", path, traceback.format_exc())
