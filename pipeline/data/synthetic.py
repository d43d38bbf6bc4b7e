"""Synthetic SST with realistic structure, in canonical form or in real products' file formats.

The field is a sum of parts that are each a function of absolute time, so any two spans agree
where they overlap (an append of new months sees the same values a longer run would have):

- a climatology by latitude (about 28 °C at the equator, -1.8 °C at the poles) with a Pacific
  warm pool and cold tongue,
- a seasonal cycle strongest in mid-latitudes, opposite in phase between the hemispheres,
- an ENSO-like mode in the tropical eastern Pacific driven by an irregular 3-7 year index,
- a warming trend (stronger in the northern mid-latitudes),
- red noise: seeded white fields on a coarse grid every few days, AR(1)-filtered over those
  knots and interpolated in space and time.

Land comes from a hand-drawn mask of coarse continent outlines (no downloads needed).
`synthetic_dataset` gives the canonical form of docs/design.md §3; `write_cobe2`,
`write_oisst_daily` and friends write the same field in NOAA's on-disk layouts so the ingest
path runs offline exactly as it runs on real files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from scipy.signal import lfilter

from pipeline.data.store import guard_write

EPOCH = pd.Timestamp("1850-01-01")
FREEZING = -1.8  # °C, sea water under ice
NOISE_KNOT_DAYS = 8  # spacing of the red-noise knots in time
NOISE_TAU_DAYS = 75.0  # e-folding time of the red noise
NOISE_HISTORY = 40  # knots of AR(1) history kept (0.9^40 ≈ 0.015)
NOISE_GRID_DEG = 7.5  # spacing of the coarse noise grid
NOISE_STD = 0.45  # °C

# Coarse continent outlines as (lon -180..180, lat) vertices. Rough on purpose: they only have
# to make ocean basins, coasts and marginal seas look like Earth's.
# fmt: off
CONTINENTS = {
    "north_america": [
        (-168, 66), (-162, 71), (-140, 70), (-120, 72), (-95, 72), (-82, 70), (-78, 63),
        (-94, 59), (-92, 56), (-80, 52), (-78, 58), (-70, 61), (-64, 59), (-56, 52),
        (-66, 45), (-76, 38), (-81, 31), (-80, 25), (-83, 29), (-90, 30), (-97, 27),
        (-97, 21), (-90, 21), (-87, 16), (-83, 15), (-77, 8), (-80, 7), (-86, 11),
        (-95, 16), (-105, 20), (-112, 29), (-117, 33), (-124, 40), (-124, 48), (-133, 57),
        (-150, 60), (-165, 60),
    ],
    "south_america": [
        (-80, 9), (-72, 12), (-62, 10), (-50, 0), (-35, -5), (-39, -14), (-48, -26),
        (-58, -35), (-65, -42), (-68, -54), (-75, -50), (-73, -40), (-71, -30), (-70, -18),
        (-76, -14), (-81, -5), (-80, 1),
    ],
    "africa": [
        (-17, 21), (-16, 28), (-6, 36), (10, 37), (20, 32), (32, 31), (35, 28), (43, 12),
        (51, 12), (42, -2), (40, -15), (35, -25), (20, -35), (17, -29), (12, -17), (9, -1),
        (9, 4), (-8, 4), (-17, 14),
    ],
    "eurasia": [
        (-10, 36), (-9, 43), (-2, 44), (-5, 48), (5, 53), (8, 57), (5, 61), (10, 64),
        (25, 71), (45, 68), (70, 73), (100, 78), (140, 73), (180, 69), (180, 65), (160, 60),
        (156, 51), (140, 54), (135, 43), (127, 40), (122, 40), (122, 30), (110, 20),
        (106, 10), (100, 13), (103, 1), (98, 8), (92, 21), (80, 15), (77, 8), (72, 20),
        (67, 25), (57, 25), (59, 22), (52, 16), (43, 12), (35, 28), (36, 36), (26, 40),
        (20, 40), (14, 45), (12, 44), (16, 40), (10, 44), (3, 43), (-4, 36),
    ],
    "australia": [
        (114, -22), (122, -18), (130, -12), (137, -12), (142, -11), (146, -19), (153, -26),
        (150, -37), (141, -38), (135, -34), (129, -31), (115, -34),
    ],
    "greenland": [
        (-55, 60), (-45, 60), (-20, 70), (-18, 81), (-40, 83), (-60, 82), (-73, 78), (-55, 68),
    ],
    "madagascar": [(44, -25), (47, -25), (50, -15), (49, -12), (44, -16)],
    "borneo": [(109, 1), (117, 7), (119, 5), (117, -4), (110, -3)],
    "sumatra": [(95, 5), (98, 4), (106, -6), (104, -6), (96, 1)],
    "new_guinea": [(131, -1), (141, -3), (150, -10), (141, -9), (137, -5)],
    "britain": [(-6, 50), (2, 51), (-2, 57), (-5, 58), (-6, 55)],
    "japan": [(130, 31), (135, 34), (141, 37), (142, 45), (139, 40), (131, 34)],
}
# fmt: on


def grid(resolution: float) -> tuple[np.ndarray, np.ndarray]:
    """Cell-centre coordinates of a regular global grid.

    Returns lat (nlat,) ascending from -90 + r/2 and lon (nlon,) from r/2 to 360 - r/2.
    """
    if not (isinstance(resolution, int | float) and 0 < resolution <= 30):
        raise ValueError(f"resolution: expected degrees in (0, 30], got {resolution!r}")
    nlat, nlon = round(180 / resolution), round(360 / resolution)
    if not (np.isclose(nlat * resolution, 180) and np.isclose(nlon * resolution, 360)):
        raise ValueError(f"resolution: expected a divisor of 180 degrees, got {resolution!r}")
    lat = -90 + resolution * (np.arange(nlat) + 0.5)
    lon = resolution * (np.arange(nlon) + 0.5)
    return lat, lon


def land_mask(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Ocean mask (nlat, nlon) bool, True over ocean, for cell centres lat (nlat,), lon (nlon,)."""
    from matplotlib.path import Path as PolygonPath  # only needed here

    lon180 = ((np.asarray(lon) + 180) % 360) - 180
    lon2, lat2 = np.meshgrid(lon180, lat)
    points = np.column_stack([lon2.ravel(), lat2.ravel()])
    land = np.zeros(points.shape[0], dtype=bool)
    for outline in CONTINENTS.values():
        land |= PolygonPath(outline).contains_points(points)
    land = land.reshape(lon2.shape)
    # Antarctica: a wavy coast near 70S, and the Arctic ocean stays ocean.
    land |= lat2 < -70 + 4 * np.sin(np.deg2rad(2 * lon2))
    return ~land


