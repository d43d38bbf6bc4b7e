"""The scheduled flows: what the deployments of flows/deployments.py run, unattended.

All four take the same `OperationParameters` (one working folder). Each first brings a
fresh folder up to what it needs, in order, whatever the crons: no store -> ingest, no
trained model -> train. A run that finds nothing to forecast from (or to train on, or to
verify) says so in one line and ends Completed with the state name "Skipped", not failed
and not retried.
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.states import Completed

from flows.params import OperationParameters
from flows.pipelines import forecast_flow, ingest_flow, train_flow
from flows.runtime import dask_runner
from flows.tasks import readiness, resolve_run_task
from flows.verification import publish_task, verify_task

SKIPPED = "Skipped"
# The checks below (store there? model there? enough data?) are plain calls, not tasks: they
# are quick reads, and a task run each would add server round trips to every scheduled run.


def _skip(message: str):
    get_run_logger().warning(message)
    return Completed(name=SKIPPED, message=message, data={"skipped": message})


def _ensure_store(params: OperationParameters, dask_address: str | None) -> None:
    from pipeline.data.store import store_exists

    store = params.paths()["store"]
    if not store_exists(store):
        get_run_logger().info("bootstrap: no store at %s yet, ingesting first", store)
        ingest_flow(params.pipeline().ingest(), dask_address)


@flow(name="scheduled-ingest", log_prints=True, persist_result=False)
def scheduled_ingest(params: OperationParameters, dask_address: str | None = None) -> dict:
    """Fetch the source's new files and append them to WORKDIR/store.zarr."""
    return ingest_flow(params.pipeline().ingest(), dask_address)


@flow(name="scheduled-retrain", log_prints=True, persist_result=False)
def scheduled_retrain(params: OperationParameters, dask_address: str | None = None):
    """Train a new run (WORKDIR/runs/<UTC stamp>) on all data so far (ingesting first on a
    fresh folder); forecasts pick it up from the next run on."""
    _ensure_store(params, dask_address)
    p = params.paths()
    train = params.pipeline().train()
    reason = readiness(p["store"], p["run_dir"], params.config, training=True)
    if reason:
        return _skip(f"retrain skipped: nothing to train on: {reason}")
    return train_flow(train)


@flow(name="scheduled-forecast", log_prints=True, persist_result=False)
def scheduled_forecast(params: OperationParameters, dask_address: str | None = None):
    """Forecast from the store's latest time with the newest run, add it to the archive,
    score, map, report (with the verification history). A fresh folder is ingested and a
    first model trained first."""
    logger = get_run_logger()
    _ensure_store(params, dask_address)
    p = params.paths()
    reason = readiness(p["store"], p["run_dir"], params.config)
    if reason:
        return _skip(f"forecast skipped: nothing to forecast from: {reason}")
    if resolve_run_task.fn(p["run_dir"], required=False) is None:
        logger.info("bootstrap: no trained model in %s yet, training the first", p["run_dir"])
        train_flow(params.pipeline().train())
    runner = dask_runner(dask_address)
    return forecast_flow.with_options(task_runner=runner)(params.forecast())


@flow(name="verify", log_prints=True, persist_result=False)
def verify_flow(params: OperationParameters, dask_address: str | None = None):
    """Score every archived forecast whose valid times are now observed (each lead once),
    keep the history per lead, region and model version against the baselines, and publish
    it (table artifact, skill-over-time figure, verification report)."""
    from pipeline.data.store import store_exists
    from pipeline.evaluation.archive import entries

    p = params.paths()
    if not store_exists(p["store"]) or not entries(p["archive"]):
        return _skip(f"verify skipped: nothing to verify yet (no store at {p['store']} or "
                     f"no forecast archived in {p['archive']})")
    scored = verify_task(p["archive"], p["store"])
    products = publish_task(p["archive"], p["out_dir"])
    return {**scored, **products}
