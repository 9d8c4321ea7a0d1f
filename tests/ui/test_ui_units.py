"""Pieces of the app that need no model: waveform envelope, metrics tail, session round trip."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest

from speechint_desktop.core.results import Analysis, FileError, Loudness, LoudnessTrace, Segment
from speechint_desktop.ui.envelope import MAX_RAW, EnvelopeBuilder, build_envelope, stream_envelope
from speechint_desktop.ui.session_store import SessionStore
from speechint_desktop.ui.training_tab import CurvePlots, MetricsTail, find_checkpoint


def test_envelope_keeps_peaks_at_every_zoom():
    sr = 16000
    x = np.zeros(sr * 600, dtype=np.float32)  # ten minutes of silence with two clicks
    x[sr * 100] = 0.9
    x[sr * 400] = -0.7
    env = build_envelope(x, sr)
    assert len(env.mins[-1]) <= 2048 and env.blocks[0] == 4  # > MAX_RAW samples: starts decimated
    for t0, t1, px in ((0, 600, 800), (99, 101, 800), (399.99, 400.01, 800)):
        times, values = env.view(t0, t1, px)
        assert len(values) <= 4 * px + 8
        assert values.max() >= (0.9 if t0 < 101 else 0)
        if t1 > 400:
            assert values.min() <= -0.7
    times, _ = env.view(0, 600, 800)
    assert times[0] >= 0 and times[-1] <= 600


def test_envelope_of_long_audio_is_fast_to_view():
    import time

    sr = 16000
    x = np.tile(np.random.default_rng(0).uniform(-1, 1, sr).astype(np.float32), 3600)  # one hour
    env = build_envelope(x, sr)
    t = time.perf_counter()
    for _ in range(50):
        times, values = env.view(0, 3600, 1200)
    per_view = (time.perf_counter() - t) / 50
    assert len(values) <= 4 * 1200 + 8
    assert per_view < 0.01, per_view


def test_envelope_fed_block_by_block_is_the_whole_files(tmp_path, jfk_path):
    """The app builds the waveform from the blocks the analysis reads (never the whole file):
    with the length known, exactly the envelope of the whole signal; with it unknown (or
    underestimated), coarsened as it grows, every peak kept and within one bucket in time."""
    from speechint_desktop.core.audio import load_audio

    rng = np.random.default_rng(1)
    n = MAX_RAW * 2 + 12_345
    x = rng.uniform(-0.5, 0.5, (n, 2)).astype(np.float32)
    x[n // 3, :] = 0.95
    x[2 * n // 3, :] = -0.9
    whole = build_envelope(x, 48000)
    for expected in (n, None, n // 10):
        b = EnvelopeBuilder(48000, expected)
        for i in range(0, n, 65_536):
            b.feed(x[i : i + 65_536])
        env = b.finish()
        assert env.n_samples == n and len(env.mins[0]) <= MAX_RAW + 1
        if expected == n:
            assert env.blocks == whole.blocks
            assert all(
                np.array_equal(a, c)
                for a, c in zip(env.mins + env.maxs, whole.mins + whole.maxs, strict=True)
            )
        for t, v in ((n // 3 / 48000, 0.95), (2 * n // 3 / 48000, -0.9)):
            _, values = env.view(t - 0.5, t + 0.5, 400)
            assert (values.max() if v > 0 else values.min()) == pytest.approx(v)
    streamed = stream_envelope(jfk_path)
    clip = load_audio(jfk_path)
    direct = build_envelope(clip.samples, clip.sample_rate)
    assert streamed.blocks == direct.blocks and np.array_equal(streamed.maxs[0], direct.maxs[0])


def _analysis(source: str) -> Analysis:
    t = np.arange(1, 301) * 0.01
    mom = np.full(300, -23.0)
    mom[:39] = -np.inf
    trace = LoudnessTrace(times=t, momentary_lufs=mom, short_term_lufs=mom.copy(), rms_dbfs=mom - 2)
    loud = Loudness(-23.0, 4.5, -25.0, -3.0, 3.0, trace=trace)
    segs = [Segment(0.0, 1.5, " Hello", -24.0, -22.5, -24.3), Segment(1.5, 3.0, " world", -26.0, None, None)]
    return Analysis(source, 3.0, 16000, 1, "Hello world", segs, loud, "tiny.en", "en", -24.1, "rms_dbfs")


def test_session_round_trip(tmp_path):
    store = SessionStore(tmp_path / "s")
    a = _analysis("/x/a.wav")
    store.save(a)
    store.save(_analysis("/y/a.wav"))  # same stem, different folder: both kept
    store.save_error(FileError("/x/broken.wav", "broken.wav: not a readable audio file"))
    items = store.load()
    assert [type(i).__name__ for i in items] == ["Analysis", "Analysis", "FileError"]
    back = items[0]
    assert back.source == a.source and back.text == a.text and back.predicted_intensity == -24.1
    assert back.segments[1].lufs is None and back.segments[0].rms_dbfs == -24.0
    assert (
        np.isneginf(back.loudness.trace.momentary_lufs[0]) and back.loudness.trace.momentary_lufs[-1] == -23.0
    )
    assert items[2].message.startswith("broken.wav")
    assert Analysis.from_dict(json.loads(json.dumps(a.to_dict()))).loudness.loudness_range_lu == 4.5


def test_loading_a_session_removes_what_a_killed_app_left_half_written(tmp_path):
    store = SessionStore(tmp_path / "s")
    slot = store.save(_analysis("/x/a.wav"), key="k1").parent
    old = time.time() - 3600
    left = [slot / ".a.json.h4lfwr1t.tmp", store.root / ".queue.json.q8u3u3ab.tmp"]
    fresh = slot / ".b.json.wr1t1ng_.tmp"  # a save in progress right now: kept
    mine = store.root / ".notes.tmp"  # not a temporary's name: kept
    for p in (*left, fresh, mine):
        p.write_text("half")
    for p in (*left, mine):
        os.utime(p, (old, old))
    rows = store.load_rows()
    assert [r.key for r in rows] == ["k1"]
    assert not any(p.exists() for p in left) and fresh.exists() and mine.exists()


def test_metrics_tail_reads_only_complete_new_lines(tmp_path, qtbot):
    path = tmp_path / "metrics.jsonl"
    tail = MetricsTail(path)
    assert tail.read() == []  # no file yet
    with open(path, "w") as f:
        f.write(
            '{"step": 1, "split": "train", "loss": 3.0, "asr_loss": 2.5, "intensity_loss": 0.5}\n{"step": 2, "spl'
        )
    assert [r["step"] for r in tail.read()] == [1]
    with open(path, "a") as f:
        f.write(
            'it": "train", "loss": 2.0}\nnot json\n{"step": 2, "split": "validation", "wer": 0.25, "intensity_rmse": 4.0}\n'
        )
    records = tail.read()
    assert [r["step"] for r in records] == [2, 2]
    curves = CurvePlots()
    qtbot.addWidget(curves)
    assert curves.add([{"step": 1, "split": "train", "loss": 3.0}, *records]) == 4
    assert (
        curves.points("loss") == 2
        and curves.data["wer"][1] == [25.0]
        and curves.points("intensity_rmse") == 1
    )


def test_find_checkpoint_follows_the_pointers(tmp_path):
    assert find_checkpoint(tmp_path) is None
    root = tmp_path / "checkpoints"
    for step in ("step-0000002", "step-0000004"):
        (root / step).mkdir(parents=True)
        (root / step / "config.json").write_text("{}")
    assert find_checkpoint(tmp_path).name in ("step-0000002", "step-0000004")
    (root / "latest.json").write_text(json.dumps({"path": "step-0000004", "step": 4}))
    assert find_checkpoint(tmp_path).name == "step-0000004"
    (root / "best.json").write_text(json.dumps({"path": "step-0000002", "step": 2}))
    assert find_checkpoint(tmp_path).name == "step-0000002"


def test_settings_round_trip(tmp_path):
    from speechint_desktop.ui.settings import Settings

    path = str(tmp_path / "s.ini")
    s = Settings(path)
    assert s.model == "tiny.en" and s.device == "auto" and s.intensity_unit == "dBFS"
    s.model, s.device, s.intensity_unit, s.export_dir = "/ckpt/best", "cpu", "LUFS", "/out"
    s.add_local_model("/ckpt/best")
    s.add_local_model("/ckpt/best")
    s.sync()
    t = Settings(path)
    assert (t.model, t.device, t.intensity_unit, t.export_dir) == ("/ckpt/best", "cpu", "LUFS", "/out")
    assert t.local_models == ["/ckpt/best"]


def test_training_tab_shows_step_of_total_with_eta_and_a_readable_evaluation(qtbot, tmp_path):
    import time as _time

    from speechint_desktop.core.runs import ProgressTracker
    from speechint_desktop.ui.training_tab import TrainingTab, evaluation_line

    tab = TrainingTab(runs_dir=tmp_path / "runs", datasets_dir=tmp_path / "datasets")
    qtbot.addWidget(tab)
    now = _time.time()
    tab.tracker = ProgressTracker()
    recs = [{"split": "config", "step": 0, "time": now - 40, "total_steps": 20}]
    recs += [{"split": "train", "step": s, "time": now - 40 + 10 * s, "loss": 2.0 / s} for s in (1, 2, 3, 4)]
    tab.tracker.add(recs)
    tab.curves.add(recs)
    tab.show_progress()
    text = tab.status.text()
    assert text.startswith("Training… step 4 of 20 · about 2 min") and text.endswith("loss 0.500"), text
    assert (tab.progress.maximum(), tab.progress.value()) == (20, 4)
    assert not tab.progress.isTextVisible()  # the count is in the status line beside the bar
    summary = {
        "wer": 0.25,
        "intensity_rmse": 1.234,
        "intensity_n": 4,
        "target": "rms_dbfs",
        "intensity_r2": None,
    }
    assert evaluation_line(summary) == "WER 25.0 %, intensity RMSE 1.23 dB, 4 utterances"
