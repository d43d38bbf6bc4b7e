"""The Mechanistic Identifier network: DCT features, shapes, initial conditions, dtypes."""

import numpy as np
import pytest
import scipy.fft
import torch

from pipeline.model.config import ModelConfig, WindowConfig
from pipeline.model.network import MechanisticIdentifier, dct_matrix

WINDOW = WindowConfig(context=24, horizon=6)
SMALL = dict(n_dct=8, encoder_width=16, encoder_depth=2, latent_dim=4, decoder_width=16,
             init_steps=3, context_modes=2, level_window=0)
COV = 5 + 2 * 2  # month, location, two mode amplitudes and their tendencies


def test_dct_matrix_is_orthonormal_dct_ii():
    x = np.random.default_rng(0).normal(size=(3, 24))
    full = dct_matrix(24, 24)
    torch.testing.assert_close(full.T @ full, torch.eye(24, dtype=torch.float64))
    np.testing.assert_allclose((torch.from_numpy(x) @ full).numpy(),
                               scipy.fft.dct(x, type=2, norm="ortho", axis=-1), atol=1e-12)
    torch.testing.assert_close(dct_matrix(24, 5), full[:, :5])


@pytest.fixture
def model():
    torch.manual_seed(0)
    return MechanisticIdentifier(ModelConfig(**SMALL), WINDOW)


def test_forward_gives_a_forecast_per_lead_and_the_ode_parameters(model):
    context = torch.randn(5, 24)
    out = model(context, torch.randn(5, COV))
    t_len = 3 + 6
    assert out.forecast.shape == (5, 6)
    assert out.latent.shape == (5, 4)
    assert out.coefficients.shape == (5, t_len, 3)
    assert out.rhs.shape == (5, t_len)
    assert out.steps.shape == (5, t_len - 1)
    assert out.u.shape == (5, t_len, 3)
    assert ((out.steps >= 1e-3) & (out.steps < 1)).all()


def test_the_solution_passes_through_the_observed_initial_steps(model):
    context = torch.linspace(-1.0, 1.0, 24).repeat(4, 1)
    out = model(context, torch.zeros(4, COV))
    # the initial conditions are soft rows: close to, not exactly, the observations
    torch.testing.assert_close(out.u[:, :3, 0], context[:, -3:], atol=0.15, rtol=0)


def test_an_untrained_model_relaxes_anomalies_towards_climatology(model):
    context = torch.full((2, 24), 2.0)
    forecast = model(context, torch.zeros(2, COV)).forecast.detach()
    assert (forecast[:, -1].abs() < forecast[:, 0].abs()).all()


def test_with_a_level_window_an_untrained_model_relaxes_towards_the_recent_level():
    net = MechanisticIdentifier(ModelConfig(**{**SMALL, "level_window": 12}), WINDOW)
    context = torch.cat([torch.full((2, 12), -3.0), torch.full((2, 9), 1.0),
                         torch.full((2, 3), 3.0)], dim=1)  # level of the last 12 steps: 1.5
    out = net(context, torch.zeros(2, COV))
    level = 1.5
    torch.testing.assert_close(out.u[:, 2, 0], torch.full((2,), 3.0 - level), atol=0.15, rtol=0)
    gap = (out.forecast.detach() - level).abs()
    assert (gap[:, -1] < gap[:, 0]).all() and (gap[:, 0] < 3.0 - level).all()
    constant = net(torch.full((2, 24), 2.0), torch.zeros(2, COV)).forecast.detach()
    torch.testing.assert_close(constant, torch.full_like(constant, 2.0), atol=1e-3, rtol=0)


def test_gradients_reach_every_parameter_with_the_derivative_initial_condition():
    torch.manual_seed(1)
    net = MechanisticIdentifier(ModelConfig(**SMALL, init_derivative=True, order=3), WINDOW)
    out = net(torch.randn(6, 24), torch.randn(6, COV))
    out.forecast.pow(2).mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_float64_config_gives_a_float64_model():
    net = MechanisticIdentifier(ModelConfig(**SMALL, dtype="float64", covariates=False), WINDOW)
    out = net(torch.randn(2, 24))
    assert out.forecast.dtype == torch.float64
    assert all(p.dtype == torch.float64 for p in net.parameters())


def test_wrong_context_length_names_the_argument(model):
    with pytest.raises(ValueError, match="context"):
        model(torch.randn(2, 23), torch.randn(2, COV))
    with pytest.raises(ValueError, match="covariates"):
        model(torch.randn(2, 24))


def test_a_heavier_initial_condition_weight_pins_the_observations_tighter():
    context = torch.linspace(-1.0, 1.0, 24).repeat(3, 1)
    gaps = []
    for weight in (1.0, 30.0):
        torch.manual_seed(0)
        net = MechanisticIdentifier(ModelConfig(**SMALL, init_weight=weight), WINDOW)
        u = net(context, torch.zeros(3, COV)).u.detach()
        gaps.append(float((u[:, :3, 0] - context[:, -3:]).abs().max()))
    assert gaps[1] < gaps[0] / 5


def test_the_alignment_loss_adds_the_latent_distance_to_the_neighbour(model):
    from pipeline.model.train import _loss

    torch.manual_seed(2)
    batch = {
        "context": torch.randn(4, 24), "neighbour": torch.randn(4, 24),
        "covariates": torch.randn(4, COV), "target": torch.randn(4, 6),
        "mask": torch.ones(4, 6, dtype=torch.bool), "weight": torch.rand(4) + 0.5,
    }
    plain = _loss(model, batch, 0.0)
    aligned = _loss(model, batch, 0.5)
    z = model.encode(batch["context"], batch["covariates"])
    z_n = model.encode(batch["neighbour"], batch["covariates"])
    torch.testing.assert_close(aligned - plain, 0.5 * ((z - z_n) ** 2).mean())
    same = dict(batch, neighbour=batch["context"])
    torch.testing.assert_close(_loss(model, same, 0.5), plain)
