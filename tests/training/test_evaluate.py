"""`speechint evaluate` (per-utterance CSV) and `speechint baseline` (side by side with a head)."""

from __future__ import annotations

import csv
import json

from training.baseline import Ridge, fit_ridge
from training.baseline import main as baseline_main
from training.evaluate import main as evaluate_main


def test_evaluate_writes_per_utterance_csv(tiny_random_dir, demo_corpus, tmp_path, capsys):
    out = tmp_path / "eval.csv"
    rc = evaluate_main(
        [
            "--ckpt",
            str(tiny_random_dir),
            "--dataset",
            str(demo_corpus),
            "--split",
            "train",
            "--output",
            str(out),
            "--batch_size",
            "5",
            "--max_new_tokens",
            "4",
            "--json",
        ]
    )
    assert rc == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out[: captured.out.rindex("}") + 1])
    assert {"wer", "intensity_rmse", "intensity_mae", "intensity_r2", "loss", "asr_loss"} <= set(summary)
    assert summary["intensity_n"] == 10 and summary["wer"] is not None
    assert "untrained" in captured.err  # a random head's numbers are flagged
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 10
    assert set(rows[0]) >= {"reference", "hypothesis", "target", "prediction"}
    with open(demo_corpus / "train" / "metadata.csv", newline="") as f:
        refs = [r["transcription"] for r in csv.DictReader(f)]
    assert [r["reference"] for r in rows] == refs
    assert all(-70 < float(r["target"]) < -10 for r in rows)


def test_evaluate_bad_inputs_are_one_line(tiny_random_dir, tmp_path, capsys):
    assert evaluate_main(["--ckpt", str(tiny_random_dir), "--dataset", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err


def test_ridge_recovers_a_linear_target():
    import numpy as np

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5))
    y = X @ np.array([1.0, -2.0, 0.5, 0.0, 3.0]) + 4.0
    model = fit_ridge(X[:150], y[:150], X[150:], y[150:])
    assert np.abs(model.predict(X[150:]) - y[150:]).max() < 0.05
    assert isinstance(model, Ridge)


def test_baseline_side_by_side_with_a_checkpoint_head(tiny_random_dir, demo_corpus, tmp_path, capsys):
    out = tmp_path / "baseline.json"
    rc = baseline_main(
        [
            "--dataset",
            str(demo_corpus),
            "--train_copies",
            "2",
            "--ckpt",
            str(tiny_random_dir),
            "--output",
            str(out),
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    header = next(line for line in text.splitlines() if "baseline" in line)
    assert "head" in header
    assert any(line.startswith("RMSE") for line in text.splitlines())
    doc = json.loads(out.read_text())
    assert set(doc) >= {"baseline", "head", "alpha"}
    assert doc["baseline"]["n"] == doc["head"]["n"] == 1
    assert doc["baseline"]["rmse"] >= 0


def test_baseline_without_ckpt(demo_corpus, capsys):
    assert baseline_main(["--dataset", str(demo_corpus), "--gain_db", "0"]) == 0
    out = capsys.readouterr().out
    assert "baseline" in out and "head" not in out.splitlines()[1]


def test_the_summary_reads_as_a_table_without_nan():
    import math

    from training.evaluate import EvalResult, format_summary
    from training.metrics import Regression

    res = EvalResult(1.25, 1.0, 0.25, 0.125, Regression(2.5, 2.0, math.nan, 1))
    text = format_summary(res, "lufs", "Evaluation of step-3 on demo (test, 1 utterances)")
    assert "nan" not in text.lower() and "{" not in text
    lines = text.splitlines()
    assert lines[0].startswith("Evaluation of step-3")
    assert any("Word error rate" in line and line.endswith("12.5 %") for line in lines)
    assert any("Intensity RMSE (LUFS)" in line and line.endswith("2.50 LU") for line in lines)
    assert any("R²" in line and "do not vary" in line for line in lines)  # says why, not NaN
    no_wer = format_summary(
        EvalResult(math.nan, None, None, None, Regression(math.nan, math.nan, math.nan, 0))
    )
    assert "not decoded" in no_wer and "nan" not in no_wer.lower()
