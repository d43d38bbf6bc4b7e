"""Prefect tasks: each wraps one pipeline function and passes paths, URLs and dates.

Retries (with exponential backoff) only on the I/O tasks (fetch, store writes, reading a
store's time axis), and there only for transient failures (`transient`: timeouts, connection
resets, HTTP 5xx, a store locked by another writer); bad input, a missing file or URL and
compute errors fail at once. No task persists its result or reads one back
(`cache_policy=NONE`; the flows set `persist_result=False`, which the tasks inherit):
Prefect deserialises a stored result with whatever serializer the stored file names,
cloudpickle included, so a file planted in the result location
(`PREFECT_LOCAL_STORAGE_PATH`, `sstcast --results`) would run code on the next cached run.
Re-runs are cheap without Prefect's cache: `fetch_files` keeps accepted files in its own
download folder and fetches only what is new or changed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, is_dataclass
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NONE
from prefect.tasks import exponential_backoff

from flows.progress_artifacts import install as install_progress_artifacts

IO_RETRIES = 3
IO_BACKOFF = exponential_backoff(backoff_factor=2)  # 2 s, 4 s, 8 s (with jitter)
_TRANSIENT_ERRNO = {"ETIMEDOUT", "ECONNRESET", "ECONNREFUSED", "ECONNABORTED", "EHOSTUNREACH",
                    "ENETUNREACH", "ENETDOWN", "EAGAIN", "EPIPE", "ESTALE"}


def transient(error: BaseException | None) -> bool:
    """Whether a failed I/O task may succeed when retried: timeouts, dropped or refused
    connections, HTTP 5xx/429, a fetch that gave up on a failing server, a store locked by
    another writer. Not: bad input (ValueError, TypeError), a missing file or URL
    (FileNotFoundError, 404), permissions, a full disk, anything else."""
    import errno
    import http.client
    import urllib.error

    from pipeline.data.fetch import FetchError
    from pipeline.data.lock import StoreLocked

    codes = {getattr(errno, name) for name in _TRANSIENT_ERRNO if hasattr(errno, name)}
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, urllib.error.HTTPError):
            return error.code >= 500 or error.code == 429
        if isinstance(error, FetchError):
            return error.transient
        if isinstance(error, ValueError | TypeError | LookupError | FileNotFoundError
                      | PermissionError | IsADirectoryError | NotADirectoryError):
            return False
        if isinstance(error, TimeoutError | ConnectionError | http.client.HTTPException
                      | StoreLocked | urllib.error.URLError):
            return True
        if isinstance(error, OSError) and error.errno in codes:
            return True
        error = error.__cause__ or error.__context__
    return False


def retry_transient(task, task_run, state) -> bool:
    """Prefect's `retry_condition_fn`: retry a failed I/O task only when `transient`."""
    error = state.data if isinstance(state.data, BaseException) else None
    if error is None:
        try:
            error = state.result(raise_on_failure=False)
        except Exception as raised:  # noqa: BLE001 - reading the failure itself failed
            error = raised
    return transient(error if isinstance(error, BaseException) else None)


_IO = dict(retries=IO_RETRIES, retry_delay_seconds=IO_BACKOFF,
           retry_condition_fn=retry_transient, cache_policy=NONE)


