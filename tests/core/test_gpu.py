"""The CUDA path: half precision, large automatic batches. Runs where a GPU exists, skips here."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speechint_desktop.core import audio
from speechint_desktop.core.engine import Engine
from speechint_desktop.core.text import wer
from tests.conftest import JFK_TEXT

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


@pytest.mark.parametrize("backend", ["ct2", "torch"])
def test_float16_on_cuda_matches_the_cpu_transcript(tiny_en_dir, jfk_path, backend):
    gpu = Engine(str(tiny_en_dir), device="cuda", backend=backend)
    assert gpu.compute == "float16" and gpu.batch_size >= 8 and gpu.backend == backend
    if backend == "ct2":
        assert gpu._ct2.model.device == "cuda" and "float16" in gpu._ct2.model.compute_type
    else:
        assert next(gpu.whisper.model.parameters()).dtype == torch.float16
    assert gpu.model.intensity_head.fc1.weight.dtype == torch.float32
    a = gpu.analyze(jfk_path)
    assert wer(JFK_TEXT, a.text) <= 0.05
    cpu = Engine(str(tiny_en_dir), device="cpu", backend=backend).analyze(jfk_path)
    assert a.predicted_intensity == pytest.approx(cpu.predicted_intensity, abs=0.5)
    assert [w.text for s in a.segments for w in s.words] == [w.text for s in cpu.segments for w in s.words]


def test_large_batches_on_cuda_give_the_same_text(tiny_en_dir, jfk_path, ldc_path):
    jfk = audio.to_model_input(audio.load_audio(jfk_path))
    ldc = audio.to_model_input(audio.load_audio(ldc_path))
    gap = np.zeros(32000, np.float32)
    x = np.concatenate([jfk, gap, ldc, gap] * 12)  # ~3 min: a dozen windows in one batch
    big = Engine(str(tiny_en_dir), device="cuda", batch_size=32).analyze(x)
    one = Engine(str(tiny_en_dir), device="cuda", batch_size=1).analyze(x)
    assert big.text == one.text


def test_compute_types_are_checked(tiny_en_dir):
    with pytest.raises(ValueError, match="CPU only"):
        Engine(str(tiny_en_dir), device="cuda", compute="int8")
