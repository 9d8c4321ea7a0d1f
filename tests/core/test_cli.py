"""``speechint`` end to end as a user runs it: a subprocess on real speech plus a broken file."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys

import pytest

from speechint_desktop import cli
from speechint_desktop.core import catalog


def run(*args, timeout=300) -> subprocess.CompletedProcess:
    env = {**os.environ, "SPEECHINT_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "speechint_desktop", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def test_analyze_good_and_broken_file(tiny_en_dir, jfk_path, tmp_path):
    broken = tmp_path / "in" / "broken.wav"
    broken.parent.mkdir()
    broken.write_bytes(b"RIFF\x00\x00garbage" * 10)
    cut = tmp_path / "in" / "jfk_cut.flac"  # a copy cut off mid-file: analysed, and said so
    data = jfk_path.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    out = tmp_path / "results"
    r = run(
        "analyze",
        jfk_path,
        broken,
        cut,
        "--format",
        "json,csv",
        "--format",
        "srt",
        "--format",
        "vtt,txt",
        "--out",
        out,
    )
    assert r.returncode == 1, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "broken.wav" in errors[0], r.stderr
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and re.match(r"warning: jfk_cut.flac: only 5\.\d s of the 11\.0 s", warnings[0])
    assert "Traceback" not in r.stderr
    assert "[transformers]" not in r.stderr, r.stderr  # no library chatter about our own flags
    assert sorted(p.name for p in out.iterdir()) == [
        "jfk.json",
        "jfk.srt",
        "jfk.txt",
        "jfk.vtt",
        "jfk_cut.json",
        "jfk_cut.srt",
        "jfk_cut.txt",
        "jfk_cut.vtt",
        "speechint-results.csv",
    ]
    d = json.loads((out / "jfk.json").read_text())
    assert d.get("audio_note") is None
    assert "country" in d["text"].lower() and d["segments"] and d["loudness"]["trace"]["times"]
    assert d["loudness"]["integrated_lufs"] is not None
    if catalog.head_path("tiny.en") is None:  # no shipped head: measured loudness only, and said so
        assert d["predicted_intensity"] is None and d["intensity_note"]
    else:
        assert isinstance(d["predicted_intensity"], float) and d["intensity_note"] is None
    assert re.match(r"1\n00:00:0\d,\d{3} --> ", (out / "jfk.srt").read_text())
    assert (out / "jfk.vtt").read_text().startswith("WEBVTT")
    rows = list(csv.DictReader((out / "speechint-results.csv").open()))
    rows = {r["source"]: r for r in rows}
    assert sorted(rows) == sorted([str(jfk_path), str(cut)])
    note = rows[str(cut)]["audio_note"]
    assert rows[str(jfk_path)]["audio_note"] == "" and note == warnings[0].split(": ", 2)[2]
    d = json.loads((out / "jfk_cut.json").read_text())
    assert d["audio_note"] == note and 5.3 < d["duration_s"] < 5.6
    assert "fellow americans" in d["text"].lower() and "country" not in d["text"].lower()  # the first half


def test_all_good_exits_zero(tiny_en_dir, ldc_path, tmp_path):
    r = run(
        "analyze",
        ldc_path,
        "--out",
        tmp_path,
        "--model",
        tiny_en_dir,
        "-q",
        "--spl-offset",
        "100",
        "--format",
        "json,csv",
    )
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == ""
    d = json.loads((tmp_path / "LDC93S1.json").read_text())
    assert "greasy" in d["text"].lower()
    # P.56 voice level beside RMS, and the typed-in calibration stated with the dB SPL values
    loud = d["loudness"]
    assert loud["asl_dbfs"] > loud["rms_dbfs"] and 0.5 < loud["asl_activity"] <= 1.0
    assert d["calibration"] == {"spl_offset_db": 100.0, "source": "typed in"}
    assert d["db_spl"]["rms"] == pytest.approx(loud["rms_dbfs"] + 100.0)
    assert d["db_spl"]["voice_asl"] == pytest.approx(loud["asl_dbfs"] + 100.0)
    word = d["segments"][0]["words"][0]
    assert word["rms_db_spl"] == pytest.approx(word["rms_dbfs"] + 100.0)
    row = next(csv.DictReader((tmp_path / "speechint-results.csv").open()))
    assert float(row["rms_db_spl"]) == pytest.approx(loud["rms_dbfs"] + 100.0, abs=0.006)


def test_usage_errors(tmp_path, capsys):
    assert cli.main(["analyze", str(tmp_path)]) == 1  # an empty folder
    assert "no audio files found" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="unknown format 'docx'"):
        cli.main(["analyze", str(tmp_path), "--format", "json,docx"])
    assert (
        cli.main(
            ["analyze", str(tmp_path / "x.wav"), "--model", str(tmp_path / "nope"), "--out", str(tmp_path)]
        )
        == 2
    )
    assert "no such model folder" in capsys.readouterr().err


def test_starts_without_torch():
    code = "import sys; from speechint_desktop import cli; cli.build_parser(); print('torch' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "False"
    v = run("--version", timeout=60)
    assert v.returncode == 0 and v.stdout.strip() == "speechint 0.1.0"


def test_training_commands_forward_their_arguments():
    for command in ("train", "evaluate", "baseline"):
        with pytest.raises(SystemExit) as e:
            cli.main([command, "--help"])
        assert e.value.code == 0


def test_models_commands(tiny_en_dir, capsys):
    assert cli.main(["models", "list"]) == 0
    listing = capsys.readouterr().out
    assert "tiny.en" in listing and "installed" in listing
    assert cli.main(["models", "path", "tiny.en"]) == 0
    assert capsys.readouterr().out.strip() == str(tiny_en_dir)
    assert cli.main(["models", "install", "huge"]) == 1
    assert "unknown model 'huge'" in capsys.readouterr().err


def test_an_unavailable_model_says_why_without_a_progress_bar(capsys):
    assert cli.main(["models", "list"]) == 0
    out = capsys.readouterr().out
    small = out[out.index("small") :]
    assert "unavailable" in small and "openai/whisper-small" in small
    assert cli.main(["models", "install", "small"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "small cannot be installed" in err and "%|" not in err


def test_beam_size_reaches_the_options_and_a_bad_one_is_one_line(capsys):
    """``--beam-size`` sets the first pass's beams (default: ``TranscribeOptions``' 5; 1 is
    greedy); anything but a whole number of at least 1 is refused by argparse in one line."""
    from speechint_desktop.core.options import TranscribeOptions

    parser = cli.build_parser()
    assert (
        cli._transcribe_options(parser.parse_args(["analyze", "a.wav"])).beam_size
        == TranscribeOptions().beam_size
        == 5
    )
    assert cli._transcribe_options(parser.parse_args(["analyze", "a.wav", "--beam-size", "1"])).beam_size == 1
    for bad in ("0", "two"):
        with pytest.raises(SystemExit):
            parser.parse_args(["analyze", "a.wav", "--beam-size", bad])
        assert "--beam-size" in capsys.readouterr().err
    # short windows are read short unless asked not to
    assert cli._transcribe_options(parser.parse_args(["analyze", "a.wav"])).fit_windows is True
    assert (
        cli._transcribe_options(parser.parse_args(["analyze", "a.wav", "--no-fit-windows"])).fit_windows
        is False
    )
