"""Recording from a microphone: a PortAudio input stream, a live level meter, the saved take.

The stream uses a fixed blocksize (PortAudio's "0 = any" delivers far too few samples through
PulseAudio); its callback only copies blocks and updates levels, the GUI polls those on a timer.
Stopping writes the take atomically to ``<data dir>/recordings/`` off the GUI thread.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QLinearGradient, QPainter
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QSizePolicy, QWidget

from speechint_desktop.ui.workers import one_line, run_job

log = logging.getLogger(__name__)

NO_MIC = "No microphone found"
FLOOR_DB = -60.0
CLIP_DB = -0.1  # a block peaking at or above this counts as clipping


@dataclass
class InputDevice:
    index: int
    name: str  # PortAudio's name: what opening the device takes
    channels: int
    default_samplerate: float
    label: str = ""  # what the user sees (device_names.human_name)


# PortAudio is not re-entrant: re-scanning (terminate + initialise) must never overlap opening or
# closing a stream, and scans run on pool threads.
_PA_LOCK = threading.RLock()
_open_streams = 0  # a re-scan would close them, so it waits for none to be open


def _count_stream(delta: int) -> None:
    global _open_streams
    with _PA_LOCK:
        _open_streams += delta


def rescan() -> bool:
    """Make PortAudio list devices again (it scans once, when first initialised).

    Skipped (returns False) while a stream is open: terminating PortAudio would kill it.
    """
    import sounddevice as sd

    with _PA_LOCK:
        if _open_streams:
            return False
        sd._terminate()
        sd._initialize()
        return True


def list_input_devices(refresh: bool = False) -> list[InputDevice]:
    """Input devices PortAudio knows; empty when there is none (or no PortAudio at all)."""
    try:
        import sounddevice as sd
    except OSError:  # libportaudio missing
        return []
    with _PA_LOCK:
        try:
            if refresh:
                rescan()
            devices = sd.query_devices()
        except Exception:  # noqa: BLE001
            return []
    from speechint_desktop.ui.device_names import human_name, server_default_source

    inputs = [(i, d) for i, d in enumerate(devices) if d["max_input_channels"] > 0]
    server = server_default_source() if any(d["name"] == "pulse" for _, d in inputs) else None
    return [
        InputDevice(
            i,
            d["name"],
            int(d["max_input_channels"]),
            float(d["default_samplerate"]),
            human_name(d["name"], server),
        )
        for i, d in inputs
    ]


def _db(x: float) -> float:
    return 20 * math.log10(x) if x > 0 else -math.inf


class Recorder:
    """One take at a time. ``level``/``peak`` are dBFS of the latest block (read by the GUI)."""

    def __init__(self):
        self._stream = None
        self._blocks: list[np.ndarray] = []
        self.sample_rate = 16000
        self.level = -math.inf
        self.peak = -math.inf
        self.clipped = False
        self.frames = 0
        self.first_block = threading.Event()
        self.started_at = 0.0

    @property
    def active(self) -> bool:
        return self._stream is not None

    @property
    def elapsed_s(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0

    def _callback(self, indata, frames, time_info, status) -> None:
        block = indata.copy()
        self._blocks.append(block)
        self.frames += frames
        peak = float(np.max(np.abs(block))) if block.size else 0.0
        self.level = (
            _db(float(np.sqrt(np.mean(np.square(block, dtype=np.float64))))) if block.size else -math.inf
        )
        self.peak = _db(peak)
        if self.peak >= CLIP_DB:
            self.clipped = True
        self.first_block.set()

    def start(self, device=None, sample_rate: int = 16000, blocksize: int = 1600, channels: int = 1) -> None:
        """Open the input; raises ``RuntimeError`` with one user-facing line when it cannot."""
        with _PA_LOCK:
            self._start(device, sample_rate, blocksize, channels)

    def _start(self, device, sample_rate: int, blocksize: int, channels: int) -> None:
        try:
            import sounddevice as sd
        except OSError as exc:
            raise RuntimeError(f"{NO_MIC} (PortAudio is not available: {one_line(exc)})") from exc
        self._blocks = []
        self.frames = 0
        self.clipped = False
        self.level = self.peak = -math.inf
        self.first_block.clear()
        last_error = None
        rates = [sample_rate]
        try:
            try:
                info = sd.query_devices(device, "input")
            except ValueError:  # not known yet: the device may have appeared since PortAudio started
                rescan()
                info = sd.query_devices(device, "input")
            rates.append(int(info["default_samplerate"]))
        except Exception as exc:  # noqa: BLE001
            raise RuntimeError(f"{NO_MIC}: {one_line(exc)}") from exc
        for rate in dict.fromkeys(rates):
            try:
                stream = sd.InputStream(
                    device=device,
                    channels=channels,
                    samplerate=rate,
                    blocksize=blocksize,
                    dtype="float32",
                    callback=self._callback,
                )
                stream.start()
            except Exception as exc:  # noqa: BLE001 — PortAudioError and friends
                last_error = exc
                continue
            _count_stream(+1)
            self._stream = stream
            self.sample_rate = rate
            self.started_at = time.monotonic()
            return
        raise RuntimeError(f"Could not open the microphone: {one_line(last_error)}")

    def stop(self) -> np.ndarray:
        """Close the input and return the take as float32 (n, channels)."""
        stream, self._stream = self._stream, None
        if stream is not None:
            with _PA_LOCK:
                _count_stream(-1)
                try:
                    stream.stop()
                    stream.close()
                except Exception:  # noqa: BLE001
                    log.warning("closing the input stream failed", exc_info=True)
        blocks, self._blocks = self._blocks, []
        if not blocks:
            return np.zeros((0, 1), dtype=np.float32)
        return np.concatenate(blocks, axis=0)


class LevelMeter(QWidget):
    """A horizontal dBFS bar (−60…0) with a peak-hold tick that falls back after 1.5 s."""

    HOLD_S = 1.5

    def __init__(self, parent=None):
        super().__init__(parent)
        self.level = -math.inf
        self.hold = -math.inf
        self._hold_time = 0.0
        self.setMinimumSize(180, 18)
        self.setMaximumWidth(480)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setToolTip("Input level, dBFS (peak hold marker)")

    def set_level(self, level_db: float, peak_db: float) -> None:
        now = time.monotonic()
        self.level = level_db
        if peak_db >= self.hold or now - self._hold_time > self.HOLD_S:
            self.hold = peak_db
            self._hold_time = now
        self.update()

    def reset(self) -> None:
        self.level = self.hold = -math.inf
        self.update()

    @staticmethod
    def _x(db: float, width: float) -> float:
        if not math.isfinite(db):
            return 0.0
        return max(0.0, min(1.0, (db - FLOOR_DB) / -FLOOR_DB)) * width

    def paintEvent(self, event) -> None:  # noqa: N802
        p = QPainter(self)
        rect = QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5)
        p.setPen(QColor("#b8bec6"))
        p.setBrush(QColor("#22262b"))
        p.drawRoundedRect(rect, 3, 3)
        inner = rect.adjusted(2, 2, -2, -2)
        grad = QLinearGradient(inner.topLeft(), inner.topRight())
        grad.setColorAt(0.0, QColor("#3cb371"))
        grad.setColorAt(0.70, QColor("#9acd32"))
        grad.setColorAt(0.85, QColor("#f0c419"))
        grad.setColorAt(1.0, QColor("#e0473f"))
        w = self._x(self.level, inner.width())
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(grad)
        p.drawRect(QRectF(inner.left(), inner.top(), w, inner.height()))
        if math.isfinite(self.hold):
            x = inner.left() + self._x(self.hold, inner.width())
            p.setBrush(QColor("#ffffff"))
            p.drawRect(QRectF(x - 1.5, inner.top(), 3, inner.height()))
        p.setPen(QColor("#6c737b"))
        for db in (-48, -36, -24, -12, -6):
            x = inner.left() + self._x(db, inner.width())
            p.drawLine(int(x), int(inner.bottom() - 3), int(x), int(inner.bottom()))
        p.end()


class RecorderPanel(QWidget):
    """Input picker, level meter, elapsed time and clip warning; saves each take."""

    take_saved = Signal(str)
    message = Signal(str)  # one line for the status bar
    state_changed = Signal(bool)  # recording?

    def __init__(self, recordings_dir: Path, device_name: str = "", parent=None):
        super().__init__(parent)
        self.recordings_dir = Path(recordings_dir)
        self.recorder = Recorder()
        self.devices: list[InputDevice] = []
        self._wanted = device_name
        self.blocksize = 1600
        self.sample_rate = 16000

        self.device_box = QComboBox()
        self.device_box.setMinimumWidth(200)
        self.device_box.setToolTip("Microphone")
        self.device_box.addItem("Looking for microphones…")
        self.device_box.setEnabled(False)
        self.meter = LevelMeter()
        self.level_label = QLabel("— dBFS")
        self.level_label.setMinimumWidth(70)
        self.elapsed_label = QLabel("0:00.0")
        self.elapsed_label.setMinimumWidth(50)
        self.clip_label = QLabel("CLIP")
        self.clip_label.setStyleSheet(
            "QLabel { background: #e0473f; color: white; font-weight: bold; padding: 1px 6px; border-radius: 3px; }"
        )
        self.clip_label.setToolTip("The input reached 0 dBFS: lower the input gain")
        self.clip_label.setVisible(False)
        self.state_label = QLabel()

        row = QHBoxLayout(self)
        row.setContentsMargins(6, 2, 6, 2)
        row.addWidget(QLabel("Microphone:"))
        row.addWidget(self.device_box)
        row.addWidget(self.meter, 1)
        row.addWidget(self.level_label)
        row.addWidget(self.clip_label)
        row.addWidget(self.state_label)
        row.addWidget(self.elapsed_label)
        row.addStretch(1)

        self.timer = QTimer(self)
        self.timer.setInterval(40)
        self.timer.timeout.connect(self._tick)
        self.refresh_devices()

    # --- devices ----------------------------------------------------------------------------------
    def _job(self, fn, on_done=None, on_failed=None):
        """A background job whose callbacks are dropped if this widget is gone by then."""
        return run_job(fn, on_done, on_failed, owner=self)

    def refresh_devices(self) -> None:
        if self.recording:
            return
        self._job(
            lambda: list_input_devices(refresh=True), self._set_devices, lambda msg: self._set_devices([])
        )

    def _set_devices(self, devices: list[InputDevice]) -> None:
        self.devices = devices
        self.device_box.clear()
        if not devices:
            self.device_box.addItem(NO_MIC)
            self.device_box.setEnabled(False)
            return
        for d in devices:
            self.device_box.addItem(d.label or d.name, d.name)
            self.device_box.setItemData(self.device_box.count() - 1, d.name, Qt.ItemDataRole.ToolTipRole)
        self.device_box.setEnabled(True)
        if self._wanted:
            i = self.device_box.findData(self._wanted)
            if i >= 0:
                self.device_box.setCurrentIndex(i)

    def select_device(self, name: str) -> None:
        self._wanted = name
        i = self.device_box.findData(name)
        if i >= 0:
            self.device_box.setCurrentIndex(i)

    def current_device(self) -> str | None:
        return self.device_box.currentData() if self.devices else None

    # --- recording ---------------------------------------------------------------------------------
    @property
    def recording(self) -> bool:
        return self.recorder.active

    def start(self, device: str | None = None) -> bool:
        device = device or self.current_device()
        if device is None:
            self.message.emit(f"{NO_MIC}: connect one to record. Everything else keeps working.")
            return False
        try:
            self.recorder.start(device, self.sample_rate, self.blocksize)
        except RuntimeError as exc:
            self.message.emit(str(exc))
            return False
        self.meter.reset()
        self.clip_label.setVisible(False)
        self.state_label.setText("● REC")
        self.state_label.setStyleSheet("color: #e0473f; font-weight: bold;")
        self.timer.start()
        self.device_box.setEnabled(False)
        self.message.emit(f"Recording from {device}…")
        self.state_changed.emit(True)
        return True

    def stop(self) -> None:
        if not self.recorder.active:
            return
        samples = self.recorder.stop()
        rate = self.recorder.sample_rate
        self.timer.stop()
        self._tick()
        self.state_label.setText("")
        self.device_box.setEnabled(bool(self.devices))
        self.state_changed.emit(False)
        if len(samples) == 0:
            self.message.emit("The recording is empty: nothing was saved.")
            return
        path = self.recordings_dir / time.strftime("take-%Y%m%d-%H%M%S.wav")
        n = 1
        while path.exists():
            n += 1
            path = path.with_name(time.strftime(f"take-%Y%m%d-%H%M%S-{n}.wav"))

        def save():
            from speechint_desktop.core.audio import save_wav

            self.recordings_dir.mkdir(parents=True, exist_ok=True)
            save_wav(path, samples, rate)
            return str(path)

        self.message.emit(f"Saving recording ({len(samples) / rate:.1f} s)…")
        self._job(save, self._saved, lambda msg: self.message.emit(f"Could not save the recording: {msg}"))

    def _saved(self, path: str) -> None:
        self.message.emit(f"Recording saved: {path}")
        self.take_saved.emit(path)

    def _tick(self) -> None:
        r = self.recorder
        self.meter.set_level(r.level, r.peak)
        self.level_label.setText(f"{r.level:.1f} dBFS" if math.isfinite(r.level) else "— dBFS")
        self.clip_label.setVisible(r.clipped)
        m, s = divmod(r.elapsed_s, 60)
        self.elapsed_label.setText(f"{int(m)}:{s:04.1f}")
