"""The canonical SST store: zarr v3 on any fsspec URL, appended along time, safe against crashes.

Layout (docs/design.md §3): `sst` float32 °C (time, lat, lon), lat ascending, lon 0..360, land NaN;
`mask` (lat, lon) bool ocean; CF attributes and provenance attributes on the group.

Commit protocol (why an interrupted write never shows up to readers)
--------------------------------------------------------------------
Every zarr key (a chunk or a metadata document) is written whole or not at all: LocalStore
writes a temporary file and renames it, object stores (s3, gcs) replace objects atomically.
The root group's attribute `sstcast_committed_steps` is the commit marker, and readers
(`open_store`) only ever see `time[:committed]`. An append

1. resizes `time`/`sst` beyond the committed length (readers ignore the tail),
2. writes the new steps into the tail; chunks shared with committed steps are rewritten whole,
   with the committed values unchanged, so either version of such a chunk is correct,
3. reads the tail back and validates it,
4. publishes the new length by rewriting the root metadata once (one atomic key).

A writer holds the lock `<store>.lock` (pipeline/data/lock.py) from reading the committed
length to the commit, so two writers never interleave these steps; a second one fails.
A process killed anywhere before step 4 leaves the old committed view intact; the next append
starts again from the committed length and overwrites the uncommitted tail.
Consolidated metadata (the arrays' metadata copied into the root `zarr.json`, so a plain
`xr.open_zarr` reads one key and does not warn) is written in the same single write as the
marker (`_commit`), so the copy always describes the committed arrays: a reader of it sees
their committed shapes even while a write has grown the arrays, and sstcast itself reads the
arrays' own metadata (`use_consolidated=False`).
A new store is first written as an empty skeleton (grid, mask, attributes, 0 steps) and
committed, then appended to like any other, so a killed first write leaves an empty store.
Preliminary steps (OISST's `_preliminary` days) are marked by `sstcast_preliminary_from`;
a later write may overwrite steps from there on with final data, and while it does every
step still holds a valid value (preliminary or final) and the marker still says preliminary.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import shutil
import warnings
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime

import fsspec
import numpy as np
import pandas as pd
import xarray as xr
import zarr

from pipeline.cf import cf_store
from pipeline.data.lock import store_lock

FORMAT = "sstcast-sst-store/1"
FORECAST_FORMAT = "sstcast-forecast-store/1"
COMMITTED = "sstcast_committed_steps"
PRELIMINARY = "sstcast_preliminary_from"
TIME_STEP = "sstcast_time_step"
TIME_UNITS = "days since 1850-01-01"
# Chunks (time, lat, lon): 120 steps by 48 x 48 cells (1.1 MB of float32). A time series read
# of a location block touches ceil(T/120) chunks per block, and an append rewrites only the
# last chunk row. See benchmarks/store_layout.py for the measurements behind the choice.
CHUNKS = {"time": 120, "lat": 48, "lon": 48}
# Plausible ocean SST in °C: sea water freezes near -2 °C and no sea is warmer than ~36 °C,
# so Kelvin stored as °C (~300), fill values (1e20) and 5000 °C all fall outside.
SST_RANGE = (-3.0, 45.0)


class StoreError(ValueError):
    """A store that fails validation, or a write that does not fit the store."""


class StoreWriteError(OSError):
    """An I/O failure while writing (disk full, permission denied); the store keeps its last
    committed state."""


@dataclass(frozen=True)
class WriteResult:
    """What a `write_store` call did: steps added at the end, preliminary steps replaced,
    and the committed length afterwards."""

    added: int
    replaced: int
    total: int


def _url(url) -> str:
    if not isinstance(url, str):
        url = str(url)
    if not url:
        raise ValueError("url: expected a path or fsspec URL of a zarr store, got ''")
    return url


def _open_group(url: str, mode: str = "r"):
    """The root zarr group, or None when there is no store at `url` (any zarr format when
    reading, so stores written by other tools can be read)."""
    try:
        return zarr.open_group(
            url, mode=mode, zarr_format=None if mode == "r" else 3, use_consolidated=False
        )
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, zarr.errors.NodeTypeValidationError):
        return None


def store_exists(url) -> bool:
    """True when `url` holds an sstcast store with at least one committed write."""
    group = _open_group(_url(url))
    return group is not None and COMMITTED in group.attrs


def store_kind(url) -> str:
    """What `url` holds: "absent" (nothing, or an empty folder), "sst" (an sstcast SST store),
    "forecast" (a forecast store) or "other" (a file, other files, another zarr store).
    Writers use it to refuse overwriting anything but their own kind of store."""
    url = _url(url)
    fs, path = fsspec.core.url_to_fs(url)
    fs.invalidate_cache()
    if not fs.exists(path):
        return "absent"
    if not fs.isdir(path):
        return "other"
    if not fs.ls(path):
        return "absent"
    group = _open_group(url)
    if group is None:
        return "other"
    kind = {FORMAT: "sst", FORECAST_FORMAT: "forecast"}.get(group.attrs.get("sstcast_format"))
    if kind is None and "sst" in group and "sstcast_format" not in group.attrs:
        # forecast stores written before they carried the format attribute
        sst = group["sst"]
        dims = getattr(sst.metadata, "dimension_names", None) or sst.attrs.get(
            "_ARRAY_DIMENSIONS", ()
        )
        if tuple(dims) == ("init_time", "lead", "lat", "lon"):
            kind = "forecast"
    return kind or "other"


def open_store(url) -> xr.Dataset:
    """Open the store lazily (dask) and return only its committed time steps.

    Returns the canonical Dataset: sst (time, lat, lon) float32 °C, mask (lat, lon) bool.
    """
    url = _url(url)
    group = _open_group(url)
    if group is None:
        raise FileNotFoundError(f"url: no zarr store at {url!r}")
    attrs = dict(group.attrs)
    if attrs.get("sstcast_format") is None:
        return _open_plain(url, group)
    if attrs.get("sstcast_format") != FORMAT:
        raise StoreError(f"url: {url!r} holds another store format {attrs['sstcast_format']!r}")
    if COMMITTED not in attrs:
        raise StoreError(
            f"url: the store at {url!r} was interrupted while it was being created and holds "
            "no committed data; run the ingest again (it starts the store afresh)"
        )
    ds = xr.open_zarr(url, consolidated=False, zarr_format=3, chunks={})
    ds = ds.isel(time=slice(0, int(attrs[COMMITTED])))
    ds["mask"] = ds["mask"].astype(bool)
    return cf_store(ds)


def _open_plain(url: str, group) -> xr.Dataset:
    """Read a canonical zarr store written by other tools (no commit marker: every step is
    taken as committed; no mask: ocean = finite at the first step). Read-only: `write_store`
    refuses to append to it."""
    if "sst" not in group:
        raise StoreError(
            f"url: {url!r} is not an sstcast SST store (no {FORMAT!r} attribute and no 'sst')"
        )
    ds = xr.open_zarr(url, consolidated=False, chunks={})
    if "mask" not in ds:
        ds["mask"] = np.isfinite(ds["sst"].isel(time=0, drop=True)).load()
    ds["mask"] = ds["mask"].astype(bool)
    return ds


def expected_times(first, count: int, step: str) -> pd.DatetimeIndex:
    """`count` times from `first` at the store's time step (a pandas frequency)."""
    return pd.date_range(pd.Timestamp(first), periods=count, freq=step)


