"""Min/max pyramid of a waveform, so any zoom level draws about one min/max pair per pixel.

Built once per file off the GUI thread (O(n)); picking a level and slicing it is O(pixels), so an
hour of audio pans and zooms as fast as a sentence.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from speechint_desktop.core.audio import channel_mean

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


class EnvelopeBuilder:
    """The envelope of a recording fed block by block, so the app never holds the recording.

    The finest level starts at the bucket size that keeps a recording of ``expected`` samples
    (``AudioInfo.frames``) within ``MAX_RAW`` buckets, as ``build_envelope`` does. If the
    recording turns out longer (FFmpeg's length is an estimate; unknown is taken as short),
    the level is coarsened by ``FACTOR`` whenever it passes ``MAX_RAW``; an odd last bucket
    then joins the bucket before it, so later buckets sit less than one bucket early: nothing
    a pixel shows.
    """

    def __init__(self, sample_rate: int, expected: int | None = None):
        self.sample_rate = int(sample_rate)
        self.n_samples = 0
        self.block = 1  # samples per bucket of the finest level
        while (expected or 0) / self.block > MAX_RAW:
            self.block *= FACTOR
        self._mins: list[np.ndarray] = []
        self._maxs: list[np.ndarray] = []
        self._held = 0  # buckets in the lists
        self._rest = np.zeros(0, np.float32)  # samples of a bucket not yet complete

    def feed(self, samples: np.ndarray) -> None:
        """Add mono (n,) or multichannel (n, ch) samples; channels are averaged for display."""
        x = channel_mean(samples)
        self.n_samples += len(x)
        if len(self._rest):
            x = np.concatenate([self._rest, x])
        whole = len(x) // self.block * self.block
        self._rest = x[whole:].copy()
        if whole:
            if self.block == 1:
                mins = maxs = x[:whole].copy()
            else:
                mins, maxs = _reduce(x[:whole], x[:whole], self.block)
            self._mins.append(mins)
            self._maxs.append(maxs)
            self._held += len(mins)
        while self._held > MAX_RAW:
            mins, maxs = np.concatenate(self._mins), np.concatenate(self._maxs)
            mins, maxs = _reduce(mins, maxs, FACTOR)  # an odd last bucket becomes its own
            if len(mins) > 1 and self._held % FACTOR:  # ... so fold it into the one before
                mins[-2], maxs[-2] = min(mins[-2], mins[-1]), max(maxs[-2], maxs[-1])
                mins, maxs = mins[:-1], maxs[:-1]
            self._mins, self._maxs, self._held = [mins], [maxs], len(mins)
            self.block *= FACTOR

    def finish(self) -> Envelope:
        """The envelope of everything fed (a last partial bucket included)."""
        mins = np.concatenate(self._mins) if self._mins else np.zeros(0, np.float32)
        maxs = np.concatenate(self._maxs) if self._maxs else np.zeros(0, np.float32)
        if len(self._rest):
            if self.block == 1:
                mins, maxs = np.append(mins, self._rest), np.append(maxs, self._rest)
            else:
                mins, maxs = np.append(mins, self._rest.min()), np.append(maxs, self._rest.max())
        env = Envelope(sample_rate=self.sample_rate, n_samples=self.n_samples)
        block = self.block
        while True:
            env.blocks.append(block)
            env.mins.append(np.ascontiguousarray(mins, dtype=np.float32))
            env.maxs.append(np.ascontiguousarray(maxs, dtype=np.float32))
            if len(mins) <= MIN_POINTS:
                return env
            mins, maxs = _reduce(mins, maxs, FACTOR)
            block *= FACTOR


def build_envelope(samples: np.ndarray, sample_rate: int) -> Envelope:
    """Envelope of a mono (n,) or multichannel (n, ch) signal; channels are averaged for display."""
    builder = EnvelopeBuilder(sample_rate, len(samples))
    builder.feed(samples)
    return builder.finish()


def stream_envelope(path, cancel=None) -> Envelope:
    """The envelope of a file, decoded block by block (``core.audio.stream``): bounded memory
    for a recording of any length."""
    from speechint_desktop.core import audio

    with audio.stream(path) as s:
        builder = EnvelopeBuilder(s.info.sample_rate, s.info.frames)
        for block in s:
            if cancel is not None and cancel.is_set():
                break
            builder.feed(block)
    return builder.finish()
