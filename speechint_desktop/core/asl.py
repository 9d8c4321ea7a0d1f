"""Active speech level, ITU-T P.56 method B: the level of a voice while it is talking.

RMS and LUFS average over the pauses too, so the same voice reads lower the more it pauses;
P.56's active speech level divides the energy by the *active* time only. Method B, as the
recommendation gives it:

- envelope: ``p = g·p + (1−g)·|x|``, ``q = g·q + (1−g)·p`` with ``g = exp(−1/(fs·0.03 s))``;
- a sample is active at threshold ``c`` when ``q ≥ c`` at it or within the hangover
  (0.2 s, ``ceil(0.2·fs)`` samples) before it;
- for each threshold the candidate level is ``A(c) = Σx² / (active samples)``; the active
  speech level is the ``A`` where ``A(c)`` in dB lies the margin (15.9 dB) above ``c`` in dB,
  interpolated in dB between neighbouring thresholds; the activity factor is the active
  fraction there.

The recommendation steps its thresholds by factors of two (the code values of a 16-bit
converter); here every threshold is evaluated at once: a sample's "hangover envelope"
``m[n] = max(q[n−I..n])`` decides its activity for every ``c`` (active iff ``m[n] ≥ c``), so a
histogram of ``m`` (0.01 dB bins) gives the active count of any threshold. The crossing is
found on a 1 dB grid and refined on the 0.01 dB bins, so the result is the recommendation's
crossing without its 6 dB interpolation error. The meter streams (``feed`` blocks, ``finish``),
with memory independent of the recording's length. Multichannel audio is measured on the
mean of its channels (P.56 is defined for one channel).

No maintained PyPI library implements P.56 (checked); this module is written from the
recommendation and tested on signals whose level and activity are known by construction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from speechint_desktop.core import iir

TIME_CONSTANT_S = 0.03
HANGOVER_S = 0.2
MARGIN_DB = 15.9
_BIN_DB = 0.01
_LO_DB = -160.0  # histogram floor (dBFS of the envelope); anything below counts as inactive
_HI_DB = 20.0
_NBINS = int(round((_HI_DB - _LO_DB) / _BIN_DB))


@dataclass(frozen=True)
class SpeechLevel:
    """P.56 active speech level (dBFS; -inf for silence) and activity factor (0..1)."""

    asl_dbfs: float
    activity: float
    long_term_dbfs: float  # plain RMS of the measured signal, for reference

    def rounded(self) -> tuple[float | None, float | None]:
        """(level, activity) as results carry them (``Loudness.asl_dbfs``/``asl_activity``):
        0.001 dB and 0.0001, both None for silence (JSON has no -inf)."""
        if not math.isfinite(self.asl_dbfs):
            return None, None
        return round(self.asl_dbfs, 3), round(self.activity, 4)


class AslMeter:
    """Streaming P.56 method B meter: ``feed(block)`` any number of times, then ``finish()``."""

    def __init__(self, sr: int):
        if sr <= 0:
            raise ValueError("sample rate must be positive")
        self.sr = int(sr)
        self.g = math.exp(-1.0 / (self.sr * TIME_CONSTANT_S))
        self.hang = int(math.ceil(HANGOVER_S * self.sr))
        smoother = ([1.0 - self.g], [1.0, -self.g])
        self._envelope = iir.Filter([smoother, smoother])  # p then q, in one pass
        self._z = np.zeros(self._envelope.order)
        self._tail = np.zeros(self.hang, np.float64)  # the last I envelope values
        self._hist = np.zeros(_NBINS, np.int64)
        self._sq = 0.0
        self._n = 0

    def feed(self, block) -> None:
        x = np.asarray(block, dtype=np.float64)
        if x.ndim == 2:
            x = x.mean(axis=1)
        if x.size == 0:
            return
        q, self._z = self._envelope(np.abs(x), self._z)
        ext = np.concatenate([self._tail, q])
        m = iir.running_max(ext, self.hang)[self.hang :]  # the maximum over [n - I, n]
        self._tail = ext[-self.hang :] if self.hang else ext[:0]
        with np.errstate(divide="ignore"):
            db = 20.0 * np.log10(m)
        idx = np.floor((db - _LO_DB) / _BIN_DB)
        idx = idx[np.isfinite(idx) & (idx >= 0)].astype(np.int64)
        self._hist += np.bincount(np.minimum(idx, _NBINS - 1), minlength=_NBINS)
        self._sq += float(np.dot(x, x))
        self._n += x.size

    def finish(self) -> SpeechLevel:
        return _solve(self._hist, self._sq, self._n)


def _solve(hist: np.ndarray, sq: float, n: int) -> SpeechLevel:
    if n == 0 or sq <= 0.0:
        return SpeechLevel(float("-inf"), 0.0, float("-inf"))
    long_term = 10.0 * math.log10(sq / n)
    # active count at threshold c = samples whose hangover envelope is >= c (bin lower edges)
    count = np.cumsum(hist[::-1])[::-1].astype(np.float64)
    edges = _LO_DB + _BIN_DB * np.arange(_NBINS)
    valid = count > 0
    with np.errstate(divide="ignore"):
        a_db = np.where(valid, 10.0 * np.log10(sq / np.maximum(count, 1.0)), np.inf)
    diff = a_db - edges  # falls as the threshold rises (the margin is crossed once)

    def crossing(k_idx: np.ndarray) -> float | None:
        d = diff[k_idx]
        below = np.nonzero(d <= MARGIN_DB)[0]
        if len(below) == 0 or below[0] == 0:
            return None
        j = below[0]
        lo, hi = k_idx[j - 1], k_idx[j]  # diff[lo] > M >= diff[hi]
        return lo, hi

    coarse = np.arange(0, _NBINS, int(round(1.0 / _BIN_DB)))  # the 1 dB grid
    c = crossing(coarse)
    if c is None:  # the crossing lies below the first threshold: everything is active
        return SpeechLevel(long_term, 1.0, long_term)
    lo, hi = c
    fine = np.arange(lo, hi + 1)
    lo, hi = crossing(fine) or (lo, hi)
    d_lo, d_hi = diff[lo], diff[hi]
    if not math.isfinite(d_hi):
        asl = a_db[lo]
    else:
        t = (d_lo - MARGIN_DB) / (d_lo - d_hi) if d_lo != d_hi else 0.0
        asl = float(a_db[lo] + t * (a_db[hi] - a_db[lo]))
    activity = float(min(1.0, sq / n / 10.0 ** (asl / 10.0)))
    return SpeechLevel(float(asl), activity, long_term)


def active_speech_level(x, sr: int) -> SpeechLevel:
    """P.56 method B on a whole signal (1-D, or (samples, channels) averaged to mono)."""
    meter = AslMeter(sr)
    meter.feed(x)
    return meter.finish()


def asl_dbfs(x, sr: int) -> float:
    """Active speech level in dBFS (-inf for silence)."""
    return active_speech_level(x, sr).asl_dbfs
