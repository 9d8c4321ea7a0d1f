"""Speech detection (Silero VAD) and packing detected speech into decoding windows.

Silence and noise between utterances are where Whisper invents text and loses its place, so
only detected speech reaches the decoder: regions are padded a little, packed back to back into
windows of at most 30 s, and every time the decoder reports is mapped back to the recording's
own clock (``TimeMap``), as faster-whisper's VAD filter and WhisperX do.

The model is silero-vad's "sequence" ONNX export (in the wheel; nothing is downloaded): it gives
the same per-frame probabilities as the streaming model, a block of 512 frames per call, about
5x faster (an hour of audio in ~12 s on 2 cores). The probabilities become regions through
silero-vad's own ``get_speech_timestamps_from_probs``.
"""

from __future__ import annotations

import threading
from bisect import bisect_right
from dataclasses import dataclass

import numpy as np

from .options import VadOptions

SAMPLE_RATE = 16000
FRAME = 512  # samples per Silero frame at 16 kHz (32 ms)
_BLOCK_FRAMES = 512  # frames per ONNX call (16 s)

_model = None
_model_lock = threading.Lock()


def _load():
    """The Silero sequence model, loaded once per process (0.15 s).

    ``import silero_vad`` sets torch to one thread as a side effect; the count is restored.
    """
    global _model
    with _model_lock:
        if _model is None:
            import torch

            threads = torch.get_num_threads()
            try:
                from silero_vad import load_silero_vad
            finally:
                torch.set_num_threads(threads)
            _model = load_silero_vad(sequence=True)
        return _model


def speech_probabilities(x: np.ndarray, progress=None, cancel=None) -> np.ndarray:
    """Per-frame (32 ms) speech probability of 16 kHz mono ``x``.

    ``progress(fraction)`` is called per 16 s block; ``cancel.is_set()`` stops early (the
    caller raises).
    """
    from silero_vad.sequence_vad import frame_blocks

    model = _load()
    x = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
    n_frames = (x.size + FRAME - 1) // FRAME
    hidden = np.zeros((1, 1, 128), dtype=np.float32)
    cell = np.zeros((1, 1, 128), dtype=np.float32)
    out = np.zeros(n_frames, dtype=np.float32)
    done = 0
    for block in frame_blocks(x, FRAME, 64, _BLOCK_FRAMES):
        if cancel is not None and cancel.is_set():
            break
        probs, hidden, cell = model.session.run(
            ["speech_probs", "hn", "cn"], {"input": block, "h": hidden, "c": cell}
        )
        probs = np.asarray(probs).reshape(-1)
        out[done : done + probs.size] = probs
        done += probs.size
        if progress is not None:
            progress(done / max(1, n_frames))
    return out


def regions_from_probabilities(probs: np.ndarray, n_samples: int, opts: VadOptions) -> list[tuple[int, int]]:
    """Unpadded speech regions ``[(start, end)]`` in samples, by silero-vad's own rules.

    Regions longer than a window are split at their longest pause (silero's
    ``max_speech_duration_s``), leaving room for the padding added later.
    """
    from silero_vad import get_speech_timestamps_from_probs

    if n_samples == 0 or probs.size == 0:
        return []
    max_s = max(1.0, opts.max_window_s - 2 * opts.speech_pad_ms / 1000 - 0.1)
    stamps = get_speech_timestamps_from_probs(
        [float(p) for p in probs],
        sampling_rate=SAMPLE_RATE,
        threshold=opts.threshold,
        min_speech_duration_ms=opts.min_speech_ms,
        max_speech_duration_s=max_s,
        min_silence_duration_ms=opts.min_silence_ms,
        speech_pad_ms=0,
        audio_length_samples=n_samples,
    )
    return [(int(s["start"]), min(int(s["end"]), n_samples)) for s in stamps if s["end"] > s["start"]]


def speech_regions(x: np.ndarray, opts: VadOptions | None = None, progress=None, cancel=None):
    """Detected speech in 16 kHz mono ``x`` as unpadded ``[(start, end)]`` sample ranges."""
    probs = speech_probabilities(x, progress=progress, cancel=cancel)
    return regions_from_probabilities(probs, len(x), opts or VadOptions())


def pad_regions(regions: list[tuple[int, int]], pad: int, n_samples: int) -> list[tuple[int, int]]:
    """Each region widened by ``pad`` samples on both sides, within the recording; regions
    closer than ``2 * pad`` merge (the pause between them is kept whole)."""
    out: list[list[int]] = []
    for s, e in regions:
        lo, hi = max(0, s - pad), min(n_samples, e + pad)
        if out and lo <= out[-1][1]:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return [(a, b) for a, b in out]


@dataclass
class Window:
    """Speech pieces packed into one decoding window; ``pieces[i]`` = (window offset, source
    start, length), all in samples."""

    pieces: list[tuple[int, int, int]]

    @property
    def length(self) -> int:
        return sum(p[2] for p in self.pieces)

    def audio(self, x: np.ndarray) -> np.ndarray:
        if len(self.pieces) == 1:
            _, s, n = self.pieces[0]
            return x[s : s + n]
        return np.concatenate([x[s : s + n] for _, s, n in self.pieces])

    def time_map(self, edge_s: float = 0.0) -> TimeMap:
        return TimeMap(self.pieces, edge_s)


def pack(regions: list[tuple[int, int]], max_samples: int) -> list[Window]:
    """Regions packed in order into windows of at most ``max_samples`` (a longer region is cut
    into consecutive windows)."""
    windows: list[Window] = []
    cur: list[tuple[int, int, int]] = []
    used = 0
    for s, e in regions:
        while e - s > 0:
            n = e - s
            if used + n > max_samples and cur:
                windows.append(Window(cur))
                cur, used = [], 0
            take = min(n, max_samples)
            cur.append((used, s, take))
            used += take
            s += take
    if cur:
        windows.append(Window(cur))
    return windows


