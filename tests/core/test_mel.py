"""core.mel against transformers' WhisperFeatureExtractor on real speech.

Tolerance: transformers' extractor takes its torch STFT path (float32) when torch is installed;
its own float64 numpy path differs from it by up to 2.5e-5 on these clips, in low-energy cells
near the 8-decade floor. ``log_mel`` (float32) lands as close: max 5e-5 against either path, and a
mean error four orders of magnitude below that.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from speechint_desktop.core import mel

MAX_ERR = 5e-5
MEAN_ERR = 5e-7
N = 480000


@pytest.fixture(scope="module")
def clips(jfk_path, ldc_path) -> dict[str, np.ndarray]:
    from speechint_desktop.core.audio import load_audio, to_model_input

    jfk = to_model_input(load_audio(jfk_path))  # 44.1 kHz stereo -> 16 kHz mono
    ldc = to_model_input(load_audio(ldc_path))
    long = np.concatenate([jfk, ldc, jfk, ldc, jfk, jfk])
    assert len(long) > 35 * 16000
    return {
        "jfk": jfk,
        "ldc": ldc,
        "0.3 s": jfk[16000 : 16000 + 4800],
        "3 s": ldc[:48000],
        "29.9 s": long[: int(29.9 * 16000)],
        "30 s": long[:N],
        "35 s (cut to 30 s)": long[: 35 * 16000],
        "silence": np.zeros(16000, np.float32),
        "empty": np.zeros(0, np.float32),
        "float64 input": jfk.astype(np.float64),
    }


def _reference(chunks, n_mels):
    from transformers import WhisperFeatureExtractor

    fe = WhisperFeatureExtractor(feature_size=n_mels)
    torch_path = fe(chunks, sampling_rate=16000, return_tensors="np").input_features
    padded = np.stack([np.pad(np.asarray(c, np.float32)[:N], (0, N - min(len(c), N))) for c in chunks])
    return torch_path, fe._np_extract_fbank_features(padded, "cpu")


def _close(got, want):
    err = np.abs(got.astype(np.float64) - want)
    assert err.max() <= MAX_ERR, err.max()
    assert err.mean() <= MEAN_ERR, err.mean()


@pytest.mark.parametrize("n_mels", [80, 128])
def test_each_clip_matches_transformers(clips, n_mels):
    for name, clip in clips.items():
        want, want64 = _reference([clip], n_mels)
        got = mel.log_mel([clip], n_mels)
        assert got.shape == (1, n_mels, 3000) and got.dtype == np.float32, name
        _close(got, want)
        _close(got, want64)


@pytest.mark.parametrize("n_mels", [80, 128])
def test_mixed_batch_matches_transformers_and_rows_are_independent(clips, n_mels):
    batch = list(clips.values())
    want, want64 = _reference(batch, n_mels)
    got = mel.log_mel(batch, n_mels)
    assert got.shape == (len(batch), n_mels, 3000)
    _close(got, want)
    _close(got, want64)
    # each row is normalised on its own (its own maximum), whatever it is batched with
    alone = mel.log_mel([clips["ldc"]], n_mels)[0]
    assert np.array_equal(got[list(clips).index("ldc")], alone)


def test_silence_is_the_floor_and_speech_is_not(clips):
    sil = mel.log_mel([clips["silence"]])[0]
    np.testing.assert_allclose(sil, -1.5, atol=1e-6)  # log10(1e-10) = -10 -> (-10 + 4) / 4
    speech = mel.log_mel([clips["jfk"]])[0]
    # 8 decades below the row's maximum is its floor
    assert speech.max() - speech.min() == pytest.approx(2.0, abs=1e-6)


@pytest.mark.parametrize("n_mels", [80, 128])
def test_filter_bank_matches_transformers(n_mels):
    from transformers.audio_utils import mel_filter_bank

    want = mel_filter_bank(201, n_mels, 0.0, 8000.0, 16000, norm="slaney", mel_scale="slaney")
    got = mel.mel_filters(n_mels)
    assert got.shape == (201, n_mels)
    np.testing.assert_allclose(got, want.astype(np.float32), rtol=1e-6, atol=1e-9)
    assert mel.mel_filters(n_mels) is got  # cached
    with pytest.raises(ValueError):
        got[0, 0] = 1.0  # the cached bank is shared: read-only


def test_settings_from_model_folder(tiny_en_dir, tmp_path, clips):
    from transformers import WhisperFeatureExtractor

    s = mel.settings(tiny_en_dir)
    assert s == mel.MelSettings(n_mels=80, n_fft=400, hop_length=160, chunk_length=30)
    assert (s.n_samples, s.n_frames) == (N, 3000)
    fe = WhisperFeatureExtractor.from_pretrained(tiny_en_dir)
    want = fe([clips["jfk"]], sampling_rate=16000, return_tensors="np").input_features
    _close(mel.log_mel([clips["jfk"]], config=s), want)
    # an older folder: preprocessor_config.json at the top level
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({"feature_size": 128, "chunk_length": 30}))
    assert mel.settings(tmp_path).n_mels == 128
    assert mel.settings(tmp_path / "none") == mel.MelSettings()
    got = mel.log_mel([np.zeros(100, np.float32)], config=mel.settings(tmp_path))
    assert got.shape == (1, 128, 3000)


def test_stereo_chunk_is_a_clear_error():
    with pytest.raises(ValueError, match="chunk 1: expected mono"):
        mel.log_mel([np.zeros(10, np.float32), np.zeros((10, 2), np.float32)])


def test_import_needs_neither_transformers_nor_torch(tiny_en_dir):
    """The CLI's fast start (issue #9): features and tokenizer without transformers or torch."""
    code = (
        "import sys; import numpy as np\n"
        "from speechint_desktop.core import mel, tokenizer\n"
        f"tok = tokenizer.Tokenizer.from_folder({str(tiny_en_dir)!r})\n"
        "assert tok.decode(tok.encode(' Ask not.'), skip_special_tokens=True) == ' Ask not.'\n"
        f"mel.log_mel([np.zeros(1600, np.float32)], config=mel.settings({str(tiny_en_dir)!r}))\n"
        "bad = [m for m in ('transformers', 'torch') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
