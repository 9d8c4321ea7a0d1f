"""core/vad.py's torch-free Silero against the library itself: the same probabilities from the
ONNX session it opens directly, and the same regions from the port of silero-vad's timestamp
rules (core/silero_rules.py), exactly, on probabilities of real speech (clean, packed back to
back, and in noise at low SNR) and on generated sequences built to reach every branch (long
speech cut at its longest pause or where it stands, values exactly at both thresholds, short
bursts and pauses), under several settings."""

from __future__ import annotations

import numpy as np
import pytest

from speechint_desktop.core import audio, silero_rules, vad
from speechint_desktop.core.options import VadOptions
from tests.conftest import SHARED_AUDIO


def _import_silero():
    """silero_vad, imported as tests may (the product does not: it imports torch), without its
    side effect of setting torch to one thread for the rest of the test session."""
    import torch

    threads = torch.get_num_threads()
    try:
        import silero_vad
    finally:
        torch.set_num_threads(threads)
    return silero_vad


silero_vad = _import_silero()

SR = 16000


def _setting(threshold, min_speech_ms, min_silence_ms, pad_ms, max_s, **extra) -> dict:
    return dict(
        threshold=threshold,
        min_speech_duration_ms=min_speech_ms,
        min_silence_duration_ms=min_silence_ms,
        speech_pad_ms=pad_ms,
        max_speech_duration_s=max_s,
        **extra,
    )


SETTINGS = [
    {},  # silero's defaults
    _setting(0.5, 250, 500, 0, 29.5),  # as vad.regions_from_probabilities calls it by default
    _setting(0.5, 250, 500, 0, 4.096),  # the maximum lands exactly on a frame
    _setting(0.35, 100, 50, 0, 7.0),
    _setting(0.6, 500, 300, 30, 10.0),
    # whole frames: pauses exactly twice the padding, or exactly the shortest cut, long
    _setting(0.5, 0, 0, 64, 2.0, min_silence_at_max_speech=0),
    _setting(0.5, 128, 256, 32, 3.0, min_silence_at_max_speech=64),
    _setting(0.45, 64, 96, 0, 6.0, neg_threshold=0.4),
    _setting(0.1, 32, 32, 0, 1.0),
]


def library(probs: np.ndarray, n_samples: int | None = None, **kw) -> list[tuple[int, int]]:
    stamps = silero_vad.get_speech_timestamps_from_probs(
        [float(p) for p in probs], sampling_rate=SR, audio_length_samples=n_samples, **kw
    )
    return [(s["start"], s["end"]) for s in stamps]


def port(probs: np.ndarray, n_samples: int | None = None, **kw) -> list[tuple[int, int]]:
    return silero_rules.speech_timestamps(probs, audio_length_samples=n_samples, **kw)


def _load(path) -> np.ndarray:
    return audio.to_model_input(audio.load_audio(path))


@pytest.fixture(scope="module")
def real_probabilities() -> dict[str, tuple[np.ndarray, int]]:
    """Speech probabilities of real recordings: name -> (probabilities, samples)."""
    rng = np.random.default_rng(7)
    clips = [_load(SHARED_AUDIO / "jfk.flac"), _load(SHARED_AUDIO / "LDC93S1.wav")]
    clips += [_load(p) for p in sorted((SHARED_AUDIO / "extra" / "speech").glob("*.wav"))]
    clips += [_load(p) for p in sorted((SHARED_AUDIO / "extra" / "vad").glob("*.wav"))]
    # every clip back to back with pauses of 0-1.2 s: long stretches of speech that only the
    # maximum length cuts, at pauses of every size
    parts = []
    for c in clips:
        parts += [c, np.zeros(int(rng.uniform(0, 1.2) * SR), np.float32)]
    packed = np.concatenate(parts)
    noise = np.concatenate([_load(p) for p in sorted((SHARED_AUDIO / "extra" / "noise").glob("*.wav"))])
    noise = np.resize(noise, packed.size)
    signals = {
        "jfk": clips[0],
        "ldc": clips[1],
        "vad_train": clips[-2],
        "vad_valid": clips[-1],
        "packed": packed,
    }
    power = float(np.mean(packed**2))
    for snr in (10, 0, -5):
        scale = np.sqrt(power / (np.mean(noise**2) * 10 ** (snr / 10)))
        signals[f"noisy_{snr}dB"] = (packed + scale * noise).astype(np.float32)
    return {k: (vad.speech_probabilities(x), x.size) for k, x in signals.items()}


