"""Chunk layouts of the SST store: appends vs. time-series reads (the choice in
pipeline/data/store.py).

    python benchmarks/store_layout.py [--years 50] [--repeat 5]

For a 1° monthly store like COBE-SST2 (600 x 180 x 360 float32), writes zarr v3 arrays with
several chunk layouts and times, per layout (median of --repeat):
- append: grow by one month and write it (rewrites the last partial chunk row),
- series: read the whole time series of a 10 x 10 block of locations (what training reads),
- map: read one month's global map (what forecasts and maps read),
plus the size on disk and the number of chunk files.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import zarr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

LAYOUTS = {
    "map per step (1, 180, 360)": (1, 180, 360),
    "year of maps (12, 180, 360)": (12, 180, 360),
    "chosen (120, 48, 48)": (120, 48, 48),
    "whole series (all, 30, 30)": (None, 30, 30),
}


def median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(path: Path, chunks: tuple, sst: np.ndarray, repeat: int):
    """Median seconds to append a month, read a 10 x 10 block's series, read one map."""
    n = sst.shape[0]
    arr = zarr.create_array(
        str(path),
        shape=(n - repeat, 180, 360),
        chunks=chunks,
        dtype="float32",
        fill_value=np.nan,
        zarr_format=3,
    )
    arr[:] = sst[: n - repeat]
    state = {"t": n - repeat}

    def append():
        t = state["t"]
        arr.resize((t + 1, 180, 360))
        arr[t] = sst[t]
        state["t"] = t + 1

    return (
        median_time(append, repeat),
        median_time(lambda: arr[:, 90:100, 200:210], repeat),
        median_time(lambda: arr[n // 2], repeat),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--years", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    from pipeline.data.synthetic import synthetic_dataset

    data = synthetic_dataset("1950-01", f"{1950 + args.years - 1}-12", resolution=1.0)
    sst = data["sst"].values  # (T, 180, 360)
    n = sst.shape[0]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, chunks in LAYOUTS.items():
            chunks = (chunks[0] or n, *chunks[1:])
            path = Path(tmp) / "s.zarr"
            append_s, series_s, map_s = measure(path, chunks, sst, args.repeat)
            files = [p for p in path.rglob("*") if p.is_file()]
            size_mb = sum(p.stat().st_size for p in files) / 1e6
            rows.append((name, append_s, series_s, map_s, size_mb, len(files)))
            shutil.rmtree(path)
    print(
        f"{'layout':<30} {'append ms':>10} {'series ms':>10} {'map ms':>8} {'MB':>7} {'files':>6}"
    )
    for name, append_s, series_s, map_s, size_mb, nfiles in rows:
        print(
            f"{name:<30} {append_s * 1e3:>10.1f} {series_s * 1e3:>10.1f} {map_s * 1e3:>8.1f} "
            f"{size_mb:>7.1f} {nfiles:>6}"
        )


if __name__ == "__main__":
    main()