def infer_time_step(times) -> str:
    """The pandas frequency of `times` (at least 3), e.g. "MS", "D", "7D" or "W-SUN"."""
    times = pd.DatetimeIndex(times)
    step = None
    if times.size >= 3:
        with warnings.catch_warnings():  # pandas 3 warns that a later version returns offsets
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            step = pd.infer_freq(times)
    if step is None:
        raise StoreError(
            f"ds.time: expected at least 3 evenly spaced times to infer the time step, got "
            f"{times.size} times {list(times[:4].astype(str))}; pass time_step= explicitly"
        )
    return step


def validate_dataset(ds: xr.Dataset, name: str = "ds") -> None:
    """Check the canonical schema of docs/design.md §3; raise StoreError naming what is wrong."""
    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"{name}: expected an xarray.Dataset, got {type(ds).__name__}")
    for var, dims in (("sst", ("time", "lat", "lon")), ("mask", ("lat", "lon"))):
        if var not in ds:
            raise StoreError(f"{name}: expected a variable {var!r}, got {list(ds.data_vars)}")
        if ds[var].dims != dims:
            raise StoreError(f"{name}.{var}: expected dims {dims}, got {ds[var].dims}")
    if ds["sst"].dtype != np.float32:
        raise StoreError(f"{name}.sst: expected float32, got {ds['sst'].dtype}")
    if ds["mask"].dtype != bool:
        raise StoreError(f"{name}.mask: expected bool, got {ds['mask'].dtype}")
    lat, lon = ds["lat"].values, ds["lon"].values
    if not (np.all(np.diff(lat) > 0) and lat[0] >= -90 and lat[-1] <= 90):
        raise StoreError(f"{name}.lat: expected ascending within -90..90, got {lat[0]}..{lat[-1]}")
    if not (np.all(np.diff(lon) > 0) and lon[0] >= 0 and lon[-1] <= 360):
        raise StoreError(f"{name}.lon: expected ascending within 0..360, got {lon[0]}..{lon[-1]}")
    times = pd.DatetimeIndex(ds["time"].values)
    if not (times.is_unique and times.is_monotonic_increasing):
        raise StoreError(f"{name}.time: expected unique increasing times, got {times[:5]}...")


