"""Subcommands of `sstcast` (see flows/cli.py): `ingest`, `info` and `export`."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    """Add this area's subcommands to the `sstcast` parser."""
    from pipeline.data.sources import DEFAULT_SOURCE, SOURCES

    ingest = subparsers.add_parser(
        "ingest",
        help="fetch an SST product and append it to a zarr store",
        description="Fetch an SST product (synthetic by default, no network) and append the "
        "new time steps to a zarr store; re-runs add only what is new.",
    )
    ingest.add_argument(
        "--source",
        default=DEFAULT_SOURCE,
        choices=sorted(SOURCES),
        help=f"product to ingest (default: {DEFAULT_SOURCE})",
    )
    ingest.add_argument(
        "--mirror",
        help="base URL (http(s)://, file://) or folder with the "
        "product's NOAA layout, replacing NOAA's host",
    )
    ingest.add_argument(
        "--file",
        help="the local-cf source's CF netCDF file (a path, http(s):// or file:// URL): any "
        "regular lat/lon SST with CF attributes, e.g. a model run or CMIP6 tos",
    )
    ingest.add_argument(
        "--variable",
        help="the SST variable of --file when it holds several (default: the one with "
        "standard_name sea_surface_temperature)",
    )
    ingest.add_argument("--start", help="first date, YYYY-MM[-DD]")
    ingest.add_argument("--end", help="last date, YYYY-MM[-DD]")
    ingest.add_argument("--store", required=True, help="zarr store path or fsspec URL")
    ingest.add_argument("--grid", type=float, help="coarsen to this many degrees (area-weighted)")
    ingest.add_argument(
        "--freq",
        choices=["daily", "weekly", "monthly"],
        help="resample a daily product to weekly or monthly means",
    )
    ingest.add_argument(
        "--units",
        help="SST units of the files when they declare none (degC or K, any udunits "
        "spelling); files without units are refused otherwise",
    )
    ingest.add_argument(
        "--cache-dir", help="where fetched files are kept (default: ~/.cache/sstcast/<source>)"
    )
    ingest.add_argument(
        "--dask-address",
        help="dask.distributed scheduler address "
        "(default: $DASK_SCHEDULER_ADDRESS, else local threads)",
    )
    ingest.add_argument(
        "--synthetic-resolution",
        type=float,
        help="grid in degrees of the synthetic sources (default 1)",
    )
    ingest.set_defaults(func=_ingest)

    info = subparsers.add_parser(
        "info",
        help="describe a zarr store",
        description="Summarise and validate an sstcast zarr store.",
    )
    info.add_argument("--store", required=True, help="zarr store path or fsspec URL")
    info.add_argument("--full", action="store_true", help="also validate every value")
    info.set_defaults(func=_info)

    export = subparsers.add_parser(
        "export",
        help="write a store to one CF-1.8 netCDF file",
        description="Write an SST store (its committed steps) or a forecast store to one "
        "CF-1.8 netCDF-4 file. The file is written beside --out and renamed, so --out is "
        "either the old file or the whole new one.",
    )
    export.add_argument(
        "--store", required=True, help="SST store or forecast store (path or fsspec URL)"
    )
    export.add_argument("--out", required=True, help="netCDF file to write (*.nc)")
    export.add_argument(
        "--layout",
        choices=["cf", "climpred"],
        default="cf",
        help="cf: the store's own dims (default); climpred: a forecast store with climpred's "
        "dims init, lead (and member)",
    )
    export.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    export.set_defaults(func=_export)


def _ingest(args: argparse.Namespace) -> int:
    from pipeline.data.ingest import ingest

    result = ingest(
        args.source,
        args.store,
        mirror=args.mirror,
        start=args.start,
        end=args.end,
        grid=args.grid,
        cache_dir=args.cache_dir,
        dask_address=args.dask_address,
        freq=args.freq,
        resolution=args.synthetic_resolution,
        units=args.units,
        file=args.file,
        variable=args.variable,
    )
    print(result.summary())
    return 0


def _info(args: argparse.Namespace) -> int:
    from pipeline.data.store import describe, validate_store

    validate_store(args.store, full=args.full)
    print(describe(args.store))
    print("  valid      yes" + (" (all values checked)" if args.full else ""))
    return 0


def _export(args: argparse.Namespace) -> int:
    from pipeline.products.export import export_netcdf

    print(export_netcdf(args.store, args.out, overwrite=args.overwrite, layout=args.layout))
    return 0
