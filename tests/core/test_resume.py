"""Batches that survive a kill: ``speechint analyze … --resume`` and the CSV kept current.

The slow test is issue 9's must-show: ``kill -9`` in the middle of a 50-file batch of real
speech on the real tiny.en, then the same command with ``--resume``.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from speechint_desktop import cli
from speechint_desktop.core import export
from speechint_desktop.core.batch import CSV_NAME, RECORD_DIR, Batch, settings
from speechint_desktop.core.options import TranscribeOptions
from speechint_desktop.core.results import Analysis, Loudness, Segment, Word
from tests.conftest import espeak, kill_mid_write

DEFAULTS = settings("tiny.en", "auto", None, TranscribeOptions())  # what the CLI's defaults give


def _wav(path, seed: int, seconds: float = 1.0):
    rng = np.random.default_rng(seed)
    sf.write(path, (0.05 * rng.standard_normal(int(16000 * seconds))).astype(np.float32), 16000)
    return path


def _analysis(path, text: str = "hello there") -> Analysis:
    """A made-up result (no model needed): the batch logic only reads and writes it."""
    words = [Word(0.1, 0.4, " hello", 0.9), Word(0.45, 0.9, " there", 0.8)]
    return Analysis(
        source=str(path),
        duration_s=1.0,
        sample_rate=16000,
        channels=1,
        text=text,
        segments=[Segment(0.1, 0.9, text, -26.0, -25.0, words=words)],
        loudness=Loudness(-25.0, 1.5, -26.0, -12.0, 1.0),
        model="tiny.en",
    )


def _rows(out):
    with open(out / CSV_NAME, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == export.CSV_COLUMNS
        rows = list(reader)
    for r in rows:  # complete rows only: a torn write would leave a short or unparsable one
        assert None not in r and all(v is not None for v in r.values()), r
        assert all(isinstance(float(r[k]), float) for k in ("duration_s", "integrated_lufs", "rms_dbfs"))
    return rows


def test_done_means_a_valid_record_of_this_file_made_with_these_settings(tmp_path):
    src = [_wav(tmp_path / f"{n}.wav", i) for i, n in enumerate("abc")]
    out = tmp_path / "out"
    first = Batch(src, out, ["json", "csv"], DEFAULTS)
    for p in src:
        first.finish(_analysis(p))
    assert [r["source"] for r in _rows(out)] == [str(p) for p in src]

    again = Batch(src, out, ["json", "csv"], DEFAULTS)
    a, why = again.check(src[0])
    assert why == "done" and a.text == "hello there" and a.segments[0].words[1].text == " there"

    (out / "a.json").write_text((out / "a.json").read_text()[:500])  # torn by hand
    assert again.check(src[0]) == (None, "unreadable result")
    (out / "a.json").write_text('{"text": "no loudness"}')
    assert again.check(src[0]) == (None, "unreadable result")

    other_model = Batch(src, out, ["json"], settings("base", "auto", None, TranscribeOptions()))
    assert other_model.check(src[1]) == (None, "made with other settings: model")
    no_vad = Batch(src, out, ["json"], settings("tiny.en", "auto", None, TranscribeOptions(vad=False)))
    assert no_vad.check(src[1]) == (None, "made with other settings: options.vad")
    int8 = Batch(src, out, ["json"], settings("tiny.en", "int8", None, TranscribeOptions()))
    assert int8.check(src[1])[0] is None

    _wav(src[2], seed=99, seconds=1.5)  # re-recorded since
    assert again.check(src[2]) == (None, "source changed since")

    moved = tmp_path / "elsewhere"
    moved.mkdir()
    (moved / "b.wav").write_bytes(src[1].read_bytes())
    assert "another file" in Batch([moved / "b.wav"], out, ["json"], DEFAULTS).check(moved / "b.wav")[1]

    # a result written before results carried their settings is analysed again
    (out / "b.json").write_text(export.to_json(_analysis(src[1])))
    assert again.check(src[1]) == (None, "result without settings")


def test_csv_only_batches_keep_a_small_hidden_record(tmp_path):
    src = [_wav(tmp_path / "a.wav", 1)]
    out = tmp_path / "out"
    Batch(src, out, ["csv"], DEFAULTS).finish(_analysis(src[0]))
    assert sorted(p.name for p in out.iterdir()) == [RECORD_DIR, CSV_NAME]
    record = json.loads((out / RECORD_DIR / "a.json").read_text())
    assert record["loudness"]["trace"] is None and record["settings"] == DEFAULTS
    assert Batch(src, out, ["csv", "srt"], DEFAULTS).check(src[0])[1] == "done"
    # the hidden record has no traces, so it cannot stand in for an asked-for JSON
    assert Batch(src, out, ["json"], DEFAULTS).check(src[0]) == (None, "no result")


def test_a_killed_writers_temporaries_are_removed_at_the_runs_end(tmp_path):
    """``kill -9`` (or a lost cluster node) mid-write leaves the writer's temporary file; its
    retry writes under a new name, so the batch removes its own outputs' leftovers at the end."""
    src = [_wav(tmp_path / "a.wav", 1), _wav(tmp_path / "b.wav", 2)]
    out = tmp_path / "out"
    for target in (out / "a.srt", out / RECORD_DIR / "b.json", out / "notes.txt"):
        kill_mid_write(target)
    mine = [p.name for p in out.glob(".a.srt.*.tmp")] + [
        p.name for p in (out / RECORD_DIR).glob(".b.json.*.tmp")
    ]
    assert len(mine) == 2  # what the kills left
    (out / ".a.srt.tmp").write_text("the user's")  # not a temporary's name: kept
    batch = Batch(src, out, ["srt", "csv"], DEFAULTS)
    batch.finish(_analysis(src[0]))
    assert batch.remove_leftovers() == 2
    assert not list(out.glob(".a.srt.*.tmp")) and not list((out / RECORD_DIR).glob(".*.tmp"))
    assert len(list(out.glob(".notes.txt.*.tmp"))) == 1  # not this batch's output: not touched
    assert (out / ".a.srt.tmp").read_text() == "the user's" and (out / "a.srt").is_file()