def _climatology(lat2: np.ndarray, lon2: np.ndarray) -> np.ndarray:
    """Annual-mean SST (°C) on 2-D lat/lon grids (nlat, nlon)."""
    coslat = np.cos(np.deg2rad(lat2))
    base = FREEZING + 29.8 * coslat**2.3
    # Warm pool west of the date line, cold tongue in the eastern equatorial Pacific.
    warm_pool = 1.5 * np.exp(-(((lon2 - 150) / 30) ** 2) - (lat2 / 12) ** 2)
    cold_tongue = -3.0 * np.exp(-(((lon2 - 260) / 25) ** 2) - (lat2 / 5) ** 2)
    return base + warm_pool + cold_tongue


def _enso_pattern(lat2: np.ndarray, lon2: np.ndarray) -> np.ndarray:
    """°C per unit ENSO index (nlat, nlon): the eastern/central tropical Pacific."""
    return 1.6 * np.exp(-(((lon2 - 235) / 35) ** 2) - (lat2 / 9) ** 2)


def enso_index(times: pd.DatetimeIndex, seed: int = 0) -> np.ndarray:
    """An irregular 3-7 year oscillation of unit standard deviation, (ntime,)."""
    rng = np.random.default_rng([seed, 1])
    periods = np.array([3.1, 3.9, 4.8, 6.2])  # years
    phases = rng.uniform(0, 2 * np.pi, periods.size)
    amps = rng.uniform(0.6, 1.0, periods.size)
    years = _days_since_epoch(times) / 365.25
    parts = amps * np.cos(2 * np.pi * years[:, None] / periods + phases)
    return parts.sum(axis=1) / np.sqrt((amps**2).sum() / 2)


