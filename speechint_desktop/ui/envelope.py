"""Min/max pyramid of a waveform, so any zoom level draws about one min/max pair per pixel.

Built once per file off the GUI thread (O(n)); picking a level and slicing it is O(pixels), so an
hour of audio pans and zooms as fast as a sentence.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

FACTOR = 2  # each level has half the buckets of the one below: at most 2 buckets per pixel
MIN_POINTS = 2048  # the coarsest level still has this many buckets
MAX_RAW = 4_000_000  # longer files start the pyramid at a decimated min/max level


@dataclass
class Envelope:
    """Levels of (mins, maxs) arrays; level i has one bucket per ``blocks[i]`` samples."""

    sample_rate: int
    n_samples: int
    blocks: list[int] = field(default_factory=list)
    mins: list[np.ndarray] = field(default_factory=list)
    maxs: list[np.ndarray] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.sample_rate if self.sample_rate else 0.0

    def view(self, t0: float, t1: float, pixels: int) -> tuple[np.ndarray, np.ndarray]:
        """(times, values) for [t0, t1] at about two points per pixel, min/max interleaved."""
        pixels = max(int(pixels), 16)
        t0 = max(t0, 0.0)
        t1 = min(t1, self.duration_s)
        if t1 <= t0 or not self.blocks:
            return np.zeros(0), np.zeros(0)
        span = (t1 - t0) * self.sample_rate
        level = 0
        for i, block in enumerate(self.blocks):
            if span / block >= pixels:
                level = i
            else:
                break
        block = self.blocks[level]
        lo = int(t0 * self.sample_rate / block)
        hi = int(np.ceil(t1 * self.sample_rate / block)) + 1
        mins = self.mins[level][lo:hi]
        maxs = self.maxs[level][lo:hi]
        t = (np.arange(lo, lo + len(mins)) * block + block / 2) / self.sample_rate
        if block == 1:
            return t, mins
        times = np.repeat(t, 2)
        values = np.empty(2 * len(mins), dtype=np.float32)
        values[0::2] = mins
        values[1::2] = maxs
        return times, values


def _reduce(mins: np.ndarray, maxs: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray]:
    n = len(mins) // factor * factor
    tail_min, tail_max = mins[n:], maxs[n:]
    rmin = mins[:n].reshape(-1, factor).min(axis=1)
    rmax = maxs[:n].reshape(-1, factor).max(axis=1)
    if len(tail_min):
        rmin = np.append(rmin, tail_min.min())
        rmax = np.append(rmax, tail_max.max())
    return rmin, rmax


def build_envelope(samples: np.ndarray, sample_rate: int) -> Envelope:
    """Envelope of a mono (n,) or multichannel (n, ch) signal; channels are averaged for display."""
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim == 2:
        x = x.mean(axis=1) if x.shape[1] > 1 else x[:, 0]
    env = Envelope(sample_rate=int(sample_rate), n_samples=len(x))
    block = 1
    mins = maxs = x
    while len(x) / block > MAX_RAW:
        block *= FACTOR
    if block > 1:  # one pass straight to the first level that fits
        mins, maxs = _reduce(x, x, block)
    while True:
        env.blocks.append(block)
        env.mins.append(np.ascontiguousarray(mins))
        env.maxs.append(np.ascontiguousarray(maxs))
        if len(mins) <= MIN_POINTS:
            break
        mins, maxs = _reduce(mins, maxs, FACTOR)
        block *= FACTOR
    return env
