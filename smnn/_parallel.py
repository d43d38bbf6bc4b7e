"""Parallel-in-time solver method: block cyclic reduction, O(T) work and O(log T) depth.

The normal matrix M (DESIGN.md §2) is symmetric positive definite and block-tridiagonal
(block-pentadiagonal with central rows). Cyclic reduction eliminates every other step at
once: the even steps of a level couple only to their odd neighbours, so their b×b diagonal
blocks are factorised together, and the Schur complement on the odd steps is again
block-tridiagonal with half as many steps. For an SPD matrix this is a block Cholesky
factorisation in a nested-dissection ordering, hence as stable as the sequential one. There
are ⌈log2(T+1)⌉ levels; each is a handful of batched tensor operations over all its steps,
so the only Python loops run over the levels and over the block size b.

The block-pentadiagonal case pairs consecutive steps into 2b×2b blocks (padding T to even
with a decoupled identity step), which makes it block-tridiagonal.

Layout: inside this module blocks are stored "structure of arrays", the two block indices
first and the batch and step dims last, e.g. diag as (b, b, N, n). A b×b product is then b
fused multiply-adds over long contiguous vectors instead of millions of tiny matrix calls,
which is several times faster on CPU and launches few kernels on GPU.
"""

from __future__ import annotations

import torch

__all__ = ["CyclicReduction", "factor"]


def factor(diag: torch.Tensor, bands: tuple[torch.Tensor, ...]) -> CyclicReduction:
    """Factorise a batch of symmetric positive definite block-banded matrices.

    diag: (N, T, b, b), the diagonal blocks M[t, t].
    bands: lower bands; bands[0] (N, T-1, b, b) with bands[0][:, t] = M[t+1, t], and for the
        block-pentadiagonal case also bands[1] (N, T-2, b, b) with bands[1][:, t] = M[t+2, t].
    Returns an object whose ``solve(rhs (N, T, b)) -> (N, T, b)`` applies M⁻¹, reusable any
    number of times (forward solve and the backward solve λ = M⁻¹g).
    Raises ValueError naming the first batch index whose matrix is not positive definite.
    """
    _check(diag, bands)
    n_batch, n_steps, b = diag.shape[0], diag.shape[1], diag.shape[2]
    paired = len(bands) == 2
    if paired:
        d, lower = _pair_steps(diag, bands[0], bands[1])
    else:
        d = diag.permute(2, 3, 0, 1).contiguous()  # (b, b, N, T)
        lower = bands[0].permute(2, 3, 0, 1).contiguous()  # (b, b, N, T-1)
    levels = []
    bad = torch.zeros(n_batch, dtype=torch.bool, device=diag.device)
    while d.shape[-1] > 0:
        level, d, lower = _reduce(d, lower)
        levels.append(level)
        bad |= ~torch.isfinite(level[1]).all(-1).all(0)  # rinv is inf/NaN at a pivot <= 0
    if bool(bad.any()):
        index = int(bad.nonzero()[0, 0])
        raise ValueError(
            f"normal matrix is not positive definite for batch index {index}: block cyclic "
            "reduction met a non-positive pivot (check weights, steps and coefficients)"
        )
    return CyclicReduction(levels, n_steps, b, paired)


