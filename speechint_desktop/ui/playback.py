"""Playing a span of a file on the default output: decoded off the GUI thread, stopped on demand.

``Player.play(path, span)`` emits ``requested`` at once, decodes the span on the thread pool and
starts ``sounddevice``; with no output device (or no PortAudio) it says so in one line
(``message``) and everything else keeps working. ``playing_changed`` follows the state.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer, Signal

from speechint_desktop.ui.workers import run_job


class Player(QObject):
    requested = Signal(str, float, float)  # path, start, end (end -1: to the end of the file)
    started = Signal(str, float, float)  # the audio is playing
    playing_changed = Signal(bool)
    message = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.playing = False
        self._play_id = 0

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
            from speechint_desktop.core.audio import load_audio

            clip = load_audio(path)
            x = clip.samples
            if span is not None:
                sr = clip.sample_rate
                x = x[int(max(start, 0) * sr) : int(max(end, 0) * sr)]
            return x, clip.sample_rate

        run_job(
            load,
            lambda data: play_id == self._play_id and self._start(path, start, end, *data),
            lambda msg: self.message.emit(f"Cannot play: {msg}"),
            owner=self,
        )

    def _start(self, path: str, start: float, end: float, samples, rate: int) -> None:
        try:
            import sounddevice as sd

            sd.play(samples, rate)
        except Exception as exc:  # noqa: BLE001 — PortAudioError, no library, no output device
            text = str(exc).splitlines()[0] if str(exc) else repr(exc)
            self.message.emit(f"No audio output available: {text}")
            return
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
