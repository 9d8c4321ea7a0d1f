"""The intensity head shipped for tiny.en: loads with the real model, tracks level on real speech."""

from __future__ import annotations

import json

import numpy as np
import pytest

from speechint_desktop.core.audio import load_audio, to_model_input
from speechint_desktop.core.loudness import rms_dbfs

REPO_HEADS = __import__("pathlib").Path(__file__).resolve().parents[2] / "resources" / "heads"


def test_card_documents_data_target_and_metrics():
    card = json.loads((REPO_HEADS / "tiny.en.json").read_text())
    assert card["model"] == "tiny.en" and card["target"] == "rms_dbfs"
    lo, hi = card["data"]["test_target_range_db"]
    assert hi - lo >= 40.0
    for key in ("rmse", "mae", "r2", "n"):
        assert key in card["test_metrics"] and key in card["baseline_test_metrics"]
    assert card["command"].startswith("python -m training.make_heads")


def test_shipped_head_tracks_level_on_real_speech(tiny_en_dir, ldc_path):
    from transformers import WhisperProcessor

    from speechint_desktop.core import catalog
    from speechint_desktop.core.model import WhisperForASRAndIntensity, load_head
    from training.evaluate import head_predictions

    model = WhisperForASRAndIntensity.from_pretrained(tiny_en_dir).eval()
    head = catalog.head_path("tiny.en")
    assert head is not None
    load_head(model, head)
    assert model.head_trained
    processor = WhisperProcessor.from_pretrained(tiny_en_dir)
    x = to_model_input(load_audio(ldc_path))
    x = x / np.abs(x).max() * 0.5  # a known starting level, then 20 and 40 dB quieter
    clips = [x, x * 0.1, x * 0.01]
    pred = head_predictions(model, processor, clips)
    truth = np.array([rms_dbfs(c) for c in clips])
    assert np.abs(pred - truth).max() < 6.0, (pred, truth)  # real speech, not the synthetic training voices
    assert pred[0] - pred[1] == pytest.approx(20.0, abs=4.0)
    assert pred[1] - pred[2] == pytest.approx(20.0, abs=4.0)
