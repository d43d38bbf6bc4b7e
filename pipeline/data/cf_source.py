"""Reading any CF-compliant gridded SST file (the `local-cf` source): a model run, CMIP6 `tos`.

Nothing is assumed about names. The SST variable is the one whose `standard_name` is an SST
(`sea_surface_temperature`, or a GHRSST skin/subskin/foundation temperature), unless the
caller names it; its time, latitude and longitude are its coordinates identified by CF
(`standard_name`, then `units` degrees_north/degrees_east or `axis`); units come from its
`units` attribute (Kelvin is converted to °C later, by `preprocess.standardise`). Only
regular grids are read: 1-D latitude and longitude. A curvilinear grid (2-D latitude and
longitude, as CMIP6 ocean models' native `gn` grids) is refused naming the `file` argument,
since the store, the model and the maps all need a regular lat/lon grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

SST_NAMES = (
    "sea_surface_temperature",
    "sea_surface_skin_temperature",
    "sea_surface_subskin_temperature",
    "sea_surface_foundation_temperature",
)
_LAT_UNITS = {"degrees_north", "degree_north", "degree_n", "degrees_n", "degreen", "degreesn"}
_LON_UNITS = {"degrees_east", "degree_east", "degree_e", "degrees_e", "degreee", "degreese"}


class LayoutError(ValueError):
    """A file whose SST variable or grid cannot be identified from its CF attributes, or a
    grid sstcast cannot read (curvilinear)."""


@dataclass(frozen=True)
class CFLayout:
    """The names in one file: the SST variable and its time, latitude and longitude."""

    variable: str
    time: str
    lat: str
    lon: str
    squeeze: tuple[str, ...]  # singleton dims to drop (a depth level of one)


def _is(var: xr.DataArray, name: str, units: set[str], axis: str) -> bool:
    attrs = {**var.encoding, **var.attrs}  # decoded times keep their units in the encoding
    if attrs.get("standard_name") == name:
        return True
    unit = str(attrs.get("units", "")).strip().lower()
    if name == "time" and (" since " in unit or np.issubdtype(var.dtype, np.datetime64)):
        return True
    return unit.replace(" ", "_") in units or str(attrs.get("axis", "")).upper() == axis


def _coordinate(ds: xr.Dataset, da: xr.DataArray, name: str, units: set[str], axis: str):
    """The coordinate of `da` that CF identifies as `name` (dims first, then auxiliary)."""
    names = list(da.dims) + [
        c for c in str(da.attrs.get("coordinates", da.encoding.get("coordinates", ""))).split()
    ] + [c for c in da.coords if c not in da.dims]
    seen = []
    for candidate in names:
        if candidate in seen or candidate not in ds.variables:
            continue
        seen.append(candidate)
        if _is(ds[candidate], name, units, axis):
            return candidate
    return None


def find_layout(ds: xr.Dataset, variable: str | None = None, where: str = "the file"):
    """The CFLayout of `ds` (opened with or without CF decoding). `variable` names the SST
    variable when the file has several. Raises LayoutError naming `file` or `variable`."""
    if variable:
        if variable not in ds.data_vars:
            raise LayoutError(
                f"variable: expected a data variable of {where}, got {variable!r} "
                f"(it has {sorted(ds.data_vars)})"
            )
        name = variable
    else:
        found = [v for v in ds.data_vars if ds[v].attrs.get("standard_name") in SST_NAMES]
        if not found:
            raise LayoutError(
                f"file: expected a variable with standard_name sea_surface_temperature in "
                f"{where}, got none among {sorted(ds.data_vars)}; name it with "
                "variable= (--variable NAME)"
            )
        if len(found) > 1:
            raise LayoutError(
                f"variable: {where} has several SST variables {sorted(found)}; expected one "
                "named with variable= (--variable NAME), got none"
            )
        name = found[0]
    da = ds[name]
    time = _coordinate(ds, da, "time", set(), "T")
    lat = _coordinate(ds, da, "latitude", _LAT_UNITS, "Y")
    lon = _coordinate(ds, da, "longitude", _LON_UNITS, "X")
    missing = [n for n, v in (("time", time), ("latitude", lat), ("longitude", lon)) if v is None]
    if missing:
        raise LayoutError(
            f"file: expected CF {', '.join(missing)} coordinate(s) of {name!r} in {where} "
            "(standard_name, units degrees_north/degrees_east or axis), got coordinates "
            f"{list(da.dims) + [c for c in da.coords if c not in da.dims]}"
        )
    for label, coord in (("latitude", lat), ("longitude", lon)):
        if ds[coord].ndim != 1 or coord not in da.dims:
            raise LayoutError(
                f"file: expected a regular lat/lon grid (1-D latitude and longitude "
                f"coordinates that are dimensions of {name!r}), got the {ds[coord].ndim}-D "
                f"{label} {coord!r} on dims {ds[coord].dims} in {where}: a curvilinear grid; "
                "regrid it to a regular grid first (e.g. cdo remapbil or xESMF)"
            )
    if time not in da.dims:
        raise LayoutError(f"file: expected {name!r} to vary along time in {where}, got dims "
                          f"{da.dims}")
    extra = [d for d in da.dims if d not in (time, lat, lon)]
    wide = [d for d in extra if da.sizes[d] != 1]
    if wide:
        raise LayoutError(
            f"file: expected {name!r} on (time, latitude, longitude) in {where}, got the extra "
            f"dimension(s) {wide} of sizes {[da.sizes[d] for d in wide]} (a 3-D ocean field? "
            "select the surface level first)"
        )
    return CFLayout(variable=name, time=time, lat=lat, lon=lon, squeeze=tuple(extra))


def read(ds: xr.Dataset, layout: CFLayout) -> xr.DataArray:
    """The SST DataArray of `ds` as (time, lat, lon) with those names; monthly times in a
    model calendar (noleap, 360_day: cftime) become month starts."""
    da = ds[layout.variable]
    for dim in layout.squeeze:
        da = da.isel({dim: 0}, drop=True)
    da = da.rename({layout.time: "time", layout.lat: "lat", layout.lon: "lon"})
    da = da.drop_vars([c for c in da.coords if c not in ("time", "lat", "lon")])
    return da.assign_coords(time=_standard_times(da["time"].values))


def _standard_times(times: np.ndarray) -> np.ndarray:
    if np.issubdtype(np.asarray(times).dtype, np.datetime64):
        return times
    days = np.median(np.diff([t.toordinal() for t in times])) if len(times) > 1 else 30
    calendar = getattr(times[0], "calendar", "?")
    if not 27 <= days <= 32:
        raise LayoutError(
            f"file: expected monthly data or a standard calendar, got steps of {days:g} days "
            f"in the {calendar!r} calendar (convert it to the standard calendar first)"
        )
    return pd.DatetimeIndex([pd.Timestamp(t.year, t.month, 1) for t in times]).values


def time_step(times) -> str:
    """The pandas frequency ("MS", "7D" or "D") of a file's decoded times (any calendar)."""
    times = np.asarray(times)
    if len(times) < 2:
        return "MS"
    if np.issubdtype(times.dtype, np.datetime64):
        days = float(np.median(np.diff(times).astype("timedelta64[s]").astype(float))) / 86400
    else:
        days = float(np.median(np.diff([t.toordinal() for t in times])))
    if 27 <= days <= 32:
        return "MS"
    if round(days) == 7:
        return "7D"
    if round(days) == 1:
        return "D"
    raise LayoutError(
        f"file: expected monthly, weekly or daily steps, got a median step of {days:g} days"
    )
