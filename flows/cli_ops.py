"""`sstcast run`, `sstcast serve`, `sstcast deployments` and `sstcast demo` (see flows/cli.py).

Prefect is imported inside the handlers, after `offline_environment` has set the offline
defaults (Prefect reads its settings when first imported).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

from flows.cli_options import add_options, parameters
from flows.deployments import CRONS, DEPLOYMENTS
from flows.params import (
    DemoParameters,
    ForecastParameters,
    IngestParameters,
    OperationParameters,
    PipelineParameters,
    TrainParameters,
)
from flows.runtime import offline_environment

FLOWS = {
    "ingest": IngestParameters,
    "train": TrainParameters,
    "forecast": ForecastParameters,
    "pipeline": PipelineParameters,
    "verify": OperationParameters,
}

SCHEDULES = CRONS  # deployment option -> default cron (UTC), from flows/deployments.py

# The demo's small model: a coarse grid and a short training run, a few minutes on 2 cores.
DEMO_CONFIG = """\
# sstcast demo: a small Mechanistic Identifier that trains in about a minute on a CPU.
[model]
n_dct = 16
encoder_width = 64
encoder_depth = 2
latent_dim = 8
decoder_width = 64
init_steps = 6
level_window = 0  # the 36-month context is too short to hold a level apart from ENSO

[window]
context = 36
horizon = 12

[train]
batch_size = 256
max_steps = 120
lr = 2e-3  # a short run: the default 5e-4 suits the long COBE-SST2 runs
warmup_steps = 10
val_steps = 12
val_every = 40
val_samples = 1024
checkpoint_every = 40
log_every = 20
"""
DEMO = {"start": "1990-01-01", "end": "2006-12-01", "train_end": "2003-12-01",
        "grid": 4.0, "leads": 12}


# --------------------------------------------------------------------------- parsers


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dask-address", default=None,
                        help="dask scheduler address (tcp://host:8786) for the flows' dask "
                        "work; default: a local in-process cluster")
    parser.add_argument("--results", default=None,
                        help="Prefect's result location (PREFECT_LOCAL_STORAGE_PATH; "
                        "default ~/.prefect/storage); sstcast's tasks persist no results")


def register(subparsers) -> None:
    """Add `run`, `serve` and `demo` to the `sstcast` parser."""
    run = subparsers.add_parser("run", help="run one flow now (ingest, train, forecast, "
                                "pipeline) through Prefect")
    flows = run.add_subparsers(dest="flow", required=True, metavar="FLOW")
    for name, model in FLOWS.items():
        sub = flows.add_parser(name, help=(model.__doc__ or "").strip().splitlines()[0])
        add_options(sub, model)
        _add_common(sub)
        sub.set_defaults(func=run_command)

    serve = subparsers.add_parser("serve", help="serve the scheduled deployments (ingest "
                                  "daily, verify and forecast monthly, retrain quarterly)")
    _add_operation_options(serve)
    serve.add_argument("--limit", type=int, default=1,
                       help="flow runs executed at the same time (default: 1)")
    serve.add_argument("--replace", action="store_true",
                       help="take over deployments of the same names that `prefect deploy` "
                       "bound to a work pool (refused otherwise)")
    _add_common(serve)
    serve.set_defaults(func=serve_command)

    deploy = subparsers.add_parser("deployments", help="write the deployments `serve` runs "
                                   "as prefect.yaml (for `prefect deploy --all`)")
    _add_operation_options(deploy)
    deploy.add_argument("--output", default="-",
                        help="file to write (default: - for standard output)")
    deploy.add_argument("--dask-address", default=None,
                        help="dask scheduler address passed to the flows")
    deploy.set_defaults(func=deployments_command)

    demo = subparsers.add_parser("demo", help="run the whole pipeline on synthetic data "
                                 "with a small model and print where the products are")
    add_options(demo, DemoParameters)
    _add_common(demo)
    demo.set_defaults(func=demo_command)


def _add_operation_options(parser: argparse.ArgumentParser) -> None:
    """The options of `serve` and `deployments`: OperationParameters and one cron each."""
    add_options(parser, OperationParameters)
    for d in DEPLOYMENTS:
        parser.add_argument(f"--{d.option}-cron", default=d.cron,
                            help=f"cron schedule (UTC) of {d.full_name} (default: '{d.cron}')")


def _prepare(args: argparse.Namespace, *, home: str | None = None) -> None:
    offline_environment(home=home, results=args.results)


# --------------------------------------------------------------------------- handlers


def run_command(args: argparse.Namespace) -> int:
    """`sstcast run FLOW ...`: one flow run, printed result as JSON."""
    params = parameters(FLOWS[args.flow], args)
    if args.flow in ("train", "forecast"):  # before Prefect starts or any folder is made
        from flows.cli_model import _sst_store

        _sst_store(params.store)
    _prepare(args)
    from flows import pipelines
    from flows.runtime import dask_runner

    if args.flow == "ingest":
        result = pipelines.ingest_flow(params, args.dask_address)
    elif args.flow == "train":
        result = pipelines.train_flow(params)
    elif args.flow == "forecast":
        flow = pipelines.forecast_flow.with_options(task_runner=dask_runner(args.dask_address))
        result = flow(params)
    elif args.flow == "verify":
        from flows.operations import verify_flow

        result = verify_flow(params, args.dask_address)
    else:
        result = pipelines.sst_pipeline(params, args.dask_address)
    print(json.dumps(result, indent=1, default=str))
    return 0


def build_deployments(params: OperationParameters, *, crons: dict[str, str] | None = None,
                      dask_address: str | None = None) -> list:
    """The scheduled deployments of one working folder (RunnerDeployments), as defined in
    flows/deployments.py (the same as prefect.yaml)."""
    from flows.deployments import runner_deployments

    return runner_deployments(params, crons=crons, dask_address=dask_address)


def _crons(args: argparse.Namespace) -> dict[str, str]:
    return {d.option: getattr(args, f"{d.option}_cron") for d in DEPLOYMENTS}


def check_takeover(replace: bool) -> None:
    """Refuse to serve deployments whose names `prefect deploy` bound to a work pool (serving
    them would silently take them over), unless `replace`."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        for d in DEPLOYMENTS:
            try:
                found = client.read_deployment_by_name(d.full_name)
            except ObjectNotFound:
                continue
            if found.work_pool_name and not replace:
                raise ValueError(
                    f"deployment {d.full_name}: expected none or one served by `sstcast "
                    f"serve`, got one bound to work pool {found.work_pool_name!r} (`prefect "
                    "deploy`); stop its worker and pass --replace, or delete it with "
                    f"`prefect deployment delete {d.full_name}`")