class CyclicReduction:
    """Factors of block cyclic reduction, one tuple per level, for repeated solves.

    Level tuple (C, rinv, X): C (B, B, N, ne) lower Cholesky factors of the eliminated
    diagonal blocks, rinv (B, N, ne) the reciprocals of their diagonals, X (B, 2B, N, ne)
    = C⁻¹ [M[e, e+1] | M[e, e-1]] the scaled couplings to the kept neighbours (zero where a
    neighbour is missing). B is b, or 2b for paired (block-pentadiagonal) systems.
    """

    def __init__(self, levels, n_steps: int, b: int, paired: bool):
        self.levels = levels
        self.n_steps = n_steps
        self.b = b
        self.paired = paired

    def solve(self, rhs: torch.Tensor) -> torch.Tensor:
        """Return M⁻¹ rhs. rhs: (N, T, b) -> (N, T, b)."""
        n_batch, n_steps, b = rhs.shape
        if n_steps != self.n_steps or b != self.b:
            raise ValueError(
                f"rhs: expected shape (N, {self.n_steps}, {self.b}), received {tuple(rhs.shape)}"
            )
        if self.paired:
            if n_steps % 2:
                rhs = torch.nn.functional.pad(rhs, (0, 0, 0, 1))
            rhs = rhs.reshape(n_batch, -1, 2 * b)
        y = rhs.permute(2, 0, 1).contiguous()  # (B, N, n)
        eliminated = []
        for c, rinv, x in self.levels:  # forward: y_k -= Uᵀ C⁻¹ y_e (and V for the next)
            n_elim = c.shape[-1]
            width = x.shape[0]
            z = _forward_sub(c, rinv, y[..., 0::2].unsqueeze(1)).squeeze(1)  # (B, N, ne)
            eliminated.append(z)
            kept = y[..., 1::2]  # (B, N, nk)
            n_kept = kept.shape[-1]
            upd = _mtv(x[:, :width], z)  # Uᵀ z: (B, N, ne)
            y = kept - upd[..., :n_kept]
            if n_elim > 1:
                updv = _mtv(x[:, width:, :, 1:], z[..., 1:])  # Vᵀ z, V starts at e = 2
                y[..., : n_elim - 1] -= updv
        sol = y  # (B, N, 0)
        for (c, rinv, x), z in zip(reversed(self.levels), reversed(eliminated), strict=True):
            width = x.shape[0]
            n_elim, n_kept = c.shape[-1], sol.shape[-1]
            w = z.clone()
            w[..., :n_kept] -= _mv(x[:, :width, :, :n_kept], sol)  # U x_{k}
            if n_elim > 1:
                w[..., 1:] -= _mv(x[:, width:, :, 1:], sol[..., : n_elim - 1])  # V x_{k-1}
            xe = _back_sub(c, rinv, w.unsqueeze(1)).squeeze(1)  # (B, N, ne)
            full = xe.new_empty(xe.shape[:-1] + (n_elim + n_kept,))
            full[..., 0::2] = xe
            full[..., 1::2] = sol
            sol = full
        out = sol.permute(1, 2, 0)  # (N, n, B)
        if self.paired:
            out = out.reshape(n_batch, -1, b)[:, :n_steps]
        return out.contiguous()


def _reduce(d: torch.Tensor, lower: torch.Tensor):
    """One level: eliminate steps 0, 2, 4, ... of a block-tridiagonal system.

    d: (B, B, N, n) diagonal blocks; lower: (B, B, N, n-1) with lower[..., t] = M[t+1, t].
    Returns the level's factors (C, rinv, X) and the Schur complement on steps 1, 3, ...:
    diag (B, B, N, n//2) and lower (B, B, N, n//2 - 1).
    """
    width = d.shape[0]
    n = d.shape[-1]
    n_elim, n_kept = (n + 1) // 2, n // 2
    c, rinv = _cholesky(d[..., 0::2])
    # Couplings of eliminated step e to e+1 (M[e, e+1] = lower[e]ᵀ) and to e-1 (lower[e-1]).
    coupling = d.new_zeros((width, 2 * width) + d.shape[2:-1] + (n_elim,))
    coupling[:, :width, ..., :n_kept] = lower[..., 0::2].transpose(0, 1)
    coupling[:, width:, ..., 1:] = lower[..., 1::2]
    x = _forward_sub(c, rinv, coupling)  # [U | V] = C⁻¹ [M[e, e+1] | M[e, e-1]]
    gram = _mtm(x, x)  # (2B, 2B, N, ne): UᵀU, UᵀV, VᵀV of each eliminated step
    new_d = d[..., 1::2] - gram[:width, :width, ..., :n_kept]
    new_d[..., : n_elim - 1] -= gram[width:, width:, ..., 1 : n_kept + 1]
    new_lower = -gram[:width, width:, ..., 1:n_kept]  # M'[k+1, k] = -U_{e}ᵀ V_{e}, e between
    return (c, rinv, x), new_d, new_lower


