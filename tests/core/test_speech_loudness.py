"""Speech-only ("dialogue") loudness and per-word levels, checked against direct computations.

The speech test builds a programme from real utterances at a known loudness with loud real
noise bursts between them, so the speech regions are known by construction; the word tests use
1 kHz tone bursts whose RMS and momentary loudness are known in closed form.
"""

from __future__ import annotations

import math

import numpy as np
import pyloudnorm
import pytest
from scipy.signal import sosfilt

from speechint_desktop.core import loudness as L
from speechint_desktop.core.audio import as_clip, load_audio, resample
from speechint_desktop.core.results import Word
from tests.conftest import SHARED_AUDIO, sine

SPEECH_FILES = ["sep_source1_0", "sep_source2_1", "sep_source1_2", "sep_source2_3"]
NOISE_FILES = ["noise2", "noise3", "noise4", "noise5"]
SPEECH_LUFS = -26.0
NOISE_LUFS = -10.0
GAP_S = 0.4  # silence either side of an utterance
PAD_S = 0.2  # the speech regions reach this far into the silence, as a padded VAD's do
BURST_S = 1.5


def _gain_to(x: np.ndarray, sr: int, target: float) -> np.ndarray:
    return x * np.float32(10 ** ((target - L.integrated_loudness(x, sr)) / 20))


def _programme(sr: int, channels: int):
    """(programme, speech alone, speech regions in s): utterances at −26 LUFS between −10 LUFS
    noise bursts, each utterance with 0.4 s of silence either side."""
    paths = [SHARED_AUDIO / "extra" / "speech" / f"{n}.wav" for n in SPEECH_FILES] + [
        SHARED_AUDIO / "LDC93S1.wav"
    ]
    utterances = [load_audio(p).samples[:, 0] for p in paths]
    noises = [load_audio(SHARED_AUDIO / "extra" / "noise" / f"{n}.wav").samples[:, 0] for n in NOISE_FILES]
    if sr != 16000:
        utterances = [resample(u, 16000, sr) for u in utterances]
        noises = [resample(z, 16000, sr) for z in noises]
    dual = lambda x: np.repeat(np.asarray(x, np.float32)[:, None], channels, axis=1)  # noqa: E731
    speech_alone = dual(np.concatenate(utterances))
    gain = np.float32(10 ** ((SPEECH_LUFS - L.integrated_loudness(speech_alone, sr)) / 20))
    speech_alone = speech_alone * gain
    bursts = [_gain_to(dual(z[: int(BURST_S * sr)]), sr, NOISE_LUFS) for z in noises]
    silence = np.zeros((int(GAP_S * sr), channels), np.float32)
    pieces, regions, t = [bursts[0]], [], BURST_S
    for i, u in enumerate(utterances):
        u = dual(u) * gain
        start = t + GAP_S
        pieces += [silence, u, silence, bursts[(i + 1) % len(bursts)]]
        regions.append((start - PAD_S, start + u.shape[0] / sr + PAD_S))
        t = start + u.shape[0] / sr + GAP_S + BURST_S
    return np.concatenate(pieces), speech_alone, regions


