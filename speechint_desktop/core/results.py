"""Typed results passed between the core, the CLI, training and the app.

Every layer exchanges these dataclasses rather than nested dicts, so a field renamed here
breaks loudly everywhere it is used. ``to_dict`` gives the JSON shape written by exports.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from .calibration import Calibration


def _clean(value):
    """Make a value JSON-safe: arrays to lists, non-finite floats to None."""
    if isinstance(value, np.ndarray):
        return [_clean(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def _pick(cls, d: dict) -> dict:
    """The keys of ``d`` that are fields of ``cls`` (newer exports may carry more)."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in d.items() if k in names}


def _arr(values) -> np.ndarray:
    """A trace from JSON: null (silence, or a window not yet full) is -inf again."""
    return np.array([-np.inf if v is None else v for v in (values or [])], dtype=np.float64)


@dataclass
class LoudnessTrace:
    """Loudness over time, all arrays the same length, one value per ``step`` seconds.

    ``times`` are the end times of each window (as a meter shows them live). Values are
    ``-inf`` where the window is silent or not yet full; exports turn those into null.
    ``true_peak_dbtp`` is the true peak of each step ``(t - step, t]`` (not a window), so the
    true peak of any span is a maximum over its steps; None when not measured.
    """

    times: np.ndarray
    momentary_lufs: np.ndarray  # 400 ms window
    short_term_lufs: np.ndarray  # 3 s window
    rms_dbfs: np.ndarray  # 400 ms window, unweighted
    step: float = 0.01
    true_peak_dbtp: np.ndarray | None = None  # per step, BS.1770-4 Annex 2


@dataclass
class Loudness:
    """Measured loudness of a whole clip (or a span of it).

    ``integrated_lufs``/``loudness_range_lu`` are None when the clip is too short to gate;
    ``note`` then says why in one line (e.g. "too short to measure integrated loudness").
    The ``speech_*`` values ("dialogue loudness") cover the detected speech only: the
    programme loudness counts the fan, the music bed and the coughs too, the speech values
    do not. They are None when no speech was detected (or speech detection was off).
    ``true_peak_dbtp`` is the BS.1770-4 true peak (oversampled to >= 192 kHz; -inf for
    silence, None when not measured); ``max_momentary_lufs``/``max_short_term_lufs`` the
    loudest 400 ms / 3 s window (None when no window is full or all are silent).
    """

    integrated_lufs: float | None
    loudness_range_lu: float | None
    rms_dbfs: float
    sample_peak_dbfs: float
    duration_s: float
    note: str | None = None
    trace: LoudnessTrace | None = None
    speech_integrated_lufs: float | None = None
    speech_rms_dbfs: float | None = None
    speech_duration_s: float | None = None
    true_peak_dbtp: float | None = None
    max_momentary_lufs: float | None = None
    max_short_term_lufs: float | None = None
    asl_dbfs: float | None = None  # ITU-T P.56 active speech level (core.asl), of the 16 kHz mono signal
    asl_activity: float | None = None  # P.56 activity factor: the share of the clip that is active


@dataclass
class VoiceContour:
    """The intensity head over a sliding span of encoder frames: the voice's level over time.

    ``times`` are span centres (s, recording time), ``values`` the head's prediction (its
    target's units) for the ``span_s`` of frames around each, every ``step_s``. Only decoded
    (speech) spans have values.
    """

    times: np.ndarray
    values: np.ndarray
    span_s: float = 0.4
    step_s: float = 0.1


@dataclass
class Word:
    """One word with its timing (cross-attention alignment), confidence and measured level.

    ``text`` keeps Whisper's leading space and attached punctuation, so joining the words of a
    segment gives its text back. ``max_momentary_lufs`` is the loudest 400 ms momentary value
    whose window centre falls within the word.
    """

    start: float
    end: float
    text: str
    probability: float | None = None
    rms_dbfs: float | None = None
    max_momentary_lufs: float | None = None


@dataclass
class Segment:
    """A timed piece of transcript with the loudness of its span (and its words, when timed)."""

    start: float
    end: float
    text: str
    rms_dbfs: float | None = None
    lufs: float | None = None  # integrated over the span; None when shorter than 400 ms
    predicted_intensity: float | None = None
    words: list[Word] = field(default_factory=list)
    avg_logprob: float | None = None
    no_speech_prob: float | None = None
    temperature: float | None = None
    true_peak_dbtp: float | None = None  # max over the trace steps the span overlaps


@dataclass
class Timings:
    """Wall-clock seconds per stage, for the user and for benchmarks."""

    decode_s: float = 0.0
    loudness_s: float = 0.0
    inference_s: float = 0.0
    total_s: float = 0.0


