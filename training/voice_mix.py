"""Noisy mixtures with a known voice level: what the voice-level head learns from and is tested on.

A meter measures everything at the microphone; the voice-level head reports the voice alone.
Each mixture is clean speech (optionally through a room impulse response) scaled to a voice
level, plus noise at a signal-to-noise ratio, where

- the **voice level** is the clean (reverberant) speech's ITU-T P.56 active speech level
  (``core.asl``) — or its RMS with ``target="rms"``;
- the **SNR** is that active speech level minus the noise's RMS (P.56's convention), so 0 dB
  means the noise is as loud as the talking voice;
- a mixture that would clip is scaled down as a whole (the target moves with it).

Speech: espeak-ng voices (``demo_corpus``) in several voices, rates and pitches, plus real
speech from folders, varied by speed (0.88–1.12×, a new "speaker") and a random spectral tilt.
Noise: real recordings cut at random offsets (looped, sometimes reversed, tilted) and, for
variety, synthetic coloured noise. Everything is drawn from ``random.Random(seed)``, so a
set is reproducible from its seed.

The held-out sets (``heldout_sets``) use real speech and a real noise the training never sees.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.signal import fftconvolve, lfilter, resample_poly

from speechint_desktop.core.asl import asl_dbfs
from speechint_desktop.core.audio import AudioError, load_audio, to_model_input
from speechint_desktop.core.loudness import integrated_loudness, rms_dbfs

SR = 16000
TARGETS = {"asl": "voice_asl_dbfs", "rms": "voice_rms_dbfs"}
AUDIO_EXT = (".wav", ".flac", ".ogg", ".mp3", ".m4a", ".aiff", ".aif")
PEAK_MAX = 0.99
REPO = Path(__file__).resolve().parents[1]

# Real material kept out of training: the second speaker of extra/speech, jfk.flac, LDC93S1.wav
# and one noise recording (and extra/vad, which training never reads), so the benchmark measures
# speech and noise the head never heard.
HELDOUT_SPEECH = ("sep_source2_0", "sep_source2_1", "sep_source2_2", "sep_source2_3", "jfk", "LDC93S1")
HELDOUT_NOISE = ("noise5",)
EVAL_SNRS = (0.0, 5.0, 10.0, 20.0, 40.0)
REGAIN_LEVELS = tuple(float(v) for v in range(-45, -4, 5))  # clean speech re-gained, dBFS


def shared_audio() -> Path:
    """The shared real recordings (``$SPEECHINT_SHARED_AUDIO`` or ``../shared/audio``)."""
    return Path(os.environ.get("SPEECHINT_SHARED_AUDIO") or REPO.parent / "shared" / "audio")


def voice_level(x: np.ndarray, target: str = "asl") -> float:
    """The level the head learns for clean speech ``x`` (16 kHz): P.56 ASL or RMS, dBFS."""
    if target == "asl":
        return asl_dbfs(x, SR)
    if target == "rms":
        return rms_dbfs(x)
    raise ValueError(f"unknown voice-level target {target!r} (asl or rms)")


def audio_files(folder: str | Path, recursive: bool = True) -> list[Path]:
    folder = Path(folder)
    if folder.is_file():
        return [folder]
    found = folder.rglob("*") if recursive else folder.glob("*")
    return sorted(p for p in found if p.suffix.lower() in AUDIO_EXT and p.is_file())


def load_folder(
    folder: str | Path,
    exclude: Sequence[str] = (),
    only: Sequence[str] | None = None,
    log=None,
    recursive: bool = True,
) -> list[tuple[str, np.ndarray]]:
    """(stem, 16 kHz mono) for each readable audio file; unreadable or silent ones are skipped
    with one line to ``log``. ``exclude``/``only``: file stems."""
    out = []
    for p in audio_files(folder, recursive):
        if p.stem in exclude or (only is not None and p.stem not in only):
            continue
        try:
            x = to_model_input(load_audio(p))
        except AudioError as e:
            if log:
                log(f"skipped: {e}")
            continue
        if len(x) < SR // 2 or not math.isfinite(rms_dbfs(x)):
            if log:
                log(f"skipped: {p.name}: shorter than 0.5 s or silent")
            continue
        out.append((p.stem, x.astype(np.float32)))
    return out


def heldout_speech(pauses: bool = False) -> list[tuple[str, np.ndarray]]:
    """The held-out real speech (``HELDOUT_SPEECH``); with ``pauses`` also the two ``extra/vad``
    recordings (``vad_train``, ``vad_valid``: real speech with seconds of silence between
    phrases, which training never reads). Those are for the whole analysis, which pools the head
    over the detected speech; the head on a whole clip would average the silences in."""
    root = shared_audio()
    out = load_folder(root / "extra" / "speech", only=HELDOUT_SPEECH)
    out += load_folder(root, only=HELDOUT_SPEECH, recursive=False)
    if pauses:
        out += [(f"vad_{n}", x) for n, x in load_folder(root / "extra" / "vad")]
    return out


def espeak_speech(n: int, seed: int = 0, progress=None) -> list[tuple[str, np.ndarray]]:
    """``n`` espeak-ng utterances, voices/rates/pitches drawn at random (distinct sentences)."""
    import tempfile

    from training.demo_corpus import PITCHES, RATES, VOICES, _speak, sentence_bank

    rng = random.Random(f"espeak:{seed}")
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, text in enumerate(sentence_bank(n, seed)):
            voice = rng.choice(VOICES)
            x = _speak(text, voice, rng.choice(RATES), rng.choice(PITCHES), Path(tmp))
            out.append((f"espeak{i}:{voice}", x.astype(np.float32)))
            if progress and (i + 1) % 25 == 0:
                progress(i + 1, n)
    return out


# ---------------------------------------------------------------- variation


def tilt(x: np.ndarray, rng: random.Random, max_db: float = 6.0) -> np.ndarray:
    """A random first-order spectral tilt (a shelf of up to ±``max_db`` around 1 kHz)."""
    db = rng.uniform(-max_db, max_db)
    k = 10 ** (db / 20) - 1.0
    a = math.exp(-2 * math.pi * 1000.0 / SR)
    hp = lfilter([(1 + a) / 2, -(1 + a) / 2], [1, -a], x)  # one-pole high-pass
    return (x + k * hp).astype(np.float32)


def speed(x: np.ndarray, rng: random.Random, lo: float = 0.88, hi: float = 1.12) -> np.ndarray:
    """Speed perturbation (pitch and tempo together): a new "speaker" from a real voice."""
    f = rng.uniform(lo, hi)
    up = 50
    down = max(1, round(up * f))
    return resample_poly(x, up, down).astype(np.float32)


def coloured_noise(n: int, rng: random.Random) -> np.ndarray:
    """White, pink or brown noise (random colour exponent), with a random tilt."""
    g = np.random.default_rng(rng.randrange(2**32))
    spec = np.fft.rfft(g.standard_normal(n + 1))
    f = np.fft.rfftfreq(n + 1, 1 / SR)
    f[0] = f[1]
    spec *= f ** (-rng.uniform(0.0, 1.0))  # 0 white … 0.5 pink … 1 brown
    return tilt(np.fft.irfft(spec, n + 1)[:n], rng)


def noise_piece(noise: np.ndarray, n: int, rng: random.Random) -> np.ndarray:
    """``n`` samples of a noise recording from a random offset (looped), maybe reversed, tilted."""
    y = noise[::-1] if rng.random() < 0.3 else noise
    reps = int(math.ceil((n + len(y)) / len(y)))
    start = rng.randrange(len(y))
    y = np.tile(y, reps)[start : start + n]
    return tilt(y, rng, 4.0) if rng.random() < 0.5 else y


def reverb(x: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """Speech through a room: the RIR normalised to its direct path, tail kept up to 0.3 s."""
    h = rir / (np.abs(rir).max() or 1.0)
    k = int(np.argmax(np.abs(h)))
    y = fftconvolve(x, h[k:])[: len(x) + int(0.3 * SR)]
    return y.astype(np.float32)


# ---------------------------------------------------------------- mixtures


@dataclass
class Mixture:
    audio: np.ndarray  # 16 kHz mono: voice + noise
    target: float  # the voice's level (P.56 ASL or RMS of the clean voice in the mix), dBFS
    snr_db: float | None  # None: clean
    speech: str
    noise: str | None


def mix(
    speech: np.ndarray,
    level_db: float,
    noise: np.ndarray | None = None,
    snr_db: float | None = None,
    target: str = "asl",
) -> Mixture:
    """Speech set to active speech level ``level_db`` plus noise ``snr_db`` below it; the target
    is measured on the voice as it sits in the (peak-guarded) mix."""
    s = speech.astype(np.float64)
    s *= 10 ** ((level_db - asl_dbfs(s, SR)) / 20)
    x = s
    if noise is not None and snr_db is not None:
        nz = noise[: len(s)].astype(np.float64)
        nz = nz * 10 ** ((level_db - snr_db - rms_dbfs(nz)) / 20)
        x = s + nz
    peak = float(np.abs(x).max())
    if peak > PEAK_MAX:
        g = PEAK_MAX / peak
        x, s = x * g, s * g
    return Mixture(x.astype(np.float32), voice_level(s, target), snr_db, "", None)


@dataclass
class Sources:
    """What mixtures are drawn from: named clean speech, noise recordings and RIRs."""

    speech: list[tuple[str, np.ndarray]]
    noise: list[tuple[str, np.ndarray]]
    rirs: list[np.ndarray]
    real_speech: int = 0  # how many of ``speech`` are real (the rest espeak-ng)


def training_sources(
    speech_dirs: Sequence[str | Path] | None = None,
    noise_dirs: Sequence[str | Path] | None = None,
    rir_dirs: Sequence[str | Path] | None = None,
    espeak: int = 200,
    seed: int = 0,
    log=print,
) -> Sources:
    """Speech, noise and RIRs for training; by default the shared real audio minus the held-out
    files, plus ``espeak`` espeak-ng utterances."""
    root = shared_audio()
    if speech_dirs is None:
        speech_dirs = [root / "extra" / "speech"]
    if noise_dirs is None:
        noise_dirs = [root / "extra" / "noise"]
    if rir_dirs is None:
        rir_dirs = [root / "extra" / "rir"] if (root / "extra" / "rir").is_dir() else []
    real = [s for d in speech_dirs for s in load_folder(d, exclude=HELDOUT_SPEECH, log=log)]
    noise = [s for d in noise_dirs for s in load_folder(d, exclude=HELDOUT_NOISE, log=log)]
    rirs = [x for d in rir_dirs for _, x in load_folder_raw(d)]
    synth = espeak_speech(espeak, seed) if espeak else []
    if not real and not synth:
        raise ValueError("no usable clean speech")
    return Sources(real + synth, noise, rirs, len(real))


def load_folder_raw(folder) -> list[tuple[str, np.ndarray]]:
    """RIRs: any length (shorter than 0.5 s too)."""
    out = []
    for p in audio_files(folder):
        try:
            out.append((p.stem, to_model_input(load_audio(p))))
        except AudioError:
            continue
    return out


def draw_mixtures(
    src: Sources,
    count: int,
    seed: int,
    target: str = "asl",
    snr_range: tuple[float, float] = (0.0, 40.0),
    level_range: tuple[float, float] = (-55.0, -5.0),
    clean_share: float = 0.2,
    reverb_share: float = 0.4,
    synthetic_noise_share: float = 0.25,
    real_share: float = 0.4,
    max_seconds: float = 8.0,
) -> list[Mixture]:
    """``count`` random mixtures (reproducible from ``seed``)."""
    rng = random.Random(f"mix:{seed}")
    n_real = src.real_speech
    out = []
    for _ in range(count):
        if n_real and (rng.random() < real_share or n_real == len(src.speech)):
            name, x = src.speech[rng.randrange(n_real)]
            x = speed(x, rng) if rng.random() < 0.8 else x
        else:
            name, x = src.speech[rng.randrange(n_real, len(src.speech))]
        if rng.random() < 0.5:
            x = tilt(x, rng)
        if len(x) > max_seconds * SR:
            a = rng.randrange(int(len(x) - max_seconds * SR))
            x = x[a : a + int(max_seconds * SR)]
        if src.rirs and rng.random() < reverb_share:
            x = reverb(x, rng.choice(src.rirs))
        level = rng.uniform(*level_range)
        if rng.random() < clean_share or not (src.noise or synthetic_noise_share):
            m = mix(x, level, target=target)
            m.speech = name
        else:
            snr = rng.uniform(*snr_range)
            if src.noise and rng.random() >= synthetic_noise_share:
                nname, nz = rng.choice(src.noise)
                nz = noise_piece(nz, len(x), rng)
            else:
                nname, nz = "coloured", coloured_noise(len(x), rng)
            m = mix(x, level, nz, snr, target)
            m.speech, m.noise = name, nname
        out.append(m)
    return out


@dataclass
class HeldOut:
    """One held-out evaluation item with the meter's readings of the mix."""

    audio: np.ndarray
    target: float
    snr_db: float | None
    speech: str
    noise: str | None
    mix_rms_dbfs: float
    mix_lufs: float | None
    mix_asl_dbfs: float


