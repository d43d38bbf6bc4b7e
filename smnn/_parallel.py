"""Parallel-in-time solver method: block cyclic reduction, O(T) work and O(log T) depth.

The normal matrix M (docs/design.md §2) is symmetric positive definite and block-tridiagonal
(block-pentadiagonal with central rows). Cyclic reduction eliminates every other step at
once: the even steps of a level couple only to their odd neighbours, so their b×b diagonal
blocks are factorised together, and the Schur complement on the odd steps is again
block-tridiagonal with half as many steps. For an SPD matrix this is a block Cholesky
factorisation in a nested-dissection ordering, hence as stable as the sequential one. There
are ⌈log2(T+1)⌉ levels, each a few dozen batched tensor operations over all its steps; the
only Python loops run over the levels and over the block size. Once few steps remain the
rest is factorised densely (one batched Cholesky), which saves the per-level overhead of the
last levels where the work is negligible.

The block-pentadiagonal case pairs consecutive steps into 2b×2b blocks (padding T to even
with an identity step coupled to nothing), which makes it block-tridiagonal.

Layout: inside this module blocks are "structure of arrays", block indices first, then the
steps, then the batch (contiguous), e.g. diag (B, B, n, N), the layout `_assemble` stores
M in. A B×B product is then B fused multiply-adds over long contiguous vectors instead of
millions of tiny matrix calls (several times faster on CPU, and few kernel launches on GPU),
and taking every other step keeps runs of N contiguous numbers.

Every pivot is tested against M's own diagonal entry for that unknown, with the threshold
the other methods use (`_validate.pivot_tolerance`): each level folds max(rtol·M_ii/pivot)
per system into one (N,) score on the device (NaN for a negative pivot, inf for a zero
one), the dense remainder adds its own, and one check at the end names the batch index: no
per-level sync.
"""

from __future__ import annotations

import torch

from smnn._validate import not_positive_definite, pivot_tolerance

__all__ = ["CyclicReduction", "factor"]

# The last levels are factorised densely when N·(n·B)³ stays below this many multiply-adds.
DENSE_TAIL_WORK = 3_000_000


def factor(diag: torch.Tensor, bands: tuple[torch.Tensor, ...]) -> CyclicReduction:
    """Factorise a batch of symmetric positive definite block-banded matrices.

    diag: (N, T, b, b), the diagonal blocks M[t, t].
    bands: lower bands; bands[0] (N, T-1, b, b) with bands[0][:, t] = M[t+1, t], and for the
        block-pentadiagonal case also bands[1] (N, T-2, b, b) with bands[1][:, t] = M[t+2, t].
    Returns an object whose ``solve(rhs (N, T, b)) -> (N, T, b)`` applies M⁻¹, reusable any
    number of times (forward solve and the backward solve λ = M⁻¹g). The inputs are not
    modified.
    Raises SolveError (`_validate.not_positive_definite`) naming the first batch index with a
    pivot <= `_validate.pivot_tolerance` times its diagonal entry.
    """
    _check(diag, bands)
    n_batch, n_steps, b = diag.shape[0], diag.shape[1], diag.shape[2]
    rtol = pivot_tolerance(diag.dtype, b, len(bands))
    paired = len(bands) == 2
    if paired:
        d, lower = _pair_steps(diag, bands[0], bands[1])
    else:  # views: the first level reads them once, strided
        d, lower = diag.permute(2, 3, 1, 0), bands[0].permute(2, 3, 1, 0)
    width = d.shape[0]
    scaled_diag = torch.diagonal(d).permute(2, 0, 1).mul(rtol)  # (B, n, N): rtol·M_ii
    score = d.new_zeros(n_batch)  # max over pivots of rtol·M_ii/pivot, per system
    n_tail = _dense_tail_steps(n_batch, width)
    levels = []
    while d.shape[-2] > n_tail:
        level, d, lower = _reduce(d, lower)
        levels.append(level)
        rinv = level[1]  # (B, ne, N): 1/sqrt(pivot)
        ratio = rinv.square().mul_(scaled_diag[:, 0::2])
        score = torch.maximum(score, ratio.amax(dim=(0, 1)))
        scaled_diag = scaled_diag[:, 1::2]
    tail = _DenseTail(d, lower, scaled_diag)  # at least one step is left
    failed = ~(torch.maximum(score, tail.score) < 1.0)
    if bool(failed.any()):
        raise not_positive_definite(int(failed.nonzero()[0, 0]))
    return CyclicReduction(levels, tail, n_steps, b, paired)


