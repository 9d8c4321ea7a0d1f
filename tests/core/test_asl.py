"""P.56 method B active speech level on signals whose level and activity are known by construction."""

from __future__ import annotations

import math

import numpy as np
import pytest

from speechint_desktop.core.asl import AslMeter, active_speech_level, asl_dbfs

SR = 16000


def tone(level_dbfs: float, seconds: float, freq: float = 1000.0, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return math.sqrt(2) * 10 ** (level_dbfs / 20) * np.sin(2 * np.pi * freq * t)


def noise(level_dbfs: float, seconds: float, seed: int = 0, sr: int = SR) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal(int(seconds * sr))
    return x / np.sqrt(np.mean(x**2)) * 10 ** (level_dbfs / 20)


def bursts(make, level, on_s, off_s, n, floor_dbfs=None, sr=SR):
    """``n`` bursts of ``on_s`` at ``level`` separated by ``off_s`` of silence (or a quiet floor)."""
    parts = []
    for i in range(n):
        parts.append(make(level, on_s, seed=i) if make is noise else make(level, on_s))
        gap = np.zeros(int(off_s * sr))
        if floor_dbfs is not None:
            gap = noise(floor_dbfs, off_s, seed=100 + i)
        parts.append(gap)
    return np.concatenate(parts)


def test_continuous_tone_is_fully_active_at_its_rms():
    r = active_speech_level(tone(-20.0, 5.0), SR)
    assert r.asl_dbfs == pytest.approx(-20.0, abs=0.05)
    assert r.activity == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize(
    "make,level,on_s,off_s",
    [
        (tone, -20.0, 12.0, 12.0),  # activity 1/2
        (noise, -30.0, 12.0, 36.0),  # activity 1/4
        (noise, -12.0, 30.0, 10.0),  # activity 3/4
        (tone, -45.0, 15.0, 5.0),
    ],
)
def test_bursts_read_their_level_and_activity(make, level, on_s, off_s):
    x = bursts(make, level, on_s, off_s, n=3)
    r = active_speech_level(x, SR)
    on = on_s / (on_s + off_s)
    assert r.asl_dbfs == pytest.approx(level, abs=0.2)
    # each burst adds the hangover (0.2 s) and the envelope's decay to the active time
    assert on <= r.activity <= on + 0.4 / (on_s + off_s) + 1e-3
    assert r.long_term_dbfs == pytest.approx(level + 10 * math.log10(on), abs=0.02)


def test_quiet_floor_between_bursts_is_not_speech():
    """A floor 30 dB down (below the 15.9 dB margin) leaves the level and activity unchanged."""
    x = bursts(noise, -25.0, 10.0, 10.0, n=3, floor_dbfs=-55.0)
    r = active_speech_level(x, SR)
    assert r.asl_dbfs == pytest.approx(-25.0 + 10 * math.log10(1 + 1e-3), abs=0.2)
    assert r.activity == pytest.approx(0.5, abs=0.03)


def test_gain_shifts_the_level_exactly_and_keeps_the_activity():
    x = bursts(noise, -30.0, 3.0, 2.0, n=4)
    a, b = active_speech_level(x, SR), active_speech_level(x * 10 ** (17 / 20), SR)
    assert b.asl_dbfs - a.asl_dbfs == pytest.approx(17.0, abs=0.02)
    assert b.activity == pytest.approx(a.activity, abs=0.005)


def test_streaming_equals_whole_and_stereo_is_the_channel_mean():
    x = bursts(tone, -18.0, 2.0, 1.0, n=3)
    whole = active_speech_level(x, SR)
    m = AslMeter(SR)
    for i in range(0, len(x), 1234):
        m.feed(x[i : i + 1234])
    r = m.finish()
    assert r.asl_dbfs == pytest.approx(whole.asl_dbfs, abs=1e-9)
    assert r.activity == pytest.approx(whole.activity, abs=1e-12)
    st = active_speech_level(np.stack([x, x], axis=1), SR)
    assert st.asl_dbfs == pytest.approx(whole.asl_dbfs, abs=1e-9)


def test_other_rates_and_silence():
    x = bursts(lambda lv, s: tone(lv, s, sr=48000), -22.0, 10.0, 10.0, n=2, sr=48000)
    assert asl_dbfs(x, 48000) == pytest.approx(-22.0, abs=0.2)
    r = active_speech_level(np.zeros(SR), SR)
    assert r.asl_dbfs == -math.inf and r.activity == 0.0


def test_short_pauses_are_bridged_by_the_hangover():
    """Syllable-like bursts: ASL above RMS by the activity factor, which is well below 1."""
    x = bursts(noise, -26.0, 0.4, 0.25, n=30)  # syllable-like bursts: hangover bridges the gaps
    r = active_speech_level(x, SR)
    assert r.activity > 0.9  # 0.25 s gaps are bridged by the 0.2 s hangover and the decay
    assert r.asl_dbfs == pytest.approx(r.long_term_dbfs - 10 * math.log10(r.activity), abs=1e-6)
