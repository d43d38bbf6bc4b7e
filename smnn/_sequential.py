"""The sequential method: batched block Cholesky over the steps, O(T·b³) work, depth T.

Protocol (shared with `_parallel.py`): `factor(diag, bands) -> factor object` with
`.solve(rhs)`. The normal matrix M is symmetric block-banded with diag (N, T, b, b) =
M[t, t], bands[0] (N, T-1, b, b) = M[t+1, t] and optionally bands[1] (N, T-2, b, b) =
M[t+2, t]. A block-pentadiagonal M (two bands) is solved as a block-tridiagonal one by
pairing consecutive steps into 2b×2b blocks.

`factor` takes ownership of diag and bands: it overwrites them with the factor to keep the
peak memory at one copy of M.
"""

from __future__ import annotations

import torch


def _raise_not_pd(failed: torch.Tensor) -> None:
    """failed: (N,) bool, True where a pivot block was not positive definite."""
    if bool(failed.any()):
        index = int(failed.nonzero()[0, 0])
        raise ValueError(
            "the normal matrix: expected symmetric positive definite (enough equation and "
            "initial-value rows to pin the solution, finite well-scaled inputs), received a "
            f"singular or indefinite system at batch index {index} of the flattened batch"
        )


class TridiagonalCholesky:
    """M = L Lᵀ for block-tridiagonal M, L with diagonal blocks L_t and sub-blocks C_t.

    chol: (N, T, b, b) lower-triangular L_t; sub: (N, T-1, b, b) C_t = M[t+1, t] L_t^{-T}.
    """

    def __init__(self, diag: torch.Tensor, band: torch.Tensor):
        n, t_len, b, _ = diag.shape
        failed = torch.zeros(n, dtype=torch.bool, device=diag.device)
        chol, sub = diag, band  # overwritten in place, step by step
        for t in range(t_len):
            l_t, info = torch.linalg.cholesky_ex(chol[:, t])
            failed |= info != 0
            chol[:, t] = l_t
            if t + 1 < t_len:
                # C_t = B_t L_t^{-T}: solve X L_tᵀ = B_t.
                c_t = torch.linalg.solve_triangular(l_t.mT, sub[:, t], upper=True, left=False)
                sub[:, t] = c_t
                chol[:, t + 1] -= c_t @ c_t.mT
        _raise_not_pd(failed)
        self.chol, self.sub = chol, sub

    def solve(self, rhs: torch.Tensor) -> torch.Tensor:
        """M⁻¹ rhs: (N, T, b) -> (N, T, b)."""
        chol, sub = self.chol, self.sub
        t_len = chol.shape[1]
        z = torch.empty_like(rhs)
        # Forward: L z = rhs.
        prev = None
        for t in range(t_len):
            r_t = rhs[:, t].unsqueeze(-1)
            if prev is not None:
                r_t = r_t - sub[:, t - 1] @ prev
            prev = torch.linalg.solve_triangular(chol[:, t], r_t, upper=False)
            z[:, t] = prev.squeeze(-1)
        # Backward: Lᵀ x = z.
        x = torch.empty_like(rhs)
        nxt = None
        for t in range(t_len - 1, -1, -1):
            z_t = z[:, t].unsqueeze(-1)
            if nxt is not None:
                z_t = z_t - sub[:, t].mT @ nxt
            nxt = torch.linalg.solve_triangular(chol[:, t].mT, z_t, upper=True)
            x[:, t] = nxt.squeeze(-1)
        return x


class _Paired:
    """A block-pentadiagonal system solved as block-tridiagonal in pairs of steps."""

    def __init__(self, diag: torch.Tensor, band0: torch.Tensor, band1: torch.Tensor):
        n, t_len, b, _ = diag.shape
        pairs = (t_len + 1) // 2
        big = torch.zeros(n, 2 * pairs, b, b, dtype=diag.dtype, device=diag.device)
        big[:, :t_len] = diag
        if t_len % 2:  # pad with an identity step, uncoupled from the rest
            big[:, -1] = torch.eye(b, dtype=diag.dtype, device=diag.device)
        b0 = torch.zeros(n, 2 * pairs, b, b, dtype=diag.dtype, device=diag.device)
        b0[:, : t_len - 1] = band0
        b1 = torch.zeros(n, 2 * pairs, b, b, dtype=diag.dtype, device=diag.device)
        b1[:, : t_len - 2] = band1
        # Pair p holds steps 2p, 2p+1: [[M00, M10ᵀ], [M10, M11]].
        d2 = torch.empty(n, pairs, 2 * b, 2 * b, dtype=diag.dtype, device=diag.device)
        d2[..., :b, :b] = big[:, 0::2]
        d2[..., b:, b:] = big[:, 1::2]
        d2[..., b:, :b] = b0[:, 0::2]
        d2[..., :b, b:] = b0[:, 0::2].mT
        # M[pair p+1, pair p] = [[M[2p+2, 2p], M[2p+2, 2p+1]], [0, M[2p+3, 2p+1]]].
        s2 = torch.zeros(n, pairs - 1, 2 * b, 2 * b, dtype=diag.dtype, device=diag.device)
        s2[..., :b, :b] = b1[:, 0 : 2 * pairs - 2 : 2]
        s2[..., :b, b:] = b0[:, 1 : 2 * pairs - 2 : 2]
        s2[..., b:, b:] = b1[:, 1 : 2 * pairs - 2 : 2]
        self.t_len, self.pairs, self.b = t_len, pairs, b
        self.inner = TridiagonalCholesky(d2, s2)

    def solve(self, rhs: torch.Tensor) -> torch.Tensor:
        n = rhs.shape[0]
        padded = torch.zeros(n, 2 * self.pairs, self.b, dtype=rhs.dtype, device=rhs.device)
        padded[:, : self.t_len] = rhs
        x = self.inner.solve(padded.view(n, self.pairs, 2 * self.b))
        return x.view(n, 2 * self.pairs, self.b)[:, : self.t_len]


def factor(diag: torch.Tensor, bands: tuple[torch.Tensor, ...]):
    """Factor the block-banded SPD matrix given by diag and one or two lower bands.

    Args:
        diag: (N, T, b, b); bands: ((N, T-1, b, b),) or ((N, T-1, b, b), (N, T-2, b, b)).
        Overwritten (the factor reuses their memory).

    Returns:
        An object with `.solve(rhs (N, T, b)) -> (N, T, b)`.

    Raises:
        ValueError naming the first batch index whose system is not positive definite.
    """
    if len(bands) == 1:
        return TridiagonalCholesky(diag, bands[0])
    if len(bands) == 2:
        return _Paired(diag, bands[0], bands[1])
    raise ValueError(f"bands: expected 1 or 2 lower bands, received {len(bands)}")
