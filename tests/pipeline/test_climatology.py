"""The time step of a store: read from the attribute the store records, inferred only
without one."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from pipeline import climatology
from pipeline.climatology import (
    TimeStep,
    fit_climatology,
    seasonal_index,
    store_time_step,
    time_step,
)
from pipeline.data.store import TIME_STEP


def _times(freq, n=5):
    return xr.Dataset(coords={"time": pd.date_range("2000-01-01", periods=n, freq=freq)})


@pytest.mark.parametrize(
    ("frequency", "expected"),
    [("MS", TimeStep("months", 1)), ("3MS", TimeStep("months", 3)),
     ("7D", TimeStep("weeks", 1)), ("W-SUN", TimeStep("weeks", 1)),
     ("D", TimeStep("days", 1)), ("5D", TimeStep("days", 5))],
)
def test_the_store_attribute_is_the_time_step(frequency, expected):
    ds = _times(frequency)
    ds.attrs[TIME_STEP] = frequency
    assert store_time_step(ds) == expected == time_step(ds.time.values)


def test_the_attribute_wins_over_the_times():
    # Two times one day apart would infer daily; the store says monthly.
    ds = xr.Dataset(coords={"time": np.array(["2000-01-01", "2000-01-02"], "datetime64[ns]")})
    ds.attrs[TIME_STEP] = "MS"
    assert store_time_step(ds) == TimeStep("months", 1)


def test_without_the_attribute_the_step_is_inferred():
    assert store_time_step(_times("MS")) == TimeStep("months", 1)
    with pytest.raises(ValueError, match="at least 2 times"):
        store_time_step(_times("MS", n=1))


def _field(times, seed=0, ny=7, nx=9):
    """SST (time, lat, lon) with a seasonal cycle, a land column (all NaN), gaps and a
    constant (sea-ice-like) point."""
    rng = np.random.default_rng(seed)
    t = len(times)
    cycle = 5 * np.sin(2 * np.pi * np.asarray(times.month) / 12)[:, None, None]
    values = (20 + cycle + rng.standard_normal((t, ny, nx))).astype(np.float32)
    values[:, :, 0] = np.nan
    values[rng.random(values.shape) < 0.05] = np.nan
    values[:, 3, 4] = -1.8
    return xr.DataArray(values, dims=("time", "lat", "lon"),
                        coords={"time": times, "lat": np.arange(ny) * 10.0,
                                "lon": np.arange(nx) * 10.0})


def _reference(sst, seasons, bins, floor):
    """Per season nanmean and the nanstd (ddof 0) of the anomalies, in float64."""
    x = sst.values.astype(np.float64)
    clim = np.stack([np.nanmean(x[seasons == s], 0) for s in range(bins)])
    std = np.nanstd(x - clim[seasons], 0)
    return clim, np.maximum(np.nan_to_num(std, nan=floor), floor)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the reference's all-NaN land
@pytest.mark.parametrize("block_bytes", [None, 400])  # one block; many blocks in space
def test_the_climatology_is_the_per_season_mean_lazy_or_not(monkeypatch, block_bytes):
    if block_bytes:
        monkeypatch.setattr(climatology, "BLOCK_BYTES", block_bytes)
    times = pd.date_range("1990-01-01", "1999-12-01", freq="MS")
    sst = _field(times)
    clim, std = _reference(sst.sel(time=slice(None, "1997-12")),
                           seasonal_index(times[:96], TimeStep("months", 1)), 12, 0.1)
    eager = fit_climatology(sst, end="1997-12")
    lazy = fit_climatology(sst.chunk({"time": 7, "lat": 3, "lon": 4}), end="1997-12")
    xr.testing.assert_identical(lazy, eager)  # the same numbers whichever way it is read
    assert eager.clim.dims == ("season", "lat", "lon") and eager["std"].dims == ("lat", "lon")
    assert eager.clim.dtype == np.float32 and eager.attrs["end"] == "1997-12-01"
    np.testing.assert_allclose(eager.clim.values, clim, rtol=1e-6)  # float32 of float64 sums
    np.testing.assert_allclose(eager["std"].values, std, rtol=1e-5)
    assert np.isnan(eager.clim.values[:, :, 0]).all()  # land stays missing
    assert eager["std"].values[3, 4] == np.float32(0.1)  # the floor, not 0


def test_weekly_climatologies_have_52_bins_and_a_missing_season_is_named():
    times = pd.date_range("2000-01-02", periods=3 * 52, freq="7D")
    weekly = fit_climatology(_field(times).chunk({"time": 20}), end="2002-12-31")
    assert weekly.sizes["season"] == 52 and weekly.attrs["step_units"] == "weeks"
    months = pd.date_range("1990-01-01", "1990-06-01", freq="MS")
    with pytest.raises(ValueError, match=r"lacks seasons \[6, 7, 8, 9, 10, 11\]"):
        fit_climatology(_field(months), end="1990-06")
