"""Non-local context: the amplitudes of the leading EOFs of the global anomaly field.

Each location's encoder sees only that location's past; the state of the basin-scale modes
(ENSO first of all) reaches it through these amplitudes. The EOFs are fitted once per run
on the fitting period's anomalies (area weighted, on the training sub-grid) and stored with
the run's statistics; the amplitude at a time is the projection of that time's anomaly
field alone, so a forecast's context never contains data after its issue time.

Encoder features per issue time t: the amplitudes a(t) and their tendency a(t) - a(t - lag)
(`TENDENCY_LAG` steps), each divided by the fitting period's amplitude std.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from pipeline.eof import leading_eofs
from pipeline.regions import lat_weights

__all__ = ["TENDENCY_LAG", "fit_modes", "mode_features", "project"]

TENDENCY_LAG = 3
ROWS_PER_READ = 32  # grid rows read at once: the store is never loaded whole


def _rows(n: int):
    for y0 in range(0, n, ROWS_PER_READ):
        yield y0, min(n, y0 + ROWS_PER_READ)


def _anomaly_rows(sst: xr.DataArray, clim, seasons, t0: int, t1: int, y0: int, y1: int):
    raw = sst.isel(time=slice(t0, t1), lat=slice(y0, y1)).values.astype(np.float64)
    return np.nan_to_num(raw - clim[seasons[t0:t1], y0:y1])


def fit_modes(
    sst: xr.DataArray, clim: np.ndarray, seasons: np.ndarray, *, end: int, sample: np.ndarray,
    n_modes: int,
) -> xr.Dataset:
    """EOFs of the anomalies of steps 0..end (inclusive) at the `sample` points.

    sst: (time, lat, lon); clim: (season, Y, X); seasons: (T,) season index of each step;
    sample: (Y, X) bool, the ocean points used (weights cos(lat) there, zero elsewhere).
    Returns `eof` (mode, lat, lon), the area-weighted projection pattern (zero off the
    sample), `amplitude_std` (mode), and `pattern` (mode, lat, lon), each mode's anomaly
    field in °C per unit amplitude on every ocean point, all float64, in a Dataset with the lat/lon
    coordinates.
    """
    lat = sst.lat.values
    weights = np.sqrt(lat_weights(lat))[:, None] * sample
    points = np.flatnonzero(sample.ravel())
    if n_modes < 1:
        raise ValueError(f"n_modes: expected a positive integer, got {n_modes}")
    x = np.zeros((end + 1, len(points)))
    offset = 0
    for y0, y1 in _rows(len(lat)):
        keep = sample[y0:y1].ravel()
        block = _anomaly_rows(sst, clim, seasons, 0, end + 1, y0, y1)
        block = (block * weights[y0:y1]).reshape(end + 1, -1)[:, keep]
        x[:, offset : offset + block.shape[1]] = block
        offset += block.shape[1]
    found = leading_eofs(x, n_modes)
    vectors = np.zeros((n_modes, len(points)))  # (M, P) orthonormal; zero rows pad a
    vectors[: len(found)] = found  # grid or period too small for M modes
    eof = np.zeros((n_modes, sample.size))
    eof[:, points] = vectors
    eof = eof.reshape(n_modes, *sample.shape) * weights  # amplitude = sum(anomaly * eof)
    amplitudes = x @ vectors.T  # (T, M)
    amplitude_std = amplitudes.std(0)
    amplitude_std[amplitude_std == 0] = 1.0
    # Each mode's field on every ocean point (not only the sample): the regression of the
    # anomalies on its amplitude; on the sample it is the EOF divided by its weights.
    pattern = np.zeros((n_modes, *sample.shape))
    power = np.maximum((amplitudes**2).sum(0), 1e-12)
    for y0, y1 in _rows(len(lat)):
        block = _anomaly_rows(sst, clim, seasons, 0, end + 1, y0, y1)
        pattern[:, y0:y1] = np.einsum("tm,tyx->myx", amplitudes, block) / power[:, None, None]
    return xr.Dataset(
        {"eof": (("mode", "lat", "lon"), eof), "amplitude_std": ("mode", amplitude_std),
         "pattern": (("mode", "lat", "lon"), pattern)},
        coords={"lat": lat, "lon": sst.lon.values},
    )


def project(sst: xr.DataArray, clim, seasons, eof: np.ndarray, t0: int, t1: int) -> np.ndarray:
    """Amplitudes (t1 - t0, M) of the anomaly fields of steps t0..t1-1, each from its own
    step only; `eof` (M, Y, X) from `fit_modes`."""
    out = np.zeros((t1 - t0, len(eof)))
    for y0, y1 in _rows(eof.shape[1]):
        if not eof[:, y0:y1].any():
            continue
        block = _anomaly_rows(sst, clim, seasons, t0, t1, y0, y1)
        out += np.einsum("tyx,myx->tm", block, eof[:, y0:y1])
    return out


def mode_features(amplitudes: np.ndarray, amplitude_std: np.ndarray, first: int) -> np.ndarray:
    """Encoder features (T - first, 2M) float32 for steps first.. of `amplitudes` (T, M):
    scaled amplitudes and their TENDENCY_LAG-step tendency (zero where the earlier step is
    not in `amplitudes`)."""
    a = amplitudes / np.maximum(amplitude_std, 1e-12)
    earlier = np.concatenate([np.repeat(a[:1], TENDENCY_LAG, 0), a[:-TENDENCY_LAG]])
    tendency = a - earlier
    tendency[:TENDENCY_LAG] = 0.0
    return np.concatenate([a, tendency], axis=1)[first:].astype(np.float32)
