"""Streaming: files decoded, resampled, measured and normalised block by block give the numbers
the in-memory path gives (same formats, the EBU files, real speech), in memory that does not
grow with the recording's length (issue 9, item 4).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechint_desktop.core import audio, delivery, normalize, recording, vad
from speechint_desktop.core import loudness as L
from speechint_desktop.core import truepeak as T
from speechint_desktop.core.options import TranscribeOptions

from .conftest import FORMATS

REPO = Path(__file__).resolve().parents[2]
EBU = REPO.parent / "shared" / "ebu"
PROGRAMME = ("integrated_lufs", "loudness_range_lu", "rms_dbfs", "sample_peak_dbfs", "true_peak_dbtp")
MAXIMA = ("max_momentary_lufs", "max_short_term_lufs")


def close(a, b, tol: float) -> bool:
    if a is None or b is None:
        return a is b
    return (math.isinf(a) and a == b) or abs(a - b) <= tol


def assert_same_loudness(got, ref, tol: float = 1e-9) -> None:
    """Programme values equal; traces equal where they mean something (above -70 LUFS the
    cumulative sums are exact to ~1e-12; far below it both are float noise)."""
    for key in PROGRAMME + MAXIMA + ("duration_s",):
        assert close(getattr(got, key), getattr(ref, key), tol), (key, getattr(got, key), getattr(ref, key))
    assert got.note == ref.note
    if ref.trace is None:
        return
    np.testing.assert_array_equal(got.trace.times, ref.trace.times)
    for key in ("momentary_lufs", "short_term_lufs", "rms_dbfs"):
        a, b = getattr(got.trace, key), getattr(ref.trace, key)
        live = b > -70
        np.testing.assert_allclose(a[live], b[live], atol=1e-6, err_msg=key)
        assert (a[~live] <= -60).all(), key
    if ref.trace.true_peak_dbtp is not None:
        np.testing.assert_array_equal(got.trace.true_peak_dbtp, ref.trace.true_peak_dbtp)


# --- decoding and resampling ---------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS, ids=[f.name for f in FORMATS])
def test_stream_is_the_whole_file_block_by_block(format_files, fmt):
    path = format_files[fmt.name]
    with audio.stream(path, block_frames=10007) as s:
        assert (s.info.sample_rate, s.info.channels, s.info.source) == (fmt.sample_rate, 2, fmt.name)
        blocks = list(s)
    assert all(b.shape[0] == 10007 for b in blocks[:-1]) and blocks[-1].shape[0] <= 10007
    x = np.concatenate(blocks)
    assert x.dtype == np.float32 and s.info.frames == s.frames_read == x.shape[0]
    assert s.note is None  # a whole file: nothing for the user to be told
    np.testing.assert_array_equal(x, audio.load_audio(path).samples)
    if fmt.writer == "soundfile":  # libsndfile's own whole-file read, sample for sample
        np.testing.assert_array_equal(x, sf.read(str(path), dtype="float32", always_2d=True)[0])


@pytest.mark.parametrize(
    "kind",
    [
        "empty",
        "truncated header",
        "truncated m4a header",
        "random bytes",
        "text renamed .mp3",
        "zero samples",
    ],
)
def test_stream_errors_are_load_audio_errors(bad_files, kind):
    path = bad_files[kind]
    with pytest.raises(audio.AudioError) as expected:
        audio.load_audio(path)
    with pytest.raises(audio.AudioError) as got:
        list(audio.stream(path))
    assert str(got.value) == str(expected.value)


def test_stream_rejects_invalid_samples_where_they_are(tmp_path):
    x = np.zeros((3000, 1), np.float32)
    x[2500] = np.nan
    sf.write(tmp_path / "nan.wav", x, 8000, subtype="FLOAT")
    s = audio.stream(tmp_path / "nan.wav", block_frames=1000)
    got = []
    with pytest.raises(audio.AudioError, match=r"^nan\.wav: contains invalid samples"):
        for block in s:
            got.append(block)
    assert len(got) == 2  # the blocks before the bad one were delivered


@pytest.mark.parametrize("sr", [8000, 16000, 22050, 44100, 48000])
def test_model_input_stream_is_to_model_input(sr):
    rng = np.random.default_rng(sr)
    x = (0.1 * rng.standard_normal((sr * 3 + 11, 2))).astype(np.float32)
    want = audio.to_model_input(audio.as_clip(x, sr))
    m = audio.ModelInput(sr, 2)
    parts, i = [], 0
    while i < x.shape[0]:
        k = int(rng.integers(1, sr))
        parts.append(m.feed(x[i : i + k]))
        i += k
    parts.append(m.finish())
    np.testing.assert_array_equal(np.concatenate(parts), want)


def test_sample_store_spills_to_an_unlinked_file(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    rng = np.random.default_rng(0)
    x = rng.standard_normal(50_000).astype(np.float32)
    small = audio.SampleStore()
    small.append(x[:100])
    assert isinstance(small.finish(), np.ndarray)  # short recordings: a plain array, as before
    store = audio.SampleStore(spill_bytes=4096)
    for a in range(0, x.size, 777):
        store.append(x[a : a + 777])
    out = store.finish()
    assert out is store and store.spilled and not list(tmp_path.iterdir())  # unlinked from the start
    assert (len(store), store.shape, store.dtype, store.ndim) == (x.size, x.shape, np.float32, 1)
    np.testing.assert_array_equal(store[1234:40_000], x[1234:40_000])
    np.testing.assert_array_equal(store[-5:], x[-5:])
    assert store[7] == x[7] and store[-1] == x[-1]
    idx = rng.integers(0, x.size, 500)
    np.testing.assert_array_equal(store.take(idx, window=3000), x[idx])
    np.testing.assert_array_equal(np.asarray(store), x)
    with pytest.raises(IndexError):
        store[::2]
    wide = audio.SampleStore(width=2, spill_bytes=1000)
    y = rng.standard_normal((3000, 2)).astype(np.float32)
    wide.append(y[:1000])
    wide.append(y[1000:])
    assert wide.finish() is wide
    np.testing.assert_array_equal(wide[10:2000], y[10:2000])
    np.testing.assert_array_equal(wide.take([2999, 0, 5]), y[[2999, 0, 5]])
    exact = audio.SampleStore(width=2, spill_bytes=1000, dtype=np.float64)  # the loudness grid's
    z = np.cumsum(rng.standard_normal((3000, 2)), axis=0)
    exact.append(z)
    assert exact.finish() is exact and exact.dtype == np.float64
    np.testing.assert_array_equal(exact.take([2999, 0, 5]), z[[2999, 0, 5]])
    store.close()
    wide.close()
    exact.close()


def test_speech_detector_is_speech_probabilities(jfk_path):
    x = audio.to_model_input(audio.load_audio(jfk_path))
    x = np.tile(x, 3)  # 33 s: two full 16 s blocks and a partial one
    want = vad.speech_probabilities(x)
    d = vad.SpeechDetector()
    rng = np.random.default_rng(1)
    i = 0
    while i < x.size:
        k = int(rng.integers(1, 100_000))
        d.feed(x[i : i + k])
        i += k
    np.testing.assert_array_equal(d.finish(), want)


def test_true_peak_steps_of_a_stream_equal_fixed_edges():
    rng = np.random.default_rng(4)
    x = (0.2 * rng.standard_normal((44100 * 3 + 29, 2))).astype(np.float32)
    fixed = T.true_peak(x, 44100, T.step_edges(x.shape[0], 44100, 0.01))
    meter = T.TruePeakMeter(44100, 2, step_ms=10)
    i = 0
    while i < x.shape[0]:
        k = int(rng.integers(1, 30_000))
        meter.feed(x[i : i + k])
        i += k
    meter.finish()
    np.testing.assert_array_equal(meter.interval_peaks, fixed.interval_peaks)
    np.testing.assert_array_equal(meter.edges, fixed.edges)
    assert meter.peak == fixed.peak


# --- measuring a file as it streams ---------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS, ids=[f.name for f in FORMATS])
def test_prepare_measures_what_the_whole_clip_measures(format_files, fmt):
    """One streaming pass (decode, 16 kHz copy, speech detection, loudness) against the
    in-memory path on the same file: the same model input, speech and loudness."""
    path = format_files[fmt.name]
    p = recording.prepare(path, TranscribeOptions())
    clip = audio.load_audio(path)
    assert isinstance(p.clip, audio.AudioInfo) and p.clip.duration_s == clip.duration_s
    x = audio.to_model_input(clip)
    np.testing.assert_array_equal(np.asarray(p.x), x)
    np.testing.assert_array_equal(p.probs, vad.speech_probabilities(x))
    assert p.speech  # real speech
    ref = L.measure(clip, speech=p.speech_s)
    assert p.loud.trace is None  # not held through decoding; made from the grid for the result
    assert_same_loudness(recording.with_trace(p).loud, ref)
    # speech regions are known only after the pass: measured on the grid, to the millisecond
    # (a region reaching the end of the recording keeps its end)
    n, sr = clip.samples.shape[0], clip.sample_rate
    ms = [(round(a, 3), b if round(b * sr) >= n else round(b, 3)) for a, b in p.speech_s]
    on_grid = L.measure(clip, speech=ms)
    assert p.loud.speech_integrated_lufs == pytest.approx(on_grid.speech_integrated_lufs, abs=1e-6)
    assert p.loud.speech_rms_dbfs == pytest.approx(on_grid.speech_rms_dbfs, abs=1e-6)
    assert p.loud.speech_integrated_lufs == pytest.approx(ref.speech_integrated_lufs, abs=0.01)
    assert p.loud.speech_rms_dbfs == pytest.approx(ref.speech_rms_dbfs, abs=0.01)
    assert p.loud.speech_duration_s == pytest.approx(ref.speech_duration_s, abs=0.002 * len(ms))


def ebu(name: str) -> Path:
    p = EBU / name
    if not p.exists():
        pytest.fail(f"missing EBU test file {p}: the shared/ebu folder must sit beside the repo")
    return p


@pytest.mark.parametrize(
    ("name", "lufs"),
    [
        ("seq-3341-1-16bit.wav", -23.0),
        ("seq-3341-2-16bit.wav", -33.0),
        ("seq-3341-12-24bit.wav", -23.0),
        ("seq-3341-15-24bit.wav", None),
        ("seq-3341-19-24bit.wav", None),
        ("seq-3341-13-7-24bit.wav", None),
    ],
)
def test_ebu_files_stream_to_the_same_numbers(name, lufs):
    path = ebu(name)
    p = recording.with_trace(recording.prepare(path, TranscribeOptions(vad=False)))
    ref = L.measure(audio.load_audio(path))
    assert_same_loudness(p.loud, ref)
    m = delivery.measure_file(path)  # the delivery check's own streaming pass
    assert_same_loudness(m.loudness, L.measure(audio.load_audio(path), trace=False))
    assert (m.loudness.asl_dbfs, m.loudness.asl_activity) == (p.loud.asl_dbfs, p.loud.asl_activity)
    if lufs is not None:
        assert p.loud.integrated_lufs == pytest.approx(lufs, abs=0.1)


def test_measure_file_streams_like_measure_clip(jfk_path):
    m = delivery.measure_file(jfk_path, speech=True)
    ref = delivery.measure_clip(audio.load_audio(jfk_path), speech=True)
    assert m.speech == ref.speech
    assert_same_loudness(m.loudness, ref.loudness)
    assert m.loudness.speech_integrated_lufs == pytest.approx(ref.loudness.speech_integrated_lufs, abs=1e-9)
    assert m.loudness.speech_rms_dbfs == pytest.approx(ref.loudness.speech_rms_dbfs, abs=1e-9)
    assert m.noise_floor_dbfs == pytest.approx(ref.noise_floor_dbfs, abs=1e-9)
    assert m.loudness.asl_dbfs == pytest.approx(ref.loudness.asl_dbfs, abs=1e-3)  # rounded to 0.001
    assert m.loudness.asl_activity == pytest.approx(ref.loudness.asl_activity, abs=1e-4)
    assert m.samples is None and m.info.frames == 11 * 44100  # nothing decoded is kept …
    assert m.clip.samples.shape == (11 * 44100, 2)  # … until asked for


def test_span_levels_from_the_grid(jfk_path):
    """Word and segment levels from the pass's grid: exact for times to the millisecond (as
    results are written), and a span's LUFS within 0.01 LU of re-measuring its samples (the
    grid keeps the programme's K-weighting running through the span's start)."""
    clip = audio.load_audio(jfk_path)
    p = recording.with_trace(recording.prepare(jfk_path, TranscribeOptions()))
    levels, trace = p.levels, p.loud.trace
    rng = np.random.default_rng(2)
    starts = np.round(rng.uniform(-0.1, 10.9, 300), 3)
    ends = np.round(starts + rng.choice([0.0, 0.004, 0.03, 0.25, 0.8, 3.0], 300), 3)
    rms, mom = L.span_levels(levels, trace, starts, ends)
    want_rms, want_mom = L.span_levels(clip, trace, starts, ends)
    np.testing.assert_allclose(rms, want_rms, atol=1e-6, equal_nan=True)
    np.testing.assert_array_equal(mom, want_mom)
    for a, b in zip(starts[::15], ends[::15], strict=True):
        got, want = L.span_loudness(levels, a, b), L.span_loudness(clip, a, b)
        assert got[0] == pytest.approx(want[0], abs=1e-6)
        assert (got[1] is None) == (want[1] is None), (a, b)
        if want[1] is not None:
            assert got[1] == pytest.approx(want[1], abs=0.01), (a, b)
    # a time between milliseconds moves at most half a millisecond
    odd = L.span_levels(levels, None, [2.0004], [2.5006])[0]
    assert odd[0] == pytest.approx(L.span_levels(clip, None, [2.0], [2.501])[0][0], abs=1e-6)


def test_a_grid_on_disk_measures_what_one_in_memory_does(jfk_path, monkeypatch):
    """Past ``GRID_SPILL_BYTES`` (about 11 minutes) the grid is read back from its file: the
    same numbers to the bit, for the whole recording and for any span."""
    kept = recording.with_trace(recording.prepare(jfk_path, TranscribeOptions()))
    monkeypatch.setattr(L, "GRID_SPILL_BYTES", 4096)
    spilled = recording.with_trace(recording.prepare(jfk_path, TranscribeOptions()))
    assert isinstance(kept.levels._tens, np.ndarray)
    assert isinstance(spilled.levels._tens, audio.SampleStore) and spilled.levels._tens.spilled
    assert_same_loudness(spilled.loud, kept.loud, tol=0.0)
    for key in ("momentary_lufs", "short_term_lufs", "rms_dbfs"):
        np.testing.assert_array_equal(getattr(spilled.loud.trace, key), getattr(kept.loud.trace, key))
    assert spilled.loud.speech_integrated_lufs == kept.loud.speech_integrated_lufs
    starts = np.round(np.random.default_rng(3).uniform(0, 10.5, 200), 3)
    ends = starts + 0.437
    for a, b in zip(
        L.span_levels(spilled.levels, spilled.loud.trace, starts, ends),
        L.span_levels(kept.levels, kept.loud.trace, starts, ends),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)
    spilled.levels.close()


def test_previews_of_long_recordings_show_coarser_traces(jfk_path, monkeypatch):
    """A preview (the app's view while decoding) of a recording past ``PREVIEW_STEPS`` steps
    shows traces at a whole multiple of the step, the same values at those times, and holds
    no full-resolution trace until the result; a short one's preview has the result's own."""
    short = recording.prepare(jfk_path, TranscribeOptions())
    first = recording.preview(short, "m").loudness.trace
    assert first is not None and first is recording.with_trace(short).loud.trace  # made once
    monkeypatch.setattr(recording, "PREVIEW_STEPS", 300)  # jfk's 11 s: 1100 steps
    p = recording.prepare(jfk_path, TranscribeOptions())
    coarse = recording.preview(p, "m").loudness.trace
    assert p.loud.trace is None and coarse.step == pytest.approx(0.04)
    full = recording.with_trace(p).loud.trace
    np.testing.assert_allclose(coarse.times, full.times[3::4][: coarse.times.size], atol=1e-12)
    for key in ("momentary_lufs", "short_term_lufs", "rms_dbfs"):
        np.testing.assert_array_equal(getattr(coarse, key), getattr(full, key)[3::4][: coarse.times.size])
    assert recording.preview(p, "m").loudness.trace is full  # once the full one exists, that one


def test_segments_and_words_take_their_levels_from_the_grid(jfk_path):
    """``recording.segments`` with decoded text placed by hand: each word's and segment's
    levels are those of the clip's samples over the written (millisecond) times."""
    from speechint_desktop.core.decode import RawWord

    p = recording.prepare(jfk_path, TranscribeOptions())
    words = [RawWord(0.3401, 0.71249, " And", 0.9), RawWord(0.7126, 1.0, " so", 0.8)]
    words2 = [RawWord(3.1234, 3.5, " ask", 0.9), RawWord(3.5, 4.6667, " not", 0.95)]
    p.decoded = [
        recording.Decoded(0.3, 1.0, "And so", words, None, -0.2, 0.01, 0.0),
        recording.Decoded(3.1, 4.7, "ask not", words2, None, -0.2, 0.01, 0.0),
    ]
    segs = recording.segments(p)
    clip = audio.load_audio(jfk_path)
    assert [s.text for s in segs] == ["And so", "ask not"]
    for s in segs:
        rms, lufs = L.span_loudness(clip, s.start, s.end)
        assert s.rms_dbfs == pytest.approx(rms, abs=1e-6)
        assert s.lufs == pytest.approx(lufs, abs=0.01)
        for w in s.words:
            r, m = L.word_levels(clip, p.loud.trace, w.start, w.end)
            assert w.rms_dbfs == pytest.approx(round(r, 2), abs=1e-9)
            assert w.max_momentary_lufs == pytest.approx(round(m, 2), abs=1e-9)


# --- normalising as a stream ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "subtype"), [("d16.wav", "PCM_16"), ("d24.flac", "PCM_24"), ("lossy.ogg", "VORBIS")]
)
def test_normalize_writes_what_rendering_in_memory_writes(jfk_path, tmp_path, name, subtype):
    """The streamed output is the in-memory render of the input at the plan's gain, sample for
    sample (the same dither sequence too), and its report measures that output."""
    x = audio.load_audio(jfk_path).samples * np.float32(0.2)
    src = tmp_path / name
    sf.write(str(src), x, 44100, subtype=subtype)
    r = normalize.normalize_file(src, delivery.PRESETS["apple-podcasts"], out_dir=tmp_path / "out")
    fmt = normalize.output_format(src, 2)
    want = normalize.render(audio.load_audio(src).samples, r.plan.gain_db, fmt)
    got = sf.read(r.output, dtype="float64", always_2d=True)[0]
    np.testing.assert_array_equal(got, want.astype(np.float64))
    ref = L.measure(audio.as_clip(want, 44100), trace=False)
    assert r.after == pytest.approx(ref.integrated_lufs, abs=1e-9)
    assert json.loads(Path(r.report).read_text())["after_loudness"]["true_peak_dbtp"] == pytest.approx(
        ref.true_peak_dbtp, abs=1e-9
    )
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        [Path(r.output).name, Path(r.report).name]
    )  # no temporary file left behind


