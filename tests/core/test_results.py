"""The result dataclasses survive a JSON round trip (exports, saved sessions)."""

from __future__ import annotations

import json

import numpy as np

from speechint_desktop.core.results import Analysis, Loudness, LoudnessTrace, Segment, Timings, Word


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


def test_words_speech_and_speech_loudness_round_trip():
    words = [
        Word(0.0, 0.3, " Hi", probability=0.9, rms_dbfs=-20.5, max_momentary_lufs=-18.0),
        Word(0.3, 0.35, ",", probability=None, rms_dbfs=None, max_momentary_lufs=None),
    ]
    a = Analysis(
        source="x.wav",
        duration_s=2.0,
        sample_rate=16000,
        channels=1,
        text="Hi, there",
        segments=[
            Segment(0.0, 0.35, " Hi,", words=words, avg_logprob=-0.2, no_speech_prob=0.01, temperature=0.0),
            Segment(0.5, 2.0, " there"),
        ],
        loudness=Loudness(
            -20.0,
            None,
            -22.0,
            -3.0,
            2.0,
            speech_integrated_lufs=-19.5,
            speech_rms_dbfs=-21.0,
            speech_duration_s=1.75,
        ),
        model="tiny.en",
        speech=[(0.0, 0.4), (0.45, 2.0)],
        vad=True,
    )
    d = json.loads(json.dumps(a.to_dict()))
    assert d["speech"] == [[0.0, 0.4], [0.45, 2.0]]
    assert d["segments"][0]["words"][0]["text"] == " Hi"
    b = Analysis.from_dict(d)
    assert b == a
    assert isinstance(b.segments[0].words[0], Word) and b.speech == [(0.0, 0.4), (0.45, 2.0)]
    # An export from before words and speech existed still loads, with neither.
    for seg in d["segments"]:
        del seg["words"]
    del d["speech"], d["vad"]
    for key in ("speech_integrated_lufs", "speech_rms_dbfs", "speech_duration_s"):
        del d["loudness"][key]
    old = Analysis.from_dict(d)
    assert old.speech == [] and old.segments[0].words == [] and old.loudness.speech_duration_s is None
