"""core.iir against scipy, which it replaces on the analysis path (the test may import scipy).

The filter must equal ``lfilter``/``sosfilt`` to float64 rounding relative to the signal
(max |diff| <= 1e-10 · max |y|) on real audio and adversarial input at every rate the meters
see, streamed in any block sizes; the running maximum must equal ``maximum_filter1d`` exactly.
"""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from scipy.ndimage import maximum_filter1d
from scipy.signal import lfilter, sosfilt

from speechint_desktop.core import iir
from speechint_desktop.core.asl import TIME_CONSTANT_S
from speechint_desktop.core.audio import load_audio
from speechint_desktop.core.loudness import k_weighting_filter, k_weighting_sos

RATES = [8000, 44100, 48000, 192000]
TOL = 1e-10  # of max |y|


def adversarial(sr: int, seconds: float = 3.0) -> dict[str, np.ndarray]:
    """(2, n) signals that stress a recursive filter: DC, full-scale squares, a tone near
    Nyquist, silence then clicks, alternating full scale, noise."""
    n = int(sr * seconds)
    t = np.arange(n) / sr
    sq50 = np.sign(np.sin(2 * np.pi * 50 * t))
    clicks = np.zeros(n)
    clicks[n // 2 :: sr // 3] = 1.0
    return {
        "dc": np.ones((2, n)),
        "square 50 Hz": np.stack([sq50, -sq50]),
        "square 1 kHz": np.stack([np.sign(np.sin(2 * np.pi * 1000 * t))] * 2),
        "sine 20 kHz": np.stack([np.sin(2 * np.pi * min(20000.0, 0.45 * sr) * t)] * 2),
        "silence then clicks": np.stack([clicks, -clicks]),
        "nyquist": np.stack([(-1.0) ** np.arange(n)] * 2),
        "noise": np.random.default_rng(sr).standard_normal((2, n)),
    }


def rel_err(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got - want).max() / np.abs(want).max())


def stream(filt: iir.Filter, x: np.ndarray, seed: int, max_block: int = 70_000) -> np.ndarray:
    """``x`` fed in random block sizes (1 sample up to ``max_block``), the state carried."""
    rng = np.random.default_rng(seed)
    z, parts, i = np.zeros((*x.shape[:-1], filt.order)), [], 0
    while i < x.shape[-1]:
        k = int(rng.integers(1, max_block)) if rng.random() > 0.1 else int(rng.integers(1, 40))
        y, z = filt(x[..., i : i + k], z)
        parts.append(y)
        i += k
    return np.concatenate(parts, axis=-1)


@pytest.fixture(params=["extended", "float64"])
def precision(request, monkeypatch):
    """The filter's matrices in extended precision (x86 Linux) and in plain float64 (where
    numpy's longdouble is float64: Windows, macOS on ARM): both must meet the tolerance."""
    if request.param == "float64":
        monkeypatch.setattr(iir, "_EXT", np.float64)
    return request.param


@pytest.mark.parametrize("sr", RATES)
def test_k_weighting_equals_sosfilt_on_adversarial_input_whole_and_streamed(sr, precision):
    sos = k_weighting_sos(sr)
    filt = k_weighting_filter(sr)
    for name, x in adversarial(sr).items():
        want, want_z = sosfilt(sos, x, axis=-1, zi=np.zeros((2, 2, 2)))
        got, got_z = filt(x, np.zeros((2, 4)))
        assert rel_err(got, want) <= TOL, (name, rel_err(got, want))
        # the end state is sosfilt's, section by section
        np.testing.assert_allclose(got_z, np.concatenate([want_z[0], want_z[1]], axis=-1), rtol=0, atol=1e-9)
        assert rel_err(stream(filt, x, seed=sr), want) <= TOL, name


def test_k_weighting_on_real_audio(jfk_path):
    clip = load_audio(jfk_path)
    x = np.ascontiguousarray(clip.samples.T, dtype=np.float64)
    want = sosfilt(k_weighting_sos(clip.sample_rate), x, axis=-1)
    filt = k_weighting_filter(clip.sample_rate)
    assert rel_err(filt(x, np.zeros((x.shape[0], 4)))[0], want) <= TOL
    assert rel_err(stream(filt, x, seed=1, max_block=5000), want) <= TOL