def serve_command(args: argparse.Namespace) -> int:
    """`sstcast serve`: register the deployments and run their schedules until stopped."""
    params = parameters(OperationParameters, args)
    crons = _crons(args)
    _prepare(args)
    from prefect import serve

    deployments = build_deployments(params, crons=crons, dask_address=args.dask_address)
    check_takeover(args.replace)
    serve(*deployments, limit=args.limit)
    return 0


def deployments_command(args: argparse.Namespace) -> int:
    """`sstcast deployments`: the deployments of `serve` as prefect.yaml."""
    from flows.deployments import prefect_yaml

    params = parameters(OperationParameters, args)
    text = prefect_yaml(params, crons=_crons(args), dask_address=args.dask_address)
    if args.output == "-":
        print(text, end="")
    else:
        Path(args.output).write_text(text)
    return 0


def demo_command(args: argparse.Namespace) -> int:
    """`sstcast demo`: the whole pipeline on synthetic data, small model, local Prefect."""
    workdir = Path(parameters(DemoParameters, args).workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "demo-config.toml"
    config.write_text(DEMO_CONFIG)
    params = PipelineParameters(
        workdir=str(workdir), source="synthetic", start=DEMO["start"], end=DEMO["end"],
        grid=DEMO["grid"], config=str(config), train_end=DEMO["train_end"],
        leads=DEMO["leads"])
    # Keep Prefect's database with the demo's outputs unless the user chose a home.
    _prepare(args, home=str(workdir / ".prefect"))
    started = dt.datetime.now()
    from flows.pipelines import sst_pipeline

    result = sst_pipeline(params, args.dask_address)
    seconds = (dt.datetime.now() - started).total_seconds()
    print(_demo_summary(result, workdir, seconds))
    return 0


def _demo_summary(result: dict, workdir: Path, seconds: float) -> str:
    lines = [f"\nsstcast demo finished in {seconds:.0f} s. Products in {workdir}:",
             f"  report:            {result['report']}",
             f"  maps:              {Path(result['report']).parent / 'maps'}"]
    lines += [f"    {name:<17}{path}" for name, path in sorted(result["maps"].items())]
    if result.get("metrics"):
        lines += [f"  metrics (CSV):     {result['metrics']['csv']}",
                  f"  metrics (JSON):    {result['metrics']['json']}"]
    lines += [f"  forecast store:    {result['forecast']}"]
    lines += [f"  {(kind + ' store:').ljust(18)} {path}"
              for kind, path in result["baselines"].items()]
    lines += [f"  SST store:         {workdir / 'store.zarr'}",
              f"  training runs:     {workdir / 'runs'}",
              f"  Prefect home:      {workdir / '.prefect'} (artifacts: `prefect artifact ls`)"]
    return "\n".join(lines)
