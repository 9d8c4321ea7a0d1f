"""Decoding and resampling: every file becomes an ``AudioClip`` or one ``AudioError`` line.

The clip keeps the original rate and channels because loudness (BS.1770) is defined on the
programme as delivered; only ``to_model_input`` folds it to the 16 kHz mono Whisper expects.
soundfile (libsndfile) reads WAV/FLAC/OGG/Opus/MP3 fast and exactly; PyAV (bundled FFmpeg)
covers M4A/AAC/MP4/WebM and is the fallback for anything libsndfile refuses. Library errors
never reach the user: each failure is mapped to a one-line message naming the file.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from speechint_desktop.core.fsutil import atomic_write_bytes

MODEL_SAMPLE_RATE = 16000

AUDIO_EXTENSIONS: frozenset[str] = frozenset(
    {
        ".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".caf",
        ".w64", ".m4a", ".aac", ".mp4", ".m4b", ".webm", ".mka", ".mkv", ".mov", ".wma",
    }
)  # fmt: skip
# Containers libsndfile cannot open: go straight to FFmpeg.
_PYAV_FIRST = frozenset({".m4a", ".aac", ".mp4", ".m4b", ".webm", ".mka", ".mkv", ".mov", ".wma"})


class AudioError(Exception):
    """A file (or array) that cannot be used as audio; ``str()`` is one line naming it."""


@dataclass
class AudioClip:
    """Decoded audio at its original rate: float32 ``(n_samples, n_channels)``, nominally in [-1, 1]."""

    samples: np.ndarray
    sample_rate: int
    source: str = ""

    def __post_init__(self) -> None:
        x = np.asarray(self.samples, dtype=np.float32)
        if x.ndim == 1:
            x = x[:, None]
        self.samples = x
        self.sample_rate = int(self.sample_rate)

    @property
    def duration_s(self) -> float:
        return self.samples.shape[0] / self.sample_rate

    @property
    def channels(self) -> int:
        return self.samples.shape[1]


def _to_float32(x: np.ndarray) -> np.ndarray:
    """Integer PCM to [-1, 1] floats (uint8 is offset binary, as in 8-bit WAV)."""
    if x.dtype == np.uint8:
        return (x.astype(np.float32) - 128.0) / 128.0
    if np.issubdtype(x.dtype, np.integer):
        return (x.astype(np.float32) / float(-np.iinfo(x.dtype).min)).astype(np.float32)
    if x.dtype == np.bool_ or not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"unsupported sample type {x.dtype}")
    return x.astype(np.float32, copy=False)


def _checked(samples: np.ndarray, sample_rate: int, name: str) -> AudioClip:
    if samples.ndim != 2 or samples.shape[0] == 0 or samples.shape[1] == 0:
        raise AudioError(f"{name}: contains no audio (0 s)")
    if not np.isfinite(samples).all():
        raise AudioError(f"{name}: contains invalid samples (NaN or infinity)")
    return AudioClip(np.ascontiguousarray(samples, dtype=np.float32), int(sample_rate), name)


def as_clip(array, sample_rate: int = MODEL_SAMPLE_RATE, source: str = "<array>") -> AudioClip:
    """Wrap an array as a clip. 2-D arrays are ``(n_samples, n_channels)``; a channels-first
    array (at most 16 rows, more columns) is transposed, as torchaudio/librosa produce those."""
    try:
        sr = int(sample_rate)
    except (TypeError, ValueError):
        raise AudioError(f"{source}: invalid sample rate {sample_rate!r}") from None
    if sr <= 0:
        raise AudioError(f"{source}: invalid sample rate {sample_rate!r}")
    x = np.asarray(array)
    if x.ndim == 1:
        x = x[:, None]
    elif x.ndim == 2:
        if x.shape[0] <= 16 < x.shape[1]:
            x = x.T
    else:
        raise AudioError(f"{source}: expected a 1-D or 2-D array of samples, got {x.ndim}-D")
    try:
        x = _to_float32(x)
    except TypeError:
        raise AudioError(f"{source}: unsupported sample type {x.dtype}") from None
    return _checked(x, sr, source)


def _read_soundfile(path: Path) -> tuple[np.ndarray, int]:
    import soundfile as sf

    with sf.SoundFile(str(path)) as f:
        sr = f.samplerate
        data = f.read(dtype="float32", always_2d=True)
    return data, sr


def _read_pyav(path: Path, name: str) -> tuple[np.ndarray, int]:
    """Decode the first audio stream to packed float32, keeping rate and channel count.

    Frames are collected in a list and joined once, so an hour of audio decodes in linear time.
    A decode error after some audio was produced (a truncated tail) keeps what was decoded.
    """
    import av

    with av.open(str(path), mode="r") as container:
        if not container.streams.audio:
            raise AudioError(f"{name}: no audio track found")
        stream = container.streams.audio[0]
        sr = stream.rate or stream.codec_context.sample_rate
        channels = stream.codec_context.channels or stream.layout.nb_channels
        if not sr or not channels:
            raise AudioError(f"{name}: not a readable audio file")
        resampler = None
        chunks: list[np.ndarray] = []
        try:
            for frame in container.decode(stream):
                if resampler is None:
                    resampler = av.AudioResampler(format="flt", layout=frame.layout, rate=frame.sample_rate)
                    channels = frame.layout.nb_channels
                    sr = frame.sample_rate
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1, channels))
            if resampler is not None:
                for out in resampler.resample(None):
                    chunks.append(out.to_ndarray().reshape(-1, channels))
        except av.FFmpegError:
            if not chunks:
                raise
    if not chunks:
        return np.zeros((0, channels), np.float32), sr
    return np.concatenate(chunks, axis=0), sr


def load_audio(path: str | os.PathLike) -> AudioClip:
    """Decode a file at its original rate and channel count. Raises ``AudioError`` only."""
    p = Path(path)
    name = p.name or str(p)
    if not p.exists():
        raise AudioError(f"{name}: file not found")
    if p.is_dir():
        raise AudioError(f"{name}: is a folder, not an audio file")
    try:
        size = p.stat().st_size
        with open(p, "rb"):
            pass
    except OSError as e:
        raise AudioError(f"{name}: cannot be opened ({e.strerror or 'permission denied'})") from None
    if size == 0:
        raise AudioError(f"{name}: empty file (0 bytes), contains no audio")

    data = sr = None
    if p.suffix.lower() not in _PYAV_FIRST:
        try:
            data, sr = _read_soundfile(p)
        except Exception:  # libsndfile reports anything it cannot parse as a generic error
            data = None
    if data is None:
        try:
            data, sr = _read_pyav(p, name)
        except AudioError:
            raise
        except MemoryError:
            raise AudioError(f"{name}: too large to decode in memory") from None
        except Exception:
            raise AudioError(f"{name}: not a readable audio file (unknown format or corrupt)") from None
    return _checked(data, sr, name)


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """High-quality (soxr VHQ) resampling along axis 0; 1-D or ``(n, channels)`` float32."""
    import soxr

    x = np.asarray(x, dtype=np.float32)
    if int(sr_in) == int(sr_out) or x.shape[0] == 0:
        return x
    return soxr.resample(x, int(sr_in), int(sr_out), quality="VHQ").astype(np.float32, copy=False)


def to_model_input(clip: AudioClip) -> np.ndarray:
    """The model's view: 16 kHz mono (channel mean) float32, 1-D."""
    mono = clip.samples.mean(axis=1, dtype=np.float32) if clip.channels > 1 else clip.samples[:, 0]
    out = resample(mono, clip.sample_rate, MODEL_SAMPLE_RATE)
    return np.ascontiguousarray(out, dtype=np.float32)


def find_audio_files(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """Expand folders recursively to their audio files (by extension, hidden files skipped).

    Files named explicitly are kept whatever their extension (or existence), so the batch
    reports them with a one-line error instead of silently dropping what the user chose.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    found: set[Path] = set()
    for item in paths:
        p = Path(item)
        if p.is_dir():
            for f in p.rglob("*"):
                rel = f.relative_to(p).parts
                if any(part.startswith(".") for part in rel):
                    continue
                if f.suffix.lower() in AUDIO_EXTENSIONS and f.is_file():
                    found.add(f)
        else:
            found.add(p)
    return sorted(found)


def save_wav(path: str | os.PathLike, samples: np.ndarray, sample_rate: int, subtype: str = "PCM_16") -> Path:
    """Write a WAV atomically; ``subtype`` "PCM_16" (default) or "FLOAT" (lossless for float32)."""
    import soundfile as sf

    x = np.asarray(samples)
    if x.dtype != np.float32 and np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, x, int(sample_rate), format="WAV", subtype=subtype)
    return atomic_write_bytes(path, buf.getvalue())