def _days_since_epoch(times: pd.DatetimeIndex) -> np.ndarray:
    return ((times - EPOCH) / pd.Timedelta(days=1)).to_numpy(dtype=np.float64)


def _bracket(src: np.ndarray, dst: np.ndarray, period: float | None):
    """For linear interpolation from sorted points src (nsrc,) to dst (ndst,): the indices of
    the two neighbours (lo, hi) and the weight of hi, each (ndst,)."""
    if period is not None:  # periodic axis: extend by one point on each side
        src_ext = np.concatenate([[src[-1] - period], src, [src[0] + period]])
        index = np.concatenate([[src.size - 1], np.arange(src.size), [0]])
    else:
        src_ext, index = src, np.arange(src.size)
    pos = np.clip(np.interp(dst, src_ext, np.arange(src_ext.size)), 0, src_ext.size - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, src_ext.size - 1)
    return index[lo], index[hi], (pos - lo).astype(np.float32)


def _lerp(values: np.ndarray, axis: int, bracket) -> np.ndarray:
    """Interpolate `values` along `axis` with a `_bracket`. Elementwise on purpose: the result
    at each point never depends on how many points are computed (BLAS blocking would)."""
    lo, hi, frac = bracket
    shape = [1] * values.ndim
    shape[axis] = frac.size
    frac = frac.reshape(shape)
    return np.take(values, lo, axis=axis) * (1 - frac) + np.take(values, hi, axis=axis) * frac


def _knot_noise(knots: np.ndarray, shape: tuple[int, int], seed: int) -> np.ndarray:
    """Seeded white noise (nknots, *shape) that depends only on each knot's index.

    Knots come in blocks of 64 sharing one generator (creating a generator per knot is slow).
    """
    block = 64
    out = np.empty((knots.size, *shape))
    for b in np.unique(knots // block):
        fields = np.random.default_rng([seed, 2, int(b) + 10**6]).standard_normal((block, *shape))
        sel = knots // block == b
        out[sel] = fields[knots[sel] - b * block]
    return out


def _red_noise(times: pd.DatetimeIndex, lat: np.ndarray, lon: np.ndarray, seed: int):
    """Red noise (ntime, nlat, nlon) °C that depends only on absolute time, not on the span."""
    days = _days_since_epoch(times)
    knot_pos = days / NOISE_KNOT_DAYS
    first, last = int(np.floor(knot_pos.min())), int(np.floor(knot_pos.max())) + 1
    knots = np.arange(first - NOISE_HISTORY, last + 1)
    nlat_c, nlon_c = round(180 / NOISE_GRID_DEG) + 1, round(360 / NOISE_GRID_DEG)
    white = _knot_noise(knots, (nlat_c, nlon_c), seed)  # (nknots, nlat_c, nlon_c)
    phi = np.exp(-NOISE_KNOT_DAYS / NOISE_TAU_DAYS)
    taps = phi ** np.arange(NOISE_HISTORY) * np.sqrt(1 - phi**2)
    # Truncated AR(1) as a causal FIR filter; outputs from index HISTORY on have full history.
    ar = lfilter(taps, [1.0], white, axis=0)[NOISE_HISTORY:]  # AR state at knots first..last
    # Interpolate in time between knots, then in space onto the requested grid.
    knot_index = np.arange(first, last + 1, dtype=float)
    coarse = _lerp(ar.astype(np.float32), 0, _bracket(knot_index, knot_pos, None))
    lat_c = np.linspace(-90, 90, nlat_c)
    lon_c = np.arange(nlon_c) * NOISE_GRID_DEG
    by_lon = _lerp(coarse, 2, _bracket(lon_c, lon, 360.0))  # (ntime, nlat_c, nlon)
    full = _lerp(by_lon, 1, _bracket(lat_c, lat, None))  # (ntime, nlat, nlon)
    full *= np.float32(NOISE_STD)
    return full


def sst_fields(times: pd.DatetimeIndex, lat: np.ndarray, lon: np.ndarray, seed: int = 0):
    """The synthetic SST kernel.

    times (ntime,), lat (nlat,), lon (nlon,) in 0..360 -> (sst (ntime, nlat, nlon) float32 °C
    with NaN over land, ocean mask (nlat, nlon) bool).
    """
    lon2, lat2 = np.meshgrid(lon, lat)
    mask = land_mask(lat, lon)
    clim = _climatology(lat2, lon2)
    days = _days_since_epoch(times)
    # Seasonal cycle: peak in late August (north) / late February (south), ~5 °C at 40°.
    amp = 0.3 + 5.0 * np.exp(-(((np.abs(lat2) - 40) / 18) ** 2))
    seasonal = amp * np.tanh(lat2 / 6)
    season = np.cos(2 * np.pi * (days - 237) / 365.25)  # (ntime,)
    enso = enso_index(times, seed)
    trend_rate = 0.012 + 0.01 * np.exp(-(((lat2 - 45) / 15) ** 2))  # °C per year
    years = (days - _days_since_epoch(pd.DatetimeIndex([pd.Timestamp("1980-01-01")]))) / 365.25
    f32 = np.float32
    sst = _red_noise(times, lat, lon, seed)  # (ntime, nlat, nlon) float32, filled in place
    sst += clim.astype(f32)[None]
    sst += season.astype(f32)[:, None, None] * seasonal.astype(f32)[None]
    sst += enso.astype(f32)[:, None, None] * _enso_pattern(lat2, lon2).astype(f32)[None]
    sst += years.astype(f32)[:, None, None] * trend_rate.astype(f32)[None]
    np.maximum(sst, f32(FREEZING), out=sst)
    sst[:, ~mask] = np.nan
    return sst, mask


def _times(start, end, freq: str) -> pd.DatetimeIndex:
    try:
        times = pd.date_range(pd.Timestamp(start), pd.Timestamp(end), freq=freq)
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"start/end/freq: expected dates and a pandas frequency, got "
            f"{start!r}, {end!r}, {freq!r} ({error})"
        ) from error
    if times.size == 0:
        raise ValueError(f"start, end: expected start <= end, got {start!r} > {end!r}")
    return times


