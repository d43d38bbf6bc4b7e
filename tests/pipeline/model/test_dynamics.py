"""Mode dynamics: the LIM special case, training on a seasonal linear system, the blend,
and their use in a run's forecasts."""

import shutil

import numpy as np
import pytest
import torch
from scipy.linalg import expm

from pipeline.forecast_store import open_forecast
from pipeline.model.dynamics import (
    ModeDynamics,
    blend,
    blend_weights,
    fit_mode_dynamics,
    last_blended_lead,
    lim_generator,
    warm_up,
)
from pipeline.model.forecast import hindcast
from pipeline.model.run import DYNAMICS, load_dynamics
from smnn import _kernels

GENERATOR = np.array([[-0.05, 0.20], [-0.20, -0.05]])  # a damped 31-step oscillation


def simulate(generator_at, steps: int, seed: int = 0, noise: float = 0.3) -> np.ndarray:
    """a(t+1) = expm(L(t)) a(t) + noise: (steps, M); L(t) of period 12."""
    rng = np.random.default_rng(seed)
    m = generator_at(0).shape[0]
    propagators = [expm(generator_at(s)) for s in range(12)]  # generators repeat yearly
    a = np.zeros((steps, m))
    for t in range(1, steps):
        a[t] = propagators[(t - 1) % 12] @ a[t - 1] + noise * rng.standard_normal(m)
    return a


def test_the_lim_generator_of_a_linear_system_is_recovered():
    a = simulate(lambda t: GENERATOR, 20_000)
    np.testing.assert_allclose(lim_generator(a), GENERATOR, atol=0.02)


def test_with_constant_coefficients_the_solve_is_the_lim_forecast():
    slow = GENERATOR / 4  # time scales of 20-80 steps, as the SST modes' at monthly steps
    model = ModeDynamics(2, 12, harmonics=2, generator=slow)
    a0 = np.array([[1.0, 0.0], [0.3, -0.7]])
    with torch.no_grad():
        out = model(torch.from_numpy(a0), torch.tensor([0, 5]), 24).numpy()
    lim = np.stack([a0 @ expm(slow * lead).T for lead in range(1, 25)], axis=1)
    # S-MNN's unit-step finite differences against the exact exponential: close, not equal
    np.testing.assert_allclose(out, lim, atol=0.03)


