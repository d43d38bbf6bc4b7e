"""Input gradients from the solution x and the adjoint λ = M⁻¹g (implicit differentiation).

For x = M⁻¹β with M = AᵀW²A and β = AᵀW²y, a cotangent g on x gives, for any input θ,

    dL/dθ = λᵀ(∂β/∂θ − ∂M/∂θ · x) = −∂/∂θ ⟨W A λ, W(A x − y)⟩   (λ, x held fixed),

i.e. ∂β = λ and ∂M = −λxᵀ contracted with the assembly. Written out per row group, so no
(N, T, b, b) gradient and no autograd graph is formed: a few passes over (N, T, D, K) data.
"""

from __future__ import annotations

import torch

from smnn._assemble import step_powers, taylor_rows
from smnn._validate import Problem


def _small_matmul(y: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """y (..., K) @ m (K, K') as one tall 2-D GEMM (batched tiny matmuls are slow on CPU)."""
    return (y.reshape(-1, y.shape[-1]) @ m).view(*y.shape[:-1], m.shape[-1])


def input_gradients(p: Problem, x: torch.Tensor, lam: torch.Tensor, central: bool):
    """Gradients of the four canonical inputs.

    Args:
        p: the canonical problem (coefficients (N, T, E, D, K), rhs (N, T, E),
            init_vars (N, S, D, J), steps (N, T-1)).
        x: (N, T, D, K), the solution; lam: (N, T, D, K), M⁻¹ applied to the cotangent.

    Returns:
        (grad_coefficients, grad_rhs, grad_init_vars, grad_steps), shaped like p's tensors.
    """
    k_len, s_len, j_len = p.k_len, p.s_len, p.j_len
    w_eq2, w_iv2, w_sm2 = p.weight_equation**2, p.weight_init**2, p.weight_smooth**2

    # Equation rows: −w²(c·λ)(c·x − r).
    c = p.coefficients
    res_lam = (c * lam.unsqueeze(2)).sum(dim=(-2, -1))  # (N, T, E)
    res_x = (c * x.unsqueeze(2)).sum(dim=(-2, -1)) - p.rhs  # (N, T, E)
    grad_c = (res_lam[..., None, None] * x.unsqueeze(2)).add_(
        res_x[..., None, None] * lam.unsqueeze(2)
    )
    grad_c.mul_(-w_eq2)
    grad_r = w_eq2 * res_lam

    # Initial-value rows: −w² λ·(x − v).
    grad_v = w_iv2 * lam[:, :s_len, :, :j_len]

    # Smoothness rows: −w² z_λᵀ G z_x, z = [h^o x_t, h^o x_{t+1}], G = PᵀP (2K × 2K).
    pa, pb = taylor_rows(k_len, central, x.dtype, x.device)
    g_aa, g_ab, g_bb = pa.T @ pa, pa.T @ pb, pb.T @ pb
    hp = step_powers(p.steps, k_len)  # (N, T-1, K)
    hpd = hp.unsqueeze(2)  # (N, T-1, 1, K)
    xa, xb, la, lb = x[:, :-1], x[:, 1:], lam[:, :-1], lam[:, 1:]
    ya, yb, za, zb = xa * hpd, xb * hpd, la * hpd, lb * hpd
    grad_hp = la * (_small_matmul(ya, g_aa) + _small_matmul(yb, g_ab.T))
    grad_hp += lb * (_small_matmul(ya, g_ab) + _small_matmul(yb, g_bb))
    grad_hp += xa * (_small_matmul(za, g_aa) + _small_matmul(zb, g_ab.T))
    grad_hp += xb * (_small_matmul(za, g_ab) + _small_matmul(zb, g_bb))
    grad_hp = grad_hp.sum(dim=2).mul_(-w_sm2)  # (N, T-1, K)
    # d(h^o)/dh = o h^(o-1).
    orders = torch.arange(1, k_len, dtype=x.dtype, device=x.device)
    grad_h = (grad_hp[..., 1:] * hp[..., :-1] * orders).sum(-1)  # (N, T-1)

    if central:
        # Central rows: −w² (p a_λ + q b_λ)(p a_x + q b_x), p = H^{K-3}, q = H^{K-2}.
        big_h = p.steps[:, :-1] + p.steps[:, 1:]  # (N, T-2)
        pc, qc = big_h ** (k_len - 3), big_h ** (k_len - 2)
        a_x = x[:, :-2, :, k_len - 2] - x[:, 2:, :, k_len - 2]  # (N, T-2, D)
        a_l = lam[:, :-2, :, k_len - 2] - lam[:, 2:, :, k_len - 2]
        b_x, b_l = x[:, 1:-1, :, k_len - 1], lam[:, 1:-1, :, k_len - 1]
        row_x = pc.unsqueeze(-1) * a_x + qc.unsqueeze(-1) * b_x
        row_l = pc.unsqueeze(-1) * a_l + qc.unsqueeze(-1) * b_l
        grad_p = -w_sm2 * (a_l * row_x + a_x * row_l).sum(-1)
        grad_q = -w_sm2 * (b_l * row_x + b_x * row_l).sum(-1)
        grad_big_h = grad_p * (k_len - 3) * big_h ** (k_len - 4) + grad_q * (k_len - 2) * (
            big_h ** (k_len - 3)
        )
        grad_h[:, :-1] += grad_big_h
        grad_h[:, 1:] += grad_big_h
    return grad_c, grad_r, grad_v, grad_h
