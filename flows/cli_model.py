"""Subcommands of `sstcast` (see flows/cli.py): train, forecast, hindcast, evaluate.

Thin handlers: the typed parameters in, the pipeline function called, where the result went
printed.
"""

from __future__ import annotations

import sys

from flows.cli_options import command
from flows.params import (
    EvaluateParameters,
    HindcastParameters,
    IssueParameters,
    TrainParameters,
)


def _sst_store(url: str, option: str = "--store") -> None:
    """Refuse anything but an SST store before any work (or any folder) is begun."""
    from pipeline.data.store import store_kind

    kind = store_kind(url)
    if kind in ("absent", "forecast"):  # "other" may be a plain canonical zarr store: read on
        found = {"absent": "nothing there", "forecast": "a forecast store"}[kind]
        raise ValueError(f"{option}: expected an SST store (sstcast ingest makes one), got "
                         f"{url!r} ({found})")


def _train(params: TrainParameters, args) -> int:
    from pipeline.model.config import named_config
    from pipeline.model.train import TrainingDiverged, TrainingInterrupted, train

    _sst_store(params.store)
    # No --config: a new run takes the default preset, a resumed one its stored config.
    config = named_config(params.config) if "config" in params.model_fields_set else None
    try:
        path = train(params.store, params.run_folder(), config=config, resume=params.resume,
                     train_end=params.train_end)
    except TrainingInterrupted as stopped:
        print(f"sstcast train: {stopped}", file=sys.stderr)
        return 130
    except TrainingDiverged as diverged:
        print(f"sstcast train: diverged: {diverged}", file=sys.stderr)
        return 1
    print(path)
    return 0


def _forecast(params: IssueParameters, args) -> int:
    from pipeline.model.forecast import forecast

    _sst_store(params.store)
    print(forecast(params.run_dir, params.store, params.init, leads=params.leads,
                   out=params.out, overwrite=params.overwrite))
    return 0


def _hindcast(params: HindcastParameters, args) -> int:
    from pipeline.model.forecast import hindcast

    _sst_store(params.store)
    print(hindcast(params.run_dir, params.store, start=params.start, end=params.end,
                   leads=params.leads, out=params.out, overwrite=params.overwrite))
    return 0


def _evaluate(params: EvaluateParameters, args) -> int:
    from pipeline.evaluation.metrics import evaluate

    result = evaluate(params.forecast, params.truth, params.out,
                      climatology_end=params.climatology_end,
                      regions=list(params.regions) if params.regions else None)
    summary = result.table.groupby(["forecast", "region"])[
        ["rmse", "acc", "skill_vs_climatology"]].mean()
    print(summary.to_string(float_format=lambda v: f"{v:.3f}"))
    print(f"\n{result.json_path}\n{result.csv_path}")
    return 0


def register(subparsers) -> None:
    """Add this area's subcommands to the `sstcast` parser."""
    command(subparsers, "train", TrainParameters, _train,
            help="train the Mechanistic Identifier on a store")
    command(subparsers, "forecast", IssueParameters, _forecast,
            help="forecast from one issue time")
    command(subparsers, "hindcast", HindcastParameters, _hindcast,
            help="forecasts from every issue time in a range")
    command(subparsers, "evaluate", EvaluateParameters, _evaluate,
            help="score a forecast store against the truth")
