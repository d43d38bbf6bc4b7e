"""Numba kernels of the "compiled" method: assembly fused into the block Cholesky factor.

A chunk of W systems (W ≤ `CHUNK`) is processed at once: the normal matrix M (docs/design.md
§2) of each is built one block-row at a time and factorised as it is built (a Cholesky of
the banded matrix restricted to its block profile, i.e. the block Cholesky of the
sequential method), so M is never stored. Every scalar step of that algorithm is a loop over
the chunk's systems, which sits last and contiguous in the work arrays, so it runs in SIMD
lanes; the chunk's factor (~(nb+1)·b² numbers per step and system) stays in cache.
The backward kernel reads the factor kept by the forward pass or, for big batches where
keeping it would cost more memory than recomputing costs time, assembles and factorises
again; it solves λ = M⁻¹g and writes the input gradients (`_adjoint.py` has the derivation)
in the same pass.

Indexing: unknown i = t·b + d·K + k (b = D·K). Row i of block-row t couples to columns from
(t − nb)·b on (nb = 1 band, 2 with central rows); the factor stores its nb·b + j entries,
L[i, col] for col = (t − nb)·b + cc, packed (`packed_step`): row j of padded step s (s = t + nb)
at low[s·P + j·nb·b + j(j−1)/2 + cc, w], P = `packed_step(b, nb)` numbers per step (12 at
b = 3, nb = 1, against 18 for a row of the full band width: the chunk's factor then fits a
1 MB L2 at the SST shape). Inputs come batch-first and C-contiguous: coefficients
(N, T, E, b), rhs (N, T, E), init_vars (N, S, D, J), steps (N, T-1); x, g and λ (N, T·b).
The work (the factor, x, λ) is in x's dtype; chunks of several lanes read inputs and g and
write u and the gradients in theirs (float32 for a float32 model solved in float64), as
the gathers and scatters convert on the way, so no cast of whole arrays precedes or
follows a solve. One-lane chunks work on their rows in place and need x's dtype throughout.
consts (3, K, K) = w_sm²·(PaᵀPa, PbᵀPb, PbᵀPa); order_gram (2K, 2K) = OG + GO with
G = PᵀP of [Pa Pb] and O = diag(0..K-1, 0..K-1);
weights = (w_eq², w_iv², w_sm², rtol), rtol the relative pivot threshold
(`_validate.pivot_tolerance`); shape = (T, E, D, K, S, J) for `forward` and `backward`,
(D, K, S, J) for the helpers (T, E and b come from their arrays).
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numba.extending import overload

# error_model="numpy": a division by zero gives inf/NaN as in numpy (the pivot test below
# reports it), instead of raising ZeroDivisionError from inside a kernel.
_JIT = dict(cache=True, nogil=True, error_model="numpy")
# The helpers called once per step of a chunk are inlined into their caller by numba: a call
# between njit functions passes every array as a struct and counts its references, per
# step and helper (`benchmarks/kernels_ab.py`, 41 pairs: fwd+bwd x1.14 at the SST shape,
# x1.06 at a training batch; inlining the per-chunk helpers as well gained nothing there
# and doubled the compile time).
_STEP = dict(_JIT, inline="always")

_U = np.uint64  # an unsigned index: numba skips the negative-index wrap-around for it


def _same_dtype(a, b):
    """Whether arrays a and b have one dtype (a compile-time constant in the kernels)."""
    return a.dtype == b.dtype


def _in_dtype_of(a, like):
    """a itself when it has like's dtype, else a copy in like's dtype; in the kernels it
    only makes both branches of a one-lane/lane-chunk choice type-check (one-lane chunks
    run only when the dtypes agree, see `forward`)."""
    return a if a.dtype == like.dtype else a.astype(like.dtype)


@overload(_same_dtype)
def _same_dtype_numba(a, b):
    same = a.dtype == b.dtype
    return lambda a, b: same


@overload(_in_dtype_of)
def _in_dtype_of_numba(a, like):
    if a.dtype == like.dtype:
        return lambda a, like: a
    return lambda a, like: a.astype(like.dtype)

# Systems per chunk (SIMD lanes): 32-64 measured fastest at the SST shape (8: 2x slower).
CHUNK = 32
# A system with more bytes of factor than this runs alone, in one lane: its chunk's work
# arrays would no longer stay in cache, and one lane reads and writes its rows in place
# (no gathers). Fwd+bwd, float64, 2 threads, one lane each against 8 or 32: B=8, T=3,000
# 7.5 vs 17.4 ms, T=30,000 66 vs 166 ms; B=64, T=3,000 46.1 vs 52.6 ms; below it lanes win:
# B=8, T=1,000 3.2 vs 3.1 ms, B=64, T=1,000 18.0 vs 15.8 ms (96 KB of factor per system
# there, 288 KB at 3,000). With threads split by work (`_compiled._thread_count`) too:
# B=8, T=30,000 166 -> 40 ms.
LANE_SYSTEM_BYTES = 192 << 10
# Blocks wider than this (b = D·K unknowns per step) run one system per lane too: the lane
# kernels unroll a block-row at compile time, which pays at b = 3 (the model's ODE: 512
# systems of T = 54, 2.5 vs 6.4 ms fwd+bwd, 1 thread) and stops paying beyond b = 5 (equal
# at b = 4 and 5), while from b = 6 one lane per system is 1.7-6.6x faster (512 systems,
# T = 54: b = 6 32.5 vs 18.3 ms, b = 9 94.6 vs 40.1, b = 12 248 vs 96; the mode dynamics,
# 12 matrices of b = 24, T = 13, 13 right-hand sides: 46.6 vs 8.8 ms).
LANE_MAX_BLOCK = 5


@njit(**_JIT)
def _ipow(x, e):
    """x**e for a small integer e (may be negative), by repeated products."""
    out = 1.0
    for _ in range(abs(e)):
        out *= x
    return out if e >= 0 else 1.0 / out


@njit(**_STEP)
def _assemble_row(tag, t, ct, ht, consts, weights, shape, central, a, flat):
    """a[j, cc, w] = M[t·b + j, (t − nb)·b + cc] of lane w: the lower part of block-row t.
    flat = (ct, ht, a, consts) as flat views, made once by the caller: a reshape in numba is a call
    to a C helper (~30 ns), three per step were 40 % of one system's forward pass.

    The equation and Taylor rows, nearly all the work, are lane loops over a block
    unrolled at compile time (b, K and E as tuple lengths of `tag`'s dims, unsigned flat
    indices, as `_factor_step`): 1.1x faster than a lane loop per entry, bound by the
    stores to a (fusing it into `_factor_step` is the next step). The few
    initial-value and central rows follow in `_assemble_extra`."""
    fixed, lanes, dims = tag
    n_lanes, b, k_len, e_len = len(fixed), len(dims[0]), len(dims[2]), len(dims[3])
    t_len, width = ct.shape[0], (len(dims[1]) + 1) * b  # a's width, a compile-time constant
    dg = width - b  # column of the diagonal block; the band M[t, t-1] is at dg - b
    bd = dg - b
    fc, fh, fa, fk = flat
    kk = k_len * k_len
    w_eq2 = weights[0]
    for w in range(n_lanes):  # the equation rows, w² Σ_e c cᵀ
        for j in range(b):
            for cc in range(width):
                fa[_U((j * width + cc) * n_lanes + w)] = 0.0
        for e in range(e_len):
            row = (t * e_len + e) * b
            for i in range(b):
                c_i = w_eq2 * fc[_U((row + i) * n_lanes + w)]
                for j in range(i + 1):
                    fa[_U((i * width + dg + j) * n_lanes + w)] += (
                        c_i * fc[_U((row + j) * n_lanes + w)]
                    )
    if t < t_len - 1:  # interval t: forward-side Taylor rows, C = w²PaᵀPa scaled by h^(o+q)
        for w in range(n_lanes):
            h = fh[_U(t * n_lanes + w)]
            for d in range(b // k_len):
                r0 = d * k_len
                ho = 1.0  # h^o
                for o in range(k_len):
                    hh = ho  # h^(o+q)
                    for q in range(o + 1):
                        fa[_U(((r0 + o) * width + dg + r0 + q) * n_lanes + w)] += (
                            fk[_U(o * k_len + q)] * hh
                        )
                        hh *= h
                    ho *= h
    if t >= 1:  # interval t-1: backward-side rows and the coupling to step t-1
        for w in range(n_lanes):
            h = fh[_U((t - 1) * n_lanes + w)]
            for d in range(b // k_len):
                r0 = d * k_len
                ho = 1.0
                for o in range(k_len):
                    hh = ho
                    for q in range(k_len):
                        if q <= o:
                            fa[_U(((r0 + o) * width + dg + r0 + q) * n_lanes + w)] += (
                                fk[_U(kk + o * k_len + q)] * hh
                            )
                        fa[_U(((r0 + o) * width + bd + r0 + q) * n_lanes + w)] += (
                            fk[_U(2 * kk + o * k_len + q)] * hh
                        )
                        hh *= h
                    ho *= h
    _assemble_extra(lanes, t, ht, weights, shape, central, a)


@njit(**_STEP)
def _assemble_extra(lanes, t, ht, weights, shape, central, a):
    """The initial-value and central rows of block-row t, added to `_assemble_row`'s a."""
    nw = len(lanes)
    d_len, k_len, s_len, j_len = shape[0], shape[1], shape[2], shape[3]
    b, t_len = d_len * k_len, ht.shape[0] + 1
    dg = a.shape[1] - b
    bd = dg - b
    if t < s_len:
        for d in range(d_len):
            for k in range(j_len):
                for w in range(nw):
                    a[d * k_len + k, dg + d * k_len + k, w] += weights[1]
    if central:  # rows H^{K-3}·u[s,lo] + H^{K-2}·u[s+1,hi] − H^{K-3}·u[s+2,lo], H = h_s + h_{s+1}
        lo, hi, w_sm2 = k_len - 2, k_len - 1, weights[2]
        for d in range(d_len):
            rl, rh = d * k_len + lo, d * k_len + hi
            for w in range(nw):
                if t <= t_len - 3:  # row s = t
                    p = _ipow(ht[t, w] + ht[t + 1, w], k_len - 3)
                    a[rl, dg + rl, w] += w_sm2 * p * p
                if 1 <= t <= t_len - 2:  # row s = t-1
                    big = ht[t - 1, w] + ht[t, w]
                    p, q = _ipow(big, k_len - 3), _ipow(big, k_len - 2)
                    a[rh, dg + rh, w] += w_sm2 * q * q
                    a[rh, bd + rl, w] += w_sm2 * p * q
                if t >= 2:  # row s = t-2; M[t, t-2] is at column 0
                    big = ht[t - 2, w] + ht[t - 1, w]
                    p, q = _ipow(big, k_len - 3), _ipow(big, k_len - 2)
                    a[rl, dg + rl, w] += w_sm2 * p * p
                    a[rl, bd + rh, w] -= w_sm2 * p * q
                    a[rl, rl, w] -= w_sm2 * p * p