class CyclicReduction:
    """Factors of block cyclic reduction for repeated solves.

    levels: one (tall, rinv) per level. tall (3B, B, ne, N): rows :B hold the lower Cholesky
    factors C of the eliminated diagonal blocks, rows B: hold [U | V]ᵀ with
    [U | V] = C⁻¹ [M[e, e+1] | M[e, e-1]], the scaled couplings to the kept neighbours (zero
    where a neighbour is missing); rinv (B, ne, N) the reciprocals of diag(C).
    tail: the densely factorised remainder. B is b, or 2b for paired systems.
    """

    def __init__(self, levels, tail, n_steps: int, b: int, paired: bool):
        self.levels = levels
        self.tail = tail
        self.n_steps = n_steps
        self.b = b
        self.paired = paired

    def solve(self, rhs: torch.Tensor) -> torch.Tensor:
        """Return M⁻¹ rhs. rhs: (N, T, b) -> (N, T, b) (a new tensor)."""
        n_batch, n_steps, b = rhs.shape
        if n_steps != self.n_steps or b != self.b:
            raise ValueError(
                f"rhs: expected shape (N, {self.n_steps}, {self.b}), received {tuple(rhs.shape)}"
            )
        if self.paired:
            if n_steps % 2:
                rhs = torch.nn.functional.pad(rhs, (0, 0, 0, 1))
            rhs = rhs.reshape(n_batch, rhs.shape[1] // 2, 2 * b)
        out = torch.empty_like(rhs, memory_format=torch.contiguous_format)  # (N, n, B)
        y = rhs.permute(2, 1, 0)  # (B, n, N), a view
        eliminated = []
        for tall, rinv in self.levels:
            z, y = _forward_level(tall, rinv, y)
            eliminated.append(z)
        sol = self.tail.solve(y)
        for depth in reversed(range(len(self.levels))):
            tall, rinv = self.levels[depth]
            xe = _backward_level(tall, rinv, eliminated.pop(), sol)
            # Interleave eliminated (even) and kept (odd) steps; level 0 writes the output.
            full = out.permute(2, 1, 0) if depth == 0 else xe.new_empty(_joined(xe, sol))
            full[:, 0::2] = xe
            full[:, 1::2] = sol
            sol = full
        if not self.levels:
            out.permute(2, 1, 0).copy_(sol)
        if self.paired:
            out = out.reshape(n_batch, 2 * out.shape[1], b)[:, :n_steps]
        return out


def _joined(xe: torch.Tensor, xk: torch.Tensor) -> tuple[int, ...]:
    """Shape of eliminated (B, ne, N) and kept (B, nk, N) steps together: (B, ne+nk, N)."""
    return (xe.shape[0], xe.shape[1] + xk.shape[1], xe.shape[2])


def _reduce(d: torch.Tensor, lower: torch.Tensor):
    """One level: eliminate steps 0, 2, 4, ... of a block-tridiagonal system.

    d: (B, B, n, N) diagonal blocks; lower: (B, B, n-1, N) with lower[:, :, t] = M[t+1, t]
    (any strides). Returns the level's factors (tall, rinv) and the Schur complement on the
    steps 1, 3, ...: diag (B, B, n//2, N) and lower (B, B, n//2 - 1, N), contiguous.
    """
    width, n, n_batch = d.shape[0], d.shape[2], d.shape[3]
    n_elim, n_kept = (n + 1) // 2, n // 2
    # tall = [M[e, e]; M[e+1, e]; M[e-1, e]]: one column Cholesky factorises M[e, e] and
    # computes the couplings C⁻¹ M[e, e±1] (as their transposes) in the same sweep.
    tall = d.new_empty((3 * width, width, n_elim, n_batch))
    tall[:width].copy_(d[:, :, 0::2])
    tall[width : 2 * width, :, :n_kept].copy_(lower[:, :, 0::2])
    tall[2 * width :, :, 1:].copy_(lower[:, :, 1::2].transpose(0, 1))
    if n_kept < n_elim:  # the last eliminated step has no right neighbour
        tall[width : 2 * width, :, n_kept:].zero_()
    tall[2 * width :, :, :1].zero_()  # step 0 has no left neighbour
    rinv = _cholesky_tall(tall)

    # Schur complement, accumulated without a (2B, 2B) Gram temporary (the peak memory):
    # with X = [U | V], tall[B:] = Xᵀ, so ut[p, i] = U[i, p] and vt[q, i] = V[i, q].
    ut, vt = tall[width : 2 * width], tall[2 * width :]  # (B, B, ne, N) each
    new_d = d.new_empty((width, width, n_kept, n_batch))
    new_d.copy_(d[:, :, 1::2])
    right = new_d[:, :, : n_elim - 1]  # kept k with a right neighbour e = k+1
    for i in range(width):
        u_i, v_i = ut[:, i, :n_kept], vt[:, i, 1 : n_kept + 1]
        new_d.addcmul_(u_i.unsqueeze(1), u_i.unsqueeze(0), value=-1.0)  # U_kᵀU_k
        right.addcmul_(v_i.unsqueeze(1), v_i.unsqueeze(0), value=-1.0)  # V_{k+1}ᵀV_{k+1}
    # M'[k+1, k] = -U_eᵀ V_e with e the eliminated step between kept k and k+1.
    u_e, v_e = ut[:, :, 1:n_kept], vt[:, :, 1:n_kept]
    new_lower = torch.mul(u_e[:, 0].unsqueeze(1), v_e[:, 0].unsqueeze(0)).neg_()
    for i in range(1, width):
        new_lower.addcmul_(u_e[:, i].unsqueeze(1), v_e[:, i].unsqueeze(0), value=-1.0)
    return (tall, rinv), new_d, new_lower


def _cholesky_tall(tall: torch.Tensor) -> torch.Tensor:
    """In place: column Cholesky of the first B columns of tall (3B, B, *).

    Afterwards tall[:B] holds the lower factor C of tall[:B] (upper part untouched) and
    tall[B:] holds tall[B:] C⁻ᵀ. Returns rinv (B, *) = 1/diag(C): inf or NaN at a pivot
    <= 0, which the later arithmetic spreads (see the module docstring).
    """
    width = tall.shape[1]
    rinv = tall.new_empty((width,) + tall.shape[2:])
    for j in range(width):
        col = tall[j:, j]  # (3B-j, *)
        _sub_products(col, tall[j:, :j], tall[j, :j], dim=1)
        torch.rsqrt(col[0], out=rinv[j])
        col.mul_(rinv[j])
    return rinv


def _sub_products(target: torch.Tensor, a: torch.Tensor, x: torch.Tensor, dim: int) -> None:
    """In place: target -= Σ_k a.select(dim, k) · x[k]; a's dim `dim` and x's dim 0 are k."""
    count = x.shape[0]
    if count <= 3:  # a few fused multiply-adds beat a temporary and a reduction
        for k in range(count):
            target.addcmul_(a.select(dim, k), x[k], value=-1.0)
    else:
        target.sub_((a * x.unsqueeze(dim - 1) if dim else a * x).sum(dim))


def _forward_level(tall: torch.Tensor, rinv: torch.Tensor, y: torch.Tensor):
    """Forward substitution through one level. y: (B, n, N) -> z (B, ne, N), y' (B, nk, N).

    z = C⁻¹ y_e for the eliminated steps; y' = y_k - Uᵀ z_k - Vᵀ z_{k+1} for the kept ones.
    """
    width, n, n_batch = tall.shape[1], y.shape[1], y.shape[2]
    n_elim, n_kept = (n + 1) // 2, n // 2
    z = y.new_empty((width, n_elim, n_batch))
    z.copy_(y[:, 0::2])
    for i in range(width):
        _sub_products(z[i], tall[i, :i], z[:i], dim=0)
        z[i].mul_(rinv[i])
    coupling = tall[width:]  # (2B, B, ne, N): rows p of Uᵀ then Vᵀ
    upd = coupling[:, 0] * z[0]
    for i in range(1, width):
        upd.addcmul_(coupling[:, i], z[i])
    kept = y.new_empty((width, n_kept, n_batch))
    torch.sub(y[:, 1::2], upd[:width, :n_kept], out=kept)
    kept[:, : n_elim - 1] -= upd[width:, 1:]
    return z, kept


def _backward_level(tall: torch.Tensor, rinv: torch.Tensor, z: torch.Tensor, xk: torch.Tensor):
    """Back substitution through one level, in place on z (B, ne, N); xk (B, nk, N) kept.

    x_e = C⁻ᵀ (z_e - U x_k - V x_{k-1}), returned (B, ne, N).
    """
    width = tall.shape[1]
    n_elim, n_kept = z.shape[1], xk.shape[1]
    head, shifted = z[:, :n_kept], z[:, 1:]
    for p in range(width):
        head.addcmul_(tall[width + p, :, :n_kept], xk[p], value=-1.0)  # U x_k
        shifted.addcmul_(tall[2 * width + p, :, 1:], xk[p, : n_elim - 1], value=-1.0)
    for i in reversed(range(width)):
        _sub_products(z[i], tall[i + 1 : width, i], z[i + 1 :], dim=0)
        z[i].mul_(rinv[i])
    return z


class _DenseTail:
    """The last few steps of the reduced system, factorised as one dense matrix per batch.

    d: (B, B, n, N), lower: (B, B, n-1, N), scaled_diag: (B, n, N), rtol·M_ii of the original
    M for these unknowns. score: (N,), max over the pivots of rtol·M_ii/pivot (inf where the
    matrix is not positive definite or not finite); >= 1 means failed.
    """

    def __init__(self, d: torch.Tensor, lower: torch.Tensor, scaled_diag: torch.Tensor):
        width, n, n_batch = d.shape[0], d.shape[2], d.shape[3]
        blocks = d.new_zeros((n_batch, n, width, n, width))
        idx = torch.arange(n, device=d.device)
        blocks[:, idx, :, idx] = d.permute(2, 3, 0, 1)  # (n, N, B, B) into [:, t, :, t]
        blocks[:, idx[1:], :, idx[:-1]] = lower.permute(2, 3, 0, 1)
        blocks[:, idx[:-1], :, idx[1:]] = lower.permute(2, 3, 1, 0)
        dense = blocks.view(n_batch, n * width, n * width)
        finite = torch.isfinite(dense).all(-1).all(-1)
        self.chol, info = torch.linalg.cholesky_ex(dense)
        # A singular M (e.g. nothing pins one system) can round to a tiny positive pivot
        # that cholesky_ex accepts; the relative threshold in scaled_diag refuses it.
        pivots = torch.diagonal(self.chol, dim1=-2, dim2=-1) ** 2  # (N, n·B), order t·B + i
        scale = scaled_diag.permute(2, 1, 0).reshape(n_batch, n * width)
        score = (scale / pivots).amax(-1)
        self.score = score.masked_fill((info != 0) | ~finite, float("inf"))

    def solve(self, y: torch.Tensor) -> torch.Tensor:
        """y: (B, n, N) -> (B, n, N)."""
        width, n, n_batch = y.shape
        flat = y.permute(2, 1, 0).reshape(n_batch, n * width, 1)
        x = torch.cholesky_solve(flat, self.chol)
        return x.view(n_batch, n, width).permute(2, 1, 0)


def _dense_tail_steps(n_batch: int, width: int) -> int:
    """How many remaining steps to factorise densely: N·(n·B)³ <= DENSE_TAIL_WORK."""
    n, n_batch = 1, max(n_batch, 1)  # an empty batch: as one system, not without bound
    while n_batch * ((n + 1) * width) ** 3 <= DENSE_TAIL_WORK:
        n += 1
    return n


def _pair_steps(diag, band1, band2):
    """Pair steps (2p, 2p+1) of a block-pentadiagonal matrix into 2b×2b blocks.

    diag (N, T, b, b), band1 (N, T-1, b, b), band2 (N, T-2, b, b) -> structure-of-arrays
    diag (2b, 2b, P, N) and lower band (2b, 2b, P-1, N) of a block-tridiagonal matrix,
    P = ⌈T/2⌉. An odd T gets a trailing identity step coupled to nothing.
    """
    n_batch, n_steps, b = diag.shape[0], diag.shape[1], diag.shape[2]
    n_pairs = (n_steps + 1) // 2
    d = diag.permute(2, 3, 1, 0)  # (b, b, T, N) views
    l1 = band1.permute(2, 3, 1, 0)
    l2 = band2.permute(2, 3, 1, 0)
    pd = diag.new_zeros((2 * b, 2 * b, n_pairs, n_batch))
    pl = diag.new_zeros((2 * b, 2 * b, max(n_pairs - 1, 0), n_batch))
    n_second = n_steps // 2  # pairs with a second step
    pd[:b, :b] = d[:, :, 0::2]
    pd[b:, b:, :n_second] = d[:, :, 1::2]
    pd[b:, :b, :n_second] = l1[:, :, 0::2]
    pd[:b, b:, :n_second] = l1[:, :, 0::2].transpose(0, 1)
    if n_steps % 2:
        idx = torch.arange(b, 2 * b, device=diag.device)
        pd[idx, idx, -1] = 1.0
    # M[(2p+2, 2p+3), (2p, 2p+1)] = [[band2[2p], band1[2p+1]], [0, band2[2p+1]]]
    pl[:b, :b] = l2[:, :, 0::2]
    pl[:b, b:] = l1[:, :, 1::2]
    pl[b:, b:, : l2[:, :, 1::2].shape[2]] = l2[:, :, 1::2]
    return pd, pl


def _check(diag, bands) -> None:
    """Validate the solver-method protocol's shapes (the public API validated the rest)."""
    if diag.ndim != 4 or diag.shape[-1] != diag.shape[-2] or diag.shape[1] < 1:
        raise ValueError(f"diag: expected shape (N, T>=1, b, b), received {tuple(diag.shape)}")
    n_batch, n_steps, b = diag.shape[:3]
    if len(bands) not in (1, 2):
        raise ValueError(f"bands: expected 1 or 2 lower bands, received {len(bands)}")
    for k, band in enumerate(bands, start=1):
        expected = (n_batch, max(n_steps - k, 0), b, b)
        if tuple(band.shape) != expected:
            raise ValueError(
                f"bands[{k - 1}]: expected shape {expected}, received {tuple(band.shape)}"
            )
