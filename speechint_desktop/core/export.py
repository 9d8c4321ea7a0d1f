"""Result files: JSON (everything, incl. traces), SRT/VTT subtitles, plain text, a CSV summary.

Subtitles carry one cue per segment, or with ``word_cues=True`` one cue per timed word (a
segment without words keeps its segment cue). ``to_words_csv`` lists every word of a file with
its timing, confidence and level.

The CLI and the app both write through here, atomically, so a killed run never leaves half a
file where a result used to be.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .fsutil import atomic_path, atomic_write_text
from .results import Analysis, Segment, Word

FORMATS = ("json", "csv", "srt", "vtt", "txt")
PER_FILE_FORMATS = ("json", "srt", "vtt", "txt")
CSV_COLUMNS = (
    "source",
    "duration_s",
    "integrated_lufs",
    "loudness_range_lu",
    "rms_dbfs",
    "speech_integrated_lufs",
    "speech_rms_dbfs",
    "sample_peak_dbfs",
    "true_peak_dbtp",
    "max_momentary_lufs",
    "max_short_term_lufs",
    "asl_dbfs",
    "asl_activity",
    "predicted_intensity",
    "head_intensity",
    "intensity_target",
    "intensity_note",
    "audio_note",
    "spl_offset_db",
    "asl_db_spl",
    "rms_db_spl",
    "predicted_db_spl",
    "calibration",
    "model",
    "text",
)
WORDS_CSV_COLUMNS = (
    "source",
    "segment",
    "start",
    "end",
    "text",
    "probability",
    "rms_dbfs",
    "max_momentary_lufs",
    "rms_db_spl",
)


def _timestamp(seconds: float, sep: str) -> str:
    ms = max(0, int(round(seconds * 1000)))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def to_json(analysis: Analysis, traces: bool = True) -> str:
    return json.dumps(analysis.to_dict(traces=traces), indent=2, ensure_ascii=False) + "\n"


_TRACE_MARK = "\x00trace\x00"  # JSON-escaped it cannot occur in any other string
_CHUNK = 1 << 16


def write_json(analysis: Analysis, path, traces: bool = True, extra: dict | None = None) -> Path:
    """Write ``analysis`` as JSON (what ``to_json`` gives, plus ``extra`` keys) atomically,
    streaming the loudness traces.

    A 3-hour trace is five arrays of a million values: as one JSON string with a line per value
    it took ~850 MB to write. Here everything but the traces is dumped as usual and each trace
    array is written on one line in chunks of 65,536 values, so memory stays a few MB whatever
    the length. Non-finite values are null, as in ``to_json``; ``Analysis.from_dict`` reads both.
    """
    d = analysis.to_dict(traces=False)
    d.update(extra or {})
    trace = analysis.loudness.trace if traces else None
    if trace is not None:
        d["loudness"]["trace"] = _TRACE_MARK
    text = json.dumps(d, indent=2, ensure_ascii=False) + "\n"
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        if trace is None:
            f.write(text)
        else:
            head, tail = text.split(json.dumps(_TRACE_MARK), 1)
            f.write(head)
            _write_trace(f, trace)
            f.write(tail)
    return Path(path)


def _write_trace(f, trace) -> None:
    arrays = {
        "times": trace.times,
        "momentary_lufs": trace.momentary_lufs,
        "short_term_lufs": trace.short_term_lufs,
        "rms_dbfs": trace.rms_dbfs,
    }
    f.write("{")
    for key, arr in arrays.items():
        f.write(f'\n        "{key}": ')
        _write_array(f, arr)
        f.write(",")
    f.write(f'\n        "step": {json.dumps(float(trace.step))},\n        "true_peak_dbtp": ')
    if trace.true_peak_dbtp is None:
        f.write("null")
    else:
        _write_array(f, trace.true_peak_dbtp)
    f.write("\n      }")


def _write_array(f, arr) -> None:
    arr = np.asarray(arr, dtype=np.float64)
    f.write("[")
    for i in range(0, arr.size, _CHUNK):
        part = arr[i : i + _CHUNK]
        vals = part.tolist()
        for k in np.flatnonzero(~np.isfinite(part)).tolist():
            vals[k] = None
        f.write((", " if i else "") + json.dumps(vals)[1:-1])
    f.write("]")


def _cues(analysis: Analysis, word_cues: bool) -> list[tuple[float, float, str]]:
    """(start, end, text) per subtitle cue: a segment, or each of its words when asked."""
    cues = []
    for seg in analysis.segments:
        pieces: list[Segment | Word] = list(seg.words) if word_cues and seg.words else [seg]
        for p in pieces:
            if p.text.strip():
                cues.append((p.start, p.end, p.text.strip()))
    return cues


def to_srt(analysis: Analysis, word_cues: bool = False) -> str:
    blocks = []
    for i, (start, end, text) in enumerate(_cues(analysis, word_cues), start=1):
        blocks.append(f"{i}\n{_timestamp(start, ',')} --> {_timestamp(end, ',')}\n{text}\n")
    return "\n".join(blocks)


def to_vtt(analysis: Analysis, word_cues: bool = False) -> str:
    blocks = ["WEBVTT\n"]
    for start, end, text in _cues(analysis, word_cues):
        blocks.append(f"{_timestamp(start, '.')} --> {_timestamp(end, '.')}\n{text}\n")
    return "\n".join(blocks)


def to_txt(analysis: Analysis) -> str:
    return analysis.text.strip() + "\n"


def render(analysis: Analysis, fmt: str, word_cues: bool = False) -> str:
    """The text of one per-file format (``json``, ``srt``, ``vtt`` or ``txt``).

    ``word_cues``: SRT/VTT get one cue per timed word (ignored by the other formats).
    """
    if fmt == "json":
        return to_json(analysis)
    if fmt == "srt":
        return to_srt(analysis, word_cues=word_cues)
    if fmt == "vtt":
        return to_vtt(analysis, word_cues=word_cues)
    if fmt == "txt":
        return to_txt(analysis)
    raise ValueError(f"unknown per-file format {fmt!r} (use one of {', '.join(PER_FILE_FORMATS)})")


def write(analysis: Analysis, fmt: str, out_dir, name: str | None = None, word_cues: bool = False) -> Path:
    """Write ``<out_dir>/<name>.<fmt>`` (name defaults to the source's stem) atomically."""
    name = name or Path(analysis.source).stem or "recording"
    if fmt == "json":
        return write_json(analysis, Path(out_dir) / f"{name}.json")
    return atomic_write_text(Path(out_dir) / f"{name}.{fmt}", render(analysis, fmt, word_cues=word_cues))


def _num(v, digits: int = 2):
    """A CSV number, rounded; empty for None."""
    return "" if v is None else round(float(v), digits)


def csv_row(analysis: Analysis) -> dict[str, object]:
    """The file's CSV row; with a calibration the dB SPL columns are filled and say how."""
    loud = analysis.loudness
    num = _num
    spl = analysis.db_spl()
    return {
        "source": analysis.source,
        "duration_s": num(analysis.duration_s, 3),
        "integrated_lufs": num(loud.integrated_lufs),
        "loudness_range_lu": num(loud.loudness_range_lu),
        "rms_dbfs": num(loud.rms_dbfs),
        "speech_integrated_lufs": num(loud.speech_integrated_lufs),
        "speech_rms_dbfs": num(loud.speech_rms_dbfs),
        "sample_peak_dbfs": num(loud.sample_peak_dbfs),
        "true_peak_dbtp": num(loud.true_peak_dbtp),
        "max_momentary_lufs": num(loud.max_momentary_lufs),
        "max_short_term_lufs": num(loud.max_short_term_lufs),
        "asl_dbfs": num(loud.asl_dbfs),
        "asl_activity": num(loud.asl_activity, 3),
        "predicted_intensity": num(analysis.predicted_intensity),
        "head_intensity": num(analysis.head_intensity),
        "intensity_target": analysis.intensity_target or "",
        "intensity_note": analysis.intensity_note or loud.note or "",
        "audio_note": analysis.audio_note or "",
        "spl_offset_db": num(spl["spl_offset_db"]) if spl else "",
        "asl_db_spl": num(spl["voice_asl"]) if spl else "",
        "rms_db_spl": num(spl["rms"]) if spl else "",
        "predicted_db_spl": num(spl["predicted_intensity"]) if spl else "",
        "calibration": spl["calibration"] if spl else "",
        "model": analysis.model,
        "text": analysis.text.strip(),
    }


def to_csv(analyses: Iterable[Analysis]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for a in analyses:
        writer.writerow(csv_row(a))
    return buf.getvalue()


def to_words_csv(analysis: Analysis) -> str:
    """One row per timed word: ``WORDS_CSV_COLUMNS``. ``segment`` is the word's segment's index
    in ``analysis.segments`` (0-based, as in the JSON export); ``text`` is the word without
    Whisper's leading space; empty cells where a value is unknown (or silent)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=WORDS_CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for i, seg in enumerate(analysis.segments):
        for w in seg.words:
            writer.writerow(
                {
                    "source": analysis.source,
                    "segment": i,
                    "start": _num(w.start, 3),
                    "end": _num(w.end, 3),
                    "text": w.text.strip(),
                    "probability": _num(w.probability, 3),
                    "rms_dbfs": _num(w.rms_dbfs),
                    "max_momentary_lufs": _num(w.max_momentary_lufs),
                    "rms_db_spl": _num(analysis.spl(w.rms_dbfs)),
                }
            )
    return buf.getvalue()


def write_csv(analyses: Iterable[Analysis], path) -> Path:
    """One row per file: the summary numbers and the transcript."""
    return atomic_write_text(path, to_csv(analyses))


def output_names(sources: Iterable[str]) -> list[str]:
    """A distinct file stem per source, so ``a/x.wav`` and ``b/x.wav`` don't overwrite each other."""
    names: list[str] = []
    seen: set[str] = set()
    for src in sources:
        p = Path(src)
        base = p.stem or "recording"
        name = base
        if name in seen:
            name = f"{base}_{p.suffix.lstrip('.')}" if p.suffix else base
        i = 2
        while name in seen:
            name = f"{base}_{i}"
            i += 1
        seen.add(name)
        names.append(name)
    return names