def synthetic_dataset(start, end, *, freq: str = "MS", resolution: float = 1.0, seed: int = 0):
    """Synthetic SST in the canonical form of docs/design.md §3.

    Times are `pd.date_range(start, end, freq=freq)` (period starts for "MS"). Returns a Dataset
    with `sst` float32 °C (time, lat, lon), lat ascending -90..90, lon 0..360, NaN over land,
    and `mask` (lat, lon) bool, True over ocean.
    """
    times = _times(start, end, freq)
    lat, lon = grid(resolution)
    sst, mask = sst_fields(times, lat, lon, seed)
    coords = {
        "time": ("time", times, {"standard_name": "time", "long_name": "time"}),
        "lat": ("lat", lat, {"standard_name": "latitude", "units": "degrees_north"}),
        "lon": ("lon", lon, {"standard_name": "longitude", "units": "degrees_east"}),
    }
    sst_attrs = {
        "standard_name": "sea_surface_temperature",
        "long_name": "sea surface temperature",
        "units": "degC",
    }
    ds = xr.Dataset(
        {
            "sst": (("time", "lat", "lon"), sst, sst_attrs),
            "mask": (("lat", "lon"), mask, {"long_name": "ocean mask", "flag_meanings": "ocean"}),
        },
        coords=coords,
        attrs={
            "title": "sstcast synthetic SST",
            "source": "synthetic",
            "synthetic_seed": seed,
            "Conventions": "CF-1.8",
        },
    )
    return ds


# ----------------------------------------------------------------------------------------
# Writers of NOAA on-disk formats (the layouts pipeline.data.sources reads).