@pytest.mark.parametrize(("sr", "channels"), [(16000, 1), (48000, 2)])
def test_speech_loudness_ignores_loud_noise_between_utterances(sr, channels):
    x, speech_alone, regions = _programme(sr, channels)
    clip = as_clip(x, sr)
    r = L.measure(clip, speech=regions)
    alone = L.integrated_loudness(speech_alone, sr)
    assert alone == pytest.approx(SPEECH_LUFS, abs=1e-6)
    reference = pyloudnorm.Meter(sr, filter_class="DeMan").integrated_loudness(
        speech_alone.astype(np.float64)
    )
    assert reference == pytest.approx(alone, abs=0.1)
    assert r.speech_integrated_lufs == pytest.approx(alone, abs=0.5)
    assert r.speech_integrated_lufs == pytest.approx(reference, abs=0.5)
    assert r.integrated_lufs > r.speech_integrated_lufs + 8  # the programme counts the noise
    # Speech RMS: the mean square over exactly the samples of the regions.
    inside = np.concatenate([x[int(round(a * sr)) : int(round(b * sr))] for a, b in regions])
    assert r.speech_rms_dbfs == pytest.approx(L.rms_dbfs(inside), abs=1e-6)
    assert r.rms_dbfs > r.speech_rms_dbfs + 8
    assert r.speech_duration_s == pytest.approx(sum(b - a for a, b in regions), abs=len(regions) / sr)
    # The programme values are exactly what they are without speech regions.
    plain = L.measure(clip)
    assert (plain.integrated_lufs, plain.loudness_range_lu, plain.rms_dbfs) == (
        r.integrated_lufs,
        r.loudness_range_lu,
        r.rms_dbfs,
    )
    np.testing.assert_array_equal(plain.trace.momentary_lufs, r.trace.momentary_lufs)


def test_no_speech_regions():
    clip = as_clip(sine(1000, 5, 16000, -20), 16000)
    plain = L.measure(clip)
    assert (plain.speech_integrated_lufs, plain.speech_rms_dbfs, plain.speech_duration_s) == (
        None,
        None,
        None,
    )
    empty = L.measure(clip, speech=[])
    assert (empty.speech_integrated_lufs, empty.speech_rms_dbfs, empty.speech_duration_s) == (None, None, 0.0)
    assert empty.integrated_lufs == plain.integrated_lufs
    # Regions wholly outside the clip, reversed or empty are no speech either.
    none = L.measure(clip, speech=[(6.0, 9.0), (2.0, 1.0), (3.0, 3.0)], trace=False)
    assert (none.speech_integrated_lufs, none.speech_rms_dbfs, none.speech_duration_s) == (None, None, 0.0)
    # Speech that is digital silence has no level (not -inf).
    quiet = as_clip(np.concatenate([np.zeros((16000, 1), np.float32), sine(1000, 2, 16000, -20)]), 16000)
    silent = L.measure(quiet, speech=[(0.0, 1.0)])
    assert (silent.speech_integrated_lufs, silent.speech_rms_dbfs) == (None, None)
    assert silent.speech_duration_s == pytest.approx(1.0)


def test_speech_over_the_whole_clip_is_the_programme(jfk_path):
    clip = load_audio(jfk_path)
    r = L.measure(clip, trace=False, speech=[(0.0, clip.duration_s)])
    assert r.speech_integrated_lufs == pytest.approx(r.integrated_lufs, abs=1e-9)
    assert r.speech_rms_dbfs == pytest.approx(r.rms_dbfs, abs=1e-9)
    assert r.speech_duration_s == pytest.approx(clip.duration_s)


def test_overlapping_regions_are_merged(jfk_path):
    clip = load_audio(jfk_path)
    sr = clip.sample_rate
    r = L.measure(clip, trace=False, speech=[(2.0, 4.0), (1.0, 2.5), (4.0, 6.0), (8.0, 7.0)])
    one = L.measure(clip, trace=False, speech=[(1.0, 6.0)])
    assert r.speech_duration_s == pytest.approx(5.0)
    assert r.speech_integrated_lufs == pytest.approx(one.speech_integrated_lufs, abs=1e-9)
    assert r.speech_rms_dbfs == pytest.approx(L.rms_dbfs(clip.samples[sr : 6 * sr]), abs=1e-9)


def _gated(power: np.ndarray) -> float:
    """BS.1770 two-stage gating, written out."""
    lufs = -0.691 + 10 * np.log10(power)
    kept = power[lufs > -70]
    rel = -0.691 + 10 * np.log10(kept.mean()) - 10
    return float(-0.691 + 10 * np.log10(power[(lufs > -70) & (lufs > rel)].mean()))


