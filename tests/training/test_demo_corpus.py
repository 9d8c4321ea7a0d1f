"""The espeak-ng demo corpus: audiofolder layout, disjoint splits, known and clip-free levels."""

from __future__ import annotations

import csv

import numpy as np
import soundfile as sf

from speechint_desktop.core.loudness import rms_dbfs, sample_peak_dbfs
from training.demo_corpus import LEVEL_RANGE_DB, main, sentence_bank


def _rows(root, split):
    with open(root / split / "metadata.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_layout_and_disjoint_splits(demo_corpus):
    rows = {s: _rows(demo_corpus, s) for s in ("train", "validation", "test")}
    assert [len(rows[s]) for s in rows] == [10, 1, 1]
    texts = {s: {r["transcription"] for r in rows[s]} for s in rows}
    assert not texts["train"] & texts["validation"] and not texts["train"] & texts["test"]
    assert not texts["validation"] & texts["test"]
    for s, rs in rows.items():
        for r in rs:
            x, sr = sf.read(demo_corpus / s / r["file_name"], dtype="float32")
            assert sr == 16000 and x.ndim == 1 and len(x) > 8000
            assert sample_peak_dbfs(x) <= 0.0
            assert LEVEL_RANGE_DB[0] - 1 <= rms_dbfs(x) <= LEVEL_RANGE_DB[1] + 1


def test_varied_voices_and_sentences(demo_corpus):
    rows = _rows(demo_corpus, "train")
    assert len({r["voice"] for r in rows}) >= 3
    assert len({r["rate"] for r in rows}) >= 2
    assert len(set(sentence_bank(600))) == 600


def test_levels_spread_wide(tmp_path):
    main([str(tmp_path / "c"), "--n", "30", "--seed", "3"])
    levels = [rms_dbfs(sf.read(p, dtype="float32")[0]) for p in sorted((tmp_path / "c").rglob("*.wav"))]
    assert len(levels) == 30
    assert np.ptp(levels) >= 30.0


def test_too_small_is_one_line_error(tmp_path, capsys):
    assert main([str(tmp_path / "c"), "--n", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err
    assert not (tmp_path / "c").exists()
