"""Flow plumbing on a real Prefect server: tasks run in order, pass paths, publish artifacts.
The numbers themselves are checked by the library tests (tests/pipeline)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest

from flows import cli_ops
from flows.params import ForecastParameters, PipelineParameters, TrainParameters

# These tests share the session's Prefect server (conftest.py): one xdist worker.
pytestmark = pytest.mark.xdist_group("prefect")


def _artifacts(key_prefix: str = "") -> dict[str, list]:
    """The server's artifacts whose key starts with `key_prefix`, by key (newest first)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(limit=200, sort=ArtifactSort.CREATED_DESC)
    out: dict[str, list] = {}
    for artifact in artifacts:
        if artifact.key and artifact.key.startswith(key_prefix):
            out.setdefault(artifact.key, []).append(artifact)
    return out


def _task_states(flow_run_id) -> dict[str, str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(
            id=FlowRunFilterId(any_=[flow_run_id])))
    return {run.task_key.split("-")[0]: run.state.name for run in runs}


def test_ingest_rerun_fetches_from_the_download_folder_and_adds_nothing(tiny_workdir):
    from flows.params import IngestParameters
    from flows.pipelines import ingest_flow
    from pipeline.data.store import open_store

    params = IngestParameters(store=str(tiny_workdir / "store.zarr"), start="1995-01-01",
                              end="2004-12-01", grid=6.0)
    fetched = Path(params.download_dir(), "Datasets/COBE2/sst.mon.mean.nc")
    written = fetched.stat().st_mtime_ns
    state = ingest_flow(params, return_state=True)
    assert state.is_completed() and state.result()["added"] == 0
    states = _task_states(state.state_details.flow_run_id)
    # No Prefect result cache (tests/faults/test_result_storage.py): fetch runs and finds
    # its files already accepted in the download folder.
    assert states["fetch_task"] == "Completed" and states["store_task"] == "Completed"
    assert fetched.stat().st_mtime_ns == written  # not generated again
    store = open_store(str(tiny_workdir / "store.zarr"))
    assert store.sizes == {"time": 120, "lat": 30, "lon": 60}


def test_train_flow_writes_a_checkpoint_in_a_new_time_stamped_run(trained, tiny_workdir):
    assert trained.is_file()
    assert trained.parent.parent == tiny_workdir / "runs"
    assert trained.parent.name.endswith("Z")


def test_training_publishes_a_progress_artifact_that_says_where_it_ended(trained):
    progress = _artifacts("progress-train")["progress-train"][0]
    assert progress.type == "progress"
    # max_steps 6 with patience: 100 % and 'finished', or where it stopped early
    if float(progress.data) == 100.0:
        assert "finished, 6 of 6 steps" in progress.description
    else:
        assert "stopped at" in progress.description


def test_an_early_stop_shows_in_the_progress_artifact_not_as_100_percent(tiny_workdir,
                                                                       tiny_toml):
    from flows.pipelines import train_flow

    # lr too small to change a float32 weight: the second validation cannot improve, so
    # patience 1 stops training at step 4 of 12.
    config = tiny_workdir / "stops-early.toml"
    config.write_text(tiny_toml(TINY_STOPPING_TRAIN))
    state = train_flow(TrainParameters(store=str(tiny_workdir / "store.zarr"),
                                       run_dir=str(tiny_workdir / "runs-early"),
                                       config=str(config), train_end="2002-12-01"),
                       return_state=True)
    assert state.is_completed()
    mine = [a for a in _artifacts("progress-train")["progress-train"]
            if a.flow_run_id == state.state_details.flow_run_id]
    assert len(mine) == 1
    assert float(mine[0].data) == pytest.approx(100 * 4 / 12, abs=0.1)
    assert mine[0].description.startswith("train: stopped at 4 of 12 steps (33 %): early stop")


TINY_STOPPING_TRAIN = """\
batch_size = 64
max_steps = 12
lr = 1e-12
warmup_steps = 0
val_steps = 6
val_every = 2
val_samples = 128
patience = 1
checkpoint_every = 2
log_every = 1
"""  # with the tiny model (conftest)