def test_speech_loudness_is_the_loudness_of_the_muted_track():
    """Speech-only loudness equals BS.1770 gating of the K-weighted signal muted outside the
    regions, computed the slow way (a filter over the whole signal, then a loop over blocks)."""
    sr = 16000
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((sr * 6, 1)) * np.linspace(0.02, 0.3, sr * 6)[:, None]).astype(np.float32)
    clip = as_clip(x, sr)
    for regions in ([(1.05, 2.0)], [(3.0, 3.3)], [(1.05, 2.0), (3.0, 3.3), (4.2, 5.9)], [(0.0, 6.0)]):
        y = sosfilt(L.k_weighting_sos(sr), x[:, 0].astype(np.float64))
        keep = np.zeros(len(y), bool)
        for a, b in regions:
            keep[int(round(a * sr)) : int(round(b * sr))] = True
        y[~keep] = 0.0  # the K-weighted speech track, muted outside speech
        starts = np.arange(0, 6 * sr - int(0.4 * sr) + 1, int(0.1 * sr))
        power = np.array([(y[s : s + int(0.4 * sr)] ** 2).mean() for s in starts])
        r = L.measure(clip, trace=False, speech=regions)
        assert r.speech_integrated_lufs == pytest.approx(_gated(power[power > 0]), abs=1e-6), regions
    r = L.measure(clip, trace=False, speech=[(4.0, 4.15)])
    assert r.speech_rms_dbfs == pytest.approx(L.rms_dbfs(x[4 * sr : int(4.15 * sr)]), abs=1e-6)
    assert r.speech_duration_s == pytest.approx(0.15)


# --- word levels -------------------------------------------------------------------------------


