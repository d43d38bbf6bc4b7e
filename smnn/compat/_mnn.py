"""`ODEINDLayer` and `ODESYSLayer` with the original MNN layers' interface, on S-MNN.

The originals (alpz/mech-nn, `solver/ode_layer.py`) solve a dense quadratic programme with a
slack variable eps in every derivative row; these solve the same ODE, initial-value and
(forward and central) smoothness rows with the S-MNN least-squares solver, which has no slack
(eps is returned as zeros). What each constructor argument does here: `_tables.py` / README.
"""

from __future__ import annotations

import warnings

import torch

from smnn._ode import ode_forward
from smnn.reference import dense_system

_LOWEST = {"n_step": 2, "n_iv": 0, "n_iv_steps": 0}  # every other size: at least 1


def _check_sizes(sizes: dict[str, int]) -> None:
    for name, value in sizes.items():
        low = _LOWEST.get(name, 1)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name}: expected an integer >= {low}, received {value!r}")


class _MNNLayer(torch.nn.Module):
    """What both layers share: sizes, dtype rules, the attributes MNN code reads, the solve."""

    def _setup(self, sizes, *, solver_dbl, gamma, alpha, central, double_ret, device, extra):
        _check_sizes(sizes)
        if sizes["n_iv"] > sizes["order"] + 1:
            raise ValueError(
                f"n_iv: expected at most order + 1 = {sizes['order'] + 1}, received {sizes['n_iv']}"
            )
        if sizes["n_iv_steps"] > sizes["n_step"]:
            raise ValueError(
                f"n_iv_steps: expected at most n_step = {sizes['n_step']}, "
                f"received {sizes['n_iv_steps']}"
            )
        for name, value in sizes.items():
            setattr(self, name, value)
        self.step_size = 0.1  # the originals' placeholder step size
        self.n_coeff = self.n_step * (self.order + 1)
        self.solver_dbl, self.double_ret, self.central_diff = solver_dbl, double_ret, central
        self.gamma, self.alpha, self.device = gamma, alpha, device  # no effect (see module doc)
        self.options = dict(central=central, **extra)

    def _solve(self, coefficients, rhs, init_vars, steps):
        """(M, T, E, D, K), (M, T, E), (M, S, D, J) or None, (M, T-1) -> u (M, T, D, K)."""
        solve_dtype = torch.float64 if self.solver_dbl else coefficients.dtype
        if init_vars is None or self.n_iv == 0 or self.n_iv_steps == 0:
            init_vars = coefficients.new_zeros(coefficients.shape[0], 0, self.n_dim, 1)
        # as the originals: up-cast the inputs for a double solve, so the result is float64 too
        inputs = [x.to(solve_dtype) for x in (coefficients, rhs, init_vars, steps)]
        u = ode_forward(*inputs, solve_dtype=solve_dtype, **self.options)
        return u.to(solve_dtype if self.double_ret else torch.float32)

    def _solve_dense_per_dim(self, coefficients, rhs, init_vars, steps):
        """As `_solve`, but steps (M, T-1, D), a step per state dim: a dense O((T·b)³) solve."""
        solve_dtype = torch.float64 if self.solver_dbl else coefficients.dtype
        if init_vars is None or self.n_iv == 0 or self.n_iv_steps == 0:
            init_vars = coefficients.new_zeros(coefficients.shape[0], 0, self.n_dim, 1)
        if not bool((steps > 0).all()):
            raise ValueError("steps: expected step sizes > 0")
        inputs = [x.to(solve_dtype) for x in (coefficients, rhs, init_vars, steps)]
        weights = {k: v for k, v in self.options.items() if k.startswith("weight_")}
        a, y, w = dense_system(*inputs, central=True, **weights)
        wa = a * w[:, None]
        normal = wa.transpose(1, 2) @ wa
        beta = wa.transpose(1, 2) @ (w * y).unsqueeze(-1)
        u = torch.cholesky_solve(beta, torch.linalg.cholesky(normal)).squeeze(-1)
        u = u.reshape(coefficients.shape[0], self.n_step, self.n_dim, self.order + 1)
        return u.to(solve_dtype if self.double_ret else torch.float32)

    def _derivatives(self, u):
        """u (..., K) -> u0, u1, u2 (zeros when order is 1; the original fails there)."""
        u2 = u[..., 2] if self.order >= 2 else torch.zeros_like(u[..., 0])
        return u[..., 0], u[..., 1], u2

    def extra_repr(self) -> str:
        names = (
            "bs",
            "order",
            "n_ind_dim",
            "n_dim",
            "n_equations",
            "n_iv",
            "n_iv_steps",
            "n_step",
            "central_diff",
            "solver_dbl",
            "double_ret",
        )
        return ", ".join(f"{n}={getattr(self, n)}" for n in names)


