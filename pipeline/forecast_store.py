"""The forecast store, shared by model forecasts and baselines.

Variable `sst` (init_time, lead, lat, lon) float32 °C; `lead` integer steps with a `units`
attribute; coordinate `valid_time` (init_time, lead); attributes naming the run. Written one
issue time at a time (zarr region writes), so a long hindcast never sits in memory whole.
CF-1.8 (`pipeline.cf`): init_time is the forecast_reference_time, lead the forecast_period,
valid_time the time, sst the sea_surface_temperature; so climpred renames init_time/lead to
its init/lead by itself, and cf_xarray finds every axis. The metadata, consolidated into the
root `zarr.json`, is written once when the store is created (the shapes never change after).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
import zarr

from pipeline.cf import cf_forecast
from pipeline.climatology import TimeStep
from pipeline.data.store import FORECAST_FORMAT, check_writable

__all__ = ["ForecastWriter", "open_forecast", "valid_times"]


def valid_times(inits: np.ndarray, leads: np.ndarray, step: TimeStep) -> np.ndarray:
    """Valid times (init, lead) as datetime64[ns]: each init advanced by each lead."""
    inits = np.asarray(inits, dtype="datetime64[ns]")
    return np.stack([step.add(inits, int(n)) for n in leads], axis=1)


class ForecastWriter:
    """Creates a forecast store and fills it one issue time at a time.

    inits: (I,) datetime64; leads: (L,) int; lat: (Y,); lon: (X,); attrs: run attributes.
    `out` must be a new path, an empty folder, or (with overwrite=True) a forecast store:
    creating the store clears its folder, so anything else (an SST store, other files) is
    refused. `out=None` keeps the forecast in memory instead (`path` is then the Dataset):
    for forecasts scored at once and thrown away, such as verification's baselines.
    """

    def __init__(
        self, out, *, inits, leads, lat, lon, step: TimeStep, attrs: dict, overwrite=False
    ):
        self.out = None if out is None else str(out)
        if self.out is not None:
            check_writable(self.out, "forecast", "out", overwrite)
        inits = np.asarray(pd.DatetimeIndex(np.atleast_1d(inits)).values, dtype="datetime64[ns]")
        leads = np.asarray(leads, dtype=np.int64)
        if leads.ndim != 1 or len(leads) == 0 or leads.min() < 1:
            raise ValueError(f"leads: expected positive integers, got {leads}")
        self.n_init, self.n_lead = len(inits), len(leads)
        shape = (len(inits), len(leads), len(lat), len(lon))
        import dask.array as da

        template = xr.Dataset(
            {
                "sst": (
                    ("init_time", "lead", "lat", "lon"),
                    np.full(shape, np.nan, np.float32) if out is None else
                    da.full(shape, np.nan, dtype=np.float32, chunks=(1, *shape[1:])),
                    {"long_name": "forecast sea surface temperature", "units": "degC"},
                )
            },
            coords={
                "init_time": ("init_time", inits, {"long_name": "issue time"}),
                "lead": ("lead", leads, {"units": step.lead_units, "long_name": "lead time"}),
                "lat": ("lat", np.asarray(lat), {"units": "degrees_north"}),
                "lon": ("lon", np.asarray(lon), {"units": "degrees_east"}),
                "valid_time": (("init_time", "lead"), valid_times(inits, leads, step)),
            },
            attrs={"sstcast_format": FORECAST_FORMAT, **{k: _attr(v) for k, v in attrs.items()}},
        )
        template = cf_forecast(template)
        self._template = template
        self._sst = None
        if self.out is None:
            return
        with warnings.catch_warnings():  # zarr: "consolidated metadata is not in the v3 spec"
            warnings.filterwarnings("ignore", "Consolidated metadata", UserWarning)
            template.to_zarr(self.out, mode="w", compute=False, consolidated=True)
        # Written through zarr directly: a region write through xarray costs twice as much.
        self._sst = zarr.open_array(self.out, path="sst", mode="r+")

    def write(self, index: int, values: np.ndarray) -> None:
        """Store `values` (L, Y, X) as the forecast of issue time number `index`."""
        values = np.asarray(values, dtype=np.float32)
        expected = self._template.sst.shape[1:]
        if values.shape != expected:
            raise ValueError(f"values: expected shape {expected}, got {values.shape}")
        if self.out is None:
            self._template.sst.values[index] = values
            return
        self._sst[index] = values  # one chunk: this issue time's

    @property
    def path(self) -> Path | str | xr.Dataset:
        if self.out is None:
            return self._template
        return Path(self.out) if "://" not in self.out else self.out


def _attr(value):
    """Zarr attributes must be JSON: dates and paths as strings."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_attr(v) for v in value]
    return str(value)


def open_forecast(forecast) -> xr.Dataset:
    """A forecast store as a Dataset, from a Dataset or a path/URL; checks its layout."""
    if not isinstance(forecast, xr.Dataset):
        # The arrays' own metadata (not the consolidated copy): stores written before it
        # existed open without a warning. Older stores get their CF attributes here.
        forecast = cf_forecast(xr.open_zarr(str(forecast), consolidated=False))
    ds = forecast
    if "sst" not in ds or tuple(ds.sst.dims) != ("init_time", "lead", "lat", "lon"):
        raise ValueError(
            "forecast: expected a variable sst with dims (init_time, lead, lat, lon), "
            f"got {dict(ds.sizes)} with {sorted(ds.data_vars)}"
        )
    if "valid_time" not in ds.coords:
        raise ValueError("forecast: missing coordinate valid_time (init_time, lead)")
    return ds
