"""Speech detection (Silero VAD) and packing detected speech into decoding windows.

Silence and noise between utterances are where Whisper invents text and loses its place, so
only detected speech reaches the decoder: regions are padded a little, packed back to back into
windows of at most 30 s, and every time the decoder reports is mapped back to the recording's
own clock (``TimeMap``), as faster-whisper's VAD filter and WhisperX do.

The model is silero-vad's "sequence" ONNX export (in the wheel; nothing is downloaded): it gives
the same per-frame probabilities as the streaming model, a block of 512 frames per call, about
5x faster (an hour of audio in ~12 s on 2 cores). It runs on onnxruntime alone: neither
``silero_vad`` nor torch is imported. The probabilities become regions by silero-vad's own
rules (``silero_rules``, a port of its ``get_speech_timestamps_from_probs``).
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import silero_rules
from .options import VadOptions

SAMPLE_RATE = 16000
FRAME = 512  # samples per Silero frame at 16 kHz (32 ms)
_BLOCK_FRAMES = 512  # frames per ONNX call (16 s)
_MODEL_FILE = "silero_vad_16k_sequence.onnx"

_model = None
_model_lock = threading.Lock()


def _model_path() -> Path:
    """silero-vad's sequence ONNX file, found without running ``silero_vad/__init__`` (which
    imports torch). The app bundle holds it in ``<bundle>/_internal/silero_vad/data``: there
    ``find_spec`` gives that folder too (as a namespace package), and the bundle's own folder
    is the fallback."""
    spec = importlib.util.find_spec("silero_vad")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    if getattr(sys, "frozen", False):
        folders.append(str(Path(getattr(sys, "_MEIPASS", "")) / "silero_vad"))
    for folder in folders:
        path = Path(folder) / "data" / _MODEL_FILE
        if path.is_file():
            return path
    raise FileNotFoundError(f"silero-vad's speech detection model ({_MODEL_FILE}) is not installed")


def _load():
    """The Silero sequence model's ONNX session, loaded once per process, with the options
    silero's own ``load_silero_vad(sequence=True)`` uses (CPU, one thread)."""
    global _model
    with _model_lock:
        if _model is None:
            import onnxruntime

            options = onnxruntime.SessionOptions()
            options.inter_op_num_threads = 1
            options.intra_op_num_threads = 1
            _model = onnxruntime.InferenceSession(
                str(_model_path()), sess_options=options, providers=["CPUExecutionProvider"]
            )
        return _model


class SpeechDetector:
    """``speech_probabilities`` fed block by block, for audio that is never held whole.

    Samples are buffered to silero's own blocks of 512 frames (16 s) and each block is run
    with the state (LSTM and the 64-sample context) of the one before, exactly as
    ``frame_blocks`` cuts the whole array, so the probabilities are the same to the bit
    whatever sizes the audio arrives in.
    """

    CONTEXT = 64

    def __init__(self):
        self._model = _load()
        self._hidden = np.zeros((1, 1, 128), dtype=np.float32)
        self._cell = np.zeros((1, 1, 128), dtype=np.float32)
        self._context = np.zeros(self.CONTEXT, dtype=np.float32)
        self._pending: list[np.ndarray] = []
        self._held = 0
        self._probs: list[np.ndarray] = []
        self.samples = 0  # fed so far

    @property
    def frames_done(self) -> int:
        return sum(p.size for p in self._probs)

    def feed(self, x: np.ndarray) -> None:
        """Add 16 kHz mono samples; full 16 s blocks are run at once."""
        x = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
        if not x.size:
            return
        self.samples += x.size
        self._pending.append(x)
        self._held += x.size
        size = FRAME * _BLOCK_FRAMES
        if self._held >= size:
            data = np.concatenate(self._pending)
            whole = data.size // size * size
            for s0 in range(0, whole, size):
                self._run(data[s0 : s0 + size])
            rest = data[whole:]
            self._pending, self._held = ([rest] if rest.size else []), rest.size

    def finish(self) -> np.ndarray:
        """The per-frame probabilities of everything fed (the last frame zero-padded)."""
        if self._held:
            self._run(np.concatenate(self._pending))
            self._pending, self._held = [], 0
        out = np.concatenate(self._probs) if self._probs else np.zeros(0, np.float32)
        self._probs = [out]
        return out

    def _run(self, samples: np.ndarray) -> None:
        count = (samples.size + FRAME - 1) // FRAME
        frames = np.zeros((count, FRAME), dtype=np.float32)
        frames.reshape(-1)[: samples.size] = samples
        contexts = np.empty((count, self.CONTEXT), dtype=np.float32)
        contexts[0] = self._context
        if count > 1:
            contexts[1:] = frames[:-1, -self.CONTEXT :]
        self._context = frames[-1, -self.CONTEXT :].copy()
        block = np.concatenate((contexts, frames), axis=1)
        probs, self._hidden, self._cell = self._model.run(
            ["speech_probs", "hn", "cn"], {"input": block, "h": self._hidden, "c": self._cell}
        )
        self._probs.append(np.asarray(probs, dtype=np.float32).reshape(-1))


