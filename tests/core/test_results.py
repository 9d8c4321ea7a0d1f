"""The result dataclasses survive a JSON round trip (exports, saved sessions)."""

from __future__ import annotations

import json

import numpy as np

from speechint_desktop.core.results import Analysis, Loudness, LoudnessTrace, Segment, Timings


def test_analysis_json_round_trip_keeps_silence_as_minus_inf():
    trace = LoudnessTrace(
        times=np.array([0.4, 0.41]),
        momentary_lufs=np.array([-np.inf, -23.0]),
        short_term_lufs=np.array([-np.inf, -np.inf]),
        rms_dbfs=np.array([-30.0, -29.5]),
    )
    a = Analysis(
        source="x.wav",
        duration_s=0.41,
        sample_rate=16000,
        channels=1,
        text="hello",
        segments=[Segment(0.0, 0.41, "hello", -30.0, None, -29.0)],
        loudness=Loudness(None, None, -30.0, -12.0, 0.41, note="too short", trace=trace),
        model="tiny.en",
        predicted_intensity=-29.0,
        intensity_target="rms_dbfs",
        timings=Timings(total_s=1.5),
    )
    d = json.loads(json.dumps(a.to_dict()))
    assert d["loudness"]["trace"]["momentary_lufs"] == [None, -23.0]  # JSON has no -inf
    b = Analysis.from_dict(d)
    assert b.segments == a.segments and b.timings == a.timings and b.text == a.text
    assert b.loudness.note == "too short" and b.loudness.integrated_lufs is None
    np.testing.assert_array_equal(b.loudness.trace.momentary_lufs, trace.momentary_lufs)
    np.testing.assert_array_equal(b.loudness.trace.short_term_lufs, trace.short_term_lufs)
