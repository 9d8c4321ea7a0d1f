"""The summary above the transcript: programme loudness beside the loudness of the speech only, then
the peaks and maxima (true peak, sample peak, loudest momentary and short-term loudness)."""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel

from speechint_desktop.core.results import Analysis
from speechint_desktop.ui.results_table import WARN, fmt_db, fmt_duration, predicted_text, speech_seconds

EMPTY = "Open, drop or record audio to analyse it."
GREY = "#777"
SEP = " &nbsp;·&nbsp; "


def model_label(key: str) -> str:
    """A model as the user picked it: a catalogue name, or a local folder's name."""
    p = Path(key)
    return f"{p.name} (local)" if p.is_absolute() or p.exists() else key


def speech_share(a: Analysis) -> str:
    """How much of the file the speech detector kept, e.g. "8.6 s of 11.0 s (78 %)"."""
    speech = speech_seconds(a)
    share = speech / a.duration_s if a.duration_s else 0.0
    return f"{fmt_duration(speech)} of {fmt_duration(a.duration_s)} ({share:.0%})"


def _db(value, unit: str) -> str:
    return f"<b>{html.escape(fmt_db(value, unit))}</b>"


def _grey(text: str) -> str:
    return f"<span style='color:{GREY}'>{html.escape(text)}</span>"


def speech_row(a: Analysis) -> tuple[str, str, str]:
    """The speech-only row's cells (integrated, RMS, remark) as HTML."""
    loud = a.loudness
    if not a.vad:
        return "", "", _grey("speech detection was off for this file")
    if not a.speech:
        return "", "", _grey("no speech detected")
    return (
        _db(loud.speech_integrated_lufs, "LUFS"),
        _db(loud.speech_rms_dbfs, "dBFS"),
        _grey(f"speech: {speech_share(a)}"),
    )


def head_note(a: Analysis) -> str:
    """ ", checked against P.56 (head alone -25.7)" when that check moved the model's number."""
    head, value = a.head_intensity, a.predicted_intensity
    if head is None or value is None or abs(head - value) < 0.05:
        return ""
    return f", checked against P.56 (head alone {head:.1f})"


def peaks_html(a: Analysis) -> str:
    """Two lines: true and sample peak; the loudest momentary (400 ms) and short-term (3 s) loudness."""
    loud = a.loudness
    peaks = (
        f"True peak {_db(loud.true_peak_dbtp, 'dBTP')}{SEP}sample peak {_db(loud.sample_peak_dbfs, 'dBFS')}"
    )
    maxima = (
        f"max momentary {_db(loud.max_momentary_lufs, 'LUFS')}"
        f"{SEP}max short-term {_db(loud.max_short_term_lufs, 'LUFS')}"
    )
    return f"{peaks}<br>{maxima}"


def spl_html(a: Analysis) -> str:
    """With a calibration: the voice level, RMS and the head's reading in dB SPL, and how."""
    d = a.db_spl()
    if d is None:
        return ""
    parts = [f"voice {_db(d['voice_asl'], 'dB SPL')}", f"RMS {_db(d['rms'], 'dB SPL')}"]
    if d["predicted_intensity"] is not None:
        parts.append(f"head {_db(d['predicted_intensity'], 'dB SPL')}")
    return "<br>" + SEP.join(parts) + " &nbsp;" + _grey(a.calibration.describe())


def summary_html(a: Analysis) -> str:
    """File name and facts, then a small table: programme and speech-only loudness, one above the
    other so they compare at a glance, and the model's intensity estimate under the measure it estimates."""
    loud = a.loudness
    lra = "—" if loud.loudness_range_lu is None else f"{loud.loudness_range_lu:.1f} LU"
    rows = [
        ("", "<i>Integrated</i>", "<i>RMS</i>", ""),
        (
            "Programme",
            _db(loud.integrated_lufs, "LUFS"),
            _db(loud.rms_dbfs, "dBFS"),
            _grey(f"loudness range {lra}"),
        ),
        ("Speech only", *speech_row(a)),
    ]
    if loud.asl_dbfs is not None:
        activity = "" if loud.asl_activity is None else f", active {loud.asl_activity:.0%} of the time"
        rows.append(
            ("Voice level", "", _db(loud.asl_dbfs, "dBFS"), _grey(f"P.56 active speech level{activity}"))
        )
    if a.predicted_intensity is not None:
        value = f"<b>{html.escape(predicted_text(a))}</b>"
        target = (a.intensity_target or "").lower()
        lufs = target.startswith("lufs")
        if target.startswith("voice"):
            rows.append(
                (
                    "Model intensity",
                    "",
                    value,
                    _grey(f"the voice alone, by the model{head_note(a)} (Help ▸ Levels explained)"),
                )
            )
        else:
            rows.append(
                (
                    "Model intensity",
                    value if lufs else "",
                    "" if lufs else value,
                    _grey("estimated from the voice by the model (Help ▸ Levels explained)"),
                )
            )
    td = "<td style='padding:1px 14px 1px 0; white-space:nowrap'>"
    table = "".join("<tr>" + "".join(f"{td}{c}</td>" for c in r) + "</tr>" for r in rows)
    meta = (
        f"{fmt_duration(a.duration_s)}, {a.sample_rate} Hz, {a.channels} ch"
        f"{SEP}model {html.escape(model_label(a.model))}"
    )
    if a.timings and a.timings.total_s:
        meta += f"{SEP}analysed in {a.timings.total_s:.1f} s"
    spl = spl_html(a)
    notes = [n for n in (loud.note, a.intensity_note) if n]
    note_html = "".join(f"<br>{_grey(n)}" for n in notes)
    if a.audio_note:  # what was measured and transcribed is not the whole recording: say so first
        note_html = f"<br><span style='color:{WARN}'>⚠ {html.escape(a.audio_note)}</span>" + note_html
    return (
        f"<span style='font-size:11pt'><b>{html.escape(Path(a.source).name)}</b></span>"
        f" &nbsp; <span style='color:#666'>{meta}</span>"
        f"<table cellspacing='0' style='margin-top:2px'>{table}</table>{peaks_html(a)}{spl}{note_html}"
    )


class SummaryLabel(QLabel):
    """The numbers of the file shown, or its status when it has no result (yet)."""

    def __init__(self, parent=None):
        super().__init__(EMPTY, parent)
        self.setWordWrap(True)
        self.setTextFormat(Qt.TextFormat.RichText)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.setStyleSheet("QLabel { padding: 6px; background: #f4f6f8; border-radius: 4px; }")

    def show_empty(self) -> None:
        self.setText(EMPTY)

    def show_analysis(self, a: Analysis) -> None:
        self.setText(summary_html(a))

    def show_status(self, path: str, status: str, error: str | None = None) -> None:
        reason = f"<br><span style='color:#d9534f'>{html.escape(error)}</span>" if error else ""
        self.setText(f"<b>{html.escape(Path(path).name)}</b> — {status}{reason}")
