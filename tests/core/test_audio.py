"""Decoding every format, every kind of bad file, resampling for the model, and long audio."""

from __future__ import annotations

import contextlib
import os

import numpy as np
import pytest
import soundfile as sf

from speechint_desktop.core import audio, loudness
from speechint_desktop.core.audio import (
    AUDIO_EXTENSIONS,
    AudioClip,
    AudioError,
    as_clip,
    channel_mean,
    find_audio_files,
    load_audio,
    resample,
    save_wav,
    to_model_input,
)

from .conftest import FORMATS, write_pyav

LIBRARY_NOISE = ("Error opening", "Traceback", "Errno", "LibsndfileError", "av.error", "0x")


@pytest.mark.parametrize("fmt", FORMATS, ids=[f.name for f in FORMATS])
def test_every_format_round_trips(format_files, speech_stereo, fmt):
    ref, sr = speech_stereo
    clip = load_audio(format_files[fmt.name])
    assert clip.samples.dtype == np.float32 and clip.samples.ndim == 2
    assert clip.sample_rate == fmt.sample_rate
    assert clip.channels == 2
    assert clip.source == fmt.name
    # Lossy codecs add priming/padding (AAC ~ 2 frames); never more than 0.1 s.
    assert clip.duration_s == pytest.approx(4.0, abs=0.1 if not fmt.lossless else 1e-9)
    assert np.abs(clip.samples).max() <= 1.5
    ref_lufs = loudness.integrated_loudness(ref, sr)
    got = loudness.integrated_loudness(clip.samples, clip.sample_rate)
    assert got == pytest.approx(ref_lufs, abs=0.02 if fmt.lossless else 0.5)
    if fmt.lossless:
        exact = resample(ref, sr, fmt.sample_rate)
        tol = 1e-7 if fmt.subtype == "FLOAT" else 2.0**-14
        np.testing.assert_allclose(clip.samples, exact, atol=tol)


def test_8bit_scales_to_unit_range(tmp_path):
    x = np.array([-1.0, -0.5, 0.0, 0.5, 127 / 128], np.float32)
    sf.write(tmp_path / "u8.wav", x, 8000, subtype="PCM_U8")
    clip = load_audio(tmp_path / "u8.wav")
    np.testing.assert_allclose(clip.samples[:, 0], x, atol=1 / 128)


@pytest.mark.parametrize(
    "kind",
    [
        "empty",
        "truncated header",
        "truncated m4a header",
        "random bytes",
        "random bytes, no extension",
        "text renamed .wav",
        "text renamed .mp3",
        "zero samples",
    ],
)
def test_bad_files_give_one_line_error(bad_files, kind):
    path = bad_files[kind]
    with pytest.raises(AudioError) as info:
        load_audio(path)
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(f"{path.name}: ")
    assert not any(noise in msg for noise in LIBRARY_NOISE), msg
    if kind in ("empty", "zero samples"):
        assert "contains no audio" in msg


def test_bad_files_print_nothing_but_the_error(bad_files, capfd):
    """libsndfile's MP3 decoder prints "Note: Illegal Audio-MPEG-Header …" on the C stderr when
    it probes text named .mp3; the user must see only the one-line error (and stderr still works)."""
    for kind in ("text renamed .mp3", "random bytes", "truncated header"):
        with pytest.raises(AudioError):
            load_audio(bad_files[kind])
        with pytest.raises(AudioError):
            audio.read_span(bad_files[kind], 0.0, 1.0)
    os.write(2, b"stderr still here\n")
    assert capfd.readouterr().err == "stderr still here\n"


