"""The sequential method: batched block Cholesky over the steps, O(T·b³) work, depth T.

Protocol (shared with `_parallel.py`): `factor(diag, bands) -> factor object` with
`.solve(rhs)`. The normal matrix M is symmetric block-banded with diag (N, T, b, b) =
M[t, t], bands[0] (N, T-1, b, b) = M[t+1, t] and optionally bands[1] (N, T-2, b, b) =
M[t+2, t]. A block-pentadiagonal M (two bands) is solved as a block-tridiagonal one by
pairing consecutive steps into 2b×2b blocks.

Why it looks like this: the blocks are tiny (b = D·K, often 3) and the batch is large, so a
per-matrix LAPACK call per step is slow. We keep the factor in "batch last" layout
(T, b, b, N) and unroll the b×b algebra into a few dozen in-place vector operations per
step, each over all N systems at once. `factor` takes ownership of diag and bands: when
they are views of (T, b, b, N) storage (as `_assemble.normal_equations` returns them), the
factor overwrites that storage, so M is held once.
"""

from __future__ import annotations

import torch

from smnn._validate import not_positive_definite, pivot_tolerance


def _batch_last(x: torch.Tensor) -> torch.Tensor:
    """(N, T, b, b) -> (T, b, b, N), without a copy when x is already stored that way."""
    return x.permute(1, 2, 3, 0).contiguous()


def _raise_not_pd(inv_pivots: torch.Tensor, diagonal: torch.Tensor, rtol: float) -> None:
    """inv_pivots: (T, N, b), 1/sqrt of the Cholesky pivots (NaN/inf where one was <= 0);
    diagonal: (T, N, b), M's diagonal before factorising. Raises `not_positive_definite` for
    the first system with a pivot <= rtol·M_ii (see `_validate.pivot_tolerance`)."""
    # pivot > rtol·M_ii  <=>  rtol·M_ii/pivot < 1; NaN (a negative pivot) compares False.
    # One reduction decides the common case (amax propagates NaN).
    scaled = inv_pivots.square().mul_(diagonal).mul_(rtol)
    if scaled.numel() == 0 or bool(scaled.amax() < 1.0):
        return
    failed = ~(scaled < 1.0).all(dim=-1).all(dim=0)  # (N,)
    if bool(failed.any()):
        raise not_positive_definite(int(failed.nonzero()[0, 0]))


class TridiagonalCholesky:
    """M = L Lᵀ for block-tridiagonal M, stored batch-last.

    chol: (T, b, b, N), the lower triangle of L_t, with 1/L_t[j, j] on the diagonal;
    sub: (T-1, b, b, N), C_t = M[t+1, t] L_t^{-T}.
    """

    def __init__(self, diag: torch.Tensor, band: torch.Tensor, rtol: float):
        """diag: (T, b, b, N) and band: (T-1, b, b, N), overwritten by the factor; rtol: the
        relative pivot threshold (`_validate.pivot_tolerance`)."""
        t_len, b = diag.shape[0], diag.shape[1]
        diagonal = torch.diagonal(diag, dim1=1, dim2=2).clone()  # (T, N, b): M_ii
        for t in range(t_len):
            s = diag[t]  # (b, b, N): the Schur complement, updated by the previous step
            for j in range(b):
                for k in range(j):
                    s[j:, j].addcmul_(s[j:, k], s[j, k], value=-1.0)
                s[j, j].rsqrt_()
                s[j + 1 :, j].mul_(s[j, j])
            if t + 1 < t_len:
                c = band[t]  # (b, b, N): C_t = B_t L_t^{-T}, solved column by column
                for j in range(b):
                    for k in range(j):
                        c[:, j].addcmul_(c[:, k], s[j, k], value=-1.0)
                    c[:, j].mul_(s[j, j])
                nxt = diag[t + 1]
                for k in range(b):  # M[t+1, t+1] - C_t C_tᵀ
                    nxt.addcmul_(c[:, k].unsqueeze(1), c[:, k].unsqueeze(0), value=-1.0)
        _raise_not_pd(torch.diagonal(diag, dim1=1, dim2=2), diagonal, rtol)
        self.chol, self.sub = diag, band

    def solve_batch_last(self, z: torch.Tensor) -> torch.Tensor:
        """M⁻¹ z in place: z (T, b, N) -> the same tensor holding the solution."""
        chol, sub = self.chol, self.sub
        t_len, b = chol.shape[0], chol.shape[1]
        for t in range(t_len):  # L y = z
            y = z[t]
            if t > 0:
                for k in range(b):
                    y.addcmul_(sub[t - 1][:, k], z[t - 1][k], value=-1.0)
            s = chol[t]
            for j in range(b):
                y[j].mul_(s[j, j])
                if j + 1 < b:
                    y[j + 1 :].addcmul_(s[j + 1 :, j], y[j], value=-1.0)
        for t in range(t_len - 1, -1, -1):  # Lᵀ x = y
            w = z[t]
            if t + 1 < t_len:
                for i in range(b):
                    w.addcmul_(sub[t][i], z[t + 1][i], value=-1.0)
            s = chol[t]
            for j in range(b - 1, -1, -1):
                w[j].mul_(s[j, j])
                if j:
                    w[:j].addcmul_(s[j, :j], w[j], value=-1.0)
        return z

    def solve(self, rhs: torch.Tensor) -> torch.Tensor:
        """M⁻¹ rhs: (N, T, b) -> (N, T, b)."""
        z = rhs.new_empty(rhs.shape[1], rhs.shape[2], rhs.shape[0])  # (T, b, N), private
        z.copy_(rhs.permute(1, 2, 0))  # a plain copy when rhs is stored batch-last
        return self.solve_batch_last(z).permute(2, 0, 1)


