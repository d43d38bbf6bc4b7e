"""Closed-form linear ODEs: the S-MNN solution approaches the exact one as h shrinks."""

import math

import pytest
import torch

from smnn import ode_forward

# name: (coefficients on [u, u', ...], rhs, initial values [u(0), u'(0), ...], exact u(t))
OMEGA, ZETA, RC, VS, RATE = 2.0, 0.25, 0.5, 3.0, 1.5
WD = OMEGA * math.sqrt(1 - ZETA**2)
PROBLEMS = {
    "exponential_decay": ([RATE, 1.0], 0.0, [1.0], lambda t: torch.exp(-RATE * t)),
    "harmonic_oscillator": ([OMEGA**2, 0.0, 1.0], 0.0, [1.0, 0.0], lambda t: torch.cos(OMEGA * t)),
    "damped_oscillator": (
        [OMEGA**2, 2 * ZETA * OMEGA, 1.0],
        0.0,
        [1.0, 0.0],
        lambda t: (
            torch.exp(-ZETA * OMEGA * t)
            * (torch.cos(WD * t) + ZETA * OMEGA / WD * torch.sin(WD * t))
        ),
    ),
    "rc_circuit_charging": ([1.0, RC], VS, [0.0], lambda t: VS * (1 - torch.exp(-t / RC))),
    "third_order_cosh": ([0.0, -1.0, 0.0, 1.0], 0.0, [1.0, 0.0, 1.0], torch.cosh),
}


def solve_on_grid(name, n_steps, central=False, length=2.0):
    coeffs, rhs, init, _ = PROBLEMS[name]
    h = length / n_steps
    k_len, j_len = len(coeffs), len(init)
    coefficients = torch.tensor(coeffs, dtype=torch.float64).view(1, 1, 1, k_len)
    u = ode_forward(
        coefficients,
        torch.full((1, 1), rhs, dtype=torch.float64),
        torch.tensor(init, dtype=torch.float64).view(1, 1, j_len),
        torch.full((n_steps,), h, dtype=torch.float64),  # T - 1 steps fix T
        central=central,
    )
    times = torch.arange(n_steps + 1, dtype=torch.float64) * h
    return u[:, 0, 0], times


def max_error(name, n_steps, central=False):
    u, times = solve_on_grid(name, n_steps, central)
    return float((u - PROBLEMS[name][3](times)).abs().max())


@pytest.mark.parametrize("central", [False, True], ids=["default", "central"])
@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_error_against_the_exact_solution_shrinks_as_h_shrinks(name, central):
    coarse, medium, fine = (max_error(name, n, central) for n in (20, 40, 80))
    # Second order in h: halving h divides the error by about four.
    assert medium < 0.35 * coarse
    assert fine < 0.35 * medium
    assert fine < 1e-2
