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

# Elements per temporary when the batch is processed in chunks: small temporaries come from
# the allocator's free lists and stay in cache; large ones cost fresh pages on every call.
CHUNK_ELEMENTS = 1 << 18


def input_gradients(p: Problem, x: torch.Tensor, lam: torch.Tensor, central: bool):
    """Gradients of the four canonical inputs, computed over chunks of the batch.

    Same arguments and results as `_chunk_gradients`; the results are written into one
    preallocated tensor each.
    """
    n = x.shape[0]
    per_item = max(1, x[0].numel())
    chunk = max(1, CHUNK_ELEMENTS // per_item)
    if chunk >= n:
        return _chunk_gradients(p, x, lam, central)
    outs = [torch.empty_like(t) for t in (p.coefficients, p.rhs, p.init_vars, p.steps)]
    for start in range(0, n, chunk):
        part = slice(start, start + chunk)
        sub = Problem(
            coefficients=p.coefficients[part],
            rhs=p.rhs[part],
            init_vars=p.init_vars[part],
            steps=p.steps[part],
            batch_shape=p.batch_shape,
            weight_equation=p.weight_equation,
            weight_init=p.weight_init,
            weight_smooth=p.weight_smooth,
        )
        for out, grad in zip(outs, _chunk_gradients(sub, x[part], lam[part], central), strict=True):
            out[part] = grad
    return tuple(outs)


def _chunk_gradients(p: Problem, x: torch.Tensor, lam: torch.Tensor, central: bool):
    """Gradients of the four canonical inputs for one chunk of the batch.

    Args:
        p: the canonical problem (coefficients (N, T, E, D, K), rhs (N, T, E),
            init_vars (N, S, D, J), steps (N, T-1)).
        x: (N, T, D, K), the solution; lam: (N, T, D, K), M⁻¹ applied to the cotangent.

    Returns:
        (grad_coefficients, grad_rhs, grad_init_vars, grad_steps), shaped like p's tensors.

    Works batch-last: contractions over the tiny K and D dims become elementwise products
    over contiguous planes and one short-wide GEMM, not tiny matmuls or reductions over
    trailing dims of size 3 (both very slow on CPU).
    """
    k_len, s_len, j_len = p.k_len, p.s_len, p.j_len
    w_eq2, w_iv2, w_sm2 = p.weight_equation**2, p.weight_init**2, p.weight_smooth**2

    # Equation rows: −w²(c·λ)(c·x − r).
    c = p.coefficients.permute(2, 3, 4, 1, 0).contiguous()  # (E, D, K, T, N)
    x_l = x.permute(2, 3, 1, 0).contiguous()  # (D, K, T, N)
    lam_l = lam.permute(2, 3, 1, 0).contiguous()
    res_lam = (c * lam_l).sum(dim=(1, 2))  # (E, T, N)
    res_x = (c * x_l).sum(dim=(1, 2)) - p.rhs.permute(2, 1, 0)  # (E, T, N)
    grad_c = res_lam[:, None, None] * x_l
    grad_c.addcmul_(res_x[:, None, None], lam_l).mul_(-w_eq2)  # (E, D, K, T, N)
    grad_r = w_eq2 * res_lam  # (E, T, N)

    # Initial-value rows: −w² λ·(x − v).
    grad_v = w_iv2 * lam[:, :s_len, :, :j_len]

    # Smoothness rows: −w² z_λᵀ G z_x, z = [h^o x_t, h^o x_{t+1}], G = PᵀP (2K × 2K).
    pa, pb = taylor_rows(k_len, central, x.dtype, x.device)
    pab = torch.cat([pa, pb], dim=1)
    gram = pab.T @ pab  # (2K, 2K)
    hp = step_powers(p.steps.T, k_len, dim=0).unsqueeze(2)  # (K, T-1, 1, N)
    xk = x_l.transpose(0, 1)  # (K, D, T, N), a view
    lk = lam_l.transpose(0, 1)
    xa, xb = xk[:, :, :-1], xk[:, :, 1:]  # (K, D, T-1, N)
    la, lb = lk[:, :, :-1], lk[:, :, 1:]
    hpd = hp.transpose(1, 2)  # (K, 1, T-1, N)
    z_x = torch.cat([xa * hpd, xb * hpd])  # (2K, D, T-1, N)
    z_l = torch.cat([la * hpd, lb * hpd])
    g_x = (gram @ z_x.view(2 * k_len, -1)).view(z_x.shape)
    g_l = (gram @ z_l.view(2 * k_len, -1)).view(z_l.shape)
    grad_hp = la * g_x[:k_len]
    grad_hp.addcmul_(lb, g_x[k_len:]).addcmul_(xa, g_l[:k_len]).addcmul_(xb, g_l[k_len:])
    grad_hp = grad_hp.sum(dim=1)  # (K, T-1, N)
    # d(h^o)/dh = o h^(o-1).
    grad_h = torch.zeros_like(grad_hp[0])
    for o in range(1, k_len):
        grad_h.addcmul_(grad_hp[o], hp[o - 1, :, 0], value=-w_sm2 * o)
    grad_h = grad_h.T  # (N, T-1)

    if central:
        # Central rows: −w² (p a_λ + q b_λ)(p a_x + q b_x), p = H^{K-3}, q = H^{K-2}.
        grad_h = grad_h.contiguous()
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
    return grad_c.permute(4, 3, 0, 1, 2), grad_r.permute(2, 1, 0), grad_v, grad_h