def _burst(sr: int, channels: int = 1, dbfs: float = -20.0) -> np.ndarray:
    """3 s: digital silence, a 1 kHz tone at ``dbfs`` peak from 1.0 s to 1.6 s, silence."""
    return np.concatenate(
        [
            np.zeros((sr, channels), np.float32),
            sine(1000, 0.6, sr, dbfs, channels),
            np.zeros((sr * 7 // 5, channels), np.float32),
        ]
    )


@pytest.mark.parametrize(("sr", "channels"), [(16000, 1), (48000, 2)])
def test_word_levels_of_a_tone_burst(sr, channels):
    clip = as_clip(_burst(sr, channels), sr)
    trace = L.measure(clip).trace
    # A 1 kHz sine at -20 dBFS peak: RMS -23.01 dBFS; momentary -20 LUFS in stereo, 3.01 less in mono.
    rms_expected = -20 - 10 * math.log10(2)
    momentary_expected = -20.0 if channels == 2 else rms_expected
    rms, mom = L.word_levels(clip, trace, 1.0, 1.6)
    assert rms == pytest.approx(rms_expected, abs=0.05)
    assert mom == pytest.approx(momentary_expected, abs=0.1)
    # A span shorter than a trace step (5 ms) inside the tone: its samples and the nearest window.
    rms, mom = L.word_levels(clip, trace, 1.4, 1.405)
    assert rms == pytest.approx(rms_expected, abs=0.05)
    assert mom == pytest.approx(float(np.max(trace.momentary_lufs)), abs=0.5)
    # A span of silence with no full window touching the tone: no values. Before 0.2 s: no full window.
    assert L.word_levels(clip, trace, 2.5, 2.8) == (None, None)
    assert L.word_levels(clip, trace, 0.0, 0.15)[1] is None
    assert L.word_levels(clip, trace, 1.2, 1.2)[0] is None  # no samples
    assert L.word_levels(clip, None, 1.0, 1.6)[1] is None  # no trace: RMS only
    assert L.word_levels(clip, None, 1.0, 1.6)[0] == pytest.approx(rms_expected, abs=0.05)


def test_word_levels_with_a_coarse_trace():
    sr = 16000
    clip = as_clip(_burst(sr), sr)
    trace = L.measure(clip, step=0.1).trace
    # 30 ms word between two trace steps takes the nearest window (centre 1.3 s: end 1.5 s).
    rms, mom = L.word_levels(clip, trace, 1.31, 1.34)
    k = int(np.argmin(np.abs(trace.times - 0.2 - 1.325)))
    assert mom == pytest.approx(float(trace.momentary_lufs[k]), abs=1e-12)
    assert rms == pytest.approx(-20 - 10 * math.log10(2), abs=0.05)


def test_span_levels_equals_the_loop_and_brute_force(jfk_path):
    clip = load_audio(jfk_path)  # 44.1 kHz stereo
    sr = clip.sample_rate
    trace = L.measure(clip).trace
    rng = np.random.default_rng(7)
    starts = rng.uniform(-0.1, 11.0, 400)
    ends = starts + rng.choice([0.0, 0.004, 0.03, 0.25, 0.8, 3.0], 400)
    rms, mom = L.span_levels(clip, trace, starts, ends)
    assert rms.shape == mom.shape == (400,)
    centres = trace.times - 0.2
    for i, (a, b) in enumerate(zip(starts, ends, strict=True)):
        if i % 10 == 0:  # one span at a time gives the same (each call is a pass over the clip)
            r, m = L.word_levels(clip, trace, a, b)
            assert (np.nan if r is None else r) == pytest.approx(rms[i], abs=1e-9, nan_ok=True)
            assert (np.nan if m is None else m) == pytest.approx(mom[i], abs=1e-9, nan_ok=True)
        i0, i1 = max(0, round(a * sr)), min(clip.samples.shape[0], round(b * sr))
        if i1 > i0:
            assert rms[i] == pytest.approx(L.rms_dbfs(clip.samples[i0:i1]), abs=1e-6)
            if i % 10 == 0:  # the same samples as a segment's span
                assert rms[i] == pytest.approx(L.span_loudness(clip, a, b)[0], abs=1e-6)
        else:
            assert np.isnan(rms[i])
        inside = (centres >= a - 1e-9) & (centres <= b + 1e-9)
        expected = (
            trace.momentary_lufs[inside].max()
            if inside.any()
            else trace.momentary_lufs[np.argmin(np.abs(centres - (a + b) / 2))]
        )
        assert (expected if np.isfinite(expected) else np.nan) == pytest.approx(
            mom[i], abs=1e-12, nan_ok=True
        )


def test_fill_word_levels_sets_every_word():
    sr = 16000
    clip = as_clip(_burst(sr), sr)
    trace = L.measure(clip).trace
    words = [Word(1.0, 1.6, " tone"), Word(2.5, 2.8, " hush"), Word(1.4, 1.405, " blip", probability=0.5)]
    L.fill_word_levels(clip, trace, words)
    assert words[0].rms_dbfs == pytest.approx(-23.01, abs=0.05)
    assert words[0].max_momentary_lufs == pytest.approx(-23.01, abs=0.1)
    assert words[1].rms_dbfs is None and words[1].max_momentary_lufs is None
    assert isinstance(words[2].rms_dbfs, float) and words[2].probability == 0.5
    L.fill_word_levels(clip, trace, [])  # nothing to do


def test_span_levels_of_an_hour_is_fast():
    """Ten thousand words over an hour: one raw-power pass, no per-word work beyond indexing."""
    import time

    sr = 16000
    x = np.random.default_rng(0).standard_normal(3600 * sr, dtype=np.float32) * np.float32(0.05)
    clip = as_clip(x, sr)
    trace = L.measure(clip, step=0.1).trace
    starts = np.sort(np.random.default_rng(1).uniform(0, 3600, 10_000))
    t0 = time.perf_counter()
    rms, mom = L.span_levels(clip, trace, starts, starts + 0.3)
    assert time.perf_counter() - t0 < 5.0
    assert np.isfinite(rms).all() and np.isfinite(mom).all()
