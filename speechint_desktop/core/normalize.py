"""Normalise to a delivery spec with one linear gain, and write the result safely.

Rules (the README quotes them):

- **One gain, nothing else.** The gain brings the spec's reference level to its target:
  integrated loudness (or speech loudness with ``speech_only``), or for an RMS spec (ACX) the
  middle of its RMS window. It is then capped so the true peak stays at or below the spec's
  true-peak ceiling, the sample peak at or below its peak limit, and the sample peak at or
  below 0 dBFS (the output never clips). When a cap binds, the target is *not* reached: the
  result says which ceiling limited the gain and what level was reached — never a silent
  switch to limiting or compression, which would change the programme.
- **Same format.** WAV stays WAV and FLAC stays FLAC with the same sample type (16/24/32-bit
  integer, 8-bit, float), the same rate and channels. Other lossless PCM containers (AIFF,
  W64, CAF…) become WAV with the same sample type; lossy or compressed inputs (MP3, AAC, Opus,
  Vorbis, µ-law…) become 24-bit FLAC, as re-encoding lossily would change the peaks again.
  Integer outputs are quantised here (not by libsndfile) with TPDF dither of ±1 LSB when the
  output has 16 bits or fewer; 24/32-bit outputs are rounded (their rounding noise is ~−144
  dBFS). The dither is seeded, so the same input gives the same output.
- **Measured, not assumed.** The written samples are measured again (loudness, true peak and,
  for speech-only, speech loudness over the same regions); if dither pushed the true peak a
  hair over the ceiling the gain is lowered by the excess and the file rendered again.
- **Safe writes.** The audio and a JSON report (``<output stem>.normalize.json``: gain,
  before/after levels, which ceiling limited it, the compliance of the output) are written
  atomically (``fsutil``); the input is never replaced unless ``overwrite=True``.
- **Memory flat in the file's length.** The input is measured as it streams
  (``delivery.measure_file``), then read again block by block: each block is gained, dithered,
  written to a temporary file beside the output and measured, in one pass; the temporary file
  is renamed over the output only once the measurement is within the ceilings. Rendered in the
  same 2^18-frame blocks as ``render``, the output is the in-memory render sample for sample.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import audio, delivery, fsutil
from .fsutil import atomic_write_text
from .results import Loudness, _clean

HEADROOM_DB = 0.005  # kept below a binding ceiling, for dither and rounding
_CHUNK = 1 << 18
_INT_BITS = {"PCM_S8": 8, "PCM_U8": 8, "PCM_16": 16, "PCM_24": 24, "PCM_32": 32}
_FLOAT = ("FLOAT", "DOUBLE")
_WAV_LIKE = ("WAV", "WAVEX", "RF64", "W64", "AIFF", "AIFC", "CAF", "AU", "IRCAM", "NIST", "SD2")


class NormalizeError(Exception):
    """A file that cannot be normalised; ``str()`` is one line naming it."""


@dataclass
class GainPlan:
    """The one gain for a file and why it is what it is."""

    reference: str  # "integrated loudness", "speech loudness" or "RMS"
    unit: str  # "LUFS" or "dBFS"
    before: float  # the reference level measured on the input
    target: float
    wanted_db: float  # target - before
    gain_db: float  # what is applied (<= wanted_db when a ceiling binds)
    limited_by: str | None = None  # e.g. "true-peak ceiling -1 dBTP"

    @property
    def expected(self) -> float:
        return self.before + self.gain_db


def plan_gain(loud: Loudness, spec: delivery.Spec) -> GainPlan:
    """The gain that brings ``loud`` to ``spec``, capped by its ceilings (see module docstring).

    Raises ``ValueError`` when the reference level cannot be measured (too short, silent, no
    speech) or the spec has no level target.
    """
    if spec.target_lufs is not None:
        unit, target = "LUFS", spec.target_lufs
        if spec.speech_only:
            ref, before = "speech loudness", loud.speech_integrated_lufs
            why = "no speech detected"
        else:
            ref, before = "integrated loudness", loud.integrated_lufs
            why = loud.note or "loudness not measurable"
    elif spec.target_rms_dbfs is not None:
        ref, unit, target, before = "RMS", "dBFS", spec.target_rms_dbfs, loud.rms_dbfs
        why = "silent"
    else:
        raise ValueError(f"spec {spec.name} has no loudness or RMS target to normalise to")
    if before is None or not math.isfinite(before):
        raise ValueError(f"cannot normalise: {why}")
    wanted = target - before
    caps = [(0.0 - loud.sample_peak_dbfs, "0 dBFS clipping limit")]
    if spec.sample_peak_max_dbfs is not None:
        caps.append(
            (
                spec.sample_peak_max_dbfs - loud.sample_peak_dbfs,
                f"peak limit {spec.sample_peak_max_dbfs:g} dBFS",
            )
        )
    if spec.true_peak_max_dbtp is not None:
        if loud.true_peak_dbtp is None:
            raise ValueError("cannot normalise: true peak not measured")
        caps.append(
            (
                spec.true_peak_max_dbtp - loud.true_peak_dbtp,
                f"true-peak ceiling {spec.true_peak_max_dbtp:g} dBTP",
            )
        )
    gain, limited = wanted, None
    for cap, name in caps:
        if math.isfinite(cap) and cap - HEADROOM_DB < gain:
            gain, limited = cap - HEADROOM_DB, name
    return GainPlan(ref, unit, float(before), float(target), float(wanted), float(gain), limited)


@dataclass
class OutputFormat:
    """How the output is stored: soundfile ``format``/``subtype`` and the file extension."""

    format: str
    subtype: str
    extension: str
    note: str | None = None  # why it differs from the input, if it does

    @property
    def bits(self) -> int | None:
        return _INT_BITS.get(self.subtype)

    @property
    def dithered(self) -> bool:
        return self.bits is not None and self.bits <= 16


def output_format(path: str | os.PathLike, channels: int) -> OutputFormat:
    """The output's format for an input file (see the module docstring)."""
    import soundfile as sf

    try:
        info = sf.info(str(path))
        fmt, sub = info.format, info.subtype
    except Exception:  # libsndfile cannot read it: decoded by FFmpeg, i.e. a compressed format
        fmt, sub = None, None
    pcm = sub in _INT_BITS or sub in _FLOAT
    if fmt == "FLAC" and sub in ("PCM_S8", "PCM_16", "PCM_24"):
        return OutputFormat("FLAC", sub, ".flac")
    if fmt in _WAV_LIKE and pcm:
        note = None if fmt in ("WAV", "WAVEX") else f"{fmt} input written as WAV ({sub})"
        sub = "PCM_U8" if sub == "PCM_S8" else sub  # WAV's 8-bit is unsigned
        return OutputFormat("WAV", sub, ".wav", note)
    kind = f"{fmt} {sub}" if fmt else Path(path).suffix.lstrip(".").upper() or "compressed"
    if channels > 8:  # FLAC's limit
        return OutputFormat("WAV", "PCM_24", ".wav", f"lossy/compressed input ({kind}) written as 24-bit WAV")
    return OutputFormat("FLAC", "PCM_24", ".flac", f"lossy/compressed input ({kind}) written as 24-bit FLAC")


