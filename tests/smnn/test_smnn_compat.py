"""The MNN-compatible ODEINDLayer maps the original interface onto ode_forward."""

import pytest
import torch

from smnn import ode_forward
from smnn.compat import ODEINDLayer

from .conftest import relative_error


def mnn_inputs(bs=2, n_ind_dim=3, order=2, n_step=9, n_iv=2, n_iv_steps=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    coeffs = torch.randn(bs, n_ind_dim, n_step, order + 1, generator=g, dtype=torch.float64)
    coeffs[..., 0] += 1.5
    rhs = torch.randn(bs, n_ind_dim, n_step, generator=g, dtype=torch.float64)
    iv_rhs = torch.randn(bs, n_ind_dim, n_iv_steps * n_iv, generator=g, dtype=torch.float64)
    steps = 0.1 + 0.1 * torch.rand(bs, n_ind_dim, n_step - 1, generator=g, dtype=torch.float64)
    return coeffs, rhs, iv_rhs, steps


def test_mnn_layer_returns_the_original_outputs_from_the_smnn_solution():
    coeffs, rhs, iv_rhs, steps = mnn_inputs()
    layer = ODEINDLayer(bs=2, order=2, n_ind_dim=3, n_iv=2, n_step=9, n_iv_steps=1)
    u0, u1, u2, eps, steps_out = layer(coeffs, rhs, iv_rhs, steps)

    u = ode_forward(
        coeffs.reshape(6, 9, 1, 1, 3),
        rhs.reshape(6, 9, 1),
        iv_rhs.reshape(6, 1, 1, 2),
        steps.reshape(6, 8),
    ).reshape(2, 3, 9, 3)
    assert u0.shape == u1.shape == u2.shape == (2, 3, 9)
    assert relative_error(torch.stack([u0, u1, u2], -1), u) < 1e-14
    assert eps.shape == (6,) and not eps.any()
    assert steps_out.shape == (6, 8, 1)


def test_mnn_layer_initial_values_pin_the_first_step():
    coeffs, rhs, iv_rhs, steps = mnn_inputs(seed=1)
    layer = ODEINDLayer(2, 2, 3, 2, 9, 1, weight_init=100.0)
    u0, u1, *_ = layer(coeffs, rhs, iv_rhs, steps)
    assert torch.allclose(u0[..., 0], iv_rhs[..., 0], atol=1e-2)
    assert torch.allclose(u1[..., 0], iv_rhs[..., 1], atol=1e-2)


def test_mnn_layer_without_initial_values_and_first_order_gives_zero_u2():
    coeffs, rhs, _, steps = mnn_inputs(order=1, seed=2)
    layer = ODEINDLayer(2, 1, 3, 0, 9, 0)
    u0, u1, u2, _, _ = layer(coeffs, rhs, None, steps)
    assert u0.shape == (2, 3, 9) and torch.isfinite(u1).all()
    assert not u2.any()


def test_mnn_layer_gradients_reach_every_input():
    inputs = [x.requires_grad_() for x in mnn_inputs(seed=3)]
    u0, u1, u2, _, _ = ODEINDLayer(2, 2, 3, 2, 9, 1)(*inputs)
    (u0.sum() + u1.square().sum() + u2.mean()).backward()
    assert all(x.grad is not None and x.grad.abs().sum() > 0 for x in inputs)


def test_mnn_layer_rejects_a_bad_order():
    with pytest.raises(ValueError, match="order: expected an integer >= 1, received 0"):
        ODEINDLayer(1, 0, 1, 1, 5, 1)
