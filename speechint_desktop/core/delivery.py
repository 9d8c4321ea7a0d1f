"""Delivery specs and compliance: does a file meet Apple Podcasts, EBU R128, ACX…?

Podcasters, narrators and editors measure loudness to deliver it, against a named target.
A ``Spec`` holds every limit a platform states; ``check`` compares a measurement with it and
returns one ``Criterion`` per limit (measured value, the limit as text, pass/fail), so the CLI
table and the app's compliance panel show the same thing.

Presets (``PRESETS``; the platforms' published numbers):

- ``apple-podcasts``: −16 LUFS ±1 LU, true peak ≤ −1 dBTP.
- ``spotify``: −14 LUFS ±1 LU, true peak ≤ −1 dBTP (Spotify's playback normalisation level).
- ``ebu-r128``: −23 LUFS ±0.5 LU (R128's tolerance for non-live programmes), ≤ −1 dBTP.
- ``atsc-a85``: −24 LKFS ±2 dB, true peak ≤ −2 dBTP.
- ``acx`` (Audible audiobooks): RMS −23 … −18 dBFS, peak ≤ −3 dBFS, noise floor ≤ −60 dBFS.

Measurement conventions (ACX's are those of its own "ACX Check" tool):

- Loudness is integrated programme loudness (BS.1770-4), or with ``speech_only`` the loudness
  of the detected speech alone (``Loudness.speech_integrated_lufs``, Silero VAD on the 16 kHz
  copy) — "dialogue loudness", which pauses and music beds do not pull down.
- True peak: BS.1770-4 Annex 2 (``truepeak``), on the original-rate audio.
- ACX RMS: the whole file's unweighted RMS over all samples and channels (a full-scale sine
  reads −3.01 dBFS, as in ACX Check). ACX peak: the *sample* peak, which is what ACX Check and
  ACX measure; the true peak is shown beside it (a lossy encode can exceed the sample peak).
- Noise floor: the RMS of the quietest 0.5 s window (windows every 50 ms), as ACX Check
  defines it, except that windows touching digital silence (a 50 ms block below −150 dBFS)
  are skipped: inserted silence would otherwise "pass" a file whose room tone is hissing, and
  ACX asks for room tone, not silence (the ``note`` says when the file contains some). −inf
  when the whole file is digital silence; None when it is shorter than 0.5 s or has no 0.5 s
  without digital silence.

The voice's active speech level (ITU-T P.56, ``core.asl``) and activity factor are measured
on the 16 kHz mono copy, as ``analyze`` measures them, and shown beside the judged values.

``check`` and ``measure_file`` never load the Whisper model: loudness, true peak and, when the
spec asks for speech-only loudness, speech detection only.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from . import audio, loudness
from .asl import AslMeter, active_speech_level
from .results import Loudness

NOISE_WINDOW_S = 0.5
NOISE_HOP_S = 0.05
DIGITAL_SILENCE_DBFS = -150.0


@dataclass(frozen=True)
class Spec:
    """A delivery specification; a limit that is None is not checked.

    ``target_lufs`` ± ``tolerance_lu`` is the loudness target (programme loudness, or speech
    loudness with ``speech_only``); ``rms_min_dbfs``/``rms_max_dbfs`` an RMS window (ACX), whose
    middle is the level ``normalize`` aims for when there is no LUFS target.
    """

    name: str
    title: str
    target_lufs: float | None = None
    tolerance_lu: float = 1.0
    true_peak_max_dbtp: float | None = None
    rms_min_dbfs: float | None = None
    rms_max_dbfs: float | None = None
    sample_peak_max_dbfs: float | None = None
    noise_floor_max_dbfs: float | None = None
    speech_only: bool = False

    def with_(self, **changes) -> Spec:
        """A copy with some limits changed (None values are ignored, so CLI flags not given
        leave the preset's limits alone)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    @property
    def target_rms_dbfs(self) -> float | None:
        """The middle of the RMS window (what ``normalize`` aims for), or None."""
        if self.rms_min_dbfs is None or self.rms_max_dbfs is None:
            return self.rms_max_dbfs if self.rms_min_dbfs is None else self.rms_min_dbfs
        return (self.rms_min_dbfs + self.rms_max_dbfs) / 2

    def summary(self) -> str:
        """One line, e.g. ``-16 LUFS ±1 LU, true peak ≤ -1 dBTP``."""
        parts = []
        if self.target_lufs is not None:
            what = "speech " if self.speech_only else ""
            parts.append(f"{what}{self.target_lufs:g} LUFS ±{self.tolerance_lu:g} LU")
        if self.true_peak_max_dbtp is not None:
            parts.append(f"true peak ≤ {self.true_peak_max_dbtp:g} dBTP")
        if self.rms_min_dbfs is not None or self.rms_max_dbfs is not None:
            parts.append(f"RMS {_range_text(self.rms_min_dbfs, self.rms_max_dbfs, 'dBFS')}")
        if self.sample_peak_max_dbfs is not None:
            parts.append(f"peak ≤ {self.sample_peak_max_dbfs:g} dBFS")
        if self.noise_floor_max_dbfs is not None:
            parts.append(f"noise floor ≤ {self.noise_floor_max_dbfs:g} dBFS")
        return ", ".join(parts) or "no limits"

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS: dict[str, Spec] = {
    s.name: s
    for s in (
        Spec(
            "apple-podcasts", "Apple Podcasts", target_lufs=-16.0, tolerance_lu=1.0, true_peak_max_dbtp=-1.0
        ),
        Spec("spotify", "Spotify", target_lufs=-14.0, tolerance_lu=1.0, true_peak_max_dbtp=-1.0),
        Spec("ebu-r128", "EBU R128 broadcast", target_lufs=-23.0, tolerance_lu=0.5, true_peak_max_dbtp=-1.0),
        Spec("atsc-a85", "ATSC A/85", target_lufs=-24.0, tolerance_lu=2.0, true_peak_max_dbtp=-2.0),
        Spec(
            "acx",
            "ACX (Audible audiobooks)",
            rms_min_dbfs=-23.0,
            rms_max_dbfs=-18.0,
            sample_peak_max_dbfs=-3.0,
            noise_floor_max_dbfs=-60.0,
        ),
    )
}


def get_spec(name: str) -> Spec:
    """A preset by name (case and ``_``/space/``-`` insensitive); ``ValueError`` lists them."""
    key = "-".join(str(name).strip().lower().replace("_", " ").replace("/", "-").split())
    aliases = {"apple": "apple-podcasts", "r128": "ebu-r128", "ebu": "ebu-r128", "atsc": "atsc-a85"}
    key = aliases.get(key, key)
    if key not in PRESETS:
        raise ValueError(f"unknown spec {name!r} (choose from {', '.join(PRESETS)})")
    return PRESETS[key]


def custom_spec(
    target_lufs: float | None = None,
    true_peak_max_dbtp: float | None = None,
    tolerance_lu: float | None = None,
    rms_range: tuple[float, float] | None = None,
    sample_peak_max_dbfs: float | None = None,
    noise_floor_max_dbfs: float | None = None,
    speech_only: bool = False,
) -> Spec:
    """A spec from loose limits (the CLI's ``--target``/``--true-peak``/… flags)."""
    lo, hi = sorted(rms_range) if rms_range else (None, None)
    return Spec(
        "custom",
        "custom",
        target_lufs=target_lufs,
        tolerance_lu=1.0 if tolerance_lu is None else float(tolerance_lu),
        true_peak_max_dbtp=true_peak_max_dbtp,
        rms_min_dbfs=lo,
        rms_max_dbfs=hi,
        sample_peak_max_dbfs=sample_peak_max_dbfs,
        noise_floor_max_dbfs=noise_floor_max_dbfs,
        speech_only=speech_only,
    )


@dataclass
class Measured:
    """What a compliance check needs of one file, measured without the Whisper model.

    ``info`` is the rate, channels and duration; the samples are not kept (a file is measured
    as it streams). ``clip`` decodes them on first use — the whole file in memory, for small
    files and tests; checking and normalising never need it.
    """

    source: str
    info: audio.AudioInfo
    loudness: Loudness
    noise_floor_dbfs: float | None
    speech: list[tuple[float, float]] | None = None  # detected speech (s); None: not detected
    note: str | None = None  # e.g. digital silence found
    samples: audio.AudioClip | None = field(default=None, repr=False)

    @property
    def clip(self) -> audio.AudioClip:
        if self.samples is None:
            self.samples = audio.load_audio(self.source)
        return self.samples


def noise_floor(source: audio.AudioClip | loudness.Levels) -> tuple[float | None, bool]:
    """(noise floor dBFS, whether the file holds digital silence); see the module docstring.

    The recording is cut into 50 ms blocks (one raw-power pass over a clip's samples,
    ``loudness.span_levels``, or a streaming pass's ``Levels``); each 0.5 s window is 10
    consecutive blocks, and a window touching a block of digital silence is skipped, so the
    edge of an inserted silence does not read as a quiet room either.
    """
    per = int(round(NOISE_WINDOW_S / NOISE_HOP_S))  # blocks per window
    if isinstance(source, loudness.Levels):
        rms = source.block_rms(int(round(NOISE_HOP_S * 1000)))
    else:
        n, sr = source.samples.shape[0], source.sample_rate
        hop = max(1, int(round(NOISE_HOP_S * sr)))
        starts = np.arange(n // hop, dtype=np.int64) * hop
        rms = (
            loudness.span_levels(source, None, starts / sr, (starts + hop) / sr)[0]
            if starts.size >= per
            else None
        )
    if rms is None or rms.size < per:
        return None, False
    silent = ~np.isfinite(rms) | (rms < DIGITAL_SILENCE_DBFS)
    power = np.where(silent, 0.0, 10.0 ** (np.nan_to_num(rms, nan=-400.0) / 10.0))
    window_power = np.convolve(power, np.ones(per), "valid") / per
    touches_silence = np.convolve(silent.astype(np.int64), np.ones(per, np.int64), "valid") > 0
    if touches_silence.all():
        return (-math.inf if silent.all() else None), True
    return float(10.0 * np.log10(window_power[~touches_silence].min())), bool(silent.any())


def detect_speech(clip: audio.AudioClip, vad_options=None) -> list[tuple[float, float]]:
    """Silero VAD on the 16 kHz copy: unpadded speech regions in seconds (as the engine does)."""
    from . import vad
    from .options import VadOptions

    x = audio.to_model_input(clip)
    if not len(x):
        return []
    probs = vad.speech_probabilities(x)
    regions = vad.regions_from_probabilities(probs, len(x), vad_options or VadOptions())
    return [(a / vad.SAMPLE_RATE, b / vad.SAMPLE_RATE) for a, b in regions]


SILENCE_NOTE = "contains digital silence (ACX asks for room tone, not silence)"


def _note(has_silence: bool) -> str | None:
    return SILENCE_NOTE if has_silence else None


def measure_clip(clip: audio.AudioClip, speech: bool = False, vad_options=None, source: str = "") -> Measured:
    """Loudness (one pass, with true peak), noise floor and, with ``speech``, speech loudness."""
    regions = detect_speech(clip, vad_options) if speech else None
    loud = loudness.measure(clip, trace=False, speech=regions)
    level = active_speech_level(audio.to_model_input(clip), audio.MODEL_SAMPLE_RATE)
    loud.asl_dbfs, loud.asl_activity = level.rounded()
    floor, has_silence = noise_floor(clip)
    info = audio.AudioInfo(clip.sample_rate, clip.channels, clip.samples.shape[0], clip.source)
    return Measured(source or clip.source, info, loud, floor, regions, _note(has_silence), samples=clip)


def detect_speech_file(path: str | os.PathLike, vad_options=None) -> list[tuple[float, float]]:
    """``detect_speech`` of a file, streamed: the 16 kHz copy is made and heard block by block
    and never kept (the same regions as ``detect_speech(load_audio(path))``, bit for bit)."""
    from . import vad
    from .options import VadOptions

    s = audio.stream(path)
    to16 = audio.ModelInput(s.info.sample_rate, s.info.channels)
    detector = vad.SpeechDetector()
    for block in s:
        detector.feed(to16.feed(block))
    detector.feed(to16.finish())
    if not detector.samples:
        return []
    probs = detector.finish()
    regions = vad.regions_from_probabilities(probs, detector.samples, vad_options or VadOptions())
    return [(a / vad.SAMPLE_RATE, b / vad.SAMPLE_RATE) for a, b in regions]


def measure_levels(
    path: str | os.PathLike, speech_regions=None, transform=None, sink=None
) -> tuple[audio.AudioInfo, loudness.Levels]:
    """One streaming pass over a file → its ``AudioInfo`` and ``loudness.Levels`` (10 ms grid,
    true peak), with ``speech_regions`` (seconds) measured to the sample. ``transform`` maps
    each block before it is measured and ``sink(info, block)`` receives the result (the
    normaliser renders and writes its output in the same pass)."""
    s = audio.stream(path)
    info = s.info
    edges = None if speech_regions is None else loudness.region_edges(speech_regions, info.sample_rate)
    meter = loudness.Meter(info.sample_rate, info.channels, edges=edges, true_peak=True, cells=False)
    for block in s:
        y = block if transform is None else transform(block)
        meter.feed(y)
        if sink is not None:
            sink(info, y)
    return info, meter.finish()


class _VoiceLevel:
    """A ``measure_levels`` sink: P.56 on the 16 kHz mono copy, made block by block."""

    def __init__(self):
        self._to16: audio.ModelInput | None = None
        self._meter = AslMeter(audio.MODEL_SAMPLE_RATE)

    def __call__(self, info: audio.AudioInfo, block: np.ndarray) -> None:
        if self._to16 is None:
            self._to16 = audio.ModelInput(info.sample_rate, info.channels)
        self._meter.feed(self._to16.feed(block))

    def finish(self) -> tuple[float | None, float | None]:
        if self._to16 is not None:
            self._meter.feed(self._to16.finish())
        return self._meter.finish().rounded()


def measure_file(path: str | os.PathLike, speech: bool = False, vad_options=None) -> Measured:
    """``measure_clip`` of a file without holding it: one streaming pass (loudness, true peak,
    noise floor, active speech level), or two with ``speech`` (speech detection first, so the
    loudness pass measures the speech regions to the sample, exactly as ``measure_clip`` does).
    Memory stays at a few MB whatever the file's length. Raises ``audio.AudioError`` (one line)
    for bad files."""
    regions = detect_speech_file(path, vad_options) if speech else None
    voice = _VoiceLevel()
    info, levels = measure_levels(path, regions, sink=voice)
    loud = levels.loudness(speech=regions, trace=False)
    loud.asl_dbfs, loud.asl_activity = voice.finish()
    floor, has_silence = noise_floor(levels)
    levels.close()
    note = "; ".join(n for n in (info.note, _note(has_silence)) if n) or None
    return Measured(os.fspath(path), info, loud, floor, regions, note)


@dataclass
class Criterion:
    """One limit of a spec checked against one measured value."""

    name: str  # e.g. "integrated loudness"
    measured: float | None  # None: could not be measured (``note`` says why)
    unit: str
    limit: str  # e.g. "-16 ±1 LUFS", "≤ -1 dBTP"
    passed: bool
    note: str | None = None


@dataclass
class Compliance:
    """A file against a spec: every criterion, plus the other values worth showing."""

    source: str
    spec: Spec
    criteria: list[Criterion]
    values: dict[str, float | None] = field(default_factory=dict)  # for display, not judged
    note: str | None = None

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.criteria)

    @property
    def failed(self) -> list[Criterion]:
        return [c for c in self.criteria if not c.passed]

    def to_dict(self) -> dict:
        from .results import _clean

        d = asdict(self)
        d["passed"] = self.passed
        return _clean(d)


def _range_text(lo: float | None, hi: float | None, unit: str) -> str:
    if lo is None:
        return f"≤ {hi:g} {unit}"
    if hi is None:
        return f"≥ {lo:g} {unit}"
    return f"{lo:g} … {hi:g} {unit}"


def _finite(v) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


def _at_most(name: str, value: float | None, limit: float, unit: str, why: str) -> Criterion:
    if value is None:
        return Criterion(name, None, unit, f"≤ {limit:g} {unit}", False, why)
    return Criterion(name, value, unit, f"≤ {limit:g} {unit}", value <= limit)


def check(measured: Measured | Loudness, spec: Spec, noise_floor_dbfs: float | None = None) -> Compliance:
    """Compare a measurement with ``spec``. A ``Loudness`` alone (e.g. an ``Analysis``'s) is
    enough unless the spec has a noise-floor limit: then pass ``noise_floor_dbfs`` (or a
    ``Measured``). A value that cannot be measured fails its criterion and says why."""
    if isinstance(measured, Measured):
        loud, source, note = measured.loudness, measured.source, measured.note
        if noise_floor_dbfs is None:
            noise_floor_dbfs = measured.noise_floor_dbfs
    else:
        loud, source, note = measured, "", None
    out: list[Criterion] = []
    if spec.target_lufs is not None:
        if spec.speech_only:
            name, value = "speech loudness", loud.speech_integrated_lufs
            why = "no speech detected" if loud.speech_duration_s is not None else "speech detection was off"
        else:
            name, value = "integrated loudness", loud.integrated_lufs
            why = loud.note or "not measurable"
        limit = f"{spec.target_lufs:g} ±{spec.tolerance_lu:g} LUFS"
        if value is None:
            out.append(Criterion(name, None, "LUFS", limit, False, why))
        else:
            ok = abs(value - spec.target_lufs) <= spec.tolerance_lu + 1e-9
            out.append(Criterion(name, value, "LUFS", limit, ok))
    if spec.true_peak_max_dbtp is not None:
        tp = loud.true_peak_dbtp
        out.append(_at_most("true peak", tp, spec.true_peak_max_dbtp, "dBTP", "not measured"))
    if spec.rms_min_dbfs is not None or spec.rms_max_dbfs is not None:
        rms = _finite(loud.rms_dbfs)
        lo = -math.inf if spec.rms_min_dbfs is None else spec.rms_min_dbfs
        hi = math.inf if spec.rms_max_dbfs is None else spec.rms_max_dbfs
        limit = _range_text(spec.rms_min_dbfs, spec.rms_max_dbfs, "dBFS")
        ok = rms is not None and lo <= rms <= hi
        out.append(Criterion("RMS", rms, "dBFS", limit, ok, None if rms is not None else "silent"))
    if spec.sample_peak_max_dbfs is not None:
        out.append(_at_most("peak", loud.sample_peak_dbfs, spec.sample_peak_max_dbfs, "dBFS", "not measured"))
    if spec.noise_floor_max_dbfs is not None:
        why = "no 0.5 s without digital silence" if isinstance(measured, Measured) else "not measured"
        out.append(_at_most("noise floor", noise_floor_dbfs, spec.noise_floor_max_dbfs, "dBFS", why))
    values = {
        "integrated_lufs": loud.integrated_lufs,
        "speech_integrated_lufs": loud.speech_integrated_lufs,
        "loudness_range_lu": loud.loudness_range_lu,
        "max_momentary_lufs": loud.max_momentary_lufs,
        "max_short_term_lufs": loud.max_short_term_lufs,
        "true_peak_dbtp": loud.true_peak_dbtp,
        "sample_peak_dbfs": loud.sample_peak_dbfs,
        "rms_dbfs": loud.rms_dbfs,
        "noise_floor_dbfs": noise_floor_dbfs,
        "asl_dbfs": loud.asl_dbfs,
        "asl_activity": loud.asl_activity,
    }
    return Compliance(source, spec, out, values, note)