class _Renderer:
    """The gain and quantisation of ``render``, applied block after block with one dither
    generator, so a stream rendered in ``_CHUNK`` blocks equals ``render`` of the whole array."""

    def __init__(self, gain_db: float, fmt: OutputFormat, seed: int = 0):
        self.gain = 10.0 ** (gain_db / 20.0)
        self.bits = fmt.bits
        self.dithered = fmt.dithered
        self.rng = np.random.default_rng(seed)

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        out = np.empty(samples.shape, np.float32)
        for c0 in range(0, samples.shape[0], _CHUNK):
            y = samples[c0 : c0 + _CHUNK].astype(np.float64) * self.gain
            if self.bits is not None:
                scale = float(1 << (self.bits - 1))
                y *= scale
                if self.dithered:
                    y += self.rng.random(y.shape) - self.rng.random(y.shape)  # TPDF, ±1 LSB
                np.clip(np.rint(y), -scale, scale - 1, out=y)
                y /= scale
            out[c0 : c0 + _CHUNK] = y
        return out


def render(samples: np.ndarray, gain_db: float, fmt: OutputFormat, seed: int = 0) -> np.ndarray:
    """``samples`` × gain as the output file will hold it, as float32 in [-1, 1).

    Integer formats are quantised here (TPDF-dithered for ≤ 16 bits), so what is measured is
    exactly what is written (``encode`` only packs the integers).
    """
    return _Renderer(gain_db, fmt, seed)(samples)