def _cholesky(a: torch.Tensor):
    """Lower Cholesky factors of stacked SPD blocks. a: (B, B, *) -> C (B, B, *), rinv (B, *).

    Column by column; each statement acts on all blocks at once. A pivot <= 0 (or NaN) shows
    up as a non-finite rinv, checked by the caller.
    """
    width = a.shape[0]
    c = torch.zeros_like(a)
    rinv = a.new_empty((width,) + a.shape[2:])
    for j in range(width):
        s = a[j:, j]  # (B-j, *)
        if j:
            s = s - (c[j:, :j] * c[j, :j]).sum(1)
        r = s[0].rsqrt()
        rinv[j] = r
        c[j, j] = s[0] * r
        if j + 1 < width:
            c[j + 1 :, j] = s[1:] * r
    return c, rinv


def _forward_sub(c: torch.Tensor, rinv: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Solve C X = R for lower-triangular C. c: (B, B, *), rinv: (B, *), r: (B, m, *)."""
    out = torch.empty_like(r)
    for i in range(c.shape[0]):
        xi = r[i]
        if i:
            xi = xi - (c[i, :i].unsqueeze(1) * out[:i]).sum(0)
        torch.mul(xi, rinv[i].unsqueeze(0), out=out[i])
    return out


def _back_sub(c: torch.Tensor, rinv: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Solve Cᵀ X = R for lower-triangular C. c: (B, B, *), rinv: (B, *), r: (B, m, *)."""
    width = c.shape[0]
    out = torch.empty_like(r)
    for i in reversed(range(width)):
        xi = r[i]
        if i + 1 < width:
            xi = xi - (c[i + 1 :, i].unsqueeze(1) * out[i + 1 :]).sum(0)
        torch.mul(xi, rinv[i].unsqueeze(0), out=out[i])
    return out


def _mtm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Aᵀ B of stacked blocks. a: (k, p, *), b: (k, q, *) -> (p, q, *)."""
    out = a[0].unsqueeze(1) * b[0].unsqueeze(0)
    for j in range(1, a.shape[0]):
        out.addcmul_(a[j].unsqueeze(1), b[j].unsqueeze(0))
    return out


def _mv(a: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A x of stacked blocks. a: (p, q, *), x: (q, *) -> (p, *)."""
    out = a[:, 0] * x[0]
    for j in range(1, a.shape[1]):
        out.addcmul_(a[:, j], x[j])
    return out


def _mtv(a: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Aᵀ x of stacked blocks. a: (q, p, *), x: (q, *) -> (p, *)."""
    out = a[0] * x[0]
    for j in range(1, a.shape[0]):
        out.addcmul_(a[j], x[j])
    return out


def _pair_steps(diag, band1, band2):
    """Pair steps (2p, 2p+1) of a block-pentadiagonal matrix into 2b×2b blocks.

    diag (N, T, b, b), band1 (N, T-1, b, b), band2 (N, T-2, b, b) -> structure-of-arrays
    diag (2b, 2b, N, P) and lower band (2b, 2b, N, P-1) of a block-tridiagonal matrix,
    P = ⌈T/2⌉. An odd T gets a trailing identity step coupled to nothing.
    """
    n_batch, n_steps, b = diag.shape[0], diag.shape[1], diag.shape[2]
    n_pairs = (n_steps + 1) // 2
    d = diag.permute(2, 3, 0, 1)  # (b, b, N, T) views
    l1 = band1.permute(2, 3, 0, 1)
    l2 = band2.permute(2, 3, 0, 1)
    pd = diag.new_zeros((2 * b, 2 * b, n_batch, n_pairs))
    pl = diag.new_zeros((2 * b, 2 * b, n_batch, max(n_pairs - 1, 0)))
    n_odd = n_steps // 2  # pairs with a second step
    pd[:b, :b] = d[..., 0::2]
    pd[b:, b:, :, :n_odd] = d[..., 1::2]
    pd[b:, :b, :, :n_odd] = l1[..., 0::2]
    pd[:b, b:, :, :n_odd] = l1[..., 0::2].transpose(0, 1)
    if n_steps % 2:
        idx = torch.arange(b, 2 * b, device=diag.device)
        pd[idx, idx, :, -1] = 1.0
    # M[(2p+2, 2p+3), (2p, 2p+1)] = [[band2[2p], band1[2p+1]], [0, band2[2p+1]]]
    pl[:b, :b] = l2[..., 0::2]
    pl[:b, b:, :, : l1[..., 1::2].shape[-1]] = l1[..., 1::2]
    pl[b:, b:, :, : l2[..., 1::2].shape[-1]] = l2[..., 1::2]
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
