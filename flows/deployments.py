"""The one definition of sstcast's scheduled deployments, used by `sstcast serve` (runner
deployments in one process) and rendered as prefect.yaml (a process work pool) by
`sstcast deployments`; tests/flows/test_deployments.py checks the two agree.

Every deployment runs a flow of flows/operations.py with the same parameters: one
`OperationParameters` (working folder, source, grid, model config, leads) and the dask
address. Names are `<flow>/<deployment>`, e.g. `scheduled-forecast/forecast-monthly`; the
two ways of deploying register the same names, so they are alternatives, not companions.
"""

from __future__ import annotations

from dataclasses import dataclass

from flows.params import OperationParameters

WORKDIR_PLACEHOLDER = "{{ $SSTCAST_WORKDIR }}"  # read by `prefect deploy` from the environment
POOL = "sstcast-process"
ENTRYPOINT_FILE = "flows/operations.py"
PREFECT_VERSION = "3.9.1"  # the pinned version (constraints.txt)


@dataclass(frozen=True)
class Deployment:
    """One scheduled deployment: its name, the flow it runs, its default cron (UTC)."""

    name: str
    flow: str  # function in flows/operations.py
    flow_name: str  # the Prefect flow name
    cron: str
    option: str  # `sstcast serve --<option>-cron`
    description: str

    @property
    def full_name(self) -> str:
        return f"{self.flow_name}/{self.name}"


DEPLOYMENTS = (
    Deployment("ingest-daily", "scheduled_ingest", "scheduled-ingest", "0 6 * * *", "ingest",
               "Fetch new SST and append it to WORKDIR/store.zarr."),
    Deployment("verify-monthly", "verify_flow", "verify", "0 7 2 * *", "verify",
               "Score the archived forecasts whose valid times are now observed; publish "
               "the verification history."),
    Deployment("forecast-monthly", "scheduled_forecast", "scheduled-forecast", "0 8 2 * *",
               "forecast", "Forecast from the latest data with the newest run, archive it, "
               "score, map and report (ingests and trains first on a fresh folder)."),
    Deployment("retrain-quarterly", "scheduled_retrain", "scheduled-retrain",
               "0 4 3 1,4,7,10 *", "retrain",
               "Train a new run (WORKDIR/runs/<UTC stamp>) on all data so far."),
)
CRONS = {d.option: d.cron for d in DEPLOYMENTS}


def _crons(crons: dict[str, str] | None) -> dict[str, str]:
    merged = {**CRONS, **(crons or {})}
    unknown = set(merged) - set(CRONS)
    if unknown:
        raise ValueError(f"crons: expected keys among {sorted(CRONS)}, got {sorted(unknown)}")
    from prefect.client.schemas.schedules import CronSchedule

    for option, cron in merged.items():
        try:
            CronSchedule(cron=cron, timezone="UTC")
        except ValueError:
            raise ValueError(f"{option}_cron: expected a cron expression (5 fields), got "
                             f"{cron!r}") from None
    return merged


def parameters(params: OperationParameters, dask_address: str | None = None) -> dict:
    """The parameters every deployment is created with (JSON)."""
    return {"params": params.model_dump(mode="json"), "dask_address": dask_address}


def runner_deployments(params: OperationParameters, *, crons: dict[str, str] | None = None,
                       dask_address: str | None = None) -> list:
    """The deployments as Prefect RunnerDeployments, for `prefect.serve`."""
    from flows import operations

    crons = _crons(crons)
    out = []
    for d in DEPLOYMENTS:
        flow = getattr(operations, d.flow)
        out.append(flow.to_deployment(d.name, cron=crons[d.option], tags=["sstcast"],
                                      parameters=parameters(params, dask_address),
                                      description=d.description))
    return out


def prefect_yaml(params: OperationParameters, *, crons: dict[str, str] | None = None,
                 dask_address: str | None = None) -> str:
    """The same deployments as prefect.yaml text (a process work pool, `prefect deploy`)."""
    import yaml

    crons = _crons(crons)
    shared = parameters(params, dask_address)
    spec = {
        "name": "sstcast",
        "prefect-version": PREFECT_VERSION,
        "build": None,
        "push": None,
        "pull": [{"prefect.deployments.steps.set_working_directory": {
            "directory": "{{ $PWD }}"}}],
        "deployments": [
            {"name": d.name, "description": d.description,
             "entrypoint": f"{ENTRYPOINT_FILE}:{d.flow}", "tags": ["sstcast"],
             "parameters": shared,
             "schedules": [{"cron": crons[d.option], "timezone": "UTC"}],
             "work_pool": {"name": POOL, "work_queue_name": "default",
                           "job_variables": {"env": {
                               "DO_NOT_TRACK": "1",
                               "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}}}}
            for d in DEPLOYMENTS],
    }
    class Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data):  # every deployment spelled out, no &id anchors
            return True

    body = yaml.dump(spec, Dumper=Dumper, sort_keys=False, default_flow_style=False,
                     width=96)
    return HEADER + body


HEADER = """\
# GENERATED by `sstcast deployments --output prefect.yaml` from flows/deployments.py, the
# definition `sstcast serve` uses too: do not edit by hand, regenerate with other options:
#
#   sstcast deployments --workdir /data/sstcast --source cobe2 --grid 2 --leads 12 \\
#       --output prefect.yaml                               # the options of `sstcast serve`
#
# Deploy to a Prefect *process* work pool (the alternative to `sstcast serve`):
#
#   prefect server start --host 127.0.0.1                   # terminal 1
#   export PREFECT_API_URL=http://127.0.0.1:4200/api
#   prefect work-pool create sstcast-process --type process
#   prefect worker start --pool sstcast-process             # terminal 2, where sstcast is installed
#   SSTCAST_WORKDIR=/data/sstcast prefect deploy --all      # from the repository root
#
# These are the same deployment names as `sstcast serve` registers: deploying replaces
# served deployments of the same names (stop `sstcast serve` first), and `sstcast serve`
# refuses to take over deployments bound to a work pool unless given --replace.
# {{ $SSTCAST_WORKDIR }} is read from the environment when `prefect deploy` runs.
"""
