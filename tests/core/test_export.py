"""Exports: every format parses back, timestamps are right, files are written atomically."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from speechint_desktop.core import export
from speechint_desktop.core.results import Analysis, Loudness, LoudnessTrace, Segment, Word


def make_analysis(source="/data/talk.wav", predicted=-21.5) -> Analysis:
    trace = LoudnessTrace(
        times=np.array([0.01, 0.02]),
        momentary_lufs=np.array([-np.inf, -20.0]),
        short_term_lufs=np.array([-np.inf, -np.inf]),
        rms_dbfs=np.array([-30.0, -25.0]),
    )
    return Analysis(
        source=source,
        duration_s=3725.5,
        sample_rate=44100,
        channels=2,
        text=" Hello there, friend. General Kenobi. ",
        segments=[
            Segment(0.0, 1.5, " Hello there, friend.", rms_dbfs=-20.0, lufs=-18.0, predicted_intensity=-20.5),
            Segment(3723.25, 3725.5, " General Kenobi.", rms_dbfs=-22.0, lufs=None),
        ],
        loudness=Loudness(-19.0, 6.5, -21.0, -1.2, 3725.5, trace=trace),
        model="tiny.en",
        language="en",
        predicted_intensity=predicted,
        intensity_target="rms_dbfs",
    )


def test_json_has_everything(tmp_path):
    path = export.write(make_analysis(), "json", tmp_path)
    assert path == tmp_path / "talk.json"
    d = json.loads(path.read_text())
    assert d["segments"][1]["start"] == 3723.25
    assert d["loudness"]["trace"]["momentary_lufs"] == [None, -20.0]  # -inf → null, valid JSON
    assert d["predicted_intensity"] == -21.5
    assert d["timings"]["total_s"] == 0.0


def test_srt_and_vtt_timestamps(tmp_path):
    a = make_analysis()
    srt = export.write(a, "srt", tmp_path).read_text()
    assert srt.startswith("1\n00:00:00,000 --> 00:00:01,500\nHello there, friend.\n")
    assert "2\n01:02:03,250 --> 01:02:05,500\nGeneral Kenobi.\n" in srt
    vtt = export.write(a, "vtt", tmp_path).read_text()
    assert vtt.startswith("WEBVTT\n")
    assert "01:02:03.250 --> 01:02:05.500\nGeneral Kenobi." in vtt
    assert export.write(a, "txt", tmp_path).read_text() == "Hello there, friend. General Kenobi.\n"


def test_csv_one_row_per_file(tmp_path):
    a = make_analysis()
    b = make_analysis("/data/other.flac", predicted=None)
    b.intensity_note = "no trained intensity head for this model"
    b.text = 'Quote "this", and, commas'
    path = export.write_csv([a, b], tmp_path / "out" / "summary.csv")
    rows = list(csv.DictReader(path.open()))
    assert [r["source"] for r in rows] == ["/data/talk.wav", "/data/other.flac"]
    assert float(rows[0]["integrated_lufs"]) == -19.0
    assert float(rows[0]["predicted_intensity"]) == -21.5
    assert rows[1]["predicted_intensity"] == ""
    assert rows[1]["intensity_note"] == "no trained intensity head for this model"
    assert rows[1]["text"] == 'Quote "this", and, commas'
    assert list(rows[0]) == list(export.CSV_COLUMNS)


def test_unknown_format_and_no_temp_files_left(tmp_path):
    with pytest.raises(ValueError, match="unknown per-file format"):
        export.write(make_analysis(), "docx", tmp_path)
    export.write(make_analysis(), "json", tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["talk.json"]


def test_output_names_are_distinct():
    assert export.output_names(["a/x.wav", "b/x.wav", "c/x.mp3", "y.flac"]) == ["x", "x_wav", "x_mp3", "y"]


def with_words() -> Analysis:
    """The first segment timed per word (with levels), the second without words."""
    a = make_analysis()
    a.segments[0].words = [
        Word(0.0, 0.42, " Hello", probability=0.98, rms_dbfs=-19.514, max_momentary_lufs=-17.25),
        Word(0.42, 0.9, " there,", probability=0.875, rms_dbfs=None, max_momentary_lufs=None),
        Word(0.9, 1.5, " friend.", probability=None, rms_dbfs=-21.0, max_momentary_lufs=-18.0),
    ]
    a.loudness.speech_integrated_lufs = -24.256
    a.loudness.speech_rms_dbfs = -27.5
    a.loudness.speech_duration_s = 3.75
    a.speech = [(0.0, 1.6), (3723.0, 3725.5)]
    return a


def test_word_cues_in_srt_and_vtt(tmp_path):
    a = with_words()
    srt = export.write(a, "srt", tmp_path, word_cues=True).read_text()
    assert srt == (
        "1\n00:00:00,000 --> 00:00:00,420\nHello\n\n"
        "2\n00:00:00,420 --> 00:00:00,900\nthere,\n\n"
        "3\n00:00:00,900 --> 00:00:01,500\nfriend.\n\n"
        "4\n01:02:03,250 --> 01:02:05,500\nGeneral Kenobi.\n"  # no words: the segment's cue
    )
    vtt = export.render(a, "vtt", word_cues=True)
    assert vtt.startswith(
        "WEBVTT\n\n00:00:00.000 --> 00:00:00.420\nHello\n\n00:00:00.420 --> 00:00:00.900\nthere,\n"
    )
    assert vtt.endswith("01:02:03.250 --> 01:02:05.500\nGeneral Kenobi.\n")
    # Without the option the words change nothing; the other formats ignore it.
    assert export.render(a, "srt") == export.render(make_analysis(), "srt")
    assert export.render(a, "vtt") == export.render(make_analysis(), "vtt")
    assert export.render(a, "txt", word_cues=True) == export.render(a, "txt")
    assert export.render(a, "json", word_cues=True) == export.render(a, "json")


def test_json_carries_words_and_speech():
    d = json.loads(export.to_json(with_words()))
    assert d["segments"][0]["words"][1] == {
        "start": 0.42,
        "end": 0.9,
        "text": " there,",
        "probability": 0.875,
        "rms_dbfs": None,
        "max_momentary_lufs": None,
    }
    assert d["segments"][1]["words"] == []
    assert d["speech"] == [[0.0, 1.6], [3723.0, 3725.5]]
    assert d["loudness"]["speech_integrated_lufs"] == -24.256
    assert Analysis.from_dict(d).segments == with_words().segments


def test_csv_speech_columns(tmp_path):
    rows = list(csv.DictReader(export.write_csv([with_words(), make_analysis()], tmp_path / "s.csv").open()))
    cols = list(rows[0])
    assert cols[cols.index("rms_dbfs") + 1 : cols.index("rms_dbfs") + 3] == [
        "speech_integrated_lufs",
        "speech_rms_dbfs",
    ]
    assert float(rows[0]["speech_integrated_lufs"]) == -24.26
    assert float(rows[0]["speech_rms_dbfs"]) == -27.5
    assert rows[1]["speech_integrated_lufs"] == rows[1]["speech_rms_dbfs"] == ""  # no speech detection


def test_words_csv():
    rows = list(csv.DictReader(io.StringIO(export.to_words_csv(with_words()))))
    assert (
        list(rows[0])
        == list(export.WORDS_CSV_COLUMNS)
        == [
            "source",
            "segment",
            "start",
            "end",
            "text",
            "probability",
            "rms_dbfs",
            "max_momentary_lufs",
            "rms_db_spl",
        ]
    )
    assert [r["text"] for r in rows] == ["Hello", "there,", "friend."]
    assert rows[0] == {
        "source": "/data/talk.wav",
        "segment": "0",
        "start": "0.0",
        "end": "0.42",
        "text": "Hello",
        "probability": "0.98",
        "rms_dbfs": "-19.51",
        "max_momentary_lufs": "-17.25",
        "rms_db_spl": "",  # filled with a calibration
    }
    assert rows[1]["rms_dbfs"] == rows[1]["max_momentary_lufs"] == "" and rows[2]["probability"] == ""
    assert export.to_words_csv(make_analysis()).splitlines() == [",".join(export.WORDS_CSV_COLUMNS)]
    from speechint_desktop.core.calibration import from_offset

    calibrated = with_words()
    calibrated.calibration = from_offset(100.0)
    first = next(csv.DictReader(io.StringIO(export.to_words_csv(calibrated))))
    assert first["rms_db_spl"] == "80.49"


@pytest.mark.parametrize("tp", [None, [np.inf * -1, -3.25]])
def test_streamed_json_equals_dumped_json(tmp_path, tp):
    """The streaming writer (long traces in chunks) gives the same document as ``to_json``,
    extra keys included, for traces longer than one chunk and for none."""
    a = make_analysis(source='/data/odd "trace": null name.wav')
    n = export._CHUNK * 2 + 7
    rng = np.random.default_rng(0)
    m = rng.normal(-23, 5, n)
    m[::1000] = -np.inf
    a.loudness.trace = LoudnessTrace(
        times=np.arange(1, n + 1) * 0.01,
        momentary_lufs=m,
        short_term_lufs=m - 1,
        rms_dbfs=m + 1,
        true_peak_dbtp=None if tp is None else np.resize(np.array(tp), n),
    )
    for traces in (True, False):
        path = export.write_json(a, tmp_path / "x.json", traces=traces, extra={"settings": {"k": 1}})
        got = json.loads(path.read_text())
        want = json.loads(export.to_json(a, traces=traces))
        want["settings"] = {"k": 1}
        assert got == want
        back = Analysis.from_dict(got)
        if traces:
            np.testing.assert_array_equal(back.loudness.trace.momentary_lufs, m)
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]
