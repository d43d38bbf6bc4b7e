"""The solve as one autograd node: assemble, factor, solve; backward reuses the factor.

Forward (outside autograd): β, M from `_assemble.normal_equations`, x = M⁻¹β.
Backward, for a cotangent g on x: λ = M⁻¹g with the same factor (M is symmetric), then
∂β = λ, ∂M = −λxᵀ (DESIGN.md §2) contracted with the assembly, written out analytically
in `_adjoint.py` (no (N, T, b, b) gradient tensor is formed). Each call keeps its own
factor in its autograd context, so several forwards before one backward are fine.
"""

from __future__ import annotations

import torch

from smnn import _parallel, _sequential
from smnn._adjoint import input_gradients
from smnn._assemble import normal_equations
from smnn._validate import Problem

# Solver methods: modules with `factor(diag, bands) -> obj`, `obj.solve(rhs) -> x`.
METHODS = {"sequential": _sequential, "parallel": _parallel}


def choose_method(method: str, n: int, t_len: int, b: int, device: torch.device) -> str:
    """Resolve "auto" to a registered method for an (N, T, b) problem on `device`."""
    if method == "auto":
        return _auto_method(n, t_len, b, device)
    if method not in METHODS:
        raise ValueError(
            f"method: expected 'auto' or one of {sorted(METHODS)}, received {method!r}"
        )
    return method


# Crossover of "auto", measured (benchmarks/README.md, "auto crossover"): forward+backward,
# float64, D=1, K=3, T=208, 1 thread, process-CPU medians (`benchmarks/solver.py --sweep`):
#   B=512: sequential 0.186 s, parallel 0.108 s;  B=2,048: 0.370 / 0.322;
#   B=12,960: 1.909 / 3.218; at B=1 the parallel method wins 8x (T=100) to >100x (T=10,000).
# The ratio crosses 1 near B = 3,000-4,000. The sequential method pays a fixed cost per step
# (depth T), the parallel one moves ~2x more memory over log T levels, so sequential wins
# only once the batch makes both memory-bound. On CUDA the T rounds of launches always lose.
AUTO_SEQUENTIAL_MIN_BATCH_CPU = 4096


def _auto_method(n: int, t_len: int, b: int, device: torch.device) -> str:
    """ "sequential" for big batches on CPU, otherwise "parallel" (the measured crossover)."""
    if device.type == "cpu" and n >= AUTO_SEQUENTIAL_MIN_BATCH_CPU:
        return "sequential"
    return "parallel"


def _problem(like: Problem, c, r, v, h) -> Problem:
    return Problem(
        coefficients=c,
        rhs=r,
        init_vars=v,
        steps=h,
        batch_shape=like.batch_shape,
        weight_equation=like.weight_equation,
        weight_init=like.weight_init,
        weight_smooth=like.weight_smooth,
    )


class _SMNNSolve(torch.autograd.Function):
    """u = argmin ‖W(A(c, h) u − y(r, v))‖² for canonical inputs; u: (N, T, D, K)."""

    @staticmethod
    def forward(ctx, coefficients, rhs, init_vars, steps, like: Problem, central, method):
        p = _problem(like, coefficients, rhs, init_vars, steps)
        n, t_len, _, d_len, k_len = coefficients.shape
        diag, bands, beta = normal_equations(p, central)
        fac = METHODS[method].factor(diag, bands)
        x = fac.solve(beta).reshape(n, t_len, d_len, k_len)
        ctx.fac, ctx.like, ctx.central = fac, like, central
        ctx.save_for_backward(coefficients, rhs, init_vars, steps, x)
        return x

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_x):
        c, r, v, h, x = ctx.saved_tensors
        n, t_len, d_len, k_len = x.shape
        lam = ctx.fac.solve(grad_x.reshape(n, t_len, d_len * k_len)).reshape(x.shape)
        p = _problem(ctx.like, c, r, v, h)
        grads = input_gradients(p, x, lam, ctx.central)
        needs = ctx.needs_input_grad[:4]
        out = [g if need else None for g, need in zip(grads, needs, strict=True)]
        return (*out, None, None, None)


def solve(p: Problem, central: bool, method: str) -> torch.Tensor:
    """Solve a canonical problem: returns u (N, T, D, K), differentiable in p's tensors."""
    n, t_len, _, d_len, k_len = p.coefficients.shape
    name = choose_method(method, n, t_len, d_len * k_len, p.coefficients.device)
    return _SMNNSolve.apply(p.coefficients, p.rhs, p.init_vars, p.steps, p, bool(central), name)