def _write(f, samples: np.ndarray, fmt: OutputFormat) -> None:
    """Write rendered samples to an open ``soundfile.SoundFile``: integer formats from integers
    holding exactly the rendered values (left-aligned, as libsndfile expects), so nothing is
    re-quantised."""
    bits = fmt.bits
    for c0 in range(0, samples.shape[0], _CHUNK):
        part = samples[c0 : c0 + _CHUNK]
        if bits is None:
            f.write(part.astype(np.float64 if fmt.subtype == "DOUBLE" else np.float32))
        elif bits <= 16:
            q = np.rint(part.astype(np.float64) * (1 << (bits - 1))).astype(np.int32)
            f.write((q << (16 - bits)).astype(np.int16))
        else:
            q = np.rint(part.astype(np.float64) * (1 << (bits - 1))).astype(np.int64)
            f.write((q << (32 - bits)).astype(np.int32))


def encode(samples: np.ndarray, sample_rate: int, fmt: OutputFormat) -> bytes:
    """The file's bytes (for small outputs; ``normalize_file`` streams to disk instead)."""
    import soundfile as sf

    buf = io.BytesIO()
    with sf.SoundFile(buf, "w", int(sample_rate), samples.shape[1], fmt.subtype, format=fmt.format) as f:
        _write(f, samples, fmt)
    return buf.getvalue()


def _render_file(source: Path, dest: Path, gain_db: float, fmt: OutputFormat, speech):
    """Read ``source`` block by block, render each block, write it to ``dest`` and measure what
    was written, all in one pass: memory is a block whatever the file's length.
    → (info, levels) of the output."""
    import soundfile as sf

    with contextlib.ExitStack() as stack:
        files: list = []

        def sink(info: audio.AudioInfo, y: np.ndarray) -> None:
            if not files:
                f = sf.SoundFile(
                    str(dest), "w", info.sample_rate, info.channels, fmt.subtype, format=fmt.format
                )
                files.append(stack.enter_context(f))
            _write(files[0], y, fmt)

        return delivery.measure_levels(source, speech, transform=_Renderer(gain_db, fmt), sink=sink)


@dataclass
class NormalizeResult:
    """What ``normalize_file`` did, as written to the report."""

    source: str
    output: str
    report: str
    spec: delivery.Spec
    plan: GainPlan
    after: float  # the reference level re-measured on the written output
    reached: bool  # after is within the spec's tolerance (or RMS window) of the target
    before_loudness: dict = field(default_factory=dict)
    after_loudness: dict = field(default_factory=dict)
    format: dict = field(default_factory=dict)
    compliance: delivery.Compliance | None = None  # of the output
    input_note: str | None = None  # a damaged or truncated input: the output holds only what decoded

    @property
    def limited(self) -> bool:
        return self.plan.limited_by is not None

    def message(self) -> str:
        """One line for a user: what was reached, and why not the target if it was not."""
        p = self.plan
        line = (
            f"{p.reference} {p.before:.1f} → {self.after:.1f} {p.unit} (gain {p.gain_db:+.2f} dB), "
            f"true peak {_db(self.after_loudness.get('true_peak_dbtp'))} dBTP"
        )
        if self.limited:
            line += (
                f"; limited by the {p.limited_by}: reached {self.after:.1f} {p.unit}, not {p.target:g} "
                "(only a limiter could get there; none is applied)"
            )
        if self.input_note:
            line += f"; the input is incomplete, and so is the output: {self.input_note}"
        return line

    def to_dict(self) -> dict:
        d = asdict(self)
        d["limited"] = self.limited
        if self.compliance is not None:
            d["compliance"] = self.compliance.to_dict()
        return _clean(d)


def _db(v) -> str:
    return "n/a" if v is None else f"{v:.1f}"


def _levels(loud: Loudness) -> dict:
    keys = (
        "integrated_lufs",
        "speech_integrated_lufs",
        "rms_dbfs",
        "true_peak_dbtp",
        "sample_peak_dbfs",
        "loudness_range_lu",
        "max_momentary_lufs",
        "max_short_term_lufs",
    )
    return {k: getattr(loud, k) for k in keys}


def _reference(loud: Loudness, plan: GainPlan) -> float | None:
    return {
        "integrated loudness": loud.integrated_lufs,
        "speech loudness": loud.speech_integrated_lufs,
        "RMS": loud.rms_dbfs,
    }[plan.reference]


def _reached(spec: delivery.Spec, plan: GainPlan, after: float | None) -> bool:
    if after is None:
        return False
    if plan.reference == "RMS":
        lo = -math.inf if spec.rms_min_dbfs is None else spec.rms_min_dbfs
        hi = math.inf if spec.rms_max_dbfs is None else spec.rms_max_dbfs
        return lo <= after <= hi
    return abs(after - plan.target) <= spec.tolerance_lu + 1e-9


