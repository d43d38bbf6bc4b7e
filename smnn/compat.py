"""An adapter with the original MNN layer's interface, so MNN code runs unchanged.

The original Mechanistic Neural Network code (alpz/mech-nn, `solver/ode_layer.py`) builds
`ODEINDLayer(bs, order, n_ind_dim, n_iv, n_step, n_iv_steps)`: `bs · n_ind_dim` independent
scalar ODEs of the given order, each with `n_iv` initial orders fixed at the first
`n_iv_steps` steps, solved as a dense quadratic programme. This adapter keeps that
constructor and forward signature and solves the same problem with S-MNN (the published
formulation, which drops the original's slack variable: `eps` is returned as zeros).
"""

from __future__ import annotations

import torch

from smnn._ode import ode_forward


class ODEINDLayer(torch.nn.Module):
    """Independent scalar linear ODEs, MNN-compatible.

    Args:
        bs: batch size.
        order: ODE order (K = order + 1 unknowns per step).
        n_ind_dim: independent ODEs per batch element.
        n_iv: initial-value orders fixed per initial step (J, at most order + 1).
        n_step: number of steps T.
        n_iv_steps: number of initial steps S holding initial values.
        device: accepted for compatibility; the inputs' device is used.
        central, weight_equation, weight_init, weight_smooth, method, solve_dtype: S-MNN
            options (see `smnn.ode_forward`).

    forward(coeffs (bs·n_ind_dim·n_step·(order+1) values, e.g. (bs, n_ind_dim, n_step,
    order+1)), rhs (bs, n_ind_dim, n_step), iv_rhs (bs, n_ind_dim, n_iv_steps·n_iv) or None,
    steps (bs, n_ind_dim, n_step-1)) -> (u0, u1, u2, eps, steps) with u_k (bs, n_ind_dim,
    n_step) the k-th derivative (zeros when k > order), eps (bs·n_ind_dim,) zeros, and steps
    reshaped to (bs·n_ind_dim, n_step-1, 1), as the original returns them.
    """

    def __init__(
        self,
        bs: int,
        order: int,
        n_ind_dim: int,
        n_iv: int,
        n_step: int,
        n_iv_steps: int,
        device: torch.device | str | None = None,
        *,
        central: bool = False,
        weight_equation: float = 1.0,
        weight_init: float = 1.0,
        weight_smooth: float = 1.0,
        method: str = "auto",
        solve_dtype: torch.dtype | None = None,
    ):
        super().__init__()
        for name, value, low in (
            ("bs", bs, 1),
            ("order", order, 1),
            ("n_ind_dim", n_ind_dim, 1),
            ("n_iv", n_iv, 0),
            ("n_step", n_step, 2),
            ("n_iv_steps", n_iv_steps, 0),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name}: expected an integer >= {low}, received {value!r}")
        if n_iv > order + 1:
            raise ValueError(f"n_iv: expected at most order + 1 = {order + 1}, received {n_iv}")
        self.bs, self.order, self.n_ind_dim = bs, order, n_ind_dim
        self.n_iv, self.n_step, self.n_iv_steps = n_iv, n_step, n_iv_steps
        self.device = device
        self.options = dict(
            central=central,
            weight_equation=weight_equation,
            weight_init=weight_init,
            weight_smooth=weight_smooth,
            method=method,
            solve_dtype=solve_dtype,
        )

    def forward(self, coeffs, rhs, iv_rhs, steps):
        n = self.bs * self.n_ind_dim
        k_len = self.order + 1
        coefficients = coeffs.reshape(n, self.n_step, 1, 1, k_len)  # (N, T, E=1, D=1, K)
        rhs = rhs.reshape(n, self.n_step, 1)  # (N, T, E=1)
        if iv_rhs is None or self.n_iv_steps == 0 or self.n_iv == 0:
            init_vars = coefficients.new_zeros(n, 0, 1, max(self.n_iv, 1))
        else:
            init_vars = iv_rhs.reshape(n, self.n_iv_steps, 1, self.n_iv)  # (N, S, D=1, J)
        steps = steps.reshape(n, self.n_step - 1, 1)
        u = ode_forward(coefficients, rhs, init_vars, steps[..., 0], **self.options)
        u = u.reshape(self.bs, self.n_ind_dim, self.n_step, k_len)  # (bs, n_ind_dim, T, K)
        zeros = torch.zeros_like(u[..., 0])
        u0, u1 = u[..., 0], u[..., 1]
        u2 = u[..., 2] if k_len > 2 else zeros
        eps = u.new_zeros(n)  # S-MNN has no slack variable
        return u0, u1, u2, eps, steps

    def extra_repr(self) -> str:
        return (
            f"bs={self.bs}, order={self.order}, n_ind_dim={self.n_ind_dim}, n_iv={self.n_iv}, "
            f"n_step={self.n_step}, n_iv_steps={self.n_iv_steps}"
        )