@njit(**_JIT)
def _factor(tag, ct, ht, consts, weights, shape, central, low, inv, scratch, y):
    """Assemble and factorise the chunk's systems (one per lane) into low/inv, and solve
    L z = y in place (y padded as low), block-row by block-row: each row of L is used
    while it is still in L1, instead of being read back from L2/L3 by a separate sweep
    (the chunk's factor, 0.64 MB at the SST shape, outgrows a 512 KB L2). `_back_substitute`
    finishes y <- M⁻¹y.

    tag = (fixed, lanes, dims) (see `forward`). Each step is one loop over the lanes whose
    body is the whole block-row (`_factor_step`). low has nb leading steps of zeros and
    inv nb·b leading zero rows (the columns before the first step), so every step runs
    the same code.

    pivots[w] ends NaN exactly when a pivot d_i was <= rtol·M_ii (weights[3]; zero,
    negative or NaN included): M not numerically positive definite. NaNs stay in their own
    lane.
    scratch = (a, pivots) from `_factor_work`.
    """
    a, pivots = scratch
    fixed, _, dims = tag
    pad = len(dims[0]) * len(dims[1])
    flat_low, flat_inv, flat_a = low.reshape(low.size), inv.reshape(inv.size), a.reshape(a.size)
    flat_y = y.reshape(y.size)
    flat_rows = (ct.reshape(ct.size), ht.reshape(ht.size), flat_a, consts.reshape(consts.size))
    pivots[:] = 0.0
    y[:pad] = 0.0
    for t in range(ct.shape[0]):
        _assemble_row(tag, t, ct, ht, consts, weights, shape, central, a, flat_rows)
        _factor_step(t, fixed, dims, flat_a, flat_low, flat_inv)
        _forward_step(t, fixed, dims, flat_low, flat_y)
        _pivot_test(t, fixed, dims, flat_a, flat_inv, weights[3], pivots)