@pytest.mark.parametrize("sr", RATES)
def test_one_section_is_lfilter_with_its_state(sr, precision):
    """A single section, any order 1..2 here, with lfilter's zi: a stream split anywhere,
    started from any state, continues as lfilter's does."""
    g = math.exp(-1.0 / (sr * TIME_CONSTANT_S))
    rng = np.random.default_rng(3)
    sections = [
        ([1.0 - g], [1.0, -g]),
        tuple(np.split(k_weighting_sos(sr)[1], 2)),
        tuple(np.split(k_weighting_sos(sr)[0], 2)),
    ]
    x = np.abs(rng.standard_normal(sr * 2))
    x[sr // 2 : sr] = 0.0
    for b, a in sections:
        filt = iir.Filter([(b, a)])
        zi = rng.standard_normal(filt.order)
        want, want_z = lfilter(b, a, x, zi=zi)
        got, got_z = filt(x, zi)
        assert rel_err(got, want) <= TOL
        np.testing.assert_allclose(got_z, want_z, rtol=0, atol=1e-10 * np.abs(want).max())
        z, cut = zi, [0, 1, 2, 33, 1000, 1031, 50_000, x.size]  # cuts inside and across sub-blocks
        parts = []
        for i0, i1 in zip(cut[:-1], cut[1:], strict=True):
            y, z = filt(x[i0:i1], z)
            parts.append(y)
        assert rel_err(np.concatenate(parts), want) <= TOL
        np.testing.assert_allclose(z, want_z, rtol=0, atol=1e-10 * np.abs(want).max())


def test_the_asl_envelope_is_two_smoothers_in_one_pass():
    sr = 16000
    g = math.exp(-1.0 / (sr * TIME_CONSTANT_S))
    b, a = [1.0 - g], [1.0, -g]
    rng = np.random.default_rng(9)
    x = np.abs(rng.standard_normal(sr * 4) * np.repeat(rng.uniform(0, 1, 40), sr // 10))  # bursts
    want = lfilter(b, a, lfilter(b, a, x))
    got = stream(iir.Filter([(b, a), (b, a)]), x, seed=5, max_block=20_000)
    assert rel_err(got, want) <= TOL


def test_shapes_and_edges():
    filt = k_weighting_filter(48000)
    x = np.random.default_rng(0).standard_normal((3, 2, 1000))  # any leading axes
    y, z = filt(x, np.zeros((3, 2, 4)))
    assert y.shape == x.shape and z.shape == (3, 2, 4)
    want = sosfilt(k_weighting_sos(48000), x, axis=-1)
    assert rel_err(y, want) <= TOL
    y0, z0 = filt(np.zeros((2, 0)), np.ones((2, 4)))  # nothing in, state unchanged
    assert y0.shape == (2, 0) and (z0 == 1.0).all()
    with pytest.raises(ValueError, match="zi must have shape"):
        filt(x, np.zeros(4))
    with pytest.raises(ValueError, match="a\\[0\\] != 0"):
        iir.Filter([([1.0], [0.0, 1.0])])
    gain, _ = iir.Filter([([0.5], [2.0])])(np.arange(4.0), np.zeros(0))  # order 0: a gain
    np.testing.assert_array_equal(gain, np.arange(4.0) / 4)


@pytest.mark.parametrize("hang", [0, 1, 2, 3, 7, 100, 3200, 9600])
def test_running_max_is_maximum_filter1d(hang, jfk_path):
    rng = np.random.default_rng(hang)
    real = load_audio(jfk_path).samples[:, 0].astype(np.float64)
    size = hang + 1
    for x in (rng.standard_normal(50_000), np.abs(real), real[:5], real[:1], rng.integers(0, 3, 2000) * 1.0):
        want = maximum_filter1d(x, size=size, mode="nearest", origin=hang - size // 2)
        np.testing.assert_array_equal(iir.running_max(x, hang), want)
    assert iir.running_max(np.zeros(0), hang).size == 0


def test_the_meters_import_no_scipy():
    code = (
        "import sys, speechint_desktop.core.loudness, speechint_desktop.core.asl, "
        "speechint_desktop.core.recording; print(sorted(m for m in sys.modules if m.startswith('scipy')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