def test_resume_of_a_finished_batch_loads_no_model_and_renders_what_is_missing(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    src = [_wav(tmp_path / "in" / f"{i:02d}.wav", i) for i in range(3)]
    out = tmp_path / "out"
    batch = Batch(src, out, ["json"], DEFAULTS)
    for p in src:
        batch.finish(_analysis(p, text=f"file {p.stem}"))
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("*.json")}
    (out / "01.srt").write_text("stale\n")

    argv = ["analyze", str(tmp_path / "in"), "--out", str(out), "--format", "json,srt,csv", "--resume"]
    assert cli.main(argv) == 0
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if line.startswith("skip:")] == [
        "skip: 00.wav (done)",
        "skip: 01.wav (done)",
        "skip: 02.wav (done)",
    ]
    assert "loading" not in err and "0 analysed, 0 failed, 3 already done" in err
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.json")} == mtimes
    assert (out / "01.srt").read_text().startswith("1\n00:00:00,100 --> 00:00:00,900\nfile 01")
    assert [(r["source"], r["text"]) for r in _rows(out)] == [(str(p), f"file {p.stem}") for p in src]

    argv += ["--word-cues", "-q"]  # a per-file format that changed is rendered again, quietly
    assert cli.main(argv) == 0
    assert capsys.readouterr().err == ""
    assert "00:00:00,450 --> 00:00:00,900\nthere" in (out / "01.srt").read_text()