# --- memory ----------------------------------------------------------------------------------------

MEMORY_SCRIPT = textwrap.dedent(
    """
    import json, resource, sys
    import numpy as np
    import soundfile as sf
    from speechint_desktop.core import recording
    from speechint_desktop.core.options import TranscribeOptions

    warm = sys.argv[2]
    sf.write(warm, np.zeros((48000, 2), np.float32), 48000)
    recording.prepare(warm, TranscribeOptions())  # imports, the VAD model, first-use buffers
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    p = recording.with_trace(recording.prepare(sys.argv[1], TranscribeOptions()))
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"growth_mb": (after - before) / 1024, "spilled": type(p.x).__name__,
                      "duration": p.clip.duration_s, "speech": len(p.speech),
                      "lufs": p.loud.integrated_lufs, "trace": int(p.loud.trace.times.size)}))
    """
)


def test_prepare_memory_does_not_grow_with_the_recording(tmp_path):
    """A 12-minute 48 kHz stereo WAV (276 MB as float32, which the old path held twice over plus
    its 16 kHz copy) is prepared in a fresh process: the peak RSS grows by far less than the
    decoded audio. Written block by block here, so the test itself stays small."""
    minutes, sr = 12, 48000
    path = tmp_path / "long.wav"
    rng = np.random.default_rng(0)
    t = np.arange(sr * 10) / sr
    tone = (0.1 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 0.3 * t) > 0)).astype(np.float32)
    with sf.SoundFile(str(path), "w", sr, 2, subtype="PCM_16") as f:
        for _ in range(minutes * 6):
            noise = (0.003 * rng.standard_normal((tone.size, 2))).astype(np.float32)
            f.write(noise + tone[:, None])
    decoded_mb = minutes * 60 * sr * 2 * 4 / 2**20
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, str(path), str(tmp_path / "warm.wav")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["duration"] == minutes * 60 and r["trace"] == minutes * 6000
    assert r["spilled"] == "SampleStore"  # the 16 kHz copy (46 MB) went to disk
    assert r["growth_mb"] < min(100.0, decoded_mb / 3), r


