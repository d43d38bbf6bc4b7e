"""Stores to the tools climate scientists use: CF netCDF files and climpred's layout.

- `export_netcdf(store, out)`: an SST store (its committed steps) or a forecast store ->
  one CF-1.8 netCDF-4 file, written to a temporary file beside `out` and renamed, so `out` is
  either the old file or the whole new one (a failed or killed export leaves no half file).
- `to_climpred(forecast)`: a forecast store as climpred's `HindcastEnsemble` wants it: dims
  `init`, `lead` (and `member`, where the store has members), `lead` with its `units`.

The forecast store itself also opens in climpred without renames: its CF standard names
(forecast_reference_time, forecast_period, realization) are those climpred renames by.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from pipeline.cf import cf_forecast, cf_store, netcdf_attrs
from pipeline.data.store import COMMITTED, guard_write, open_store, store_kind

__all__ = ["CLIMPRED_LEAD_UNITS", "LAYOUTS", "export_netcdf", "open_any", "to_climpred"]

LAYOUTS = ("cf", "climpred")
# The lead units climpred accepts (climpred.constants VALID_LEAD_UNITS).
CLIMPRED_LEAD_UNITS = ("years", "seasons", "months", "weeks", "pentads", "days", "hours",
                       "minutes", "seconds")
_STORE_ONLY = (COMMITTED,)  # meaningless outside the zarr store


def _forecast(forecast) -> xr.Dataset:
    """A forecast store (path or Dataset) with CF attributes; dims beyond (init_time, lead,
    lat, lon), such as an ensemble's `member`, pass through."""
    ds = forecast
    if not isinstance(ds, xr.Dataset):
        ds = xr.open_zarr(str(forecast), consolidated=False)
    needed = {"init_time", "lead", "lat", "lon"}
    if "sst" not in ds or not needed <= set(ds["sst"].dims):
        raise ValueError(
            f"forecast: expected a variable sst with dims {sorted(needed)} (and any others), "
            f"got {dict(ds.sizes)} with {sorted(ds.data_vars)}"
        )
    return cf_forecast(ds)


def open_any(store) -> tuple[str, xr.Dataset]:
    """("sst" or "forecast", the store's Dataset with CF attributes) for a store path/URL."""
    url = str(store)
    kind = store_kind(url)
    if kind == "sst":
        return kind, open_store(url)
    if kind == "forecast":
        return kind, _forecast(url)
    found = {"absent": "nothing there", "other": "no sstcast store"}[kind]
    raise FileNotFoundError(
        f"store: expected an sstcast SST store or forecast store, got {url!r} ({found})"
    )


def to_climpred(forecast) -> xr.Dataset:
    """The forecast (a Dataset or store path) with climpred's dims: init_time -> `init`,
    `lead` kept with its units, `member` kept; valid_time dropped (climpred adds its own)."""
    ds = _forecast(forecast)
    units = ds["lead"].attrs.get("units")
    if units not in CLIMPRED_LEAD_UNITS:
        raise ValueError(
            f"forecast.lead: expected units climpred knows {list(CLIMPRED_LEAD_UNITS)}, got "
            f"{units!r} (a store stepping several months or days per lead)"
        )
    ds = ds.drop_vars("valid_time", errors="ignore").rename({"init_time": "init"})
    ds["lead"] = ds["lead"].astype(np.int64)
    if ds.chunks:  # climpred verifies over init: one dask chunk along it, one lead at a time
        ds = ds.chunk({"init": -1, "lead": 1})
    return ds


def _for_netcdf(ds: xr.Dataset, kind: str, source: str) -> xr.Dataset:
    """A copy whose encodings and attributes netCDF-4 takes: zarr encodings dropped, sst
    compressed, the bool mask as int8 flags."""
    ds = (cf_store if kind == "sst" else cf_forecast)(ds)
    keep = {"units", "calendar", "dtype", "_FillValue"}
    for name in ds.variables:
        ds[name].encoding = {k: v for k, v in ds[name].encoding.items() if k in keep}
    for name in ds.data_vars:
        if ds[name].dtype.kind == "f":
            ds[name].encoding.update(zlib=True, complevel=4)
    if "mask" in ds and ds["mask"].dtype == bool:
        attrs = ds["mask"].attrs
        ds["mask"] = ds["mask"].astype(np.int8)
        ds["mask"].attrs = {**attrs, "flag_values": np.array([0, 1], dtype=np.int8),
                            "flag_meanings": "land sea"}
    attrs = {k: v for k, v in ds.attrs.items() if k not in _STORE_ONLY}
    attrs["sstcast_exported_from"] = source
    ds.attrs = netcdf_attrs(attrs)
    return ds


def export_netcdf(store, out, *, overwrite: bool = False, layout: str = "cf") -> Path:
    """Write the store at `store` (SST or forecast) to the netCDF file `out` (*.nc) and
    return its path. layout "climpred" (forecast stores only) names the dims init/lead.
    `out` is replaced only with `overwrite`; the file appears whole or not at all."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout: expected one of {list(LAYOUTS)}, got {layout!r}")
    out = Path(out)
    if out.suffix != ".nc":
        raise ValueError(f"out: expected a file name ending in .nc, got {str(out)!r}")
    if out.is_dir():
        raise ValueError(f"out: expected a file name, got the folder {str(out)!r}")
    if out.exists() and not overwrite:
        raise FileExistsError(
            f"out: expected a new file, got the existing {str(out)!r}; pass overwrite=True "
            "(--overwrite) to replace it"
        )
    if not out.parent.is_dir():
        raise FileNotFoundError(f"out: the folder {str(out.parent)!r} does not exist")
    kind, ds = open_any(store)
    if layout == "climpred":
        if kind != "forecast":
            raise ValueError(
                f"layout: 'climpred' is for forecast stores, got the SST store {str(store)!r}"
            )
        ds = to_climpred(ds)
    ds = _for_netcdf(ds, kind, str(store))
    part = out.with_name(f".{out.name}.{os.getpid()}.part")
    with guard_write(out, partial=part), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # dask's NaN means over land
        ds.to_netcdf(part, engine="netcdf4", format="NETCDF4")
        os.replace(part, out)
    return out
