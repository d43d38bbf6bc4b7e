"""The least-squares rows of DESIGN.md §2, matrix-free, and the normal equations they give.

Two jobs, both from one description of the rows:
- `normal_equations`: the blocks of M = AᵀW²A (block-banded) and β = AᵀW²y, built directly,
  never forming A. Used by the forward solve, outside autograd.
- `weighted_residuals`: W(A·x − y) row group by row group, differentiable in the inputs.
  The backward pass differentiates ⟨W A λ, W(A x − y)⟩ through it (see `_solve.py`).

Smoothness rows touch one state dim d at a time and scale as P(h) = P(1)·diag(h^o), so each
interval's contribution to M is diag(h^o) · C · diag(h^o) with constant K×K matrices C.
"""

from __future__ import annotations

from math import factorial

import torch

from smnn._validate import Problem


def taylor_rows(k_len: int, central: bool, dtype: torch.dtype, device: torch.device):
    """Forward and backward Taylor rows at h = 1, for one state dim of one interval.

    Returns:
        pa: (2I, K), coefficients on u[t]; pb: (2I, K), on u[t+1]; I = K (default) or K-1
        (central). Rows 0..I-1 are the forward rows, I..2I-1 the backward rows.
        At step h the rows are pa·diag(h^o) and pb·diag(h^o).
    """
    n_taylor = k_len - 1 if central else k_len
    pa = torch.zeros(2 * n_taylor, k_len, dtype=dtype, device=device)
    pb = torch.zeros(2 * n_taylor, k_len, dtype=dtype, device=device)
    for i in range(n_taylor):
        sign_i = (-1.0) ** i
        for o in range(i, k_len):
            pa[i, o] = 1.0 / factorial(o - i)  # forward: sum_o h^o/(o-i)! u[t,o]
            pb[n_taylor + i, o] = (-1.0) ** o / factorial(o - i)  # backward, on u[t+1]
        pb[i, i] -= 1.0  # forward: - h^i u[t+1,i]
        pa[n_taylor + i, i] -= sign_i  # backward: - (-h)^i u[t,i]
    return pa, pb


def step_powers(steps: torch.Tensor, k_len: int) -> torch.Tensor:
    """h^o for o = 0..K-1: (N, T-1) -> (N, T-1, K)."""
    orders = torch.arange(k_len, dtype=steps.dtype, device=steps.device)
    return steps.unsqueeze(-1) ** orders


