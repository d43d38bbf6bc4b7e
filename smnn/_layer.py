"""`ODELayer`: the S-MNN solve as a torch.nn.Module with fixed options."""

from __future__ import annotations

import torch

from smnn._ode import ode_forward


class ODELayer(torch.nn.Module):
    """A parameter-free layer solving the S-MNN problem for the ODE parameters it is given.

    Args:
        central: use the central-difference variant.
        weight_equation, weight_init, weight_smooth: row weights (see `ode_forward`).
        method: solver method ("auto" or a registered name).
        solve_dtype: dtype for the internal solve (None: float64, see `ode_forward`).

    forward(coefficients (..., T, E, D, K), rhs (..., T, E), init_vars (..., S, D, J),
    steps (..., T-1)) -> u (..., T, D, K); step dims of size 1 broadcast.
    """

    def __init__(
        self,
        *,
        central: bool = False,
        weight_equation: float = 1.0,
        weight_init: float = 1.0,
        weight_smooth: float = 1.0,
        method: str = "auto",
        solve_dtype: torch.dtype | None = None,
    ):
        super().__init__()
        self.central = central
        self.weight_equation = weight_equation
        self.weight_init = weight_init
        self.weight_smooth = weight_smooth
        self.method = method
        self.solve_dtype = solve_dtype

    def forward(
        self,
        coefficients: torch.Tensor,
        rhs: torch.Tensor,
        init_vars: torch.Tensor,
        steps: torch.Tensor,
    ) -> torch.Tensor:
        return ode_forward(
            coefficients,
            rhs,
            init_vars,
            steps,
            weight_equation=self.weight_equation,
            weight_init=self.weight_init,
            weight_smooth=self.weight_smooth,
            central=self.central,
            method=self.method,
            solve_dtype=self.solve_dtype,
        )

    def extra_repr(self) -> str:
        return f"central={self.central}, method={self.method!r}"
