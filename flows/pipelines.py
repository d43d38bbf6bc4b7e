"""The sstcast flows: ingest, train, forecast, and `sst_pipeline` chaining them.

Flows hold no maths: they order the tasks of flows/tasks.py, pass paths and dates between
them and publish artifacts (flows/artifacts.py: the report, on the forecast run and on the
parent `sst-pipeline` run, one scores table, and a progress bar per long step). Parameters
are the typed models of flows/params.py (the form a deployment shows in the Prefect UI).
Nothing is persisted to Prefect's result storage (`persist_result=False`, inherited by the
tasks): see the trust boundary in flows/tasks.py.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger

from flows.artifacts import publish_report_file, report_task, standalone_path
from flows.params import (
    ForecastParameters,
    IngestParameters,
    PipelineParameters,
    TrainParameters,
)
from flows.runtime import dask_runner
from flows.tasks import (
    archive_task,
    baseline_task,
    evaluate_task,
    fetch_task,
    hindcast_task,
    latest_time_task,
    maps_task,
    resolve_run_task,
    store_task,
    train_task,
    truth_covers_task,
)


@flow(name="ingest", log_prints=True, persist_result=False)
def ingest_flow(params: IngestParameters, dask_address: str | None = None) -> dict:
    """Fetch the source's files (cached, retried) and append them to the zarr store."""
    files = fetch_task(params.source, params.download_dir(), params.start, params.end,
                       params.mirror, params.file, params.variable,
                       params.synthetic_resolution)
    return store_task(files, params.source, params.store, params.grid, params.freq,
                      params.start, params.end, dask_address, params.units, params.file,
                      params.variable, params.synthetic_resolution)


@flow(name="train", log_prints=True, persist_result=False)
def train_flow(params: TrainParameters) -> str:
    """Train the Mechanistic Identifier (S-MNN) on the store; returns the checkpoint path."""
    return train_task(params.store, params.run_folder(), params.config, params.resume,
                      params.train_end)


@flow(name="forecast", log_prints=True, persist_result=False, task_runner=dask_runner())
def forecast_flow(params: ForecastParameters) -> dict:
    """Forecast (hindcast over [start, end], with the learned parameters at `end` from the
    same pass), baselines, scores when the truth exists, maps and the report; with
    `archive`, every issued forecast is kept there. Each result is computed once and handed
    on: the baselines get the forecast's issue times and leads, the maps the score rows, the
    report the forecast's attributes. Model and baselines run on dask."""
    logger = get_run_logger()
    out = Path(params.out_dir)
    latest = None
    if params.start is None or params.end is None:
        latest = latest_time_task(params.store)
    start, end = params.start or latest, params.end or latest
    run_dir = resolve_run_task(params.run_dir)
    hindcast = hindcast_task.submit(run_dir, params.store, start, end, params.leads,
                                    str(out / "forecast.zarr"),
                                    str(out / "parameters.nc")).result()
    model, parameters = hindcast["forecast"], hindcast["parameters"]
    baselines = {kind: baseline_task.submit(kind, params.store, hindcast,
                                            str(out / f"{kind}.zarr"), params.train_end)
                 for kind in params.baselines}
    archived = archive_task(model, params.archive) if params.archive else None
    truth = params.truth or params.store
    baseline_paths = {kind: future.result() for kind, future in baselines.items()}
    metrics = None
    if truth_covers_task(hindcast["valid_times"], truth):
        metrics = evaluate_task(model, truth, str(out / "metrics"), baseline_paths,
                                hindcast["climatology"])
    else:
        logger.info("no truth for the valid times yet: forecast not scored")
    maps = {}
    if params.maps:
        maps = maps_task(model, str(out / "maps"), truth, metrics and metrics["rows"],
                         parameters, baseline_paths, hindcast["climatology"])
    stores = {"forecast store": model, "truth store": truth, **{
        f"{kind} store": path for kind, path in baseline_paths.items()}}
    files = {"maps": str(out / "maps"), "learned parameters": parameters,
             "report with the maps embedded": str(standalone_path(out / "report.md"))}
    report = report_task(hindcast, params.store, str(out), metrics, maps, stores, files,
                         archive=params.archive)
    # On the flow run itself, so its Artifacts tab shows the report first.
    publish_report_file(standalone_path(report))
    return {"forecast": model, "baselines": baseline_paths, "metrics": metrics and {
        k: metrics[k] for k in ("csv", "json")}, "maps": maps, "report": report,
        "parameters": parameters, "archived": archived}


@flow(name="sst-pipeline", log_prints=True, persist_result=False)
def sst_pipeline(params: PipelineParameters, dask_address: str | None = None) -> dict:
    """ingest -> train (unless runs/ holds a trained model and retrain is off) -> forecast."""
    logger = get_run_logger()
    ingested = ingest_flow(params.ingest(), dask_address)
    train = params.train()
    existing = None if params.retrain else resolve_run_task(train.run_dir, required=False)
    if existing:
        logger.info("reusing the trained run in %s", existing)
    else:
        train_flow(train)
    runner = dask_runner(dask_address)
    products = forecast_flow.with_options(task_runner=runner)(params.forecast())
    # The report also on the run the user launched: the first thing its Artifacts tab shows.
    publish_report_file(standalone_path(products["report"]))
    return {"ingest": ingested, **products}
