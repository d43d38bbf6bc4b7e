"""Non-local context: EOF amplitudes of the global anomaly field (pipeline.model.modes)."""

import numpy as np
import pandas as pd
import xarray as xr

from pipeline.model.modes import TENDENCY_LAG, fit_modes, mode_features, project


def _planted(steps=240, seed=2):
    """sst = 20 + a(t) * pattern + small noise, no seasonal cycle (clim 20 everywhere)."""
    rng = np.random.default_rng(seed)
    lat, lon = np.linspace(-40, 40, 5), np.arange(8) * 45.0
    pattern = np.outer(np.cos(np.deg2rad(lat)), np.sin(np.deg2rad(lon)) + 1.5)
    amplitude = np.sin(np.arange(steps) / 7.0) * 2.0
    sst = 20 + amplitude[:, None, None] * pattern + 0.01 * rng.standard_normal((steps, 5, 8))
    time = pd.date_range("1980-01", periods=steps, freq="MS")
    da = xr.DataArray(sst, dims=("time", "lat", "lon"),
                      coords={"time": time, "lat": lat, "lon": lon})
    return da, amplitude, pattern, np.full((12, 5, 8), 20.0), (time.month.values - 1)


def test_the_leading_mode_is_the_planted_pattern_and_its_amplitude_the_series():
    sst, amplitude, pattern, clim, seasons = _planted()
    modes = fit_modes(sst, clim, seasons, end=179, sample=np.ones((5, 8), bool), n_modes=2)
    got = project(sst, clim, seasons, modes["eof"].values, 0, 240)[:, 0]
    assert abs(np.corrcoef(got, amplitude)[0, 1]) > 0.999  # also after the fitting period
    assert modes["amplitude_std"].values[0] > 100 * modes["amplitude_std"].values[1]


def test_an_amplitude_uses_its_own_step_only():
    sst, _, _, clim, seasons = _planted()
    modes = fit_modes(sst, clim, seasons, end=179, sample=np.ones((5, 8), bool), n_modes=3)
    later = sst.copy()
    later[200:] += 5.0
    a = project(sst, clim, seasons, modes["eof"].values, 150, 200)
    b = project(later, clim, seasons, modes["eof"].values, 150, 200)
    np.testing.assert_array_equal(a, b)


def test_more_modes_than_the_data_holds_are_padded_with_zeros():
    sst, _, _, clim, seasons = _planted(steps=40)
    sample = np.zeros((5, 8), bool)
    sample[2, :3] = True  # three points: at most three modes
    modes = fit_modes(sst, clim, seasons, end=39, sample=sample, n_modes=5)
    assert modes["eof"].shape == (5, 5, 8)
    assert not modes["eof"].values[3:].any()
    assert (modes["eof"].values[:, ~sample] == 0).all()


def test_features_are_scaled_amplitudes_and_their_tendency():
    amplitudes = np.arange(20.0)[:, None] * np.array([[1.0, 2.0]])
    features = mode_features(amplitudes, np.array([2.0, 4.0]), 5)
    assert features.shape == (15, 4)
    np.testing.assert_allclose(features[:, :2], amplitudes[5:] / [2.0, 4.0])
    np.testing.assert_allclose(features[:, 2:], np.full((15, 2), TENDENCY_LAG * 0.5))


def test_training_and_forecasting_see_the_same_covariates(trained_model_run):
    from pipeline.model.forecast import _Runner
    from pipeline.model.windows import Split, WindowDataset

    store, run = trained_model_run
    runner = _Runner(run, store, 64)
    stats = xr.load_dataset(run / "stats.nc")
    issue = 150
    data = WindowDataset(store, stats, Split("x", issue, issue, 1, issue + 1),
                         runner.config.window, locations=runner.locations)
    batch = data.__getitems__([0])
    np.testing.assert_allclose(batch["covariates"][0, 5:].numpy(),
                               runner.modes(np.array([issue]))[0], rtol=1e-5, atol=1e-6)
