"""Streaming IIR filtering and a running maximum in numpy alone (no scipy on the analysis path).

Why: the meters needed only ``scipy.signal.lfilter`` and ``scipy.ndimage.maximum_filter1d``, yet
importing them costs ~0.7 s (scipy.signal pulls in scipy.stats, interpolate, …): most of the
CLI's start-up (issue #9). These two are small enough to own.

``Filter`` is ``lfilter`` (one section) or ``sosfilt`` (a cascade) along the last axis, with the
same direct form II transposed state, so a stream split anywhere continues where it left off.
A per-sample Python loop would be far too slow, so it runs the state-space recursion
``s[n+1] = A s[n] + B x[n]``, ``y[n] = C s[n] + D x[n]`` exactly, as matrix products: the signal
is cut into sub-blocks of ``M`` samples; within one, the response to its input is a product with
the ``M × M`` Toeplitz matrix of the first ``M`` impulse-response samples, the response to its
start state a product with ``C A^0 … C A^(M-1)``. The start states follow ``S[k+1] = A^M S[k] +
U[k]``, the same recursion on ``M`` times fewer points, solved the same way on groups of ``G``,
and so on until a few steps remain for a loop. No impulse response is truncated (the states
carry every tail); each biquad's state is kept in a basis where the powers of its matrix do not
grow, and the matrices are computed in extended precision where the platform has it, so the
output agrees with ``lfilter``/``sosfilt`` to float64 rounding (the K-weighting within ~2e-12 of
the signal at 8 to 192 kHz, 3e-11 without extended precision; tests/core/test_iir.py). Its last bits depend on where a stream is cut (``lfilter``'s
strictly sequential sums do not). Speed: about ``lfilter``'s (benchmark/iir_speed.py).

``running_max(x, hang)`` is ``maximum_filter1d`` over the current and previous ``hang`` samples
(van Herk / Gil-Werman: prefix and suffix maxima in blocks of the window, O(n) for any window).
"""

from __future__ import annotations

import numpy as np

_EXT = np.longdouble  # the matrices are computed in extended precision (80-bit on x86) …
_CHUNK = 1 << 16  # samples (all channels) per pass, in buffers kept for the next
_MAX_COND = 1e4  # the largest condition of a section's change of basis (see _balance)


def _f64(m: np.ndarray) -> np.ndarray:
    """… and rounded once: their own rounding is then the only error they carry. Entries below
    1e-100 (high powers of a decaying matrix: nothing next to entries near 1) become 0, so that
    no product makes subnormal numbers, which slow BLAS 100-fold."""
    m = np.ascontiguousarray(m, dtype=np.float64)
    m[np.abs(m) < 1e-100] = 0.0
    return m


