"""Ingest the real COBE-SST2 file through a loopback HTTP mirror into a zarr store.

    python benchmarks/ingest.py PATH/TO/sst.mon.mean.nc [--repeat 3] [--grid DEG]

The file is symlinked into a temporary mirror folder under Datasets/COBE2/ (NOAA PSL's
layout) and served by a threaded HTTP server on 127.0.0.1. Each repeat runs the full path
(fetch with validity check -> lazy standardisation -> zarr write -> validation) in a fresh
subprocess, and prints wall time, MB/s (of the netCDF file), store size and the peak
resident memory of that subprocess; then the median over repeats and a no-op re-run.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
from pipeline.data.ingest import ingest
grid = float(sys.argv[5]) if sys.argv[5] != "none" else None
t0 = time.perf_counter()
result = ingest("cobe2", sys.argv[2], mirror=sys.argv[3], cache_dir=sys.argv[4], grid=grid)
wall = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"wall": wall, "peak_mb": peak, "added": result.added, "total": result.total}))
"""


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve(folder: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def run_child(store: Path, url: str, cache: Path, grid) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(ROOT), str(store), url, str(cache), str(grid).lower()],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def same_values(nc_path: Path, store: Path) -> bool:
    """The store's sst equals the file's, read independently (fill -> NaN, lat flipped)."""
    import netCDF4
    import numpy as np

    sys.path.insert(0, str(ROOT))
    from pipeline.data.store import open_store

    with netCDF4.Dataset(nc_path) as nc:
        raw = nc["sst"][:].filled(np.nan).astype(np.float32)
        if nc["lat"][0] > nc["lat"][-1]:
            raw = raw[:, ::-1]
    return bool(np.array_equal(open_store(store)["sst"].values, raw, equal_nan=True))


def size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path, help="a COBE-SST2 sst.mon.mean.nc")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--grid", type=float, default=None)
    args = parser.parse_args()
    source = args.path.resolve()
    if not source.is_file():
        sys.exit(f"path: no such file {source}")
    file_mb = source.stat().st_size / 1e6
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        target = tmp / "mirror" / "Datasets" / "COBE2" / "sst.mon.mean.nc"
        target.parent.mkdir(parents=True)
        target.symlink_to(source)
        server, url = serve(tmp / "mirror")
        runs = []
        for i in range(args.repeat):
            store, cache = tmp / f"store{i}.zarr", tmp / f"cache{i}"
            run = run_child(store, url, cache, args.grid)
            run["store_mb"] = size_mb(store)
            runs.append(run)
            print(
                f"run {i}: {run['wall']:.1f} s, {file_mb / run['wall']:.1f} MB/s, "
                f"{run['total']} steps, store {run['store_mb']:.1f} MB, "
                f"peak RSS {run['peak_mb']:.0f} MB"
            )
        noop = run_child(tmp / "store0.zarr", url, tmp / "cache0", args.grid)
        server.shutdown()
        equal = None if args.grid else same_values(source, tmp / "store0.zarr")
    wall = statistics.median(r["wall"] for r in runs)
    print(
        json.dumps(
            {
                "file_mb": round(file_mb, 1),
                "median_wall_s": round(wall, 2),
                "median_mb_per_s": round(file_mb / wall, 1),
                "store_mb": round(runs[0]["store_mb"], 1),
                "median_peak_rss_mb": round(statistics.median(r["peak_mb"] for r in runs)),
                "noop_rerun_s": round(noop["wall"], 2),
                "noop_added": noop["added"],
        "store_equals_source": equal,
                "this_process_rss_mb": round(
                    resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                ),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
