"""The solve as one autograd node: assemble, factor, solve; backward reuses the factor.

Forward (outside autograd): β, M from `_assemble.normal_equations`, x = M⁻¹β.
Backward, for a cotangent g on x: λ = M⁻¹g with the same factor (M is symmetric), then

    dL/dθ = λᵀ(∂β/∂θ − ∂M/∂θ · x) = −∂/∂θ ⟨W A λ, W(A x − y)⟩   (λ, x held fixed)

which is ∂β = λ, ∂M = −λxᵀ (DESIGN.md §2) contracted with the assembly. It is evaluated by
autograd through the matrix-free rows (`weighted_residuals`), so no (N, T, b, b) gradient
tensor is ever formed. Each call keeps its own factor in its autograd context.
"""

from __future__ import annotations

import torch

from smnn import _sequential
from smnn._assemble import normal_equations, weighted_residuals
from smnn._validate import Problem

# Solver methods: modules with `factor(diag, bands) -> obj`, `obj.solve(rhs) -> x`.
METHODS = {"sequential": _sequential}


def choose_method(method: str, n: int, t_len: int, b: int, device: torch.device) -> str:
    """Resolve "auto" to a registered method for an (N, T, b) problem on `device`."""
    if method == "auto":
        return "sequential"
    if method not in METHODS:
        raise ValueError(
            f"method: expected 'auto' or one of {sorted(METHODS)}, received {method!r}"
        )
    return method


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
        lam = ctx.fac.solve(grad_x.reshape(n, t_len, d_len * k_len).contiguous())
        lam = lam.reshape(x.shape)
        needs = ctx.needs_input_grad[:4]
        with torch.enable_grad():
            leaves = [
                t.detach().requires_grad_(need) for t, need in zip((c, r, v, h), needs, strict=True)
            ]
            p = _problem(ctx.like, *leaves)
            res_lam = weighted_residuals(p, lam, ctx.central, with_rhs=False)
            res_x = weighted_residuals(p, x, ctx.central, with_rhs=True)
            objective = -sum((a * b).sum() for a, b in zip(res_lam, res_x, strict=True))
            wanted = [leaf for leaf, need in zip(leaves, needs, strict=True) if need]
            grads = iter(torch.autograd.grad(objective, wanted, allow_unused=True))
        out = [next(grads) if need else None for need in needs]
        out = [
            torch.zeros_like(t) if need and g is None else g
            for t, g, need in zip((c, r, v, h), out, needs, strict=True)
        ]
        return (*out, None, None, None)


def solve(p: Problem, central: bool, method: str) -> torch.Tensor:
    """Solve a canonical problem: returns u (N, T, D, K), differentiable in p's tensors."""
    n, t_len, _, d_len, k_len = p.coefficients.shape
    name = choose_method(method, n, t_len, d_len * k_len, p.coefficients.device)
    return _SMNNSolve.apply(p.coefficients, p.rhs, p.init_vars, p.steps, p, bool(central), name)
