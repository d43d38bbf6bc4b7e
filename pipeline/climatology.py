"""Seasonal climatology, anomaly statistics and the time axis of a store.

Shared by windows (normalisation), forecasts, baselines and metrics, so that all of them use
the same training-period climatology. Statistics come only from the period they are asked for
(the training period), never from later data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from pipeline.data.store import TIME_STEP, open_store

__all__ = [
    "TimeStep",
    "anomalies",
    "fit_climatology",
    "n_seasons",
    "ocean_mask",
    "open_sst",
    "seasonal_index",
    "store_time_step",
    "time_step",
]


@dataclass(frozen=True)
class TimeStep:
    """The regular step of a store's time axis: `units` ("months", "weeks" or "days") and
    `size` (how many of them per step)."""

    units: str
    size: int

    def offset(self, n: int | np.ndarray) -> pd.DateOffset | pd.Timedelta:
        """The time span of `n` steps (an int)."""
        n = int(n) * self.size
        if self.units == "months":
            return pd.DateOffset(months=n)
        return pd.Timedelta(days=n * (7 if self.units == "weeks" else 1))

    def add(self, times: np.ndarray, n: int) -> np.ndarray:
        """`times` (datetime64, any shape) advanced by `n` steps."""
        index = pd.DatetimeIndex(np.asarray(times).ravel())
        return np.asarray(index + self.offset(n), dtype="datetime64[ns]").reshape(
            np.shape(times)
        )

    @property
    def lead_units(self) -> str:
        return self.units if self.size == 1 else f"{self.size} {self.units}"


def time_step(times) -> TimeStep:
    """Infer the step of a regular time axis (datetime64 values, at least two)."""
    index = pd.DatetimeIndex(np.asarray(times))
    if len(index) < 2:
        raise ValueError(f"time_step: need at least 2 times, got {len(index)}")
    days = float(np.median(np.diff(index.values).astype("timedelta64[h]").astype(float))) / 24
    if 27 <= days <= 32:
        return TimeStep("months", 1)
    if days >= 27:
        return TimeStep("months", round(days / 30.44))
    if days % 7 == 0:
        return TimeStep("weeks", int(days // 7))
    return TimeStep("days", max(1, round(days)))


def store_time_step(ds: xr.Dataset) -> TimeStep:
    """The step of a store's time axis as the store records it (its `sstcast_time_step`
    attribute, a pandas frequency written at ingest); inferred from the times only for a
    dataset without one (in memory, or a store written by another tool)."""
    frequency = ds.attrs.get(TIME_STEP)
    if frequency:
        offset = pd.tseries.frequencies.to_offset(frequency)
        if isinstance(offset, pd.offsets.MonthBegin | pd.offsets.MonthEnd):
            return TimeStep("months", offset.n)
        if isinstance(offset, pd.offsets.Week):
            return TimeStep("weeks", offset.n)
        if isinstance(offset, pd.offsets.Tick):
            days = pd.Timedelta(offset).days
            if days >= 1:
                return TimeStep("weeks", days // 7) if days % 7 == 0 else TimeStep("days", days)
    return time_step(ds.time.values)


def n_seasons(step: TimeStep) -> int:
    """Climatology bins per year: 12 for monthly data, 52 for weekly or daily data."""
    return 12 if step.units == "months" else 52


def seasonal_index(times, step: TimeStep) -> np.ndarray:
    """The climatology bin (0..n_seasons-1) of each time: month-1, or week of year."""
    index = pd.DatetimeIndex(np.asarray(times).ravel())
    if step.units == "months":
        bins = index.month.values - 1
    else:
        bins = np.minimum((index.day_of_year.values - 1) // 7, 51)
    return np.asarray(bins, dtype=np.int64).reshape(np.shape(times))


def open_sst(store) -> xr.Dataset:
    """A canonical dataset (docs/design.md §3) from an `xr.Dataset` or a store path/URL (lazy)."""
    if isinstance(store, xr.Dataset):
        ds = store
    else:
        ds = open_store(str(store))
    if "sst" not in ds:
        raise ValueError(f"store: expected a variable 'sst', got {sorted(ds.data_vars)}")
    if tuple(ds.sst.dims) != ("time", "lat", "lon"):
        raise ValueError(f"store: expected sst dims (time, lat, lon), got {ds.sst.dims}")
    return ds


# Largest block (bytes of the input dtype) of one location block's whole series in the lazy
# path: the kernel works on a float64 copy and the anomalies, ~5x this per thread.
BLOCK_BYTES = 32e6


def fit_climatology(
    sst: xr.DataArray, *, end, start=None, std_floor: float = 0.1, step: TimeStep | None = None
) -> xr.Dataset:
    """Seasonal climatology and anomaly std of `sst` (time, lat, lon) over [start, end].

    Returns a Dataset with `clim` (season, lat, lon) and `std` (lat, lon), float32, with
    attributes `start`, `end`, `units` of the time step; `std` is at least `std_floor` so
    that normalising near-constant series (sea ice) stays bounded. Missing values are
    skipped. Computed lazily through dask when the input is lazy, one block of locations
    (their whole period) at a time, so the store is never loaded whole. `step`: the store's
    (`store_time_step`), inferred from `sst`'s times when not given.
    """
    period = sst.sel(time=slice(start, end))
    if period.sizes["time"] == 0:
        raise ValueError(f"fit_climatology: no data between start={start} and end={end}")
    step = step or time_step(sst.time.values)
    bins = n_seasons(step)
    season = seasonal_index(period.time.values, step)
    period = period.transpose("time", "lat", "lon").drop_vars(
        [c for c in period.coords if c not in ("time", "lat", "lon")])
    if period.chunks is not None:  # whole series per block, blocks of at most BLOCK_BYTES
        period = period.copy(data=period.data.rechunk(
            {0: -1, 1: "auto", 2: "auto"}, block_size_limit=BLOCK_BYTES))
    stats = xr.apply_ufunc(
        _season_stats, period, kwargs={"season": season, "bins": bins},
        input_core_dims=[["time"]], output_core_dims=[["stat"]], dask="parallelized",
        output_dtypes=[np.float64], dask_gufunc_kwargs={"output_sizes": {"stat": bins + 1}},
    ).compute()
    clim = stats.isel(stat=slice(bins)).rename(stat="season").transpose("season", "lat", "lon")
    clim = clim.assign_coords(season=np.arange(bins))
    if bool(clim.isnull().all(("lat", "lon")).any()):
        missing = [int(s) for s in clim.season.values if bool(clim.sel(season=s).isnull().all())]
        raise ValueError(
            f"fit_climatology: the period {start}..{end} lacks seasons {missing}; "
            "use at least one full year"
        )
    std = np.maximum(stats.isel(stat=bins, drop=True).fillna(std_floor), std_floor)
    out = xr.Dataset({"clim": clim.astype("float32"), "std": std.astype("float32")})
    out.attrs = {
        "start": str(pd.Timestamp(period.time.values[0]).date()),
        "end": str(pd.Timestamp(period.time.values[-1]).date()),
        "step_units": step.units,
        "step_size": step.size,
    }
    return out


def _season_stats(series: np.ndarray, season: np.ndarray, bins: int) -> np.ndarray:
    """(..., bins + 1) from series (..., T): the mean of each season's values, then the
    (population) std of the anomalies from those means over all T; NaNs skipped, NaN where
    nothing is left. Sums in float64 whatever the input's dtype."""
    x = series.astype(np.float64)
    valid = np.isfinite(x)
    x[~valid] = 0.0
    out = np.empty(series.shape[:-1] + (bins + 1,))
    # 0 / 0: land, or a season missing (errstate, unlike warnings filters, is per thread)
    with np.errstate(invalid="ignore", divide="ignore"):
        for s in range(bins):
            in_season = season == s
            out[..., s] = x[..., in_season].sum(-1) / valid[..., in_season].sum(-1)
        anomaly = np.where(valid, x - out[..., season], 0.0)
        out[..., bins] = np.sqrt((anomaly**2).sum(-1) / valid.sum(-1))
    return out


def ocean_mask(clim: np.ndarray, ds: xr.Dataset) -> np.ndarray:
    """(Y, X) bool: points with a climatology in every season (`clim` (season, Y, X)) that
    the store's `mask`, when it has one, marks as ocean."""
    ocean = np.isfinite(clim).all(0)
    if "mask" in ds:
        ocean &= ds["mask"].values.astype(bool)
    return ocean


def anomalies(sst: xr.DataArray, climatology: xr.Dataset) -> xr.DataArray:
    """`sst` (time, lat, lon) minus the seasonal `climatology["clim"]` of `fit_climatology`,
    matched by season; times outside the fitting period are welcome (that is the point)."""
    step = TimeStep(climatology.attrs["step_units"], int(climatology.attrs["step_size"]))
    season = xr.DataArray(
        seasonal_index(sst.time.values, step), dims="time", coords={"time": sst.time}
    )
    return sst - climatology["clim"].sel(season=season).drop_vars("season")