def output_path(
    source: str | os.PathLike, spec: delivery.Spec, fmt: OutputFormat, out_dir=None, name=None
) -> Path:
    """``<out_dir>/<name><ext>``, or beside the input as ``<stem>-<spec><ext>``."""
    src = Path(source)
    if out_dir is None:
        return src.with_name(f"{name or src.stem}-{spec.name}{fmt.extension}")
    return Path(out_dir) / f"{name or src.stem}{fmt.extension}"


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def normalize_file(
    source: str | os.PathLike,
    spec: delivery.Spec,
    out_dir: str | os.PathLike | None = None,
    name: str | None = None,
    overwrite: bool = False,
    vad_options=None,
    keep=(),
) -> NormalizeResult:
    """Normalise one file to ``spec`` (see the module docstring); ``name`` is the output stem.
    ``keep``: other files that must not be replaced either (the rest of a batch's inputs).

    Raises ``audio.AudioError`` for unreadable files and ``NormalizeError`` for everything
    else a user must hear about (nothing to normalise, would overwrite the input, cannot
    write); both are one line naming the file.
    """
    import soundfile as sf

    src = Path(source)
    label = src.name
    m = delivery.measure_file(src, speech=spec.speech_only, vad_options=vad_options)
    try:
        plan = plan_gain(m.loudness, spec)
    except ValueError as e:
        raise NormalizeError(f"{label}: {e}") from None
    fmt = output_format(src, m.info.channels)
    out = output_path(src, spec, fmt, out_dir, name)
    if not overwrite:
        for other in (src, *map(Path, keep)):
            if _same_file(other, out):
                what = "the input" if other == src else f"an input ({other})"
                raise NormalizeError(f"{label}: the output {out} is {what}; pass --overwrite to replace it")
    report_path = out.with_name(f"{out.stem}.normalize.json")

    gain = plan.gain_db
    try:
        # Rendered, written and measured in one streaming pass into a temporary file beside the
        # output, which replaces it only once the measurement is within the ceilings.
        with fsutil.atomic_path(out) as tmp:
            for _ in range(4):  # dither can lift the true peak by a hair over a binding ceiling
                info, levels = _render_file(src, tmp, gain, fmt, m.speech)
                loud = levels.loudness(trace=False, speech=m.speech)
                excess = _excess(loud, spec)
                if excess <= 0:
                    break
                levels.close()
                gain -= excess + 1e-4
            floor, has_silence = delivery.noise_floor(levels)
            levels.close()
    except (OSError, sf.LibsndfileError) as e:  # a failed write is libsndfile's error
        raise NormalizeError(f"{label}: cannot write {out} ({getattr(e, 'strerror', None) or e})") from None
    plan.gain_db = gain
    after = _reference(loud, plan)
    note = delivery.SILENCE_NOTE if has_silence else None
    out_info = audio.AudioInfo(
        info.sample_rate, info.channels, info.frames, out.name, fmt.format, fmt.subtype
    )
    measured = delivery.Measured(str(out), out_info, loud, floor, m.speech, note)
    result = NormalizeResult(
        source=os.fspath(source),
        output=str(out),
        report=str(report_path),
        spec=spec,
        plan=plan,
        after=float(after) if after is not None else math.nan,
        reached=_reached(spec, plan, after),
        before_loudness=_levels(m.loudness) | {"noise_floor_dbfs": m.noise_floor_dbfs},
        after_loudness=_levels(loud) | {"noise_floor_dbfs": floor},
        format={
            "format": fmt.format,
            "subtype": fmt.subtype,
            "sample_rate": info.sample_rate,
            "channels": info.channels,
            "dithered": fmt.dithered,
            "note": fmt.note,
        },
        compliance=delivery.check(measured, spec),
        input_note=m.info.note,
    )
    try:
        atomic_write_text(report_path, json.dumps(result.to_dict(), indent=2, ensure_ascii=False) + "\n")
    except OSError as e:
        raise NormalizeError(f"{label}: cannot write {report_path} ({e.strerror or e})") from None
    # a killed earlier attempt's half-rendered copy (as large as the output) beside the user's audio
    fsutil.remove_leftover_temps(out.parent, {out.name, report_path.name})
    return result


def _excess(loud: Loudness, spec: delivery.Spec) -> float:
    """How far (dB) the rendered output is above its ceilings (≤ 0: within them)."""
    over = loud.sample_peak_dbfs - 0.0
    if spec.sample_peak_max_dbfs is not None:
        over = max(over, loud.sample_peak_dbfs - spec.sample_peak_max_dbfs)
    if spec.true_peak_max_dbtp is not None and loud.true_peak_dbtp is not None:
        over = max(over, loud.true_peak_dbtp - spec.true_peak_max_dbtp)
    return over
