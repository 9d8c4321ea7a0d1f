"""Playing a span of a file on the default output: decoded off the GUI thread, stopped on demand.

``Player.play(path, span)`` emits ``requested`` at once, decodes the span on the thread pool and
starts ``sounddevice``; with no output device (or no PortAudio) it says so in one plain line
(``message``) and everything else keeps working. ``playing_changed`` follows the state;
``position()`` is the time in the file now playing (the playhead).
"""

from __future__ import annotations

import time

from PySide6.QtCore import QObject, QTimer, Signal

from speechint_desktop.ui.workers import run_job

NO_OUTPUT = "No audio output device: playback is unavailable (connect speakers or headphones)."


def output_problem() -> str | None:
    """None if there is an output device to play to, else a plain sentence saying why not.

    PortAudio's own words for "no default output" are "Error querying device -1"."""
    try:
        import sounddevice as sd
    except Exception:  # noqa: BLE001 — OSError: PortAudio library not found
        return "Playback is unavailable: the PortAudio sound library is not installed."
    try:
        sd.query_devices(kind="output")
    except Exception:  # noqa: BLE001 — PortAudioError / ValueError: no default output
        return NO_OUTPUT
    return None


class Player(QObject):
    requested = Signal(str, float, float)  # path, start, end (end -1: to the end of the file)
    started = Signal(str, float, float)  # the audio is playing
    playing_changed = Signal(bool)
    message = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.playing = False
        self._play_id = 0
        self._t0 = 0.0  # monotonic time the audio started
        self._span = (0.0, -1.0)

    def position(self) -> float | None:
        """Where in the file the audio is now (s), None when not playing."""
        if not self.playing:
            return None
        t = self._span[0] + time.monotonic() - self._t0
        return min(t, self._span[1]) if self._span[1] >= 0 else t

    def toggle(self, path: str, span: tuple[float, float] | None) -> None:
        """Stop if playing, else play ``span`` of ``path`` (None: the whole file)."""
        if self.playing:
            self.stop()
        else:
            self.play(path, span)

    def play(self, path: str, span: tuple[float, float] | None) -> None:
        """Play ``span`` of ``path`` from its start, stopping whatever plays now."""
        self.stop()
        self._play_id += 1
        play_id = self._play_id
        start, end = (float(span[0]), float(span[1])) if span is not None else (0.0, -1.0)
        self.requested.emit(str(path), start, end)

        def load():
            from speechint_desktop.core.audio import read_span

            clip = read_span(path, max(start, 0.0), max(end, 0.0) if span is not None else None)
            return clip.samples, clip.sample_rate

        run_job(
            load,
            lambda data: play_id == self._play_id and self._start(path, start, end, *data),
            lambda msg: self.message.emit(f"Cannot play: {msg}"),
            owner=self,
        )

    def _start(self, path: str, start: float, end: float, samples, rate: int) -> None:
        problem = output_problem()
        if problem:
            self.message.emit(problem)
            return
        try:
            import sounddevice as sd

            sd.play(samples, rate)
        except Exception as exc:  # noqa: BLE001 — PortAudioError: the device went away, is busy…
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            self.message.emit(f"Cannot play on the audio output: {text}")
            return
        self._t0 = time.monotonic()
        self._span = (start, start + len(samples) / rate)
        self.playing = True
        self.playing_changed.emit(True)
        self.started.emit(path, start, end)
        play_id = self._play_id
        QTimer.singleShot(
            int(len(samples) / rate * 1000) + 200, self, lambda: play_id == self._play_id and self.stop()
        )

    def stop(self) -> None:
        if not self.playing:
            return
        self.playing = False
        self.playing_changed.emit(False)
        try:
            import sounddevice as sd

            sd.stop()
        except Exception:  # noqa: BLE001
            pass
