"""Fetch a product's files into a local cache, robustly.

- Streams to `<file>.part` and renames on success, so a file in the cache is always whole.
- Resumes a `.part` with an HTTP Range request where the server allows it (206), restarts
  otherwise (200).
- Retries dropped connections and 5xx with exponential backoff; a 404 is a clear error naming
  the URL (except trailing days of a daily product that are not published yet). A server
  silent for TIMEOUT_S is reported at once, 401/403 are never retried, and every file has an
  overall DEADLINE_S (all attempts together), so a trickling mirror cannot hold a run forever.
- Credentials in a mirror URL (`https://user:TOKEN@host/...`) are sent as HTTP Basic auth and
  shown as `***` in every error message and note.
- Checks each download opens as netCDF with the expected variable and coordinates before it
  is accepted; accepted files get a `<file>.ok` note (size, and for files updated in place,
  the server's Last-Modified/Content-Length) so they are not fetched or opened again.
- Downloads run in a bounded thread pool with a progress bar (`pipeline.progress`).
- OISST daily: a day without its final file falls back to `_preliminary`; when the final file
  appears later it replaces the preliminary one.
"""

from __future__ import annotations

import base64
import json
import math
import os
import shutil
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path
from urllib.parse import unquote, urlparse

import pandas as pd

from pipeline.data.sources import SYNTHETIC_DEFAULT_END, Source, get_source
from pipeline.progress import Progress

CHUNK = 1 << 20
MAX_WORKERS = 4
RETRIES = 5
BACKOFF_S = 0.2
TIMEOUT_S = 60.0  # longest silence of a server (connect, headers, each read)
DEADLINE_S = 1800.0  # longest download of one file, all attempts together


class FetchError(OSError):
    """A file could not be fetched; the message names the URL. `transient`: the server timed
    out or kept failing (5xx, dropped connections), so a later attempt may succeed."""

    def __init__(self, message: str, url: str, transient: bool = False):
        super().__init__(message)
        self.url = url
        self.transient = transient


class NotFoundError(FetchError):
    """The server answered 404 for the URL."""


class CorruptFileError(FetchError, ValueError):
    """A fetched file does not open as the expected netCDF."""


@dataclass(frozen=True)
class _Remote:
    """What the server says about a file: size and Last-Modified (either may be None)."""

    size: int | None
    modified: str | None


# ----------------------------------------------------------------------------------------
# Transport: http(s):// with Range resume and retries, file:// by streaming copy.


def _is_transient(error: BaseException) -> bool:
    if isinstance(error, urllib.error.HTTPError):
        return error.code >= 500 or error.code == 429
    return isinstance(error, TimeoutError | ConnectionError | HTTPException | urllib.error.URLError)


def _local_path(url: str) -> Path:
    return Path(unquote(urlparse(url).path))


def redact(url: str) -> str:
    """`url` with any user:password replaced by `***`, for messages and notes."""
    parts = urlparse(url)
    if parts.username is None and parts.password is None:
        return url
    return parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]).geturl()


def _request(url: str, headers: dict | None = None, method: str | None = None):
    """A Request without the URL's credentials (urllib would take `user:TOKEN@host` for the
    host name and echo it), sending them as HTTP Basic auth instead."""
    parts = urlparse(url)
    headers = dict(headers or {})
    if parts.username is not None or parts.password is not None:
        pair = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        url = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
    return urllib.request.Request(url, headers=headers, method=method)


def _head(url: str, timeout: float) -> _Remote:
    if url.startswith("file://"):
        path = _local_path(url)
        if not path.exists():
            raise NotFoundError(f"not found (404): {url}", url)
        stat = path.stat()
        return _Remote(stat.st_size, str(stat.st_mtime_ns))
    try:
        with urllib.request.urlopen(_request(url, method="HEAD"), timeout=timeout) as response:
            size = response.headers.get("Content-Length")
            return _Remote(int(size) if size else None, response.headers.get("Last-Modified"))
    except urllib.error.HTTPError as error:
        if error.code == 404:
            raise NotFoundError(f"not found (404): {redact(url)}", redact(url)) from None
        raise FetchError(f"fetching {redact(url)} failed: {error}", redact(url),
                         transient=_is_transient(error)) from None


