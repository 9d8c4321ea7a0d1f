"""The voice-level contour: the intensity head over a sliding span of encoder frames.

The head reads mean-pooled frames, so any span of frames gives a reading; a 400 ms span
(20 frames at 50 per second), every 100 ms, follows the voice as a momentary meter follows
the room. Only decoded speech has frames, so the contour has points over speech only (a gap
between points is a pause the decoder never saw).
"""

from __future__ import annotations

import numpy as np

from .results import VoiceContour

FRAMES_PER_S = 50
SPAN_S = 0.4
STEP_S = 0.1


def contour_points(head, frames, a: int, b: int, t0: float, span_s: float = SPAN_S, step_s: float = STEP_S):
    """(times, values) of ``head`` (pooled inputs → values) over spans of ``frames[a:b]``.

    ``t0`` is the recording time (s) of frame ``a``; each point is the head on the mean of the
    ``span_s`` of frames centred on it (shortened at the stretch's ends, never across them).
    """
    b = min(b, frames.shape[0])
    n = b - a
    if n <= 0:
        return np.zeros(0), np.zeros(0)
    span = max(1, round(span_s * FRAMES_PER_S))
    step = max(1, round(step_s * FRAMES_PER_S))
    seg = np.asarray(frames[a:b], dtype=np.float64)
    csum = np.concatenate([np.zeros_like(seg[:1]), seg.cumsum(0)])
    centres = np.arange(step // 2, n, step) if n > step else np.array([n // 2])
    lo = np.clip(centres - span // 2, 0, n)
    hi = np.clip(lo + span, 0, n)
    lo = np.clip(hi - span, 0, n)
    pooled = (csum[hi] - csum[lo]) / np.maximum(hi - lo, 1)[:, None]
    values = np.asarray(head(pooled.astype(np.float32)), dtype=np.float64)
    times = t0 + (centres + 0.5) / FRAMES_PER_S
    return times.astype(np.float64), values


def build(points: list[tuple[np.ndarray, np.ndarray]]) -> VoiceContour | None:
    """The pieces' points in time order (a time seen twice keeps its first reading)."""
    if not points:
        return None
    t = np.concatenate([p[0] for p in points])
    v = np.concatenate([p[1] for p in points])
    if not len(t):
        return None
    order = np.argsort(t, kind="stable")
    t, v = np.round(t[order], 3), np.round(v[order], 2)
    keep = np.concatenate([[True], np.diff(t) > 1e-6])
    return VoiceContour(t[keep], v[keep], SPAN_S, STEP_S)