def test_a_damaged_mp3_decodes_without_the_decoders_chatter(tmp_path, capfd):
    """mpg123 resyncs over damaged frames and prints "Note: …" for each on the C stderr; the file
    decodes, and only what others wrote meanwhile reaches the user."""
    from speechint_desktop.core.native_noise import filtered_stderr

    x = (0.1 * np.sin(2 * np.pi * 220 * np.arange(16000 * 20) / 16000)).astype(np.float32)
    try:
        sf.write(tmp_path / "clean.mp3", x, 16000, format="MP3")
    except (sf.LibsndfileError, TypeError, ValueError):
        pytest.skip("this libsndfile cannot write MP3")
    data = bytearray((tmp_path / "clean.mp3").read_bytes())
    rng = np.random.default_rng(0)
    for i in rng.integers(2000, len(data) - 100, 40):
        data[i : i + 50] = rng.bytes(50)
    (tmp_path / "damaged.mp3").write_bytes(bytes(data))
    clean = (tmp_path / "clean.mp3").read_bytes()
    (tmp_path / "cut.mp3").write_bytes(clean[: len(clean) // 2 + 7])  # "Warning: Xing stream size off …"
    capfd.readouterr()
    clip = load_audio(tmp_path / "damaged.mp3")
    assert 15 < clip.duration_s <= 20  # the frames mpg123 could not decode are skipped
    # the header claims 20 s: what is there is read (not the header's length padded with
    # repeated stale audio), once, and the stream's count says so
    cut = load_audio(tmp_path / "cut.mp3").samples[:, 0]
    assert 8 < len(cut) / 16000 < 12
    s = audio.stream(tmp_path / "cut.mp3")
    assert sum(b.shape[0] for b in s) == len(cut) == s.info.frames
    # and the user is told: the transcript and levels are of what could be read
    assert s.note.startswith(f"only {len(cut) / 16000:.1f} s of the 20.0 s its header gives")
    s = audio.stream(tmp_path / "damaged.mp3")
    assert sum(b.shape[0] for b in s) == len(clip.samples) and "damaged or truncated" in s.note
    s = audio.stream(tmp_path / "clean.mp3")
    assert sum(b.shape[0] for b in s) == 320000 and s.note is None
    assert audio.read_span(tmp_path / "damaged.mp3", 5.0, 12.0).duration_s == pytest.approx(7, abs=0.1)
    with filtered_stderr():
        os.write(2, b"Note: Trying to resync...\na log line from another thread\n")
    assert capfd.readouterr().err == "a log line from another thread\n"


def test_a_truncated_flac_keeps_all_that_still_decodes(tmp_path):
    """libsndfile's FLAC decoder fails the block read that meets the cut; re-reading that block
    in small steps keeps what FFmpeg also decodes, not a whole block (5.5 s at 48 kHz) less."""
    import av

    sr = 48000
    x = (0.1 * np.sin(2 * np.pi * 220 * np.arange(sr * 20) / sr)).astype(np.float32)
    sf.write(tmp_path / "whole.flac", x, sr)
    data = (tmp_path / "whole.flac").read_bytes()
    cut = tmp_path / "cut.flac"
    cut.write_bytes(data[: len(data) // 2])
    reference = 0
    with contextlib.suppress(av.error.FFmpegError), av.open(str(cut)) as container:
        for frame in container.decode(audio=0):
            reference += frame.samples
    clip = load_audio(cut)
    s = audio.stream(cut)
    assert sum(b.shape[0] for b in s) == len(clip.samples)
    assert s.note == f"only {clip.duration_s:.1f} s of the 20.0 s its header gives could be decoded: " + (
        "the file is damaged or truncated"
    )
    assert 8 < reference / sr < 12
    assert clip.duration_s == pytest.approx(reference / sr, abs=0.25)
    assert np.allclose(clip.samples[:, 0], x[: len(clip.samples)], atol=1e-4)  # the audio itself


def test_a_damaged_m4a_skips_its_bad_packets_and_keeps_its_timeline(tmp_path):
    """A few damaged bytes early in an AAC file: FFmpeg fails those packets; the rest of the
    recording is still read (not cut at the first bad packet), each skipped packet's span
    kept as silence so the later audio stays at its time."""
    sr = 48000
    x = (0.1 * np.sin(2 * np.pi * 220 * np.arange(sr * 20) / sr)).astype(np.float32)[:, None]
    write_pyav(tmp_path / "clean.m4a", x, sr, "aac")
    data = bytearray((tmp_path / "clean.m4a").read_bytes())
    rng = np.random.default_rng(1)
    for i in rng.integers(len(data) // 5, len(data) * 3 // 5, 10):
        data[i : i + 30] = rng.bytes(30)
    (tmp_path / "damaged.m4a").write_bytes(bytes(data))
    clean = load_audio(tmp_path / "clean.m4a").samples[:, 0]
    damaged = load_audio(tmp_path / "damaged.m4a").samples[:, 0]
    assert len(damaged) == len(clean)  # 20 s, not the ~4 s before the first bad packet
    s = audio.stream(tmp_path / "damaged.m4a")
    assert sum(b.shape[0] for b in s) == len(clean)
    silent = s.damage.silent_s
    assert s.damage.packets > 0 and 0 < silent < 2 and not s.damage.stopped
    assert (
        s.note
        == f"{s.damage.packets} damaged packets could not be decoded and play as silence ({silent:.1f} s)"
    )
    # the first packets damaged: before any frame decodes, their span is silence all the same
    import av

    with av.open(str(tmp_path / "clean.m4a")) as container:
        packets = [(p.pos, p.size) for p in container.demux(container.streams.audio[0]) if p.size]
    data = bytearray((tmp_path / "clean.m4a").read_bytes())
    for pos, size in packets[:3]:
        data[pos : pos + size] = rng.bytes(size)
    (tmp_path / "lead.m4a").write_bytes(bytes(data))
    s = audio.stream(tmp_path / "lead.m4a")
    lead = np.concatenate(list(s))[:, 0]
    assert len(lead) == pytest.approx(len(clean), abs=1024)  # AAC's priming, ~21 ms
    assert (lead[-sr * 5 :] == clean[-sr * 5 :]).all() and s.damage.packets == 3
    same = np.abs(damaged - clean) < 1e-3
    assert 0.8 < same.mean() < 1.0  # silence where packets were lost, the same audio elsewhere
    assert same[-sr * 5 :].all()  # the end, after every damaged packet, exactly in place


def test_a_length_is_judged_only_against_a_stated_one(tmp_path, jfk_path):
    """A variable-rate MP3 without a Xing tag: libsndfile's frame count is a guess from the first
    frame's bitrate (here ~3.6x the real length); reading less than that is no damage and gets
    no note. A WebM states its length: cut or damaged, it gets one."""
    x = load_audio(jfk_path).samples
    x = np.concatenate([x, np.zeros_like(x[:44100]), 0.1 * x])  # quiet and loud frames: VBR
    sr = load_audio(jfk_path).sample_rate
    for xing in ("1", "0"):
        write_pyav(tmp_path / f"vbr{xing}.mp3", x, sr, "libmp3lame", options={"write_xing": xing}, qscale=4)
    with sf.SoundFile(str(tmp_path / "vbr0.mp3")) as f:
        assert f.frames > 2 * len(x)  # the guess the note must not trust
    for name in ("vbr0.mp3", "vbr1.mp3"):
        s = audio.stream(tmp_path / name)
        assert sum(b.shape[0] for b in s) == pytest.approx(len(x), abs=2000) and s.note is None, name
    y = (0.1 * np.sin(2 * np.pi * 220 * np.arange(48000 * 20) / 48000)).astype(np.float32)[:, None]
    data = write_pyav(tmp_path / "clean.webm", y, 48000, "libopus").read_bytes()
    (tmp_path / "cut.webm").write_bytes(data[: len(data) // 2])
    for name, ok in (("clean.webm", True), ("cut.webm", False)):
        s = audio.stream(tmp_path / name)
        read = sum(b.shape[0] for b in s) / 48000
        assert (s.note is None) == ok and read == pytest.approx(20 if ok else 10, abs=0.5), name
    assert s.note == f"only {read:.1f} s of the 20.0 s its header gives could be decoded: " + (
        "the file is damaged or truncated"
    )


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(AudioError, match=r"^nope\.wav: file not found$"):
        load_audio(tmp_path / "nope.wav")
    with pytest.raises(AudioError, match="folder"):
        load_audio(tmp_path)


def test_video_without_audio_track(tmp_path):
    import av

    path = tmp_path / "silent_video.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for i in range(5):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), i * 40, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    with pytest.raises(AudioError, match=r"^silent_video\.mp4: no audio track"):
        load_audio(path)


def test_truncated_data_keeps_the_intact_part(bad_files, tmp_path):
    """A recording cut off mid-stream (a crashed recorder) still yields what was written."""
    raw = (bad_files["empty"].parent / "good.wav").read_bytes()
    path = tmp_path / "cut.wav"
    path.write_bytes(raw[: 44 + 44100 * 2 * 2])  # header + 1 s of 16-bit stereo
    clip = load_audio(path)
    assert clip.duration_s == pytest.approx(1.0, abs=0.01)
    s = audio.stream(path)
    whole = sf.info(str(bad_files["empty"].parent / "good.wav")).duration
    assert sum(b.shape[0] for b in s) == len(clip.samples)
    assert s.note.startswith(f"only 1.0 s of the {whole:.1f} s its header gives could be decoded")


def test_an_unfinished_wav_header_reads_to_the_end(tmp_path):
    """A recorder killed before it wrote the WAV's sizes leaves 0 (or "unknown") in them: the
    audio is all there, and is read to the file's end, without a note."""
    import struct

    sr = 16000
    x = (0.1 * np.sin(2 * np.pi * 220 * np.arange(sr * 8) / sr)).astype(np.float32)
    sf.write(tmp_path / "done.wav", x, sr, subtype="PCM_16")
    for size in (0, 0xFFFFFFFF):
        data = bytearray((tmp_path / "done.wav").read_bytes())
        i = data.find(b"data")
        data[4:8] = data[i + 4 : i + 8] = struct.pack("<I", size)
        path = tmp_path / f"unfinished_{size}.wav"
        path.write_bytes(bytes(data))
        clip = load_audio(path)
        assert clip.duration_s == pytest.approx(8.0, abs=1e-3), size
        np.testing.assert_allclose(clip.samples[:, 0], x, atol=2.0**-14)
        s = audio.stream(path)
        assert sum(b.shape[0] for b in s) == len(x) and s.note is None
        assert audio.read_span(path, 2.0, 3.5).duration_s == pytest.approx(1.5, abs=1e-3)


def test_silence_is_valid_audio(tmp_path):
    sf.write(tmp_path / "silence.wav", np.zeros((16000, 1), np.float32), 16000)
    clip = load_audio(tmp_path / "silence.wav")
    assert clip.duration_s == 1.0 and not clip.samples.any()


def _sine(db: float, seconds: float, sr: int) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (10 ** (db / 20) * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)


def test_six_channels_load_and_measure(tmp_path):
    """EBU Tech 3341 case 6 as a 5.1 file (L R C LFE Ls Rs, silent LFE): -23 LUFS."""
    lr, c, s = _sine(-28, 5, 48000), _sine(-24, 5, 48000), _sine(-30, 5, 48000)
    six = np.stack([lr, lr, c, np.zeros_like(lr), s, s], axis=1)
    sf.write(tmp_path / "surround.wav", six, 48000, subtype="PCM_24")
    clip = load_audio(tmp_path / "surround.wav")
    assert (clip.channels, clip.sample_rate, clip.duration_s) == (6, 48000, 5.0)
    assert loudness.measure(clip).integrated_lufs == pytest.approx(-23.0, abs=0.1)
    assert to_model_input(clip).shape == (80000,)


def test_8khz_loads_and_measures(tmp_path):
    x = _sine(-23, 4, 8000)
    sf.write(tmp_path / "phone.wav", np.stack([x, x], axis=1), 8000, subtype="PCM_16")
    clip = load_audio(tmp_path / "phone.wav")
    assert (clip.channels, clip.sample_rate, clip.duration_s) == (2, 8000, 4.0)
    result = loudness.measure(clip)
    assert result.integrated_lufs == pytest.approx(-23.0, abs=0.3)  # 1 kHz is 1/4 of 8 kHz
    assert result.trace.times.size == 400
    assert to_model_input(clip).shape == (64000,)


def test_model_input_is_16k_mono_float32_and_keeps_level():
    sr = 44100
    t = np.arange(3 * sr) / sr
    left = 0.5 * np.sin(2 * np.pi * 1000 * t)
    clip = as_clip(np.stack([left, left], axis=1), sr)
    x = to_model_input(clip)
    assert x.dtype == np.float32 and x.ndim == 1 and x.shape == (48000,)
    # soxr VHQ: a 1 kHz tone keeps its level to 0.01 dB away from the edges.
    mid = x[8000:-8000]
    assert 10 * np.log10(np.mean(mid.astype(np.float64) ** 2)) == pytest.approx(
        20 * np.log10(0.5) - 3.0103, abs=0.01
    )
    # Channel mean: opposite channels cancel.
    assert np.abs(to_model_input(as_clip(np.stack([left, -left], axis=1), sr))).max() < 1e-6


def test_channel_mean_is_numpys_mean_to_the_bit():
    rng = np.random.default_rng(3)
    for channels in (1, 2, 3, 6):
        x = rng.standard_normal((4801, channels)).astype(np.float32)
        got = channel_mean(x)
        assert got.dtype == np.float32 and got.shape == (4801,)
        assert np.array_equal(got, x.mean(axis=1, dtype=np.float32))
    mono = rng.standard_normal(10).astype(np.float32)
    assert np.array_equal(channel_mean(mono), mono)
    x = rng.standard_normal((10, 2)).astype(np.float32)
    before = x.copy()
    channel_mean(x)
    assert np.array_equal(x, before)  # the input is left alone


def test_resample_same_rate_and_2d():
    x = np.random.default_rng(2).standard_normal((22050, 2)).astype(np.float32)
    assert resample(x, 22050, 22050) is x or np.array_equal(resample(x, 22050, 22050), x)
    y = resample(x, 22050, 16000)
    assert y.shape == (16000, 2) and y.dtype == np.float32


def test_as_clip_conversions_and_errors():
    assert as_clip(np.array([0, 16384, -32768], np.int16)).samples[:, 0].tolist() == [0.0, 0.5, -1.0]
    ch_first = np.zeros((2, 1000), np.float32)
    assert as_clip(ch_first).samples.shape == (1000, 2)
    clip = as_clip(np.zeros(16000), 16000)
    assert isinstance(clip, AudioClip) and clip.duration_s == 1.0 and clip.channels == 1
    with pytest.raises(AudioError, match="contains no audio"):
        as_clip(np.zeros(0))
    with pytest.raises(AudioError, match="NaN"):
        as_clip(np.array([0.0, np.nan, 0.1]))
    with pytest.raises(AudioError, match="1-D or 2-D"):
        as_clip(np.zeros((2, 2, 2)))
    with pytest.raises(AudioError, match="sample rate"):
        as_clip(np.zeros(10), 0)


def test_find_audio_files(tmp_path):
    (tmp_path / "a" / "deep").mkdir(parents=True)
    (tmp_path / ".hidden").mkdir()
    for rel in ["b.WAV", "a/x.flac", "a/deep/y.m4a", "a/notes.txt", ".hidden/z.wav", "a/.dot.mp3"]:
        (tmp_path / rel).write_bytes(b"x")
    found = find_audio_files(tmp_path)
    assert found == sorted([tmp_path / "a/deep/y.m4a", tmp_path / "a/x.flac", tmp_path / "b.WAV"])
    explicit = tmp_path / "a" / "notes.txt"
    assert find_audio_files([explicit, tmp_path / "b.WAV"]) == sorted([explicit, tmp_path / "b.WAV"])
    assert {".wav", ".flac", ".ogg", ".opus", ".mp3", ".m4a", ".aac", ".mp4"} <= AUDIO_EXTENSIONS


def test_save_wav_is_atomic_and_round_trips(tmp_path):
    x = (np.random.default_rng(3).standard_normal((8000, 2)) * 0.1).astype(np.float32)
    out = save_wav(tmp_path / "sub" / "x.wav", x, 8000, subtype="FLOAT")
    np.testing.assert_array_equal(load_audio(out).samples, x)
    save_wav(tmp_path / "sub" / "y.wav", x[:, 0], 8000)
    assert sf.info(tmp_path / "sub" / "y.wav").subtype == "PCM_16"
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["x.wav", "y.wav"]


def test_long_form_decodes_and_measures(tmp_path, speech_stereo):
    """10 minutes of tiled real speech as FLAC, and 2 minutes as AAC (the PyAV path; encoding
    AAC is the slow part here, decoding 10 minutes of it takes under a second)."""
    data, sr = speech_stereo
    mono16 = resample(data.mean(axis=1), sr, 16000)
    ten_min = np.tile(mono16, int(np.ceil(600 * 16000 / mono16.size)))[: 600 * 16000]
    sf.write(tmp_path / "long.flac", ten_min, 16000)
    write_pyav(tmp_path / "long.m4a", ten_min[: 120 * 16000, None], 16000, "aac")
    ref = loudness.integrated_loudness(mono16, 16000)
    for name, seconds in (("long.flac", 600), ("long.m4a", 120)):
        clip = load_audio(tmp_path / name)
        assert clip.duration_s == pytest.approx(seconds, abs=0.2)
        result = loudness.measure(clip)
        assert result.trace.times.size == pytest.approx(seconds * 100, abs=20)
        assert result.integrated_lufs == pytest.approx(ref, abs=0.3 if name.endswith("m4a") else 0.02)


def test_read_span_decodes_only_the_span_in_every_format(format_files):
    """Playing a word reads just its span (libsndfile seeks; FFmpeg formats decode up to it):
    the same samples as slicing the whole decoded file, to within a lossy decoder's seek."""
    for name, path in format_files.items():
        whole = audio.load_audio(path)
        sr = whole.sample_rate
        span = audio.read_span(path, 2.0, 3.5)
        want = whole.samples[int(2.0 * sr) : int(3.5 * sr)]
        assert span.sample_rate == sr and span.samples.shape == want.shape, name
        lossless = name.endswith((".wav", ".flac"))
        err = np.abs(span.samples - want).max()
        assert err == 0 if lossless else np.sqrt(np.mean((span.samples - want) ** 2)) < 0.02, (name, err)
        tail = audio.read_span(path, whole.duration_s - 1.0)
        assert abs(tail.samples.shape[0] - sr) <= 1, name
    with pytest.raises(audio.AudioError, match="no audio"):
        audio.read_span(format_files["pcm16.wav"], 1e4, 1e4 + 1)
    with pytest.raises(audio.AudioError, match="not found"):
        audio.read_span("/nonexistent/x.wav", 0, 1)
