"""Datasets: audiofolder, CSV and JSONL manifests through one path; targets and gain augmentation."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import soundfile as sf

from speechint_desktop.core.audio import AudioError
from speechint_desktop.core.loudness import integrated_loudness, rms_dbfs, sample_peak_dbfs
from training.data import DataError, SpeechIntensityDataset, apply_gain, check_rows, load_rows


def _meta(corpus, split="train"):
    with open(corpus / split / "metadata.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_audiofolder_rms_and_lufs(demo_corpus):
    rows = load_rows(demo_corpus, "train")
    meta = _meta(demo_corpus)
    assert len(rows) == len(meta) and rows[0].text == meta[0]["transcription"]
    assert all(r.intensity is None for r in rows)
    x, _ = sf.read(rows[0].path, dtype="float32")
    e = SpeechIntensityDataset(rows, "rms")[0]
    assert e.target == pytest.approx(rms_dbfs(x), abs=1e-4) and not e.annotated
    e = SpeechIntensityDataset(rows, "lufs")[0]
    assert e.target == pytest.approx(integrated_loudness(x, 16000), abs=1e-4)


def test_csv_and_jsonl_manifests_with_and_without_intensity(demo_corpus, tmp_path):
    meta = _meta(demo_corpus)[:3]
    with open(tmp_path / "m.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["audio", "text", "intensity"])
        for i, r in enumerate(meta):
            w.writerow([str(demo_corpus / "train" / r["file_name"]), r["transcription"], 2.5 + i])
    with open(tmp_path / "m.jsonl", "w") as f:  # relative paths resolve against the manifest
        (tmp_path / "audio").mkdir()
        for r in meta:
            (tmp_path / "audio" / r["file_name"]).write_bytes(
                (demo_corpus / "train" / r["file_name"]).read_bytes()
            )
            f.write(json.dumps({"audio": f"audio/{r['file_name']}", "text": r["transcription"]}) + "\n")

    rated = load_rows(tmp_path / "m.csv", "train")
    assert [r.intensity for r in rated] == [2.5, 3.5, 4.5]
    ds = SpeechIntensityDataset(rated, "rms", gain_range_db=(-20, 20))
    e = ds[1]  # a human rating is used as is and never shifted by gain
    assert e.annotated and e.target == 3.5 and e.gain_db == 0.0

    plain = load_rows(tmp_path / "m.jsonl", "test")
    assert [r.intensity for r in plain] == [None] * 3
    x, _ = sf.read(tmp_path / "audio" / meta[2]["file_name"], dtype="float32")
    assert SpeechIntensityDataset(plain, "rms")[2].target == pytest.approx(rms_dbfs(x), abs=1e-4)

    # a manifest per split inside a folder: DIR/<split>.jsonl
    (tmp_path / "test.jsonl").write_text((tmp_path / "m.jsonl").read_text())
    assert len(load_rows(tmp_path, "test")) == 3


def test_gain_augmentation_shifts_target_exactly_and_never_clips(demo_corpus):
    rows = load_rows(demo_corpus, "train")
    ds = SpeechIntensityDataset(rows, "rms", gain_range_db=(-20, 20), seed=1)
    base = SpeechIntensityDataset(rows, "rms")
    gains = []
    for epoch in range(3):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            e, b = ds[i], base[i]
            gains.append(e.gain_db)
            assert e.target == pytest.approx(b.target + e.gain_db, abs=1e-6)
            assert e.target == pytest.approx(rms_dbfs(e.audio), abs=1e-3)  # the label is the audio's level
            assert sample_peak_dbfs(e.audio) <= 1e-6
            assert np.abs(e.audio).max() <= 1.0
    assert min(gains) < -10 and max(gains) > 5  # a wide range is used
    ds.set_epoch(0)
    assert ds[3].gain_db == gains[3]  # deterministic per (seed, epoch, index): resuming sees the same audio


def test_apply_gain_limits_positive_gain_at_full_scale():
    x = np.array([0.5, -0.25, 0.1], dtype=np.float32)
    y, target, g = apply_gain(x, -10.0, 20.0)
    assert g == pytest.approx(6.0206, abs=1e-3)  # limited to bring the peak to 0 dBFS
    assert target == pytest.approx(-10.0 + g)
    assert np.abs(y).max() == pytest.approx(1.0, abs=1e-6)


def test_bad_inputs_give_one_line_errors(demo_corpus, tmp_path):
    with pytest.raises(DataError, match="no split 'nope'"):
        load_rows(demo_corpus, "nope")
    with pytest.raises(DataError, match="no such folder"):
        load_rows(tmp_path / "missing", "train")
    (tmp_path / "broken.wav").write_bytes(b"not audio")
    sf.write(tmp_path / "silent.wav", np.zeros(16000, np.float32), 16000)
    good = demo_corpus / "train" / _meta(demo_corpus)[0]["file_name"]
    (tmp_path / "m.csv").write_text(f"audio,text\nbroken.wav,x\nsilent.wav,y\n{good},z\n")
    ds = SpeechIntensityDataset(load_rows(tmp_path / "m.csv", "train"), "rms")
    with pytest.raises(AudioError):
        ds[0]
    skipped = []
    check_rows(ds, skipped.append)
    assert len(ds) == 1 and len(skipped) == 2
    assert all("\n" not in s and s.startswith("skipped: ") for s in skipped)
    (tmp_path / "bad.csv").write_text("audio,text,intensity\nsilent.wav,y,loud\n")
    with pytest.raises(DataError, match="not a number"):
        load_rows(tmp_path / "bad.csv", "train")
