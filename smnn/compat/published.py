"""`ode_forward` with the published S-MNN signature (IST-DASLab/ScalableMNN, `smnn.py`).

Code written for the published implementation runs with only its import changed:
`from smnn.compat.published import ode_forward`. It solves with `smnn.ode_forward`; what each
argument does here: `smnn/compat/_tables.py` and README.
"""

from __future__ import annotations

import torch

from smnn._ode import ode_forward as _ode_forward

__all__ = ["ode_forward"]

# the step dim's position from the end, per input, in the step-last layout
_STEP_DIM = {"coefficients": -4, "rhs_equation": -2, "init_vars": -3, "steps": -1}


def _step_size(name: str, x: torch.Tensor, want: int, allowed: tuple[int, ...]) -> torch.Tensor:
    """Check x's step dim is one of `allowed` and expand a step dim of 1 to `want`."""
    dim = _STEP_DIM[name]
    if x.dim() < -dim:
        raise ValueError(f"{name}: expected at least {-dim} dims, received shape {tuple(x.shape)}")
    size = x.shape[dim]
    if size not in allowed:
        raise ValueError(
            f"{name}: expected a step dim (dim {dim}) of {' or '.join(map(str, allowed))}, "
            f"received {size}"
        )
    if size == 1 and want != 1:
        shape = list(x.shape)
        shape[dim] = want
        x = x.expand(shape)
    return x


def ode_forward(
    coefficients: torch.Tensor,
    rhs_equation: torch.Tensor,
    init_vars: torch.Tensor,
    steps: torch.Tensor,
    n_steps: int | None = None,
    n_init_var_steps: int | None = None,
    is_step_dim_first: bool = False,
    weight_equation: float = 1.0,
    weight_init_var: float = 1.0,
    weight_smooth: float = 1.0,
    enable_central_smoothness: bool = False,
    prefer_cuda_graph: bool = True,
    frozen_lhs_cache_version: int = 0,
    *,
    method: str = "auto",
) -> torch.Tensor:
    """The published S-MNN `ode_forward`, solved by `smnn.ode_forward`.

    Args:
        coefficients: (..., T or 1, E, D, K); rhs_equation: (..., T or 1, E);
            init_vars: (..., S or 1, D, J); steps: (..., T-1 or 1). With is_step_dim_first,
            the step dim is the first dim of each instead.
        n_steps: T, needed when no input has a full step dim (default: steps' size + 1).
        n_init_var_steps: S (default: init_vars' step size).
        weight_equation, weight_init_var, weight_smooth: row weights.
        enable_central_smoothness: add the central-difference rows.
        prefer_cuda_graph, frozen_lhs_cache_version: the published solver's launch and cache
            options; accepted, no effect on the numbers (sstcast factorises every call).
        method: the sstcast solver method (keyword-only; see `smnn.METHODS`).

    Returns:
        u: (..., T, D, K), or (T, ..., D, K) with is_step_dim_first.
    """
    del prefer_cuda_graph, frozen_lhs_cache_version  # performance options (see docstring)
    tensors = {
        "coefficients": coefficients,
        "rhs_equation": rhs_equation,
        "init_vars": init_vars,
        "steps": steps,
    }
    if is_step_dim_first:
        tensors = {
            n: torch.movedim(x, 0, _STEP_DIM[n]) if x.dim() >= -_STEP_DIM[n] else x
            for n, x in tensors.items()
        }
    t = tensors["steps"].shape[-1] + 1 if n_steps is None else n_steps
    if isinstance(t, bool) or not isinstance(t, int) or t < 2:
        raise ValueError(f"n_steps: expected an integer >= 2, received {t!r}")
    s = tensors["init_vars"].shape[-3] if n_init_var_steps is None else n_init_var_steps
    if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= t:
        raise ValueError(f"n_init_var_steps: expected an integer in [0, {t}], received {s!r}")
    wanted = {"coefficients": t, "rhs_equation": t, "init_vars": s, "steps": t - 1}
    tensors = {n: _step_size(n, x, wanted[n], (wanted[n], 1)) for n, x in tensors.items()}
    u = _ode_forward(
        tensors["coefficients"],
        tensors["rhs_equation"],
        tensors["init_vars"],
        tensors["steps"],
        weight_equation=weight_equation,
        weight_init=weight_init_var,
        weight_smooth=weight_smooth,
        central=enable_central_smoothness,
        method=method,
    )
    return torch.movedim(u, -3, 0) if is_step_dim_first else u
