"""User preferences kept in QSettings, behind typed properties so keys live in one place."""

from __future__ import annotations

import math

from PySide6.QtCore import QByteArray, QSettings

from speechint_desktop.core.calibration import Calibration
from speechint_desktop.core.options import TranscribeOptions  # dataclasses only: no torch at startup
from speechint_desktop.core.paths import DEFAULT_MODEL  # standard library only: no torch at startup

# the app's two decoding choices → beams of the first pass (``TranscribeOptions.beam_size``)
DECODING = {"accurate": TranscribeOptions.beam_size, "fast": 1}
DEFAULT_SPEC = "apple-podcasts"  # a core.delivery.PRESETS name (delivery is imported off the GUI thread)


class _StrSetting:
    """A string preference: one key, one default, optionally restricted to ``choices``."""

    def __init__(self, key: str, default: str, choices: tuple[str, ...] = ()):
        self.key, self.default, self.choices = key, default, choices

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        value = str(obj._get(self.key, self.default))
        return value if not self.choices or value in self.choices else self.default

    def __set__(self, obj, value: str) -> None:
        obj._s.setValue(self.key, value)


class _BoolSetting:
    """A yes/no preference (an ini file stores it as the text "true"/"false")."""

    def __init__(self, key: str, default: bool):
        self.key, self.default = key, default

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        value = obj._get(self.key, self.default)
        if isinstance(value, str):
            return {"true": True, "1": True, "false": False, "0": False}.get(value.lower(), self.default)
        return bool(value)

    def __set__(self, obj, value: bool) -> None:
        obj._s.setValue(self.key, bool(value))


class _FloatSetting:
    """A number preference, clamped to ``[lo, hi]`` (anything unreadable gives the default)."""

    def __init__(self, key: str, default: float, lo: float, hi: float):
        self.key, self.default, self.lo, self.hi = key, default, lo, hi

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        try:
            value = float(obj._get(self.key, self.default))
        except (TypeError, ValueError):
            return self.default
        return min(max(value, self.lo), self.hi) if value == value else self.default

    def __set__(self, obj, value: float) -> None:
        obj._s.setValue(self.key, float(value))


class Settings:
    """Model, device, export folder, display choices, speech detection, decoding, delivery spec, local
    checkpoints, window state.

    Tests pass an ini ``path`` so they never touch the user's real settings.
    """

    def __init__(self, path: str | None = None):
        if path:
            self._s = QSettings(str(path), QSettings.Format.IniFormat)
        else:
            self._s = QSettings("SpeechInt", "SpeechInt")

    def _get(self, key: str, default):
        value = self._s.value(key, default)
        return default if value is None else value

    model = _StrSetting("model", DEFAULT_MODEL)
    device = _StrSetting("device", "auto")
    export_dir = _StrSetting("export_dir", "")
    intensity_unit = _StrSetting("intensity_unit", "dBFS", choices=("dBFS", "LUFS"))
    """How the loudness plot's headline reads: "dBFS" (RMS) or "LUFS"."""
    input_device = _StrSetting("input_device", "")
    session = _StrSetting("session", "")
    transcript_view = _StrSetting("transcript_view", "segments", choices=("segments", "words"))
    """What the transcript pane lists: timed segments or single words."""
    vad = _BoolSetting("vad", True)
    """Detect speech (Silero VAD) and decode only that; off decodes the whole file in 30 s windows."""
    decoding = _StrSetting("decoding", "accurate", choices=tuple(DECODING))
    """How the words are searched for: "accurate" (beam search, the engine's default) or "fast"
    (greedy: about a sixth quicker on long recordings, a few more words wrong)."""
    delivery_spec = _StrSetting("delivery/spec", DEFAULT_SPEC)
    """The delivery spec the compliance panel and the queue's Spec column check (a
    ``core.delivery.PRESETS`` name; an unknown name falls back to the default where it is read)."""
    delivery_speech_only = _BoolSetting("delivery/speech_only", False)
    """Judge the loudness of the detected speech only (dialogue loudness) instead of the programme."""
    quiet_word_lu = _FloatSetting("words/quiet_lu", 6.0, 1.0, 40.0)
    """Words whose loudest momentary LUFS is more than this many LU below the file's median word
    are flagged as quiet."""

    @property
    def calibration(self) -> Calibration | None:
        """dBFS → dB SPL for the files analysed next (None: not calibrated)."""
        try:
            offset = float(self._get("calibration/spl_offset_db", ""))
        except (TypeError, ValueError):
            return None
        source = str(self._get("calibration/source", "typed in"))
        return Calibration(offset, source) if math.isfinite(offset) else None

    @calibration.setter
    def calibration(self, value: Calibration | None) -> None:
        if value is None:
            self._s.remove("calibration/spl_offset_db")
            self._s.remove("calibration/source")
        else:
            self._s.setValue("calibration/spl_offset_db", float(value.spl_offset_db))
            self._s.setValue("calibration/source", value.source)

    def transcribe_options(self) -> TranscribeOptions:
        """The engine's options for the next file, from these settings."""
        return TranscribeOptions(vad=self.vad, beam_size=DECODING[self.decoding])

    @property
    def local_models(self) -> list[str]:
        value = self._get("local_models", [])
        if isinstance(value, str):
            value = [value] if value else []
        return [str(v) for v in value]

    def add_local_model(self, path: str) -> None:
        models = self.local_models
        if path not in models:
            self._s.setValue("local_models", [*models, path])

    def geometry(self) -> QByteArray | None:
        value = self._s.value("window/geometry")
        return value if isinstance(value, QByteArray) else None

    def window_state(self) -> QByteArray | None:
        value = self._s.value("window/state")
        return value if isinstance(value, QByteArray) else None

    def save_window(self, geometry: QByteArray, state: QByteArray) -> None:
        self._s.setValue("window/geometry", geometry)
        self._s.setValue("window/state", state)

    def sync(self) -> None:
        self._s.sync()
