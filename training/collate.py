"""Batches for WhisperForASRAndIntensity: log-mel features, Whisper-style labels, targets.

Labels follow WhisperForConditionalGeneration: the tokenizer's prompt
(``<|startoftranscript|>`` [language, task] ``<|notimestamps|>``) + text + ``<|endoftext|>``;
the model builds ``decoder_input_ids`` by shifting the labels right and inserting
``decoder_start_token_id``, so a leading start token is dropped here (else it would appear
twice), and padding becomes −100 so the loss ignores it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from speechint_desktop.core.model import encoder_frames_for
from training.data import Example

IGNORE_INDEX = -100


def make_labels(
    tokenizer, texts: Sequence[str], decoder_start_token_id: int, max_length: int = 448
) -> torch.Tensor:
    """Token ids with the decoder prompt, padding → −100, the start token left to the model."""
    enc = tokenizer(
        list(texts), padding="longest", truncation=True, max_length=max_length, return_tensors="pt"
    )
    labels = enc["input_ids"].masked_fill(enc["attention_mask"].ne(1), IGNORE_INDEX)
    if labels.shape[1] > 0 and bool((labels[:, 0] == decoder_start_token_id).all()):
        labels = labels[:, 1:]
    return labels


@dataclass
class Collator:
    """Turns ``Example``s into the model's keyword arguments (plus ``keys``/``texts`` for reports)."""

    processor: object  # WhisperProcessor
    decoder_start_token_id: int

    def __call__(self, batch: Sequence[Example]) -> dict:
        audio = [np.asarray(e.audio, dtype=np.float32) for e in batch]
        feats = self.processor.feature_extractor(audio, sampling_rate=16000, return_tensors="pt")
        return {
            "input_features": feats["input_features"],
            "labels": make_labels(
                self.processor.tokenizer, [e.text for e in batch], self.decoder_start_token_id
            ),
            "intensity_labels": torch.tensor([e.target for e in batch], dtype=torch.float32),
            "encoder_frames": torch.tensor([encoder_frames_for(len(a)) for a in audio], dtype=torch.long),
            "keys": [e.key for e in batch],
            "texts": [e.text for e in batch],
            "gains": [e.gain_db for e in batch],
        }


MODEL_KEYS = ("input_features", "labels", "intensity_labels", "encoder_frames")


def model_inputs(batch: dict) -> dict:
    """Only the tensors the model's forward takes."""
    return {k: batch[k] for k in MODEL_KEYS}
