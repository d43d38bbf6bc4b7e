"""Subcommands of `sstcast` (see flows/cli.py): train, forecast, hindcast, evaluate.

Thin handlers: parse, call the pipeline function, print where the result went.
"""

from __future__ import annotations

import argparse
import re
import sys

import pandas as pd


def _date(text: str) -> pd.Timestamp:
    """YYYY-MM or YYYY-MM-DD."""
    if not re.fullmatch(r"\d{4}-\d{2}(-\d{2})?", text):
        raise argparse.ArgumentTypeError(f"expected YYYY-MM or YYYY-MM-DD, got {text!r}")
    try:
        return pd.Timestamp(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a valid date: {text!r}") from None


def _sst_store(url: str, option: str = "--store") -> None:
    """Refuse anything but an SST store before any work (or any folder) is begun."""
    from pipeline.data.store import store_kind

    kind = store_kind(url)
    if kind in ("absent", "forecast"):  # "other" may be a plain canonical zarr store: read on
        found = {"absent": "nothing there", "forecast": "a forecast store"}[kind]
        raise ValueError(f"{option}: expected an SST store (sstcast ingest makes one), got "
                         f"{url!r} ({found})")


def _train(args) -> int:
    from pipeline.model.config import named_config
    from pipeline.model.train import TrainingDiverged, TrainingInterrupted, train

    _sst_store(args.store)

    # No --config: a new run takes the default preset, a resumed one its stored config.
    config = named_config(args.config) if args.config else None
    try:
        path = train(args.store, args.run_dir, config=config, resume=args.resume,
                     train_end=args.train_end)
    except TrainingInterrupted as stopped:
        print(f"sstcast train: {stopped}", file=sys.stderr)
        return 130
    except TrainingDiverged as diverged:
        print(f"sstcast train: diverged: {diverged}", file=sys.stderr)
        return 1
    print(path)
    return 0


def _forecast(args) -> int:
    from pipeline.model.forecast import forecast

    _sst_store(args.store)

    print(forecast(args.run_dir, args.store, args.init, leads=args.leads, out=args.out,
                   overwrite=args.overwrite))
    return 0


def _hindcast(args) -> int:
    from pipeline.model.forecast import hindcast

    _sst_store(args.store)

    print(hindcast(args.run_dir, args.store, start=args.start, end=args.end, leads=args.leads,
                   out=args.out, overwrite=args.overwrite))
    return 0


def _evaluate(args) -> int:
    from pipeline.evaluation.metrics import evaluate

    result = evaluate(args.forecast, args.truth, args.out,
                      climatology_end=args.climatology_end, regions=args.regions)
    summary = result.table.groupby(["forecast", "region"])[
        ["rmse", "acc", "skill_vs_climatology"]].mean()
    print(summary.to_string(float_format=lambda v: f"{v:.3f}"))
    print(f"\n{result.json_path}\n{result.csv_path}")
    return 0


OVERWRITE_HELP = "replace --out when it is a forecast store (never any other folder)"
RUN_HELP = "trained run folder"
STORE_HELP = "SST store the forecasts start from (path or fsspec URL)"
LEADS_HELP = "leads 1..N steps (default: the model's horizon)"


def register(subparsers) -> None:
    """Add this area's subcommands to the `sstcast` parser."""
    p = subparsers.add_parser("train", help="train the Mechanistic Identifier on a store")
    p.add_argument("--store", required=True, help="SST store path or URL")
    p.add_argument("--run-dir", required=True, help="run folder (checkpoints, logs)")
    p.add_argument("--config", help="preset name (default, paper) or TOML file (see "
                   "pipeline.model.config; default: the default preset, or on --resume the "
                   "run's own)")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
    p.add_argument("--train-end", type=_date,
                   help="last time used for training and validation (default: all data)")
    p.set_defaults(func=_train)

    p = subparsers.add_parser("forecast", help="forecast from one issue time")
    p.add_argument("--run-dir", required=True, help=RUN_HELP)
    p.add_argument("--store", required=True, help=STORE_HELP)
    p.add_argument("--init", required=True, type=_date,
                   help="issue time YYYY-MM[-DD]; only data up to it is used")
    p.add_argument("--leads", type=int, help=LEADS_HELP)
    p.add_argument("--out", required=True, help="forecast store to write")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.set_defaults(func=_forecast)

    p = subparsers.add_parser("hindcast", help="forecasts from every issue time in a range")
    p.add_argument("--run-dir", required=True, help=RUN_HELP)
    p.add_argument("--store", required=True, help=STORE_HELP)
    p.add_argument("--start", required=True, type=_date,
                   help="first issue time YYYY-MM[-DD]")
    p.add_argument("--end", required=True, type=_date,
                   help="last issue time YYYY-MM[-DD] (every step from --start to it)")
    p.add_argument("--leads", type=int, help=LEADS_HELP)
    p.add_argument("--out", required=True, help="forecast store to write")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.set_defaults(func=_hindcast)

    p = subparsers.add_parser("evaluate", help="score a forecast store against the truth")
    p.add_argument("--forecast", required=True, help="forecast store")
    p.add_argument("--truth", required=True, help="SST store")
    p.add_argument("--out", required=True, help="folder for metrics.json and metrics.csv")
    p.add_argument("--climatology-end", type=_date,
                   help="end of the climatology period (default: the forecast's attribute)")
    p.add_argument("--regions", nargs="+", help="default: all (global tropics nh sh nino34)")
    p.set_defaults(func=_evaluate)
