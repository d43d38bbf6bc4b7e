"""The normal equations of docs/design.md §2's rows: blocks of M = AᵀW²A and β = AᵀW²y.

Built directly per step, never forming A, outside autograd (the backward pass is analytic,
see `_adjoint.py`).

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


def step_powers(steps: torch.Tensor, k_len: int, dim: int = -1) -> torch.Tensor:
    """h^o for o = 0..K-1, stacked at `dim`: (N, T-1) -> (N, T-1, K) by default.

    Repeated products, not `pow`: far cheaper, and differentiable alike.
    """
    powers = [torch.ones_like(steps), steps]
    for _ in range(2, k_len):
        powers.append(powers[-1] * steps)
    return torch.stack(powers[:k_len], dim=dim)


def central_weights(steps: torch.Tensor, k_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Central-row coefficients p = H^{K-3}, q = H^{K-2}, H = h_t + h_{t+1}: (N, T-2) each."""
    big_h = steps[:, :-1] + steps[:, 1:]
    return big_h ** (k_len - 3), big_h ** (k_len - 2)


def _add_per_dim(blocks: torch.Tensor, const: torch.Tensor, hh: torch.Tensor, d_len: int):
    """blocks (T', b, b, N) += kron(I_D, const ⊙ hh), const (K, K), hh (T', K, K, N)."""
    const = const.unsqueeze(-1)  # (K, K, 1)
    if d_len == 1:
        blocks.addcmul_(const, hh)
        return
    t, b, _, n = blocks.shape
    k = b // d_len
    view = blocks.view(t, d_len, k, d_len, k, n)
    per_dim = torch.diagonal(view, dim1=1, dim2=3)  # (T', K, K, N, D)
    per_dim.addcmul_(const.unsqueeze(-1), hh.unsqueeze(-1))


@torch.no_grad()
def normal_equations(p: Problem, central: bool):
    """Blocks of M = AᵀW²A and β = AᵀW²y for a canonical problem.

    Returns:
        diag: (N, T, b, b), M[t, t]; bands: tuple of (N, T-1, b, b) M[t+1, t] and, when
        central, (N, T-2, b, b) M[t+2, t]; beta: (N, T, b). b = D·K, unknown index d·K + k.
        diag, bands and beta are views of batch-last (T', b, b, N) and (T, b, N) storage,
        the layout the sequential method factors in place.
    """
    n, t_len, e_len, d_len, k_len = p.coefficients.shape
    b = d_len * k_len
    dtype, device = p.coefficients.dtype, p.coefficients.device
    w_eq2, w_iv2, w_sm2 = p.weight_equation**2, p.weight_init**2, p.weight_smooth**2

    # Equation rows: w² Σ_e c cᵀ (batch-last) and w² Σ_e c r.
    c = p.coefficients.reshape(n, t_len, e_len, b)
    c_last = c.permute(1, 2, 3, 0).contiguous()  # (T, E, b, N)
    r_last = p.rhs.permute(1, 2, 0).contiguous()  # (T, E, N)
    # beta is stored batch-last too (T, b, N): the solvers read it that way, and
    # transposing it there costs more than the whole product here.
    if e_len == 1:
        diag = c_last[:, 0].unsqueeze(2) * c_last[:, 0].unsqueeze(1)  # (T, b, b, N)
        beta = (c_last[:, 0] * r_last).permute(2, 0, 1)  # (N, T, b) view of (T, b, N)
    else:
        diag = torch.einsum("teiN,tejN->tijN", c_last, c_last)
        beta = (c_last * r_last.unsqueeze(2)).sum(1).permute(2, 0, 1)
    if w_eq2 != 1.0:
        diag *= w_eq2
        beta *= w_eq2
    diag_v = diag.view(t_len, d_len, k_len, d_len, k_len, n)

    # Initial-value rows: identity on the first J orders of the first S steps.
    s_len, j_len = p.s_len, p.j_len
    if s_len and j_len:
        per_dim = torch.diagonal(diag_v[:s_len], dim1=1, dim2=3)  # (S, K, K, N, D)
        torch.diagonal(per_dim, dim1=1, dim2=2)[..., :j_len] += w_iv2  # (S, N, D, K)
        beta.view(n, t_len, d_len, k_len)[:, :s_len, :, :j_len] += w_iv2 * p.init_vars

    # Smoothness rows: diag(h^o) C diag(h^o) per interval and state dim. Large temporaries
    # are costly on CPU (fresh pages), so for D = 1 hh is built in band0's storage.
    pa, pb = taylor_rows(k_len, central, dtype, device)
    h_last = p.steps.T.contiguous()  # (T-1, N)
    hp = step_powers(h_last, k_len, dim=1)  # (T-1, K, N)
    band0 = torch.empty(t_len - 1, b, b, n, dtype=dtype, device=device)
    if d_len == 1:
        hh = torch.mul(hp.unsqueeze(2), hp.unsqueeze(1), out=band0)  # (T-1, K, K, N)
    else:
        hh = hp.unsqueeze(2) * hp.unsqueeze(1)
    _add_per_dim(diag[:-1], w_sm2 * (pa.T @ pa), hh, d_len)
    _add_per_dim(diag[1:], w_sm2 * (pb.T @ pb), hh, d_len)
    if d_len == 1:
        band0.mul_((w_sm2 * (pb.T @ pa)).unsqueeze(-1))
    else:
        band0.zero_()
        _add_per_dim(band0, w_sm2 * (pb.T @ pa), hh, d_len)
    bands = (band0,)

    if central:
        big_h = h_last[:-1] + h_last[1:]  # (T-2, N)
        pp = w_sm2 * big_h ** (2 * k_len - 6)  # p², p = H^{K-3}
        qq = w_sm2 * big_h ** (2 * k_len - 4)  # q², q = H^{K-2}
        pq = w_sm2 * big_h ** (2 * k_len - 5)  # p·q
        lo, hi = k_len - 2, k_len - 1
        band1 = torch.zeros(t_len - 2, b, b, n, dtype=dtype, device=device)
        b0_v = band0.view(t_len - 1, d_len, k_len, d_len, k_len, n)
        b1_v = band1.view(t_len - 2, d_len, k_len, d_len, k_len, n)
        for d in range(d_len):
            diag_v[:-2, d, lo, d, lo] += pp
            diag_v[1:-1, d, hi, d, hi] += qq
            diag_v[2:, d, lo, d, lo] += pp
            b0_v[:-1, d, hi, d, lo] += pq  # M[t+1, t]
            b0_v[1:, d, lo, d, hi] -= pq  # M[t+2, t+1]
            b1_v[:, d, lo, d, lo] -= pp  # M[t+2, t]
        bands = (band0, band1)

    def batch_first(x: torch.Tensor) -> torch.Tensor:
        return x.permute(3, 0, 1, 2)

    return batch_first(diag), tuple(batch_first(x) for x in bands), beta
