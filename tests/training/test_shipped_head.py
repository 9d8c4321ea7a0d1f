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


@pytest.fixture(scope="module")
def real_speech_predictions(tiny_en_dir, ldc_path):
    """The shipped head on real speech (TIMIT's LDC93S1) at three known levels, 20 dB apart."""
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
    x = x / np.abs(x).max() * 0.5
    clips = [x, x * 0.1, x * 0.01]
    return head_predictions(model, processor, clips), np.array([rms_dbfs(c) for c in clips])


def test_shipped_head_follows_level_on_real_speech(real_speech_predictions):
    pred, truth = real_speech_predictions
    steps = -np.diff(pred)  # each clip is 20 dB quieter than the one before
    assert (np.abs(steps - 20.0) < 1.5).all(), (pred, truth)


def test_shipped_head_is_within_3_db_on_real_speech(real_speech_predictions):
    """Trained on espeak-ng voices only, it must still read real speech it never saw."""
    pred, truth = real_speech_predictions
    assert np.abs(pred - truth).max() < 3.0, (pred, truth)


def test_shipped_head_beats_the_baseline_on_its_held_out_split():
    card = json.loads((REPO_HEADS / "tiny.en.json").read_text())
    assert card["test_metrics"]["rmse"] <= 1.0
    assert card["test_metrics"]["rmse"] < card["baseline_test_metrics"]["rmse"]