def heldout_sets(
    target: str = "asl",
    speech: list[tuple[str, np.ndarray]] | None = None,
    noise: list[tuple[str, np.ndarray]] | None = None,
    snrs: Sequence[float] = EVAL_SNRS,
    levels_per_snr: int = 3,
    regain_levels: Sequence[float] = REGAIN_LEVELS,
    seed: int = 1234,
) -> list[HeldOut]:
    """Held-out real speech × held-out real noise at each SNR (voice levels drawn in
    −40…−12 dBFS), plus the clean speech re-gained so its RMS is each of ``regain_levels``."""
    rng = random.Random(f"heldout:{seed}")
    speech = heldout_speech() if speech is None else speech
    if noise is None:
        noise = load_folder(shared_audio() / "extra" / "noise", only=HELDOUT_NOISE)
    if not speech or not noise:
        raise ValueError("held-out speech or noise not found")
    items = []
    for name, x in speech:
        for snr in snrs:
            for _ in range(levels_per_snr):
                nname, nz = rng.choice(noise)
                m = mix(x, rng.uniform(-40.0, -12.0), noise_piece(nz, len(x), rng), snr, target)
                items.append(_measured(m, name, nname))
        for lv in regain_levels:
            g = 10 ** ((lv - rms_dbfs(x)) / 20)
            y = np.clip(x * g, -1.0, 1.0).astype(np.float32)  # re-gained as a user would: RMS to lv
            items.append(_measured(Mixture(y, voice_level(y, target), None, name, None), name, None))
    return items


