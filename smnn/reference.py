"""The dense ground truth: build the least-squares matrix A explicitly and solve densely.

This is the O((T·b)³) solve the original MNN performed (without its slack variable); the
fast solver must agree with it. It is written straight from docs/design.md §2, row group by row
group, sharing no code with the fast path, so that a mistake in one is not repeated in the
other. Differentiable by plain autograd.
"""

from __future__ import annotations

from math import factorial

import torch

from smnn._validate import canonicalise

__all__ = ["ode_forward_dense", "dense_system"]


def _shift(rows: int, cols: int, offset: int, like: torch.Tensor) -> torch.Tensor:
    """(rows, cols) matrix with ones at (l, l + offset): places interval l's step."""
    return torch.eye(rows, cols, dtype=like.dtype, device=like.device).roll(offset, dims=1)


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
        steps: (N, T-1) (already broadcast over batch and steps), or (N, T-1, D): a step per
            state dimension, as the original MNN's ODESYSLayer takes them (dim d's smoothness
            and central rows use steps[..., d]; `ode_forward` has one step per interval).

    Returns:
        A: (N, R, T·D·K), the rows; y: (N, R), their right-hand sides; w: (R,), row weights.
        Unknown u[t, d, k] sits in column (t·D + d)·K + k.
    """
    n, t_len, e_len, d_len, k_len = coefficients.shape
    s_len, j_len = init_vars.shape[1], init_vars.shape[3]
    c = coefficients
    cols = t_len * d_len * k_len
    eye_d = torch.eye(d_len, dtype=c.dtype, device=c.device)
    groups = []  # (rows (N, R_g, T·D·K), rhs (N, R_g), weight)

    # Equation rows: sum_{d,k} c[t,e,d,k] u[t,d,k] = r[t,e].
    eq = torch.einsum("ntedk,ts->ntesdk", c, torch.eye(t_len, dtype=c.dtype, device=c.device))
    groups.append((eq.reshape(n, t_len * e_len, cols), rhs.reshape(n, -1), weight_equation))
    # Initial-value rows: u[t,d,k] = v[t,d,k] for t < S, k < J.
    select = torch.einsum(
        "st,de,jk->sdjtek",
        torch.eye(s_len, t_len, dtype=c.dtype, device=c.device),
        eye_d,
        torch.eye(j_len, k_len, dtype=c.dtype, device=c.device),
    ).reshape(1, s_len * d_len * j_len, cols)
    groups.append(
        (select.expand(n, -1, -1), init_vars.reshape(n, s_len * d_len * j_len), weight_init)
    )

    # Smoothness rows: forward and backward Taylor expansions scaled by h^i, per interval l,
    # with coefficients on u[l] (here) and u[l+1] (there).
    n_taylor = k_len - 1 if central else k_len
    h = steps if steps.dim() == 3 else steps.unsqueeze(-1).expand(n, t_len - 1, d_len)
    zero = torch.zeros_like(h)
    here = [[zero] * k_len for _ in range(2 * n_taylor)]
    there = [[zero] * k_len for _ in range(2 * n_taylor)]
    for i in range(n_taylor):
        for o in range(i, k_len):
            here[i][o] = here[i][o] + h**o / factorial(o - i)  # forward
            there[n_taylor + i][o] = there[n_taylor + i][o] + (-h) ** o / factorial(o - i)
        there[i][i] = there[i][i] - h**i  # forward: - h^i u[l+1, i]
        here[n_taylor + i][i] = here[n_taylor + i][i] - (-h) ** i  # backward: - (-h)^i u[l, i]
    here_t = torch.stack([torch.stack(row, -1) for row in here], -2)  # (N, T-1, D, 2I, K)
    there_t = torch.stack([torch.stack(row, -1) for row in there], -2)
    smooth = torch.einsum("nldrk,ls,de->nldrsek", here_t, _shift(t_len - 1, t_len, 0, c), eye_d)
    smooth = smooth + torch.einsum(
        "nldrk,ls,de->nldrsek", there_t, _shift(t_len - 1, t_len, 1, c), eye_d
    )
    rows = smooth.reshape(n, (t_len - 1) * d_len * 2 * n_taylor, cols)
    groups.append(
        (rows, torch.zeros(n, rows.shape[1], dtype=c.dtype, device=c.device), weight_smooth)
    )

    # Central rows: H^{K-3} u[l,K-2] + H^{K-2} u[l+1,K-1] - H^{K-3} u[l+2,K-2].
    if central:
        big_h = h[:, :-1] + h[:, 1:]  # (N, T-2, D)
        unit = torch.eye(k_len, dtype=c.dtype, device=c.device)
        rows = 0
        for offset, coef, order in (
            (0, big_h ** (k_len - 3), k_len - 2),
            (1, big_h ** (k_len - 2), k_len - 1),
            (2, -(big_h ** (k_len - 3)), k_len - 2),
        ):
            rows = rows + torch.einsum(
                "nld,ls,de,k->nldsek",
                coef,
                _shift(t_len - 2, t_len, offset, c),
                eye_d,
                unit[order],
            )
        rows = rows.reshape(n, (t_len - 2) * d_len, cols)
        groups.append(
            (rows, torch.zeros(n, rows.shape[1], dtype=c.dtype, device=c.device), weight_smooth)
        )

    a = torch.cat([g[0] for g in groups], dim=1)
    y = torch.cat([g[1] for g in groups], dim=1)
    w = torch.cat(
        [torch.full((g[0].shape[1],), float(g[2]), dtype=c.dtype, device=c.device) for g in groups]
    )
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
        u: (..., T, D, K), the minimiser of docs/design.md §2's weighted sum of squares, found
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
    ).unshared()
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
