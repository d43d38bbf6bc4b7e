"""The `sstcast` command line, one definition: every command's options are generated from
its typed parameter model in flows/params.py (flows/cli_options.py), the models the flows
take, so one concept has one name everywhere (`--run-dir`, `--config`, `--store`, ...).
Each area registers its own subcommands:

- flows/cli_data.py  -> ingest, info, export
- flows/cli_model.py -> train, forecast, hindcast, evaluate
- flows/cli_ops.py   -> run, serve, deployments, demo
"""

from __future__ import annotations

import argparse
import sys

from flows import cli_data, cli_model, cli_ops


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sstcast",
        description="SST forecasts with the Scalable Mechanistic Neural Network (S-MNN).",
    )
    parser.add_argument("--version", action="version", version=f"sstcast {_version()}",
                        help="print the installed sstcast version and exit")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (cli_data, cli_model, cli_ops):
        module.register(subparsers)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sstcast")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return "0.1.0+source"


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` and run the chosen subcommand; each one sets `func` and returns an exit code."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, PermissionError, OSError) as error:
        # Bad input and I/O failures end with one clear line, not a traceback.
        print(f"sstcast {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