def implausible(sst):
    """True where a value is neither NaN (missing) nor a finite SST within SST_RANGE °C
    (inf, 5000, Kelvin read as °C); numpy, xarray or dask alike."""
    lo, hi = SST_RANGE
    return ~np.isnan(sst) & ~((sst >= lo) & (sst <= hi))


def _check_values(sst: np.ndarray, mask: np.ndarray, times, where: str) -> None:
    """Land must be NaN, ocean values finite within SST_RANGE or NaN, and each step must have
    most ocean cells finite. sst (t, lat, lon)."""
    finite = np.isfinite(sst)
    land_values = ~np.isnan(sst[:, ~mask]).all(axis=1)
    if land_values.any():
        bad = pd.DatetimeIndex(times)[land_values][0]
        raise StoreError(f"{where}: SST values over land (mask False) at {bad:%Y-%m-%d}")
    wrong = implausible(sst[:, mask]).sum(axis=1)
    if wrong.any():
        i = int(np.flatnonzero(wrong)[0])
        lo, hi = SST_RANGE
        raise StoreError(
            f"{where}: expected finite ocean SST within {lo:g}..{hi:g} °C, got {int(wrong[i])} "
            f"ocean cell(s) outside it at {pd.Timestamp(times[i]):%Y-%m-%d} "
            f"({int((wrong > 0).sum())} of {wrong.size} steps checked here affected)"
        )
    ocean = max(int(mask.sum()), 1)
    frac = finite[:, mask].sum(axis=1) / ocean
    if (frac < 0.5).any():
        bad = pd.DatetimeIndex(times)[frac < 0.5][0]
        raise StoreError(f"{where}: fewer than half the ocean cells are finite at {bad:%Y-%m-%d}")


def validate_store(url, *, full: bool = False) -> None:
    """Validate the committed store: schema, unique increasing times at the expected spacing,
    the mask; with `full`, every step's values too (reads the whole store)."""
    url = _url(url)
    ds = open_store(url)
    validate_dataset(ds, name=url)
    step = ds.attrs.get(TIME_STEP)
    times = pd.DatetimeIndex(ds["time"].values)
    if step is None:
        raise StoreError(f"{url}: missing the {TIME_STEP!r} attribute")
    if times.size and not times.equals(expected_times(times[0], times.size, step)):
        raise StoreError(f"{url}.time: expected evenly spaced times at step {step!r}")
    if full and times.size:
        mask = ds["mask"].values
        for start in range(0, times.size, CHUNKS["time"]):
            part = slice(start, start + CHUNKS["time"])
            _check_values(ds["sst"].isel(time=part).values, mask, times[part], url)