def _plain(value):
    """JSON-able summary of a pipeline result (dataclass or mapping); paths become str."""
    if is_dataclass(value):
        value = asdict(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


# --------------------------------------------------------------------------- data


@task(name="fetch", **_IO, persist_result=False)
def fetch_task(source: str, dest_dir: str, start: dt.date | None, end: dt.date | None,
               mirror: str | None, file: str | None = None, variable: str | None = None,
               resolution: float | None = None) -> list[str]:
    """Download (or generate, for `synthetic`) the source's files into `dest_dir`; `file`
    and `variable` name the local-cf source's file, `resolution` a synthetic grid."""
    install_progress_artifacts()
    from pipeline.data.fetch import fetch_files
    from pipeline.data.sources import get_source

    entry = get_source(source, resolution=resolution, file=file, variable=variable)
    files = fetch_files(entry, dest_dir, start=start, end=end, mirror=mirror)
    get_run_logger().info("fetched %d file(s) of %s into %s", len(files), source, dest_dir)
    return [str(f) for f in files]


@task(name="store", **_IO)
def store_task(files: list[str], source: str, store: str, grid: float | None,
               freq: str | None = None, start: dt.date | None = None,
               end: dt.date | None = None, dask_address: str | None = None,
               units: str | None = None, file: str | None = None,
               variable: str | None = None, resolution: float | None = None) -> dict:
    """Preprocess the fetched files and append them to the canonical zarr store (idempotent,
    so a retry after a failed write is safe); dask work goes to `dask_address` if given."""
    install_progress_artifacts()
    from pipeline.data.ingest import dask_client, files_to_store
    from pipeline.data.sources import get_source

    entry = get_source(source, resolution=resolution, file=file, variable=variable)
    with dask_client(dask_address):
        result = files_to_store([Path(f) for f in files], entry, store, grid=grid,
                                freq=freq, start=start, end=end, units=units)
    return _plain(result)


@task(name="latest-time", **_IO)
def latest_time_task(store: str) -> dt.date:
    """The last time step of a store (the default issue time)."""
    from pipeline.data.store import open_store

    return open_store(store)["time"].to_index()[-1].date()


# --------------------------------------------------------------------------- model


def _config(config: str):
    """A preset name or a TOML path -> pipeline.model.config.Config."""
    from pipeline.model.config import named_config

    return named_config(config)


def _trained(folder: Path) -> bool:
    from pipeline.model.run import BEST

    return (folder / BEST).is_file()


@task(name="resolve-run", cache_policy=NONE)
def resolve_run_task(run_dir: str, required: bool = True) -> str | None:
    """`run_dir` if it holds a trained model, else its newest trained subfolder (runs are
    named by UTC time stamp, so the last in sorted order is the newest)."""
    folder = Path(run_dir)
    if _trained(folder):
        return str(folder)
    runs = sorted(p for p in folder.glob("*") if p.is_dir() and _trained(p)) if (
        folder.is_dir()) else []
    if runs:
        return str(runs[-1])
    if required:
        raise FileNotFoundError(f"run_dir: no trained model in {run_dir} or its subfolders; "
                                "run the train flow first")
    return None


@task(name="train", cache_policy=NONE)
def train_task(store: str, run_dir: str, config: str, resume: bool,
               train_end: dt.date | None) -> str:
    """Train into `run_dir`; a progress artifact follows the optimiser steps and, after an
    early stop, says at which step training ended (the terminal bar is train's own)."""
    install_progress_artifacts()
    from pipeline.model.train import train
    from pipeline.progress import Progress

    logger = get_run_logger()
    settings = _config(config)
    total = settings.train.max_steps

    with Progress(total, "train", unit="step", key="progress-train", bar=False) as bar:
        def progress(fraction: float, metrics: dict) -> None:
            bar.update_to(round(float(fraction) * total))
            logger.info("training step %d of %d: loss %.4g", metrics.get("step", bar.n), total,
                        float(metrics.get("loss", float("nan"))))

        checkpoint = train(store, run_dir, config=settings, resume=resume,
                           train_end=train_end, progress=progress)
        bar.update_to(_last_step(run_dir, bar.n))
        if bar.n < total:
            bar.note = "early stop (validation loss stopped improving, or time budget spent)"
            logger.info("training stopped early at step %d of %d: %s", bar.n, total, bar.note)
    return str(checkpoint)


def _last_step(run_dir: str, default: float) -> float:
    """The last optimiser step in the training log (early stopping ends between logs)."""
    import json

    from pipeline.model.run import LOG

    try:
        lines = Path(run_dir, LOG).read_text().splitlines()
    except OSError:
        return default
    steps = [json.loads(line).get("step") for line in lines if line.strip()]
    return float(max([s for s in steps if isinstance(s, int | float)], default=default))


@task(name="hindcast", cache_policy=NONE)
def hindcast_task(run_dir: str, store: str, start: dt.date, end: dt.date,
                  leads: int | None, out: str, parameters: str) -> dict:
    """Forecasts issued at every store time in [start, end] -> forecast store `out`, and in
    the same pass the learned latents and ODE parameters at `end` -> netCDF `parameters`.
    Returns both paths and what the later tasks need to know of the forecast (issue times,
    leads, valid times, attributes), so that none of them reopens it for that."""
    install_progress_artifacts()
    from pipeline.forecast_store import open_forecast
    from pipeline.model.forecast import hindcast_and_interpret
    from pipeline.model.run import STATS

    # Each scheduled run replaces the products of the last one (forecast stores only).
    path, maps = hindcast_and_interpret(run_dir, store, start=start, end=end, leads=leads,
                                        out=out, interpret_at=end, overwrite=True)
    Path(parameters).parent.mkdir(parents=True, exist_ok=True)
    # netCDF attributes cannot be None (a run trained on all data has train_end None).
    maps.attrs = {k: v for k, v in maps.attrs.items() if v is not None}
    maps.to_netcdf(parameters)
    written = open_forecast(path)  # its coordinates only: the values stay on disk
    return {"forecast": str(path), "parameters": parameters,
            "climatology": str(Path(run_dir) / STATS),  # the run's one fit
            "inits": [str(t) for t in written["init_time"].values],
            "leads": [int(v) for v in written["lead"].values],
            "valid_times": [str(t) for t in written["valid_time"].values.ravel()],
            "lead_units": str(written["lead"].attrs.get("units", "steps")),
            "attrs": _plain(dict(written.attrs))}


@task(name="baseline", cache_policy=NONE)
def baseline_task(kind: str, store: str, model: dict, out: str,
                  train_end: dt.date | None) -> str:
    """The `kind` baseline for the issue times and leads of the model's forecast (`model`:
    what hindcast_task returned)."""
    import xarray as xr

    from pipeline.evaluation.baselines import baseline_forecast

    # The run's own climatology unless told otherwise: one climatology fit for the model,
    # the baselines and the scores.
    fit = {"train_end": train_end} if train_end else {
        "climatology": xr.load_dataset(model["climatology"])}
    return str(baseline_forecast(kind, store, out, inits=model["inits"], leads=model["leads"],
                                 overwrite=True, **fit))


@task(name="evaluate", cache_policy=NONE)
def evaluate_task(forecast: str, truth: str, out_dir: str,
                  references: dict[str, str] | None = None,
                  climatology: str | None = None) -> dict:
    """Score a forecast store (and the baseline stores `references`, name -> store) against
    the truth, anomalies against the `climatology` file (the run's stats.nc; default: the
    truth's over the forecast's climatology period); returns paths and the table's rows."""
    install_progress_artifacts()
    import xarray as xr

    from pipeline.evaluation.metrics import evaluate

    result = evaluate(forecast, truth, out_dir, references=references,
                      climatology=xr.load_dataset(climatology) if climatology else None)
    return {"json": str(result.json_path), "csv": str(result.csv_path),
            "rows": _plain(result.table.to_dict(orient="records")),
            "summary": _plain(result.summary)}


@task(name="truth-covers", **_IO)
def truth_covers_task(valid_times: list[str], truth: str) -> bool:
    """Whether the truth store holds any of the valid times (so the forecast can be scored)."""
    import numpy as np

    from pipeline.data.store import open_store, store_exists

    if not store_exists(truth):
        return False
    valid = np.asarray(valid_times, dtype="datetime64[ns]")
    return bool(np.isin(valid, open_store(truth)["time"].values).any())


@task(name="maps", cache_policy=NONE)
def maps_task(forecast: str, out_dir: str, truth: str | None, metrics_rows: list[dict] | None,
              parameters: str | None, baselines: dict[str, str],
              climatology: str | None = None) -> dict[str, str]:
    """Draw the standard maps of a forecast run (the score table's rows as evaluate_task
    returned them; anomalies against the `climatology` file, the run's stats.nc, when it is
    monthly); returns name -> PNG path."""
    import pandas as pd
    import xarray as xr

    from pipeline.data.store import open_store
    from pipeline.forecast_store import open_forecast
    from pipeline.products.maps import calendar_climatology, write_forecast_maps

    written = write_forecast_maps(
        open_forecast(forecast).load(), out_dir,
        truth=open_store(truth).load() if truth else None,
        metrics=pd.DataFrame(metrics_rows) if metrics_rows else None,
        parameters=xr.load_dataset(parameters) if parameters else None,
        climatology=calendar_climatology(xr.load_dataset(climatology)) if climatology else None,
        baselines={k: open_forecast(v).load() for k, v in baselines.items()},
    )
    return {name: str(path) for name, path in written.items()}


# --------------------------------------------------------------------------- operation


def readiness(store: str, run_dir: str, config: str, training: bool = False) -> str | None:
    """Why nothing can be forecast from `store` yet (one line), or None: no SST, fewer steps
    than the trained run's context, or (`training`, or no trained run yet) too few steps to
    train on with `config`."""
    from pipeline.data.store import open_store, store_exists
    from pipeline.model.run import BEST, load_checkpoint
    from pipeline.model.windows import plan_splits

    if not store_exists(store):
        return f"store: no SST in {store} yet"
    times = open_store(store)["time"].values
    run = None if training else resolve_run_task.fn(run_dir, required=False)
    if run is not None:
        context = int(load_checkpoint(Path(run) / BEST)["config"]["window"]["context"])
        if len(times) < context:
            return (f"store: {len(times)} steps, the run {run} needs {context} of history "
                    "before an issue time")
        return None
    cfg = _config(config)
    try:
        plan_splits(times, val_steps=cfg.train.val_steps, context=cfg.window.context,
                    stride=cfg.window.stride)
    except ValueError as error:
        return f"store: {len(times)} steps, too few to train a model ({error})"
    return None


@task(name="archive", **_IO)
def archive_task(forecast: str, archive: str) -> list[dict]:
    """Add the issued forecasts to the archive (idempotent; a new run's re-issue is a new
    version); returns the entries."""
    from pipeline.evaluation.archive import add_forecast

    entries = add_forecast(archive, forecast)
    logger = get_run_logger()
    for entry in entries:
        logger.info("archive: issue time %s version %d from %s %s", entry["issue_time"],
                    entry["version"], entry["model_version"],
                    "added" if entry["added"] else "already archived")
    return _plain(entries)
