"""pipeline.evaluation.metrics against xskillscore on one lead of a 1° hindcast-sized field.

    python benchmarks/metrics_libraries.py [--inits 72]

Both compute the per-issue-time area-weighted MSE over valid ocean points (xskillscore's
`mse` with cos-lat weights and skipna); prints the median times and their ratio, and the
largest difference. sstcast keeps its own kernel when it is faster: xskillscore has no
uncentred (WeatherBench 2) ACC, so the ACC would stay ours either way.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.evaluation.metrics import weighted_scores
from pipeline.regions import lat_weights  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inits", type=int, default=72)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    import xskillscore as xs

    rng = np.random.default_rng(0)
    lat, lon = np.arange(-89.5, 90, 1.0), np.arange(0.5, 360, 1.0)
    shape = (args.inits, len(lat), len(lon))
    truth = rng.normal(20, 2, shape)
    forecast = truth + rng.normal(0, 0.5, shape)
    truth[:, :20] = np.nan  # land / ice rows
    weights = lat_weights(lat)[:, None] * np.ones((1, len(lon)))
    dims = ("init", "lat", "lon")
    f, o = xr.DataArray(forecast, dims=dims), xr.DataArray(truth, dims=dims)
    w = xr.DataArray(np.broadcast_to(weights, shape[1:]), dims=("lat", "lon"))

    def ours():
        return weighted_scores(forecast, truth, weights)["mse"]

    def theirs():
        return xs.mse(f, o, dim=["lat", "lon"], weights=w, skipna=True).values

    times = {}
    for name, fn in (("sstcast", ours), ("xskillscore", theirs)):
        fn()
        runs = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            fn()
            runs.append(time.perf_counter() - start)
        times[name] = statistics.median(runs)
    diff = float(np.nanmax(np.abs(ours() - theirs())))
    print(f"area-weighted MSE per issue time, {args.inits} x 180 x 360, median of "
          f"{args.repeats}:")
    for name, seconds in times.items():
        print(f"  {name:12s} {seconds * 1e3:8.1f} ms")
    print(f"  xskillscore / sstcast: {times['xskillscore'] / times['sstcast']:.2f}x; "
          f"largest difference {diff:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