@pytest.fixture(scope="module")
def forecast_products(trained, tiny_workdir):
    """forecast_flow over 2003 (held out), scored against the store itself."""
    from flows.pipelines import forecast_flow

    params = ForecastParameters(run_dir=str(tiny_workdir / "runs"),
                                store=str(tiny_workdir / "store.zarr"),
                                out_dir=str(tiny_workdir / "forecast"),
                                start="2003-01-01", end="2003-12-01", leads=6)
    return forecast_flow(params)


def test_forecast_flow_writes_stores_metrics_maps_and_report(forecast_products, tiny_workdir):
    out = tiny_workdir / "forecast"
    assert forecast_products["forecast"] == str(out / "forecast.zarr")
    assert set(forecast_products["baselines"]) == {"climatology", "persistence",
                                                    "damped_persistence", "lim"}
    scored = pd.read_csv(forecast_products["metrics"]["csv"])
    assert {"damped_persistence", "lim"} <= set(scored.forecast)  # scored beside the model
    for path in [forecast_products["forecast"], *forecast_products["baselines"].values(),
                 forecast_products["metrics"]["csv"], forecast_products["parameters"],
                 *forecast_products["maps"].values()]:
        assert Path(path).exists(), path
    assert {"sst", "anomaly", "error", "bias", "nino34_plume", "skill_vs_lead",
            "parameters"} <= set(forecast_products["maps"])
    report = Path(forecast_products["report"]).read_text()
    assert "## Scores" in report and "S-MNN" in report
    assert "mechanistic_identifier" not in report.split("## Model configuration")[0]
    assert "![skill_vs_lead](maps/skill_vs_lead.png)" in report  # relative to report.md
    assert "## Data provenance" in report and "## Model configuration" in report
    # maps first: the first image comes before the first table
    assert report.index("![anomaly]") < report.index("## Scores")


def test_forecast_flow_publishes_one_report_one_table_and_no_links(forecast_products):
    from flows.artifacts import SERVER_LIMIT

    artifacts = _artifacts()
    report = artifacts["forecast-report"][0]
    assert report.type == "markdown" and "data:image/webp;base64," in report.data
    assert len(report.data) < SERVER_LIMIT / 2
    assert report.data.count("# S-MNN SST forecast") == 1
    assert report.description.startswith("Global ocean RMSE at lead 1: S-MNN ")
    assert "# S-MNN SST forecast, issued Dec 2003" in report.data
    assert not [key for key in artifacts if key.startswith(("link-", "metrics-"))]
    rows = artifacts["forecast-scores"][0].data
    rows = json.loads(rows) if isinstance(rows, str) else rows
    text = str(rows)
    assert "S-MNN" in text and "RMSE [°C]" in text and "Lead [months]" in text
    assert "0.2236653540379304" not in text and "nan" not in text.lower()
    assert all(len(str(v)) <= 16 for row in rows for v in row.values())  # rounded


def test_forecast_beyond_the_truth_is_published_unscored(trained, tiny_workdir):
    from flows.pipelines import forecast_flow

    params = ForecastParameters(run_dir=str(tiny_workdir / "runs"),
                                store=str(tiny_workdir / "store.zarr"),
                                out_dir=str(tiny_workdir / "latest"), leads=3,
                                baselines=(), maps=False)
    products = forecast_flow(params)  # latest issue time: every valid time is in the future
    assert products["metrics"] is None and products["maps"] == {}
    assert "not scored" in Path(products["report"]).read_text()


