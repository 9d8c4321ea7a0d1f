"""Loudness per ITU-R BS.1770-4 and EBU R128 (Tech 3341 meters, Tech 3342 loudness range).

Conventions (the README quotes these):

- K-weighting is the BS.1770 two-stage pre-filter (high shelf + RLB high-pass), with both
  biquads derived for the file's own sample rate from the analog prototype (De Man's
  derivation, as libebur128 does), never the fixed 48 kHz coefficients, which misread other
  rates (pyloudnorm's default filter reads 0.11 LU low at 16 kHz).
- Channel weights: 1.0 for L, R, C; 1.41 for Ls, Rs. Five channels are taken as
  L R C Ls Rs, six as 5.1 (L R C LFE Ls Rs) with the LFE excluded; other layouts weight every
  channel 1.0. **Mono is measured as one channel**, so a mono file reads 3.01 dB below the same
  audio as dual-mono (stereo) — as every BS.1770 meter does.
- Integrated loudness: 400 ms blocks every 100 ms (75 % overlap), absolute gate −70 LUFS,
  relative gate −10 LU. Clips shorter than 400 ms have no complete block: the value is None
  and the note is ``TOO_SHORT``. A clip with nothing above the absolute gate is −inf ("silent").
- Loudness range (Tech 3342): 3 s short-term windows every 100 ms, absolute gate −70 LUFS,
  relative gate −20 LU, LRA = 95th − 10th percentile (nearest rank). None below 3 s.
- RMS dBFS is unweighted: 10·log10 of the mean square over all samples and channels, so a
  full-scale sine reads −3.01 dBFS. Sample peak is max |x| in dBFS (not true peak).
- Traces (momentary 400 ms, short-term 3 s, RMS 400 ms) are sampled every ``step`` seconds at
  window end times; a window not yet full is −inf.
- Speech-only ("dialogue") loudness, when ``measure`` is given speech regions: the loudness
  of the recording with everything outside the (merged) speech regions muted, i.e. of the
  speech track alone. The same 400 ms blocks every 100 ms as the programme, each holding only
  its K-weighted energy inside speech, gated as BS.1770 gates a programme (−70 LUFS, then −10 LU
  below the mean): blocks in pauses fall to the absolute gate, blocks across a region's edge
  count as partly silent — exactly as when the speech is measured on its own. Speech RMS is the
  unweighted mean square over the speech samples only. Both are None when there is no speech.
- True peak (ITU-R BS.1770-4 Annex 2, ``truepeak``): measured in the same chunked pass, for the
  clip and per trace step (``LoudnessTrace.true_peak_dbtp``), so a segment's true peak is the
  maximum over the steps it overlaps (``span_true_peaks``). Maximum momentary / short-term
  loudness are the largest trace values (windows every ``step``, 10 ms by default: finer than
  EBU's "at least 10 Hz", so a burst between two updates is not missed).
- Word (span) levels: RMS over the span's samples; maximum momentary loudness over the trace
  windows whose centre (end time − 0.2 s) lies within the span, or the nearest window when the
  span falls between two trace steps. None (NaN in arrays) when silent or not measurable.

Streaming, and the grid. ``Meter`` measures a recording block by block as it is decoded (the
file is never held): each block is K-weighted (filter state carried), fed to the true-peak
meter, and reduced to energies on a millisecond grid — cumulative K-weighted and raw energy
every 10 ms in float64, and each 1 ms cell's energy in float32 (spilled to disk past 16 MB) —
after which nothing of the block is kept. ``Levels`` (what ``finish`` returns) derives every
measure from that grid: the 400 ms / 100 ms gating blocks, the 3 s windows and the 10 ms traces
all fall on 10 ms points, so they are differences of exact cumulative sums, the same numbers
the samples give (to ~1e-11 LU; at 11.025 / 22.05 kHz, where a millisecond is not a whole
number of samples, a window edge may move by one sample). Spans known only after the pass —
speech regions from the speech detector, segments and words from the decoder — are measured to
the millisecond: exactly for times written to the millisecond (as results are), a region's
edge otherwise moved by at most 0.5 ms. ``measure`` of an in-memory clip runs the same code, in
the same 2^18-sample blocks, with its speech regions' edges given in advance (``edges``), so
they are measured to the sample as before. Memory per hour of audio, whatever its rate and
channels: 6 MB for the 10 ms grid (on disk past ~11 minutes), 3 MB for the per-step true peak,
29 MB of 1 ms cells (on disk past 16 MB), and the 14 MB of traces the results carry (made from
the grid when asked for).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from speechint_desktop.core import audio, iir, truepeak
from speechint_desktop.core.audio import AudioClip
from speechint_desktop.core.inorder import InOrder
from speechint_desktop.core.results import Loudness, LoudnessTrace, Segment, Word

TOO_SHORT = "too short to measure integrated loudness (< 0.4 s)"
SILENT = "silent: nothing above the -70 LUFS gate"
LRA_TOO_SHORT = "too short to measure loudness range (< 3 s)"

BLOCK_S = 0.4  # BS.1770 gating block == EBU momentary window
BLOCK_HOP_S = 0.1  # 75 % overlap
SHORT_TERM_S = 3.0
LRA_HOP_S = 0.1  # Tech 3342: short-term values at >= 10 Hz
DEFAULT_STEP_S = 0.01  # the traces' step
ABS_GATE_LUFS = -70.0
REL_GATE_LU = -10.0
LRA_REL_GATE_LU = -20.0
_OFFSET = -0.691  # makes a 997 Hz stereo sine at -23 dBFS read -23 LUFS
_CHUNK = 1 << 18  # samples per filtering chunk


def k_weighting_sos(sample_rate: float) -> np.ndarray:
    """The two K-weighting biquads for ``sample_rate`` as second-order sections, shape (2, 6).

    Bilinear transform (pre-warped) of the analog shelf and high-pass whose parameters
    reproduce BS.1770's published 48 kHz coefficients exactly.
    """
    fs = float(sample_rate)
    # Stage 1: high shelf (+4 dB above ~1.7 kHz, the head's acoustic effect).
    f0, gain_db, q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
    k = math.tan(math.pi * f0 / fs)
    vh = 10.0 ** (gain_db / 20.0)
    vb = vh**0.4996667741545416
    a0 = 1.0 + k / q + k * k
    shelf = [
        (vh + vb * k / q + k * k) / a0,
        2.0 * (k * k - vh) / a0,
        (vh - vb * k / q + k * k) / a0,
        1.0,
        2.0 * (k * k - 1.0) / a0,
        (1.0 - k / q + k * k) / a0,
    ]
    # Stage 2: RLB high-pass (~38 Hz).
    f0, q = 38.13547087602444, 0.5003270373238773
    k = math.tan(math.pi * f0 / fs)
    a0 = 1.0 + k / q + k * k
    highpass = [1.0, -2.0, 1.0, 1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0]
    return np.array([shelf, highpass], dtype=np.float64)


def k_weighting_filter(sample_rate: float) -> iir.Filter:
    """The K-weighting as a streaming filter: its two biquads in cascade (``iir.Filter``; state
    ``(channels, 4)``). Kept as two sections, not multiplied out into one 4th-order polynomial:
    that form's two pole pairs near 1 make its rounding grow with the rate (to 1e-9 of the signal
    at 192 kHz, even in ``lfilter``), the cascade's stays near 1e-12."""
    return iir.Filter([(s[:3], s[3:]) for s in k_weighting_sos(sample_rate)])