@pytest.mark.parametrize("setting", range(len(SETTINGS)))
def test_port_equals_silero_on_real_speech(real_probabilities, setting):
    kw = SETTINGS[setting]
    cut = False
    for name, (probs, n) in real_probabilities.items():
        want = library(probs, n, **kw)
        assert port(probs, n, **kw) == want, name
        assert port(probs, None, **kw) == library(probs, None, **kw), name
        assert want or name.startswith("noisy"), name  # real speech is found
        # a pause shorter than the one that ends speech: a region cut at the maximum length
        min_pause = SR * kw.get("min_silence_duration_ms", 100) / 1000
        cut |= any(b < c < b + min_pause for (_, b), (c, _) in zip(want, want[1:], strict=False))
    if kw.get("max_speech_duration_s", np.inf) <= 10 and not kw.get("speech_pad_ms", 30) and min_pause > 1568:
        assert cut  # real speech reaches the longest-pause cut (a pause over 98 ms)


def _walk(rng, n):
    """A smooth random walk in [0, 1], like a VAD's output over speech and pauses."""
    return np.clip(0.5 + np.cumsum(rng.normal(0, 0.08, n)), 0, 1)


def _bursts(rng, n):
    """Runs of speech and silence of random lengths (1-120 frames), with jitter."""
    out, level = [], rng.random() < 0.5
    while sum(map(len, out)) < n:
        k = int(rng.integers(1, 120))
        base = rng.uniform(0.6, 1.0) if level else rng.uniform(0.0, 0.4)
        out.append(np.clip(base + rng.normal(0, 0.15, k), 0, 1))
        level = not level
    return np.concatenate(out)[:n]


def _long_speech(rng, n):
    """Speech with only short dips (1-20 frames), so the maximum length has to cut it."""
    p = rng.uniform(0.7, 1.0, n)
    for at in rng.integers(0, n, size=max(1, n // 60)):
        p[at : at + int(rng.integers(1, 20))] = rng.uniform(0, 0.3)
    return p


def _at_thresholds(rng, n):
    """Values exactly at the thresholds and one float32 step either side (silero compares in
    double precision; the probabilities are float32)."""
    levels = []
    for t in (0.5, 0.35, 0.6, 0.45, 0.4, 0.1, 0.2):
        t32 = np.float32(t)
        levels += [t, float(t32), float(np.nextafter(t32, 0)), float(np.nextafter(t32, 1))]
    levels += [0.0, 1.0, 0.01]
    runs = rng.integers(1, 40, size=n)
    return np.repeat(rng.choice(levels, size=n), runs)[:n]


GENERATORS = [_walk, _bursts, _long_speech, _at_thresholds]


@pytest.mark.parametrize("generator", GENERATORS, ids=lambda g: g.__name__.strip("_"))
def test_port_equals_silero_on_generated_probabilities(generator):
    rng = np.random.default_rng(2026)
    cases = 0
    for k in range(60):
        n = int(rng.integers(0, 1500)) if k % 10 else int(rng.integers(2000, 4000))
        probs = generator(rng, n).astype(np.float64 if k % 2 else np.float32)
        for kw in SETTINGS:
            for n_samples in (None, n * 512, max(0, n * 512 - int(rng.integers(1, 512)))):
                assert port(probs, n_samples, **kw) == library(probs, n_samples, **kw), (k, kw, n_samples)
                cases += 1
    assert cases == 60 * len(SETTINGS) * 3


def test_regions_follow_silero_with_the_apps_settings(real_probabilities):
    """``vad.regions_from_probabilities`` is silero's rules with the app's options, unpadded."""
    for opts in (VadOptions(), VadOptions(threshold=0.3, min_silence_ms=100, max_window_s=8.0)):
        max_s = max(1.0, opts.max_window_s - 2 * opts.speech_pad_ms / 1000 - 0.1)
        for name, (probs, n) in real_probabilities.items():
            want = library(
                probs,
                n,
                threshold=opts.threshold,
                min_speech_duration_ms=opts.min_speech_ms,
                min_silence_duration_ms=opts.min_silence_ms,
                max_speech_duration_s=max_s,
                speech_pad_ms=0,
            )
            assert vad.regions_from_probabilities(probs, n, opts) == want, name


def test_probabilities_are_silero_sequence_models():
    """The session ``vad`` opens itself gives silero's own sequence model's probabilities,
    to the bit, over several 16 s blocks."""
    model = silero_vad.load_silero_vad(sequence=True)
    x = np.concatenate(
        [_load(SHARED_AUDIO / "extra" / "vad" / "valid.wav"), _load(SHARED_AUDIO / "jfk.flac")]
    )
    want = model.audio_forward(x)
    assert want.size > 512  # frames: more than one block
    np.testing.assert_array_equal(vad.speech_probabilities(x), want)
