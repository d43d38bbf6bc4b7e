"""Shared makers for the smnn tests: random well-posed problems and an error measure."""

from __future__ import annotations

import pytest
import torch


def make_problem(
    *,
    batch=(2,),
    t_len=7,
    e_len=1,
    d_len=1,
    k_len=3,
    s_len=1,
    j_len=2,
    seed=0,
    dtype=torch.float64,
    coeff_steps=None,
    rhs_steps=None,
    step_steps=None,
    batches=None,
    step_range=(0.05, 0.25),
):
    """Random, well-conditioned inputs (coefficients, rhs, init_vars, steps).

    `*_steps` override the step dim (e.g. 1 to broadcast); `batches` gives per-input batch
    shapes (coefficients, rhs, init_vars, steps) to test broadcasting.
    """
    g = torch.Generator().manual_seed(seed)
    bc, br, bv, bh = batches if batches is not None else (batch,) * 4
    tc = t_len if coeff_steps is None else coeff_steps
    tr = t_len if rhs_steps is None else rhs_steps
    th = t_len - 1 if step_steps is None else step_steps

    def randn(*shape):
        return torch.randn(*shape, generator=g, dtype=dtype)

    coefficients = randn(*bc, tc, e_len, d_len, k_len)
    coefficients[..., 0] += 1.5  # keep the zeroth-order term present
    rhs = randn(*br, tr, e_len)
    init_vars = randn(*bv, s_len, d_len, j_len)
    lo, hi = step_range
    steps = lo + (hi - lo) * torch.rand(*bh, th, generator=g, dtype=dtype)
    return coefficients, rhs, init_vars, steps


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    """‖got − want‖ / ‖want‖ (0 for two empty tensors)."""
    if want.numel() == 0:
        return 0.0
    return float((got - want).norm() / want.norm().clamp_min(1e-300))


@pytest.fixture
def problem_maker():
    return make_problem


@pytest.fixture
def rel_err():
    return relative_error