def _chunking(ds: xr.Dataset, first_chunk: int) -> dict:
    """Dask chunks along time that line up with the store's zarr chunks from offset
    `first_chunk` (the region's start modulo the time chunk)."""
    n = ds.sizes["time"]
    ct = CHUNKS["time"]
    head = min(n, ct - first_chunk % ct)
    sizes = [head] + [ct] * ((n - head) // ct)
    if sum(sizes) < n:
        sizes.append(n - sum(sizes))
    sizes = [s for s in sizes if s]
    return {
        "time": tuple(sizes),
        "lat": min(CHUNKS["lat"], ds.sizes["lat"]),
        "lon": min(CHUNKS["lon"], ds.sizes["lon"]),
    }


def _encoding(ds: xr.Dataset) -> dict:
    # The time chunk is fixed (not clipped to the first write) so later appends fill it.
    chunks = (CHUNKS["time"],) + tuple(min(CHUNKS[d], ds.sizes[d]) for d in ("lat", "lon"))
    return {
        "sst": {"dtype": "float32", "chunks": chunks, "_FillValue": np.float32(np.nan)},
        "time": {
            "units": TIME_UNITS,
            "calendar": "proleptic_gregorian",
            "dtype": "int64",
            "chunks": (CHUNKS["time"] * 10,),
        },
        "mask": {"chunks": (ds.sizes["lat"], ds.sizes["lon"])},
        # CF: coordinates have no missing values, so no _FillValue (xarray adds NaN).
        "lat": {"_FillValue": None},
        "lon": {"_FillValue": None},
    }


def io_failure(code: int | None) -> str:
    """What a write's errno means in words ("disk full", ...); shared by every writer
    (store, training run, synthetic cache) so a full disk reads the same everywhere."""
    return {
        errno.ENOSPC: "disk full",
        errno.EACCES: "permission denied",
        errno.EROFS: "read-only file system",
    }.get(code, "I/O error")


@contextmanager
def guard_write(path, partial=None):
    """Turn a failed file write into one StoreWriteError naming `path`, after removing the
    `partial` file (a full disk must not stay at 100 %). netCDF/HDF and torch report a full
    disk as RuntimeError without an errno, so the free space decides then."""
    try:
        yield
    except (OSError, RuntimeError) as error:
        code = getattr(error, "errno", None)
        if code is None:
            folder = os.path.dirname(os.path.abspath(path))
            code = errno.ENOSPC if shutil.disk_usage(folder).free < (1 << 20) else errno.EIO
        if partial is not None:
            with suppress(OSError):
                os.unlink(partial)
        text = getattr(error, "strerror", None) or str(error).strip() or type(error).__name__
        detail = text.splitlines()[0]
        raise StoreWriteError(
            code, f"writing {path} failed ({io_failure(code)}: {detail}); nothing partial left"
        ) from error


def _io_errors(url: str, committed: int):
    """Context manager turning OSError into StoreWriteError that says what state remains."""

    @contextmanager
    def guard():
        try:
            yield
        except (OSError, PermissionError) as error:
            what = io_failure(error.errno)
            _drop_tail(url, committed)
            raise StoreWriteError(
                error.errno,
                f"writing the store {url!r} failed ({what}: {error}); the store keeps its "
                f"last committed state ({committed} time steps)",
            ) from error

    return guard()


def _drop_tail(url: str, committed: int) -> None:
    """Best effort after a failed write: shrink time/sst to the committed length, which
    deletes the uncommitted tail's chunks (on a full disk they would keep it at 100 %, and
    plain `xr.open_zarr` readers would see them)."""
    with suppress(Exception):
        group = zarr.open_group(url, mode="r+", zarr_format=3, use_consolidated=False)
        for name in ("sst", "time"):  # chunks first: deleting frees the space metadata needs
            if name in group and group[name].shape[0] > committed:
                group[name].resize((committed, *group[name].shape[1:]))


def write_store(
    ds: xr.Dataset,
    url,
    *,
    time_step: str | None = None,
    preliminary_from=None,
    provenance: dict | None = None,
) -> WriteResult:
    """Create the store at `url` from `ds`, or append the steps of `ds` after its end.

    ds: canonical Dataset (sst (time, lat, lon) float32, mask (lat, lon) bool), numpy or dask.
    Times already committed are skipped (idempotent re-runs), except those at or after the
    store's preliminary marker, which are overwritten. `preliminary_from`: the first time of
    `ds` that comes from preliminary input (None: all final). `provenance`: attributes to
    record (source, URLs, retrieval time). Raises StoreError for data that does not fit
    (another grid, a gap in time) or a path holding anything but an sstcast SST store, and
    StoreWriteError for I/O failures. The write holds the store's lock (`pipeline.data.lock`);
    `StoreLocked` says which process holds it when another writer is at work.
    """
    url = _url(url)
    validate_dataset(ds)
    step = time_step or ds.attrs.get(TIME_STEP) or infer_time_step(ds["time"].values)
    # One writer at a time: the state read below must not change until the commit.
    with store_lock(url):
        return _write(ds, url, step, preliminary_from, provenance)


_HOLDING = {"sst": "an SST store (forecast input?)", "forecast": "a forecast store",
            "other": "other files"}
_OWN = {"sst": "an sstcast SST store", "forecast": "a forecast store"}


def check_writable(url, kind: str, argument: str, overwrite: bool = True) -> None:
    """Raise StoreError unless `url` is a new path, an empty folder or (with `overwrite`) a
    store of `kind` ("sst" or "forecast"): creating a store clears its folder, so never do
    that to files that are not ours. `argument` names the parameter in the message."""
    url = _url(url)
    found = store_kind(url)
    if found == "absent" or (found == kind and overwrite):
        return
    if found == kind:
        raise StoreError(
            f"{argument}: expected a new path or an empty folder, got the existing "
            f"{_OWN[kind].split(' ', 1)[1]} {url!r}; pass overwrite=True (--overwrite) to "
            "replace it"
        )
    raise StoreError(
        f"{argument}: expected a new path, an empty folder or {_OWN[kind]}, got {url!r} "
        f"holding {_HOLDING[found]}; refusing to overwrite it"
    )


def _write(ds, url, step, preliminary_from, provenance) -> WriteResult:
    group = _open_group(url)
    if group is None:
        check_writable(url, "sst", "url")
    attrs = dict(group.attrs) if group is not None else {}
    if group is not None and attrs.get("sstcast_format") not in (None, FORMAT):
        raise StoreError(
            f"url: expected an sstcast SST store ({FORMAT!r}), got {url!r} holding "
            f"{attrs['sstcast_format']!r}; refusing to overwrite it"
        )
    if group is not None and attrs.get("sstcast_format") is None and list(group.keys()):
        raise StoreError(
            f"url: {url!r} is a zarr store but not an sstcast store; refusing to overwrite it"
        )
    if int(attrs.get(COMMITTED, 0)) == 0:  # new, empty, or an interrupted skeleton
        return _create(ds, url, step, preliminary_from, provenance)
    return _append(ds, url, group, attrs, step, preliminary_from, provenance)


def _provenance(provenance: dict | None) -> dict:
    info = {
        "sstcast_written": datetime.now(UTC).isoformat(timespec="seconds"),
        "sstcast_software": f"sstcast {_version()}",
    }
    for key, value in (provenance or {}).items():
        info[key] = value if isinstance(value, str | int | float) else str(value)
    return info


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sstcast")
    except PackageNotFoundError:
        return "0.1.0+source"


def _marker(preliminary_from) -> str | None:
    if preliminary_from is None:
        return None
    return str(pd.Timestamp(preliminary_from).date())


def _create(ds, url, step, preliminary_from, provenance) -> WriteResult:
    """Write an empty, committed skeleton (grid, mask, attributes, time length 0), then
    append: so even a first write that is killed leaves a store that opens (empty)."""
    skeleton = ds[["sst", "mask"]].isel(time=slice(0, 0))
    skeleton["sst"] = skeleton["sst"].load()
    skeleton["mask"] = skeleton["mask"].load()
    skeleton.attrs = {
        **{k: v for k, v in ds.attrs.items() if not k.startswith("sstcast_")},
        "Conventions": "CF-1.8",
        "sstcast_format": FORMAT,
        TIME_STEP: step,
        **_provenance(provenance),
    }
    skeleton = cf_store(skeleton)
    for name in skeleton.variables:
        skeleton[name].encoding = {}
    with _io_errors(url, 0):
        skeleton.to_zarr(url, mode="w", zarr_format=3, consolidated=False, encoding=_encoding(ds))
        group = _commit(url, {COMMITTED: 0, PRELIMINARY: None})
    attrs = dict(group.attrs)
    return _append(ds, url, group, attrs, step, preliminary_from, provenance)


def _append(ds, url, group, attrs, step, preliminary_from, provenance) -> WriteResult:
    committed = int(attrs[COMMITTED])
    if attrs.get(TIME_STEP) != step:
        raise StoreError(
            f"ds.time: expected the store's step {attrs.get(TIME_STEP)!r}, got {step!r}"
        )
    stored = open_store(url)
    for coord in ("lat", "lon"):
        if stored.sizes[coord] != ds.sizes[coord] or not np.allclose(stored[coord], ds[coord]):
            raise StoreError(
                f"ds.{coord}: expected the store's grid ({stored.sizes[coord]} "
                f"points), got {ds.sizes[coord]} points"
            )
    if not np.array_equal(stored["mask"].values, ds["mask"].values):
        raise StoreError("ds.mask: expected the store's land mask, got a different one")
    stored_times = pd.DatetimeIndex(stored["time"].values)
    prelim = attrs.get(PRELIMINARY)
    # Where the write starts: after the last committed step, or at the preliminary marker.
    start = committed
    if prelim is not None:
        p = int(np.searchsorted(stored_times, pd.Timestamp(prelim)))
        if p < committed and pd.Timestamp(ds["time"].values[0]) <= stored_times[p]:
            start = p
    resume_from = (
        stored_times[start]
        if start < committed
        else (expected_times(stored_times[-1], 2, step)[1] if committed else None)
    )
    new = ds.sel(time=ds["time"] >= np.datetime64(resume_from)) if resume_from is not None else ds
    if new.sizes["time"] == 0:
        return WriteResult(added=0, replaced=0, total=committed)
    new_times = pd.DatetimeIndex(new["time"].values)
    if resume_from is None:  # an empty store takes any first step
        resume_from = new_times[0]
    want = expected_times(resume_from, new_times.size, step)
    if not new_times.equals(want):
        ends = f"{stored_times[-1]:%Y-%m-%d}" if committed else "nothing yet"
        raise StoreError(
            f"ds.time: expected steps from {resume_from:%Y-%m-%d} on at step {step!r} "
            f"(the store ends at {ends}), got {new_times[0]:%Y-%m-%d}.."
            f"{new_times[-1]:%Y-%m-%d} with {new_times.size} steps; fetch the missing steps"
        )
    end = start + new_times.size
    # Preliminary steps in the write: from the caller's marker, else none (all final).
    marker = _marker(preliminary_from)
    region = new[["sst"]].drop_vars(["lat", "lon"], errors="ignore").chunk(_chunking(new, start))
    with _io_errors(url, committed):
        g = zarr.open_group(url, mode="r+", zarr_format=3, use_consolidated=False)
        for name in ("time", "sst"):
            arr = g[name]
            if arr.shape[0] < end:
                arr.resize((end, *arr.shape[1:]))
        g["time"][start:end] = _encode_times(new_times)  # xarray skips index coords here
        # _chunking gives each zarr chunk exactly one dask chunk, so the partial first chunk
        # is written by one task; xarray's conservative check cannot see that.
        region.to_zarr(
            url,
            region={"time": slice(start, end)},
            mode="r+",
            zarr_format=3,
            consolidated=False,
            safe_chunks=False,
        )
        _validate_region(url, start, end, step)
        for name in ("time", "sst"):  # drop an uncommitted tail left by an earlier crash
            arr = g[name]
            if arr.shape[0] > max(end, committed):
                arr.resize((max(end, committed), *arr.shape[1:]))
        new_attrs = {**_provenance(provenance), COMMITTED: max(end, committed), PRELIMINARY: marker}
        if end < committed and marker is None:
            new_attrs[PRELIMINARY] = prelim  # only part of the preliminary window was replaced
        _commit(url, new_attrs)  # the commit: one atomic rewrite of the root metadata
    return WriteResult(
        added=max(0, end - committed), replaced=committed - start, total=max(end, committed)
    )


def _commit(url: str, new_attrs: dict):
    """Publish `new_attrs` (the commit marker) and the consolidated metadata of every array
    as they are now, in one write of the root `zarr.json`; returns the group. A store that
    cannot hold consolidated metadata gets the attributes alone."""
    from zarr.core.group import ConsolidatedMetadata
    from zarr.core.metadata.io import save_metadata
    from zarr.core.sync import sync

    group = zarr.open_group(url, mode="r+", zarr_format=3, use_consolidated=False)
    if not group.store.supports_consolidated_metadata:
        group.attrs.update(new_attrs)
        return group
    members = {name: array.metadata for name, array in group.arrays()}
    metadata = dataclasses.replace(
        group.metadata,
        attributes={**group.metadata.attributes, **new_attrs},
        consolidated_metadata=ConsolidatedMetadata(metadata=members),
    )
    sync(save_metadata(group.store_path, metadata))
    return zarr.open_group(url, mode="r", zarr_format=3, use_consolidated=False)


def _encode_times(times: pd.DatetimeIndex) -> np.ndarray:
    """Whole days since 1850-01-01 (int64), the store's time encoding."""
    days = (times - pd.Timestamp(TIME_UNITS.removeprefix("days since "))) / pd.Timedelta(days=1)
    if not np.allclose(days, np.round(days)):
        raise StoreError(f"ds.time: expected times at midnight (period starts), got {times[:3]}")
    return np.round(days).astype(np.int64)


def _validate_region(url: str, start: int, end: int, step: str) -> None:
    """Read steps [start, end) back from zarr (ignoring the commit marker) and validate them,
    with the step before for the spacing."""
    raw = xr.open_zarr(url, consolidated=False, zarr_format=3, chunks={})
    lo = max(start - 1, 0)
    times = pd.DatetimeIndex(raw["time"].values[lo:end])
    if not times.equals(expected_times(times[0], times.size, step)):
        raise StoreError(f"{url}.time: written steps {lo}..{end} are not evenly spaced at {step!r}")
    mask = raw["mask"].values.astype(bool)
    for a in range(start, end, CHUNKS["time"]):
        b = min(a + CHUNKS["time"], end)
        _check_values(raw["sst"].isel(time=slice(a, b)).values, mask, raw["time"].values[a:b], url)


def describe(url) -> str:
    """A human-readable summary of the store: grid, time span, chunks, size, provenance."""
    url = _url(url)
    ds = open_store(url)
    times = pd.DatetimeIndex(ds["time"].values)
    attrs = ds.attrs
    sst = ds["sst"]
    lines = [
        f"sstcast SST store {url}",
        f"  time   {times.size} steps at {attrs.get(TIME_STEP)}: "
        + (f"{times[0]:%Y-%m-%d} .. {times[-1]:%Y-%m-%d}" if times.size else "empty"),
        f"  grid   {ds.sizes['lat']} lat x {ds.sizes['lon']} lon "
        f"(lat {float(ds.lat[0]):g}..{float(ds.lat[-1]):g}, "
        f"lon {float(ds.lon[0]):g}..{float(ds.lon[-1]):g})",
        f"  ocean  {int(ds['mask'].sum())} of {ds['mask'].size} cells",
        f"  chunks sst {sst.encoding.get('chunks')}",
        f"  preliminary from {attrs.get(PRELIMINARY) or '-'}",
    ]
    for key in (
        "source",
        "sstcast_source",
        "sstcast_urls",
        "sstcast_retrieved",
        "sstcast_written",
        "sstcast_software",
    ):
        if key in attrs:
            lines.append(f"  {key.removeprefix('sstcast_'):<10} {attrs[key]}")
    return "\n".join(lines)
