"""From a product's files to the canonical zarr store, incrementally.

Two steps that flows can wrap as separate tasks:
`pipeline.data.fetch.fetch_files` (files into a cache) and `files_to_store` (files -> store);
`ingest` chains them and can run the dask work on an existing dask.distributed cluster.
"""

from __future__ import annotations

import json
import math
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from pipeline.data import preprocess
from pipeline.data.fetch import default_span, fetch_files
from pipeline.data.sources import DEFAULT_SOURCE, Source, get_source
from pipeline.data.store import (
    COMMITTED,
    PRELIMINARY,
    TIME_STEP,
    _open_group,
    check_writable,
    expected_times,
    open_store,
    write_store,
)
from pipeline.progress import Progress

_DATE = re.compile(r"\.(\d{8}|\d{6})(?:_preliminary)?\.nc$")


@dataclass(frozen=True)
class IngestResult:
    """What an ingest did: files read, steps added and replaced, the store's extent after."""

    store: str
    source: str
    files: int
    added: int
    replaced: int
    total: int
    first: str | None
    last: str | None
    preliminary_from: str | None

    def summary(self) -> str:
        span = f"{self.first} .. {self.last}" if self.first else "empty"
        return (
            f"{self.source} -> {self.store}: {self.added} steps added, {self.replaced} "
            f"preliminary steps replaced, {self.total} steps ({span}), "
            f"{self.files} files read"
        )


def _file_date(path: Path) -> pd.Timestamp | None:
    match = _DATE.search(Path(path).name)
    if match is None:
        return None
    text = match.group(1)
    return pd.Timestamp(f"{text[:4]}-{text[4:6]}-{text[6:] or '01'}")


def _is_preliminary(path: Path) -> bool:
    return Path(path).name.endswith("_preliminary.nc")


def resume_point(store) -> pd.Timestamp | None:
    """The first time a new write into `store` needs: its preliminary marker, or the step
    after its last committed time; None when there is no committed store."""
    group = _open_group(str(store))
    if group is None or COMMITTED not in group.attrs:
        return None
    attrs = dict(group.attrs)
    if attrs.get(PRELIMINARY):
        return pd.Timestamp(attrs[PRELIMINARY])
    ds = open_store(store)
    if ds.sizes["time"] == 0:
        return None
    return expected_times(ds["time"].values[-1], 2, attrs[TIME_STEP])[1]


def _describe_urls(files: list[Path]) -> str:
    """Where the files came from, compactly: the URL, or the first and last of N URLs."""
    urls = _urls(files)
    if len(urls) <= 2:
        return " ".join(urls)
    return f"{len(urls)} files: {urls[0]} .. {urls[-1]}"


def _describe_files(files: list[Path]) -> str:
    names = [str(f) for f in files]
    return names[0] if len(names) == 1 else f"the {len(names)} files {names[0]} .. {names[-1]}"


def _urls(files: list[Path]) -> list[str]:
    urls = []
    for path in files:
        note = Path(str(path) + ".ok")
        try:
            urls.append(json.loads(note.read_text()).get("url", str(path)))
        except (OSError, ValueError):
            urls.append(str(path))
    return urls


def files_to_store(
    files,
    source,
    store,
    *,
    grid: float | None = None,
    freq: str | None = None,
    start=None,
    end=None,
    units: str | None = None,
) -> IngestResult:
    """Standardise `files` of `source` (lazily, with dask) and append them to `store`.

    grid: degrees to coarsen to by area-weighted averaging (None: native grid).
    freq: "weekly"/"7D" or "monthly"/"MS" to resample a daily product (None: native step).
    start/end: limit the times taken from the files. Only steps after the store's end (or
    from its preliminary marker on) are read and written, so re-runs are cheap no-ops.
    units: the SST units ("degC", "K", any udunits spelling) when the files declare none.
    Ocean values that are infinite or outside `pipeline.data.store.SST_RANGE` (after conversion
    to °C) are refused before anything is written, so the store stays as it was.
    A progress bar follows the three stages: read, check, write.
    """
    with Progress(3, "ingest", unit="stage", key="progress-ingest") as bar:
        result = _files_to_store(files, source, store, grid=grid, freq=freq, start=start,
                                 end=end, units=units, bar=bar)
        bar.update_to(3)  # also when there was nothing new to write
    return result


