"""Whisper-style labels, the metrics log and the pickle-free optimizer checkpoint."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from training.checkpoint import _join_state, _split_state
from training.collate import IGNORE_INDEX, Collator, model_inputs
from training.data import Example
from training.metrics import MetricsLog, read_metrics, regression


@pytest.fixture(scope="module")
def tiny(tiny_random_dir):
    from transformers import WhisperProcessor

    from speechint_desktop.core.model import WhisperForASRAndIntensity

    return WhisperForASRAndIntensity.from_pretrained(tiny_random_dir), WhisperProcessor.from_pretrained(
        tiny_random_dir
    )


def test_labels_are_built_the_way_whisper_expects(tiny):
    model, processor = tiny
    tok = processor.tokenizer
    batch = Collator(processor, model.config.decoder_start_token_id)(
        [
            Example("a", np.zeros(16000, np.float32), "Hello there.", -30.0),
            Example("b", np.zeros(48000, np.float32), "A much longer sentence than the first one.", -20.0),
        ]
    )
    labels = batch["labels"]
    sot = model.config.decoder_start_token_id
    assert tok.convert_ids_to_tokens(sot) == "<|startoftranscript|>"
    # the start token is left to the model (it shifts labels right and inserts it)
    assert (labels[:, 0] != sot).all()
    assert tok.convert_ids_to_tokens(int(labels[0, 0])) == "<|notimestamps|>"
    n0 = int((labels[0] != IGNORE_INDEX).sum())
    assert int(labels[0, n0 - 1]) == tok.eos_token_id and (labels[0, n0:] == IGNORE_INDEX).all()
    assert (labels[1] != IGNORE_INDEX).all() and int(labels[1, -1]) == tok.eos_token_id
    assert tok.decode(labels[1][labels[1] != IGNORE_INDEX], skip_special_tokens=True).strip() == (
        "A much longer sentence than the first one."
    )
    # what the decoder sees: <|startoftranscript|><|notimestamps|> text ..., as at inference
    from transformers.models.whisper.modeling_whisper import shift_tokens_right

    dec = shift_tokens_right(labels, model.config.pad_token_id, sot)
    assert dec[1, :2].tolist() == tok.convert_tokens_to_ids(["<|startoftranscript|>", "<|notimestamps|>"])
    assert batch["encoder_frames"].tolist() == [50, 150]
    assert batch["input_features"].shape == (2, 80, 3000)
    out = model(**model_inputs(batch))
    assert out.asr_loss is not None and out.intensity_loss is not None and torch.isfinite(out.loss)


def test_regression_metrics():
    r = regression([1.0, 2.0, 3.0, 4.0], [1.5, 2.0, 2.5, 4.0])
    assert r.rmse == pytest.approx(math.sqrt(0.5 / 4))
    assert r.mae == pytest.approx(0.25)
    assert r.r2 == pytest.approx(1 - 0.5 / 5.0)
    assert r.n == 4
    assert math.isnan(regression([2.0, 2.0], [2.0, 1.0]).r2)


def test_metrics_log_is_valid_jsonl(tmp_path):
    log = MetricsLog(tmp_path, tensorboard=False)
    log.log("train", 1, loss=1.5, lr=1e-3)
    log.log("validation", 1, intensity=regression([1.0, 2.0], [1.0, 2.5]), wer=float("nan"))
    log.close()
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    recs = [json.loads(x) for x in lines]  # strict JSON: NaN became null
    assert recs[0]["split"] == "train" and recs[0]["loss"] == 1.5
    assert {"intensity_rmse", "intensity_mae", "intensity_r2", "intensity_n"} <= set(recs[1])
    assert recs[1]["wer"] is None
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"split": "train", "ste')  # a line torn by a kill
    assert len(read_metrics(tmp_path / "metrics.jsonl")) == 2


def test_optimizer_state_round_trips_without_pickle():
    torch.manual_seed(0)
    w = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(w.parameters(), lr=0.1, betas=(0.8, 0.9))
    for _ in range(2):
        w(torch.randn(4, 3)).sum().backward()
        opt.step()
    tensors, plain = _split_state(opt.state_dict())
    plain = json.loads(json.dumps(plain))  # all of it survives JSON
    opt2 = torch.optim.AdamW(torch.nn.Linear(3, 2).parameters(), lr=0.5)
    opt2.load_state_dict(_join_state(tensors, plain))
    a, b = opt.state_dict(), opt2.state_dict()
    assert b["param_groups"][0]["lr"] == 0.1 and b["param_groups"][0]["betas"] == (0.8, 0.9)
    for pid in a["state"]:
        for k, v in a["state"][pid].items():
            assert torch.equal(v, b["state"][pid][k])
