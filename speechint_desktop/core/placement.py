"""Packed windows back to recordings: which words belong to which recording and when, what to
decode again alone, and which head frames pool into which recording.

A window holds padded speech pieces of one or more recordings (``vad.Window``); decoding gives
segments and words in window time. These functions, used by the engine after each batch, map
them back (``vad.TimeMap``) and decide what the engine must decode again on its own: speech
that got no words, and recordings a shared window could not keep apart.
"""

from __future__ import annotations

import math

import numpy as np

from . import vad
from .options import TranscribeOptions
from .recording import Decoded, Prepared

SAMPLE_RATE = 16000
SAMPLES_PER_FRAME = 320  # one encoder frame (20 ms)
MIN_RETRY_S = 1.0  # a packed piece (padding included) this long that got no words is decoded alone


def redo(segs, tmap, opts: TranscribeOptions) -> tuple[list, set[int]]:
    """Pieces of a packed window to decode again on their own: speech left without a word,
    and every piece of recordings the window could not keep apart (a segment across the
    words of one segment aligned into two recordings, or a segment the fallback's
    repetition rule would have decoded again)."""
    lost = uncovered(segs, tmap)
    if tmap is None or len({p.source for p in tmap.pieces}) < 2:
        return lost, set()
    mixed: set[int] = set()
    if lost:  # the window skipped a stretch: what it gave the others may be that stretch's words
        mixed |= {p.source for p in tmap.pieces}
    for seg in segs:
        # where the words are heard (alignment); Whisper's own segment timestamps are coarse
        # (tiny.en rounds them to whole seconds) and only decide when there are no words
        if seg.words:
            heard = {tmap.pieces[tmap.at((w.start + w.end) / 2)].source for w in seg.words}
        else:
            first, last = tmap.piece(seg.start), tmap.piece(seg.end, is_end=True)
            heard = {tmap.pieces[i].source for i in range(first, max(first, last) + 1)}
        if len(heard) > 1 or doubtful(seg, opts):
            mixed |= heard
    return [p for p in tmap.pieces if p.source in mixed or any(p is q for q in lost)], mixed


def uncovered(segs, tmap) -> list:
    """Pieces of a packed window (of at least ``MIN_RETRY_S``) that no decoded word, or no
    segment when words are off, falls in."""
    if tmap is None or len(tmap.pieces) < 2:
        return []
    covered = set()
    for seg in segs:
        if seg.words:
            covered.update(tmap.at((w.start + w.end) / 2) for w in seg.words)
        else:
            covered.update(range(tmap.piece(seg.start), tmap.piece(seg.end, is_end=True) + 1))
    return [
        p for i, p in enumerate(tmap.pieces) if i not in covered and p.length >= MIN_RETRY_S * SAMPLE_RATE
    ]


def frame_ranges(n_frames: int, tmap, skip=()) -> list[tuple[int, int, int, float]]:
    """Each piece of a window as encoder frames: ``(first, end, recording, t0)``, where ``t0``
    is the recording time (s) of the window's frame 0 as seen from that piece; ``skip``: pieces
    decoded again alone (their frames count there). The whole input without a map."""
    if tmap is None:
        return [(0, n_frames, 0, 0.0)]
    return [
        (
            p.offset // SAMPLES_PER_FRAME,
            math.ceil((p.offset + p.length) / SAMPLES_PER_FRAME),
            p.source,
            (p.start - p.offset % SAMPLES_PER_FRAME) / SAMPLE_RATE,
        )
        for p in tmap.pieces
        if not any(p is q for q in skip)
    ]


def pool(items: list[Prepared], frames, tmap, skip=()) -> None:
    """Add a window's head frames to the sums of the recordings its pieces come from
    (``skip``: pieces decoded again alone, which pool there)."""
    if frames is None:
        return
    for a, b, k, _ in frame_ranges(frames.shape[0], tmap, skip):
        part = frames[a : min(b, frames.shape[0])]
        if part.shape[0]:
            s = part.sum(axis=0, dtype=np.float64)
            items[k].pooled_sum = s if items[k].pooled_sum is None else items[k].pooled_sum + s
            items[k].pooled_frames += part.shape[0]


def place(seg, tmap, pred, tok) -> list[tuple[int, Decoded]]:
    """A segment in window time → its recording(s) and their times.

    Each word belongs to the piece under its middle; a segment whose words come from two
    recordings (short clips packed together) is split between them.
    """
    extra = {
        "avg_logprob": seg.avg_logprob,
        "no_speech_prob": seg.no_speech_prob,
        "temperature": seg.temperature,
    }
    if tmap is None:
        text = tok.decode(seg.tokens, skip_special_tokens=True).strip()
        return [(0, Decoded(seg.start, seg.end, text, seg.words, pred, **extra))]
    if not seg.words:
        i = tmap.piece(seg.start)
        j = tmap.piece(seg.end, is_end=True)
        src = tmap.pieces[i].source
        while j > i and tmap.pieces[j].source != src:
            j -= 1
        text = tok.decode(seg.tokens, skip_special_tokens=True).strip()
        return [
            (
                src,
                Decoded(
                    tmap.in_piece(seg.start, i),
                    tmap.in_piece(seg.end, max(i, j)),
                    text,
                    [],
                    pred,
                    **extra,
                ),
            )
        ]
    heard = [tmap.at((w.start + w.end) / 2) for w in seg.words]
    if len({tmap.pieces[i].source for i in heard}) == 1:  # one recording: its pieces only
        pieces = heard
    else:  # (a window decoded with no second chance) cut at the silence between them
        pieces = tmap.assign([(w.start, w.end) for w in seg.words], seg.start, seg.end)
    runs: list[tuple[int, list]] = []
    for w, i in zip(seg.words, pieces, strict=True):
        w.start, w.end = tmap.in_piece(w.start, i), tmap.in_piece(w.end, i)
        src = tmap.pieces[i].source
        if runs and runs[-1][0] == src:
            runs[-1][1].append(w)
        else:
            runs.append((src, [w]))
    if len(runs) == 1:
        text = tok.decode(seg.tokens, skip_special_tokens=True).strip()
        src, words = runs[0]
        return [(src, Decoded(words[0].start, words[-1].end, text, words, pred, **extra))]
    return [
        (src, Decoded(ws[0].start, ws[-1].end, "".join(w.text for w in ws).strip(), ws, pred, **extra))
        for src, ws in runs
    ]


def length(a) -> int:
    """Samples in a queued input: a ``vad.Window`` plan or an array."""
    return a.length if isinstance(a, vad.Window) else len(a)


def shared(tmap) -> bool:
    """Whether a window holds the speech of more than one recording."""
    return tmap is not None and len({p.source for p in tmap.pieces}) > 1


def doubtful(seg, opts: TranscribeOptions) -> bool:
    """openai-whisper's repetition rule applied to one segment (greedy decoding of a shared
    window skips the fallback; improbable text alone is left as is: hard speech stays hard when
    decoded alone, measured on 47 short clips)."""
    import zlib

    if opts.compression_ratio_threshold is not None and len(seg.tokens) > 8:
        raw = b"".join(t.to_bytes(2, "little") for t in seg.tokens)
        if len(raw) / len(zlib.compress(raw)) > opts.compression_ratio_threshold:
            return True
    return False