def _direct_form(b, a) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(A, B, C, D) of ``lfilter(b, a)`` (extended precision): its direct form II transposed
    state is the state."""
    b = np.atleast_1d(np.asarray(b, dtype=np.float64)).astype(_EXT)
    a = np.atleast_1d(np.asarray(a, dtype=np.float64)).astype(_EXT)
    if a.ndim != 1 or b.ndim != 1 or a.size == 0 or b.size == 0 or a[0] == 0.0:
        raise ValueError("b and a must be non-empty 1-D coefficient arrays with a[0] != 0")
    k = max(a.size, b.size)
    b = np.pad(b, (0, k - b.size)) / a[0]
    a = np.pad(a, (0, k - a.size)) / a[0]
    n = k - 1
    # y = z0 + b0 x;  z_i <- z_(i+1) - a_(i+1) y + b_(i+1) x
    A, C = np.zeros((n, n), _EXT), np.zeros(n, _EXT)
    if n:
        A[:, 0] = -a[1:]
        A[np.arange(n - 1), np.arange(1, n)] = 1.0
        C[0] = 1.0
    return A, b[1:] - a[1:] * b[0], C, b[0]


def _balance(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(T, T⁻¹)`` for a 2 × 2 state matrix: a basis in which ``T⁻¹ a T`` is (nearly) normal, so
    its powers never grow. A direct form's matrix with two poles near z = 1 is far from normal:
    its powers grow ~k·λ^k (to ~300 at 192 kHz) and every product with them loses as many digits.
    ``a = mI + N`` (N traceless): a rotation makes N's diagonal zero, a scaling ``diag(1, t)``
    makes its two off-diagonal entries equal in size (``T⁻¹ a T`` is then normal); ``t`` is kept
    within ``1/_MAX_COND … _MAX_COND``: near a double pole full normality would need any size."""
    n = a - (a[0, 0] + a[1, 1]) / 2 * np.eye(2, dtype=a.dtype)
    theta = np.arctan2(-2 * n[0, 0], n[0, 1] + n[1, 0]) / 2
    c, s = np.cos(theta), np.sin(theta)
    rot = np.array([[c, -s], [s, c]], dtype=a.dtype)
    off = rot.T @ n @ rot
    beta, gamma = abs(off[0, 1]), abs(off[1, 0])
    t = np.sqrt(gamma / beta) if beta > 0 and gamma > 0 else a.dtype.type(1.0)
    t = min(max(t, 1 / _MAX_COND), _MAX_COND)
    return rot * np.array([1.0, t], a.dtype), np.array([[1.0], [1 / t]], a.dtype) * rot.T


def _join(a: np.ndarray, b: np.ndarray, lower: np.ndarray | None = None) -> np.ndarray:
    """``[[a, 0], [lower, b]]`` (``lower`` zero by default)."""
    lower = np.zeros((b.shape[0], a.shape[1]), a.dtype) if lower is None else lower
    return np.block([[a, np.zeros((a.shape[0], b.shape[1]), a.dtype)], [lower, b]])