class ODEINDLayer(_MNNLayer):
    """`bs · n_ind_dim` independent scalar linear ODEs, as alpz/mech-nn's ODEINDLayer.

    The constructor takes the original's arguments with its defaults (README table), plus
    keyword-only S-MNN options `weight_equation`, `weight_init`, `weight_smooth`, `method`
    (see `smnn.ode_forward`).

    forward(coeffs (bs, n_ind_dim, n_step, order+1), rhs (bs, n_ind_dim, n_step),
    iv_rhs (bs, n_ind_dim, n_iv_steps, n_iv) or None, steps (bs, n_ind_dim, n_step-1)),
    any shapes with those numbers of values, -> (u0, u1, u2, eps, steps): u_k
    (bs, n_ind_dim, n_step) the k-th derivative, eps (bs·n_ind_dim,) zeros, steps the input
    reshaped to (bs·n_ind_dim, n_step-1, 1) (float64 when solver_dbl), as the original.
    """

    def __init__(
        self,
        bs,
        order,
        n_ind_dim,
        n_iv,
        n_step,
        n_iv_steps,
        solver_dbl=True,
        gamma=0.5,
        alpha=0.1,
        central_diff=True,
        double_ret=False,
        device=None,
        *,
        weight_equation=1.0,
        weight_init=1.0,
        weight_smooth=1.0,
        method="auto",
    ):
        super().__init__()
        sizes = dict(
            bs=bs, order=order, n_ind_dim=n_ind_dim, n_iv=n_iv, n_step=n_step, n_iv_steps=n_iv_steps
        )
        self._setup(
            sizes,
            solver_dbl=solver_dbl,
            gamma=gamma,
            alpha=alpha,
            central=central_diff,
            double_ret=double_ret,
            device=device,
            extra=dict(
                weight_equation=weight_equation,
                weight_init=weight_init,
                weight_smooth=weight_smooth,
                method=method,
            ),
        )
        self.n_dim = self.n_equations = 1

    def forward(self, coeffs, rhs, iv_rhs, steps):
        m, t, k = self.bs * self.n_ind_dim, self.n_step, self.order + 1
        if iv_rhs is not None:
            iv_rhs = iv_rhs.reshape(m, self.n_iv_steps, 1, self.n_iv)
        steps = steps.reshape(m, t - 1, 1)
        if self.solver_dbl:
            steps = steps.double()
        u = self._solve(coeffs.reshape(m, t, 1, 1, k), rhs.reshape(m, t, 1), iv_rhs, steps[..., 0])
        u0, u1, u2 = self._derivatives(u.reshape(self.bs, self.n_ind_dim, t, k))
        return u0, u1, u2, u0.new_zeros(m), steps