def test_the_engine_decodes_from_a_copy_on_disk(tiny_en_dir, jfk_path, monkeypatch):
    """With the 16 kHz copy spilled to its temporary file (as for any recording over ~4
    minutes), the engine reads its windows from disk and gives the same analysis."""
    from speechint_desktop.core.engine import Engine

    engine = Engine(str(tiny_en_dir), device="cpu", threads=1, head=False)
    in_memory = engine.analyze(jfk_path).to_dict()
    monkeypatch.setattr(audio, "SPILL_BYTES", 1 << 16)
    assert isinstance(recording.prepare(jfk_path, engine.options).x, audio.SampleStore)
    on_disk = engine.analyze(jfk_path).to_dict()
    for d in (in_memory, on_disk):
        d.pop("timings")
    assert on_disk == in_memory


def test_in_order_keeps_order_bounds_the_queue_and_raises():
    """``prepare`` feeds speech detection and the true-peak filter on threads of their own:
    blocks arrive in order, the reader waits when a consumer is ``depth`` blocks behind, and an
    error reaches the caller."""
    import threading
    import time

    from speechint_desktop.core.inorder import InOrder

    seen, waiting = [], []

    def slow(i):
        time.sleep(0.002 * (i % 3))
        seen.append((i, threading.current_thread().name))

    runner = InOrder(slow, "vad", depth=2)
    for i in range(30):
        runner.submit(i)
        waiting.append(len(runner._pending))
    runner.wait()
    assert [i for i, _ in seen] == list(range(30))
    assert all(name.startswith("speechint-vad") for _, name in seen)
    assert max(waiting) <= 2

    def fails(i):
        if i == 3:
            raise ValueError("bad block")

    runner = InOrder(fails, "vad")
    for i in range(6):
        runner.submit(i)
    with pytest.raises(ValueError, match="bad block"):
        runner.wait()
