"""Core fixtures: the same audio written in every format the product reads, and broken files.

Files are encoded here (soundfile for libsndfile formats, PyAV for AAC/M4A/MP4/WebM) so the
tests need nothing beyond the project's own dependencies.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf


@dataclass(frozen=True)
class Fmt:
    name: str  # file name
    subtype: str | None  # soundfile subtype, or the PyAV codec
    sample_rate: int
    lossless: bool
    writer: str = "soundfile"  # or "pyav"


FORMATS = [
    Fmt("pcm16.wav", "PCM_16", 44100, True),
    Fmt("pcm24.wav", "PCM_24", 44100, True),
    Fmt("float32.wav", "FLOAT", 44100, True),
    Fmt("pcm8.wav", "PCM_U8", 44100, False),  # 8-bit: exact format, coarse samples
    Fmt("lossless.flac", "PCM_16", 44100, True),
    Fmt("vorbis.ogg", "VORBIS", 44100, False),
    Fmt("opus.opus", "OPUS", 48000, False),
    Fmt("mpeg.mp3", "MPEG_LAYER_III", 44100, False),
    Fmt("aac.m4a", "aac", 44100, False, "pyav"),
    Fmt("aac.mp4", "aac", 44100, False, "pyav"),
    Fmt("adts.aac", "aac", 44100, False, "pyav"),
    Fmt("opus.webm", "libopus", 48000, False, "pyav"),
]


def write_pyav(
    path: Path,
    samples: np.ndarray,
    sr: int,
    codec: str,
    options: dict | None = None,
    qscale: int | None = None,
) -> Path:
    """Encode float32 ``(n, channels)`` samples with FFmpeg via PyAV, frame by frame (``options``:
    the muxer's; ``qscale``: a variable-bitrate quality, for codecs that have one)."""
    import av

    layout = {1: "mono", 2: "stereo"}[samples.shape[1]]
    with av.open(str(path), "w", options=options or {}) as out:
        stream = out.add_stream(codec, rate=sr, layout=layout)
        if qscale is not None:
            stream.codec_context.qscale = qscale
        fmt = stream.codec_context.format.name if stream.codec_context.format else "fltp"
        frame_size = stream.codec_context.frame_size or 1024
        if fmt.startswith("s16"):
            samples = np.clip(np.round(samples * 32767), -32768, 32767).astype(np.int16)
        elif fmt.startswith("s32"):
            samples = np.clip(np.round(samples.astype(np.float64) * 2**31), -(2**31), 2**31 - 1).astype(
                np.int32
            )
        for i in range(0, samples.shape[0], frame_size):
            part = samples[i : i + frame_size]
            if fmt.endswith("p"):  # planar: (channels, n)
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(part.T), format=fmt, layout=layout)
            else:  # packed: (1, n * channels)
                frame = av.AudioFrame.from_ndarray(part.reshape(1, -1).copy(), format=fmt, layout=layout)
            frame.sample_rate = sr
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def write_format(folder: Path, fmt: Fmt, samples: np.ndarray, sr: int) -> Path:
    """Write ``samples`` (float32, at ``sr``) in ``fmt``, resampling to the format's rate."""
    from speechint_desktop.core.audio import resample

    x = resample(samples, sr, fmt.sample_rate) if sr != fmt.sample_rate else samples
    path = folder / fmt.name
    if fmt.writer == "pyav":
        return write_pyav(path, x.astype(np.float32), fmt.sample_rate, fmt.subtype)
    container = {"VORBIS": "OGG", "OPUS": "OGG", "MPEG_LAYER_III": "MP3"}.get(fmt.subtype)
    if container is None:
        container = "FLAC" if fmt.name.endswith(".flac") else "WAV"
    sf.write(path, x, fmt.sample_rate, subtype=fmt.subtype, format=container)
    return path


@pytest.fixture(scope="session")
def speech_stereo(jfk_path) -> tuple[np.ndarray, int]:
    """The first 4 s of the real JFK recording (44.1 kHz stereo), float32."""
    data, sr = sf.read(jfk_path, dtype="float32", always_2d=True, frames=4 * 44100)
    return data, sr


@pytest.fixture(scope="session")
def format_files(tmp_path_factory, speech_stereo) -> dict[str, Path]:
    """The same 4 s of speech in every supported format, keyed by file name."""
    folder = tmp_path_factory.mktemp("formats")
    data, sr = speech_stereo
    return {f.name: write_format(folder, f, data, sr) for f in FORMATS}


@pytest.fixture(scope="session")
def bad_files(tmp_path_factory, speech_stereo) -> dict[str, Path]:
    """Files a user might drop that are not usable audio, keyed by a short description."""
    folder = tmp_path_factory.mktemp("bad")
    data, sr = speech_stereo
    good = folder / "good.wav"
    sf.write(good, data, sr, subtype="PCM_16")
    raw = good.read_bytes()
    m4a = write_pyav(folder / "good.m4a", data, sr, "aac").read_bytes()
    files = {
        "empty": folder / "empty.wav",
        "truncated header": folder / "truncated.wav",
        "truncated m4a header": folder / "truncated.m4a",
        "random bytes": folder / "random.wav",
        "random bytes, no extension": folder / "random",
        "text renamed .wav": folder / "notes.wav",
        "text renamed .mp3": folder / "notes.mp3",
        "zero samples": folder / "zero.wav",
    }
    files["empty"].write_bytes(b"")
    files["truncated header"].write_bytes(raw[:30])
    files["truncated m4a header"].write_bytes(m4a[:200])
    rng = np.random.default_rng(0)
    files["random bytes"].write_bytes(rng.integers(0, 256, 20000, dtype=np.uint8).tobytes())
    files["random bytes, no extension"].write_bytes(os.urandom(4096))
    files["text renamed .wav"].write_text("Meeting notes\n" * 50)
    files["text renamed .mp3"].write_text("not audio at all\n" * 50)
    sf.write(files["zero samples"], np.zeros((0, 2), np.float32), sr)
    return files