def _speech_files(folder, n: int = 50) -> list:
    """``n`` short files of real speech: LDC93S1 at many gains, every tenth an espeak-ng clip."""
    from tests.conftest import SHARED_AUDIO

    folder.mkdir()
    x, sr = sf.read(SHARED_AUDIO / "LDC93S1.wav", dtype="float32")  # peak −21 dBFS
    sentences = [
        "Please call Stella and ask her to bring these things.",
        "The birch canoe slid on the smooth planks.",
        "Glue the sheet to the dark blue background.",
        "It is easy to tell the depth of a well.",
        "These days a chicken leg is a rare dish.",
    ]
    files = []
    for i in range(n):
        path = folder / f"{i:02d}.wav"
        if i % 10 == 9:
            espeak(sentences[i // 10 % len(sentences)], path, wpm=170, pitch=30 + 5 * (i // 10))
        else:
            gain_db = -12 + (7 * i) % 31
            sf.write(path, x * np.float32(10 ** (gain_db / 20)), sr, subtype="PCM_16")
        files.append(path)
    return files


@pytest.mark.slow
def test_kill_9_mid_batch_then_resume(tiny_en_dir, tmp_path):
    files = _speech_files(tmp_path / "in")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "speechint_desktop", "analyze", str(tmp_path / "in")]
    # the engine decodes consecutive short files together, in groups of about --batch-size windows
    # of speech, and writes a group's results as it finishes: 1 keeps a group to ~10 of these files,
    # so the kill lands mid-batch
    cmd += ["--format", "json,csv", "--out", str(out), "--batch-size", "1"]
    env = {**os.environ, "SPEECHINT_THREADS": "1"}
    t0 = time.monotonic()
    with open(tmp_path / "first.log", "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 300
        while len(list(out.glob("*.json"))) < 15:
            assert proc.poll() is None, (tmp_path / "first.log").read_text()
            assert time.monotonic() < deadline, "the batch made too little progress"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    t_kill = time.monotonic() - t0
    killed_at = time.time_ns()

    done = sorted(out.glob("*.json"))
    n_done = len(done)
    assert 15 <= n_done < len(files)
    assert [p.stem for p in done] == [f.stem for f in files[:n_done]]  # in input order
    rows = _rows(out)  # valid: complete rows only, all of them finished files
    assert [r["source"] for r in rows] == [str(f) for f in files[: len(rows)]]
    assert n_done - 1 <= len(rows) <= n_done  # at most the file being written is not yet listed
    n_rows = len(rows)
    mtimes = {p.name: p.stat().st_mtime_ns for p in done}

    t1 = time.monotonic()
    r = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, timeout=600, env=env)
    t_resume = time.monotonic() - t1
    assert r.returncode == 0, r.stderr
    skips = [line for line in r.stderr.splitlines() if line.startswith("skip:")]
    if n_done > 20:
        assert skips == [f"skip: {n_done} files (done)"]
    else:
        assert skips == [f"skip: {f.name} (done)" for f in files[:n_done]]
    assert f"{len(files) - n_done} analysed, 0 failed, {n_done} already done" in r.stderr, r.stderr
    assert "redo:" not in r.stderr and "Traceback" not in r.stderr

    results = sorted(out.glob("*.json"))
    assert [p.stem for p in results] == [f.stem for f in files]
    for p in results:  # the finished files untouched; each of the rest analysed (once) after the kill
        if p.name in mtimes:
            assert p.stat().st_mtime_ns == mtimes[p.name], p
        else:
            assert p.stat().st_mtime_ns > killed_at, p
        assert json.loads(p.read_text())["source"] == str(files[int(p.stem)])
    rows = _rows(out)
    assert [r["source"] for r in rows] == [str(f) for f in files]
    assert not [p.name for p in out.rglob(".*.tmp")]  # the kill's half-written temporary removed
    for r, f in zip(rows, files, strict=True):  # each row is its own file's (the text is the decoder's)
        x, _ = sf.read(f, dtype="float64")
        assert float(r["rms_dbfs"]) == pytest.approx(10 * np.log10(np.mean(x**2)), abs=0.02), r
        assert r["model"] == "tiny.en"
    print(f"\nkilled after {t_kill:.1f} s with {n_done} done ({n_rows} CSV rows); resume {t_resume:.1f} s")
