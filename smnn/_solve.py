"""The solve as one autograd node: assemble, factor, solve; backward reuses the factor.

Forward (outside autograd): β, M from `_assemble.normal_equations`, x = M⁻¹β.
Backward, for a cotangent g on x: λ = M⁻¹g with the same factor (M is symmetric), then
∂β = λ, ∂M = −λxᵀ (docs/design.md §2) contracted with the assembly, written out analytically
in `_adjoint.py` (no (N, T, b, b) gradient tensor is formed). Each call keeps its own
factor in its autograd context, so several forwards before one backward are fine.
"""

from __future__ import annotations

import torch

from smnn import _compiled, _parallel, _sequential
from smnn._adjoint import input_gradients
from smnn._assemble import normal_equations
from smnn._validate import Problem

# Methods that assemble M in torch and factor it: modules with `factor(diag, bands) -> obj`,
# `obj.solve(rhs) -> x`; they run on any device and share the autograd node below.
ASSEMBLED = {"sequential": _sequential, "parallel": _parallel}
# Every method: name -> solve(problem, central, solve_dtype) -> u in the problem's dtype,
# differentiable.
METHODS = {
    "sequential": lambda p, central, dtype: _assembled_solve(p, central, "sequential", dtype),
    "parallel": lambda p, central, dtype: _assembled_solve(p, central, "parallel", dtype),
    "compiled": _compiled.solve,  # CPU only; reads and writes the problem's dtype itself
}


def choose_method(method: str, n: int, t_len: int, b: int, device: torch.device) -> str:
    """Resolve "auto" to a registered method for an (N, T, b) problem on `device`."""
    if method == "auto":
        return _auto_method(n, device)
    if method not in METHODS:
        raise ValueError(
            f"method: expected 'auto' or one of {sorted(METHODS)}, received {method!r}"
        )
    return method


# Methods that take a `Problem` whose systems share matrices (`Problem.shared`) as it is.
SHARED_MATRICES = {"compiled"}


# "auto", measured (benchmarks/README.md, "auto crossover"): forward+backward, float64,
# D=1, K=3, 2 threads, medians (`benchmarks/solver.py`). On CPU the compiled kernel wins at
# every measured shape: batches in SIMD lanes (SST shape 0.17 s vs 1.8 s), long sequences
# one per lane and split over the threads (B=8, T=30,000 0.055 s vs 0.142 s parallel; B=64,
# T=30,000 0.31 vs 1.81 s; B=1, T=100,000 0.02 vs 0.06 s). On CUDA only the torch methods
# run, and the T rounds of launches of "sequential" always lose to the log T levels of
# "parallel".
# Without numba (smnn needs only torch), CPU batches from this size go to "sequential": it
# wins once the batch makes both torch methods memory-bound (B=12,960: 1.9 s vs 3.2 s;
# B=2,048: 0.37 s vs 0.32 s; 1 thread, T=208).
AUTO_SEQUENTIAL_MIN_BATCH_CPU = 4096


def _auto_method(n: int, device: torch.device) -> str:
    """The measured fastest method for n systems on `device` (at any T and b, measured)."""
    if device.type != "cpu":
        return "parallel"
    if not _compiled.available():
        return "sequential" if n >= AUTO_SEQUENTIAL_MIN_BATCH_CPU else "parallel"
    return "compiled"


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
        fac = ASSEMBLED[method].factor(diag, bands)
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


def _assembled_solve(p: Problem, central: bool, method: str, dtype: torch.dtype):
    work = p.to(dtype)
    u = _SMNNSolve.apply(
        work.coefficients, work.rhs, work.init_vars, work.steps, work, bool(central), method
    )
    return u.to(p.coefficients.dtype)


def _empty_solution(p: Problem) -> torch.Tensor:
    """u (0, T, D, K) for an empty batch, attached to the inputs' graph so that a backward
    pass gives them empty gradients (each input's sum over no elements is 0)."""
    _, t_len, _, d_len, k_len = p.coefficients.shape
    link = sum(t.sum() for t in (p.coefficients, p.rhs, p.init_vars, p.steps))
    return p.coefficients.new_zeros((0, t_len, d_len, k_len)) + 0.0 * link


def solve(p: Problem, central: bool, method: str, solve_dtype: torch.dtype) -> torch.Tensor:
    """Solve a canonical problem in `solve_dtype`: returns u (N, T, D, K) in p's dtype,
    differentiable in p's tensors.

    An empty batch (N = 0) gives an empty u for every method, without running one.
    """
    n, t_len, _, d_len, k_len = p.rhs.shape[0], *p.coefficients.shape[1:]
    name = choose_method(method, n, t_len, d_len * k_len, p.coefficients.device)
    if n == 0:
        return _empty_solution(p.unshared())
    # Only the compiled kernels factorise a matrix once for the systems that share it.
    return METHODS[name](p if name in SHARED_MATRICES else p.unshared(), central, solve_dtype)
