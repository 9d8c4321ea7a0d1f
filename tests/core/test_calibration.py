"""Calibration to dB SPL: a reference tone declared at a known SPL, then speech read in dB SPL."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from speechint_desktop.core import calibration as cal
from speechint_desktop.core.asl import asl_dbfs
from speechint_desktop.core.audio import AudioClip, load_audio, to_model_input
from speechint_desktop.core.loudness import rms_dbfs
from speechint_desktop.core.results import Analysis, Loudness

SR = 48000


def tone_file(path, rms_db: float, seconds: float = 3.0, sr: int = SR, lead_noise_db: float | None = None):
    t = np.arange(int(seconds * sr)) / sr
    x = math.sqrt(2) * 10 ** (rms_db / 20) * np.sin(2 * np.pi * 1000 * t)
    if lead_noise_db is not None:  # handling noise before the calibrator settles
        g = np.random.default_rng(0).standard_normal(sr // 2) * 10 ** (lead_noise_db / 20)
        x = np.concatenate([g, x, g])
    sf.write(path, x, sr, subtype="PCM_24")
    return path


def test_tone_at_94_db_spl_then_speech_reads_its_known_level(tmp_path, ldc_path):
    """Round trip: a 1 kHz tone at -20 dBFS declared 94 dB SPL (offset 114 dB), then real speech
    at -30 dBFS RMS / -26 dBFS active level reads 84 / 88 dB SPL within 0.1 dB."""
    c = cal.from_tone(tone_file(tmp_path / "cal.wav", -20.0, lead_noise_db=-45.0), 94.0)
    assert c.spl_offset_db == pytest.approx(114.0, abs=0.02)
    assert "cal.wav" in c.source and "94" in c.source

    x = to_model_input(load_audio(ldc_path)).astype(np.float64)
    speech = x * 10 ** ((-30.0 - rms_dbfs(x)) / 20)
    assert c.spl(rms_dbfs(speech)) == pytest.approx(84.0, abs=0.1)
    voice = x * 10 ** ((-26.0 - asl_dbfs(x, 16000)) / 20)
    assert c.spl(asl_dbfs(voice, 16000)) == pytest.approx(88.0, abs=0.1)


def test_offset_typed_in_and_stated_in_exports():
    from speechint_desktop.core import export

    loud = Loudness(-23.0, 5.0, -25.0, -3.0, 10.0, asl_dbfs=-22.5, asl_activity=0.8)
    a = Analysis(
        "x.wav",
        10.0,
        16000,
        1,
        "hi",
        [],
        loud,
        "tiny.en",
        predicted_intensity=-22.0,
        intensity_target="voice_asl_dbfs",
    )
    assert a.db_spl() is None and a.to_dict().get("db_spl") is None
    a.calibration = cal.from_offset(110.0)
    d = json.loads(export.to_json(a))
    assert d["db_spl"]["voice_asl"] == pytest.approx(87.5) and d["db_spl"]["rms"] == pytest.approx(85.0)
    assert d["db_spl"]["predicted_intensity"] == pytest.approx(88.0)
    assert "dB SPL = dBFS +110.00 dB" in d["db_spl"]["calibration"]
    back = Analysis.from_dict(d)
    assert back.calibration == a.calibration and back.loudness.asl_dbfs == -22.5
    row = next(csv.DictReader(export.to_csv([a]).splitlines()))
    assert float(row["asl_db_spl"]) == 87.5 and float(row["spl_offset_db"]) == 110.0
    assert row["calibration"].startswith("dB SPL")


def test_old_json_without_new_fields_still_loads():
    loud = Loudness(-23.0, 5.0, -25.0, -3.0, 10.0)
    d = Analysis("x.wav", 10.0, 16000, 1, "hi", [], loud, "tiny.en").to_dict()
    for k in ("voice_contour", "calibration"):
        d.pop(k)
    for k in ("asl_dbfs", "asl_activity"):
        d["loudness"].pop(k)
    a = Analysis.from_dict(d)
    assert a.calibration is None and a.voice_contour is None and a.loudness.asl_dbfs is None


@pytest.mark.parametrize(
    "samples,message",
    [
        (np.zeros(SR), "silent"),
        (np.ones(100) * 0.1, "shorter than 0.1 s"),
        (np.concatenate([np.ones(SR // 5) * 0.5, np.zeros(SR)]), "no steady tone"),
    ],
)
def test_bad_references_give_one_line(samples, message):
    with pytest.raises(cal.CalibrationError, match=message):
        cal.from_tone(AudioClip(samples.astype(np.float32), SR, "ref.wav"))


def test_cli_rejects_a_bad_reference_in_one_line(tmp_path):
    bad = tmp_path / "ref.wav"
    sf.write(bad, np.zeros(SR), SR)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "speechint_desktop",
            "analyze",
            str(bad),
            "--calibrate",
            str(bad),
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1] == "error: --calibrate ref.wav: reference recording is silent"
