"""How fast is core.iir against scipy? Prints samples/s and ratios; asserts nothing.

    .venv/bin/python benchmark/iir_speed.py [--seconds 600] [--rate 48000] [--block 262144]

Streams stereo noise block by block (state carried, as the loudness meter does) through
- the K-weighting: ``iir.Filter`` on its two biquads vs ``scipy.signal.lfilter`` on the combined
  4th-order polynomial (what the meter used) and ``sosfilt`` on the biquads;
- the P.56 envelope (two first-order smoothers, one channel): one ``iir.Filter`` vs two ``lfilter``;
- the hangover maximum: ``iir.running_max`` vs ``scipy.ndimage.maximum_filter1d``;
and extrapolates to an hour of 48 kHz stereo (345.6 M samples). Each is timed best of three.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmark.common import best  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--rate", type=int, default=48000)
    ap.add_argument("--block", type=int, default=1 << 18)
    args = ap.parse_args()
    from scipy.ndimage import maximum_filter1d
    from scipy.signal import lfilter, sos2tf, sosfilt

    from speechint_desktop.core import iir
    from speechint_desktop.core.loudness import k_weighting_filter, k_weighting_sos

    sr, blk = args.rate, args.block
    x = np.random.default_rng(0).standard_normal((2, int(args.seconds * sr)))
    sos = k_weighting_sos(sr)
    b, a = sos2tf(sos)
    mine = k_weighting_filter(sr)

    def stream(step, z):
        for i in range(0, x.shape[1], blk):
            _, z = step(x[:, i : i + blk], z)

    hour = 3600 * 48000 * 2
    rows = {
        "scipy lfilter (4th order)": best(
            lambda: stream(lambda v, z: lfilter(b, a, v, axis=-1, zi=z), np.zeros((2, 4)))
        ),
        "scipy sosfilt (2 biquads)": best(
            lambda: stream(lambda v, z: sosfilt(sos, v, axis=-1, zi=z), np.zeros((2, 2, 2)))
        ),
        "iir.Filter (2 biquads)": best(lambda: stream(mine, np.zeros((2, 4)))),
    }
    ref = rows["scipy lfilter (4th order)"]
    print(f"K-weighting, {x.shape[1] / sr:g} s stereo at {sr} Hz in blocks of {blk}:")
    for name, t in rows.items():
        print(
            f"  {name:28s} {x.size / t / 1e6:7.1f} M samples/s  {t / ref:5.2f}x lfilter  "
            f"(an hour of 48 kHz stereo: {hour / (x.size / t):.1f} s)"
        )

    g = math.exp(-1.0 / (sr * 0.03))
    m = np.abs(x[0])
    smoother = ([1 - g], [1, -g])
    envelope = iir.Filter([smoother, smoother])
    t_l = best(lambda: lfilter(*smoother, lfilter(*smoother, m, zi=[0.0])[0], zi=[0.0]))
    t_m = best(lambda: envelope(m, np.zeros(2)))
    print(
        f"P.56 envelope (two 1st-order smoothers, mono): 2x lfilter {m.size / t_l / 1e6:.1f} M samples/s, "
        f"iir.Filter {m.size / t_m / 1e6:.1f} M samples/s ({t_m / t_l:.2f}x)"
    )
    hang = int(math.ceil(0.2 * sr))
    size = hang + 1
    t_l = best(lambda: maximum_filter1d(m, size=size, mode="nearest", origin=hang - size // 2))
    t_m = best(lambda: iir.running_max(m, hang))
    print(
        f"hangover max ({hang} samples): maximum_filter1d {m.size / t_l / 1e6:.1f} M samples/s, "
        f"running_max {m.size / t_m / 1e6:.1f} M samples/s ({t_m / t_l:.2f}x)"
    )


if __name__ == "__main__":
    main()
