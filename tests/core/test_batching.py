"""Several recordings decoded together: short clips share windows and batches, and each result
still holds exactly its own words, on its own clock, in input order."""

from __future__ import annotations

import numpy as np
import pytest

from speechint_desktop.core import placement, vad
from speechint_desktop.core.decode import RawSegment, RawWord
from speechint_desktop.core.engine import Engine
from speechint_desktop.core.options import TranscribeOptions
from speechint_desktop.core.results import Analysis, FileError
from speechint_desktop.core.text import wer
from tests.conftest import JFK_TEXT, LDC_TEXT, espeak

SENTENCES = [
    ("Turn off the lights before you leave the office.", "en-us"),
    ("The children played football until it was dark.", "en-gb"),
    ("We bought fresh vegetables at the Sunday market.", "en-us+f3"),
    ("My grandmother makes the best apple pie in town.", "en-gb+m3"),
]


@pytest.fixture(scope="module")
def clips(tmp_path_factory, jfk_path, ldc_path):
    d = tmp_path_factory.mktemp("short")
    said = [(espeak(text, d / f"s{i}.wav", voice), text) for i, (text, voice) in enumerate(SENTENCES)]
    broken = d / "broken.wav"
    broken.write_text("not audio")
    return [said[0], (jfk_path, JFK_TEXT), said[1], (broken, None), (ldc_path, LDC_TEXT), said[2], said[3]]


def test_short_clips_decoded_together_keep_their_own_words(tiny_en_dir, clips):
    engine = Engine(str(tiny_en_dir), device="cpu", threads=1, head=False, batch_size=4)
    results = list(engine.analyze_many([p for p, _ in clips], options=TranscribeOptions(pack_clips=True)))
    assert [r.source for r in results] == sorted(str(p) for p, _ in clips)  # folders are sorted
    by_source = {r.source: r for r in results}
    alone = Engine(str(tiny_en_dir), device="cpu", threads=1, head=False)
    refs, packed, single = [], [], []
    for path, text in clips:
        r = by_source[str(path)]
        if text is None:
            assert isinstance(r, FileError) and "broken.wav" in r.message
            continue
        assert isinstance(r, Analysis)
        refs.append(text)
        packed.append(r.text)
        single.append(alone.analyze(path).text)
        for s in r.segments:
            assert 0.0 <= s.start <= s.end <= r.duration_s + 0.05
            for w in s.words:
                assert 0.0 <= w.start <= w.end <= r.duration_s + 0.05
    # sharing windows costs at most a few words over the whole set (greedy decoding, no context)
    assert wer(refs, packed) <= wer(refs, single) + 0.08, (packed, single)
    # nobody else's sentence leaked into a result
    marks = {str(clips[0][0]): "lights", str(clips[2][0]): "football", str(clips[5][0]): "vegetables"}
    texts = {str(p): by_source[str(p)].text.lower() for p, t in clips if t}
    for owner, word in marks.items():
        assert not any(word in t for k, t in texts.items() if k != owner), (word, texts)


def test_a_piece_left_without_words_is_found():
    pieces = [vad.Piece(0, 0, 32000, 0), vad.Piece(32000, 50000, 32000, 1), vad.Piece(64000, 0, 8000, 2)]
    tm = vad.TimeMap(pieces, 0.2)
    seg = RawSegment(
        2.0, 4.0, [1], words=[RawWord(2.2, 2.6, " hello", 0.9), RawWord(2.6, 3.5, " there", 0.9)]
    )
    lost = placement.uncovered([seg], tm)
    assert lost == [pieces[0]]  # the 0.5 s third piece is too short to retry
    no_words = RawSegment(0.0, 3.0, [1])
    assert placement.uncovered([no_words], tm) == []
    assert placement.uncovered([seg], vad.TimeMap(pieces[:1], 0.2)) == []  # a single piece: nothing to retry
    assert np.isfinite(tm(2.2))


