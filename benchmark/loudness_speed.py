"""How fast is the loudness meter? Prints seconds and ratios; asserts nothing.

    .venv/bin/python benchmark/loudness_speed.py [--minutes 60] [--rate 16000] [--channels 1] [--decode]

Compares, on the same synthetic speech-like signal (noise with a syllable-rate envelope):
- ``loudness_trace`` (momentary + short-term + RMS every 10 ms) for the whole recording;
- ``measure`` (integrated, LRA, peak, RMS and the traces) from one filter pass;
- pyloudnorm's integrated loudness (DeMan filter) on the same audio;
- pyloudnorm called once per 400 ms window every 10 ms, the naive way to get a momentary trace
  (timed on a sample of windows and extrapolated: the full run would take far too long).
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def speechlike(seconds: float, sr: int, channels: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    envelope = 0.5 * (1 + np.sin(2 * np.pi * 4.0 * t)) * (0.5 + 0.5 * np.sin(2 * np.pi * 0.05 * t) ** 2)
    x = np.empty((n, channels), np.float32)
    for c in range(channels):
        x[:, c] = 0.1 * envelope * rng.standard_normal(n)
    return x


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--rate", type=int, default=16000)
    ap.add_argument("--channels", type=int, default=1)
    ap.add_argument("--decode", action="store_true", help="also time decoding (FLAC and AAC) at two lengths")
    ap.add_argument("--window-samples", type=int, default=300, help="pyloudnorm windows to time")
    args = ap.parse_args()

    import pyloudnorm

    from speechint_desktop.core import loudness
    from speechint_desktop.core.audio import as_clip

    seconds = args.minutes * 60
    x = speechlike(seconds, args.rate, args.channels)
    clip = as_clip(x, args.rate)
    print(
        f"signal: {args.minutes:g} min, {args.rate} Hz, {args.channels} ch ({x.nbytes / 1e6:.0f} MB float32)"
    )

    t_trace, tr = timed(loudness.loudness_trace, x, args.rate, 0.01)
    print(f"loudness_trace (M+S+RMS every 10 ms, {tr.times.size} points): {t_trace:.2f} s")
    t_measure, res = timed(loudness.measure, clip)
    print(
        f"measure (integrated {res.integrated_lufs:.2f} LUFS, LRA {res.loudness_range_lu:.2f} LU, traces): "
        f"{t_measure:.2f} s"
    )
    t_int, ours = timed(loudness.integrated_loudness, x, args.rate)
    print(f"integrated_loudness: {t_int:.2f} s -> {ours:.3f} LUFS")

    meter = pyloudnorm.Meter(args.rate, filter_class="DeMan")
    t_pyln, theirs = timed(meter.integrated_loudness, x.astype(np.float64))
    print(
        f"pyloudnorm integrated (DeMan): {t_pyln:.2f} s -> {theirs:.3f} LUFS (diff {ours - theirs:+.4f} LU)"
    )

    win = int(0.4 * args.rate)
    hop = int(0.01 * args.rate)
    n_windows = (x.shape[0] - win) // hop + 1
    picks = np.linspace(0, n_windows - 1, min(args.window_samples, n_windows)).astype(int)
    t0 = time.perf_counter()
    for j in picks:
        seg = x[j * hop : j * hop + win].astype(np.float64)
        meter.integrated_loudness(seg)  # gated, filter restarted per window: also not a momentary value
    per_window = (time.perf_counter() - t0) / picks.size
    t_naive = per_window * n_windows
    print(
        f"pyloudnorm once per 400 ms window: {per_window * 1e3:.2f} ms/window x {n_windows} windows "
        f"= ~{t_naive:.0f} s (extrapolated)"
    )
    print()
    print(f"ratio pyloudnorm integrated / our integrated:     {t_pyln / t_int:6.1f}x")
    print(f"ratio pyloudnorm integrated / our full trace:     {t_pyln / t_trace:6.1f}x")
    print(f"ratio pyloudnorm per-window trace / our trace:    {t_naive / t_trace:6.0f}x")
    print(f"our trace speed: {seconds / t_trace:.0f}x real time")
    if args.decode:
        decode_scaling(x, args.rate)


def decode_scaling(x: np.ndarray, sr: int) -> None:
    """Decoding time per audio minute at two lengths: equal rates mean linear (not quadratic)."""
    import tempfile
    from pathlib import Path

    import soundfile as sf

    from speechint_desktop.core.audio import load_audio

    print()
    with tempfile.TemporaryDirectory() as tmp:
        for minutes in (x.shape[0] / sr / 60 / 6, x.shape[0] / sr / 60):
            path = Path(tmp) / f"{minutes:g}min.flac"
            sf.write(path, x[: int(minutes * 60 * sr)], sr)
            t, clip = timed(load_audio, path)
            print(f"decode FLAC {minutes:5.1f} min: {t:5.2f} s ({t / minutes * 1e3:.0f} ms per audio minute)")
            path.unlink()
        for minutes in (2.0, 8.0):  # AAC via PyAV (encoding is the slow part; not timed)
            path = Path(tmp) / f"{minutes:g}min.m4a"
            _write_aac(path, x[: int(minutes * 60 * sr)], sr)
            t, clip = timed(load_audio, path)
            print(f"decode AAC  {minutes:5.1f} min: {t:5.2f} s ({t / minutes * 1e3:.0f} ms per audio minute)")


def _write_aac(path, x: np.ndarray, sr: int) -> None:
    import av

    layout = "mono" if x.shape[1] == 1 else "stereo"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=sr, layout=layout)
        for i in range(0, x.shape[0], 1024):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(x[i : i + 1024, :2].T), format="fltp", layout=layout
            )
            frame.sample_rate, frame.pts = sr, i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


if __name__ == "__main__":
    main()