@dataclass
class Analysis:
    """Everything SpeechInt knows about one recording.

    ``predicted_intensity`` is only ever set by a *trained* head; with an untrained head it
    stays None and ``intensity_note`` says so, so no untrained number reaches a user.
    """

    source: str
    duration_s: float
    sample_rate: int
    channels: int
    text: str
    segments: list[Segment]
    loudness: Loudness
    model: str
    language: str | None = None
    # for a voice_asl head: the head's reading checked against P.56 (core.voice)
    predicted_intensity: float | None = None
    intensity_target: str | None = None  # "rms_dbfs", "lufs", "voice_asl_dbfs", "voice_rms_dbfs"
    head_intensity: float | None = None  # the head's own reading, before that check
    intensity_note: str | None = None
    timings: Timings = field(default_factory=Timings)
    speech: list[tuple[float, float]] = field(default_factory=list)  # detected speech (s); [] = VAD off
    vad: bool = False  # whether speech detection chose what was decoded
    voice_contour: VoiceContour | None = None  # the head over ~400 ms spans (when it has one)
    calibration: Calibration | None = None  # dBFS → dB SPL, when the user calibrated
    audio_note: str | None = None  # a damaged or truncated file: what could not be decoded

    def spl(self, dbfs: float | None) -> float | None:
        """A dBFS value of this recording in dB SPL (None without a calibration)."""
        return None if self.calibration is None else self.calibration.spl(dbfs)

    def db_spl(self) -> dict | None:
        """The calibrated levels (dB SPL), as exports state them; None without a calibration."""
        if self.calibration is None:
            return None
        loud = self.loudness
        dbfs_head = (self.intensity_target or "").endswith("dbfs")
        return {
            "calibration": self.calibration.describe(),
            "spl_offset_db": self.calibration.spl_offset_db,
            "voice_asl": self.spl(loud.asl_dbfs),
            "rms": self.spl(loud.rms_dbfs),
            "speech_rms": self.spl(loud.speech_rms_dbfs),
            "predicted_intensity": self.spl(self.predicted_intensity) if dbfs_head else None,
        }

    def to_dict(self, traces: bool = True) -> dict:
        d = asdict(self)
        if not traces:
            d["loudness"]["trace"] = None
        if self.calibration is not None:
            d["db_spl"] = self.db_spl()
            for seg in d["segments"]:
                seg["rms_db_spl"] = self.spl(seg["rms_dbfs"])
                for w in seg["words"]:
                    w["rms_db_spl"] = self.spl(w["rms_dbfs"])
        return _clean(d)

    @classmethod
    def from_dict(cls, d: dict) -> Analysis:
        """Rebuild an ``Analysis`` from its JSON export (``to_dict``), e.g. a saved session."""
        d = d.get("analysis", d)
        loud = dict(d["loudness"])
        trace = loud.get("trace")
        if trace:
            loud["trace"] = LoudnessTrace(
                times=np.array(trace.get("times") or [], dtype=np.float64),
                momentary_lufs=_arr(trace.get("momentary_lufs")),
                short_term_lufs=_arr(trace.get("short_term_lufs")),
                rms_dbfs=_arr(trace.get("rms_dbfs")),
                step=float(trace.get("step") or 0.01),
                true_peak_dbtp=_arr(trace["true_peak_dbtp"]) if trace.get("true_peak_dbtp") else None,
            )
        for key in ("rms_dbfs", "sample_peak_dbfs"):
            if loud.get(key) is None:
                loud[key] = float("-inf")
        out = _pick(cls, d)
        out["loudness"] = Loudness(**_pick(Loudness, loud))
        out["segments"] = [
            Segment(**{**_pick(Segment, s), "words": [Word(**_pick(Word, w)) for w in s.get("words") or []]})
            for s in d.get("segments") or []
        ]
        out["speech"] = [(float(a), float(b)) for a, b in d.get("speech") or []]
        out["timings"] = Timings(**_pick(Timings, d.get("timings") or {}))
        vc = d.get("voice_contour")
        out["voice_contour"] = (
            VoiceContour(
                np.array(vc.get("times") or [], dtype=np.float64),
                np.array([np.nan if v is None else v for v in vc.get("values") or []], dtype=np.float64),
                float(vc.get("span_s") or 0.4),
                float(vc.get("step_s") or 0.1),
            )
            if vc
            else None
        )
        out["calibration"] = Calibration.from_dict(d.get("calibration"))
        return cls(**out)


@dataclass
class FileError:
    """A file that could not be analysed, with the one line a user sees."""

    source: str
    message: str