@njit(**_STEP)
def _pivot_test(t, fixed, dims, a, inv, rtol, pivots):
    """pivots[w] becomes NaN unless every pivot d_i of block-row t exceeds rtol·M_ii
    (a NaN pivot fails): apart from `_factor_step` (see there), flat arrays as there, and
    branch-free so the lane loop vectorises (it ran scalar; with it the SST shape's
    factorisation went 60 -> 40 ms a pass, 1 thread)."""
    n_lanes, b, nb = len(fixed), len(dims[0]), len(dims[1])
    pad, width = nb * b, (nb + 1) * b
    for w in range(n_lanes):
        bad = 0.0
        for j in range(b):
            d = inv[_U((pad + t * b + j) * n_lanes + w)]  # 1 / d_i
            m = a[_U((j * width + pad + j) * n_lanes + w)]  # M_ii
            bad += 0.0 if (d > 0.0) & (rtol * m * d < 1.0) else np.nan
        pivots[w] += bad


@njit(**_JIT)
def packed_step(b, nb):
    """Numbers of the factor per step and system: rows j = 0..b-1 of nb·b + j entries."""
    return b * nb * b + b * (b - 1) // 2


@njit(**_JIT)
def _row_start(t, j, b, nb):
    """Where row j of padded step t starts in the packed factor (module docstring)."""
    return t * packed_step(b, nb) + j * nb * b + j * (j - 1) // 2


