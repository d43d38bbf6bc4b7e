"""The compiled kernel behind `metrics.weighted_scores` (numba; imported on first use).

In numpy the six weighted sums of a score (valid weight, error, squared error, and the three
anomaly products of the ACC) take about twenty passes over (N, Y·X) float64 temporaries
and a matmul each. Here each sample's six values per point are formed in one pass over its
fields into a buffer that stays in cache, and one small matmul sums them for every region:
about 6x faster on a 2-degree grid, the same sums to rounding (float64 throughout).
"""

from __future__ import annotations

import numpy as np
from numba import njit

N_SUMS = 6  # weight of the valid points, error, error², f'o', f'², o'²


@njit(cache=True, nogil=True)
def weighted_sums(forecast, truth, climatology, points, weights):
    """forecast, truth, climatology: (N, P) float32 or float64; points: (Q,) the indices
    of the points with a weight; weights: (Q, R) float64. Returns (N, 6, R): per sample and
    region the weighted sums over the points where forecast and truth are finite of 1,
    f - o, (f - o)², (f - c)(o - c), (f - c)², (o - c)²."""
    n_samples, n_points = forecast.shape[0], points.shape[0]
    out = np.empty((n_samples, N_SUMS, weights.shape[1]))
    values = np.empty((N_SUMS, n_points))
    for n in range(n_samples):
        for j in range(n_points):
            p = points[j]
            f = np.float64(forecast[n, p])
            o = np.float64(truth[n, p])
            c = np.float64(climatology[n, p])
            ok = np.isfinite(f) and np.isfinite(o)
            error = f - o if ok else 0.0
            fa = f - c if ok else 0.0
            oa = o - c if ok else 0.0
            values[0, j] = 1.0 if ok else 0.0
            values[1, j] = error
            values[2, j] = error * error
            values[3, j] = fa * oa
            values[4, j] = fa * fa
            values[5, j] = oa * oa
        out[n] = values @ weights
    return out


def warm_up() -> None:
    """Compile `weighted_sums` (numba, ~4 s once per install, then loaded from its disk
    cache) for the fields scoring passes it: float32 as the forecast and SST stores and the
    climatology hold them, or float64 throughout. `make install` runs this."""
    points, weights = np.arange(2), np.ones((2, 1))
    for dtype in (np.float32, np.float64):
        fields = np.ones((1, 2), dtype)
        weighted_sums(fields, fields, fields, points, weights)