def speech_probabilities(x: np.ndarray, progress=None, cancel=None) -> np.ndarray:
    """Per-frame (32 ms) speech probability of 16 kHz mono ``x``.

    ``progress(fraction)`` is called per 16 s block; ``cancel.is_set()`` stops early (the
    caller raises). ``x`` may be any array-like that slices (a ``SampleStore`` reads 16 s at
    a time).
    """
    detector = SpeechDetector()
    n = len(x)
    n_frames = (n + FRAME - 1) // FRAME
    size = FRAME * _BLOCK_FRAMES
    reported = 0
    for s0 in range(0, n, size):
        if cancel is not None and cancel.is_set():
            break
        detector.feed(x[s0 : s0 + size])
        if s0 + size >= n:
            detector.finish()
        if progress is not None and detector.frames_done > reported:
            reported = detector.frames_done
            progress(reported / max(1, n_frames))
    out = np.zeros(n_frames, dtype=np.float32)
    done = detector.finish()
    out[: done.size] = done[:n_frames]
    return out


def regions_from_probabilities(probs: np.ndarray, n_samples: int, opts: VadOptions) -> list[tuple[int, int]]:
    """Unpadded speech regions ``[(start, end)]`` in samples, by silero-vad's own rules.

    Regions longer than a window are split at their longest pause (silero's
    ``max_speech_duration_s``), leaving room for the padding added later.
    """
    if n_samples == 0 or probs.size == 0:
        return []
    max_s = max(1.0, opts.max_window_s - 2 * opts.speech_pad_ms / 1000 - 0.1)
    stamps = silero_rules.speech_timestamps(
        probs,
        threshold=opts.threshold,
        min_speech_duration_ms=opts.min_speech_ms,
        max_speech_duration_s=max_s,
        min_silence_duration_ms=opts.min_silence_ms,
        speech_pad_ms=0,
        audio_length_samples=n_samples,
    )
    return [(s, min(e, n_samples)) for s, e in stamps if e > s]


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
class Piece:
    """A stretch of one recording's speech placed in a window (all in samples)."""

    offset: int  # where it starts in the window
    start: int  # where it starts in its recording
    length: int
    source: int = 0  # which recording (an index into the batch's recordings)


@dataclass
class Window:
    """Speech pieces packed into one decoding window, possibly from several recordings, with
    ``gap`` samples of silence between pieces of different recordings."""

    pieces: list[Piece]

    @property
    def length(self) -> int:
        last = self.pieces[-1]
        return last.offset + last.length

    @property
    def sources(self) -> list[int]:
        return sorted({p.source for p in self.pieces})

    def audio(self, xs) -> np.ndarray:
        """The window's 16 kHz samples; ``xs`` is the recording (or a list, one per source)."""
        get = (lambda k: xs[k]) if isinstance(xs, (list, tuple)) else (lambda k: xs)
        out = np.zeros(self.length, dtype=np.float32)
        for p in self.pieces:
            out[p.offset : p.offset + p.length] = get(p.source)[p.start : p.start + p.length]
        return out

    def time_map(self, edge_s: float = 0.0) -> TimeMap:
        return TimeMap(self.pieces, edge_s)