def _files_to_store(files, source, store, *, grid, freq, start, end, units,
                    bar: Progress) -> IngestResult:
    source = get_source(source)
    files = [Path(f) for f in files]
    store = str(store)
    native = source.time_step or _file_step(files, source)
    step = preprocess.canonical_freq(freq) or native
    if step != native and native != "D":
        raise ValueError(
            f"freq: only daily products can be resampled; {source.name} is {native!r}, got {freq!r}"
        )
    mask_name = source.mask_filename
    mask_files = [f for f in files if mask_name and f.name == mask_name]
    data_files = [f for f in files if f not in mask_files]
    if source.land == "filled" and not mask_files:
        raise ValueError(
            f"files: the {source.name} product fills land, so its mask file "
            f"{mask_name!r} is needed; got {[f.name for f in files]}"
        )
    resume = resume_point(store)
    first = pd.Timestamp(start) if start is not None else None
    if resume is not None:
        first = max(first, resume) if first is not None else resume
    if first is not None and source.files != "single":
        data_files = [f for f in data_files if (_file_date(f) or first) >= _period(first, native)]
    result_base = {"store": store, "source": source.name}
    if not data_files:
        return _result(result_base, 0, 0, 0, store)
    variable = source.variable or "SST"  # local-cf: found from the file's CF attributes
    where = f"the variable {variable!r} of {_describe_files(data_files)}"
    sst = preprocess.standardise(
        preprocess.open_source_files(data_files, source), native, units=units, where=where
    )
    if mask_files:
        mask = preprocess.mask_from_file(mask_files[0], source.mask_variable)
    else:
        mask = preprocess.mask_from_data(sst)
    ds = preprocess.apply_mask(sst, mask)
    bar.update()
    bar.set_postfix(stage="check values")
    # Refuse implausible values of the steps to be written, before anything is written.
    picked = _within(ds["time"].values, None if first is None else _period(first, native), end)
    per_step = len(data_files) == ds.sizes["time"]
    preprocess.check_values(
        ds["sst"].isel(time=picked), [data_files[i] for i in picked] if per_step else data_files
    )
    if grid is not None:
        ds = preprocess.coarsen(ds, float(grid))
    if step != native:
        ds = preprocess.resample(ds, step)
    if resume is not None:  # keep the store's mask, so appends see the same land
        stored = open_store(store)
        if stored["mask"].shape == ds["mask"].shape:
            ds["mask"] = stored["mask"].load().assign_coords(lat=ds.lat, lon=ds.lon)
            ds["sst"] = ds["sst"].where(ds["mask"])
    ds = ds.isel(time=_within(ds["time"].values, first, end))
    if ds.sizes["time"] == 0:
        return _result(result_base, len(data_files), 0, 0, store)
    prelim_days = [_file_date(f) for f in data_files if _is_preliminary(f)]
    prelim_from = None
    if prelim_days:
        prelim_from = preprocess.period_start([min(prelim_days)], step)[0]
    provenance = {
        "sstcast_source": f"{source.name}: {source.title}",
        "sstcast_urls": _describe_urls(data_files + mask_files),
        "sstcast_retrieved": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"),
        "sstcast_grid": f"{grid if grid is not None else source.resolution} degrees",
    }
    bar.update_to(2)
    bar.set_postfix(stage="write")
    written = write_store(
        ds, store, time_step=step, preliminary_from=prelim_from, provenance=provenance
    )
    return _result(result_base, len(data_files), written.added, written.replaced, store)


def _file_step(files: list[Path], source: Source) -> str:
    """The time step of a local-cf file, from its own time axis."""
    from pipeline.data import cf_source

    if not files:
        return "MS"
    with xr.open_dataset(files[0], engine="netcdf4") as raw:
        layout = cf_source.find_layout(raw, source.variable or None, str(files[0]))
        return cf_source.time_step(raw[layout.time].values)


def _within(times, first, end) -> np.ndarray:
    """Indices of `times` in [first, end] (None: open)."""
    times = pd.DatetimeIndex(times)
    keep = np.ones(times.size, dtype=bool)
    if first is not None:
        keep &= times >= first
    if end is not None:
        keep &= times <= pd.Timestamp(end)
    return np.flatnonzero(keep)


def _period(t: pd.Timestamp, native: str) -> pd.Timestamp:
    return preprocess.period_start([t], native)[0]