def _mm(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``a @ b`` for ``a`` of shape ``(..., k)`` (into ``out``, contiguous, if given), as a stack of
    products small enough that OpenBLAS runs each on one thread (m·n·k <= 2^18): its threads
    spin-wait for each other, and on a busy machine (a decoder or a model beside the meter) one
    big product took up to 20 times longer than these small ones."""
    k, cols = b.shape
    rows = max(1, (1 << 18) // (k * cols))
    flat = a.reshape(-1, k)
    whole = flat.shape[0] - flat.shape[0] % rows
    out = np.empty((*a.shape[:-1], cols)) if out is None else out
    res = out.reshape(-1, cols)
    np.matmul(flat[:whole].reshape(-1, rows, k), b, out=res[:whole].reshape(-1, rows, cols))
    np.matmul(flat[whole:], b, out=res[whole:])
    return out


class Filter:
    """A cascade of ``lfilter(b, a)`` sections, e.g. ``Filter([(b, a)])`` is ``lfilter(b, a,
    x, axis=-1, zi=zi)``; the matrices are computed once.

    ``filt(x, zi)`` takes ``x`` of shape ``(..., n)`` and the state ``zi`` of shape
    ``(..., order)`` (``np.zeros`` to start from rest: the sections' direct form II transposed
    states one after the other, as ``sosfilt`` keeps them), and returns ``(y, zf)``.

    Give a filter of order 3 or more as its sections (``k_weighting_sos``), not as one
    polynomial: the block method multiplies by powers of the state matrix; a biquad's is first
    brought to a basis where they do not grow (``_balance``), but one 4th-order companion matrix
    with two pole pairs near 1 (the K-weighting at 192 kHz) is not: its powers grow to 3e5
    before they decay, which loses 5 digits (as that form does in ``lfilter`` itself, to 1e-9).
    """

    def __init__(self, sections, block: int = 32, group: int = 16):
        empty = np.zeros((0, 0), _EXT)
        A, B, C, D, basis, inverse = empty, np.zeros(0, _EXT), np.zeros(0, _EXT), _EXT(1.0), empty, empty
        for b, a in sections:  # the cascade so far feeds the next section
            A2, B2, C2, D2 = _direct_form(b, a)
            # the state is kept as T⁻¹ (the section's lfilter state), in which A's powers stay small
            T, Ti = _balance(A2) if A2.shape[0] == 2 else (np.eye(A2.shape[0], dtype=_EXT),) * 2
            A2, B2, C2 = Ti @ A2 @ T, Ti @ B2, C2 @ T
            A, basis, inverse = _join(A, A2, np.outer(B2, C)), _join(basis, T), _join(inverse, Ti)
            B, C, D = np.concatenate([B, B2 * D]), np.concatenate([D2 * C, C2]), D2 * D
        self.order = n = A.shape[0]
        self._d = float(D)
        self._to_inner, self._from_inner = _f64(inverse.T), _f64(basis.T)  # row-state products
        self._m = m = block
        self._g = group
        # powers A^0..A^M; row forms (states are rows, so products are  s @ A^j.T)
        pw = [np.eye(n, dtype=_EXT)]
        for _ in range(m):
            pw.append(A @ pw[-1])
        self._pow_t = _f64(np.stack([p.T for p in pw]))  # (M+1, n, n)
        h = np.concatenate(([D], [C @ p @ B for p in pw[: m - 1]]))  # impulse response h[0..M-1]
        idx = np.arange(m)
        lag = idx[None, :] - idx[:, None]  # column i (output) minus row j (input)
        toep = np.where(lag >= 0, h[np.clip(lag, 0, None)], 0.0)  # a sub-block's own samples
        obs = np.array([C @ p for p in pw[:m]]).T  # (n, M): its start state
        self._response = _f64(np.concatenate([toep, obs]))  # y_blk = [x_blk, s] @ response
        gain = np.array([pw[m - 1 - j] @ B for j in range(m)]).reshape(m, n)
        self._gain = _f64(np.concatenate([gain, np.zeros((n, n), _EXT)]))  # s_end = s A^M + [x_blk, 0] @ gain
        self._levels: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._work: tuple[np.ndarray, np.ndarray] | None = None  # reused buffers (see _chunk)
        self._next_t = pw[m].T  # the next level's step: A^M, as a row-state product (extended)

    def __call__(self, x, zi) -> tuple[np.ndarray, np.ndarray]:
        x = np.asarray(x, dtype=np.float64)
        lead, n = x.shape[:-1], x.shape[-1]
        zi = np.asarray(zi, dtype=np.float64)
        if zi.shape != (*lead, self.order):
            raise ValueError(f"zi must have shape {(*lead, self.order)}, got {zi.shape}")
        if self.order == 0:
            return x * self._d, zi.copy()
        if n == 0:
            return x.copy(), zi.copy()
        xs = x.reshape(-1, n)
        state = zi.reshape(-1, self.order) @ self._to_inner
        y = np.empty_like(xs)
        step = max(self._m, _CHUNK // xs.shape[0] // self._m * self._m)
        for i in range(0, n, step):
            y[:, i : i + step], state = self._chunk(xs[:, i : i + step], state)
        return y.reshape(x.shape), (state @ self._from_inner).reshape(zi.shape)

    def _chunk(self, xs: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(channels, n)`` samples from ``state`` (inner basis) → their output and end state."""
        (c, n), m, k = xs.shape, self._m, self.order
        nb = -(-n // m)
        r = n - (nb - 1) * m  # samples in the last sub-block (1..M)
        # Each row: a sub-block's samples, then (once known) the state it starts from. The
        # buffers are kept: fresh ones of this size are mapped pages, and their page faults
        # cost as much as the arithmetic.
        if self._work is None or self._work[0].shape[:2] != (c, nb):
            self._work = np.empty((c, nb, m + k)), np.empty((c, nb, m))
        rows, out = self._work
        rows[:, : nb - 1, :m] = xs[:, : (nb - 1) * m].reshape(c, nb - 1, m)
        rows[:, -1, :r] = xs[:, (nb - 1) * m :]
        rows[:, -1, r:] = 0.0
        rows[:, :, m:] = 0.0
        rows[:, :, m:] = self._scan(_mm(rows, self._gain), state, 0)
        y = _mm(rows, self._response, out).reshape(c, nb * m)[:, :n]
        return y, rows[:, -1, m:] @ self._pow_t[r] + rows[:, -1, :r] @ self._gain[m - r : m]

    def _level(self, level: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Matrices of one level of the state recursion ``S[k+1] = S[k] @ P + U[k]``: ``P``,
        ``Q = [P^0 … P^(G-1)]`` (a group's start state to each member's) and ``W`` (the group's
        inputs to each member's state and, as its last block, to the next group's start).
        Powers by repeated products, not squaring (squaring a matrix whose powers grow before
        they decay amplifies its rounding without bound)."""
        while len(self._levels) <= level:
            p, n, g = self._next_t, self.order, self._g
            pw = [np.eye(n, dtype=_EXT)]
            for _ in range(g):
                pw.append(pw[-1] @ p)
            w = np.zeros((g, n, g + 1, n), _EXT)
            for i in range(g):
                for j in range(i + 1, g + 1):
                    w[i, :, j, :] = pw[j - 1 - i]
            q = np.concatenate(pw[:g], axis=1)
            self._levels.append((_f64(p), _f64(q), _f64(w.reshape(g * n, (g + 1) * n))))
            self._next_t = pw[g]
        return self._levels[level]

    def _scan(self, u: np.ndarray, s0: np.ndarray, level: int) -> np.ndarray:
        """States ``S[0..k-1]`` of ``S[j+1] = S[j] @ P_level + u[:, j]`` from ``S[0] = s0``;
        ``u`` is ``(c, k, order)``."""
        c, k, n = u.shape
        g = self._g
        p, q, w = self._level(level)
        out = np.empty_like(u)
        if k <= 4:  # a few steps: a loop is quicker than another level
            s = s0
            for j in range(k):
                out[:, j] = s
                s = s @ p + u[:, j]
            return out
        ng = -(-k // g)
        ug = np.zeros((c, ng * g, n))
        ug[:, :k] = u
        inner = _mm(ug.reshape(c, ng, g * n), w)  # (c, ng, (G+1) n)
        group_starts = self._scan(inner[:, :, g * n :], s0, level + 1)  # (c, ng, n)
        states = _mm(group_starts, q) + inner[:, :, : g * n]
        return states.reshape(c, ng * g, n)[:, :k]


def running_max(x, hang: int) -> np.ndarray:
    """``out[i] = max(x[max(0, i - hang) : i + 1])`` for 1-D ``x`` — what
    ``maximum_filter1d(x, hang + 1, mode="nearest", origin=hang - (hang + 1) // 2)`` gives."""
    x = np.asarray(x)
    hang = int(hang)
    if x.ndim != 1 or hang < 0:
        raise ValueError("x must be 1-D and hang >= 0")
    n, w = x.size, hang + 1
    if n == 0 or w == 1:
        return x.copy()
    # window of out[i] in the left-padded y: [i, i + hang]; blocks of w samples in y
    nb = -(-(n + hang) // w)
    y = np.full(nb * w, x[0], dtype=x.dtype)  # 'nearest' on the left: x[0] repeated
    y[hang : hang + n] = x
    blocks = y.reshape(nb, w)
    prefix = np.maximum.accumulate(blocks, axis=1).ravel()  # max from the block start to j
    suffix = np.maximum.accumulate(blocks[:, ::-1], axis=1)[:, ::-1].ravel()  # max from j to the block end
    # [i, i + hang] is one block's suffix from i plus the next block's prefix to i + hang
    # (or lies in one block, when i starts it: then suffix[i] is the whole window already)
    return np.maximum(suffix[:n], prefix[hang : hang + n])
