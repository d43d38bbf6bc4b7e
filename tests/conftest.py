"""Shared pytest fixtures (append only; each area adds its own below)."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

# --- model area (issue 5) ---------------------------------------------------------------


def ar1_sst(start="1980-01", end="1999-12", *, ny=6, nx=8, phi=0.8, seed=0) -> xr.Dataset:
    """A small canonical SST dataset (DESIGN.md §3) with known statistics: a latitude-
    dependent mean, a hemispheric seasonal cycle of 3 °C and AR(1) anomalies with lag-one
    coefficient `phi` and innovation std 0.3 °C; two land points (NaN, mask False)."""
    rng = np.random.default_rng(seed)
    time = pd.date_range(start, end, freq="MS")
    lat = np.linspace(-50.0, 50.0, ny)
    lon = (np.arange(nx) + 0.5) * 360.0 / nx
    mean = 28.0 - 20.0 * (lat / 60.0) ** 2
    season = 3.0 * np.sin(2 * np.pi * (time.month.values - 1) / 12)[:, None] * np.sign(lat)
    anomaly = np.zeros((len(time), ny, nx))
    for t in range(1, len(time)):
        anomaly[t] = phi * anomaly[t - 1] + 0.3 * rng.standard_normal((ny, nx))
    sst = mean[None, :, None] + season[:, :, None] + anomaly
    mask = np.ones((ny, nx), bool)
    mask[0, :2] = False
    sst[:, ~mask] = np.nan
    return xr.Dataset(
        {
            "sst": (("time", "lat", "lon"), sst.astype(np.float32), {"units": "degC"}),
            "mask": (("lat", "lon"), mask),
        },
        coords={"time": time, "lat": lat, "lon": lon},
    )


@pytest.fixture
def model_store(tmp_path):
    """The path of a real zarr store holding `ar1_sst()` (20 years, monthly, 6x8 grid)."""
    path = tmp_path / "sst.zarr"
    ar1_sst().to_zarr(path, mode="w", consolidated=False)
    return path


@pytest.fixture
def make_ar1_sst():
    """The `ar1_sst` maker, for tests that need other periods, sizes or seeds."""
    return ar1_sst