def write_cobe2(path, start, end, *, resolution: float = 1.0, seed: int = 0) -> Path:
    """Write a file in the layout of PSL's `Datasets/COBE2/sst.mon.mean.nc`.

    sst (time, lat, lon) float32 degC, lat north -> south, lon 0.5..359.5 (for 1°), time as
    "days since 1891-01-01" at month starts, land = missing_value 1e20.
    """
    ds = synthetic_dataset(start, end, freq="MS", resolution=resolution, seed=seed)
    ds = ds.drop_vars("mask").isel(lat=slice(None, None, -1))
    ds["sst"].attrs = {
        "long_name": "Monthly Means of Global Sea Surface Temperature",
        "units": "degC",
        "var_desc": "Sea Surface Temperature",
        "dataset": "COBE-SST2 Sea Surface Temperature",
    }
    ds.attrs = {"title": "synthetic data in the COBE-SST2 layout", "Conventions": "CF-1.2"}
    encoding = {
        "sst": {
            "dtype": "float32",
            "_FillValue": 1e20,
            "zlib": True,
            "complevel": 4,
            "chunksizes": (1, ds.sizes["lat"], ds.sizes["lon"]),
        },
        "time": {"units": "days since 1891-01-01", "calendar": "standard", "dtype": "float64"},
        "lat": {"dtype": "float32", "_FillValue": None},
        "lon": {"dtype": "float32", "_FillValue": None},
    }
    ds["sst"].encoding["missing_value"] = np.float32(1e20)
    return _write_atomic(ds, path, encoding)


def oisst_daily_name(day: pd.Timestamp, preliminary: bool = False) -> str:
    """NCEI's file name for one OISST v2.1 day, e.g. oisst-avhrr-v02r01.20240131.nc."""
    suffix = "_preliminary" if preliminary else ""
    return f"oisst-avhrr-v02r01.{day:%Y%m%d}{suffix}.nc"


def write_oisst_daily(
    folder, start, end, *, resolution: float = 0.25, seed: int = 0, preliminary_from=None
) -> list[Path]:
    """Write one file per day in NCEI's OISST v2.1 layout under `folder`/YYYYMM/.

    Each file holds sst (time=1, zlev=1, lat, lon) int16 with scale_factor 0.01 and _FillValue
    -999, lat ascending, lon 0.125..359.875 (for 0.25°), time "days since 1978-01-01 12:00:00".
    Days on or after `preliminary_from` get the `_preliminary` name (and slightly different
    values, as NCEI's preliminary analyses do). Generates one month at a time (bounded memory).
    """
    days = _times(start, end, "D")
    lat, lon = grid(resolution)
    prelim = pd.Timestamp(preliminary_from) if preliminary_from is not None else None
    paths = []
    for _, month in pd.Series(days, index=days).groupby(days.to_period("M")):
        month_days = pd.DatetimeIndex(month.values)
        sst, _ = sst_fields(month_days, lat, lon, seed)
        for i, day in enumerate(month_days):
            is_prelim = prelim is not None and day >= prelim
            values = sst[i] + (0.05 if is_prelim else 0.0)
            path = Path(folder) / f"{day:%Y%m}" / oisst_daily_name(day, is_prelim)
            paths.append(_write_oisst_day(path, day, lat, lon, values))
    return paths


def _write_oisst_day(path: Path, day, lat, lon, values: np.ndarray) -> Path:
    ds = xr.Dataset(
        {
            "sst": (
                ("time", "zlev", "lat", "lon"),
                values[None, None].astype(np.float32),
                {
                    "long_name": "Daily sea surface temperature",
                    "units": "Celsius",
                    "valid_min": np.int16(-300),
                    "valid_max": np.int16(4500),
                },
            )
        },
        coords={
            "time": (
                "time",
                [day + pd.Timedelta(hours=12)],
                {"long_name": "Center time of the day"},
            ),
            "zlev": ("zlev", np.array([0.0], dtype=np.float32), {"units": "meters"}),
            "lat": ("lat", lat.astype(np.float32), {"units": "degrees_north"}),
            "lon": ("lon", lon.astype(np.float32), {"units": "degrees_east"}),
        },
        attrs={"title": "synthetic data in the NOAA OISST v2.1 daily layout"},
    )
    encoding = {
        "sst": {
            "dtype": "int16",
            "scale_factor": 0.01,
            "add_offset": 0.0,
            "_FillValue": -999,
            "zlib": True,
            "complevel": 1,
        },
        "time": {"units": "days since 1978-01-01 12:00:00", "dtype": "float32"},
        "lat": {"_FillValue": None},
        "lon": {"_FillValue": None},
        "zlev": {"_FillValue": None},
    }
    return _write_atomic(ds, path, encoding)


