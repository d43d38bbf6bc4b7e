"""The forecast archive: every issued forecast kept, keyed by issue time, with its run.

A folder (local path or fsspec URL) holding

    index.json                        the committed entries: the archive's only source of truth
    entries/<issue>-v<version>.zarr   one forecast store per entry (one issue time)
    verification.csv                  the verification history (rows of metrics.evaluate scores)

Adding is idempotent: an issue time already archived from the same run is one entry; a
re-issue from another (newer) run is kept as the next version of that issue time, never
written over. Writers hold `pipeline.data.lock.store_lock` on the archive. An entry's store is
written completely first and the index (or the history) is then replaced in one write, so an
interrupted writer leaves the archive as it was: a half-written entry store is not in the
index, is never read, and is written afresh by the next writer that takes its name.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import uuid
from pathlib import Path

import fsspec
import numpy as np
import pandas as pd
import xarray as xr
from fsspec.implementations.local import LocalFileSystem

from pipeline.data.lock import store_lock
from pipeline.forecast_store import open_forecast

__all__ = [
    "ARCHIVE_FORMAT",
    "HISTORY_KEY",
    "add_forecast",
    "add_verification",
    "entries",
    "history",
    "open_entry",
    "verified_leads",
]

ARCHIVE_FORMAT = "sstcast-forecast-archive-1"
INDEX = "index.json"
HISTORY = "verification.csv"
# One history row per archived entry, lead, forecast (model or baseline) and region.
HISTORY_KEY = ["issue_time", "version", "lead", "forecast", "region"]


def _fs(archive) -> tuple[fsspec.AbstractFileSystem, str]:
    if not isinstance(archive, str | os.PathLike) or not str(archive):
        raise ValueError(f"archive: expected a folder path or fsspec URL, got {archive!r}")
    fs, path = fsspec.core.url_to_fs(str(archive))
    if isinstance(fs, LocalFileSystem):
        path = os.path.abspath(path)
    return fs, path.rstrip("/")


def _url(archive, relative: str) -> str:
    return str(archive).rstrip("/") + "/" + relative


def _read(fs, path: str) -> bytes | None:
    try:
        fs.invalidate_cache(path)
        return fs.cat_file(path)
    except FileNotFoundError:
        return None


def _replace(fs, path: str, data: bytes) -> None:
    """Write `path` in one step: readers see the old content or the new, never a part."""
    if isinstance(fs, LocalFileSystem):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{uuid.uuid4().hex}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    else:  # object stores: a single PUT is atomic
        fs.pipe_file(path, data)


def _index(archive) -> dict:
    fs, path = _fs(archive)
    raw = _read(fs, f"{path}/{INDEX}")
    if raw is None:
        if fs.exists(path) and fs.isdir(path) and any(
            Path(p).name not in ("entries", HISTORY) and not Path(p).name.endswith(".tmp")
            for p in fs.ls(path, detail=False)  # .tmp: an interrupted first commit
        ):
            raise ValueError(f"archive: expected a forecast archive or a new folder, got "
                             f"{str(archive)!r} holding other files")
        if fs.exists(path) and not fs.isdir(path):
            raise ValueError(f"archive: expected a folder, got the file {str(archive)!r}")
        return {"format": ARCHIVE_FORMAT, "entries": []}
    index = json.loads(raw)
    if index.get("format") != ARCHIVE_FORMAT:
        raise ValueError(f"archive: expected format {ARCHIVE_FORMAT!r} in "
                         f"{str(archive)!r}/{INDEX}, got {index.get('format')!r}")
    return index


def entries(archive) -> list[dict]:
    """The committed entries, by issue time then version (empty for a new archive). Each:
    issue_time (ISO), version (1, 2, ... per issue time), run, model_version (the run's
    folder name), model, leads, valid_times, path (relative), issued_at, train_end,
    climatology_start, climatology_end."""
    return sorted(_index(archive)["entries"], key=lambda e: (e["issue_time"], e["version"]))


def open_entry(archive, entry: dict) -> xr.Dataset:
    """The forecast store (one issue time) of a committed entry."""
    return open_forecast(_url(archive, entry["path"]))


def _iso(value) -> str:
    return pd.Timestamp(value).isoformat()


def _entry_data(one: xr.Dataset) -> xr.Dataset:
    one = one.load()
    for variable in one.variables.values():
        variable.encoding = {}
    return one


def add_forecast(archive, forecast, *, issued_at: dt.datetime | None = None) -> list[dict]:
    """Add every issue time of the forecast store `forecast` (path, URL or Dataset) to the
    archive; returns the entries, one per issue time, with `added` True for new ones.

    Same issue time and same run as an existing entry: nothing is written (that entry is
    returned). Same issue time from another run: a new version.
    """
    fc = open_forecast(forecast)
    attrs = dict(fc.attrs)
    run = attrs.get("run")
    if not run:
        raise ValueError("forecast: expected a `run` attribute naming the run that made it, "
                         f"got attributes {sorted(attrs)}")
    issued = (issued_at or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds")
    fs, root = _fs(archive)
    out: list[dict] = []
    with store_lock(archive):
        index = _index(archive)
        known = index["entries"]
        added = []
        for i, init in enumerate(fc.init_time.values):
            issue = _iso(init)
            same = [e for e in known + added if e["issue_time"] == issue]
            existing = next((e for e in same if e["run"] == run), None)
            if existing is not None:
                out.append({**existing, "added": False})
                continue
            version = 1 + max((e["version"] for e in same), default=0)
            relative = f"entries/{pd.Timestamp(init):%Y%m%dT%H%M%S}-v{version}.zarr"
            target = f"{root}/{relative}"
            if fs.exists(target):  # left by an interrupted writer: never committed
                fs.rm(target, recursive=True)
            one = _entry_data(fc.isel(init_time=slice(i, i + 1)))
            one.attrs.update({"archive_issue_time": issue, "archive_version": version})
            one.to_zarr(_url(archive, relative), mode="w", consolidated=False)
            entry = {
                "issue_time": issue, "version": version, "run": str(run),
                "model_version": Path(str(run)).name, "model": attrs.get("model"),
                "leads": [int(v) for v in fc.lead.values],
                "valid_times": [_iso(v) for v in fc.valid_time.values[i]],
                "path": relative, "issued_at": issued, "train_end": attrs.get("train_end"),
                "climatology_start": attrs.get("climatology_start"),
                "climatology_end": attrs.get("climatology_end"),
            }
            added.append(entry)
            out.append({**entry, "added": True})
        if added:  # the commit: one write of the whole index
            index["entries"] = known + added
            _replace(fs, f"{root}/{INDEX}", json.dumps(index, indent=1).encode())
    return out


def history(archive) -> pd.DataFrame:
    """The verification history: one row per entry, lead, forecast and region (columns
    HISTORY_KEY, run, model_version, valid_time, verified_at and the scores of
    pipeline.evaluation.metrics.evaluate); empty when nothing was verified yet."""
    fs, root = _fs(archive)
    raw = _read(fs, f"{root}/{HISTORY}")
    if raw is None:
        return pd.DataFrame(columns=[*HISTORY_KEY, "run", "model_version", "valid_time"])
    return pd.read_csv(io.BytesIO(raw))


def verified_leads(archive) -> dict[tuple[str, int], set[int]]:
    """(issue_time, version) -> the leads already verified."""
    done: dict[tuple[str, int], set[int]] = {}
    table = history(archive)
    for issue, version, lead in table[["issue_time", "version", "lead"]].drop_duplicates(
    ).itertuples(index=False):
        done.setdefault((str(issue), int(version)), set()).add(int(lead))
    return done


def add_verification(archive, rows: pd.DataFrame) -> int:
    """Append score rows to the history, keeping the first row of each HISTORY_KEY (so a
    lead verified twice stays one row); returns the number of rows added. Rows must name
    committed entries."""
    missing = [c for c in HISTORY_KEY if c not in rows.columns]
    if missing:
        raise ValueError(f"rows: expected columns {HISTORY_KEY}, missing {missing}")
    if rows.empty:
        return 0
    fs, root = _fs(archive)
    with store_lock(archive):
        committed = {(e["issue_time"], e["version"]) for e in entries(archive)}
        unknown = {(i, int(v)) for i, v in zip(rows["issue_time"], rows["version"],
                                                strict=True)} - committed
        if unknown:
            raise ValueError(f"rows: expected archived entries, got unknown (issue_time, "
                             f"version) {sorted(unknown)}")
        old = history(archive)
        new = rows.copy()
        new["version"] = new["version"].astype(int)
        new["lead"] = new["lead"].astype(int)
        combined = pd.concat([old, new], ignore_index=True) if len(old) else new
        combined = combined.drop_duplicates(HISTORY_KEY, keep="first")
        added = len(combined) - len(old)
        if added:
            _replace(fs, f"{root}/{HISTORY}",
                     combined.to_csv(index=False, float_format="%.6g").encode())
    return added


def observed(valid_times, truth_times) -> np.ndarray:
    """Which valid times (ISO strings or datetimes) are in `truth_times`."""
    return np.isin(pd.DatetimeIndex(list(valid_times)).values,
                   pd.DatetimeIndex(truth_times).values)
