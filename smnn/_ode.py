"""`ode_forward`, the public solve: validate, optionally up-cast, solve, reshape."""

from __future__ import annotations

import torch

from smnn._solve import choose_method, solve
from smnn._validate import SolveError, canonicalise, check_values

# Methods whose kernels test the values themselves (step sizes > 0; any inf or NaN ends
# in a pivot or the solution, which they test too).
SELF_CHECKING = {"compiled"}


def ode_forward(
    coefficients: torch.Tensor,
    rhs: torch.Tensor,
    init_vars: torch.Tensor,
    steps: torch.Tensor,
    *,
    weight_equation: float = 1.0,
    weight_init: float = 1.0,
    weight_smooth: float = 1.0,
    central: bool = False,
    method: str = "auto",
    solve_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Solve the linear ODE least-squares problem of S-MNN (docs/design.md §2) in O(T) time.

    The ODE Σ_{d,k} c[t,e,d,k] u[t,d,k] = r[t,e] (one equation per e), initial values
    u[t,d,k] = v[t,d,k] for t < S, k < J, and Taylor smoothness rows between steps are all
    soft least-squares rows, weighted by `weight_equation`, `weight_init`, `weight_smooth`.

    Args:
        coefficients: (..., T or 1, E, D, K) ODE coefficients, K = order + 1 >= 2.
        rhs: (..., T or 1, E) right-hand sides.
        init_vars: (..., S, D, J) initial values of the first J orders at the first S steps
            (S may be 0; J <= K).
        steps: (..., T-1 or 1) step sizes h_t > 0.
        central: add the central-difference rows (the S-MNN "central" variant).
        method: "auto" (the measured fastest for the shape and device), or a method name:
            "compiled" (CPU), "sequential" or "parallel" (any device); see `smnn.METHODS`.
        solve_dtype: dtype to assemble and solve in. Default (None): float64, also for
            float32 inputs, because the normal equations square the condition number and
            float32 loses all digits for small steps at high order (cond(M) ~ h^(2-2K));
            pass torch.float32 to solve in float32 anyway. The result has the inputs' dtype.

    Returns:
        u: (..., T, D, K), u[..., t, d, k] the k-th derivative of state d at step t; the
        leading dims are the broadcast of the inputs' leading dims. Differentiable in all four
        inputs (implicit backward reusing the factorisation). Systems whose coefficients
        and steps broadcast along trailing batch dims (size 1 there: several right-hand
        sides or initial states of one ODE) share a matrix; "compiled" factorises it once.

    Raises:
        TypeError/ValueError for malformed input; SolveError (a ValueError) for non-finite
        values or a normal matrix that is not numerically positive definite, the same from
        every method. An empty batch returns an empty u.
    """
    p = canonicalise(
        coefficients,
        rhs,
        init_vars,
        steps,
        weight_equation=weight_equation,
        weight_init=weight_init,
        weight_smooth=weight_smooth,
        values=False,
    )
    if solve_dtype is None:
        solve_dtype = torch.float64  # the automatic float32 fallback (see `solve_dtype`)
    if solve_dtype not in (torch.float32, torch.float64):
        raise TypeError(
            f"solve_dtype: expected torch.float32, torch.float64 or None, received {solve_dtype}"
        )
    n, t_len, _, d_len, k_len = p.rhs.shape[0], *p.coefficients.shape[1:]
    method = choose_method(method, n, t_len, d_len * k_len, p.coefficients.device)
    inputs = (coefficients, rhs, init_vars, steps)
    if method not in SELF_CHECKING:
        check_values(*inputs)
        return _shaped(solve(p, central, method, solve_dtype), p)
    # The passes over the inputs, up to ~10 % of a solve at the SST shape with the spin
    # of torch's OpenMP worker they leave behind (benchmarks/solve_overheads.py), are made
    # only to name the bad input when a solve fails.
    try:
        u = solve(p, central, method, solve_dtype)
    except SolveError as error:
        try:
            check_values(*inputs)
        except ValueError as named:  # SolveError, or ValueError for a step not > 0
            raise named from None
        raise error
    return _shaped(u, p)


def _shaped(u: torch.Tensor, p) -> torch.Tensor:
    """u (N, T, D, K) in the inputs' dtype -> (*batch_shape, T, D, K)."""
    shape = (*p.batch_shape, *u.shape[1:])
    return u if u.shape == shape else u.reshape(shape)