def _result(base: dict, files: int, added: int, replaced: int, store: str) -> IngestResult:
    group = _open_group(store)
    if group is None or COMMITTED not in group.attrs:
        return IngestResult(
            **base,
            files=files,
            added=0,
            replaced=0,
            total=0,
            first=None,
            last=None,
            preliminary_from=None,
        )
    ds = open_store(store)
    times = pd.DatetimeIndex(ds["time"].values)
    return IngestResult(
        **base,
        files=files,
        added=added,
        replaced=replaced,
        total=times.size,
        first=f"{times[0]:%Y-%m-%d}" if times.size else None,
        last=f"{times[-1]:%Y-%m-%d}" if times.size else None,
        preliminary_from=ds.attrs.get(PRELIMINARY),
    )


@contextmanager
def dask_client(address: str | None):
    """A dask.distributed Client for `address` (or $DASK_SCHEDULER_ADDRESS) while inside;
    nothing (dask's local threads) when neither is set."""
    address = address or os.environ.get("DASK_SCHEDULER_ADDRESS")
    if not address:
        yield None
        return
    from distributed import Client

    with Client(address, set_as_default=True) as client:
        yield client


def default_cache_dir(source: Source) -> Path:
    """$XDG_CACHE_HOME/sstcast/<source> (~/.cache/sstcast/<source>)."""
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "sstcast" / source.name


FIRST_DATE = pd.Timestamp("1850-01-01")  # the store's time origin; no product starts earlier


def check_span(start, end) -> None:
    """Refuse dates outside 1850-01-01..today and start > end, before anything is fetched
    (a far end means thousands of requests; start > end would be a silent no-op)."""
    today = pd.Timestamp.now().normalize()
    parsed = {}
    for name, value in (("start", start), ("end", end)):
        if value is None:
            continue
        try:
            parsed[name] = pd.Timestamp(value)
        except (ValueError, TypeError):
            raise ValueError(f"{name}: expected a date YYYY-MM[-DD], got {value!r}") from None
        if not FIRST_DATE <= parsed[name] <= today + pd.offsets.MonthEnd(0):
            raise ValueError(
                f"{name}: expected a date from {FIRST_DATE:%Y-%m-%d} to today "
                f"({today:%Y-%m-%d}), got {value!r}"
            )
    if len(parsed) == 2 and parsed["start"] > parsed["end"]:
        raise ValueError(f"start, end: expected start <= end, got start={start!r} > end={end!r}")


def ingest(
    source: str | Source = DEFAULT_SOURCE,
    store=None,
    *,
    mirror=None,
    start=None,
    end=None,
    grid: float | None = None,
    cache_dir=None,
    dask_address: str | None = None,
    freq: str | None = None,
    resolution: float | None = None,
    units: str | None = None,
    file=None,
    variable: str | None = None,
) -> IngestResult:
    """Fetch `source` (synthetic by default) and append it to the zarr `store` (any fsspec URL).

    Per-step products are fetched only from the store's resume point on, so a re-run fetches
    just the newest files. `resolution` sets a synthetic source's grid. `file` (a path or
    URL) and `variable` (when it holds several SSTs) are the `local-cf` source's CF file.
    See `files_to_store` for `grid`, `freq`, `start`, `end` and `units`.
    """
    if store is None:
        raise ValueError("store: expected a path or fsspec URL for the zarr store, got None")
    for name, value in (("grid", grid), ("resolution", resolution)):
        if value is not None and not (isinstance(value, int | float) and math.isfinite(value)
                                      and value > 0):
            raise ValueError(f"{name}: expected a positive number of degrees, got {value!r}")
    check_span(start, end)
    entry = get_source(source, resolution=resolution, file=file, variable=variable)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir(entry)
    fetch_start = start
    resume = resume_point(store)
    if resume is None:
        check_writable(store, "sst", "url")  # before fetching anything
    if entry.files != "single" and resume is not None:
        # Re-fetch from the start of the period holding the resume point (a daily product
        # resampled to months needs the whole month).
        period = preprocess.period_start([resume], preprocess.canonical_freq(freq) or "D")[0]
        fetch_start = max(pd.Timestamp(start), period) if start is not None else period
    if (
        fetch_start is not None
        and end is not None
        and pd.Timestamp(fetch_start) > pd.Timestamp(end)
    ):
        return _result({"store": str(store), "source": entry.name}, 0, 0, 0, str(store))
    fetch_start, fetch_end = default_span(entry, fetch_start, end)
    with dask_client(dask_address):
        files = fetch_files(entry, cache, start=fetch_start, end=fetch_end, mirror=mirror)
        return files_to_store(
            files, entry, store, grid=grid, freq=freq, start=start, end=end, units=units
        )