class _Paired:
    """A block-pentadiagonal system solved as block-tridiagonal in pairs of steps."""

    def __init__(self, diag: torch.Tensor, band0: torch.Tensor, band1: torch.Tensor, rtol):
        """diag (T, b, b, N), band0 (T-1, b, b, N), band1 (T-2, b, b, N); rtol as
        `TridiagonalCholesky`."""
        t_len, b, _, n = diag.shape
        pairs = (t_len + 1) // 2
        opts = dict(dtype=diag.dtype, device=diag.device)
        d2 = torch.zeros(pairs, 2 * b, 2 * b, n, **opts)
        s2 = torch.zeros(max(pairs - 1, 0), 2 * b, 2 * b, n, **opts)
        # Pair p holds steps 2p, 2p+1: [[M00, M10ᵀ], [M10, M11]].
        d2[:, :b, :b] = diag[0::2]
        d2[: t_len // 2, b:, b:] = diag[1::2]
        d2[: t_len // 2, b:, :b] = band0[0::2]
        d2[: t_len // 2, :b, b:] = band0[0::2].transpose(1, 2)
        if t_len % 2:  # pad with an identity step, uncoupled from the rest
            d2[-1, b:, b:] = torch.eye(b, **opts).unsqueeze(-1)
        # M[pair p+1, pair p] = [[M[2p+2, 2p], M[2p+2, 2p+1]], [0, M[2p+3, 2p+1]]].
        s2[:, :b, :b] = band1[0::2]
        s2[:, :b, b:] = band0[1::2]
        s2[: band1[1::2].shape[0], b:, b:] = band1[1::2]
        self.t_len, self.pairs, self.b = t_len, pairs, b
        self.inner = TridiagonalCholesky(d2, s2, rtol)

    def solve(self, rhs: torch.Tensor) -> torch.Tensor:
        """M⁻¹ rhs: (N, T, b) -> (N, T, b)."""
        n = rhs.shape[0]
        z = torch.zeros(2 * self.pairs, self.b, n, dtype=rhs.dtype, device=rhs.device)
        z[: self.t_len] = rhs.permute(1, 2, 0)
        x = self.inner.solve_batch_last(z.view(self.pairs, 2 * self.b, n))
        return x.view(2 * self.pairs, self.b, n)[: self.t_len].permute(2, 0, 1)


def factor(diag: torch.Tensor, bands: tuple[torch.Tensor, ...]):
    """Factor the block-banded SPD matrix given by diag and one or two lower bands.

    Args:
        diag: (N, T, b, b); bands: ((N, T-1, b, b),) or ((N, T-1, b, b), (N, T-2, b, b)).
        Their storage may be overwritten (the factor reuses it).

    Returns:
        An object with `.solve(rhs (N, T, b)) -> (N, T, b)`.

    Raises:
        SolveError (`_validate.not_positive_definite`) naming the first batch index whose
        system has a pivot <= `_validate.pivot_tolerance` times its diagonal entry.
    """
    rtol = pivot_tolerance(diag.dtype, diag.shape[-1], len(bands))
    if len(bands) == 1:
        return TridiagonalCholesky(_batch_last(diag), _batch_last(bands[0]), rtol)
    if len(bands) == 2:
        return _Paired(_batch_last(diag), _batch_last(bands[0]), _batch_last(bands[1]), rtol)
    raise ValueError(f"bands: expected 1 or 2 lower bands, received {len(bands)}")