def test_only_io_tasks_retry_and_nothing_is_cached_or_persisted():
    from prefect.cache_policies import NONE

    from flows import pipelines, tasks

    assert tasks.fetch_task.retries == tasks.store_task.retries == tasks.IO_RETRIES > 0
    for io in (tasks.fetch_task, tasks.store_task, tasks.latest_time_task,
               tasks.truth_covers_task, tasks.archive_task):
        assert io.retry_condition_fn is tasks.retry_transient, io.name
    for compute in (tasks.train_task, tasks.hindcast_task, tasks.evaluate_task,
                    tasks.maps_task, tasks.baseline_task):
        assert compute.retries == 0, compute.name
    # Result files could run code when read back (tests/faults/test_result_storage.py).
    assert tasks.fetch_task.cache_policy == NONE and tasks.fetch_task.persist_result is False
    for flow in (pipelines.ingest_flow, pipelines.train_flow, pipelines.forecast_flow,
                 pipelines.sst_pipeline):
        assert flow.persist_result is False, flow.name


def test_pipeline_parameters_lay_out_the_workdir_and_hindcast_after_training():
    params = PipelineParameters(workdir="/w", train_end="2003-12-01", leads=12)
    assert params.ingest().store == "/w/store.zarr"
    assert params.train().new_run and params.train().run_dir == "/w/runs"
    assert params.forecast().start == dt.date(2003, 12, 2)


def test_parameters_refuse_unknown_fields_and_bad_values():
    with pytest.raises(ValueError, match="extra"):
        TrainParameters(store="s", run_dir="r", epochs=3)
    with pytest.raises(ValueError, match="end must be on or after start"):
        ForecastParameters(run_dir="r", store="s", out_dir="o", start="2003-05-01",
                           end="2003-01-01")


def test_cli_reports_a_bad_parameter_in_one_line(capsys):
    from flows.cli import main

    code = main(["run", "forecast", "--run-dir", "r", "--store", "s", "--out-dir", "o",
                 "--leads", "zero"])
    assert code == 2
    assert "leads" in capsys.readouterr().err


def test_flow_parameters_show_as_a_typed_form():
    from flows.pipelines import forecast_flow

    schema = forecast_flow.parameters.model_dump()
    fields = schema["definitions"]["ForecastParameters"]["properties"]
    assert fields["leads"]["anyOf"][0]["type"] == "integer"
    assert "description" in fields["run_dir"]


def test_deployments_carry_the_configured_schedules(tmp_path):
    from flows.params import OperationParameters

    params = OperationParameters(workdir=str(tmp_path), leads=12)
    crons = {"ingest": "5 1 * * *", "forecast": "0 9 3 * *", "retrain": "0 0 1 */3 *"}
    deployments = cli_ops.build_deployments(params, crons=crons)
    names = {d.name: d for d in deployments}
    assert set(names) == {"ingest-daily", "verify-monthly", "forecast-monthly",
                          "retrain-quarterly"}
    assert names["ingest-daily"].schedules[0].schedule.cron == "5 1 * * *"
    assert names["verify-monthly"].schedules[0].schedule.cron == "0 7 2 * *"  # default
    for deployment in deployments:  # one parameter set for all
        assert deployment.parameters["params"] == params.model_dump(mode="json")


def test_forecast_fan_out_runs_on_an_existing_dask_cluster(trained, tiny_workdir):
    from distributed import LocalCluster

    from flows.pipelines import forecast_flow
    from flows.runtime import dask_runner

    params = ForecastParameters(run_dir=str(tiny_workdir / "runs"),
                                store=str(tiny_workdir / "store.zarr"),
                                out_dir=str(tiny_workdir / "on-cluster"), start="2003-06-01",
                                end="2003-06-01", leads=2, baselines=("persistence",),
                                maps=False)
    with LocalCluster(n_workers=1, processes=False, threads_per_worker=1,
                      dashboard_address="127.0.0.1:0",
                      worker_dashboard_address="127.0.0.1:0") as cluster:
        flow = forecast_flow.with_options(task_runner=dask_runner(cluster.scheduler_address))
        products = flow(params)
        ran_there = set(cluster.scheduler.task_prefixes)
    assert Path(products["baselines"]["persistence"]).exists()
    assert any("baseline" in name for name in ran_there), ran_there
    # the model's forecast and its interpretation, one pass
    assert any("hindcast" in name for name in ran_there), ran_there
