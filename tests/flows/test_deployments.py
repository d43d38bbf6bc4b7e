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


def test_prefect_yaml_deploys_the_real_flows_with_valid_parameters():
    from flows import params, pipelines

    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    models = {"ingest_flow": params.IngestParameters, "forecast_flow": params.ForecastParameters,
              "train_flow": params.TrainParameters}
    for deployment in spec["deployments"]:
        path, name = deployment["entrypoint"].split(":")
        assert (ROOT / path).is_file() and hasattr(pipelines, name)
        filled = {k: v.replace("{{ $SSTCAST_WORKDIR }}", "/w") if isinstance(v, str) else v
                  for k, v in deployment["parameters"]["params"].items()}
        models[name].model_validate(filled)
        assert deployment["work_pool"]["name"] == "sstcast-process"
        assert len(deployment["schedules"][0]["cron"].split()) == 5


@pytest.mark.slow
def test_served_deployment_runs_to_completion(prefect_server, trained, tiny_workdir, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    env = {**os.environ, "PREFECT_API_URL": prefect_server}
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "flows", "serve", "--workdir", str(tiny_workdir),
         "--leads", "2"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        with get_client(sync_client=True) as client:
            while True:
                names = {d.name for d in client.read_deployments()}
                if {"ingest-daily", "forecast-monthly", "retrain-quarterly"} <= names:
                    break
                assert server.poll() is None, (tmp_path / "serve.log").read_text()
                assert time.monotonic() < deadline, "deployments never registered"
                time.sleep(1)
            deployment = client.read_deployment_by_name("forecast/forecast-monthly")
            assert deployment.schedules[0].schedule.cron == "0 8 2 * *"
        out = tmp_path / "served-forecast"
        run = run_deployment(
            "forecast/forecast-monthly", timeout=240, poll_interval=2, as_subflow=False,
            parameters={"params": {"run_dir": str(tiny_workdir / "runs"),
                                   "store": str(tiny_workdir / "store.zarr"),
                                   "out_dir": str(out), "leads": 2, "baselines": [],
                                   "maps": False}})
        assert run.state.is_completed(), (tmp_path / "serve.log").read_text()[-3000:]
        assert (out / "forecast.zarr").exists() and (out / "report.md").exists()
    finally:
        server.terminate()
        server.wait(timeout=60)
        log.close()
