"""Voice level in the app: the P.56 row, the head's voice reading, dB SPL with a calibration,
the calibration dialog and the voice-level contour on the loudness plot."""

from __future__ import annotations

import math

import numpy as np
import soundfile as sf

from speechint_desktop.core.calibration import Calibration
from speechint_desktop.core.results import VoiceContour
from speechint_desktop.ui.calibration_dialog import CalibrationDialog
from speechint_desktop.ui.plots import AnalysisPlots, contour_xy
from speechint_desktop.ui.settings import Settings
from speechint_desktop.ui.summary import summary_html
from speechint_desktop.ui.words import WordsView


def voice_analysis(word_analysis, calibrated: bool):
    a = word_analysis()
    a.loudness.asl_dbfs, a.loudness.asl_activity = -21.5, 0.8
    a.predicted_intensity, a.intensity_target = -22.0, "voice_asl_dbfs"
    a.voice_contour = VoiceContour(np.array([0.3, 0.4, 0.5, 1.8, 1.9]), np.array([-21, -22, -23, -29, -30.0]))
    a.calibration = Calibration(110.0, "cal.wav read as 94 dB SPL") if calibrated else None
    return a


def test_summary_shows_voice_level_and_db_spl(word_analysis):
    html = summary_html(voice_analysis(word_analysis, calibrated=False))
    assert "Voice level" in html and "-21.5 dBFS" in html and "active 80%" in html
    assert (
        "Model intensity" in html and "the voice alone" in html and "-22.0" in html and "dB SPL" not in html
    )
    assert "head alone" not in html  # no head reading kept: nothing to say
    a = voice_analysis(word_analysis, calibrated=False)
    a.head_intensity = -23.4  # the check against P.56 moved the number: the summary says so
    assert "checked against P.56 (head alone -23.4)" in summary_html(a)
    a.head_intensity = -22.02
    assert "head alone" not in summary_html(a)
    html = summary_html(voice_analysis(word_analysis, calibrated=True))
    assert "88.5 dB SPL" in html and "85.0 dB SPL" in html and "88.0 dB SPL" in html  # voice, RMS, head
    assert "dBFS +110.00 dB (cal.wav read as 94 dB SPL)" in html


def test_word_levels_in_db_spl_only_when_calibrated(qtbot, word_analysis):
    view = WordsView()
    qtbot.addWidget(view)
    col = view.model().columnCount() - 1
    view.set_analysis(voice_analysis(word_analysis, calibrated=False))
    assert view.isColumnHidden(col)
    view.set_analysis(voice_analysis(word_analysis, calibrated=True))
    assert not view.isColumnHidden(col)
    assert view.model().index(0, col).data() == "89.0 dB SPL"  # " Hello": -21.0 dBFS + 110


def test_contour_is_plotted_with_breaks_at_pauses(qtbot, word_analysis):
    plots = AnalysisPlots()
    qtbot.addWidget(plots)
    a = voice_analysis(word_analysis, calibrated=False)
    plots.set_analysis(a)
    x, y = plots.voice.xData, plots.voice.yData  # all of it (getData clips to the view)
    assert len(x) == 6 and math.isnan(y[3])  # a break between 0.5 s and 1.8 s
    tx, ty = contour_xy(a.voice_contour)
    assert np.allclose(x[~np.isnan(x)], tx[~np.isnan(tx)])
    plots.clear()
    assert plots.voice.xData is None or len(plots.voice.xData) == 0


def test_dialog_reads_a_reference_tone_and_settings_keep_it(qtbot, tmp_path):
    sr = 48000
    t = np.arange(2 * sr) / sr
    sf.write(tmp_path / "cal.wav", math.sqrt(2) * 0.1 * np.sin(2 * np.pi * 1000 * t), sr)  # -20 dBFS RMS
    dialog = CalibrationDialog(None)
    qtbot.addWidget(dialog)
    assert dialog.off.isChecked()
    dialog.read_reference(str(tmp_path / "cal.wav"))
    assert abs(dialog.offset.value() - 114.0) < 0.02 and "94 dB SPL" in dialog.status.text()
    dialog._accept()
    assert abs(dialog.result_calibration.spl_offset_db - 114.0) < 0.02
    settings = Settings(str(tmp_path / "s.ini"))
    assert settings.calibration is None
    settings.calibration = dialog.result_calibration
    assert Settings(str(tmp_path / "s.ini")).calibration == dialog.result_calibration
    bad = tmp_path / "silent.wav"
    sf.write(bad, np.zeros(sr), sr)
    dialog.read_reference(str(bad))
    assert "silent" in dialog.status.text()
    settings.calibration = None
    assert settings.calibration is None