def channel_weights(n_channels: int) -> np.ndarray:
    if n_channels == 5:  # L R C Ls Rs
        return np.array([1.0, 1.0, 1.0, 1.41, 1.41])
    if n_channels == 6:  # 5.1: L R C LFE Ls Rs, LFE excluded
        return np.array([1.0, 1.0, 1.0, 0.0, 1.41, 1.41])
    return np.ones(n_channels)


def _as_2d(samples: np.ndarray) -> np.ndarray:
    x = np.asarray(samples)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError("samples must be 1-D or (n_samples, n_channels)")
    return x


def _to_lufs(power: np.ndarray | float) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return _OFFSET + 10.0 * np.log10(np.maximum(power, 0.0))


def _to_db(power: np.ndarray | float) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return 10.0 * np.log10(np.maximum(power, 0.0))


def _finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _gated_integrated(block_power: np.ndarray) -> float:
    """BS.1770-4 two-stage gating on block powers; -inf when nothing passes the absolute gate."""
    lufs = _to_lufs(block_power)
    gated = block_power[lufs > ABS_GATE_LUFS]
    if gated.size == 0:
        return -math.inf
    rel = float(_to_lufs(gated.mean())) + REL_GATE_LU
    final = block_power[(lufs > ABS_GATE_LUFS) & (lufs > rel)]
    return float(_to_lufs(final.mean()))


def _lra(short_term_power: np.ndarray) -> float | None:
    lufs = _to_lufs(short_term_power)
    above = short_term_power[lufs > ABS_GATE_LUFS]
    if above.size == 0:
        return None
    rel = float(_to_lufs(above.mean())) + LRA_REL_GATE_LU
    kept = np.sort(lufs[(lufs > ABS_GATE_LUFS) & (lufs > rel)])
    lo = kept[int(round((kept.size - 1) * 0.10))]
    hi = kept[int(round((kept.size - 1) * 0.95))]
    return float(hi - lo)