def write_ersst(folder, start, end, *, resolution: float = 2.0, seed: int = 0) -> list[Path]:
    """Write one file per month in NCEI's ERSSTv5 layout: `folder`/ersst.v5.YYYYMM.nc.

    sst (time=1, lev=1, lat, lon) float32 degC, lat -88..88 and lon 0..358 (grid points, not
    cell centres, on the real 2° grid), _FillValue -999.9 over land.
    """
    times = _times(start, end, "MS")
    lat = np.arange(-88.0, 88.0 + 1e-9, resolution)
    lon = np.arange(0.0, 360.0 - 1e-9, resolution)
    sst, _ = sst_fields(times, lat, lon, seed)
    paths = []
    for i, month in enumerate(times):
        ds = xr.Dataset(
            {
                "sst": (
                    ("time", "lev", "lat", "lon"),
                    sst[i][None, None],
                    {
                        "long_name": "Extended reconstructed sea surface temperature",
                        "units": "degree_C",
                    },
                )
            },
            coords={
                "time": ("time", [month]),
                "lev": ("lev", [0.0]),
                "lat": ("lat", lat),
                "lon": ("lon", lon),
            },
            attrs={"title": "synthetic data in the NOAA ERSSTv5 layout"},
        )
        encoding = {
            "sst": {"dtype": "float32", "_FillValue": -999.9},
            "time": {"units": "minutes since 1854-01-01 00:00"},
        }
        paths.append(_write_atomic(ds, Path(folder) / f"ersst.v5.{month:%Y%m}.nc", encoding))
    return paths


def write_oisst_weekly(folder, start, end, *, resolution: float = 1.0, seed: int = 0):
    """Write PSL's OISST v2 weekly layout: `sst.wkmean.1990-present.nc` and `lsmask.nc`.

    Weeks start on Sundays ("days since 1800-1-1"); sst int16 scale 0.01 with land filled by
    a smooth interpolation (as PSL's file is), lat north -> south; lsmask.nc holds
    mask (time=1, lat, lon) int8, 1 over ocean. Returns [data path, mask path].
    """
    first = pd.Timestamp(start)
    first = first - pd.Timedelta(days=(first.day_of_week + 1) % 7)  # back to a Sunday
    ds = synthetic_dataset(first, end, freq="7D", resolution=resolution, seed=seed)
    mask = ds["mask"].values
    # Fill land with the zonal mean of the ocean values, as a stand-in for interpolation.
    sst = ds["sst"].values
    count = mask.sum(axis=1)[None, :, None]
    total = np.where(mask, sst, 0.0).sum(axis=2, keepdims=True)
    zonal = np.where(count > 0, total / np.maximum(count, 1), FREEZING).astype(np.float32)
    filled = np.where(mask[None], sst, np.broadcast_to(zonal, sst.shape))
    data = xr.Dataset(
        {
            "sst": (
                ("time", "lat", "lon"),
                filled,
                {"long_name": "Weekly Mean of SST", "units": "degC"},
            )
        },
        coords={"time": ds.time, "lat": ds.lat, "lon": ds.lon},
    ).isel(lat=slice(None, None, -1))
    encoding = {
        "sst": {
            "dtype": "int16",
            "scale_factor": 0.01,
            "add_offset": 0.0,
            "missing_value": 32767,
            "_FillValue": 32767,
        },
        "time": {"units": "days since 1800-1-1 00:00:00", "dtype": "float64"},
    }
    folder = Path(folder)
    data_path = _write_atomic(data, folder / "sst.wkmean.1990-present.nc", encoding)
    lsmask = xr.Dataset(
        {
            "mask": (
                ("time", "lat", "lon"),
                mask[None].astype(np.int8),
                {"long_name": "Land Sea Mask"},
            )
        },
        coords={"time": [pd.Timestamp("1800-01-01")], "lat": ds.lat, "lon": ds.lon},
    ).isel(lat=slice(None, None, -1))
    mask_path = _write_atomic(lsmask, folder / "lsmask.nc", {"mask": {"_FillValue": None}})
    return [data_path, mask_path]


