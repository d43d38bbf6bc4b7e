"""Preprocessing kernels: standardisation, masks, area-weighted coarsening, resampling;
and the climatology and anomalies built on their output."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from pipeline.climatology import anomalies, fit_climatology
from pipeline.data.ingest import ingest
from pipeline.data.preprocess import (
    apply_mask,
    coarsen,
    period_start,
    resample,
    standardise,
)
from pipeline.data.store import open_store
from pipeline.data.synthetic import synthetic_dataset, write_layout


def raw_field(times, lat, lon, values=None, units="degC"):
    data = (
        values
        if values is not None
        else np.arange(len(times) * len(lat) * len(lon), dtype=np.float64).reshape(
            len(times), len(lat), len(lon)
        )
    )
    return xr.DataArray(
        data,
        dims=("time", "lat", "lon"),
        coords={"time": times, "lat": lat, "lon": lon},
        attrs={"units": units},
    )


def test_standardise_flips_latitude_wraps_longitude_and_starts_periods():
    times = pd.to_datetime(["2001-01-16T12", "2001-02-15T00", "2001-03-16T12"])
    da = raw_field(times, [45.0, -45.0], [-90.0, 0.0, 90.0, 180.0])
    out = standardise(da, "MS")
    assert list(out.lat.values) == [-45.0, 45.0]
    assert list(out.lon.values) == [0.0, 90.0, 180.0, 270.0]
    assert list(pd.DatetimeIndex(out.time)) == list(pd.date_range("2001-01", periods=3, freq="MS"))
    # The value at (lat 45, lon -90) moved to (lat 45, lon 270) and kept its value.
    assert float(out.sel(time="2001-01-01", lat=45.0, lon=270.0)) == float(da[0, 0, 0])
    assert out.dtype == np.float32 and out.attrs["units"] == "degC"


def test_kelvin_is_converted_to_celsius():
    da = raw_field(
        pd.date_range("2001-01-01", periods=1),
        [0.0],
        [10.0],
        values=np.array([[[300.15]]]),
        units="K",
    )
    assert standardise(da, "D").item() == pytest.approx(27.0, abs=1e-4)


def test_weeks_start_on_sundays():
    starts = period_start(pd.to_datetime(["2024-01-07", "2024-01-10", "2024-01-13"]), "7D")
    assert set(starts) == {pd.Timestamp("2024-01-07")}  # 2024-01-07 is a Sunday


def test_same_period_twice_is_an_error():
    da = raw_field(pd.to_datetime(["2001-01-01", "2001-01-20"]), [0.0], [10.0])
    with pytest.raises(ValueError, match="same period"):
        standardise(da, "MS")


def test_coarsening_weights_by_area_and_keeps_mostly_ocean_cells():
    lat = np.array([0.5, 1.5, 60.5, 61.5])
    lon = np.array([0.5, 1.5])
    values = np.array([[[10.0, 20.0], [30.0, 40.0], [1.0, 2.0], [3.0, 4.0]]], dtype=np.float32)
    mask = xr.DataArray(np.array([[1, 1], [1, 1], [1, 0], [0, 0]], bool), dims=("lat", "lon"))
    ds = apply_mask(
        standardise(raw_field(pd.date_range("2001-01-01", periods=1), lat, lon, values), "D"), mask
    )
    out = coarsen(ds, 2.0)
    w = np.cos(np.deg2rad(lat))
    expected = (w[0] * 30 + w[1] * 70) / (2 * w[0] + 2 * w[1])
    assert float(out.sst[0, 0, 0]) == pytest.approx(expected, rel=1e-6)
    assert np.isnan(float(out.sst[0, 1, 0]))  # a quarter ocean: land on the coarse grid
    assert out.mask.values.tolist() == [[True], [False]]


def test_coarsening_needs_a_multiple_of_the_grid():
    ds = synthetic_dataset("2001-01", "2001-01", resolution=4.0)
    with pytest.raises(ValueError, match="grid"):
        coarsen(ds, 6.0)


def test_daily_to_monthly_keeps_only_complete_months():
    daily = synthetic_dataset("2001-01-01", "2001-03-10", freq="D", resolution=10.0)
    monthly = resample(daily, "monthly")
    assert list(pd.DatetimeIndex(monthly.time)) == [
        pd.Timestamp("2001-01-01"),
        pd.Timestamp("2001-02-01"),
    ]
    feb = daily.sst.sel(time="2001-02").mean("time")
    np.testing.assert_allclose(monthly.sst.sel(time="2001-02-01"), feb, rtol=1e-6)


def test_climatology_and_anomalies_remove_the_seasonal_cycle():
    ds = synthetic_dataset("1990-01", "1999-12", resolution=10.0)
    clim = fit_climatology(ds.sst, start="1990-01", end="1999-12")
    anom = anomalies(ds.sst, clim)
    assert clim.sizes["season"] == 12
    monthly_means = anom.groupby("time.month").mean().values[:, ds.mask.values]
    assert np.abs(monthly_means).max() < 1e-4
    assert float(anom.sel(lat=45, lon=185).std()) < float(ds.sst.sel(lat=45, lon=185).std())


def test_weekly_product_gets_its_land_from_the_mask_file(tmp_path):
    write_layout("oisst-v2-weekly", tmp_path / "m", "2020-01-05", "2020-03-01", resolution=5.0)
    ingest("oisst-v2-weekly", tmp_path / "s.zarr", mirror=tmp_path / "m", cache_dir=tmp_path / "c")
    ds = open_store(tmp_path / "s.zarr")
    truth = synthetic_dataset("2020-01-05", "2020-03-01", freq="7D", resolution=5.0)
    np.testing.assert_array_equal(ds.mask.values, truth.mask.values)
    assert np.isnan(ds.sst.values[:, ~ds.mask.values]).all()  # filled land removed
    np.testing.assert_allclose(ds.sst.values, truth.sst.values, atol=0.006)


def test_ersst_monthly_files_ingest(tmp_path):
    write_layout("ersst-v5", tmp_path / "m", "2020-01", "2020-04", resolution=8.0)
    result = ingest(
        "ersst-v5",
        tmp_path / "s.zarr",
        mirror=(tmp_path / "m").as_uri(),
        start="2020-01",
        end="2020-12",
        cache_dir=tmp_path / "c",
    )
    assert (result.total, result.last) == (4, "2020-04-01")