def _stream(url: str, part: Path, timeout: float, deadline: float = math.inf) -> _Remote:
    """One attempt at bringing `part` to the full file, resuming from its current size;
    `deadline` is a time.monotonic() value."""
    if url.startswith("file://"):
        src = _local_path(url)
        if not src.exists():
            raise NotFoundError(f"not found (404): {url}", url)
        with src.open("rb") as fin, part.open("wb") as fout:
            shutil.copyfileobj(fin, fout, CHUNK)
        stat = src.stat()
        return _Remote(stat.st_size, str(stat.st_mtime_ns))
    have = part.stat().st_size if part.exists() else 0
    # The validator (ETag or Last-Modified) of the response that started `part`: with
    # If-Range, a server whose file changed since then sends it whole (200), not a tail.
    validator_file = part.with_name(part.name + ".validator")
    validator = validator_file.read_text() if have and validator_file.exists() else None
    headers = {"Range": f"bytes={have}-"} if have else {}
    if have and validator:
        headers["If-Range"] = validator
    shown = redact(url)
    try:
        response = urllib.request.urlopen(_request(url, headers), timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 404:
            raise NotFoundError(f"not found (404): {shown}", shown) from error
        if error.code == 416 and have:  # our partial file is not a prefix any more
            part.unlink()
            raise ConnectionError(f"range not satisfiable, restarting {shown}") from error
        raise
    with response:
        resumed = response.status == 206
        length = response.headers.get("Content-Length")
        expected = (have if resumed else 0) + int(length) if length else None
        if not resumed:
            fresh = response.headers.get("ETag") or response.headers.get("Last-Modified")
            if fresh:
                validator_file.write_text(fresh)
            else:
                validator_file.unlink(missing_ok=True)
        with part.open("ab" if resumed else "wb") as out:
            # read1: whatever has arrived, so the deadline is checked even while a server
            # trickles (read(CHUNK) would wait for a whole MiB).
            while block := response.read1(CHUNK):
                out.write(block)
                if time.monotonic() > deadline:
                    raise _DeadlineError(f"still incomplete after the deadline: {shown}")
        size = part.stat().st_size
        if expected is not None and size != expected:
            raise ConnectionError(f"connection dropped at {size} of {expected} bytes: {shown}")
        total = response.headers.get("Content-Range", "").rpartition("/")[2]
        full = int(total) if total.isdigit() else size
        validator_file.unlink(missing_ok=True)
        return _Remote(full, response.headers.get("Last-Modified"))


class _DeadlineError(TimeoutError):
    """The overall deadline of one file passed."""


def _timed_out(error: BaseException) -> bool:
    return isinstance(error, TimeoutError) or (
        isinstance(error, urllib.error.URLError) and isinstance(error.reason, TimeoutError)
    )


def download(url: str, part: Path, *, retries=None, timeout=None, deadline=None):
    """Bring `part` to the complete file at `url`, resuming and retrying; returns _Remote.
    retries, timeout (longest silence, s), deadline (all attempts, s): default RETRIES,
    TIMEOUT_S, DEADLINE_S, read when called.

    Raises NotFoundError on 404 and FetchError (the URL without credentials) when the server
    is silent for `timeout`, refuses (4xx), the deadline passes, or `retries` attempts fail.
    """
    retries = RETRIES if retries is None else retries
    timeout = TIMEOUT_S if timeout is None else timeout
    deadline = DEADLINE_S if deadline is None else deadline
    shown = redact(url)
    end = time.monotonic() + deadline
    part.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(retries):
        try:
            return _stream(url, part, min(timeout, max(end - time.monotonic(), 0.01)), end)
        except NotFoundError:
            raise
        except (OSError, HTTPException) as error:
            # `from None`: the chained urllib error may hold the URL as typed, credentials too.
            if isinstance(error, _DeadlineError) or time.monotonic() >= end:
                raise FetchError(
                    f"fetching {shown} failed: not complete within the deadline of "
                    f"{deadline:g} s (pipeline.data.fetch.DEADLINE_S)", shown, transient=True
                ) from None
            if _timed_out(error):  # a silent server rarely answers a second try; say so now
                raise FetchError(
                    f"fetching {shown} failed: no data from the server for {timeout:g} s "
                    "(pipeline.data.fetch.TIMEOUT_S)", shown, transient=True
                ) from None
            if isinstance(error, urllib.error.HTTPError) and error.code in (401, 403):
                raise FetchError(
                    f"fetching {shown} failed: {error} (check the mirror's credentials)", shown
                ) from None
            if not _is_transient(error) and not isinstance(error, ConnectionError):
                raise FetchError(f"fetching {shown} failed: {error}", shown) from None
            if attempt == retries - 1:
                raise FetchError(
                    f"fetching {shown} failed after {retries} attempts: {error}", shown,
                    transient=True,
                ) from None
            time.sleep(min(BACKOFF_S * 2**attempt, max(end - time.monotonic(), 0)))
    raise AssertionError("unreachable")  # pragma: no cover


# ----------------------------------------------------------------------------------------
# Acceptance: a file is only kept when it opens as the expected netCDF.


def check_file(path: Path, source: Source, *, url: str = "", variable: str | None = None):
    """Open `path` as netCDF and check the expected variable and coordinates; read the data
    so a truncated or corrupt file fails here. Raises CorruptFileError naming `url`."""
    import netCDF4
    from xarray.backends.locks import HDF5_LOCK  # HDF5 is not thread-safe; share xarray's lock

    variable = variable or source.variable
    where = url or str(path)
    if source.cf_discover:
        return _check_cf_file(path, source, where)
    lat, lon = source.lat_name, source.lon_name
    try:
        with HDF5_LOCK, netCDF4.Dataset(path) as nc:
            missing = [n for n in (variable, lat, lon) if n not in nc.variables]
            if missing:
                raise CorruptFileError(
                    f"{where}: expected netCDF variables {missing} of the {source.name} "
                    f"layout, found {sorted(nc.variables)}",
                    where,
                )
            dims = nc[variable].dimensions
            if variable == source.variable:
                want = ("time", *source.squeeze_dims, lat, lon)
                if tuple(dims) != want:
                    raise CorruptFileError(
                        f"{where}: expected {variable} with dims {want} ({source.name} layout), "
                        f"got {tuple(dims)}",
                        where,
                    )
            nc.set_auto_mask(False)
            nc[variable][:]  # read it all: catches truncated or corrupt chunks
    except CorruptFileError:
        raise
    except (OSError, RuntimeError, IndexError, KeyError) as error:
        raise CorruptFileError(
            f"{where}: not a readable netCDF file of the {source.name} layout ({error})", where
        ) from error


def _check_cf_file(path: Path, source: Source, where: str) -> None:
    """local-cf: the file opens, CF attributes identify its SST variable on a regular grid
    (`pipeline.data.cf_source`), and its data reads whole."""
    import xarray as xr

    from pipeline.data.cf_source import find_layout

    try:  # xarray takes the HDF5 lock itself (holding it here would deadlock)
        with xr.open_dataset(path, engine="netcdf4", decode_times=False) as ds:
            layout = find_layout(ds, source.variable or None, where)
            ds[layout.variable].load()  # read it all: catches truncated or corrupt chunks
    except ValueError:
        raise
    except (OSError, RuntimeError, IndexError, KeyError) as error:
        raise CorruptFileError(f"{where}: not a readable netCDF file ({error})", where) from error


def _gunzip(packed: Path, out: Path, where: str) -> None:
    """Unpack the gzip file `packed` into `out` (CorruptFileError for a broken archive)."""
    import gzip
    import zlib

    try:
        with gzip.open(packed, "rb") as fin, out.open("wb") as fout:
            shutil.copyfileobj(fin, fout, CHUNK)
    except (OSError, EOFError, zlib.error) as error:
        out.unlink(missing_ok=True)
        raise CorruptFileError(f"{where}: not a whole gzip file ({error})", where) from error


def _note(path: Path) -> Path:
    return path.with_name(path.name + ".ok")


def _accepted(path: Path) -> dict | None:
    """The acceptance note of a cached file, or None when it is missing or stale."""
    note = _note(path)
    if not (path.exists() and note.exists()):
        return None
    try:
        info = json.loads(note.read_text())
    except (OSError, ValueError):
        return None
    return info if info.get("size") == path.stat().st_size else None


def fetch_one(url: str, dest: Path, source: Source, *, variable=None, refresh=False) -> Path:
    """Fetch `url` to `dest` unless an accepted copy is there.

    `refresh`: the file is updated in place upstream (single-file products), so compare the
    server's size/Last-Modified with the note and fetch again when they changed.
    """
    packed = source.compression == "gzip" and dest.suffix == ".gz"
    final = dest.with_suffix("") if packed else dest  # a gzipped file is kept unpacked
    info = _accepted(final)
    if info is not None and not refresh:
        return final
    if info is not None:
        remote = _head(url, TIMEOUT_S)
        if (remote.size, remote.modified) == (info.get("remote_size"), info.get("modified")):
            return final
    part = dest.with_name(dest.name + ".part")
    remote = download(url, part)
    try:
        if packed:
            unpacked = final.with_name(final.name + ".part")
            _gunzip(part, unpacked, redact(url))
            part.unlink()
            part = unpacked
        check_file(part, source, url=redact(url), variable=variable)
    except ValueError:  # CorruptFileError, or a file whose layout cannot be read
        part.unlink(missing_ok=True)  # never resume from a corrupt prefix
        raise
    dest = final
    os.replace(part, dest)
    note = {
        "url": redact(url),
        "size": dest.stat().st_size,
        "remote_size": remote.size,
        "modified": remote.modified,
        "retrieved": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"),
    }
    _note(dest).write_text(json.dumps(note))
    return dest


# ----------------------------------------------------------------------------------------
# Products.


def _daily(source: Source, day: pd.Timestamp, dest_dir: Path, mirror) -> Path | None:
    """One OISST day: the final file, else the preliminary one, else None (not published)."""
    final_rel = source.relative_path(day)
    final = dest_dir / final_rel
    if _accepted(final) is not None:
        return final
    prelim_rel = (
        source.relative_path(day, preliminary=True) if source.preliminary_filename else None
    )
    try:
        path = fetch_one(source.url(final_rel, mirror), final, source)
    except NotFoundError:
        if prelim_rel is None:
            return None
        try:
            return fetch_one(source.url(prelim_rel, mirror), dest_dir / prelim_rel, source)
        except NotFoundError:
            return None
    if prelim_rel is not None:  # the final file replaces an earlier preliminary one
        for stale in (dest_dir / prelim_rel, _note(dest_dir / prelim_rel)):
            stale.unlink(missing_ok=True)
    return path


def _per_step(source: Source, dest_dir: Path, start, end, mirror, workers: int) -> list[Path]:
    times = source.file_times(start, end)
    if source.files == "daily":
        job = lambda t: _daily(source, t, dest_dir, mirror)  # noqa: E731
    else:

        def job(t):
            rel = source.relative_path(t)
            try:
                return fetch_one(source.url(rel, mirror), dest_dir / rel, source)
            except NotFoundError:
                return None

    with (
        ThreadPoolExecutor(max_workers=workers) as pool,
        Progress(len(times), f"fetch {source.name}", unit="file", key="progress-fetch") as bar,
    ):
        results = []
        for path in pool.map(job, times):
            results.append(path)
            bar.update()
    found = [i for i, p in enumerate(results) if p is not None]
    if not found:
        url = redact(source.url(source.relative_path(times[0]), mirror))
        raise NotFoundError(
            f"not found (404): no {source.name} file for {start}..{end}; first URL tried: {url}",
            url,
        )
    gaps = [i for i in range(found[0], found[-1] + 1) if results[i] is None]
    if found[0] != 0:
        gaps.insert(0, 0)
    if gaps:
        url = redact(source.url(source.relative_path(times[gaps[0]]), mirror))
        raise NotFoundError(f"not found (404): {url} (a gap in the {source.name} files)", url)
    # Trailing steps missing: not published yet (OISST lags by about two weeks); skipped.
    return [p for p in results if p is not None]


def _generate(source: Source, dest_dir: Path, start, end) -> list[Path]:
    """Synthetic sources: write the files in the product's layout (no network)."""
    from pipeline.data.synthetic import write_layout

    kwargs = {"resolution": source.resolution, "seed": source.seed}
    layout = source.synthetic_layout
    if source.files == "single":
        path = dest_dir / source.relative_path()
        stamp = f"{pd.Timestamp(start):%Y-%m-%d}..{pd.Timestamp(end):%Y-%m-%d}"
        note = _accepted(path)
        if note is not None and note.get("span") == stamp and note.get("grid") == kwargs:
            return [path]
        write_layout(layout, dest_dir, start, end, **kwargs)
        _note(path).write_text(
            json.dumps(
                {"size": path.stat().st_size, "span": stamp, "grid": kwargs, "url": "synthetic"}
            )
        )
        return [path]
    days = source.file_times(start, end)
    missing = [d for d in days if _accepted(dest_dir / source.relative_path(d)) is None]
    for block in _runs(missing):
        for path in write_layout(layout, dest_dir, block[0], block[-1], **kwargs):
            _note(path).write_text(json.dumps({"size": path.stat().st_size, "url": "synthetic"}))
    return [dest_dir / source.relative_path(d) for d in days]


def _runs(days: list[pd.Timestamp]) -> list[list[pd.Timestamp]]:
    """Split sorted days into runs of consecutive days."""
    runs: list[list[pd.Timestamp]] = []
    for day in days:
        if runs and day - runs[-1][-1] == pd.Timedelta(days=1):
            runs[-1].append(day)
        else:
            runs.append([day])
    return runs


def default_span(source: Source, start=None, end=None) -> tuple[pd.Timestamp, pd.Timestamp]:
    """Resolve `start`/`end` (None: the product's first date / today, or the synthetic
    default span). Raises ValueError when a per-day product gets no start."""
    if start is None:
        if source.default_start is None:
            raise ValueError(
                f"start: the {source.name} source has one file per day; give a start date "
                "(e.g. --start 2020-01-01)"
            )
        start = source.default_start
    if end is None:
        end = SYNTHETIC_DEFAULT_END if source.synthetic else pd.Timestamp.now().normalize()
    start, end = pd.Timestamp(start), pd.Timestamp(end)
    if start > end:
        raise ValueError(
            f"start, end: expected start <= end, got {start:%Y-%m-%d} > {end:%Y-%m-%d}"
        )
    return start, end


def fetch_files(
    source, dest_dir, *, start=None, end=None, mirror=None, workers: int = MAX_WORKERS
) -> list[Path]:
    """Fetch (or, for synthetic sources, generate) the files of `source` into `dest_dir`,
    keeping the product's layout; returns the paths in time order.

    Single-file products return [data file] (plus the mask file when the product has one,
    last). Per-step products return one file per available step; steps at the end of the span
    that are not published yet are left out. Raises NotFoundError/FetchError naming the URL.
    """
    source = get_source(source)
    dest_dir = Path(dest_dir)
    start, end = default_span(source, start, end)
    if not (isinstance(workers, int) and workers >= 1):
        raise ValueError(f"workers: expected a positive int, got {workers!r}")
    if source.synthetic:
        if mirror is not None:
            raise ValueError(
                "mirror: synthetic sources are generated locally; to serve synthetic files "
                "from a mirror, use the product's name (e.g. cobe2) with that mirror"
            )
        with Progress(1, f"generate {source.name}", unit="layout", key="progress-fetch") as bar:
            files = _generate(source, dest_dir, start, end)
            bar.update()
        return files
    if source.files == "single":
        rel = source.relative_path()
        mask_rel = source.mask_path()
        with Progress(1 + bool(mask_rel), f"fetch {source.name}", unit="file",
                      key="progress-fetch") as bar:
            paths = [fetch_one(source.url(rel, mirror), dest_dir / rel, source, refresh=True)]
            bar.update()
            if mask_rel:
                paths.append(
                    fetch_one(
                        source.url(mask_rel, mirror),
                        dest_dir / mask_rel,
                        source,
                        variable=source.mask_variable,
                    )
                )
                bar.update()
        return paths
    return _per_step(source, dest_dir, start, end, mirror, workers)