def write_ersst_psl(path, start, end, *, resolution: float = 2.0, seed: int = 0) -> Path:
    """Write PSL's single-file ERSSTv5 layout, `Datasets/noaa.ersst.v5/sst.mnmean.nc`.

    sst (time, lat, lon) float32 degC with _FillValue = missing_value -9.96921e36 over land,
    lat 88..-88 (north -> south) and lon 0..358 float32 grid points (2°), time float64
    "days since 1800-1-1 00:00:00" at month starts with time_bnds (time, nbnds).
    """
    times = _times(start, end, "MS")
    lat = np.arange(88.0, -88.0 - 1e-9, -resolution)
    lon = np.arange(0.0, 360.0 - 1e-9, resolution)
    sst, ocean = sst_fields(times, lat, lon, seed)
    sst = np.where(ocean[None], sst, np.nan).astype(np.float32)
    ends = (times + pd.offsets.MonthBegin(1)).values
    units = "days since 1800-1-1 00:00:00"  # written as the product writes it
    ds = xr.Dataset(
        {
            "sst": (("time", "lat", "lon"), sst, {
                "long_name": "Monthly Means of Sea Surface Temperature", "units": "degC",
                "var_desc": "Sea Surface Temperature", "level_desc": "Surface",
                "statistic": "Mean", "dataset": "NOAA Extended Reconstructed SST V5",
                "parent_stat": "Individual Values",
                "valid_range": np.array([-1.8, 45.0], dtype=np.float32),
                "actual_range": np.array([np.nanmin(sst), np.nanmax(sst)], dtype=np.float32),
            }),
            "time_bnds": (("time", "nbnds"), _days_since(
                np.stack([times.values, ends], axis=1), "1800-01-01"), {"units": units}),
        },
        coords={
            "lat": ("lat", lat.astype(np.float32), {"units": "degrees_north",
                                                    "long_name": "Latitude",
                                                    "standard_name": "latitude",
                                                    "axis": "Y"}),
            "lon": ("lon", lon.astype(np.float32), {"units": "degrees_east",
                                                    "long_name": "Longitude",
                                                    "standard_name": "longitude",
                                                    "axis": "X"}),
            "time": ("time", _days_since(times.values, "1800-01-01"), {
                                     "units": units, "calendar": "standard",
                                     "long_name": "Time", "delta_t": "0000-01-00 00:00:00",
                                     "avg_period": "0000-01-00 00:00:00",
                                     "standard_name": "time", "axis": "T",
                                     "bounds": "time_bnds"}),
        },
        attrs={"title": "synthetic data in the NOAA ERSSTv5 (PSL) layout",
               "Conventions": "CF-1.2", "source": "NOAA/NESDIS/National Climatic Data Center"},
    )
    fill = np.float32(-9.96921e36)
    encoding = {
        "sst": {"dtype": "float32", "_FillValue": fill, "missing_value": fill,
                "chunksizes": (1, lat.size, lon.size), "zlib": True, "complevel": 2},
        "time": {"dtype": "float64", "_FillValue": None},
        "time_bnds": {"dtype": "float64", "_FillValue": None},
        "lat": {"_FillValue": None},
        "lon": {"_FillValue": None},
    }
    return _write_atomic(ds, path, encoding)


def _days_since(times: np.ndarray, origin: str) -> np.ndarray:
    """datetime64 values as float days since `origin` (to write a product's own spelling of
    the time units, which xarray would normalise)."""
    return (np.asarray(times, "datetime64[s]") - np.datetime64(origin, "s")).astype(
        np.float64
    ) / 86400.0


HADISST_SEA_ICE = -1000.0  # HadISST's value for sea-ice-covered cells


