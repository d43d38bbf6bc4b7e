"""Deployments: `sstcast serve` registers them on a real local Prefect server and runs a
triggered one to completion; prefect.yaml points at real flows with valid parameters."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

# These tests share the session's Prefect server (conftest.py): one xdist worker.
pytestmark = pytest.mark.xdist_group("prefect")

ROOT = Path(__file__).resolve().parents[2]


def test_prefect_yaml_is_generated_from_the_definition_serve_uses():
    from flows import deployments, operations
    from flows.params import OperationParameters

    placeholder = OperationParameters(workdir=deployments.WORKDIR_PLACEHOLDER)
    text = (ROOT / "prefect.yaml").read_text()
    assert text == deployments.prefect_yaml(placeholder), (
        "prefect.yaml is stale: run `sstcast deployments --workdir '{{ $SSTCAST_WORKDIR }}' "
        "--output prefect.yaml`")
    spec = yaml.safe_load(text)
    served = {d.name: d for d in deployments.runner_deployments(placeholder)}
    assert [d["name"] for d in spec["deployments"]] == list(served) == [
        "ingest-daily", "verify-monthly", "forecast-monthly", "retrain-quarterly"]
    for deployment in spec["deployments"]:
        runner = served[deployment["name"]]
        path, name = deployment["entrypoint"].split(":")
        flow = getattr(operations, name)
        assert (ROOT / path).is_file() and flow.name == runner.flow_name
        assert deployment["parameters"] == runner.parameters  # every serve option, one set
        assert set(deployment["parameters"]["params"]) == set(OperationParameters.model_fields)
        OperationParameters.model_validate(
            {**deployment["parameters"]["params"], "workdir": "/w"})
        assert deployment["schedules"][0]["cron"] == runner.schedules[0].schedule.cron
        assert deployment["work_pool"]["name"] == "sstcast-process"


def test_deployments_command_writes_serve_options_into_prefect_yaml(tmp_path, capsys):
    from flows.cli import main

    out = tmp_path / "prefect.yaml"
    assert main(["deployments", "--workdir", "/data/sst", "--source", "cobe2", "--grid", "2",
                 "--leads", "12", "--start", "1990-01-01", "--forecast-cron", "0 9 3 * *",
                 "--output", str(out)]) == 0
    spec = yaml.safe_load(out.read_text())
    forecast = next(d for d in spec["deployments"] if d["name"] == "forecast-monthly")
    assert forecast["parameters"]["params"] == {
        "workdir": "/data/sst", "source": "cobe2", "mirror": None, "start": "1990-01-01",
        "end": None, "grid": 2.0, "config": "default", "leads": 12, "maps": True}
    assert forecast["schedules"][0]["cron"] == "0 9 3 * *"
    assert main(["deployments", "--workdir", "/w", "--forecast-cron", "every day"]) == 2
    assert "forecast_cron: expected a cron expression" in capsys.readouterr().err


@pytest.mark.slow
def test_served_deployment_runs_to_completion(prefect_server, trained, tiny_workdir, tmp_path):
    import shutil

    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    workdir = tmp_path / "work"  # a copy: the served forecast archives into its workdir
    for name in ("store.zarr", "runs", "tiny.toml"):
        copy = shutil.copytree if (tiny_workdir / name).is_dir() else shutil.copy
        copy(tiny_workdir / name, workdir / name)
    env = {**os.environ, "PREFECT_API_URL": prefect_server}
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "flows", "serve", "--workdir", str(workdir),
         "--config", str(workdir / "tiny.toml"), "--leads", "2"], cwd=ROOT, env=env,
        stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        with get_client(sync_client=True) as client:
            while True:
                names = {d.name for d in client.read_deployments()}
                if {"ingest-daily", "verify-monthly", "forecast-monthly",
                        "retrain-quarterly"} <= names:
                    break
                assert server.poll() is None, (tmp_path / "serve.log").read_text()
                assert time.monotonic() < deadline, "deployments never registered"
                time.sleep(1)
            deployment = client.read_deployment_by_name("scheduled-forecast/forecast-monthly")
            assert deployment.schedules[0].schedule.cron == "0 8 2 * *"
            assert deployment.parameters["params"]["leads"] == 2
        run = run_deployment(
            "scheduled-forecast/forecast-monthly", timeout=240, poll_interval=2,
            as_subflow=False, parameters={"params": {
                **deployment.parameters["params"], "maps": False}})
        assert run.state.is_completed(), (tmp_path / "serve.log").read_text()[-3000:]
        out = workdir / "forecast"
        assert (out / "forecast.zarr").exists() and (out / "report.md").exists()
        assert len(list((workdir / "archive" / "entries").iterdir())) == 1
    finally:
        server.terminate()
        server.wait(timeout=60)
        log.close()


def test_serve_refuses_to_take_over_deployments_of_a_work_pool(prefect_server):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate

    from flows import cli_ops
    from flows.deployments import DEPLOYMENTS

    target = DEPLOYMENTS[0]
    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(WorkPoolCreate(name="sstcast-test-pool", type="process"))
        except Exception:  # noqa: BLE001 - already there from an earlier run
            pass
        flow_id = client.create_flow_from_name(target.flow_name)
        deployment_id = client.create_deployment(
            flow_id=flow_id, name=target.name, work_pool_name="sstcast-test-pool",
            entrypoint=f"flows/operations.py:{target.flow}")
    try:
        with pytest.raises(ValueError, match=f"deployment {target.full_name}: expected none"):
            cli_ops.check_takeover(replace=False)
        cli_ops.check_takeover(replace=True)
    finally:
        with get_client(sync_client=True) as client:
            client.delete_deployment(deployment_id)
