"""Decoding and resampling: a file streams as blocks (``stream``) or becomes an ``AudioClip``
(``load_audio``), or one ``AudioError`` line.

Samples keep the original rate and channels because loudness (BS.1770) is defined on the
programme as delivered; only ``to_model_input`` / ``ModelInput`` fold them to the 16 kHz mono
Whisper expects. soundfile (libsndfile) reads WAV/FLAC/OGG/Opus/MP3 fast and exactly; PyAV
(bundled FFmpeg) covers M4A/AAC/MP4/WebM and is the fallback for anything libsndfile refuses.
Library errors never reach the user: each failure is mapped to a one-line message naming the
file.

Memory is bounded by design, not by the file's length: analysis reads a file once, block by
block (``stream``: 2^18 frames, 2 MB of 48 kHz stereo), resamples it for the model as it goes
(``ModelInput``, the same soxr filter as ``to_model_input``, sample for sample) and keeps the
16 kHz copy in a ``SampleStore`` that moves to an unlinked temporary file past 16 MB. Three
hours at 48 kHz stereo would be 4.1 GB as float32; streamed, a few MB. ``load_audio`` stays for
what needs every sample at once (plots, playback, tests).
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from speechint_desktop.core.fsutil import atomic_write_bytes
from speechint_desktop.core.native_noise import filtered_blocks, filtered_stderr

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


# Frames per decoded block: 5.5 s at 48 kHz, 2 MB of float32 stereo. The loudness meter and the
# normaliser have always worked in chunks of this size, so streaming in the same blocks gives the
# same floating-point sums (and the same dither) as the in-memory path, bit for bit.
BLOCK_FRAMES = 1 << 18
# A ``SampleStore`` moves to disk past this many bytes (a module value, so tests can lower it):
# 4 minutes of the 16 kHz copy. Below it, ``finish`` joins the pieces (twice this, briefly).
SPILL_BYTES = 16 << 20


@dataclass
class AudioInfo:
    """What is known of a recording without holding its samples.

    ``frames`` is exact for libsndfile formats and for a stream read to its end; for formats
    decoded by FFmpeg it is the container's estimate until then (None when it has none).
    ``format``/``subtype`` are libsndfile's names (``WAV``/``PCM_16``) or, for FFmpeg, the
    container and codec (``mov,mp4,m4a,…``/``aac``); both None for in-memory audio.
    """

    sample_rate: int
    channels: int
    frames: int | None
    source: str = ""
    format: str | None = None
    subtype: str | None = None
    note: str | None = None  # a damaged or truncated file, once read to its end (``AudioStream.note``)

    @property
    def duration_s(self) -> float:
        return (self.frames or 0) / self.sample_rate


@dataclass
class Damage:
    """What decoding lost of a damaged or truncated file, counted as it goes (``AudioStream.note``
    turns it into the line a user sees: a silent gap or a missing end is otherwise invisible)."""

    packets: int = 0  # undecodable packets, each kept as silence of its duration
    silent_s: float = 0.0
    stopped: bool = False  # a decoder error ended the stream before the file's end


def _clock(seconds: float) -> str:
    s = int(seconds)
    if s < 60:
        return f"{seconds:.1f} s"
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class AudioStream:
    """A recording decoded block by block: iterate for float32 ``(n, channels)`` blocks at the
    original rate, nominally in [-1, 1]; ``info`` describes it.

    Made by ``stream``. Memory is one block whatever the file's length. Each block is checked
    as it arrives (NaN or infinity raise ``AudioError``); a stream that ends without a single
    sample raises ``AudioError`` too, so callers get the same one-line errors as ``load_audio``.
    A decoder error after some audio was produced ends the stream there (a truncated tail keeps
    what was decoded, as ``load_audio`` always has). Iterate once; ``close`` (or ``with``)
    releases the file early. What a damaged or truncated file lost is counted (``damage``) and
    said in one line by ``note`` (also ``info.note``) once the stream has ended.
    """

    def __init__(
        self, info: AudioInfo, blocks: Iterator[np.ndarray], first: np.ndarray, closer=None, damage=None
    ):
        self.info = info
        self.frames_read = 0
        # the length the file states (None: it states none), as ``info.frames`` becomes what was read
        self.header_frames = info.frames
        self.damage: Damage = damage if damage is not None else Damage()
        self._blocks = blocks
        self._first: np.ndarray | None = first
        self._closer = closer
        self._started = False

    @property
    def fraction(self) -> float:
        """How much has been read, 0..1 (by the frame count or estimate; 0 when unknown)."""
        total = self.info.frames
        return min(1.0, self.frames_read / total) if total else 0.0

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._started:
            raise RuntimeError("an AudioStream can be iterated only once")
        self._started = True
        name = self.info.source
        try:
            block = self._first
            self._first = None
            while block is not None:
                if block.shape[0]:
                    if not np.isfinite(block).all():
                        raise AudioError(f"{name}: contains invalid samples (NaN or infinity)")
                    self.frames_read += block.shape[0]
                    yield block
                block = self._next()
        finally:
            self.close()
        self.info.frames = self.frames_read
        self.info.note = self.note
        if self.frames_read == 0:
            raise AudioError(f"{name}: contains no audio (0 s)")

    def _next(self) -> np.ndarray | None:
        try:
            return next(self._blocks)
        except StopIteration:
            return None
        except (AudioError, MemoryError):
            raise
        except Exception:  # a decoder error mid-file: keep what was decoded (a truncated tail)
            self.damage.stopped = True
            return None

    @property
    def note(self) -> str | None:
        """One line for the user when the file read was damaged or cut short, else None; final
        once the stream has been read to its end. A shortfall against the header's length
        counts only past 1 s and 2 % (an MP3's count can be an estimate)."""
        d, sr, parts = self.damage, self.info.sample_rate, []
        if d.packets:
            many = "s" if d.packets != 1 else ""
            parts.append(
                f"{d.packets} damaged packet{many} could not be decoded and play as silence ({d.silent_s:.1f} s)"
            )
        header, read = self.header_frames, self.frames_read
        if header and header - read > max(sr, 0.02 * header):
            parts.append(
                f"only {_clock(read / sr)} of the {_clock(header / sr)} its header gives could be decoded: "
                "the file is damaged or truncated"
            )
        elif d.stopped:
            parts.append(
                f"decoding stopped at {_clock(read / sr)} on damaged data: the rest could not be read"
            )
        return "; ".join(parts) or None

    def close(self) -> None:
        closer, self._closer = self._closer, None
        if closer is not None:
            closer()

    def __enter__(self) -> AudioStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _clip_stream(clip: AudioClip, block_frames: int) -> AudioStream:
    x = clip.samples
    info = AudioInfo(clip.sample_rate, clip.channels, x.shape[0], clip.source)
    blocks = (x[i : i + block_frames] for i in range(block_frames, x.shape[0], block_frames))
    return AudioStream(info, blocks, x[:block_frames])


def _read_blocks(f, block_frames: int, damage: Damage) -> Iterator[np.ndarray]:
    """Blocks until libsndfile has no more. Not ``SoundFile.blocks``: it counts down the
    header's frame count and, when the data ends sooner (a truncated MP3 whose header claims
    the whole length), yields its reused buffer anyway, repeating stale audio to that length.

    A block that fails (libsndfile's FLAC decoder "lost sync" at a truncation) would take all
    its frames with it, up to 5 s at 48 kHz: that block is read again in small steps from its
    start, keeping what still decodes."""
    pos = 0
    while True:
        try:
            block = f.read(block_frames, dtype="float32", always_2d=True)
        except RuntimeError:  # soundfile.LibsndfileError
            damage.stopped = True
            yield from _salvage(f, pos)
            return
        if not block.shape[0]:
            return
        pos += block.shape[0]
        yield block


def _salvage(f, pos: int, step: int = 4096) -> Iterator[np.ndarray]:
    try:
        f.seek(pos)
    except RuntimeError:
        return
    while True:
        try:
            block = f.read(step, dtype="float32", always_2d=True)
        except RuntimeError:
            return
        if not block.shape[0]:
            return
        yield block


def _has_mp3_length_tag(path: Path) -> bool:
    """Whether an MP3 states its length (a Xing/Info or VBRI tag in its first frame). Without
    one, libsndfile's count is a guess from the first frame's bitrate (a variable-rate file can
    read a third of it), not a length a shortfall can be judged against."""
    with open(path, "rb") as f:
        head = f.read(10)
        start = 0
        if head[:3] == b"ID3" and len(head) == 10:  # skip an ID3v2 tag (its size is synchsafe)
            start = 10 + sum((b & 0x7F) << (7 * (3 - i)) for i, b in enumerate(head[6:10]))
        f.seek(start)
        first = f.read(4096)
    return any(tag in first for tag in (b"Xing", b"Info", b"VBRI"))


def _declared_frames(f) -> int | None:
    """The frame count a WAV's header declares when the file holds less (a cut-off copy):
    libsndfile reads what is there and logs ``data : N (should be M)``; None otherwise."""
    log = f.extra_info
    found = re.search(r"^data : (\d+) \(should be \d+\)", log, re.M)
    align = re.search(r"^\s*Block Align\s*: (\d+)", log, re.M)
    if not found or not align or not int(align.group(1)):
        return None
    size = int(found.group(1))
    if size >= 0xFFFF0000:  # a streaming writer's placeholder ("unknown"), not a length
        return None
    return size // int(align.group(1))


def _soundfile_stream(path: Path, name: str, block_frames: int) -> AudioStream:
    import soundfile as sf

    with filtered_stderr():
        f = sf.SoundFile(str(path))
    try:
        info = AudioInfo(f.samplerate, f.channels, f.frames, name, f.format, f.subtype)
        damage = Damage()
        blocks = _read_blocks(f, block_frames, damage)
        declared = _declared_frames(f)
        if f.subtype.startswith("MPEG"):  # mpg123 chatters on the C stderr over a damaged frame
            blocks = filtered_blocks(blocks)
        first = next(blocks, np.zeros((0, f.channels), np.float32))
    except BaseException:
        f.close()
        raise
    s = AudioStream(info, blocks, first, f.close, damage)
    if declared is not None and declared > (info.frames or 0):
        s.header_frames = declared
    elif f.subtype.startswith("MPEG") and not _has_mp3_length_tag(path):
        s.header_frames = None
    return s


_INDEXED_CONTAINERS = frozenset({"mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm"})
MAX_BAD_PACKETS = 50  # in a row (about a second of AAC): past that the rest is not audio


def _pyav_stream(path: Path, name: str, block_frames: int) -> AudioStream:
    """The first audio stream through FFmpeg, converted to packed float32 at its own rate and
    channel count (as the first frame has them) and regrouped into ``block_frames`` blocks."""
    import av

    container = av.open(str(path), mode="r")
    try:
        if not container.streams.audio:
            raise AudioError(f"{name}: no audio track found")
        st = container.streams.audio[0]
        sr = st.rate or st.codec_context.sample_rate
        channels = st.codec_context.channels or st.layout.nb_channels
        if not sr or not channels:
            raise AudioError(f"{name}: not a readable audio file")
        estimate = None
        if st.duration and st.time_base:
            estimate = int(round(float(st.duration * st.time_base) * sr))
        elif container.duration:
            estimate = int(round(container.duration / av.time_base * sr))
        info = AudioInfo(sr, channels, estimate, name, container.format.name, st.codec_context.name)
        damage = Damage()
        # MP4 and Matroska state their length in an index; elsewhere (ADTS AAC, a WAV's
        # unfinished header) FFmpeg's figure can be a guess from the bitrate or the file's size
        stated = estimate if container.format.name in _INDEXED_CONTAINERS else None

        def frames() -> Iterator[np.ndarray]:
            # packet by packet, not ``container.decode``: one damaged packet there ends the
            # stream, and an hour-long recording with a few bad bytes early on would keep only
            # its first minutes. A packet that will not decode is skipped as players do, its
            # duration kept as silence so later times stay right; a long run of them is a
            # truncated or broken file, and ends it.
            resampler, bad, lead = None, 0, 0
            for packet in container.demux(st):
                try:
                    decoded = packet.decode()
                except av.error.FFmpegError:
                    bad += 1
                    if bad > MAX_BAD_PACKETS:
                        damage.stopped = True
                        break
                    gap = (
                        round(float(packet.duration * packet.time_base * info.sample_rate))
                        if packet.duration
                        else 0
                    )
                    if gap >= 1:
                        damage.packets += 1
                        damage.silent_s += gap / info.sample_rate
                        if resampler is None:  # before the first good frame: its rate and channels
                            lead += gap
                        else:
                            yield np.zeros((gap, info.channels), np.float32)
                    continue
                bad = 0
                for frame in decoded:
                    if resampler is None:
                        resampler = av.AudioResampler(
                            format="flt", layout=frame.layout, rate=frame.sample_rate
                        )
                        lead = round(lead * frame.sample_rate / info.sample_rate)
                        info.sample_rate, info.channels = frame.sample_rate, frame.layout.nb_channels
                        if lead:  # damaged first packets: the audio after them stays at its time
                            yield np.zeros((lead, info.channels), np.float32)
                    for out in resampler.resample(frame):
                        yield out.to_ndarray().reshape(-1, info.channels)
            if resampler is not None:
                for out in resampler.resample(None):
                    yield out.to_ndarray().reshape(-1, info.channels)

        blocks = _regroup(frames(), block_frames, damage)
        first = next(blocks, None)  # sets the rate and channels the decoder really delivers
        if first is None:
            first = np.zeros((0, info.channels), np.float32)
    except BaseException:
        container.close()
        raise
    s = AudioStream(info, blocks, first, container.close, damage)
    # at the rate the decoder delivers (HE-AAC's is twice the container's)
    s.header_frames = None if stated is None else round(stated * info.sample_rate / sr)
    return s


def _regroup(pieces: Iterator[np.ndarray], size: int, damage: Damage) -> Iterator[np.ndarray]:
    """Decoder frames (~1024 samples) joined into blocks of ``size`` frames (the last shorter).

    A decoder error ends the blocks after yielding what was decoded before it.
    """
    held: list[np.ndarray] = []
    count = 0
    try:
        for piece in pieces:
            held.append(piece)
            count += piece.shape[0]
            while count >= size:
                joined = np.concatenate(held)
                yield joined[:size]
                rest = joined[size:]
                held, count = ([rest] if rest.shape[0] else []), rest.shape[0]
    except (AudioError, MemoryError):
        raise
    except Exception:
        if not held and count == 0:
            raise
        damage.stopped = True
    if count:
        yield np.concatenate(held)


def _check_path(p: Path) -> str:
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
    return name


def stream(source: str | os.PathLike | AudioClip, block_frames: int = BLOCK_FRAMES) -> AudioStream:
    """Open a file (or wrap an in-memory ``AudioClip``) for decoding block by block.

    libsndfile reads WAV/FLAC/OGG/Opus/MP3 and friends; FFmpeg (PyAV) reads M4A/AAC/MP4/WebM
    and anything libsndfile refuses. Raises ``AudioError`` only, here for a file that cannot
    be opened or has no audio at its start, later (while iterating) for invalid samples.
    """
    if isinstance(source, AudioClip):
        return _clip_stream(source, block_frames)
    p = Path(source)
    name = _check_path(p)
    if p.suffix.lower() not in _PYAV_FIRST:
        try:
            s = _soundfile_stream(p, name, block_frames)
        except Exception:  # libsndfile reports anything it cannot parse as a generic error
            s = None
        if s is not None and s.info.frames == 0 and p.stat().st_size > 64 << 10:
            # a WAV whose recorder never finished its header says 0 frames: FFmpeg reads the
            # data chunk to the file's end (and when it cannot, libsndfile's answer stands)
            try:
                s, unfinished = _pyav_stream(p, name, block_frames), s
                unfinished.close()
            except Exception:
                pass
        if s is not None:
            return s
    try:
        return _pyav_stream(p, name, block_frames)
    except AudioError:
        raise
    except MemoryError:
        raise AudioError(f"{name}: too large to decode in memory") from None
    except Exception:
        raise AudioError(f"{name}: not a readable audio file (unknown format or corrupt)") from None


def load_audio(path: str | os.PathLike) -> AudioClip:
    """Decode a whole file at its original rate and channel count. Raises ``AudioError`` only.

    For short files and for callers that need every sample at once (plots, playback, tests);
    analysis streams (``stream``) instead. When the frame count is known and plausible the
    samples are decoded into one array, so the peak is the clip plus one block.
    """
    s = stream(path)
    name = s.info.source
    try:
        frames, ch = s.info.frames, s.info.channels
        size = Path(path).stat().st_size
        # A header can claim any length: trust it only as far as a 64:1 ratio of decoded to
        # file bytes (lossless and lossy codecs stay far below), else grow a list.
        out = (
            np.empty((frames, ch), np.float32)
            if frames and frames * ch * 4 <= 64 * size + (1 << 20)
            else None
        )
        parts: list[np.ndarray] = []
        pos = 0
        for block in s:
            if out is not None and pos + block.shape[0] <= out.shape[0]:
                out[pos : pos + block.shape[0]] = block
            else:
                if out is not None:
                    parts, out = [out[:pos]], None
                parts.append(block)
            pos += block.shape[0]
    except MemoryError:
        raise AudioError(f"{name}: too large to decode in memory") from None
    data = out[:pos] if out is not None else np.concatenate(parts)
    return _checked(data, s.info.sample_rate, name)


def read_span(path: str | os.PathLike, start_s: float, end_s: float | None = None) -> AudioClip:
    """Decode ``[start_s, end_s)`` of a file (to its end with None), holding only that span:
    playing a word of a three-hour recording must not decode the recording into memory.
    libsndfile formats seek straight to the span; others are decoded up to it block by block.
    Raises ``AudioError`` only."""
    p = Path(path)
    name = _check_path(p)
    if p.suffix.lower() not in _PYAV_FIRST:
        try:
            import soundfile as sf

            with filtered_stderr():
                f = sf.SoundFile(str(p))
            with f, filtered_stderr():
                if not f.frames:  # an unfinished WAV header: ``stream`` reads it through FFmpeg
                    raise LookupError(name)
                a = min(f.frames, max(0, int(start_s * f.samplerate)))
                b = f.frames if end_s is None else min(f.frames, max(a, int(end_s * f.samplerate)))
                f.seek(a)
                data = f.read(b - a, dtype="float32", always_2d=True)
                return _checked(data, f.samplerate, name)
        except AudioError:
            raise
        except Exception:  # not for libsndfile: FFmpeg below
            pass
    s = stream(p)
    sr = s.info.sample_rate
    a = max(0, int(start_s * sr))
    b = None if end_s is None else max(a, int(end_s * sr))
    parts, pos = [], 0
    with s:
        for block in s:
            lo, hi = max(a - pos, 0), block.shape[0] if b is None else min(b - pos, block.shape[0])
            if hi > lo:
                parts.append(block[lo:hi])
            pos += block.shape[0]
            if b is not None and pos >= b:
                break
    data = np.concatenate(parts) if parts else np.zeros((0, s.info.channels), np.float32)
    return _checked(data, sr, name)


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """High-quality (soxr VHQ) resampling along axis 0; 1-D or ``(n, channels)`` float32."""
    import soxr

    x = np.asarray(x, dtype=np.float32)
    if int(sr_in) == int(sr_out) or x.shape[0] == 0:
        return x
    return soxr.resample(x, int(sr_in), int(sr_out), quality="VHQ").astype(np.float32, copy=False)


def channel_mean(x: np.ndarray) -> np.ndarray:
    """``(n, channels)`` → the float32 mean of the channels, 1-D. Column by column: numpy's
    ``mean(axis=1)`` reduces each 2-value row on its own, 14× slower (0.35 s of CPU for ten
    minutes of 48 kHz stereo); the result is the same to the bit (test)."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        return x
    if x.shape[1] == 1:
        return x[:, 0]
    out = x[:, 0] + x[:, 1]
    for c in range(2, x.shape[1]):
        out += x[:, c]
    return np.divide(out, np.float32(x.shape[1]), out=out)


def to_model_input(clip: AudioClip) -> np.ndarray:
    """The model's view: 16 kHz mono (channel mean) float32, 1-D."""
    mono = channel_mean(clip.samples)
    out = resample(mono, clip.sample_rate, MODEL_SAMPLE_RATE)
    return np.ascontiguousarray(out, dtype=np.float32)


class ModelInput:
    """``to_model_input`` block by block: feed original-rate blocks, get 16 kHz mono pieces.

    The same channel mean and the same soxr VHQ filter, run as one continuous stream
    (``soxr.ResampleStream``), so the concatenated pieces equal ``to_model_input`` of the
    whole clip sample for sample while holding only the filter's state.
    """

    def __init__(self, sample_rate: int, channels: int):
        import soxr

        self.sample_rate, self.channels = int(sample_rate), int(channels)
        self._soxr = None
        if self.sample_rate != MODEL_SAMPLE_RATE:
            self._soxr = soxr.ResampleStream(
                self.sample_rate, MODEL_SAMPLE_RATE, 1, dtype="float32", quality="VHQ"
            )

    def feed(self, block: np.ndarray) -> np.ndarray:
        mono = channel_mean(block)
        if self._soxr is None:
            return np.ascontiguousarray(mono, dtype=np.float32)
        return self._soxr.resample_chunk(np.ascontiguousarray(mono), last=False)

    def finish(self) -> np.ndarray:
        """The filter's tail (call once, after the last block)."""
        if self._soxr is None:
            return np.zeros(0, np.float32)
        return self._soxr.resample_chunk(np.zeros(0, np.float32), last=True)


class SampleStore:
    """A float32 (or ``dtype``) array built by appending, moved to an anonymous temporary file
    once it passes ``spill_bytes`` (``SPILL_BYTES``, 16 MB), so a three-hour recording's 16 kHz
    copy (0.7 GB) need not sit in memory.

    ``finish`` returns a plain ``np.ndarray`` when everything stayed in memory (short
    recordings: nothing changes for them), else the store itself, which reads like one: ``len``,
    ``shape``, ``dtype``, slicing with step 1 (a fresh array read from disk), ``take`` for
    scattered rows, and ``np.asarray`` (reads all of it: only for callers that must). The file
    is unlinked from the start (``tempfile.TemporaryFile``), so a crash leaves nothing behind;
    it lives in ``$TMPDIR``. Rows are ``width`` values wide (``width=None``: a 1-D array).
    """

    def __init__(self, width: int | None = None, spill_bytes: int | None = None, dtype=np.float32):
        import threading

        self.width = width
        self._dtype = np.dtype(dtype)
        self._row_bytes = self._dtype.itemsize * (width or 1)
        self._spill = max(int(SPILL_BYTES if spill_bytes is None else spill_bytes), self._row_bytes)
        self._parts: list[np.ndarray] = []
        self._held = 0  # rows in _parts
        self._rows = 0
        self._file = None
        self._lock = threading.Lock()

    # --- building ---------------------------------------------------------------------------

    def append(self, rows: np.ndarray) -> None:
        x = np.ascontiguousarray(rows, dtype=self._dtype)
        if self.width is None:
            x = x.reshape(-1)
        elif x.ndim != 2 or x.shape[1] != self.width:
            x = x.reshape(-1, self.width)
        if not x.shape[0]:
            return
        self._rows += x.shape[0]
        self._parts.append(x)
        self._held += x.shape[0]
        if self._held * self._row_bytes >= self._spill:
            self._flush()

    def _flush(self) -> None:
        import tempfile

        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="speechint-")
        self._file.seek(0, os.SEEK_END)
        for part in self._parts:
            self._file.write(memoryview(part).cast("B"))
        self._parts, self._held = [], 0

    def finish(self) -> np.ndarray | SampleStore:
        """The samples: an in-memory array, or this store once it spilled to disk."""
        if self._file is None:
            shape = (0,) if self.width is None else (0, self.width)
            out = np.concatenate(self._parts) if self._parts else np.zeros(shape, self._dtype)
            self._parts = [out]
            return out
        self._flush()
        self._file.flush()
        return self

    # --- reading (after finish) ---------------------------------------------------------------

    @property
    def spilled(self) -> bool:
        return self._file is not None

    @property
    def shape(self) -> tuple[int, ...]:
        return (self._rows,) if self.width is None else (self._rows, self.width)

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return self._rows * (self.width or 1)

    def __len__(self) -> int:
        return self._rows

    def _read(self, start: int, stop: int) -> np.ndarray:
        count = max(0, stop - start)
        out = np.empty((count,) if self.width is None else (count, self.width), self._dtype)
        if count:
            if self._file is None:
                data = self._parts[0] if len(self._parts) == 1 else np.concatenate(self._parts)
                return data[start:stop].copy()
            with self._lock:
                self._file.seek(start * self._row_bytes)
                got = self._file.readinto(memoryview(out).cast("B"))
            if got != count * self._row_bytes:
                raise OSError("temporary sample file was truncated")
        return out

    def __getitem__(self, key):
        if isinstance(key, slice):
            start, stop, step = key.indices(self._rows)
            if step != 1:
                raise IndexError("SampleStore slices must have step 1")
            return self._read(start, stop)
        if isinstance(key, (int, np.integer)):
            i = int(key) + (self._rows if key < 0 else 0)
            if not 0 <= i < self._rows:
                raise IndexError(key)
            return self._read(i, i + 1)[0]
        raise TypeError("SampleStore supports integer and slice indexing")

    def take(self, indices, window: int = 1 << 20) -> np.ndarray:
        """Rows at ``indices`` (any order), read in sorted windows of at most ``window`` rows."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        shape = (idx.size,) if self.width is None else (idx.size, self.width)
        out = np.empty(shape, self._dtype)
        if not idx.size:
            return out
        if idx.min() < 0 or idx.max() >= self._rows:
            raise IndexError("row index out of range")
        order = np.argsort(idx, kind="stable")
        sorted_idx = idx[order]
        i = 0
        while i < sorted_idx.size:
            lo = int(sorted_idx[i])
            j = int(np.searchsorted(sorted_idx, lo + window, side="left"))
            hi = int(sorted_idx[j - 1]) + 1
            out[order[i:j]] = self._read(lo, hi)[sorted_idx[i:j] - lo]
            i = j
        return out

    def __array__(self, dtype=None, copy=None):
        x = self._read(0, self._rows)
        return x if dtype is None else x.astype(dtype, copy=False)

    def close(self) -> None:
        f, self._file = self._file, None
        if f is not None:
            f.close()


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
