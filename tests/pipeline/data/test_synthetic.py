"""The synthetic SST generator: canonical form, realism and reproducibility."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from pipeline.data.synthetic import (
    grid,
    land_mask,
    synthetic_dataset,
    write_cobe2,
    write_oisst_daily,
)


@pytest.fixture(scope="module")
def monthly():
    return synthetic_dataset("1990-01", "1999-12", resolution=4.0, seed=3)


def test_dataset_is_in_canonical_form(monthly):
    assert monthly["sst"].dims == ("time", "lat", "lon")
    assert monthly["sst"].dtype == np.float32
    assert monthly["mask"].dtype == bool
    assert np.all(np.diff(monthly.lat) > 0) and monthly.lat[0] > -90 and monthly.lat[-1] < 90
    assert np.all(np.diff(monthly.lon) > 0) and monthly.lon[0] >= 0 and monthly.lon[-1] < 360
    assert monthly.sizes == {"time": 120, "lat": 45, "lon": 90}
    assert pd.DatetimeIndex(monthly.time)[1] == pd.Timestamp("1990-02-01")


def test_land_is_nan_and_ocean_is_finite(monthly):
    sst, mask = monthly["sst"].values, monthly["mask"].values
    assert np.isnan(sst[:, ~mask]).all()
    assert np.isfinite(sst[:, mask]).all()
    assert 0.55 < mask.mean() < 0.8  # Earth is about 70 % ocean


def test_mask_puts_continents_where_they_are():
    lat, lon = grid(1.0)
    mask = xr.DataArray(land_mask(lat, lon), coords={"lat": lat, "lon": lon})
    ocean = {"mid_pacific": (0.5, 200.5), "north_atlantic": (40.5, 320.5), "indian": (-20.5, 80.5)}
    land = {
        "sahara": (20.5, 10.5),
        "amazon": (-5.5, 300.5),
        "siberia": (60.5, 100.5),
        "australia": (-25.5, 135.5),
        "antarctica": (-80.5, 0.5),
    }
    assert all(bool(mask.sel(lat=a, lon=o)) for a, o in ocean.values())
    assert not any(bool(mask.sel(lat=a, lon=o)) for a, o in land.values())


def test_climatology_is_warm_at_the_equator_and_freezing_near_the_poles(monthly):
    zonal = monthly["sst"].mean(("time", "lon"))
    assert 25 < float(zonal.sel(lat=0, method="nearest")) < 30
    assert float(zonal.sel(lat=-66, method="nearest")) < 4
    assert float(monthly["sst"].min()) >= -1.8 - 1e-6


def test_seasonal_cycle_is_opposite_in_the_two_hemispheres(monthly):
    by_month = monthly["sst"].groupby("time.month").mean()
    north = by_month.sel(lat=40, lon=182, method="nearest")
    south = by_month.sel(lat=-40, lon=182, method="nearest")
    assert int(north.argmax("month")) + 1 in (8, 9) and int(south.argmax("month")) + 1 in (2, 3)
    assert float(north.max() - north.min()) > 5


def test_enso_mode_dominates_tropical_pacific_anomalies(monthly):
    anomalies = monthly["sst"].groupby("time.month") - monthly["sst"].groupby("time.month").mean()
    east_pacific = float(anomalies.sel(lat=0, lon=238, method="nearest").std())
    atlantic = float(anomalies.sel(lat=0, lon=330, method="nearest").std())
    assert east_pacific > 2 * atlantic


def test_red_noise_is_autocorrelated_month_to_month(monthly):
    anomalies = monthly["sst"].groupby("time.month") - monthly["sst"].groupby("time.month").mean()
    series = anomalies.sel(lat=-40, lon=2, method="nearest").values
    lag1 = np.corrcoef(series[:-1], series[1:])[0, 1]
    assert 0.3 < lag1 < 0.95


def test_same_seed_reproduces_and_other_seed_differs():
    a = synthetic_dataset("2000-01", "2000-06", resolution=6.0, seed=1)
    b = synthetic_dataset("2000-01", "2000-06", resolution=6.0, seed=1)
    c = synthetic_dataset("2000-01", "2000-06", resolution=6.0, seed=2)
    xr.testing.assert_identical(a, b)
    assert not np.allclose(a.sst, c.sst, equal_nan=True)


def test_overlapping_spans_agree_so_appends_are_consistent():
    early = synthetic_dataset("1990-01", "1994-12", resolution=6.0)
    late = synthetic_dataset("1993-07", "1997-12", resolution=6.0)
    overlap = slice("1993-07", "1994-12")
    np.testing.assert_array_equal(early.sst.sel(time=overlap), late.sst.sel(time=overlap))


@pytest.mark.parametrize("resolution", [0.0, 7.0, "1"])
def test_bad_resolution_is_rejected(resolution):
    with pytest.raises(ValueError, match="resolution"):
        synthetic_dataset("2000-01", "2000-02", resolution=resolution)


def test_cobe2_writer_uses_the_psl_layout(tmp_path):
    path = write_cobe2(tmp_path / "sst.mon.mean.nc", "2001-01", "2001-03", resolution=5.0)
    raw = xr.open_dataset(path, decode_times=False, mask_and_scale=False)
    assert raw["lat"].values[0] > raw["lat"].values[-1]  # north to south
    assert raw["time"].attrs["units"] == "days since 1891-01-01"
    assert raw["sst"].attrs["_FillValue"] == np.float32(1e20)
    assert (raw["sst"].values == np.float32(1e20)).any()


def test_oisst_daily_writer_uses_the_ncei_layout(tmp_path):
    paths = write_oisst_daily(
        tmp_path, "2020-02-27", "2020-03-02", resolution=5.0, preliminary_from="2020-03-01"
    )
    names = [p.relative_to(tmp_path).as_posix() for p in paths]
    assert names[0] == "202002/oisst-avhrr-v02r01.20200227.nc"
    assert names[-1] == "202003/oisst-avhrr-v02r01.20200302_preliminary.nc"
    raw = xr.open_dataset(paths[0], decode_times=False, mask_and_scale=False)
    assert raw["sst"].dtype == np.int16 and raw["sst"].dims == ("time", "zlev", "lat", "lon")
    assert raw["sst"].attrs["scale_factor"] == 0.01 and raw["sst"].attrs["_FillValue"] == -999
    decoded = xr.open_dataset(paths[0])
    expected = synthetic_dataset("2020-02-27", "2020-02-27", freq="D", resolution=5.0)
    np.testing.assert_allclose(decoded["sst"].values[0, 0], expected["sst"].values[0], atol=0.006)
