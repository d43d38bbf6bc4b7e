"""Reference forecasts in the forecast-store format: climatology, anomaly persistence and
damped anomaly persistence.

All three use the training-period climatology; the damping is fitted on training-period
anomalies only. Array kernels first, then `baseline_forecast` writes a forecast store.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.climatology import fit_climatology, open_sst, seasonal_index, time_step
from pipeline.forecast_store import ForecastWriter

__all__ = [
    "KINDS",
    "anomaly_persistence",
    "baseline_forecast",
    "damped_persistence",
    "fit_damping",
]

KINDS = ("climatology", "persistence", "damped_persistence")


def anomaly_persistence(anomaly: np.ndarray, clim_valid: np.ndarray) -> np.ndarray:
    """Climatology at the valid times plus the anomaly at issue time.

    anomaly: (..., Y, X) at issue time; clim_valid: (..., L, Y, X) -> (..., L, Y, X).
    """
    return clim_valid + anomaly[..., None, :, :]


def damped_persistence(
    anomaly: np.ndarray, clim_valid: np.ndarray, damping: np.ndarray
) -> np.ndarray:
    """Climatology plus the issue-time anomaly scaled by a per-lead damping factor.

    anomaly: (..., Y, X); clim_valid: (..., L, Y, X); damping: (L, Y, X) in [0, 1].
    """
    return clim_valid + damping * anomaly[..., None, :, :]


def fit_damping(anomalies: np.ndarray, leads: np.ndarray) -> np.ndarray:
    """Least-squares damping per lead and location: alpha_l = sum a_t a_{t+l} / sum a_t^2.

    anomalies: (T, ...) training-period anomalies (NaN allowed); leads: (L,) positive ints.
    Returns (L, ...) clipped to [0, 1] (a forecast never amplifies or flips the anomaly).
    """
    a = np.asarray(anomalies, dtype=np.float64)
    out = np.zeros((len(leads), *a.shape[1:]))
    for i, lead in enumerate(np.asarray(leads, dtype=int)):
        if lead >= a.shape[0]:
            continue  # no training pairs that far apart: damp to climatology
        x, y = a[:-lead], a[lead:]
        ok = np.isfinite(x) & np.isfinite(y)
        num = np.where(ok, x * y, 0.0).sum(0)
        den = np.where(ok, x * x, 0.0).sum(0)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[i] = np.where(den > 0, num / den, 0.0)
    return np.clip(out, 0.0, 1.0)


def baseline_forecast(
    kind: str,
    store,
    out,
    *,
    inits,
    leads: int | list[int] = 48,
    train_end,
    train_start=None,
    overwrite: bool = False,
) -> Path | str:
    """Write the `kind` baseline ("climatology", "persistence" or "damped_persistence") for
    issue times `inits` and leads 1..leads (or the given list) to the forecast store `out`
    (an existing forecast store only with `overwrite`).

    The climatology (and damping) come from the store over [train_start, train_end]; the
    anomaly at each issue time uses only that time's observation.
    """
    if kind not in KINDS:
        raise ValueError(f"kind: expected one of {KINDS}, got {kind!r}")
    ds = open_sst(store)
    step = time_step(ds.time.values)
    lead_values = np.arange(1, leads + 1) if isinstance(leads, int) else np.asarray(leads)
    inits = pd.DatetimeIndex(np.atleast_1d(inits))
    missing = inits.difference(pd.DatetimeIndex(ds.time.values))
    if len(missing):
        raise ValueError(f"inits: not in the store's time axis: {[str(t) for t in missing]}")
    stats = fit_climatology(ds.sst, start=train_start, end=train_end)
    clim = stats["clim"].values  # (season, Y, X)
    damping = None
    if kind == "damped_persistence":
        period = ds.sst.sel(time=slice(train_start, train_end))
        seasons = seasonal_index(period.time.values, step)
        anomalies = period.values - clim[seasons]
        damping = fit_damping(anomalies, lead_values).astype(np.float32)
    writer = ForecastWriter(
        out,
        inits=inits.values,
        leads=lead_values,
        lat=ds.lat.values,
        lon=ds.lon.values,
        step=step,
        attrs={
            "model": kind,
            "run": f"baseline:{kind}",
            "climatology_start": stats.attrs["start"],
            "climatology_end": stats.attrs["end"],
        },
        overwrite=overwrite,
    )
    observed = ds.sst.sel(time=inits.values).values  # (I, Y, X)
    for i, init in enumerate(inits.values):
        valid = [step.add(np.array([init]), int(n))[0] for n in lead_values]
        clim_valid = clim[seasonal_index(np.array(valid), step)]  # (L, Y, X)
        anomaly = observed[i] - clim[seasonal_index(np.array([init]), step)[0]]
        if kind == "climatology":
            values = clim_valid
        elif kind == "persistence":
            values = anomaly_persistence(anomaly, clim_valid)
        else:
            values = damped_persistence(anomaly, clim_valid, damping)
        writer.write(i, values)
    return writer.path

