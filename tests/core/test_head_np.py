"""The numpy head the CTranslate2 engine runs equals the torch head training fits, and a
checkpoint's settings and head load without torch."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from speechint_desktop.core import head as torch_head
from speechint_desktop.core import head_np


def _pooled_like_speech(rng, n: int, d_model: int, n_mels: int) -> np.ndarray:
    """Pooled head inputs in their real ranges: encoder state ~N(0, 1), band powers 1e-9..1e-1,
    log-mel about -0.5..1, the STAT_POWERS means of frame power."""
    hidden = rng.normal(0, 1, (n, d_model))
    power = 10.0 ** rng.uniform(-9, -1, (n, n_mels))
    log_mel = rng.uniform(-0.5, 1.0, (n, n_mels))
    total = 10.0 ** rng.uniform(-6, 1, (n, 1))
    stats = np.concatenate(
        [np.log10(total) if k == 0 else total**k * rng.uniform(1, 3, (n, 1)) for k in head_np.STAT_POWERS],
        axis=1,
    )
    return np.concatenate([hidden, power, log_mel, stats], axis=1).astype(np.float32)


@pytest.mark.parametrize("n_stats", [0, head_np.N_STATS])
def test_numpy_head_equals_the_torch_head(n_stats):
    torch.manual_seed(0)
    module = torch_head.IntensityHead(384, 256, 80, n_stats).eval()
    with torch.no_grad():  # weights of a trained size, not the tiny init, so GELU sees both signs widely
        for p in module.parameters():
            p.mul_(3.0)
    config = type("C", (), {"intensity_mean": -27.5, "intensity_std": 8.0})()
    twin = head_np.NumpyHead.from_module(module, config)
    pooled = _pooled_like_speech(np.random.default_rng(1), 64, 384, 80)
    with torch.no_grad():
        want = module(torch.from_numpy(pooled)).numpy() * 8.0 - 27.5
    got = twin(pooled)
    assert got.shape == (64,)
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-4)
    np.testing.assert_allclose(twin(pooled, standardized=True), (want + 27.5) / 8.0, atol=3e-5)
    with pytest.raises(ValueError, match="expects"):
        twin(pooled[:, :-1])


def test_erf_is_exact_to_float32():
    x = np.linspace(-8, 8, 20001)
    want = torch.erf(torch.from_numpy(x)).numpy()
    assert np.max(np.abs(head_np._erf(x) - want)) < 2e-7


def test_head_inputs_equal_torch_on_real_features(jfk_path):
    from transformers import WhisperFeatureExtractor

    from speechint_desktop.core import audio

    jfk16 = audio.to_model_input(audio.load_audio(jfk_path))

    feats = WhisperFeatureExtractor(feature_size=80)(
        [jfk16, jfk16[:16000] * 0.01], sampling_rate=16000, return_tensors="np"
    ).input_features.astype(np.float32)
    hidden = np.random.default_rng(0).normal(size=(2, 1500, 384)).astype(np.float32)
    want = torch_head.head_inputs(torch.from_numpy(hidden), torch.from_numpy(feats)).numpy()
    got = head_np.head_inputs(hidden, feats)
    assert got.shape == want.shape == (2, 1500, 384 + 160 + head_np.N_STATS)
    # float32 sums in another order: the cubed frame power moves by a few parts in 1e5
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-12)


def test_load_light_reads_a_saved_head_as_load_model_does(tiny_random_dir, tmp_path):
    from speechint_desktop.core.model import WhisperForASRAndIntensity, load_model, save_head

    m = WhisperForASRAndIntensity.from_pretrained(tiny_random_dir)
    m.config.intensity_target, m.config.intensity_mean = "lufs", -23.0
    path = save_head(m, tmp_path / "h.safetensors", card={"by": "test"})
    light = head_np.load_light(tiny_random_dir, head=path)
    full = load_model(str(tiny_random_dir), head=path)
    assert light.head_trained and light.config.intensity_target == "lufs"
    assert light.head_card["card"] == {"by": "test"} and light.head_file == path
    d = full.model.config.d_model
    pooled = _pooled_like_speech(np.random.default_rng(2), 8, d, full.model.config.num_mel_bins)
    with torch.no_grad():
        want = full.model.head(torch.from_numpy(pooled)).numpy()
    np.testing.assert_allclose(light.head(pooled), want, atol=2e-4)
    # no head asked for: none, and the untrained checkpoint measures only
    assert not head_np.load_light(tiny_random_dir, head="none").head_trained


def test_load_light_says_what_is_wrong_with_a_head_file(tiny_random_dir, tmp_path):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a head")
    with pytest.raises(ValueError, match="junk.safetensors: not a readable intensity head"):
        head_np.load_light(tiny_random_dir, head=junk)
    with pytest.raises(ValueError, match="no such head file"):
        head_np.load_light(tiny_random_dir, head=tmp_path / "missing.safetensors")


def test_the_shipped_head_loads_without_torch(tiny_en_dir):
    code = (
        "import sys; from speechint_desktop.core import head_np; "
        f"m = head_np.load_light({str(tiny_en_dir)!r}, 'tiny.en'); "
        "print(m.head_trained, 'torch' in sys.modules, 'transformers' in sys.modules)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.stdout.split() == ["True", "False", "False"], r.stderr[-2000:]