def test_a_window_that_skipped_a_stretch_is_decoded_again_for_every_recording_in_it():
    """Two takes of one sentence in a window: Whisper may write it once, aligned into one take,
    and skip the other. The skipped take is not the only suspect: the words given to the other
    take may be both takes' speech, so every recording of that window is decoded again alone."""
    pieces = [vad.Piece(0, 0, 48000, 0), vad.Piece(56000, 0, 48000, 1), vad.Piece(112000, 0, 32000, 2)]
    tm = vad.TimeMap(pieces, 0.2)
    words = [RawWord(0.5, 1.0, " ask", 0.9), RawWord(1.0, 1.5, " not", 0.9)]
    third = [RawWord(7.2, 7.6, " hello", 0.9)]
    segs = [RawSegment(0.0, 3.0, [1, 2], words=words), RawSegment(7.0, 8.0, [3], words=third)]
    redo, mixed = placement.redo(segs, tm, TranscribeOptions())
    assert mixed == {0, 1, 2} and redo == pieces
    # every piece heard: nothing is decoded again
    second = [RawWord(4.0, 4.5, " ask", 0.9)]
    segs.append(RawSegment(3.5, 5.0, [1], words=second))
    assert placement.redo(segs, tm, TranscribeOptions()) == ([], set())


def test_without_packing_each_file_reads_as_alone(tiny_en_dir, clips):
    engine = Engine(str(tiny_en_dir), device="cpu", threads=1, head=False, batch_size=4)
    files = [p for p, t in clips if t][:4]
    apart = TranscribeOptions(pack_clips=False)
    together = {r.source: r.text for r in engine.analyze_many(files, options=apart)}
    for path in files:
        assert together[str(path)] == engine.analyze(path).text


def test_sampled_fallback_does_not_depend_on_the_batch(tiny_en_dir, clips, monkeypatch):
    """With a log-probability bar no window can pass, every window falls back to sampling; its
    samples, and so its words, must be its own (seeded from its audio, decoded alone), whatever
    it is batched with and in whichever order, as a file's words on a Ray actor must match the
    plain CLI's."""
    engine = Engine(str(tiny_en_dir), device="cpu", threads=1, head=False, batch_size=4)
    opts = TranscribeOptions(
        logprob_threshold=0.0, temperatures=(0.0, 0.5, 1.0), pack_clips=False, beam_size=1
    )
    drawn: list[tuple] = []
    sample = engine._ct2.sample

    def recorded(enc_row, prompt, temperature, seed):
        d = sample(enc_row, prompt, temperature, seed)
        drawn.append((seed, temperature, tuple(d.tokens)))
        return d

    monkeypatch.setattr(engine._ct2, "sample", recorded)
    files = [p for p, t in clips if t][:4]
    forward = {r.source: r.text for r in engine.analyze_many(files, options=opts)}
    forward_draws, drawn[:] = sorted(drawn), []
    backward = {r.source: r.text for r in engine.analyze_many(files[::-1], options=opts)}
    assert sorted(drawn) == forward_draws  # the same samples, whatever the order and batch
    assert len({seed for seed, _, _ in forward_draws}) >= 2 * len(files)  # it did sample, every file
    alone = {str(p): engine.analyze(p, options=opts).text for p in files[:2]}
    assert forward == backward
    assert all(forward[k] == v for k, v in alone.items())


def test_short_windows_are_encoded_short_and_batched_by_length(tiny_en_dir):
    """A window's encoder input is its speech plus at least 2 s, rounded up to 10, 20 or 30 s;
    a batch holds one length, picked from the whole queue so a window's neighbours never
    change how it is read, and the queue keeps its order otherwise."""
    from speechint_desktop.core import ct2

    sr = 16000
    assert [ct2.window_seconds(int(s * sr)) for s in (0.5, 3.0, 8.0, 8.5, 17.9, 18.5, 29.0, 30.0)] == [
        10,
        10,
        10,
        20,
        20,
        30,
        30,
        30,
    ]
    engine = Engine(str(tiny_en_dir), device="cpu", threads=1, head=False, batch_size=2)
    lengths = [3, 25, 4, 12, 5, 2]  # seconds: kinds 10, 30, 10, 20, 10, 10
    queue = [(np.zeros(s * sr, np.float32), None, True) for s in lengths]
    opts = TranscribeOptions()
    batches = []
    b0 = 0
    while b0 < len(queue):
        batch = engine._next_batch(queue, b0, engine.batch_size, opts)
        batches.append([len(a) // sr for a, _, _ in batch])
        b0 += len(batch)
    assert batches == [[3, 4], [25], [12], [5, 2]]
    # without fitting (or on transformers) every window is 30 s: the queue's order, in twos
    b0, plain = 0, []
    while b0 < len(queue):
        batch = engine._next_batch(queue, b0, 2, opts.with_(fit_windows=False))
        plain.append([len(a) // sr for a, _, _ in batch])
        b0 += len(batch)
    assert sorted(x for b in plain for x in b) == sorted(lengths) and all(len(b) == 2 for b in plain)
