"""Lazy (dask) preprocessing from a product's files to the canonical form of docs/design.md §3.

Kernels work on xarray objects backed by dask and never load a whole product: opening is by
file with small chunks, and every step below is elementwise or a reduction over small blocks.

- `open_source_files`: files -> raw DataArray (time, lat, lon) with the product's CF decoding.
- `standardise`: lat ascending, lon 0..360, times at the start of their period, °C, float32
  (the files' units must say Kelvin or Celsius, in any CF/udunits spelling, or be named).
- `check_values`: refuse non-finite or implausible ocean values before anything is written.
- `apply_mask`: land -> NaN, from a mask file or from the data itself.
- `coarsen`: area-weighted (cos lat) averaging onto a grid an integer factor coarser.
- `resample`: daily -> weekly (Sunday starts) or monthly (month starts), complete periods only.
Climatology and anomalies live in `pipeline.climatology` (one definition for all users).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from pipeline.data.sources import Source
from pipeline.data.store import SST_RANGE, implausible

SEA_ICE_SST = -1.8  # °C, sea water under ice (HadISST's -1000 cells)
WEEK_ORIGIN = pd.Timestamp("1989-12-31")  # a Sunday: weeks start on Sundays, as PSL's OISST v2
FREQS = {
    "MS": "MS",
    "M": "MS",
    "monthly": "MS",
    "W": "7D",
    "7D": "7D",
    "weekly": "7D",
    "D": "D",
    "daily": "D",
}


# The udunits spellings of the two temperature units SST products use, after `_unit_key`
# (lower case, blanks as "_", "°" as "deg"): "degrees_K", "degK", "Kelvin", "°C", ...
UNITS = {
    **dict.fromkeys(
        ["k", "kelvin", "kelvins", "degk", "deg_k", "degree_k", "degrees_k", "degreek",
         "degreesk", "degree_kelvin", "degrees_kelvin"],
        "K",
    ),
    **dict.fromkeys(
        ["degc", "deg_c", "degree_c", "degrees_c", "degreec", "degreesc", "celsius",
         "degree_celsius", "degrees_celsius", "deg_celsius"],
        "degC",
    ),
}


class UnitsError(ValueError):
    """SST units that are missing, unknown, or contradict the units the caller named."""


class ValueRangeError(ValueError):
    """Ocean values that are not finite or outside the plausible SST range."""


def _unit_key(text) -> str:
    return re.sub(r"[\s_]+", "_", str(text).strip().lower().replace("°", "deg"))


def sst_units(declared, named=None, where: str = "the data") -> str:
    """"K" or "degC" for the units attribute a file `declared` (None: none) and the units the
    caller `named` (None: take the file's). `where` names the file(s) and variable in errors.
    Missing on both sides, an unknown spelling, or a disagreement is a UnitsError: guessing
    turns Kelvin into 300 °C."""
    kinds = []
    for arg, text in (("units", named), (f"units attribute of {where}", declared)):
        if text is None or str(text).strip() == "":
            continue
        if _unit_key(text) not in UNITS:
            raise UnitsError(
                f"{arg}: expected Kelvin or Celsius (K, kelvin, degK, degrees_K, degC, "
                f"degree_C, celsius, ...), got {text!r}"
            )
        kinds.append(UNITS[_unit_key(text)])
    if not kinds:
        raise UnitsError(
            f"units: {where} has no units attribute; expected the units named "
            "(units='degC' or 'K'; sstcast ingest --units degC), got none"
        )
    if len(set(kinds)) > 1:
        raise UnitsError(
            f"units: expected units matching the units attribute {declared!r} of {where}, "
            f"got {named!r}"
        )
    return kinds[0]


def canonical_freq(freq: str | None) -> str | None:
    """ "MS", "7D" or "D" for the accepted spellings (None stays None)."""
    if freq is None:
        return None
    if freq not in FREQS:
        raise ValueError(f"freq: expected one of {sorted(FREQS)}, got {freq!r}")
    return FREQS[freq]


def open_source_files(paths: list[Path], source: Source) -> xr.DataArray:
    """The variable of `source` from `paths` (per-step files or one file), lazily.

    Returns a dask-backed DataArray (time, lat, lon) as stored in the files (CF-decoded:
    scale/offset applied, fill values as NaN), with extra singleton dims (zlev, lev) dropped.
    """
    if not paths:
        raise ValueError(f"paths: expected at least one {source.name} file, got none")
    # chunks={}: dask chunks follow the files' own netCDF chunks (one map per step for the
    # NOAA products), so nothing is read twice and memory per task stays one map.
    kwargs = {"engine": "netcdf4", "chunks": {}, "decode_times": True}
    try:
        if len(paths) == 1:
            ds = xr.open_dataset(paths[0], **kwargs)
        else:
            ds = xr.open_mfdataset(
                [str(p) for p in paths],
                combine="nested",
                concat_dim="time",
                data_vars="minimal",
                coords="minimal",
                compat="override",
                join="override",
                parallel=False,
                **kwargs,
            )
    except (OSError, ValueError, RuntimeError) as error:
        raise ValueError(f"paths: could not open the {source.name} files ({error})") from error
    if source.cf_discover:  # local-cf: names from the file's CF attributes
        from pipeline.data import cf_source

        return cf_source.read(ds, cf_source.find_layout(ds, source.variable or None,
                                                        str(paths[0])))
    if source.variable not in ds:
        raise ValueError(f"paths: expected a variable {source.variable!r}, got {list(ds)}")
    da = ds[source.variable]
    for dim in source.squeeze_dims:
        if dim in da.dims:
            da = da.isel({dim: 0}, drop=True)
    names = {source.lat_name: "lat", source.lon_name: "lon"}
    da = da.rename({k: v for k, v in names.items() if k != v and k in da.dims})
    if source.units is not None:  # the product's documented units (HadISST writes "C")
        da.attrs["units"] = source.units
    if source.sea_ice_value is not None:  # sea ice: the freezing point of sea water
        da = da.where(da != source.sea_ice_value, SEA_ICE_SST)
    return da


def period_start(times, step: str) -> pd.DatetimeIndex:
    """Each time moved to the start of its period: month start ("MS"), Sunday ("7D") or day."""
    times = pd.DatetimeIndex(times)
    if step == "MS":
        return times.to_period("M").to_timestamp()
    days = times.normalize()
    if step == "7D":
        return days - pd.to_timedelta((days.day_of_week + 1) % 7, unit="D")
    return days


def standardise(
    da: xr.DataArray, step: str, units: str | None = None, where: str = "the files"
) -> xr.DataArray:
    """Canonical coordinates and units, lazily: (time, lat, lon) float32 °C, lat ascending,
    lon in 0..360 ascending, times at their period start (step "MS", "7D" or "D").
    `units`: the data's units when the files declare none (see `sst_units`)."""
    missing = {"time", "lat", "lon"} - set(da.dims)
    if missing:
        raise ValueError(f"da: expected dims time, lat, lon, got {da.dims}")
    da = da.transpose("time", "lat", "lon")
    if sst_units(da.attrs.get("units"), units, where) == "K":
        da = da - 273.15
    lon = np.mod(da["lon"].values.astype(np.float64), 360.0)
    da = da.assign_coords(
        lat=da["lat"].values.astype(np.float64),
        lon=lon,
        time=period_start(da["time"].values, step),
    )
    if np.any(np.diff(da["lat"].values) < 0):
        da = da.isel(lat=slice(None, None, -1))
    if np.any(np.diff(lon) < 0):
        da = da.sortby("lon")
    if not pd.DatetimeIndex(da["time"].values).is_unique:
        raise ValueError("da.time: two files or records fall in the same period")
    da = da.astype(np.float32)
    da.attrs = {
        "standard_name": "sea_surface_temperature",
        "units": "degC",
        "long_name": "sea surface temperature",
    }
    return da.rename("sst")


def mask_from_file(path: Path, variable: str) -> xr.DataArray:
    """An ocean mask (lat, lon) bool from a land-sea mask file (1 = ocean), canonical order."""
    with xr.open_dataset(path, engine="netcdf4") as ds:
        mask = ds[variable].squeeze(drop=True).load() > 0
    mask = mask.assign_coords(
        lat=mask["lat"].values.astype(np.float64),
        lon=np.mod(mask["lon"].values.astype(np.float64), 360.0),
    )
    if np.any(np.diff(mask["lat"].values) < 0):
        mask = mask.isel(lat=slice(None, None, -1))
    return mask.sortby("lon").rename("mask")


def mask_from_data(sst: xr.DataArray) -> xr.DataArray:
    """Ocean = cells with a value (not NaN; inf counts, so `check_values` sees it) at the
    first time step (the products' land is fixed)."""
    return (~np.isnan(sst.isel(time=0, drop=True))).load().rename("mask")


def check_values(sst: xr.DataArray, files: list[Path]) -> None:
    """Raise ValueRangeError naming the file, time and count of the first step with ocean
    values (anything not NaN) that are infinite or outside SST_RANGE °C. One pass over the
    lazy `sst` (time, lat, lon), standardised and masked; `files` are those it was read
    from, one per step or one for all."""
    bad = implausible(sst).sum(("lat", "lon")).compute().values
    if not bad.any():
        return
    i = int(np.flatnonzero(bad)[0])
    t = pd.Timestamp(sst["time"].values[i])
    step = sst.isel(time=i).values
    values = step[implausible(step)]
    if len(files) == 1 or len(files) == bad.size:
        file = files[0 if len(files) == 1 else i]
    else:
        file = f"one of the {len(files)} files {files[0]} .. {files[-1]}"
    lo, hi = SST_RANGE
    raise ValueRangeError(
        f"files: expected finite ocean SST within {lo:g}..{hi:g} °C, got {int(bad[i])} "
        f"ocean cell(s) outside it at {t:%Y-%m-%d} in {file} (from {values.min():g} to "
        f"{values.max():g} °C; {int((bad > 0).sum())} of {bad.size} steps affected); check "
        "the file's units or pass the right units"
    )


def apply_mask(sst: xr.DataArray, mask: xr.DataArray) -> xr.Dataset:
    """The canonical Dataset: sst NaN where mask is False, plus the mask."""
    if mask.shape != sst.shape[1:]:
        raise ValueError(f"mask: expected shape {sst.shape[1:]}, got {mask.shape}")
    mask = mask.astype(bool).assign_coords(lat=sst["lat"], lon=sst["lon"])
    return xr.Dataset({"sst": sst.where(mask), "mask": mask})


def coarsen(ds: xr.Dataset, resolution: float) -> xr.Dataset:
    """Area-weighted average onto a grid `resolution` degrees (an integer multiple of the
    native spacing). Weights are cos(lat) over ocean cells; a coarse cell is ocean when at
    least half of its area is. ds: canonical (sst (time, lat, lon), mask (lat, lon))."""
    native = float(np.median(np.diff(ds["lat"].values)))
    factor = resolution / native
    if not (np.isclose(factor, round(factor)) and round(factor) >= 1):
        raise ValueError(
            f"grid: expected a multiple of the native {native:g}° grid, got {resolution!r}"
        )
    f = round(factor)
    if f == 1:
        return ds
    if ds.sizes["lat"] % f or ds.sizes["lon"] % f:
        raise ValueError(
            f"grid: {resolution}° does not divide the {ds.sizes['lat']} x "
            f"{ds.sizes['lon']} native grid evenly"
        )
    weights = np.cos(np.deg2rad(ds["lat"])).astype(np.float32) * xr.ones_like(
        ds["lon"], dtype=np.float32
    )
    ocean_w = weights.where(ds["mask"], 0.0)
    block = {"lat": f, "lon": f}
    area = weights.coarsen(block).sum()
    ocean_area = ocean_w.coarsen(block).sum()
    mask = (ocean_area >= 0.5 * area).load()
    valid_w = ocean_w * np.isfinite(ds["sst"])
    total = (ds["sst"].fillna(0) * ocean_w).coarsen(block).sum()
    weight = valid_w.coarsen(block).sum()
    sst = (total / weight.where(weight > 0)).astype(np.float32)  # no 0/0 over land
    sst = sst.assign_coords(lat=mask["lat"], lon=mask["lon"]).where(mask)
    sst.attrs = ds["sst"].attrs
    return xr.Dataset({"sst": sst, "mask": mask}, attrs=ds.attrs)


def resample(ds: xr.Dataset, freq: str) -> xr.Dataset:
    """Average daily steps into weekly (Sundays, "7D") or monthly ("MS") periods, keeping only
    complete periods (every day present). ds: canonical, daily."""
    freq = canonical_freq(freq)
    times = pd.DatetimeIndex(ds["time"].values)
    if freq == "D":
        return ds
    if freq == "7D":
        kwargs = {"time": "7D", "origin": WEEK_ORIGIN}
    else:
        kwargs = {"time": "MS"}
    counts = xr.DataArray(np.ones(times.size), coords={"time": times}).resample(**kwargs).sum()
    labels = pd.DatetimeIndex(counts["time"].values)
    expected = 7 if freq == "7D" else labels.days_in_month.to_numpy()
    complete = counts.values == expected
    sst = ds["sst"].resample(**kwargs).mean(skipna=False)
    sst = sst.isel(time=np.flatnonzero(complete)).astype(np.float32)
    sst.attrs = ds["sst"].attrs
    return xr.Dataset({"sst": sst, "mask": ds["mask"]}, attrs=ds.attrs)
