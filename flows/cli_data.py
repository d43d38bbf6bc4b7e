"""Subcommands of `sstcast` (see flows/cli.py): `ingest`, `info` and `export`."""

from __future__ import annotations

from flows.cli_options import command
from flows.params import ExportParameters, InfoParameters, IngestParameters


def register(subparsers) -> None:
    """Add this area's subcommands to the `sstcast` parser."""
    ingest = command(subparsers, "ingest", IngestParameters, _ingest,
                     help="fetch an SST product and append it to a zarr store")
    ingest.add_argument("--dask-address",
                        help="dask.distributed scheduler address "
                        "(default: $DASK_SCHEDULER_ADDRESS, else local threads)")
    command(subparsers, "info", InfoParameters, _info, help="describe a zarr store")
    command(subparsers, "export", ExportParameters, _export,
            help="write a store to one CF-1.8 netCDF file")


def _ingest(params: IngestParameters, args) -> int:
    from pipeline.data.ingest import ingest

    # Dates as the text the store's checks name in their messages (YYYY-MM-DD).
    result = ingest(
        params.source, params.store, mirror=params.mirror,
        start=params.start and params.start.isoformat(),
        end=params.end and params.end.isoformat(), grid=params.grid,
        cache_dir=params.cache_dir, dask_address=args.dask_address, freq=params.freq,
        resolution=params.synthetic_resolution, units=params.units, file=params.file,
        variable=params.variable,
    )
    print(result.summary())
    return 0


def _info(params: InfoParameters, args) -> int:
    from pipeline.data.store import describe, validate_store

    validate_store(params.store, full=params.full)
    print(describe(params.store))
    print("  valid      yes" + (" (all values checked)" if params.full else ""))
    return 0


def _export(params: ExportParameters, args) -> int:
    from pipeline.products.export import export_netcdf

    print(export_netcdf(params.store, params.out, overwrite=params.overwrite,
                        layout=params.layout))
    return 0