def central_weights(steps: torch.Tensor, k_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Central-row coefficients p = H^{K-3}, q = H^{K-2}, H = h_t + h_{t+1}: (N, T-2) each."""
    big_h = steps[:, :-1] + steps[:, 1:]
    return big_h ** (k_len - 3), big_h ** (k_len - 2)


def _add_per_dim(blocks: torch.Tensor, small: torch.Tensor, d_len: int) -> None:
    """blocks (N, T', b, b) += kron(I_D, small) with small (N, T', K, K), in place."""
    if d_len == 1:
        blocks += small
        return
    n, t, b, _ = blocks.shape
    k = b // d_len
    view = blocks.view(n, t, d_len, k, d_len, k)
    torch.diagonal(view, dim1=2, dim2=4).add_(small.unsqueeze(-1))  # (N, T', K, K, D)


@torch.no_grad()
def normal_equations(p: Problem, central: bool):
    """Blocks of M = AᵀW²A and β = AᵀW²y for a canonical problem.

    Returns:
        diag: (N, T, b, b), M[t, t]; bands: tuple of (N, T-1, b, b) M[t+1, t] and, when
        central, (N, T-2, b, b) M[t+2, t]; beta: (N, T, b). b = D·K, unknown index d·K + k.
    """
    n, t_len, e_len, d_len, k_len = p.coefficients.shape
    b = d_len * k_len
    dtype, device = p.coefficients.dtype, p.coefficients.device
    w_eq2, w_iv2, w_sm2 = p.weight_equation**2, p.weight_init**2, p.weight_smooth**2

    # Equation rows: w² Σ_e c cᵀ and w² Σ_e c r.
    c = p.coefficients.reshape(n, t_len, e_len, b)
    if e_len == 1:
        c1 = c[:, :, 0]
        diag = c1.unsqueeze(-1) * c1.unsqueeze(-2)  # (N, T, b, b)
        beta = c1 * p.rhs  # (N, T, b)
    else:
        diag = torch.einsum("nteb,ntec->ntbc", c, c)
        beta = torch.einsum("nteb,nte->ntb", c, p.rhs)
    if w_eq2 != 1.0:
        diag *= w_eq2
        beta *= w_eq2

    # Initial-value rows: identity on the first J orders of the first S steps.
    s_len, j_len = p.s_len, p.j_len
    if s_len and j_len:
        iv_diag = torch.diagonal(diag[:, :s_len], dim1=-2, dim2=-1).view(n, s_len, d_len, k_len)
        iv_diag[..., :j_len] += w_iv2
        beta.view(n, t_len, d_len, k_len)[:, :s_len, :, :j_len] += w_iv2 * p.init_vars

    # Smoothness rows: diag(h^o) C diag(h^o) per interval and state dim.
    pa, pb = taylor_rows(k_len, central, dtype, device)
    hp = step_powers(p.steps, k_len)  # (N, T-1, K)
    hh = hp.unsqueeze(-1) * hp.unsqueeze(-2)  # (N, T-1, K, K)
    _add_per_dim(diag[:, :-1], w_sm2 * (pa.T @ pa) * hh, d_len)
    _add_per_dim(diag[:, 1:], w_sm2 * (pb.T @ pb) * hh, d_len)
    band0 = torch.zeros(n, t_len - 1, b, b, dtype=dtype, device=device)
    _add_per_dim(band0, w_sm2 * (pb.T @ pa) * hh, d_len)
    bands = (band0,)

    if central:
        pc, qc = central_weights(p.steps, k_len)  # (N, T-2)
        lo, hi = k_len - 2, k_len - 1
        band1 = torch.zeros(n, t_len - 2, b, b, dtype=dtype, device=device)
        diag_v = diag.view(n, t_len, d_len, k_len, d_len, k_len)
        b0_v = band0.view(n, t_len - 1, d_len, k_len, d_len, k_len)
        b1_v = band1.view(n, t_len - 2, d_len, k_len, d_len, k_len)
        pp, qq, pq = (
            (w_sm2 * pc * pc)[..., None],
            (w_sm2 * qc * qc)[..., None],
            (w_sm2 * pc * qc)[..., None],
        )
        for d in range(d_len):
            diag_v[:, :-2, d, lo, d, lo] += pp[..., 0]
            diag_v[:, 1:-1, d, hi, d, hi] += qq[..., 0]
            diag_v[:, 2:, d, lo, d, lo] += pp[..., 0]
            b0_v[:, :-1, d, hi, d, lo] += pq[..., 0]  # M[t+1, t]
            b0_v[:, 1:, d, lo, d, hi] -= pq[..., 0]  # M[t+2, t+1]
            b1_v[:, :, d, lo, d, lo] -= pp[..., 0]  # M[t+2, t]
        bands = (band0, band1)
    return diag, bands, beta


def weighted_residuals(
    p: Problem, x: torch.Tensor, central: bool, with_rhs: bool
) -> list[torch.Tensor]:
    """W(A x − y) (or W A x without y), one tensor per row group, differentiable in p.

    Args:
        x: (N, T, D, K), a candidate solution (or adjoint).

    Returns:
        [equation rows (N, T, E), initial-value rows (N, S, D, J),
         smoothness rows (N, T-1, D, 2I), and, when central, central rows (N, T-2, D)].
    """
    k_len, s_len, j_len = p.k_len, p.s_len, p.j_len
    eq = torch.einsum("nted,ntd->nte", p.coefficients.flatten(-2), x.flatten(-2))
    iv = x[:, :s_len, :, :j_len]
    if with_rhs:
        eq = eq - p.rhs
        iv = iv - p.init_vars
    pa, pb = taylor_rows(k_len, central, x.dtype, x.device)
    hp = step_powers(p.steps, k_len).unsqueeze(-2)  # (N, T-1, 1, K)
    sm = (x[:, :-1] * hp) @ pa.T + (x[:, 1:] * hp) @ pb.T  # (N, T-1, D, 2I)
    rows = [p.weight_equation * eq, p.weight_init * iv, p.weight_smooth * sm]
    if central:
        pc, qc = central_weights(p.steps, k_len)
        pc, qc = pc.unsqueeze(-1), qc.unsqueeze(-1)
        ce = pc * (x[:, :-2, :, k_len - 2] - x[:, 2:, :, k_len - 2]) + qc * x[:, 1:-1, :, k_len - 1]
        rows.append(p.weight_smooth * ce)
    return rows