class TimeMap:
    """Window time (s) → recording time (s) for a window made of concatenated pieces.

    Each piece ends and starts with ``edge_s`` of padding (no speech), and Whisper's timestamps
    are 20 ms steps that can land a little either side of a seam. So a start time within
    ``edge_s`` before a seam belongs to the next piece (its speech begins after the seam), and
    an end time within ``edge_s`` after a seam to the previous one: no segment swallows a gap.
    """

    def __init__(self, pieces: list[tuple[int, int, int]], edge_s: float = 0.0):
        self.offsets = [p[0] / SAMPLE_RATE for p in pieces]
        self.starts = [p[1] / SAMPLE_RATE for p in pieces]
        self.lengths = [p[2] / SAMPLE_RATE for p in pieces]
        self.edge = edge_s

    def __call__(self, t: float, is_end: bool = False) -> float:
        if not self.offsets:
            return t
        i = max(0, bisect_right(self.offsets, t + 1e-6) - 1)
        if not is_end and i + 1 < len(self.offsets) and self.offsets[i + 1] - t <= self.edge:
            return self.starts[i + 1]
        if is_end and i > 0 and t - self.offsets[i] <= max(self.edge, 1e-6):
            i -= 1
            return self.starts[i] + self.lengths[i]
        local = min(max(t - self.offsets[i], 0.0), self.lengths[i])
        return self.starts[i] + local


def _pause_runs(speech: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end frame indices (end exclusive) of every run of non-speech frames."""
    quiet = np.concatenate(([False], ~speech, [False]))
    edges = np.flatnonzero(np.diff(quiet.astype(np.int8)))
    return edges[0::2], edges[1::2]


def snap_to_speech(
    spans: list[tuple[float, float]],
    probs: np.ndarray,
    threshold: float,
    reach_s: float = 0.5,
    min_pause_s: float = 0.06,
    min_word_s: float = 0.08,
) -> list[tuple[float, float]]:
    """Word spans (seconds, in order, from cross-attention alignment) moved onto the pauses
    the VAD hears.

    Alignment makes each word start where the previous one ended, so a pause before a word
    becomes part of it, and with a small model boundaries are often 0.1–0.5 s off. Each word
    boundary (the first word's start, each gap between words, the last word's end) is matched
    to at most one pause, in order, maximising the number of matches while penalising the
    distance (a dynamic-programming alignment, like matching two sequences); a matched pause
    becomes the gap between the two words. Boundaries with no pause within ``reach_s`` (fluent
    speech) keep their aligned time.
    """
    n = len(spans)
    if n == 0:
        return []
    frame_s = FRAME / SAMPLE_RATE
    p0, p1 = _pause_runs(probs >= threshold)
    keep = (p1 - p0) * frame_s >= min_pause_s
    pauses = list(zip((p0[keep] * frame_s).tolist(), (p1[keep] * frame_s).tolist(), strict=True))
    lo, hi = spans[0][0] - reach_s, spans[-1][1] + reach_s
    pauses = [(a, b) for a, b in pauses if b >= lo and a <= hi]
    times = [spans[0][0]] + [(spans[k - 1][1] + spans[k][0]) / 2 for k in range(1, n)] + [spans[-1][1]]
    m = len(pauses)

    def gain(k: int, j: int) -> float:
        a, b = pauses[j]
        t = times[k]
        # the words on either side must keep some of their aligned span
        if (k > 0 and a < spans[k - 1][0] + min_word_s) or (k < n and b > spans[k][1] - min_word_s):
            return -np.inf
        if k == 0:  # the first word starts where a pause ends
            d = abs(b - t) if t < b else max(0.0, t - b)
        elif k == n:  # the last word ends where a pause starts
            d = abs(a - t) if t > a else max(0.0, a - t)
        else:
            d = max(a - t, 0.0, t - b)
        return reach_s - d if d <= reach_s else -np.inf

    # best[k][j]: best total gain for boundaries[:k] and pauses[:j]
    best = np.zeros((n + 2, m + 1))
    move = np.zeros((n + 2, m + 1), dtype=np.int8)  # 0 match, 1 skip boundary, 2 skip pause
    for k in range(1, n + 2):
        for j in range(1, m + 1):
            options = (best[k - 1, j - 1] + gain(k - 1, j - 1), best[k - 1, j], best[k, j - 1])
            move[k, j] = int(np.argmax(options))
            best[k, j] = options[move[k, j]]
        best[k, 0] = 0.0
        move[k, 0] = 1
    match: dict[int, tuple[float, float]] = {}
    k, j = n + 1, m
    while k > 0 and j > 0:
        if move[k, j] == 0:
            match[k - 1] = pauses[j - 1]
            k, j = k - 1, j - 1
        elif move[k, j] == 1:
            k -= 1
        else:
            j -= 1
    starts = [s for s, _ in spans]
    ends = [e for _, e in spans]
    for k, (a, b) in match.items():
        if k > 0:
            ends[k - 1] = a
        if k < n:
            starts[k] = b
    out: list[tuple[float, float]] = []
    for k in range(n):
        s, e = starts[k], ends[k]
        if e <= s:  # a match made the word empty: keep the alignment
            s, e = spans[k]
        if out and s < out[-1][1]:  # never overlap the word before
            s = out[-1][1]
            e = max(e, s)
        out.append((s, e))
    return out
