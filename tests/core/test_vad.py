"""Speech detection: Silero VAD against human speech labels, and the packing, padding, time
mapping and word snapping built on it (pure functions, checked against cases built by hand)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from speechint_desktop.core import audio, vad
from speechint_desktop.core.options import TranscribeOptions, VadOptions
from tests.conftest import SHARED_AUDIO

SR = 16000


def _labelled_frames():
    """(VAD decision, human label) per 32 ms frame over every labelled 2 s example."""
    ours, truth = [], []
    for wav, labels in (("train.wav", "VAD_train.json"), ("valid.wav", "VAD_dev.json")):
        x = audio.to_model_input(audio.load_audio(SHARED_AUDIO / "extra" / "vad" / wav))
        probs = vad.speech_probabilities(x)
        for ex in json.loads((SHARED_AUDIO / "extra" / "vad" / labels).read_text()).values():
            a, b = ex["wav"]["start"], ex["wav"]["stop"]
            bounds = [float(v) for v in ex["speech"].split()]
            for f in range(a // vad.FRAME, min(len(probs), b // vad.FRAME)):
                t = (f * vad.FRAME + vad.FRAME / 2 - a) / SR
                truth.append(any(s <= t < e for s, e in zip(bounds[0::2], bounds[1::2], strict=True)))
                ours.append(probs[f] >= 0.5)
    return np.array(ours), np.array(truth)


def test_vad_agrees_with_human_speech_labels():
    ours, truth = _labelled_frames()
    assert truth.sum() > 50 and (~truth).sum() > 50
    agreement = float((ours == truth).mean())
    assert agreement >= 0.85, agreement
    assert ours[truth].mean() >= 0.8  # speech found
    assert (~ours[~truth]).mean() >= 0.8  # silence and noise left out


def test_no_speech_in_silence_and_noise():
    rng = np.random.default_rng(0)
    assert vad.speech_regions(np.zeros(5 * SR, np.float32)) == []
    noise = audio.to_model_input(audio.load_audio(SHARED_AUDIO / "extra" / "noise" / "noise2.wav"))
    assert vad.speech_regions(noise * 0.5) == []
    white = (rng.standard_normal(10 * SR) * 0.05).astype(np.float32)
    assert vad.speech_regions(white) == []


def test_speech_regions_find_the_utterances(ldc_path):
    x = audio.to_model_input(audio.load_audio(ldc_path))
    gap = np.zeros(3 * SR, np.float32)
    y = np.concatenate([gap, x, gap, x, gap])
    regions = vad.speech_regions(y)
    assert len(regions) == 2
    starts = [len(gap), 2 * len(gap) + len(x)]
    for (s, e), s0 in zip(regions, starts, strict=True):
        assert abs(s - s0) < 0.5 * SR and abs(e - (s0 + len(x))) < 0.5 * SR


def test_speech_detection_imports_neither_torch_nor_silero_vad(jfk_path):
    """Speech detection runs on onnxruntime alone (torch's import is ~1.1 s of start-up)."""
    code = (
        "import sys; from speechint_desktop.core import audio, vad; "
        f"x = audio.to_model_input(audio.load_audio({str(jfk_path)!r})); "
        "print(len(vad.speech_regions(x)), [m for m in ('torch', 'silero_vad') if m in sys.modules])"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.stdout.split() == ["4", "[]"], r.stdout + r.stderr[-2000:]


def test_pad_regions_merges_close_regions_and_stays_inside():
    assert vad.pad_regions([(100, 200), (250, 400), (1000, 1100)], 50, 1120) == [(50, 450), (950, 1120)]
    assert vad.pad_regions([(0, 10)], 50, 30) == [(0, 30)]
    assert vad.pad_regions([], 50, 100) == []


def test_pack_keeps_order_and_the_window_limit():
    regions = [(0, 100), (200, 350), (400, 450), (1000, 1500)]
    windows = vad.pack(regions, 300)
    assert all(w.length <= 300 for w in windows)
    pieces = [(p.start, p.start + p.length) for w in windows for p in w.pieces]
    # every sample of every region once, in order (the long region cut into windows)
    covered = np.zeros(1500, bool)
    for a, b in pieces:
        assert not covered[a:b].any()
        covered[a:b] = True
    expected = np.zeros(1500, bool)
    for a, b in regions:
        expected[a:b] = True
    assert (covered == expected).all()
    assert [p[0] for p in pieces] == sorted(p[0] for p in pieces)


def test_pack_across_recordings_keeps_a_gap_and_maps_back():
    a = np.full(5 * SR, 1.0, np.float32)
    b = np.full(5 * SR, 2.0, np.float32)
    windows = vad.pack([(SR, 3 * SR, 0), (0, 2 * SR, 1)], 30 * SR, gap=SR // 2)
    assert len(windows) == 1 and windows[0].sources == [0, 1]
    y = windows[0].audio([a, b])
    assert len(y) == int(4.5 * SR)
    assert (
        (y[: 2 * SR] == 1).all()
        and (y[2 * SR : int(2.5 * SR)] == 0).all()
        and (y[int(2.5 * SR) :] == 2).all()
    )
    tm = windows[0].time_map(edge_s=0.2)
    assert tm.locate(0.5) == (0, pytest.approx(1.5))
    assert tm.locate(2.2) == (1, pytest.approx(0.0))  # a start in the silence: the next recording
    assert tm.locate(2.1, is_end=True) == (0, pytest.approx(3.0))  # an end in it: the earlier one
    assert tm.locate(3.0) == (1, pytest.approx(0.5))
    # a window never exceeds its size, gap included
    many = vad.pack([(0, 10 * SR, k) for k in range(5)], 30 * SR, gap=SR // 2)
    assert all(w.length <= 30 * SR for w in many)
    assert sum(p.length for w in many for p in w.pieces) == 50 * SR


def test_window_audio_and_time_map_round_trip():
    x = np.arange(10 * SR, dtype=np.float32)
    w = vad.pack([(1 * SR, 2 * SR), (5 * SR, 7 * SR)], 30 * SR)[0]
    y = w.audio(x)
    assert len(y) == 3 * SR and y[0] == SR and y[SR] == 5 * SR
    tm = w.time_map()
    assert tm(0.0) == pytest.approx(1.0)
    assert tm(0.5) == pytest.approx(1.5)
    assert tm(1.0) == pytest.approx(5.0)  # a start on the seam: the later piece
    assert tm(1.0, is_end=True) == pytest.approx(2.0)  # an end on the seam: the earlier piece
    assert tm(2.5) == pytest.approx(6.5)
    assert tm(9.0) == pytest.approx(7.0)  # past the end: clamped to the last piece
    padded = w.time_map(edge_s=0.2)  # pieces start and end with 0.2 s of padding
    assert padded(0.9) == pytest.approx(5.0)  # a start in the earlier piece's tail padding
    assert padded(1.1, is_end=True) == pytest.approx(2.0)  # an end in the later piece's head padding
    assert padded(0.5) == pytest.approx(1.5) and padded(1.5, is_end=True) == pytest.approx(5.5)


def test_snap_moves_word_boundaries_onto_pauses():
    frame = vad.FRAME / SR
    # speech in [0.32, 0.96) and [1.6, 2.24) (frame units), a pause between
    probs = np.zeros(100, np.float32)
    probs[10:30] = 1.0
    probs[50:70] = 1.0
    # aligned: first word starts too early, the second starts 0.2 s before speech resumes
    spans = [(0.1, 1.4), (1.4, 2.5)]
    snapped = vad.snap_to_speech(spans, probs, 0.35)
    assert snapped[0][0] == pytest.approx(10 * frame)
    assert snapped[0][1] == pytest.approx(30 * frame)
    assert snapped[1][0] == pytest.approx(50 * frame)
    assert snapped[1][1] == pytest.approx(70 * frame)
    # fluent speech (no pause near a boundary) keeps the alignment
    assert vad.snap_to_speech([(0.4, 0.6), (0.6, 0.9)], probs, 0.35)[0][1] == pytest.approx(0.6)
    assert vad.snap_to_speech([], probs, 0.35) == []
    # a pause just before the first word is its start, not the second word's (the first word
    # keeps a span), and words never overlap
    first = vad.snap_to_speech([(0.16, 0.5), (0.5, 0.9)], probs, 0.35)
    assert first[0] == (pytest.approx(10 * frame), pytest.approx(0.5))
    assert all(a[1] <= b[0] and a[0] < a[1] for a, b in zip(first, first[1:], strict=False))


def test_options_with_changes_vad_fields():
    o = TranscribeOptions().with_(vad=False, vad_threshold=0.3, temperatures=(0.0,))
    assert o.vad is False and o.vad_options.threshold == 0.3 and o.temperatures == (0.0,)
    assert o.vad_options.min_silence_ms == VadOptions().min_silence_ms


def test_a_segment_across_two_recordings_is_cut_in_their_silence():
    # recording 0 speaks in [0, 3) s of the window, silence [3, 3.5), recording 1 in [3.5, 6)
    pieces = [vad.Piece(0, 0, 3 * SR, 0), vad.Piece(int(3.5 * SR), 0, int(2.5 * SR), 1)]
    tm = vad.TimeMap(pieces, 0.2)
    # the alignment put the last word of recording 0 late, its middle past the silence
    words = [(0.2, 1.0), (1.0, 2.2), (2.2, 3.6), (3.6, 4.5), (4.5, 5.8)]
    assert tm.assign(words, 0.0, 6.0) == [0, 0, 0, 1, 1]
    # a segment wholly in recording 0 keeps every word there, however late its last one
    assert tm.assign([(0.2, 1.5), (1.5, 3.8)], 0.0, 3.1) == [0, 0]


def test_word_snapping_in_independent_blocks_matches_one_whole_alignment(monkeypatch):
    """``snap_to_speech`` aligns words to pauses block by block (linear in a recording's
    length); the blocks must give exactly the matching one alignment over everything gives."""

    def one_block(times, pauses, reach_s):
        if pauses:
            yield list(range(len(times))), list(range(len(pauses)))

    rng = np.random.default_rng(3)
    cut = 0
    for _ in range(200):
        n_frames = int(rng.integers(200, 3000))
        runs = np.repeat(rng.random(n_frames // 8 + 1) < 0.6, 8)[:n_frames]
        probs = np.where(runs, 0.9, 0.1).astype(np.float32)
        dur = n_frames * vad.FRAME / vad.SAMPLE_RATE
        edges = np.sort(rng.uniform(0, dur, int(rng.integers(2, 120))))
        spans = [(float(a), float(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]
        blockwise = vad.snap_to_speech(spans, probs, 0.35)
        with monkeypatch.context() as m:
            m.setattr(vad, "_independent_blocks", one_block)
            assert vad.snap_to_speech(spans, probs, 0.35) == blockwise
        times = [s for s, _ in spans] + [spans[-1][1]]
        cut += len(list(vad._independent_blocks(times, [(t, t + 0.2) for t in times[::3]], 0.5))) > 1
    assert cut > 50  # most of these really were cut into blocks