def test_solving_once_per_season_gives_each_issues_trajectory_and_gradients():
    rng = np.random.default_rng(2)
    model = ModeDynamics(2, 12, harmonics=1, generator=GENERATOR / 4)
    with torch.no_grad():  # a seasonal cycle and a forcing, so that both must be carried
        model.seasonal.copy_(torch.from_numpy(0.05 * rng.standard_normal((2, 2, 2))))
        model.forcing.copy_(torch.from_numpy(0.3 * rng.standard_normal((3, 2))))
    a0 = torch.from_numpy(rng.standard_normal((30, 2)))
    season0 = torch.from_numpy(rng.choice([0, 4, 7], 30))
    solved = []
    model.ode.register_forward_pre_hook(  # (matrices, right-hand sides of each)
        lambda _, inputs: solved.append((len(inputs[0]), inputs[2].shape[1])))
    weights = torch.from_numpy(rng.standard_normal((30, 6, 2)))

    def run(forecast):
        model.zero_grad()
        out = forecast()
        (out * weights).sum().backward()
        return out.detach(), [p.grad.clone() for p in model.parameters()]

    per_issue, per_issue_grads = run(
        lambda: model._trajectories(a0[:, None], season0, torch.ones(30, 1, dtype=torch.float64),
                                    6)[:, 0])
    grouped, grouped_grads = run(lambda: model(a0, season0, 6))
    assert solved == [(30, 1), (3, 3)]  # 3 seasons x (the forcing + 2 unit initial states)
    np.testing.assert_allclose(grouped, per_issue, rtol=1e-10, atol=1e-12)
    for got, want in zip(grouped_grads, per_issue_grads, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    model(a0[:4], season0[:4], 6)  # 4 issues: fewer solves one by one
    assert solved[-1] == (4, 1)


def test_training_learns_a_seasonal_growth_rate_the_lim_cannot_hold():
    def generator_at(t):  # damping that follows the season: strong in one half-year
        return GENERATOR + np.eye(2) * 0.3 * np.sin(2 * np.pi * (t % 12) / 12)

    a = simulate(generator_at, 1_200, seed=3)
    seasons = np.arange(len(a)) % 12
    std = a[:900].std(0)
    model, summary = fit_mode_dynamics(
        a, std, seasons, 12, fit_end=899, val_end=1_199, horizon=12, harmonics=1, steps=200,
        lr=1e-2)
    assert summary["val_loss"] < 0.9 * summary["lim_val_loss"]
    assert isinstance(model, ModeDynamics) and not model.training


def test_the_warm_up_compiles_every_kernel_a_default_fit_and_forecast_use():
    def compiled():
        return {name: len(getattr(_kernels, name).signatures) for name in ("forward", "backward")}

    warm_up()  # the default config's 12 modes, 2 harmonics, horizon 48
    before = compiled()
    rng = np.random.default_rng(5)
    a = np.zeros((300, 12))
    for t in range(1, len(a)):
        a[t] = 0.8 * a[t - 1] + rng.standard_normal(12)
    model, _ = fit_mode_dynamics(a, a.std(0), np.arange(300) % 12, 12, fit_end=239,
                                 val_end=299, horizon=48, harmonics=2, steps=2, lr=1e-3)
    with torch.no_grad():
        model(torch.from_numpy(a[-3:]), torch.arange(3), 48)
    assert compiled() == before


def test_blend_weights_hold_then_taper():
    np.testing.assert_allclose(blend_weights(np.array([1, 12, 18, 24, 30]), 12),
                               [1, 1, 0.5, 0, 0])
    assert not blend_weights(np.arange(1, 5), 0).any()


@pytest.mark.parametrize("mode_leads", [0, 1, 2, 12])
def test_the_last_blended_lead_is_the_last_with_weight(mode_leads):
    leads = np.arange(1, 60)
    used = leads[blend_weights(leads, mode_leads) > 0]
    assert last_blended_lead(mode_leads) == (used.max() if used.size else 0)


def test_blend_replaces_exactly_the_modes_part():
    rng = np.random.default_rng(1)
    ny, nx, m = 4, 5, 2
    eof = rng.standard_normal((m, ny, nx))
    pattern = rng.standard_normal((m, ny, nx))
    eof[:, 0, 0] = pattern[:, 0, 0] = 0.0  # land: no mode there
    # make eof a left inverse of pattern: sum(pattern_k * eof_j) = delta_kj
    flat_p, flat_e = pattern.reshape(m, -1), eof.reshape(m, -1)
    eof = (np.linalg.inv(flat_e @ flat_p.T) @ flat_e).reshape(m, ny, nx)
    other = rng.standard_normal((ny, nx))  # what the modes do not hold
    own = np.array([0.5, -1.0])
    anomaly = (np.einsum("m,myx->yx", own, pattern) + other)[None, None]  # (1, 1, Y, X)
    anomaly[..., 0, 0] = np.nan  # land
    new = np.array([[[2.0, 0.25]]])  # (I, L, M)
    out = blend(anomaly, new, eof, pattern, np.ones(1))
    projected = np.einsum("yx,myx->m", np.nan_to_num(out[0, 0]), eof)
    np.testing.assert_allclose(projected, new[0, 0], atol=1e-9)
    np.testing.assert_allclose(
        np.nan_to_num(out - anomaly), np.einsum("m,myx->yx", new[0, 0] - np.einsum(
            "yx,myx->m", np.nan_to_num(anomaly[0, 0]), eof), pattern)[None, None], atol=1e-9)
    assert np.isnan(out[0, 0, 0, 0])
    np.testing.assert_array_equal(blend(anomaly, new, eof, pattern, np.zeros(1)), anomaly)


def test_a_run_forecasts_with_its_mode_dynamics(trained_model_run, tmp_path):
    store, run = trained_model_run
    assert load_dynamics(run) is not None
    with_dynamics = open_forecast(hindcast(run, store, start="1996-01", end="1996-02",
                                           out=tmp_path / "a.zarr")).sst.values
    without = tmp_path / "run"
    shutil.copytree(run, without)
    (without / DYNAMICS).unlink()
    plain = open_forecast(hindcast(without, store, start="1996-01", end="1996-02",
                                   out=tmp_path / "b.zarr")).sst.values
    ocean = np.isfinite(plain)
    assert np.isfinite(with_dynamics[ocean]).all()
    assert not np.allclose(with_dynamics[ocean], plain[ocean])


def test_a_corrupt_dynamics_file_is_a_clear_error(trained_model_run, tmp_path):
    _, run = trained_model_run
    broken = tmp_path / "run"
    shutil.copytree(run, broken)
    (broken / DYNAMICS).write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="corrupt or not an sstcast mode-dynamics file"):
        load_dynamics(broken)
