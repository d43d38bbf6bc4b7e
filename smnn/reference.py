"""The dense ground truth: build the least-squares matrix A explicitly and solve densely.

This is the O((T·b)³) solve the original MNN performed (without its slack variable); the
fast solver must agree with it. It is written straight from DESIGN.md §2, row by row,
sharing no code with the fast path, so that a mistake in one is not repeated in the other.
Differentiable by plain autograd.
"""

from __future__ import annotations

from math import factorial

import torch

from smnn._validate import canonicalise

__all__ = ["ode_forward_dense", "dense_system"]


def dense_system(
    coefficients: torch.Tensor,
    rhs: torch.Tensor,
    init_vars: torch.Tensor,
    steps: torch.Tensor,
    *,
    weight_equation: float = 1.0,
    weight_init: float = 1.0,
    weight_smooth: float = 1.0,
    central: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The weighted rows of the least-squares problem, for canonical (flattened) inputs.

    Args:
        coefficients: (N, T, E, D, K); rhs: (N, T, E); init_vars: (N, S, D, J);
        steps: (N, T-1) (already broadcast over batch and steps).

    Returns:
        A: (N, R, T·D·K), the rows; y: (N, R), their right-hand sides; w: (R,), row weights.
        Unknown u[t, d, k] sits in column (t·D + d)·K + k.
    """
    n, t_len, e_len, d_len, k_len = coefficients.shape
    s_len, j_len = init_vars.shape[1], init_vars.shape[3]
    b = d_len * k_len
    dtype, device = coefficients.dtype, coefficients.device
    rows, ys, ws = [], [], []

    def new_row() -> torch.Tensor:
        return torch.zeros(n, t_len * b, dtype=dtype, device=device)

    def col(t: int, d: int, k: int) -> int:
        return t * b + d * k_len + k

    zero = torch.zeros(n, dtype=dtype, device=device)
    # Equation rows: sum_{d,k} c[t,e,d,k] u[t,d,k] = r[t,e].
    for t in range(t_len):
        for e in range(e_len):
            row = new_row()
            row[:, t * b : (t + 1) * b] = coefficients[:, t, e].reshape(n, b)
            rows.append(row)
            ys.append(rhs[:, t, e])
            ws.append(weight_equation)
    # Initial-value rows: u[t,d,k] = v[t,d,k] for t < S, k < J.
    for t in range(s_len):
        for d in range(d_len):
            for k in range(j_len):
                row = new_row()
                row[:, col(t, d, k)] = 1.0
                rows.append(row)
                ys.append(init_vars[:, t, d, k])
                ws.append(weight_init)
    # Smoothness rows: forward and backward Taylor expansions scaled by h^i.
    n_taylor = k_len - 1 if central else k_len
    for t in range(t_len - 1):
        h = steps[:, t]
        for d in range(d_len):
            for i in range(n_taylor):
                fwd = new_row()
                bwd = new_row()
                for o in range(i, k_len):
                    fwd[:, col(t, d, o)] = fwd[:, col(t, d, o)] + h**o / factorial(o - i)
                    bwd[:, col(t + 1, d, o)] = bwd[:, col(t + 1, d, o)] + (-h) ** o / factorial(
                        o - i
                    )
                fwd[:, col(t + 1, d, i)] = fwd[:, col(t + 1, d, i)] - h**i
                bwd[:, col(t, d, i)] = bwd[:, col(t, d, i)] - (-h) ** i
                rows += [fwd, bwd]
                ys += [zero, zero]
                ws += [weight_smooth, weight_smooth]
    # Central rows: H^{K-3} u[t,K-2] + H^{K-2} u[t+1,K-1] - H^{K-3} u[t+2,K-2].
    if central:
        for t in range(t_len - 2):
            big_h = steps[:, t] + steps[:, t + 1]
            for d in range(d_len):
                row = new_row()
                row[:, col(t, d, k_len - 2)] = big_h ** (k_len - 3)
                row[:, col(t + 1, d, k_len - 1)] = big_h ** (k_len - 2)
                row[:, col(t + 2, d, k_len - 2)] = -(big_h ** (k_len - 3))
                rows.append(row)
                ys.append(zero)
                ws.append(weight_smooth)
    a = torch.stack(rows, dim=1)
    y = torch.stack(ys, dim=1)
    w = torch.tensor(ws, dtype=dtype, device=device)
    return a, y, w


def ode_forward_dense(
    coefficients: torch.Tensor,
    rhs: torch.Tensor,
    init_vars: torch.Tensor,
    steps: torch.Tensor,
    *,
    weight_equation: float = 1.0,
    weight_init: float = 1.0,
    weight_smooth: float = 1.0,
    central: bool = False,
) -> torch.Tensor:
    """Solve the S-MNN least-squares problem densely (same inputs and result as `ode_forward`).

    Args:
        coefficients: (..., T or 1, E, D, K); rhs: (..., T or 1, E);
        init_vars: (..., S, D, J); steps: (..., T-1 or 1). Leading dims broadcast.

    Returns:
        u: (..., T, D, K), the minimiser of DESIGN.md §2's weighted sum of squares, found
        from the normal equations (AᵀW²A) u = AᵀW²y by a dense Cholesky solve.
    """
    p = canonicalise(
        coefficients,
        rhs,
        init_vars,
        steps,
        weight_equation=weight_equation,
        weight_init=weight_init,
        weight_smooth=weight_smooth,
    )
    a, y, w = dense_system(
        p.coefficients,
        p.rhs,
        p.init_vars,
        p.steps,
        weight_equation=p.weight_equation,
        weight_init=p.weight_init,
        weight_smooth=p.weight_smooth,
        central=central,
    )
    wa = a * w[:, None]  # (N, R, T·b)
    normal = wa.transpose(1, 2) @ wa  # (N, T·b, T·b)
    beta = wa.transpose(1, 2) @ (w * y).unsqueeze(-1)  # (N, T·b, 1)
    chol = torch.linalg.cholesky(normal)
    u = torch.cholesky_solve(beta, chol).squeeze(-1)  # (N, T·b)
    return u.reshape(*p.batch_shape, p.t_len, p.d_len, p.k_len)