def pack(regions, max_samples: int, gap: int = 0) -> list[Window]:
    """Regions ``(start, end)`` or ``(start, end, source)`` packed in order into windows of at
    most ``max_samples`` (a longer region is cut into consecutive windows). Pieces of different
    recordings are ``gap`` samples apart, so the decoder hears a pause where one ends."""
    windows: list[Window] = []
    cur: list[Piece] = []
    used = 0
    for region in regions:
        s, e = int(region[0]), int(region[1])
        src = int(region[2]) if len(region) > 2 else 0
        while e - s > 0:
            sep = gap if cur and cur[-1].source != src else 0
            if used + sep + min(e - s, max_samples) > max_samples and cur:
                windows.append(Window(cur))
                cur, used, sep = [], 0, 0
            take = min(e - s, max_samples - used - sep)
            cur.append(Piece(used + sep, s, take, src))
            used += sep + take
            s += take
    if cur:
        windows.append(Window(cur))
    return windows


class TimeMap:
    """Window time (s) → (recording, recording time in s) for a window of concatenated pieces.

    Each piece ends and starts with ``edge_s`` of padding (no speech), and Whisper's timestamps
    are 20 ms steps that can land a little either side of a seam. So a start time within
    ``edge_s`` before a seam (or in the silence between recordings) belongs to the next piece
    (its speech begins after the seam), and an end time within ``edge_s`` after a seam to the
    previous one: no segment swallows a gap.
    """

    def __init__(self, pieces: list[Piece], edge_s: float = 0.0):
        self.pieces = list(pieces)
        self.offsets = [p.offset / SAMPLE_RATE for p in pieces]
        self.edge = edge_s

    def _tolerance(self, i: int) -> float:
        """How far past the seam before piece ``i`` a time may still belong to the piece before:
        the padding, plus the silence between two recordings (Whisper ends a segment late
        rather than early, and the silence is where it hesitates)."""
        if i == 0:
            return 0.0
        prev = self.pieces[i - 1]
        if prev.source == self.pieces[i].source:
            return max(self.edge, 1e-6)
        silence = self.offsets[i] - (prev.offset + prev.length) / SAMPLE_RATE
        return self.edge + silence

    def piece(self, t: float, is_end: bool = False) -> int:
        """Index of the piece a window time belongs to (the rules above)."""
        i = max(0, bisect_right(self.offsets, t + 1e-6) - 1)
        p = self.pieces[i]
        tail = (p.offset + p.length) / SAMPLE_RATE
        if not is_end and i + 1 < len(self.pieces) and (self.offsets[i + 1] - t <= self.edge or t >= tail):
            return i + 1
        if is_end and i > 0 and t - self.offsets[i] <= self._tolerance(i):
            return i - 1
        return i

    def at(self, t: float) -> int:
        """Index of the piece whose samples hold window time ``t`` (no seam rules): where a
        word's middle is heard. The seam rules are for Whisper's segment timestamps; a word
        aligned into the padding before a seam belongs to the piece it is in, not the next."""
        return max(0, bisect_right(self.offsets, t + 1e-6) - 1)

    def locate(self, t: float, is_end: bool = False) -> tuple[int, float]:
        """(recording index, time in that recording) of a window time."""
        if not self.pieces:
            return 0, t
        p = self.pieces[self.piece(t, is_end)]
        local = min(max(t - p.offset / SAMPLE_RATE, 0.0), p.length / SAMPLE_RATE)
        return p.source, (p.start / SAMPLE_RATE) + local

    def assign(self, spans: list[tuple[float, float]], start: float, end: float) -> list[int]:
        """The piece of each word (window-time ``spans``) of a segment from ``start`` to ``end``.

        Whisper's segment timestamps say which recordings a segment covers. Within one, every
        word stays in it. A segment across the silence between two recordings (short clips
        packed together) is cut at the word boundary nearest the middle of that silence, which
        alignment gets right far more often than it places each word.
        """
        first = self.piece(start)
        last = max(first, self.piece(end, is_end=True))
        seams = [j for j in range(first + 1, last + 1) if self.pieces[j].source != self.pieces[j - 1].source]
        n = len(spans)

        def boundary(k: int) -> float:
            if k == 0:
                return spans[0][0]
            return spans[-1][1] if k == n else (spans[k - 1][1] + spans[k][0]) / 2

        cuts, lo = [], 0
        for j in seams:
            prev = self.pieces[j - 1]
            middle = ((prev.offset + prev.length) / SAMPLE_RATE + self.offsets[j]) / 2
            k = min(range(lo, n + 1), key=lambda k: abs(boundary(k) - middle))
            cuts.append(k)
            lo = k
        ranges = list(zip([first, *seams], [j - 1 for j in seams] + [last], strict=True))
        out = []
        for k, (a, b) in enumerate(spans):
            r = sum(1 for c in cuts if c <= k)
            lo_i, hi_i = ranges[r]
            out.append(min(max(self.piece((a + b) / 2), lo_i), hi_i))
        return out

    def in_piece(self, t: float, i: int) -> float:
        """Window time ``t`` in the recording of piece ``i``, clamped to that piece."""
        p = self.pieces[i]
        return p.start / SAMPLE_RATE + min(max(t - p.offset / SAMPLE_RATE, 0.0), p.length / SAMPLE_RATE)

    def __call__(self, t: float, is_end: bool = False) -> float:
        return self.locate(t, is_end)[1]