def _span_samples(starts_s, ends_s, n: int, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Seconds to sample indices ``[i0, i1)`` clamped to ``[0, n]``, ``i1 >= i0``.

    The same rounding as ``span_loudness``, so a word and its slice cover the same samples.
    """
    s = np.atleast_1d(np.asarray(starts_s, dtype=np.float64))
    e = np.atleast_1d(np.asarray(ends_s, dtype=np.float64))
    if s.shape != e.shape or s.ndim != 1:
        raise ValueError("starts and ends must be 1-D and the same length")
    s = np.nan_to_num(s, nan=0.0, posinf=n / sr, neginf=0.0)
    e = np.nan_to_num(e, nan=0.0, posinf=n / sr, neginf=0.0)
    i0 = np.clip(np.round(s * sr), 0, n).astype(np.int64)
    i1 = np.clip(np.round(e * sr), 0, n).astype(np.int64)
    return i0, np.maximum(i0, i1)


GRID_MS = 10  # the grid: cumulative energies kept exactly (float64) every 10 ms
# the grid (5.8 MB an hour) goes to disk past ~11 minutes, so a long recording's analysis does
# not hold it through decoding (3 h: 17 MB of a peak that should not grow with the length)
GRID_SPILL_BYTES = 1 << 20
_CELLS_PER_GRID = GRID_MS  # 1 ms cells between grid points (float32), for spans to the millisecond


def _merge_spans(s: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sample spans ``[s, e)`` → sorted, disjoint, non-empty (overlapping or touching merged)."""
    keep = e > s
    s, e = s[keep], e[keep]
    if s.size == 0:
        return s, e
    order = np.argsort(s, kind="stable")
    s, e = s[order], e[order]
    run_end = np.maximum.accumulate(e)
    first = np.flatnonzero(np.concatenate(([True], s[1:] > run_end[:-1])))
    return s[first], np.maximum.reduceat(e, first)


def _merge_regions(regions, n: int, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Speech regions in seconds → sorted, disjoint, non-empty sample spans (overlapping or
    touching regions merged, everything clamped to the clip)."""
    a = np.asarray(list(regions), dtype=np.float64).reshape(-1, 2)
    a = a[np.isfinite(a).all(axis=1)]
    s, e = _span_samples(a[:, 0], a[:, 1], n, sr)
    return _merge_spans(s, e)


def region_edges(regions, sample_rate: int) -> np.ndarray:
    """The sample positions where merged regions (seconds) start and end, for ``Meter(edges=…)``
    before the recording's length is known (positions past its end are simply never reached)."""
    s, e = _merge_regions(regions, 1 << 62, int(sample_rate))
    return np.concatenate([s, e])


class Meter:
    """BS.1770 loudness, true peak and RMS in one streaming pass: ``feed`` blocks of
    ``(n, channels)`` samples in order, then ``finish`` for the ``Levels`` they leave.

    Nothing per sample outlives its block. Each block is K-weighted (filter state carried) and
    reduced to energies on a millisecond grid (``truepeak.grid_edges``): the cumulative
    K-weighted (channel-weighted) and raw (channel-mean) energy every 10 ms, kept in float64
    (100 pairs a second, 6 MB an hour, on disk past ``GRID_SPILL_BYTES``), plus the energy of
    every 1 ms cell between them, kept in float32 in a ``SampleStore`` (29 MB an hour, on disk
    past 16 MB), so a span given to the millisecond — as word and segment times are written —
    is measured exactly, not rounded to 10 ms (which moves a word's RMS by 0.03 dB at the
    median and up to dB near an onset).
    Every BS.1770 measure needs only the 10 ms points: 400 ms blocks every 100 ms, 3 s windows,
    traces every 10 ms (``step``: any whole number of milliseconds).

    ``edges``: sample indices known in advance (e.g. speech regions of an in-memory clip),
    whose cumulative energies are kept exactly too, so spans between them are measured to the
    sample. ``true_peak``: ``False``, ``True`` (the whole stream's) or ``"trace"`` (also per
    ``step``). ``weighted=False`` skips the K-weighting (raw energy only); ``grid=False`` keeps
    only ``edges`` (for one-off span measurements); ``cells=False`` keeps the 10 ms grid without
    the 1 ms cells, when no span will be asked for to the millisecond (delivery checks, whose
    speech regions are ``edges``).
    """

    def __init__(
        self,
        sample_rate: int,
        channels: int,
        step: float | None = DEFAULT_STEP_S,
        edges=None,
        true_peak: bool | str = True,
        weighted: bool = True,
        grid: bool = True,
        cells: bool = True,
        threaded: bool = False,
    ):
        self.sample_rate = sr = int(sample_rate)
        self.channels = ch = int(channels)
        if sr <= 0 or ch <= 0:
            raise ValueError("sample rate and channels must be positive")
        if grid and sr < 1000:  # the millisecond grid needs at least a sample per millisecond
            raise ValueError(f"sample rate {sr} Hz is below 1 kHz: too low to measure loudness")
        self.step = None if step is None else float(step)
        step_ms = None if step is None else truepeak.step_ms(step)
        if step is not None and step_ms is None:
            raise ValueError("step must be a positive whole number of milliseconds")
        self._weights = channel_weights(ch)
        self._kw = k_weighting_filter(sr) if weighted else None
        self._zi = np.zeros((ch, self._kw.order)) if weighted else None
        e = np.zeros(0, np.int64) if edges is None else np.unique(np.asarray(edges, dtype=np.int64))
        self._extra = e[e > 0]
        self._extra_cum: list[np.ndarray] = []  # (k, raw) rows at the extra edges passed
        self._grid = bool(grid)
        self._next_ms = 1  # the next grid point (ms) to pass
        self._part = np.zeros(2)  # (k, raw) energy since the last grid point passed
        # cumulative (k, raw) at 0, 10, 20 … ms, exact (float64); past GRID_SPILL_BYTES on disk
        self._tens = audio.SampleStore(width=2, spill_bytes=GRID_SPILL_BYTES, dtype=np.float64)
        self._tens.append(np.zeros((1, 2)))
        self._cells = audio.SampleStore(width=2) if grid and cells else None  # (k, raw) per 1 ms
        self._carry = np.zeros(2)  # cumulative (k, raw) energy of everything fed
        self.n = 0
        self.peak = 0.0
        self._tp = None
        if true_peak:
            per_step = true_peak == "trace" and step_ms is not None
            self._tp = truepeak.TruePeakMeter(sr, ch, step_ms=step_ms if per_step else None)
        # the true-peak filter (a third of the pass's CPU at 48 kHz) beside the rest, on a thread
        self._tp_thread = InOrder(self._tp.feed, "true-peak") if threaded and self._tp is not None else None

    def feed(self, block: np.ndarray) -> None:
        """Add the next samples, ``(n, channels)`` (or 1-D for mono)."""
        x = _as_2d(block)
        c = x.shape[0]
        if c == 0:
            return
        if x.shape[1] != self.channels:
            raise ValueError(f"expected {self.channels} channels, got {x.shape[1]}")
        sr, ch = self.sample_rate, self.channels
        c0, c1 = self.n, self.n + c
        self.peak = max(self.peak, float(x.max()), -float(x.min()))
        if self._tp_thread is not None:
            self._tp_thread.submit(x)
        elif self._tp is not None:
            self._tp.feed(x)
        blk = np.ascontiguousarray(x.T, dtype=np.float64)  # (ch, len)
        pr = blk[0] * blk[0] if ch == 1 else np.einsum("ij,ij->j", blk, blk) / ch
        if self._kw is not None:
            y, self._zi = self._kw(blk, self._zi)
            pk = y[0] * y[0] if ch == 1 else self._weights @ (y * y)
        else:
            pk = np.zeros(c)
        # every edge in (c0, c1]: grid points and the extra edges
        ms = np.zeros(0, np.int64)
        if self._grid:
            hi = int(math.floor(c1 / sr * 1000.0)) + 2
            ms = np.arange(self._next_ms, max(self._next_ms, hi), dtype=np.int64)
            at = truepeak.grid_edges(ms, sr)
            ms, at = ms[at <= c1], at[at <= c1]
        else:
            at = ms
        lo, hi = np.searchsorted(self._extra, [c0, c1], side="right")
        extra = self._extra[lo:hi]
        edges = np.union1d(at, extra) if extra.size else at
        local = edges - c0
        idx = np.concatenate(([0], local[local < c]))
        # energy of each piece between consecutive edges (the last piece runs to the block's end)
        seg = np.stack([np.add.reduceat(pk, idx), np.add.reduceat(pr, idx)], axis=1)
        cum = self._carry + np.cumsum(seg, axis=0)  # cumulative energy at each piece's end
        if extra.size:
            self._extra_cum.append(cum[np.searchsorted(edges, extra)])
        if ms.size:
            pos = np.searchsorted(edges, at)  # the piece each grid point ends
            if self._cells is not None:
                groups = np.concatenate(([0], pos + 1))
                cells = np.add.reduceat(np.vstack([seg, np.zeros((1, 2))]), groups, axis=0)
                cells[0] += self._part
                self._part = cells[-1]
                self._cells.append(cells[:-1])
            tens = ms % GRID_MS == 0
            if tens.any():
                self._tens.append(cum[pos[tens]])
            self._next_ms = int(ms[-1]) + 1
        else:
            self._part = self._part + seg.sum(axis=0)
        self._carry = cum[-1]
        self.n = c1

    def close(self) -> None:
        """Stop the true-peak thread of a pass given up (an error, a cancel); ``finish`` does
        not need this."""
        if self._tp_thread is not None:
            self._tp_thread.close()

    def finish(self) -> Levels:
        """Flush the true-peak filter and hand over what the pass kept."""
        if self._tp_thread is not None:
            self._tp_thread.wait()
        if self._tp is not None:
            self._tp.finish()
        extra_cum = np.concatenate(self._extra_cum) if self._extra_cum else np.zeros((0, 2))
        return Levels(
            sample_rate=self.sample_rate,
            channels=self.channels,
            n=self.n,
            step=self.step,
            last_ms=self._next_ms - 1 if self._grid else -1,
            tens=self._tens.finish(),
            cells=self._cells.finish() if self._cells is not None else None,
            extra=self._extra[: extra_cum.shape[0]],
            extra_cum=extra_cum,
            total=self._carry.copy(),
            peak=self.peak,
            true_peak=self._tp,
        )


class Levels:
    """What a streaming pass (``Meter``) keeps of a recording, and every measure made from it.

    A few MB an hour in memory (the 10 ms grid; the 1 ms cells spill to disk), instead of the
    samples (1.4 GB an hour at 48 kHz stereo float32): integrated loudness, loudness range,
    traces, maxima, RMS, sample and true peak (``loudness``); speech-only loudness for regions
    found after the pass; RMS and loudness of any span (``span_rms``, ``span_loudness``) and
    block RMS (``block_rms``, the noise floor's). A position that is neither an exact edge
    (``Meter(edges=…)``, 0, the end) nor on the millisecond grid is rounded to the nearest
    millisecond first (``snap``): at most 0.5 ms, and none at all for times given to the
    millisecond.
    """

    def __init__(
        self,
        sample_rate,
        channels,
        n,
        step,
        last_ms,
        tens,
        cells,
        extra,
        extra_cum,
        total,
        peak,
        true_peak,
    ):
        self.sample_rate, self.channels, self.n, self.step = int(sample_rate), int(channels), int(n), step
        self.last_ms = int(last_ms)  # the last grid point inside the recording
        self.resolution_ms = 1 if cells is not None else GRID_MS  # spans are rounded to this
        self._tens = tens  # (k, raw) cumulative at 0, 10, 20 … ms (array or SampleStore)
        self._cells = cells  # (k, raw) energy of each 1 ms cell, float32 (array or SampleStore)
        self._extra, self._extra_cum = extra, extra_cum
        self.total_k, self.total_raw = float(total[0]), float(total[1])
        self.peak = float(peak)
        self._tp = true_peak

    @property
    def duration_s(self) -> float:
        return self.n / self.sample_rate

    @property
    def true_peak_linear(self) -> float | None:
        """The whole recording's true peak (linear), None when it was not measured."""
        if self._tp is None:
            return None
        return self._tp.peak if self.n else 0.0

    def close(self) -> None:
        """Release the grid's and the 1 ms cells' temporary files now instead of at garbage collection."""
        for store in (self._tens, self._cells):
            if isinstance(store, audio.SampleStore):
                store.close()

    # --- positions and cumulative energy ------------------------------------------------------

    def ms_edges(self, ms) -> np.ndarray:
        return truepeak.grid_edges(ms, self.sample_rate)

    def _is_extra(self, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        j = np.searchsorted(self._extra, pos)
        jj = np.minimum(j, max(self._extra.size - 1, 0))
        hit = (
            (j < self._extra.size) & (self._extra[jj] == pos)
            if self._extra.size
            else np.zeros(pos.shape, bool)
        )
        return hit, jj

    def snap(self, pos) -> np.ndarray:
        """Sample positions moved onto what the pass measured: kept when exact (an ``edges``
        point, 0 or the end), else rounded to the millisecond (clamped to the end), as a time
        rounded to the millisecond would be (to 10 ms when the meter kept no 1 ms cells)."""
        p = np.clip(np.asarray(pos, dtype=np.int64), 0, self.n)
        exact = (p == 0) | (p == self.n) | self._is_extra(p)[0]
        if exact.all() or self.last_ms < 0:
            if not exact.all():
                raise ValueError("position not measured (the meter kept no grid)")
            return p
        m = self._ms_of(p)
        q = np.where(m > self.last_ms, self.n, self.ms_edges(np.minimum(m, self.last_ms)))
        return np.where(exact, p, q)

    def _ms_of(self, pos) -> np.ndarray:
        """The grid point (ms, a multiple of ``resolution_ms``) nearest each sample position."""
        r = self.resolution_ms
        return np.round(np.asarray(pos) / self.sample_rate * 1000.0 / r).astype(np.int64) * r

    def _cum_ms(self, m: np.ndarray, col: int) -> np.ndarray:
        """Cumulative energy (``col`` 0: K-weighted, 1: raw) at grid points ``m`` (ms)."""
        m = np.asarray(m, dtype=np.int64)
        ten, rest = np.divmod(m, GRID_MS)
        tens = self._tens.take(ten) if isinstance(self._tens, audio.SampleStore) else self._tens[ten]
        out = tens[:, col].astype(np.float64)
        part = rest > 0
        if part.any():
            if self._cells is None:
                raise ValueError("grid point between 10 ms points, but the meter kept no 1 ms cells")
            offs = np.arange(GRID_MS - 1)
            rows = (m[part] - rest[part])[:, None] + offs[None, :]
            mask = offs[None, :] < rest[part][:, None]
            vals = np.zeros(rows.shape)
            take = rows[mask]
            cells = (
                self._cells.take(take) if isinstance(self._cells, audio.SampleStore) else self._cells[take]
            )
            vals[mask] = cells[:, col]
            out[part] += vals.sum(axis=1)
        return out

    def _cum(self, pos, raw: bool = False) -> np.ndarray:
        """Cumulative energy at sample positions that were measured (see ``snap``)."""
        col = 1 if raw else 0
        p = np.asarray(pos, dtype=np.int64)
        out = np.zeros(p.shape)
        end = p >= self.n
        out[end] = self.total_raw if raw else self.total_k
        hit, j = self._is_extra(p)
        hit &= ~end & (p > 0)
        out[hit] = self._extra_cum[j[hit], col]
        rest = ~end & ~hit & (p > 0)
        if rest.any():
            m = self._ms_of(p[rest])
            if self.last_ms < 0 or (m > self.last_ms).any() or (self.ms_edges(m) != p[rest]).any():
                raise ValueError("position not measured: snap it first")
            out[rest] = self._cum_ms(m, col)
        return out

    def _mean(self, p0, p1, raw: bool = False) -> np.ndarray:
        """Mean power over sample spans ``[p0, p1)`` (measured positions), non-negative."""
        p0, p1 = np.asarray(p0, dtype=np.int64), np.asarray(p1, dtype=np.int64)
        total = self._cum(p1, raw) - self._cum(p0, raw)
        return np.maximum(total, 0.0) / np.maximum(p1 - p0, 1)

    def _mean_ms(self, m0, m1, raw: bool = False) -> np.ndarray:
        """Mean power between grid points (ms), each a multiple of 10 ms in every BS.1770 use."""
        col = 1 if raw else 0
        total = self._cum_ms(m1, col) - self._cum_ms(m0, col)
        return np.maximum(total, 0.0) / np.maximum(self.ms_edges(m1) - self.ms_edges(m0), 1)

    def _windows(self, length_ms: int, hop_ms: int, first_ms: int = 0, last_ms: int | None = None):
        """Start and end (ms) of every complete window from ``first_ms`` within ``last_ms``."""
        last = self.last_ms if last_ms is None else last_ms
        if last < 0 or first_ms + length_ms > last:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        starts = first_ms + np.arange((last - first_ms - length_ms) // hop_ms + 1, dtype=np.int64) * hop_ms
        return starts, starts + length_ms

    # --- BS.1770 measures -----------------------------------------------------------------------

    def integrated(self) -> float | None:
        """Gated integrated loudness in LUFS; None below 400 ms, -inf when silent."""
        s, e = self._windows(int(BLOCK_S * 1000), int(BLOCK_HOP_S * 1000))
        return _gated_integrated(self._mean_ms(s, e)) if s.size else None

    def loudness_range(self) -> float | None:
        """EBU Tech 3342 loudness range in LU; None below 3 s or when silent."""
        s, e = self._windows(int(SHORT_TERM_S * 1000), int(LRA_HOP_S * 1000))
        return _lra(self._mean_ms(s, e)) if s.size else None

    def trace(self, step: float | None = None) -> LoudnessTrace:
        """Momentary, short-term and RMS every ``step`` (the meter's by default; whole ms)."""
        step = self.step if step is None else float(step)
        sm = truepeak.step_ms(step) if step else None
        if sm is None or sm % self.resolution_ms:
            raise ValueError(f"step must be a positive whole number of {self.resolution_ms} ms")
        count = max(0, self.last_ms // sm) if self.last_ms >= 0 else 0
        out = {key: np.full(count, -np.inf) for key in ("m", "s", "r")}
        times = np.empty(count)
        # In pieces of 65536 steps (11 minutes at 10 ms), so the temporaries stay a few MB while
        # the results (5 × 8 bytes a step) are what grows with the recording.
        for k0 in range(0, count, 1 << 16):
            ends = np.arange(k0 + 1, min(count, k0 + (1 << 16)) + 1, dtype=np.int64) * sm
            times[k0 : k0 + ends.size] = self.ms_edges(ends) / self.sample_rate
            for key, win, raw in (("m", BLOCK_S, False), ("s", SHORT_TERM_S, False), ("r", BLOCK_S, True)):
                starts = ends - int(round(win * 1000))
                full = np.flatnonzero(starts >= 0)
                if full.size:
                    p = self._mean_ms(starts[full], ends[full], raw=raw)
                    out[key][k0 + full] = _to_db(p) if raw else _to_lufs(p)
        tp = None
        if self._tp is not None and self._tp.step_ms == sm:
            peaks = np.zeros(count)
            got = self._tp.interval_peaks[:count]
            peaks[: got.size] = got
            tp = truepeak.to_dbtp(peaks)
        return LoudnessTrace(
            times=times,
            momentary_lufs=out["m"],
            short_term_lufs=out["s"],
            rms_dbfs=out["r"],
            step=step,
            true_peak_dbtp=tp,
        )

    def speech_values(self, regions) -> tuple[float | None, float | None, float]:
        """(speech integrated LUFS, speech RMS dBFS, speech seconds) of the recording muted
        outside ``regions`` (seconds; see the module docstring); None when not measurable."""
        r0, r1 = _merge_regions(regions, self.n, self.sample_rate)
        r0, r1 = _merge_spans(self.snap(r0), self.snap(r1))
        count = int((r1 - r0).sum())
        if count == 0:
            return None, None, 0.0
        bs, be = self._windows(int(BLOCK_S * 1000), int(BLOCK_HOP_S * 1000))
        lufs = None
        if bs.size:
            lufs = _gated_integrated(self._masked_block_power(r0, r1, self.ms_edges(bs), self.ms_edges(be)))
        raw = self._cum(r1, raw=True) - self._cum(r0, raw=True)
        rms = float(_to_db(max(float(raw.sum()), 0.0) / count))
        return _finite_or_none(lufs), _finite_or_none(rms), count / self.sample_rate

    def _masked_block_power(self, r0, r1, bs, be) -> np.ndarray:
        """Block powers of the signal muted outside the disjoint sorted regions ``[r0, r1)``.

        ``M(t)``, the K-weighted energy of the muted signal before ``t``, is the energy of the
        regions wholly before ``t`` plus the part of the region ``t`` falls in; every point
        needed (block and region edges) was measured.
        """
        inside = self._cum(r1) - self._cum(r0)
        before = np.concatenate(([0.0], np.cumsum(inside)))

        def muted(t: np.ndarray) -> np.ndarray:
            k = np.searchsorted(r0, t, side="right") - 1
            kk = np.maximum(k, 0)
            cut = np.maximum(np.minimum(t, r1[kk]), r0[kk])
            part = self._cum(cut) - self._cum(r0[kk])
            return np.where(k >= 0, before[kk] + np.maximum(part, 0.0), 0.0)

        return np.maximum(muted(be) - muted(bs), 0.0) / np.maximum(be - bs, 1)

    def loudness(self, speech=None, trace: bool = True, step: float | None = None) -> Loudness:
        """The ``Loudness`` of the recording (see ``measure``); ``speech``: regions in seconds."""
        step = self.step if step is None else step
        if step is None:
            step = DEFAULT_STEP_S
        integrated = self.integrated()
        lra = self.loudness_range()
        note = None
        if integrated is None:
            note = TOO_SHORT
        elif math.isinf(integrated):
            integrated, lra, note = None, None, SILENT
        elif lra is None:
            note = LRA_TOO_SHORT
        speech_lufs, speech_rms, speech_s = self.speech_values(speech) if speech is not None else (None,) * 3
        tr = self.trace(step)
        tp = self.true_peak_linear
        return Loudness(
            integrated_lufs=integrated,
            loudness_range_lu=lra,
            rms_dbfs=float(_to_db(self.total_raw / self.n)) if self.n else -math.inf,
            sample_peak_dbfs=float(_to_db(self.peak**2)) if self.n else -math.inf,
            duration_s=self.duration_s,
            note=note,
            trace=tr if trace else None,
            speech_integrated_lufs=speech_lufs,
            speech_rms_dbfs=speech_rms,
            speech_duration_s=speech_s,
            true_peak_dbtp=None if tp is None else truepeak.to_dbtp(tp),
            max_momentary_lufs=_max_finite(tr.momentary_lufs),
            max_short_term_lufs=_max_finite(tr.short_term_lufs),
        )

    # --- spans ----------------------------------------------------------------------------------

    def _span_positions(self, starts_s, ends_s) -> tuple[np.ndarray, np.ndarray]:
        i0, i1 = _span_samples(starts_s, ends_s, self.n, self.sample_rate)
        i0, i1 = self.snap(i0), self.snap(i1)
        return i0, np.maximum(i0, i1)

    def span_rms(self, starts_s, ends_s) -> np.ndarray:
        """RMS dBFS of many spans (seconds), NaN for an empty span or digital silence."""
        i0, i1 = self._span_positions(starts_s, ends_s)
        out = np.full(i0.size, np.nan)
        if i0.size and self.n:
            db = _to_db(self._mean(i0, i1, raw=True))
            good = (i1 > i0) & np.isfinite(db)
            out[good] = db[good]
        return out

    def span_loudness(self, start_s: float, end_s: float) -> tuple[float, float | None]:
        """(RMS dBFS, integrated LUFS) of a span, as ``span_loudness`` of the samples would give:
        400 ms blocks every 100 ms from the span's start. The K-weighting is the recording's own
        (not restarted at the span), a difference below 0.002 LU on speech."""
        i0, i1 = self._span_positions([start_s], [end_s])
        a, b = int(i0[0]), int(i1[0])
        if b <= a:
            return -math.inf, None
        rms = float(_to_db(self._mean(i0, i1, raw=True)[0]))
        lufs = None
        if self.last_ms >= 0:  # blocks on the grid (an exact edge off it is rounded to it)
            m0 = min(int(self._ms_of(a)), self.last_ms)
            m1 = self.last_ms if b == self.n else min(int(self._ms_of(b)), self.last_ms)
            s, e = self._windows(int(BLOCK_S * 1000), int(BLOCK_HOP_S * 1000), m0, m1)
            if s.size:
                lufs = _gated_integrated(self._mean_ms(s, e))
        if lufs is not None and math.isinf(lufs):
            lufs = None
        return rms, lufs

    def block_rms(self, block_ms: int) -> np.ndarray:
        """RMS dBFS of consecutive ``block_ms`` blocks from the start (complete blocks only),
        NaN for digital silence; e.g. the noise floor's 50 ms blocks."""
        s, e = self._windows(int(block_ms), int(block_ms))
        if not s.size:
            return np.zeros(0)
        db = _to_db(self._mean_ms(s, e, raw=True))
        return np.where(np.isfinite(db), db, np.nan)


def _levels_of(samples: np.ndarray, sr: int, **meter) -> Levels:
    """An in-memory array through the same streaming ``Meter`` as a file, in the same blocks."""
    x = _as_2d(samples)
    m = Meter(sr, x.shape[1], **meter)
    for c0 in range(0, x.shape[0], _CHUNK):
        m.feed(x[c0 : c0 + _CHUNK])
    return m.finish()


def integrated_loudness(samples: np.ndarray, sr: int) -> float | None:
    """Gated integrated loudness in LUFS; None below 400 ms, -inf when silent."""
    return _levels_of(samples, sr, step=None, true_peak=False).integrated()


def loudness_range(samples: np.ndarray, sr: int) -> float | None:
    """EBU Tech 3342 loudness range in LU; None below 3 s or when silent."""
    return _levels_of(samples, sr, step=None, true_peak=False).loudness_range()


def loudness_trace(samples: np.ndarray, sr: int, step: float = DEFAULT_STEP_S) -> LoudnessTrace:
    """Momentary, short-term and RMS traces every ``step`` seconds (window end times; a whole
    number of milliseconds)."""
    if step <= 0:
        raise ValueError("step must be positive")
    return _levels_of(samples, sr, step=step, true_peak=False).trace(step)


def rms_dbfs(samples: np.ndarray) -> float:
    """Unweighted RMS over all samples and channels in dBFS (-inf for silence or no samples)."""
    x = _as_2d(samples)
    if x.size == 0:
        return -math.inf
    total = 0.0
    for c0 in range(0, x.shape[0], _CHUNK):
        block = x[c0 : c0 + _CHUNK].astype(np.float64).ravel()
        total += float(np.dot(block, block))
    return float(_to_db(total / x.size))


def sample_peak_dbfs(samples: np.ndarray) -> float:
    x = np.asarray(samples)
    if x.size == 0:
        return -math.inf
    return float(_to_db(max(float(x.max()), -float(x.min())) ** 2))


def _max_finite(values: np.ndarray) -> float | None:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.max()) if v.size else None


def measure(
    clip: AudioClip, step: float = DEFAULT_STEP_S, trace: bool = True, speech=None, true_peak: bool = True
) -> Loudness:
    """Everything for one clip from a single K-weighting pass.

    ``speech``: detected speech regions ``[(start_s, end_s), ...]``. When given (even empty)
    the ``speech_*`` fields are filled from the same pass (see the module docstring for the
    block rule): ``speech_integrated_lufs`` and ``speech_rms_dbfs`` are None when there is no
    speech, no qualifying block or only silence; ``speech_duration_s`` is the merged regions'
    length within the clip (0.0 for none). When ``speech`` is None those fields stay None.

    ``true_peak``: the BS.1770-4 true peak (``truepeak``) in the same pass, for the clip and,
    with ``trace``, per trace step (``LoudnessTrace.true_peak_dbtp``, so any span's true peak
    is a maximum over steps: ``span_true_peaks``). ``max_momentary_lufs`` and
    ``max_short_term_lufs`` are the largest trace values (windows sliding every ``step``, or
    every 10 ms when ``trace`` is False), None when no window is full or all are silent.
    """
    if trace and step <= 0:
        raise ValueError("step must be positive")
    grid = step if trace else DEFAULT_STEP_S
    edges = None
    if speech is not None:  # measured to the sample: their edges are known before the pass
        edges = np.concatenate(_merge_regions(speech, clip.samples.shape[0], clip.sample_rate))
    tp_mode = ("trace" if trace else True) if true_peak else False
    levels = _levels_of(clip.samples, clip.sample_rate, step=grid, edges=edges, true_peak=tp_mode)
    return levels.loudness(speech=speech, trace=trace, step=grid)


def span_loudness(source: AudioClip | Levels, start_s: float, end_s: float) -> tuple[float, float | None]:
    """(RMS dBFS, integrated LUFS) of a time span; LUFS is None below 400 ms or when silent.

    ``source``: a clip (its samples, to the sample) or a streaming pass's ``Levels`` (to the
    millisecond; see ``Levels.span_loudness``).
    """
    if isinstance(source, Levels):
        return source.span_loudness(start_s, end_s)
    clip = source
    sr = clip.sample_rate
    i0 = max(0, int(round(start_s * sr)))
    i1 = min(clip.samples.shape[0], int(round(end_s * sr)))
    span = clip.samples[i0 : max(i0, i1)]
    lufs = integrated_loudness(span, sr) if span.shape[0] else None
    if lufs is not None and math.isinf(lufs):
        lufs = None
    return rms_dbfs(span), lufs


def _max_momentary(trace: LoudnessTrace | None, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Per span, the largest momentary value whose window centre lies in [start, end] (NaN if none)."""
    out = np.full(starts.size, np.nan)
    if trace is None or starts.size == 0 or np.asarray(trace.times).size == 0:
        return out
    m = np.asarray(trace.momentary_lufs, dtype=np.float64)
    centres = np.asarray(trace.times, dtype=np.float64) - BLOCK_S / 2
    eps = 1e-9  # times are sample counts / rate: keep a centre exactly on a word edge
    lo = np.searchsorted(centres, starts - eps, side="left")
    hi = np.searchsorted(centres, np.maximum(ends, starts) + eps, side="right")
    inside = np.flatnonzero(hi > lo)
    if inside.size:
        # One reduceat over [lo, hi) pairs, sorted by lo so the gaps between pairs add up to at
        # most one pass over the trace (overlapping pairs cost one element each).
        order = inside[np.argsort(lo[inside], kind="stable")]
        pairs = np.stack([lo[order], hi[order]], axis=1).ravel()
        out[order] = np.maximum.reduceat(np.append(m, -np.inf), pairs)[::2]
    between = np.flatnonzero(hi <= lo)  # shorter than a trace step: the nearest window
    if between.size:
        mid = (starts[between] + np.maximum(ends[between], starts[between])) / 2
        j = np.searchsorted(centres, mid)
        left, right = np.clip(j - 1, 0, centres.size - 1), np.clip(j, 0, centres.size - 1)
        out[between] = m[np.where(np.abs(centres[left] - mid) <= np.abs(centres[right] - mid), left, right)]
    out[~np.isfinite(out)] = np.nan
    return out


def span_levels(
    source: AudioClip | Levels, trace: LoudnessTrace | None, starts, ends
) -> tuple[np.ndarray, np.ndarray]:
    """RMS dBFS and maximum momentary LUFS of many spans at once (e.g. every word of a file).

    ``starts``/``ends`` are seconds (1-D, same length). Returns two float arrays:

    - RMS: unweighted mean square over the span's samples (all channels), the samples
      ``span_loudness`` would slice; one raw-power pass over the clip for all spans together
      (no K-weighting), so ten thousand words cost about what one does.
    - Max momentary: the largest momentary value of ``trace`` (``measure``'s, window end
      times) over windows whose centre, end − 0.2 s, lies in [start, end]; a span falling
      between two trace steps takes the window whose centre is nearest its middle. Words in
      the first 0.2 s have no full window and read NaN.

    NaN where there is no value: an empty span, digital silence, no trace or no full window.
    ``source``: a clip (RMS to the sample) or a streaming pass's ``Levels`` (RMS to the
    millisecond: exact for times given to the millisecond, as results are written).
    """
    s = np.atleast_1d(np.asarray(starts, dtype=np.float64))
    e = np.atleast_1d(np.asarray(ends, dtype=np.float64))
    if isinstance(source, Levels):
        return source.span_rms(s, e), _max_momentary(trace, s, e)
    clip = source
    sr = clip.sample_rate
    n = clip.samples.shape[0]
    i0, i1 = _span_samples(s, e, n, sr)
    rms = np.full(i0.size, np.nan)
    if i0.size and n:
        raw = _levels_of(
            clip.samples,
            sr,
            step=None,
            edges=np.concatenate([i0, i1]),
            true_peak=False,
            weighted=False,
            grid=False,
        )
        db = _to_db(raw._mean(i0, i1, raw=True))
        good = (i1 > i0) & np.isfinite(db)
        rms[good] = db[good]
    return rms, _max_momentary(trace, s, e)


def word_levels(
    clip: AudioClip | Levels, trace: LoudnessTrace | None, start_s: float, end_s: float
) -> tuple[float | None, float | None]:
    """(RMS dBFS, max momentary LUFS) of one span, None where there is no value; see ``span_levels``."""
    rms, mom = span_levels(clip, trace, [start_s], [end_s])
    return (None if np.isnan(rms[0]) else float(rms[0]), None if np.isnan(mom[0]) else float(mom[0]))


def fill_word_levels(clip: AudioClip | Levels, trace: LoudnessTrace | None, words: Iterable[Word]) -> None:
    """Set ``rms_dbfs`` and ``max_momentary_lufs`` on every word, in one vectorised pass."""
    words = list(words)
    if not words:
        return
    rms, mom = span_levels(clip, trace, [w.start for w in words], [w.end for w in words])
    for w, r, m in zip(words, rms.tolist(), mom.tolist(), strict=True):
        w.rms_dbfs = None if math.isnan(r) else r
        w.max_momentary_lufs = None if math.isnan(m) else m


def span_true_peaks(trace: LoudnessTrace | None, starts, ends) -> np.ndarray:
    """True peak (dBTP) of many spans from ``measure``'s per-step trace, NaN where unknown.

    A span's value is the maximum over the trace steps ``(t − step, t]`` it overlaps, so it
    may include up to one step (10 ms) of the audio around it — never less than the span's
    own peak. NaN without a true-peak trace, for an empty span past the trace, or in silence.
    """
    s = np.atleast_1d(np.asarray(starts, dtype=np.float64))
    e = np.maximum(np.atleast_1d(np.asarray(ends, dtype=np.float64)), s)
    out = np.full(s.size, np.nan)
    tp = None if trace is None else trace.true_peak_dbtp
    if tp is None or s.size == 0 or np.asarray(tp).size == 0:
        return out
    tp = np.asarray(tp, dtype=np.float64)
    times = np.asarray(trace.times, dtype=np.float64)
    eps = 1e-9
    lo = np.searchsorted(times, s + eps, side="left")  # first step ending after the start
    hi = np.searchsorted(times - trace.step, e - eps, side="left")  # steps starting before the end
    hi = np.maximum(hi, np.minimum(lo + 1, times.size))  # an instant still has its step
    inside = np.flatnonzero(hi > lo)
    if inside.size:
        order = inside[np.argsort(lo[inside], kind="stable")]
        pairs = np.stack([lo[order], hi[order]], axis=1).ravel()
        out[order] = np.maximum.reduceat(np.append(tp, -np.inf), pairs)[::2]
    out[~np.isfinite(out)] = np.nan
    return out


def fill_true_peaks(trace: LoudnessTrace | None, segments: Iterable[Segment]) -> None:
    """Set ``true_peak_dbtp`` on every segment (None where unknown), in one vectorised pass."""
    segments = list(segments)
    if not segments:
        return
    tp = span_true_peaks(trace, [x.start for x in segments], [x.end for x in segments])
    for seg, v in zip(segments, tp.tolist(), strict=True):
        seg.true_peak_dbtp = None if math.isnan(v) else round(v, 2)