def write_hadisst(path, start, end, *, resolution: float = 1.0, seed: int = 0) -> Path:
    """Write the Met Office's `HadISST_sst.nc.gz` layout (netCDF-3, gzipped) at `path`.

    sst (time, latitude, longitude) float32 "C" (so the file says), _FillValue and
    missing_value -1e30 over land, -1000 where there is sea ice (here: where the field is
    below -1.5 °C); latitude 89.5..-89.5 (north -> south), longitude -179.5..179.5; time
    float32 "days since 1870-1-1 0:0:0" at mid-month with time_bnds (time, nv).
    """
    import gzip
    import shutil

    times = _times(start, end, "MS")
    lat, lon = grid(resolution)
    lon = np.where(lon > 180, lon - 360, lon)
    order = np.argsort(lon)
    lon = lon[order]
    sst, ocean = sst_fields(times, lat[::-1], np.mod(lon, 360.0), seed)
    sst = np.where(ocean[None], sst, np.nan)
    sst = np.where(sst < -1.5, HADISST_SEA_ICE, sst).astype(np.float32)
    ends = (times + pd.offsets.MonthBegin(1))
    middle = times + (ends - times) / 2
    units = "days since 1870-1-1 0:0:0"  # written as the product writes it
    ds = xr.Dataset(
        {
            "sst": (("time", "latitude", "longitude"), sst, {
                "standard_name": "sea_surface_temperature", "long_name": "sst",
                "units": "C", "cell_methods": "time: lat: lon: mean"}),
            "time_bnds": (("time", "nv"), _days_since(
                np.stack([times.values, ends.values], axis=1), "1870-01-01"), {"units": units}),
        },
        coords={
            "time": ("time", _days_since(middle.values, "1870-01-01"), {
                "units": units, "calendar": "gregorian", "standard_name": "time",
                "long_name": "Time", "bounds": "time_bnds"}),
            "latitude": ("latitude", lat[::-1].astype(np.float32), {
                "units": "degrees_north", "long_name": "Latitude",
                "standard_name": "latitude"}),
            "longitude": ("longitude", lon.astype(np.float32), {
                "units": "degrees_east", "long_name": "Longitude",
                "standard_name": "longitude"}),
        },
        attrs={"title": "synthetic data in the Met Office HadISST 1.1 layout",
               "Conventions": "CF-1.0", "institution": "Met Office Hadley Centre"},
    )
    encoding = {
        "sst": {"dtype": "float32", "_FillValue": np.float32(-1e30),
                "missing_value": np.float32(-1e30)},
        "time": {"dtype": "float32", "_FillValue": None},
        "time_bnds": {"dtype": "float32", "_FillValue": None},
        "latitude": {"_FillValue": None},
        "longitude": {"_FillValue": None},
    }
    path = Path(path)
    plain = path.with_name(path.name.removesuffix(".gz"))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = plain.with_name(plain.name + ".tmp")
    with guard_write(plain, partial=tmp):
        ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF3_64BIT", encoding=encoding)
    packed = path.with_name(path.name + ".tmp")
    with guard_write(path, partial=packed):
        with tmp.open("rb") as fin, gzip.open(packed, "wb") as fout:
            shutil.copyfileobj(fin, fout)
        tmp.unlink()
        packed.replace(path)
    return path


def _write_atomic(ds: xr.Dataset, path, encoding: dict) -> Path:
    """Write netCDF4 to a temporary name and rename, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with guard_write(path, partial=tmp):  # disk full: the store's message, no .tmp left
        ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=encoding)
        tmp.replace(path)
    return path


def write_layout(
    layout: str, folder, start, end, *, resolution=None, seed=0, preliminary_from=None
) -> list[Path]:
    """Write synthetic files for `layout` (a source name) under `folder` in NOAA's tree.

    The folder then serves as a mirror: `folder`/<the URL path of the real product>.
    """
    from pipeline.data.sources import get_source  # late: sources imports this module's names

    source = get_source(layout)
    root = Path(folder) / source.layout_root
    kwargs = {"seed": seed}
    if resolution is not None:
        kwargs["resolution"] = resolution
    if source.name == "cobe2":
        return [write_cobe2(root / "sst.mon.mean.nc", start, end, **kwargs)]
    if source.name == "oisst-v2.1-daily":
        return write_oisst_daily(root, start, end, preliminary_from=preliminary_from, **kwargs)
    if source.name == "ersst-v5":
        return write_ersst(root, start, end, **kwargs)
    if source.name == "oisst-v2-weekly":
        return write_oisst_weekly(root, start, end, **kwargs)
    if source.name == "ersst-v5-psl":
        return [write_ersst_psl(root / source.filename, start, end, **kwargs)]
    if source.name == "hadisst":
        return [write_hadisst(root / source.filename, start, end, **kwargs)]
    raise ValueError(
        f"layout: expected one of cobe2, oisst-v2.1-daily, ersst-v5, ersst-v5-psl, hadisst, "
        f"oisst-v2-weekly, got {layout!r}"
    )
