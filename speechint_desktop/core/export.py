"""Result files: JSON (everything, incl. traces), SRT/VTT subtitles, plain text, a CSV summary.

The CLI and the app both write through here, atomically, so a killed run never leaves half a
file where a result used to be.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from pathlib import Path

from .fsutil import atomic_write_text
from .results import Analysis

FORMATS = ("json", "csv", "srt", "vtt", "txt")
PER_FILE_FORMATS = ("json", "srt", "vtt", "txt")
CSV_COLUMNS = (
    "source",
    "duration_s",
    "integrated_lufs",
    "loudness_range_lu",
    "rms_dbfs",
    "sample_peak_dbfs",
    "predicted_intensity",
    "intensity_target",
    "intensity_note",
    "model",
    "text",
)


def _timestamp(seconds: float, sep: str) -> str:
    ms = max(0, int(round(seconds * 1000)))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def to_json(analysis: Analysis, traces: bool = True) -> str:
    return json.dumps(analysis.to_dict(traces=traces), indent=2, ensure_ascii=False) + "\n"


def to_srt(analysis: Analysis) -> str:
    blocks = []
    for i, seg in enumerate((s for s in analysis.segments if s.text.strip()), start=1):
        blocks.append(
            f"{i}\n{_timestamp(seg.start, ',')} --> {_timestamp(seg.end, ',')}\n{seg.text.strip()}\n"
        )
    return "\n".join(blocks)


def to_vtt(analysis: Analysis) -> str:
    blocks = ["WEBVTT\n"]
    for seg in analysis.segments:
        if seg.text.strip():
            blocks.append(
                f"{_timestamp(seg.start, '.')} --> {_timestamp(seg.end, '.')}\n{seg.text.strip()}\n"
            )
    return "\n".join(blocks)


def to_txt(analysis: Analysis) -> str:
    return analysis.text.strip() + "\n"


def render(analysis: Analysis, fmt: str) -> str:
    """The text of one per-file format (``json``, ``srt``, ``vtt`` or ``txt``)."""
    renderers = {"json": to_json, "srt": to_srt, "vtt": to_vtt, "txt": to_txt}
    if fmt not in renderers:
        raise ValueError(f"unknown per-file format {fmt!r} (use one of {', '.join(PER_FILE_FORMATS)})")
    return renderers[fmt](analysis)


def write(analysis: Analysis, fmt: str, out_dir, name: str | None = None) -> Path:
    """Write ``<out_dir>/<name>.<fmt>`` (name defaults to the source's stem) atomically."""
    name = name or Path(analysis.source).stem or "recording"
    return atomic_write_text(Path(out_dir) / f"{name}.{fmt}", render(analysis, fmt))


def csv_row(analysis: Analysis) -> dict[str, object]:
    loud = analysis.loudness

    def num(v, digits=2):
        return "" if v is None else round(float(v), digits)

    return {
        "source": analysis.source,
        "duration_s": num(analysis.duration_s, 3),
        "integrated_lufs": num(loud.integrated_lufs),
        "loudness_range_lu": num(loud.loudness_range_lu),
        "rms_dbfs": num(loud.rms_dbfs),
        "sample_peak_dbfs": num(loud.sample_peak_dbfs),
        "predicted_intensity": num(analysis.predicted_intensity),
        "intensity_target": analysis.intensity_target or "",
        "intensity_note": analysis.intensity_note or loud.note or "",
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