def _measured(m: Mixture, speech: str, noise: str | None) -> HeldOut:
    return HeldOut(
        m.audio,
        m.target,
        m.snr_db,
        speech,
        noise,
        rms_dbfs(m.audio),
        integrated_loudness(m.audio, SR),
        asl_dbfs(m.audio, SR),
    )


def cached_pooled(
    model,
    processor,
    audios: Sequence[np.ndarray],
    cache: Path | None,
    progress: Callable | None = None,
    level_only: bool = False,
) -> np.ndarray:
    """``training.features.pooled_encoder_features`` with an .npy cache (written atomically); a
    cache from before the level statistics is completed from the audio (no encoder pass)."""
    from speechint_desktop.core.model import N_STATS
    from training.features import pooled_encoder_features, pooled_level_inputs, pooled_level_stats

    width = model.config.d_model + 2 * model.config.num_mel_bins + N_STATS
    if cache is not None and cache.is_file() and not level_only:
        z = np.load(cache)
        if len(z) == len(audios) and z.shape[1] == width:
            return z
        if len(z) == len(audios) and z.shape[1] == width - N_STATS:
            z = np.hstack([z, pooled_level_stats(processor, audios)]).astype(np.float32)
            _save(cache, z)
            return z
    if level_only:  # the voice head's level path reads the encoder's input only: zeros for the states
        lv = pooled_level_inputs(processor, audios)
        z = np.hstack([np.zeros((len(lv), model.config.d_model), np.float32), lv]).astype(np.float32)
        return z  # never cached: the zeros must not pass for encoder states later
    z = pooled_encoder_features(model, processor, list(audios), progress=progress)
    if cache is not None:
        _save(cache, z)
    return z


def _save(path: Path, z: np.ndarray) -> None:
    import io

    from speechint_desktop.core.fsutil import atomic_write_bytes

    buf = io.BytesIO()
    np.save(buf, z)
    atomic_write_bytes(path, buf.getvalue())