@njit(**_STEP)
def _factor_step(t, fixed, dims, a, low, inv):
    """Block-row t of the factor M = L D Lᵀ (L unit lower, no square roots) from the
    assembled rows a, all arrays flat (C order of a (b, W, L), low (P·steps, L) packed as
    the module docstring says, inv (rows, L); W = (nb+1)·b, L lanes): low holds L's
    entries below the diagonal, inv 1/D.

    Row i is built un-normalised first, w_ic = a_ic − Σ_k w_ik l_ck = l_ic d_c, so each
    entry is one dot product; then l_ic = w_ic / d_c and d_i = a_ii − Σ_c w_ic l_ic.
    L, b and nb are compile-time constants (tuple lengths) and the indices unsigned (no
    negative-index wrap-around): LLVM then sees every address as affine with constant
    strides, proves the lanes independent, unrolls the block-row and vectorises the lane
    loop with its intermediate values in registers (2.7x faster than one lane loop per
    entry at the SST shape). Anything more in the loop (the pivot test, even storing M_ii)
    measured scalar again, so `_factor` tests the pivots apart.
    """
    n_lanes, b, nb = len(fixed), len(dims[0]), len(dims[1])
    pad, width = nb * b, (nb + 1) * b
    top = t * b  # padded row of column (t − nb)·b
    for w in range(n_lanes):
        for j in range(b):
            i = pad + t * b + j
            row = _row_start(t + nb, j, b, nb)
            for cc in range(pad + j):  # column (t − nb)·b + cc: padded row top + cc
                # that row, j' = cc % b of step t + cc // b, starts off columns later
                other, off = _row_start(t + cc // b, cc % b, b, nb), (nb - cc // b) * b
                acc = a[_U((j * width + cc) * n_lanes + w)]
                for kk in range(cc):
                    acc -= (
                        low[_U((row + kk) * n_lanes + w)]
                        * low[_U((other + kk + off) * n_lanes + w)]
                    )
                low[_U((row + cc) * n_lanes + w)] = acc
            pivot = a[_U((j * width + pad + j) * n_lanes + w)]
            for cc in range(pad + j):
                at = _U((row + cc) * n_lanes + w)
                scaled = low[at]
                value = scaled * inv[_U((top + cc) * n_lanes + w)]
                low[at] = value
                pivot -= scaled * value
            inv[_U(i * n_lanes + w)] = 1.0 / pivot  # inf for a zero pivot


@njit(**_STEP)
def _forward_step(t, fixed, dims, low, y):
    """Block-row t of L z = y (L unit lower, `_factor_step`), flat arrays as there: one lane
    loop, flat unsigned indices."""
    n_lanes, b, nb = len(fixed), len(dims[0]), len(dims[1])
    pad = nb * b
    top = t * b
    for w in range(n_lanes):
        for j in range(b):
            i, row = pad + t * b + j, _row_start(t + nb, j, b, nb)
            acc = y[_U(i * n_lanes + w)]
            for kk in range(pad + j):
                acc -= low[_U((row + kk) * n_lanes + w)] * y[_U((top + kk) * n_lanes + w)]
            y[_U(i * n_lanes + w)] = acc


@njit(**_JIT)
def _substitute(low, inv, y, fixed, dims):
    """y ← M⁻¹y in place for the chunk, M = L D Lᵀ as factorised by `_factor`; y (pad + T·b,
    L) with pad = nb·b leading rows (set to zero here), like low and inv."""
    nb, b = len(dims[1]), len(dims[0])
    y[: nb * b] = 0.0
    flat_low, flat_y = low.reshape(low.size), y.reshape(y.size)
    for t in range((y.shape[0] - nb * b) // b):
        _forward_step(t, fixed, dims, flat_low, flat_y)
    _back_substitute(low, inv, y, fixed, dims)


@njit(**_JIT)
def _back_substitute(low, inv, y, fixed, dims):
    """y ← L⁻ᵀ D⁻¹ y in place, after L z = y (`_forward_step`): the rest of M⁻¹y. One lane
    loop per step, flat unsigned indices, as `_factor_step`."""
    n_lanes, b, nb = len(fixed), len(dims[0]), len(dims[1])
    pad = nb * b
    steps = (y.shape[0] - pad) // b
    fy, fl, fi = y.reshape(y.size), low.reshape(low.size), inv.reshape(inv.size)
    for i in range(pad * n_lanes, fy.size):  # D w = z
        fy[_U(i)] *= fi[_U(i)]
    for t in range(steps - 1, -1, -1):  # Lᵀ x = w, column by column
        top = t * b
        for w in range(n_lanes):
            for j in range(b - 1, -1, -1):
                i, row = pad + t * b + j, _row_start(t + nb, j, b, nb)
                yi = fy[_U(i * n_lanes + w)]
                for kk in range(pad + j):
                    fy[_U((top + kk) * n_lanes + w)] -= fl[_U((row + kk) * n_lanes + w)] * yi


@njit(**_JIT)
def _right_hand_side(lanes, ct, rt, vt, weights, shape, y):
    """y[:, w] = β = AᵀW²y_rows of lane w, (T·b, W)."""
    nw = len(lanes)
    d_len, k_len, s_len, j_len = shape[0], shape[1], shape[2], shape[3]
    t_len, e_len, b = ct.shape[0], ct.shape[1], ct.shape[2]
    for t in range(t_len):
        for i in range(b):
            for w in range(nw):
                y[t * b + i, w] = 0.0
            for e in range(e_len):
                for w in range(nw):
                    y[t * b + i, w] += weights[0] * ct[t, e, i, w] * rt[t, e, w]
    for t in range(s_len):
        for d in range(d_len):
            for k in range(j_len):
                for w in range(nw):
                    y[t * b + d * k_len + k, w] += weights[1] * vt[t, d, k, w]


# The transposes between batch-first rows and lane-last chunks move tiles of TILE systems ×
# TILE features (a cache line of float64 each way) when a chunk has at least TILE lanes and
# TILE_MIN_FEATURES features; below that the plain loops are as fast (init_vars: 20).
TILE = 8
TILE_MIN_FEATURES = 64


@njit(**_JIT)
def _gather(src, n0, nw, dst, buf):
    """dst[f, w] = src[n0 + w, f]: a chunk of batch-first rows to lane-last columns. Lanes
    from nw on (a last, partial chunk) get a copy of system n0 + nw - 1, so every lane
    solves a real system and the kernels run all lanes, a count fixed at compile time.

    buf: flat scratch of src's dtype, at least lanes × features. The chunk's rows are
    copied into it first, one sequential stream from memory, then transposed from cache in
    tiles. Each alone is slower: the row-by-row transpose stores to a new cache line per
    element, and tiles read from memory interleave 32 row streams, too many for the
    prefetchers (SST shape, coefficients, 1 thread: 10.8 ms row by row, 7.4 tiled, 4.8
    copied then tiled)."""
    n_feat, lanes = dst.shape
    if lanes % TILE or n_feat < TILE_MIN_FEATURES:
        for w in range(lanes):
            n = n0 + min(w, nw - 1)
            for f in range(n_feat):
                dst[f, w] = src[n, f]
        return
    for w in range(lanes):
        n = n0 + min(w, nw - 1)
        for f in range(n_feat):
            buf[_U(w * n_feat + f)] = src[n, f]
    flat = dst.reshape(dst.size)
    whole = n_feat - n_feat % TILE
    for f0 in range(0, whole, TILE):
        for w0 in range(0, lanes, TILE):
            for i in range(TILE):
                for j in range(TILE):
                    flat[_U((f0 + j) * lanes + w0 + i)] = buf[_U((w0 + i) * n_feat + f0 + j)]
    for f in range(whole, n_feat):
        for w in range(lanes):
            dst[f, w] = buf[_U(w * n_feat + f)]


@njit(**_JIT)
def _scatter(src, n0, nw, dst):
    """dst[n0 + w, f] = src[f, w], the inverse of `_gather`: in tiles straight into dst's
    rows, which a chunk writes as one contiguous block (SST shape, x, 1 thread: 8.5 -> 5.4
    ms)."""
    n_feat, lanes = src.shape
    if lanes % TILE or n_feat < TILE_MIN_FEATURES:
        for w in range(nw):
            for f in range(n_feat):
                dst[n0 + w, f] = src[f, w]
        return
    w_whole, f_whole = nw - nw % TILE, n_feat - n_feat % TILE
    for w0 in range(0, w_whole, TILE):
        for f0 in range(0, f_whole, TILE):
            for i in range(TILE):
                for j in range(TILE):
                    dst[n0 + w0 + i, f0 + j] = src[f0 + j, w0 + i]
    for w in range(w_whole, nw):
        for f in range(f_whole):
            dst[n0 + w, f] = src[f, w]
    for w in range(nw):
        for f in range(f_whole, n_feat):
            dst[n0 + w, f] = src[f, w]


@njit(**_JIT)
def _gather_buffer(lanes, *rows):
    """`_gather`'s scratch for a chunk of `lanes` systems, big enough for the widest of
    `rows` (arrays (N, features) of one dtype, the buffer's); none for one lane, whose rows
    are views."""
    widest = 0
    for a in rows:
        widest = max(widest, a.shape[1])
    return np.empty(lanes * widest if lanes > 1 else 0, dtype=rows[0].dtype)


@njit(**_JIT)
def _lanes(shape, lanes, dt):
    """Lane-last chunk arrays like the inputs: (T, E, b, W), (T, E, W), (S, D, J, W), (T-1, W).
    None are allocated for one lane (W = 1): `_rows` gives views then."""
    t_len, e_len, d_len, k_len, s_len, j_len = shape
    w = lanes if lanes > 1 else 0
    return (
        np.empty((t_len, e_len, d_len * k_len, w), dtype=dt),
        np.empty((t_len, e_len, w), dtype=dt),
        np.empty((s_len, d_len, j_len, w), dtype=dt),
        np.empty((max(t_len - 1, 1), w), dtype=dt),
    )


@njit(**_JIT)
def _rows(c, r, v, h, n, shape, like):
    """System n's rows of flattened (N, ...) arrays as the lane-last arrays of a one-lane
    chunk (`_lanes`): views, no copy, when they have like's dtype (the only case run). For
    one long sequence the copies cost little, but the fresh pages of their arrays cost
    ~3 µs each (T = 100,000: ~16 ms per fwd+bwd)."""
    t_len, e_len, d_len, k_len, s_len, j_len = shape
    return (
        _in_dtype_of(c[n], like).reshape((t_len, e_len, d_len * k_len, 1)),
        _in_dtype_of(r[n], like).reshape((t_len, e_len, 1)),
        _in_dtype_of(v[n], like).reshape((s_len, d_len, j_len, 1)),
        _in_dtype_of(h[n], like).reshape((h.shape[1], 1)),
    )


@njit(**_JIT)
def _rhs_rows(r, v, m, shape, like):
    """Row m of flattened rhs and init_vars as one-lane chunk arrays (`_rows`), for the
    further right-hand sides of a shared matrix."""
    t_len, e_len, d_len, k_len, s_len, j_len = shape
    return (
        _in_dtype_of(r[m], like).reshape((t_len, e_len, 1)),
        _in_dtype_of(v[m], like).reshape((s_len, d_len, j_len, 1)),
    )


@njit(**_JIT)
def _add_into(dst, src):
    """dst += src, same-shape contiguous arrays."""
    fd, fs = dst.reshape(dst.size), src.reshape(src.size)
    for i in range(fd.size):
        fd[_U(i)] += fs[_U(i)]


@njit(**_JIT)
def _finite_test(y, sums):
    """sums[w] += Σ_i y[i, w]·0: x·0 is 0 for a finite x and NaN for inf or NaN, so a
    lane's sum stays 0 exactly while every value it has seen is finite (a branch-free pass
    that vectorises over the lanes; y (rows, L))."""
    for i in range(y.shape[0]):
        for w in range(y.shape[1]):
            sums[w] += y[i, w] * 0.0


@njit(**_JIT)
def _step_test(ht, sums):
    """sums[w] becomes NaN unless every step size of lane w is > 0 (a NaN fails); ht
    (T-1, L); branch-free like `_pivot_test`."""
    for i in range(ht.shape[0]):
        for w in range(ht.shape[1]):
            sums[w] += 0.0 if ht[i, w] > 0.0 else np.nan


OK, NOT_DEFINITE, NOT_FINITE, NOT_POSITIVE_STEP = 0, 1, 2, 3  # `forward`'s status codes


def lane_count(shape, nb, itemsize, n):
    """Systems per chunk for n systems: one for one system, for long sequences (more
    than LANE_SYSTEM_BYTES of factor each) and for wide blocks (b > LANE_MAX_BLOCK), else
    CHUNK, or 8 for up to 8 systems. The kernels are compiled for these three counts
    (each a specialisation: `lanes` is a tuple of that length, so every lane loop has a
    trip count known at compile time and unrolls into whole SIMD registers, without
    remainder loops)."""
    b = shape[2] * shape[3]
    long = shape[0] * packed_step(b, nb) * itemsize > LANE_SYSTEM_BYTES
    if n == 1 or b > LANE_MAX_BLOCK or long:
        return 1
    return CHUNK if n > 8 else 8


@njit(**_JIT)
def factor_sizes(shape, nb):
    """(packed, rows): numbers of one system's factor, L packed (`packed_step`, nb leading
    steps of zeros) and 1/D (nb·b leading zero rows); shape as `forward`'s."""
    t_len, b = shape[0], shape[2] * shape[3]
    return (nb + t_len) * packed_step(b, nb), (nb + t_len) * b


@njit(**_JIT)
def _flat(a):
    """A lane-last array as (features, lanes), a view."""
    return a.reshape((a.size // a.shape[-1], a.shape[-1]))


@njit(**_JIT)
def _factor_work(shape, nb, lanes, like, kept):
    """`_factor`'s work arrays for a chunk, dtype of `like`: low (packed, nb leading steps
    of zeros), inv (nb·b leading zero rows, see `_factor`), scratch (a, pivots).

    low and inv have no rows when the factor lives in `kept` (see `_factor_home`)."""
    b, dt = shape[2] * shape[3], like.dtype
    packed, rows = (0, 0) if lanes == 1 and kept[0].shape[0] else factor_sizes(shape, nb)
    scratch = (np.zeros((b, (nb + 1) * b, lanes), dtype=dt), np.empty(lanes, dtype=dt))
    low = np.zeros((packed, lanes), dtype=dt)
    return low, np.zeros((rows, lanes), dtype=dt), scratch


@njit(**_JIT)
def _factor_home(kept, n0, lanes, shape, nb, low, inv):
    """Where a chunk's factor is written and read: for a chunk of one system that keeps its
    factor, in place in `kept` (its row there has the work layout: no copy, no new pages),
    else in the work arrays."""
    if lanes == 1 and kept[0].shape[0]:
        packed, rows = factor_sizes(shape, nb)
        return kept[0][n0].reshape((packed, 1)), kept[1][n0].reshape((rows, 1))
    return low, inv


@njit(**_JIT)
def _load(c, r, v, h, n0, nw, ct, rt, vt, ht, buf):
    """Gather systems n0..n0+nw-1 of the flattened inputs into the lane-last chunk arrays
    (buf: `_gather`'s scratch)."""
    _gather(c, n0, nw, _flat(ct), buf)
    _gather(r, n0, nw, _flat(rt), buf)
    _gather(v, n0, nw, _flat(vt), buf)
    _gather(h, n0, nw, ht, buf)


@njit(**_JIT)
def forward(c, r, v, h, consts, weights, shape, central, x, u, status, kept, tag, lo, hi):
    """x[n] = M⁻¹β (flat T·b) for systems lo..hi-1; status[n] = NOT_POSITIVE_STEP where a
    step size is not > 0, else NOT_DEFINITE where M is not SPD, else NOT_FINITE where a
    solution holds inf or NaN (non-finite inputs end in one of the two: a NaN or inf
    reaches a pivot or, through β, every entry of x), else OK.
    u: x again in the inputs' dtype, or an array with no rows when x serves (written only
    by lane chunks: one-lane chunks need the inputs in x's dtype).

    Inputs flattened per system: c (N, T·E·b), r (N, T·E), v (N, S·D·J), h (N, T-1); r and v
    may hold R right-hand sides per matrix, (R·N, ...) with right-hand side q of system n at
    row q·N + n: each matrix is factorised once and solved for all R (x and u (R·N, T·b)
    alike); shape = (T, E, D, K, S, J). kept: (low (N, (nb + T)·P), inv (N, (nb + T)·b)) to
    keep each system's factor (packed and padded, `_factor`) for the backward pass, or
    arrays with no rows to keep nothing. tag = (fixed, lanes, dims), each of the length of
    the lanes per chunk L (`lane_count`): fixed a tuple (L a compile-time constant, for the
    factor and the substitution, `_factor_step`), lanes the same tuple for L = 1, else an
    array (the other helpers' loops over a run-time L measured faster: LLVM unrolls fixed
    ones fully and then cannot vectorise them); dims = (b, nb and K zeros): b, nb and K
    as tuple lengths.
    """
    t_len, d_len, k_len = shape[0], shape[2], shape[3]
    b, nb = d_len * k_len, 2 if central else 1
    fixed, tl, dims = tag
    dt, lanes, pad = x.dtype, len(fixed), nb * b
    if lanes == 1 and not _same_dtype(c, x):
        raise ValueError("one-lane chunks need the inputs in x's dtype")
    ct, rt, vt, ht = _lanes(shape, lanes, dt)
    low, inv, scratch = _factor_work(shape, nb, lanes, x, kept)
    y = np.zeros((pad + t_len * b, lanes), dtype=dt)
    buf = _gather_buffer(lanes, c, r, v, h)
    sums, step_sums = np.empty(lanes, dtype=dt), np.empty(lanes, dtype=dt)  # the tests'
    sub = shape[2:]
    n_sys = c.shape[0]
    for n0 in range(lo, hi, lanes):
        nw = min(lanes, hi - n0)
        sums[:], step_sums[:] = 0.0, 0.0
        if lanes == 1:
            ct, rt, vt, ht = _rows(c, r, v, h, n0, shape, x)
        else:
            _load(c, r, v, h, n0, nw, ct, rt, vt, ht, buf)
        _step_test(ht, step_sums)
        low_at, inv_at = _factor_home(kept, n0, lanes, shape, nb, low, inv)
        _right_hand_side(tl, ct, rt, vt, weights, sub, y[pad:])
        _factor(tag, ct, ht, consts, weights, sub, central, low_at, inv_at, scratch, y)
        _back_substitute(low_at, inv_at, y, fixed, dims)
        for q in range(r.shape[0] // n_sys):  # every right-hand side, the first solved above
            m0 = q * n_sys + n0
            if q:
                if lanes == 1:
                    rt, vt = _rhs_rows(r, v, m0, shape, x)
                else:
                    _gather(r, m0, nw, _flat(rt), buf)
                    _gather(v, m0, nw, _flat(vt), buf)
                _right_hand_side(tl, ct, rt, vt, weights, sub, y[pad:])
                _substitute(low_at, inv_at, y, fixed, dims)
            _finite_test(y[pad:], sums)
            _scatter(y[pad:], m0, nw, x)
            if u.shape[0]:
                _scatter(y[pad:], m0, nw, u)
        if kept[0].shape[0] and lanes > 1:
            _scatter(_flat(low), n0, nw, kept[0])
            _scatter(inv, n0, nw, kept[1])
        for w in range(nw):
            status[n0 + w] = (NOT_POSITIVE_STEP if step_sums[w] != 0.0
                              else NOT_DEFINITE if not np.isfinite(scratch[1][w])
                              else NOT_FINITE if sums[w] != 0.0 else OK)


@njit(**_JIT)
def _gradients(tag, ct, rt, ht, xt, lt, order_gram, weights, shape, central, grads):
    """Input gradients of the chunk's systems from x and λ, (T·b, W) each; see `_adjoint.py`.

    grads: lane-last (T, E, b, W), (T, E, W), (S, D, J, W), (T-1, W), like the inputs.
    The equation and smoothness rows, nearly all the work, are lane loops with the block
    unrolled as in `_factor_step`; the initial-value and central rows are few.
    """
    fixed, lanes, dims = tag
    grad_c, grad_r, grad_v, grad_h = grads
    d_len, k_len, s_len, j_len = shape[0], shape[1], shape[2], shape[3]
    b = ct.shape[2]
    _equation_gradients(fixed, dims, ct, rt, xt, lt, weights[0], grad_c, grad_r)
    for t in range(s_len):  # initial-value rows
        for d in range(d_len):
            for k in range(j_len):
                for w in range(len(lanes)):
                    grad_v[t, d, k, w] = weights[1] * lt[t * b + d * k_len + k, w]
    _smoothness_gradients(fixed, dims, ht, xt, lt, order_gram, weights[2], grad_h)
    if central:
        _central_gradients(lanes, ht, xt, lt, weights[2], shape, grad_h)


@njit(**_JIT)
def _equation_gradients(fixed, dims, ct, rt, xt, lt, w_eq2, grad_c, grad_r):
    """Equation rows: grad_r = w²(c·λ), grad_c = −w²((c·λ) x + (c·x − r) λ)."""
    n_lanes, b = len(fixed), len(dims[0])
    t_len, e_len = rt.shape[0], rt.shape[1]
    fc, fr = ct.reshape(ct.size), rt.reshape(rt.size)
    fx, fl = xt.reshape(xt.size), lt.reshape(lt.size)
    gc, gr = grad_c.reshape(grad_c.size), grad_r.reshape(grad_r.size)
    for t in range(t_len):
        for e in range(e_len):
            row = t * e_len + e
            for w in range(n_lanes):
                res_l = 0.0
                res_x = -fr[_U(row * n_lanes + w)]
                for i in range(b):
                    c_i = fc[_U((row * b + i) * n_lanes + w)]
                    res_l += c_i * fl[_U((t * b + i) * n_lanes + w)]
                    res_x += c_i * fx[_U((t * b + i) * n_lanes + w)]
                gr[_U(row * n_lanes + w)] = w_eq2 * res_l
                for i in range(b):
                    gc[_U((row * b + i) * n_lanes + w)] = -w_eq2 * (
                        res_l * fx[_U((t * b + i) * n_lanes + w)]
                        + res_x * fl[_U((t * b + i) * n_lanes + w)]
                    )


@njit(**_JIT)
def _smoothness_gradients(fixed, dims, ht, xt, lt, order_gram, w_sm2, grad_h):
    """Smoothness rows: −w² z_λᵀ G z_x with z = [h^o u_t, h^o u_{t+1}]. As dz/dh = O z / h
    (O = diag of the orders o), d/dh = −(w²/h) z_λᵀ (OG + GO) z_x: one product with the
    constant `order_gram` = OG + GO, per state dim."""
    n_lanes, b, k_len = len(fixed), len(dims[0]), len(dims[2])
    kk = 2 * k_len
    fh, gh = ht.reshape(ht.size), grad_h.reshape(grad_h.size)
    fx, fl = xt.reshape(xt.size), lt.reshape(lt.size)
    fog = order_gram.reshape(order_gram.size)  # flat, unsigned indices (`_factor_step`)
    for t in range(xt.shape[0] // b - 1):  # the intervals
        for w in range(n_lanes):
            h = fh[_U(t * n_lanes + w)]
            acc = 0.0
            for d in range(b // k_len):
                i0 = t * b + d * k_len  # u_t's orders; u_{t+1}'s are b rows on
                for pa in range(2):  # z entry p = pa·K + pk, scaled by h^pk
                    hp = 1.0
                    for pk in range(k_len):
                        p = pa * k_len + pk
                        g_x = 0.0
                        for qa in range(2):
                            hq = 1.0
                            for qk in range(k_len):
                                g_x += (
                                    fog[_U(p * kk + qa * k_len + qk)]
                                    * hq * fx[_U((i0 + qa * b + qk) * n_lanes + w)]
                                )
                                hq *= h
                        acc += hp * fl[_U((i0 + pa * b + pk) * n_lanes + w)] * g_x
                        hp *= h
            gh[_U(t * n_lanes + w)] = -w_sm2 * acc / h


@njit(**_JIT)
def _central_gradients(lanes, ht, xt, lt, w_sm2, shape, grad_h):
    """Central rows: −w² (p a_λ + q b_λ)(p a_x + q b_x), p = H^{K-3}, q = H^{K-2}."""
    nw = len(lanes)
    d_len, k_len = shape[0], shape[1]
    b, t_len = d_len * k_len, xt.shape[0] // (d_len * k_len)
    lo, hi = k_len - 2, k_len - 1
    for s in range(t_len - 2):
        for w in range(nw):
            big = ht[s, w] + ht[s + 1, w]
            p, q = _ipow(big, k_len - 3), _ipow(big, k_len - 2)
            g_p, g_q = 0.0, 0.0
            for d in range(d_len):
                i0, i1, i2 = s * b + d * k_len, (s + 1) * b + d * k_len, (s + 2) * b + d * k_len
                a_x, a_l = xt[i0 + lo, w] - xt[i2 + lo, w], lt[i0 + lo, w] - lt[i2 + lo, w]
                b_x, b_l = xt[i1 + hi, w], lt[i1 + hi, w]
                row_x, row_l = p * a_x + q * b_x, p * a_l + q * b_l
                g_p += a_l * row_x + a_x * row_l
                g_q += b_l * row_x + b_x * row_l
            g_big = -w_sm2 * (g_p * (k_len - 3) * _ipow(big, k_len - 4) + g_q * (k_len - 2) * p)
            grad_h[s, w] += g_big
            grad_h[s + 1, w] += g_big


@njit(**_JIT)
def backward(
    c, r, v, h, x, g, consts, order_gram, weights, shape, central, kept, grads, tag, lo, hi
):
    """λ = M⁻¹g and the input gradients for systems lo..hi-1; arguments as `forward`
    (g and grads in the inputs' dtype; in x's for one-lane chunks).

    The factor is read from `kept` when forward kept it, else computed again.
    grads: (N, T·E·b), (N, T·E), (N, S·D·J), (N, T-1), written; with R right-hand sides
    per matrix (see `forward`) x, g and the rhs and init_vars gradients have R·N rows, and
    the coefficient and step gradients sum over the R.
    """
    t_len, d_len, k_len = shape[0], shape[2], shape[3]
    b, nb = d_len * k_len, 2 if central else 1
    fixed, tl, dims = tag
    dt, lanes, pad = x.dtype, len(fixed), nb * b
    if lanes == 1 and not (_same_dtype(c, x) and _same_dtype(grads[0], x)):
        raise ValueError("one-lane chunks need the inputs and gradients in x's dtype")
    ct, rt, vt, ht = _lanes(shape, lanes, dt)
    gc, gr, gv, gh = _lanes(shape, lanes, dt)
    low, inv, scratch = _factor_work(shape, nb, lanes, x, kept)
    xt = np.empty((t_len * b, lanes if lanes > 1 else 0), dtype=dt)
    lp = np.zeros((pad + t_len * b, lanes), dtype=dt)  # λ, padded rows as low
    lt = lp[pad:]
    buf = _gather_buffer(lanes, c, r, v, h, g)
    work_buf = _gather_buffer(lanes, x, kept[0], kept[1])
    sub = shape[2:]
    n_sys = c.shape[0]
    n_rhs = r.shape[0] // n_sys
    # the further right-hand sides' coefficient and step gradients, added to the first's
    more = min(n_rhs - 1, 1)
    sc = np.empty((t_len * more, shape[1], b, lanes), dtype=dt)
    sh = np.empty((max(t_len - 1, 1) * more, lanes), dtype=dt)
    for n0 in range(lo, hi, lanes):
        nw = min(lanes, hi - n0)
        if lanes == 1:  # views (`_rows`); the gradients are written in place
            ct, rt, vt, ht = _rows(c, r, v, h, n0, shape, x)
            gc, gr, gv, gh = _rows(grads[0], grads[1], grads[2], grads[3], n0, shape, x)
            xt = x[n0].reshape((t_len * b, 1))
        else:
            _load(c, r, v, h, n0, nw, ct, rt, vt, ht, buf)
            _gather(x, n0, nw, xt, work_buf)
        _gather(g, n0, nw, lt, buf)
        low_at, inv_at = _factor_home(kept, n0, lanes, shape, nb, low, inv)
        if not kept[0].shape[0]:  # factorise again, solving L z = g on the way
            _factor(tag, ct, ht, consts, weights, sub, central, low_at, inv_at, scratch, lp)
            _back_substitute(low_at, inv_at, lp, fixed, dims)
        else:
            if lanes > 1:
                _gather(kept[0], n0, nw, _flat(low), work_buf)
                _gather(kept[1], n0, nw, inv, work_buf)
            _substitute(low_at, inv_at, lp, fixed, dims)
        _gradients(tag, ct, rt, ht, xt, lt, order_gram, weights, sub, central, (gc, gr, gv, gh))
        if lanes > 1:
            _scatter(_flat(gr), n0, nw, grads[1])
            _scatter(_flat(gv), n0, nw, grads[2])
        for q in range(1, n_rhs):
            m0 = q * n_sys + n0
            if lanes == 1:
                rt, vt = _rhs_rows(r, v, m0, shape, x)
                gr, gv = _rhs_rows(grads[1], grads[2], m0, shape, x)
                xt = x[m0].reshape((t_len * b, 1))
            else:
                _gather(r, m0, nw, _flat(rt), buf)
                _gather(v, m0, nw, _flat(vt), buf)
                _gather(x, m0, nw, xt, work_buf)
            _gather(g, m0, nw, lt, buf)
            _substitute(low_at, inv_at, lp, fixed, dims)
            _gradients(tag, ct, rt, ht, xt, lt, order_gram, weights, sub, central,
                       (sc, gr, gv, sh))
            _add_into(gc, sc)
            _add_into(gh, sh)
            if lanes > 1:
                _scatter(_flat(gr), m0, nw, grads[1])
                _scatter(_flat(gv), m0, nw, grads[2])
        if lanes > 1:
            _scatter(_flat(gc), n0, nw, grads[0])
            _scatter(gh, n0, nw, grads[3])
