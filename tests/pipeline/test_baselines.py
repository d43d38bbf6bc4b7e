"""Climatology, anomaly persistence and damped persistence baselines."""

import numpy as np
import pytest
import xarray as xr

from pipeline.baselines import baseline_forecast, fit_damping
from pipeline.forecast_store import open_forecast
from pipeline.store import open_store


def test_damping_of_an_ar1_process_is_phi_to_the_lead():
    rng = np.random.default_rng(1)
    phi, a = 0.7, np.zeros((20000, 2))
    for t in range(1, len(a)):
        a[t] = phi * a[t - 1] + rng.standard_normal(2)
    damping = fit_damping(a, np.array([1, 2, 3]))
    np.testing.assert_allclose(damping, (phi ** np.array([1, 2, 3]))[:, None] * [1, 1],
                               atol=0.03)


def test_damping_is_clipped_to_zero_for_anticorrelated_series():
    a = np.tile([1.0, -1.0], 50)[:, None]
    assert fit_damping(a, np.array([1]))[0, 0] == 0.0


@pytest.mark.parametrize("kind", ["climatology", "persistence", "damped_persistence"])
def test_baselines_write_the_forecast_store_format(kind, model_store, tmp_path):
    inits = np.array(["1996-03-01", "1996-04-01"], dtype="datetime64[ns]")
    out = baseline_forecast(kind, model_store, tmp_path / f"{kind}.zarr", inits=inits,
                            leads=4, train_end="1994-12")
    fc = xr.open_zarr(out, consolidated=False)
    assert fc.sst.dims == ("init_time", "lead", "lat", "lon")
    assert fc.lead.values.tolist() == [1, 2, 3, 4]
    assert fc.lead.attrs["units"] == "months"
    assert str(fc.valid_time.values[1, 2])[:10] == "1996-07-01"
    assert fc.attrs["model"] == kind
    assert np.isnan(fc.sst.values[:, :, 0, 0]).all()  # land stays NaN
    assert np.isfinite(fc.sst.values[:, :, 1, 1]).all()


def test_persistence_carries_the_issue_time_anomaly(model_store, tmp_path):
    truth = open_store(str(model_store)).load()
    init = np.datetime64("1996-03-01")
    kw = dict(inits=[init], leads=2, train_end="1994-12")
    pers = open_forecast(baseline_forecast("persistence", model_store, tmp_path / "p.zarr", **kw))
    clim = open_forecast(baseline_forecast("climatology", model_store, tmp_path / "c.zarr", **kw))
    train = truth.sst.sel(time=slice(None, "1994-12"))
    march = train.sel(time=train.time.dt.month == 3).mean("time")
    anomaly = truth.sst.sel(time=init) - march
    np.testing.assert_allclose(pers.sst.values[0] - clim.sst.values[0],
                               np.broadcast_to(anomaly.values, (2, 6, 8)), atol=1e-5)


def test_climatology_comes_from_the_training_period_only(make_ar1_sst, tmp_path):
    ds = make_ar1_sst()
    later = ds.copy(deep=True)
    later["sst"] = later.sst.where(later.time <= np.datetime64("1994-12-01"), later.sst + 5)
    kw = dict(inits=["1996-01-01"], leads=3, train_end="1994-12")
    a = open_forecast(baseline_forecast("climatology", ds, tmp_path / "a.zarr", **kw))
    b = open_forecast(baseline_forecast("climatology", later, tmp_path / "b.zarr", **kw))
    np.testing.assert_array_equal(a.sst.values, b.sst.values)


def test_unknown_kind_and_missing_init_are_errors(model_store, tmp_path):
    with pytest.raises(ValueError, match="kind"):
        baseline_forecast("analogue", model_store, tmp_path / "x.zarr", inits=["1996-01-01"],
                          train_end="1994-12")
    with pytest.raises(ValueError, match="inits"):
        baseline_forecast("climatology", model_store, tmp_path / "x.zarr",
                          inits=["2030-01-01"], train_end="1994-12")
