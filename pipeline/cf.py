"""CF-1.8 metadata of sstcast's two stores, shared by their writers, readers and the export.

`cf_store(ds)` and `cf_forecast(ds)` return the Dataset with the CF attributes of each
variable (standard names, units, axes), no `_FillValue` on coordinates and attributes that
netCDF can hold (None dropped): stores written before the attributes existed are annotated
when they are read, so CF tools (the CF checker, cf_xarray, climpred) understand both.
Variables other than the known ones (an ensemble `member`, a future dimension) pass through
unchanged; a `member` or `realization` dimension gets the CF standard name `realization`.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

CONVENTIONS = "CF-1.8"

LAT = {"standard_name": "latitude", "long_name": "latitude", "units": "degrees_north",
       "axis": "Y"}
LON = {"standard_name": "longitude", "long_name": "longitude", "units": "degrees_east",
       "axis": "X"}
TIME = {"standard_name": "time", "long_name": "time", "axis": "T"}
SST = {"standard_name": "sea_surface_temperature", "long_name": "sea surface temperature",
       "units": "degC"}
MASK = {"standard_name": "sea_binary_mask", "long_name": "ocean mask (1 over ocean, 0 over land)",
        "units": "1"}
INIT = {"standard_name": "forecast_reference_time", "long_name": "forecast reference time "
        "(issue time: the last observed step used)"}
LEAD = {"standard_name": "forecast_period", "long_name": "lead time (steps after the issue "
        "time)"}
VALID = {"standard_name": "time", "long_name": "valid time (issue time plus lead)"}
MEMBER = {"standard_name": "realization", "long_name": "ensemble member", "units": "1"}

# Attributes that CF defines for coordinates; never `_FillValue` (coordinates have no gaps).
_COORDS = ("lat", "lon", "time", "init_time", "lead", "valid_time", "member", "realization")


def netcdf_attrs(attrs: dict) -> dict:
    """`attrs` as netCDF can store them: None dropped, bools as 0/1, lists of numbers kept,
    lists of text joined with ", ", anything else as text."""
    out = {}
    for key, value in attrs.items():
        if value is None:
            continue
        if isinstance(value, bool | np.bool_):
            value = int(value)
        elif isinstance(value, list | tuple):
            numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
            value = list(value) if numbers and value else ", ".join(map(str, value))
        elif not isinstance(value, str | int | float | np.number | np.ndarray):
            value = str(value)
        out[key] = value
    return out


def _annotate(ds: xr.Dataset, known: dict) -> xr.Dataset:
    ds = ds.copy()
    for name, attrs in known.items():
        if name in ds.variables:
            if name == "mask":  # earlier flags ("ocean") would contradict sea_binary_mask
                for key in ("flag_meanings", "flag_values", "flag_masks"):
                    ds[name].attrs.pop(key, None)
            ds[name].attrs.update(attrs)
    for name in _COORDS:
        if name in ds.coords:
            ds[name].encoding["_FillValue"] = None
    for name in ("member", "realization"):
        if name in ds.dims:
            ds[name].attrs.update({k: v for k, v in MEMBER.items() if k not in ds[name].attrs})
    ds.attrs = netcdf_attrs({**ds.attrs, "Conventions": CONVENTIONS})
    for name in ds.variables:
        ds[name].attrs = netcdf_attrs(ds[name].attrs)
    return ds


def cf_store(ds: xr.Dataset) -> xr.Dataset:
    """The canonical SST Dataset (sst, mask on time/lat/lon) with its CF attributes."""
    return _annotate(ds, {"lat": LAT, "lon": LON, "time": TIME, "sst": SST, "mask": MASK})


def cf_forecast(ds: xr.Dataset) -> xr.Dataset:
    """A forecast Dataset (sst on init_time, lead, [member,] lat, lon; valid_time) with its
    CF attributes. `lead` keeps its `units` (months, weeks, days)."""
    return _annotate(
        ds,
        {"lat": LAT, "lon": LON, "init_time": INIT, "lead": LEAD, "valid_time": VALID,
         "sst": {**SST, "long_name": "forecast sea surface temperature"}},
    )
