"""Forecasts from a trained run: format, no look-ahead, hindcast consistency, maps."""

import numpy as np
import pytest
import xarray as xr

from pipeline.data.store import open_store, write_store
from pipeline.forecast_store import open_forecast
from pipeline.model.forecast import forecast, hindcast, hindcast_and_interpret, interpret


def test_forecast_store_follows_the_contract(trained_model_run, tmp_path):
    store, run = trained_model_run
    out = forecast(run, store, "1996-06-01", leads=4, out=tmp_path / "fc.zarr")
    fc = open_forecast(out)
    assert fc.sst.dims == ("init_time", "lead", "lat", "lon")
    assert fc.sst.shape == (1, 4, 6, 8)
    assert fc.lead.values.tolist() == [1, 2, 3, 4]
    assert fc.lead.attrs["units"] == "months"
    assert str(fc.valid_time.values[0, 3])[:10] == "1996-10-01"
    assert fc.attrs["model"] == "mechanistic_identifier"
    assert fc.attrs["climatology_end"] == "1993-12-01"  # 1995-12 minus 24 validation months
    values = fc.sst.values
    assert np.isnan(values[0, :, 0, :2]).all()  # land
    ocean = values[0][:, 1:]
    assert np.isfinite(ocean).all()
    assert (np.abs(ocean - 20) < 20).all()  # °C, not normalised anomalies


def test_a_forecast_never_sees_data_after_its_issue_time(trained_model_run, tmp_path):
    store, run = trained_model_run
    ds = open_store(str(store)).load()
    init = np.datetime64("1996-06-01")
    changed = ds.copy(deep=True)
    changed["sst"] = ds.sst.where(ds.time <= init, ds.sst + 7.0)
    other = tmp_path / "changed.zarr"
    write_store(changed, str(other))
    a = open_forecast(forecast(run, store, init, out=tmp_path / "a.zarr")).sst.values
    b = open_forecast(forecast(run, other, init, out=tmp_path / "b.zarr")).sst.values
    np.testing.assert_array_equal(a, b)
    changed["sst"] = ds.sst.where(ds.time != init, ds.sst + 7.0)  # the issue time counts
    write_store(changed, str(tmp_path / "changed2.zarr"))
    c = open_forecast(forecast(run, tmp_path / "changed2.zarr", init,
                               out=tmp_path / "c.zarr")).sst.values
    assert not np.allclose(a, c, equal_nan=True)


def test_a_hindcast_equals_the_single_forecasts(trained_model_run, tmp_path):
    store, run = trained_model_run
    many = open_forecast(hindcast(run, store, start="1996-01", end="1996-03",
                                  out=tmp_path / "h.zarr", inits_per_pass=2))
    assert many.init_time.size == 3
    one = open_forecast(forecast(run, store, "1996-02-01", out=tmp_path / "f.zarr"))
    np.testing.assert_allclose(many.sst.values[1], one.sst.values[0], rtol=1e-5)
    sparse = open_forecast(hindcast(run, store, start="1996-01", end="1996-03", every=2,
                                    out=tmp_path / "s.zarr"))
    assert [str(t)[:7] for t in sparse.init_time.values] == ["1996-01", "1996-03"]
    np.testing.assert_allclose(sparse.sst.values[1], many.sst.values[2], rtol=1e-5)


def test_interpret_maps_latents_and_ode_parameters(trained_model_run):
    store, run = trained_model_run
    maps = interpret(run, store, "1996-06-01")
    assert maps.latent.dims == ("component", "lat", "lon")
    assert maps.latent.shape == (4, 6, 8)
    assert maps.coefficient.shape == (3, 6, 8)
    assert np.isnan(maps.rhs.values[0, :2]).all()
    assert (maps.step_size.values[1:] >= 1e-3).all()


def test_bad_issue_times_and_leads_are_clear_errors(trained_model_run, tmp_path):
    store, run = trained_model_run
    with pytest.raises(ValueError, match="history"):
        forecast(run, store, "1980-06-01", out=tmp_path / "x.zarr")
    with pytest.raises(ValueError, match="no store time"):
        forecast(run, store, "2035-01-01", out=tmp_path / "x.zarr")
    with pytest.raises(ValueError, match="leads"):
        forecast(run, store, "1996-06-01", leads=7, out=tmp_path / "x.zarr")


def test_hindcast_and_interpret_in_one_pass_equal_each_alone(trained_model_run, tmp_path):
    store, run = trained_model_run
    path, maps = hindcast_and_interpret(run, store, start="1996-01", end="1996-03",
                                        out=tmp_path / "both.zarr", interpret_at="1996-03-01")
    alone = hindcast(run, store, start="1996-01", end="1996-03", out=tmp_path / "alone.zarr")
    np.testing.assert_allclose(open_forecast(path).sst.values,
                               open_forecast(alone).sst.values, rtol=1e-6, equal_nan=True)
    xr.testing.assert_allclose(maps, interpret(run, store, "1996-03-01"), rtol=1e-5)
    # An issue time outside the hindcast is interpreted from the same loaded run.
    _, other = hindcast_and_interpret(run, store, start="1996-01", end="1996-01",
                                      out=tmp_path / "one.zarr", interpret_at="1996-06-01")
    xr.testing.assert_allclose(other, interpret(run, store, "1996-06-01"), rtol=1e-5)