def _pause_runs(speech: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end frame indices (end exclusive) of every run of non-speech frames."""
    quiet = np.concatenate(([False], ~speech, [False]))
    edges = np.flatnonzero(np.diff(quiet.astype(np.int8)))
    return edges[0::2], edges[1::2]


def _independent_blocks(times: list[float], pauses: list[tuple[float, float]], reach_s: float):
    """Boundaries and pauses cut into blocks that no match can cross: boundary ``k`` can only
    match a pause within ``reach_s`` of ``times[k]``, so where every later boundary's first
    candidate comes after every earlier boundary's last one, the best matching of the whole is
    the best matching of each block. Keeps the alignment linear in a recording's length (one
    matrix over three hours of words and pauses took 105 s and ~260 MB).
    Yields ``(boundary indices, pause indices)``."""
    if not pauses:
        return
    t = np.asarray(times, dtype=float)
    lo = np.searchsorted(np.array([b for _, b in pauses]), t - reach_s, side="left")
    hi = np.searchsorted(np.array([a for a, _ in pauses]), t + reach_s, side="right")
    later_lo = np.minimum.accumulate(lo[::-1])[::-1]  # the first candidate of any later boundary
    earlier_hi = np.maximum.accumulate(hi)  # past the last candidate of any earlier boundary
    first = 0
    for k in range(1, len(t) + 1):
        if k == len(t) or later_lo[k] >= earlier_hi[k - 1]:
            j0, j1 = int(lo[first:k].min()), int(earlier_hi[k - 1])
            if j1 > j0:
                yield list(range(first, k)), list(range(j0, j1))
            first = k


def _best_matching(ks: list[int], js: list[int], gain) -> dict[int, int]:
    """The in-order matching of boundaries ``ks`` to pauses ``js`` (each used at most once) with
    the largest total ``gain(k, j)`` (a dynamic programme, like aligning two sequences)."""
    n, m = len(ks), len(js)
    best = np.zeros((n + 1, m + 1))
    move = np.zeros((n + 1, m + 1), dtype=np.int8)  # 0 match, 1 skip boundary, 2 skip pause
    for a in range(1, n + 1):
        for b in range(1, m + 1):
            options = (best[a - 1, b - 1] + gain(ks[a - 1], js[b - 1]), best[a - 1, b], best[a, b - 1])
            move[a, b] = int(np.argmax(options))
            best[a, b] = options[move[a, b]]
        move[a, 0] = 1
    out: dict[int, int] = {}
    a, b = n, m
    while a > 0 and b > 0:
        if move[a, b] == 0:
            out[ks[a - 1]] = js[b - 1]
            a, b = a - 1, b - 1
        elif move[a, b] == 1:
            a -= 1
        else:
            b -= 1
    return out


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

    match: dict[int, tuple[float, float]] = {}
    for ks, js in _independent_blocks(times, pauses, reach_s):
        for k, j in _best_matching(ks, js, gain).items():
            match[k] = pauses[j]
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