class ODESYSLayer(_MNNLayer):
    """Systems of `n_equations` linear ODEs in `n_dim` states, as alpz/mech-nn's ODESYSLayer.

    The constructor takes the original's arguments with its defaults (README table), plus
    keyword-only S-MNN options `weight_equation`, `weight_init`, `weight_smooth`, `method`,
    and `step_dims`: the original takes a step per state dimension (steps (…, n_step-1,
    n_dim)); S-MNN has one step per interval. "mean" (default) averages them over the
    dimensions, as the Mechanistic Identifier's solver does, warning when they differ;
    "error" raises instead; "per_dim" uses each dimension's steps in its own smoothness and
    central rows, as the original does, through a dense solve (O((n_step·n_dim·(order+1))³)
    per problem, as the original's; no `method`).

    forward(coeffs (bs, n_ind_dim, n_equations, n_step, n_dim, order+1),
    rhs (bs, n_ind_dim, n_equations, n_step), iv_rhs (bs, n_ind_dim, n_iv_steps, n_dim, n_iv)
    or None, steps (bs, n_ind_dim, n_step-1, n_dim)), any shapes with those numbers of
    values, -> (u0, u1, u2, eps, u): u_k (bs, n_ind_dim, n_step, n_dim), eps (bs·n_ind_dim,)
    zeros, u (bs, n_ind_dim, n_step, n_dim, order+1).
    """

    def __init__(
        self,
        bs,
        order,
        n_ind_dim,
        n_dim,
        n_equations,
        n_iv,
        n_iv_steps,
        n_step,
        periodic_boundary=False,
        solver_dbl=True,
        gamma=0.5,
        alpha=0.1,
        double_ret=True,
        device=None,
        *,
        weight_equation=1.0,
        weight_init=1.0,
        weight_smooth=1.0,
        method="auto",
        step_dims="mean",
    ):
        super().__init__()
        if periodic_boundary:
            raise ValueError(
                "periodic_boundary: S-MNN solves initial-value problems without wrap-around "
                "smoothness rows; only periodic_boundary=False is supported"
            )
        if step_dims not in ("mean", "error", "per_dim"):
            raise ValueError(
                f"step_dims: expected 'mean', 'error' or 'per_dim', received {step_dims!r}"
            )
        sizes = dict(
            bs=bs,
            order=order,
            n_ind_dim=n_ind_dim,
            n_dim=n_dim,
            n_equations=n_equations,
            n_iv=n_iv,
            n_iv_steps=n_iv_steps,
            n_step=n_step,
        )
        self._setup(
            sizes,
            solver_dbl=solver_dbl,
            gamma=gamma,
            alpha=alpha,
            central=True,
            double_ret=double_ret,
            device=device,
            extra=dict(
                weight_equation=weight_equation,
                weight_init=weight_init,
                weight_smooth=weight_smooth,
                method=method,
            ),
        )
        self.periodic_boundary, self.step_dims = periodic_boundary, step_dims

    def forward(self, coeffs, rhs, iv_rhs, steps):
        m, e, t, d, k = (
            self.bs * self.n_ind_dim,
            self.n_equations,
            self.n_step,
            self.n_dim,
            self.order + 1,
        )
        coefficients = coeffs.reshape(m, e, t, d, k).transpose(1, 2)  # (M, T, E, D, K)
        rhs = rhs.reshape(m, e, t).transpose(1, 2)  # (M, T, E)
        if iv_rhs is not None:
            iv_rhs = iv_rhs.reshape(m, self.n_iv_steps, d, self.n_iv)
        steps = steps.reshape(m, t - 1, d)
        if self.step_dims == "per_dim":
            u = self._solve_dense_per_dim(coefficients, rhs, iv_rhs, steps)
            u = u.reshape(self.bs, self.n_ind_dim, t, d, k)
            return *self._derivatives(u), u.new_zeros(m), u
        if d > 1 and not torch.equal(steps.amax(-1), steps.amin(-1)):
            message = (
                "steps: the original MNN uses a step per state dimension; S-MNN has one step "
                "per interval"
            )
            if self.step_dims == "error":
                raise ValueError(f"{message}, and these differ across n_dim={d}")
            warnings.warn(f"{message}: averaging the {d} dimensions' steps", stacklevel=2)
        u = self._solve(coefficients, rhs, iv_rhs, steps.mean(-1))
        u = u.reshape(self.bs, self.n_ind_dim, t, d, k)
        return *self._derivatives(u), u.new_zeros(m), u
