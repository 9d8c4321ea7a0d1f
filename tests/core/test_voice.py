"""The voice level: the head's reading checked against the mix's P.56 level (core.voice)."""

from __future__ import annotations

import math

import pytest

from speechint_desktop.core.voice import DEFAULT_TAU_DB, fused_level, tau_from_clean_errors


def test_agreeing_readings_keep_the_meters_exact_level():
    # 0.2 dB apart with tau 0.86: the head is within its own error, the noise cannot matter
    assert fused_level(-20.2, -20.0, 0.86) == pytest.approx(
        -20.0 - 0.2 * (1 - math.exp(-((0.2 / 0.86) ** 2)))
    )
    assert abs(fused_level(-20.2, -20.0, 0.86) - -20.0) < 0.02
    assert fused_level(-31.0, -31.0, 0.86) == -31.0


def test_far_apart_readings_take_the_head():
    # the meter 3 dB above the head: noise has lifted it (0 dB SNR adds about 3 dB)
    assert fused_level(-23.0, -20.0, 0.86) == pytest.approx(-23.0, abs=1e-4)
    assert fused_level(-17.0, -20.0, 0.86) == pytest.approx(-17.0, abs=1e-4)


def test_the_weight_grows_with_the_disagreement_and_moves_with_the_gain():
    out = [fused_level(-20.0 - d, -20.0, 0.8) for d in (0.0, 0.2, 0.4, 0.8, 1.6, 3.2)]
    lifted = [-20.0 - o for o in out]  # how far the result moved from the meter towards the head
    assert all(b >= a for a, b in zip(lifted, lifted[1:], strict=False)), out
    # a gain moves both readings, and the voice level, by exactly the gain
    assert fused_level(-20.7 + 12.0, -20.0 + 12.0, 0.8) == pytest.approx(
        fused_level(-20.7, -20.0, 0.8) + 12.0
    )


def test_missing_numbers():
    assert fused_level(None, -20.0, 0.8) is None
    assert fused_level(float("nan"), -20.0, 0.8) is None
    assert fused_level(-21.0, None, 0.8) == -21.0  # the meter found no active speech
    assert fused_level(-21.0, float("-inf"), 0.8) == -21.0
    assert fused_level(-21.0, -20.0, None) == fused_level(-21.0, -20.0, DEFAULT_TAU_DB)


def test_tau_is_twice_the_heads_clean_rmse():
    assert tau_from_clean_errors([0.3, -0.3, 0.3, -0.3]) == pytest.approx(0.6)
    assert tau_from_clean_errors([]) == DEFAULT_TAU_DB
