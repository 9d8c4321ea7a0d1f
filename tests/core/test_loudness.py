"""BS.1770-4 / EBU R128 conformance, synthesised from EBU Tech 3341 and Tech 3342.

The signals follow the documents' case definitions (1 kHz sines, levels in dBFS peak, given
durations, identical in both channels); expected values are the documents' (±0.1 LU here),
checked at 16, 44.1 and 48 kHz. A stereo 1 kHz sine at X dBFS reads X LUFS.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pyloudnorm
import pytest
from scipy.signal import sosfilt

from speechint_desktop.core import loudness as L
from speechint_desktop.core.audio import as_clip, load_audio, resample, to_model_input
from speechint_desktop.core.results import _clean

RATES = [16000, 44100, 48000]
TOL = 0.1


def tones(parts: list[tuple[float, float]], sr: int, channels: int = 2) -> np.ndarray:
    """Concatenated 1 kHz sine pieces ``(dBFS peak, seconds)``, the same in every channel."""
    pieces = []
    for db, seconds in parts:
        t = np.arange(int(round(seconds * sr))) / sr
        pieces.append(10 ** (db / 20) * np.sin(2 * np.pi * 1000 * t))
    x = np.concatenate(pieces).astype(np.float32)
    return np.repeat(x[:, None], channels, axis=1)


TECH3341_INTEGRATED = {
    "case1": ([(-23, 20)], -23.0),
    "case2": ([(-33, 20)], -33.0),
    "case3": ([(-36, 10), (-23, 60), (-36, 10)], -23.0),
    "case4": ([(-72, 10), (-36, 10), (-23, 60), (-36, 10), (-72, 10)], -23.0),
    "case5": ([(-26, 20), (-20, 20.1), (-26, 20)], -23.0),
}
TECH3342_LRA = {
    "case1": ([(-20, 20), (-30, 20)], 10.0),
    "case2": ([(-20, 20), (-15, 20)], 5.0),
    "case3": ([(-40, 20), (-20, 20)], 20.0),
    "case4": ([(-50, 20), (-35, 20), (-20, 20), (-35, 20), (-50, 20)], 15.0),
}


def test_k_weighting_at_48k_is_the_bs1770_table():
    sos = L.k_weighting_sos(48000)
    np.testing.assert_allclose(sos[0, :3], [1.53512485958697, -2.69169618940638, 1.19839281085285], atol=1e-9)
    np.testing.assert_allclose(sos[0, 4:], [-1.69065929318241, 0.73248077421585], atol=1e-9)
    np.testing.assert_allclose(sos[1, :3], [1.0, -2.0, 1.0])
    np.testing.assert_allclose(sos[1, 4:], [-1.99004745483398, 0.99007225036621], atol=1e-9)


@pytest.mark.parametrize("sr", RATES)
@pytest.mark.parametrize("case", list(TECH3341_INTEGRATED))
def test_tech3341_integrated(case, sr):
    parts, expected = TECH3341_INTEGRATED[case]
    assert L.integrated_loudness(tones(parts, sr), sr) == pytest.approx(expected, abs=TOL)


@pytest.mark.parametrize("sr", RATES)
def test_tech3341_cases_1_2_momentary_and_short_term(sr):
    for db in (-23, -33):
        tr = L.loudness_trace(tones([(db, 20)], sr), sr, step=0.01)
        full = tr.times >= 3.0
        np.testing.assert_allclose(tr.momentary_lufs[full], db, atol=TOL)
        np.testing.assert_allclose(tr.short_term_lufs[full], db, atol=TOL)


@pytest.mark.parametrize("sr", RATES)
def test_tech3341_case6_five_and_six_channels(sr):
    """L, R at -28, C at -24, Ls, Rs at -30 dBFS → -23 LUFS (surrounds weighted 1.41)."""
    lr, c, s = (tones([(db, 20)], sr, 1)[:, 0] for db in (-28, -24, -30))
    five = np.stack([lr, lr, c, s, s], axis=1)
    assert L.integrated_loudness(five, sr) == pytest.approx(-23.0, abs=TOL)
    lfe = tones([(-10, 20)], sr, 1)[:, 0]  # loud LFE: excluded from the measurement
    six = np.stack([lr, lr, c, lfe, s, s], axis=1)
    assert L.integrated_loudness(six, sr) == pytest.approx(-23.0, abs=TOL)


@pytest.mark.parametrize("sr", RATES)
def test_tech3341_case9_constant_short_term(sr):
    """20 s of alternating 1.34 s at -20 dBFS and 1.66 s at -30 dBFS: short-term stays -23."""
    x = tones([(-20, 1.34), (-30, 1.66)] * 7, sr)
    tr = L.loudness_trace(x, sr, step=0.01)
    np.testing.assert_allclose(tr.short_term_lufs[tr.times >= 3.0], -23.0, atol=TOL)


@pytest.mark.parametrize("sr", RATES)
def test_tech3341_case12_constant_momentary(sr):
    """Alternating 0.18 s at -20 dBFS and 0.22 s at -30 dBFS: momentary stays -23."""
    x = tones([(-20, 0.18), (-30, 0.22)] * 25, sr)
    tr = L.loudness_trace(x, sr, step=0.01)
    m = tr.momentary_lufs[tr.times >= 0.4]
    np.testing.assert_allclose(m, -23.0, atol=TOL)


@pytest.mark.parametrize("sr", RATES)
@pytest.mark.parametrize("case", list(TECH3342_LRA))
def test_tech3342_loudness_range(case, sr):
    parts, expected = TECH3342_LRA[case]
    assert L.loudness_range(tones(parts, sr), sr) == pytest.approx(expected, abs=TOL)


def test_mono_reads_3_01_db_below_dual_mono():
    x = tones([(-20, 5)], 48000, 1)
    mono = L.integrated_loudness(x, 48000)
    dual = L.integrated_loudness(np.repeat(x, 2, axis=1), 48000)
    assert dual - mono == pytest.approx(10 * math.log10(2), abs=1e-6)


def _pyloudnorm(samples: np.ndarray, sr: int) -> float:
    """pyloudnorm with its per-rate "DeMan" filter, on whole gating blocks only.

    pyloudnorm rounds the block count, so when the last 100 ms hop is more than half full it
    adds a partial block divided by a full block's length, which under-reads (by 0.09 LU on one
    of the espeak clips here). BS.1770 uses complete blocks; trimming the tail to them compares
    like with like (the audio the standard measures is identical).
    """
    blocks = math.floor((samples.shape[0] / sr - 0.4) / 0.1 + 1e-9) + 1
    whole = samples[: int(round(((blocks - 1) * 0.1 + 0.4) * sr))]
    return pyloudnorm.Meter(sr, filter_class="DeMan").integrated_loudness(whole.astype(np.float64))


def test_agrees_with_pyloudnorm_deman_on_real_speech(jfk_path):
    clip = load_audio(jfk_path)  # 11 s, 44.1 kHz stereo
    ours = L.integrated_loudness(clip.samples, clip.sample_rate)
    assert ours == pytest.approx(_pyloudnorm(clip.samples, clip.sample_rate), abs=0.05)
    mono16 = to_model_input(clip)
    assert L.integrated_loudness(mono16, 16000) == pytest.approx(_pyloudnorm(mono16, 16000), abs=0.05)


def test_agrees_with_pyloudnorm_deman_on_espeak_speech(tmp_path):
    from tests.conftest import espeak

    text = "Ask not what your country can do for you. Ask what you can do for your country."
    for i, (voice, wpm) in enumerate([("en-us", 150), ("en-gb", 120), ("en-us+f3", 170)]):
        clip = load_audio(espeak(text, tmp_path / f"s{i}.wav", voice=voice, wpm=wpm))
        assert clip.duration_s >= 3.0
        ours = L.integrated_loudness(clip.samples, clip.sample_rate)
        assert ours == pytest.approx(_pyloudnorm(clip.samples, clip.sample_rate), abs=0.05)


@pytest.mark.parametrize("gain_db", [-20.0, -6.0, 3.5])
def test_gain_shifts_rms_and_lufs_exactly(jfk_path, gain_db):
    clip = load_audio(jfk_path)
    louder = as_clip(clip.samples * np.float32(10 ** (gain_db / 20)), clip.sample_rate)
    a, b = L.measure(clip, trace=False), L.measure(louder, trace=False)
    assert b.rms_dbfs - a.rms_dbfs == pytest.approx(gain_db, abs=0.01)
    assert b.integrated_lufs - a.integrated_lufs == pytest.approx(gain_db, abs=0.01)
    assert b.sample_peak_dbfs - a.sample_peak_dbfs == pytest.approx(gain_db, abs=0.01)
    assert b.loudness_range_lu == pytest.approx(a.loudness_range_lu, abs=0.01)


def test_rms_and_peak_of_a_sine():
    x = tones([(-6, 2)], 16000, 1)
    assert L.rms_dbfs(x) == pytest.approx(-6 - 3.0103, abs=0.001)
    assert L.sample_peak_dbfs(x) == pytest.approx(-6, abs=0.01)
    r = L.measure(as_clip(x, 16000), trace=False)
    assert r.rms_dbfs == pytest.approx(L.rms_dbfs(x), abs=1e-9)
    assert r.sample_peak_dbfs == pytest.approx(L.sample_peak_dbfs(x), abs=1e-9)


@pytest.mark.parametrize("seconds", [0.0001, 0.1, 0.399])
def test_too_short_is_a_note_not_an_error(seconds):
    x = tones([(-20, seconds)], 16000, 1)
    assert L.integrated_loudness(x, 16000) is None
    assert L.loudness_range(x, 16000) is None
    r = L.measure(as_clip(x, 16000))
    assert r.integrated_lufs is None and r.loudness_range_lu is None
    assert r.note == L.TOO_SHORT == "too short to measure integrated loudness (< 0.4 s)"
    assert math.isfinite(r.rms_dbfs)
    assert np.isneginf(r.trace.momentary_lufs).all()
    lufs_rms, lufs = L.span_loudness(as_clip(x, 16000), 0, seconds)
    assert lufs is None and math.isfinite(lufs_rms)


def test_exactly_400_ms_measures():
    x = tones([(-23, 0.4)], 48000)
    assert L.integrated_loudness(x, 48000) == pytest.approx(-23.0, abs=0.2)
    assert L.measure(as_clip(x, 48000)).note == L.LRA_TOO_SHORT


def test_silence_never_crashes_and_exports_null():
    clip = as_clip(np.zeros((32000, 2), np.float32), 16000)
    r = L.measure(clip)
    assert r.integrated_lufs is None and r.loudness_range_lu is None and r.note == L.SILENT
    assert r.rms_dbfs == -math.inf and r.sample_peak_dbfs == -math.inf
    assert L.integrated_loudness(clip.samples, 16000) == -math.inf
    assert L.span_loudness(clip, 0.0, 1.0) == (-math.inf, None)
    assert L.rms_dbfs(np.zeros(0)) == -math.inf and L.integrated_loudness(np.zeros(0), 16000) is None
    d = _clean({"rms": r.rms_dbfs, "trace": r.trace.momentary_lufs[:3]})
    assert json.loads(json.dumps(d)) == {"rms": None, "trace": [None, None, None]}


def test_trace_matches_a_direct_computation():
    """Every trace value equals the windowed mean square of the once-filtered signal."""
    rng = np.random.default_rng(0)
    sr = 22050  # 0.1 s = 2205 samples, 10 ms = 220.5: exercises rounding of window edges
    x = (rng.standard_normal((sr * 5, 2)) * np.linspace(0.01, 0.3, sr * 5)[:, None]).astype(np.float32)
    step = 0.01
    tr = L.loudness_trace(x, sr, step)
    assert tr.step == step and tr.times.size == 500
    np.testing.assert_allclose(np.diff(tr.times), step, atol=1 / sr)
    y = sosfilt(L.k_weighting_sos(sr), x.astype(np.float64), axis=0)
    power = (y**2).sum(axis=1)
    raw = (x.astype(np.float64) ** 2).mean(axis=1)
    for k in (39, 40, 123, 299, 300, 499):
        end = int(round(tr.times[k] * sr))
        for values, win, p, offset in (
            (tr.momentary_lufs, 0.4, power, -0.691),
            (tr.short_term_lufs, 3.0, power, -0.691),
            (tr.rms_dbfs, 0.4, raw, 0.0),
        ):
            start = end - int(round(win * sr))
            if start < 0:
                assert values[k] == -np.inf
            else:
                assert values[k] == pytest.approx(offset + 10 * np.log10(p[start:end].mean()), abs=1e-6)


def test_trace_step_is_configurable():
    x = tones([(-23, 6)], 16000)
    for step in (0.1, 0.025, 0.5):
        tr = L.loudness_trace(x, 16000, step)
        assert tr.times.size == int(round(6 / step))
        assert tr.times[-1] == pytest.approx(6.0)
        np.testing.assert_allclose(tr.short_term_lufs[tr.times >= 3], -23, atol=TOL)
    with pytest.raises(ValueError):
        L.loudness_trace(x, 16000, 0)


def test_measure_agrees_with_the_single_functions(jfk_path):
    clip = load_audio(jfk_path)
    r = L.measure(clip, step=0.05)
    assert r.integrated_lufs == pytest.approx(L.integrated_loudness(clip.samples, clip.sample_rate), abs=1e-9)
    assert r.loudness_range_lu == pytest.approx(L.loudness_range(clip.samples, clip.sample_rate), abs=1e-9)
    assert r.rms_dbfs == pytest.approx(L.rms_dbfs(clip.samples), abs=1e-9)
    assert r.duration_s == pytest.approx(11.0) and r.note is None
    assert r.trace.times.size == 220
    assert L.measure(clip, trace=False).trace is None


def test_span_loudness_is_the_loudness_of_the_slice(jfk_path):
    clip = load_audio(jfk_path)
    sr = clip.sample_rate
    rms, lufs = L.span_loudness(clip, 2.0, 6.5)
    part = clip.samples[2 * sr : int(6.5 * sr)]
    assert rms == pytest.approx(L.rms_dbfs(part), abs=1e-9)
    assert lufs == pytest.approx(L.integrated_loudness(part, sr), abs=1e-9)
    assert L.span_loudness(clip, 10.9, 30.0)[1] is None  # clamped to the end: 0.1 s


@pytest.mark.parametrize("sr", [8000, 11025, 22050, 96000])
def test_other_rates_measure(sr):
    x = tones([(-23, 10)], sr)
    # Below 16 kHz the bilinear warp moves the shelf a little; 1 kHz stays within 0.3 LU.
    assert L.integrated_loudness(x, sr) == pytest.approx(-23.0, abs=0.3 if sr < 16000 else TOL)
    assert L.loudness_range(x, sr) == pytest.approx(0.0, abs=0.05)


def test_resampling_for_the_model_keeps_speech_loudness(jfk_path):
    clip = load_audio(jfk_path)
    mono = clip.samples.mean(axis=1)
    native = L.integrated_loudness(mono, clip.sample_rate)
    at16k = L.integrated_loudness(resample(mono, clip.sample_rate, 16000), 16000)
    assert at16k == pytest.approx(native, abs=0.1)
