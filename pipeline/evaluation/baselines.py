"""The classical statistical SST forecasts, as forecasters in the forecast-store format.

Every baseline is fitted on anomalies (against the training-period seasonal climatology)
of the training period only, and each forecast sees only the observations up to its issue
time: `baseline_forecast` hands `predict` the last `history` steps ending at the issue time,
never anything later. The forecast is the climatology at the valid times plus the predicted
anomaly.

| kind               | predicted anomaly at lead l                                        |
|--------------------|--------------------------------------------------------------------|
| climatology        | 0                                                                  |
| trend              | per-cell linear trend of the training anomalies, at the valid time |
| persistence        | the issue-time anomaly                                             |
| damped_persistence | alpha(l, cell) x issue-time anomaly, alpha the lag-l regression    |
| recent_mean        | mean anomaly of the last `window` steps                            |
| lim                | linear inverse model: trend + EOF truncation, G(lag)^(l/lag)       |

The linear inverse model (Penland & Sardeshmukh 1995) takes the leading `modes` area-weighted
EOFs of the detrended training anomalies, fits the propagator G = C(lag) C(0)^-1 of their
principal components and forecasts p(t + l) = G^(l / lag) p(t) (a matrix power through the
eigendecomposition), with the per-cell trend added back.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import xarray as xr

from pipeline.climatology import (
    fit_climatology,
    ocean_mask,
    open_sst,
    seasonal_index,
    store_time_step,
)
from pipeline.eof import leading_eofs
from pipeline.forecast_store import ForecastWriter, valid_times
from pipeline.regions import lat_weights

__all__ = [
    "BASELINES",
    "KINDS",
    "Baseline",
    "baseline_forecast",
    "fit_damping",
    "fit_trend",
    "make_baseline",
]


def fit_damping(anomalies: np.ndarray, leads: np.ndarray) -> np.ndarray:
    """Least-squares damping per lead and location: alpha_l = sum a_t a_{t+l} / sum a_t^2.

    anomalies: (T, ...) training-period anomalies (NaN allowed); leads: (L,) positive ints.
    Returns (L, ...) clipped to [0, 1] (a forecast never amplifies or flips the anomaly).
    """
    a = np.asarray(anomalies, dtype=np.float64)
    finite = np.isfinite(a)
    filled = np.where(finite, a, 0.0)  # a pair with a missing value then adds 0, once
    squared = filled * filled
    out = np.zeros((len(leads), *a.shape[1:]))
    for i, lead in enumerate(np.asarray(leads, dtype=int)):
        if lead >= a.shape[0]:
            continue  # no training pairs that far apart: damp to climatology
        num = (filled[:-lead] * filled[lead:]).sum(0)
        den = (squared[:-lead] * finite[lead:]).sum(0)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[i] = np.where(den > 0, num / den, 0.0)
    return np.clip(out, 0.0, 1.0)


def fit_trend(
    anomalies: np.ndarray, t: np.ndarray, block_bytes: int = 4 << 20
) -> tuple[np.ndarray, np.ndarray]:
    """Per-cell least-squares line a ~ intercept + slope * t over the finite values.

    anomalies: (T, ...); t: (T,) step numbers. Returns (intercept, slope), each (...), zero
    where a cell has fewer than two finite values.

    Cells are fitted in blocks of about `block_bytes` of float64 (T, cells): the masked
    temporaries then stay a few MB instead of a dozen copies of the whole field (1 degree,
    420 months: 1.2-3.4 s -> 0.3 s). With blocks of many cells numpy sums each cell over
    time in the same order as for the whole field, so the result does not depend on the
    block (a single column would be summed pairwise: blocks have at least 64).
    """
    a = np.asarray(anomalies)
    flat = a.reshape(len(a), -1)
    t = np.asarray(t, dtype=np.float64).reshape(-1, 1)
    intercept, slope = np.zeros(flat.shape[1]), np.zeros(flat.shape[1])
    step = max(64, block_bytes // (8 * max(1, len(flat))))
    for c0 in range(0, flat.shape[1], step):
        block = flat[:, c0 : c0 + step].astype(np.float64)
        ok = np.isfinite(block)
        n = ok.sum(0)
        with np.errstate(invalid="ignore", divide="ignore"):
            t_mean = np.where(ok, t, 0.0).sum(0) / n
            a_mean = np.where(ok, block, 0.0).sum(0) / n
            dt = np.where(ok, t - t_mean, 0.0)
            b = (dt * np.where(ok, block - a_mean, 0.0)).sum(0) / (dt**2).sum(0)
        b = np.where((n >= 2) & np.isfinite(b), b, 0.0)
        slope[c0 : c0 + step] = b
        intercept[c0 : c0 + step] = np.where(n >= 1, np.nan_to_num(a_mean - b * t_mean), 0.0)
    return intercept.reshape(a.shape[1:]), slope.reshape(a.shape[1:])


@dataclass
class Baseline:
    """A statistical forecaster of anomalies. `fit` sees training anomalies only; `predict`
    sees the last `history` anomalies up to and including the issue time."""

    kind: ClassVar[str]
    history: ClassVar[int] = 1

    def fit(self, anomalies: np.ndarray, t: np.ndarray, weights: np.ndarray,
            leads: np.ndarray) -> None:
        """anomalies (T, Y, X) of the training period, NaN on land; t (T,) step numbers;
        weights (Y, X) area weights (cos lat, zero on land); leads (L,) to be forecast."""

    def predict(self, history: np.ndarray, t0: int, leads: np.ndarray) -> np.ndarray:
        """history (history, Y, X) ending at the issue time t0 (a step number); leads (L,)
        -> predicted anomalies (L, Y, X)."""
        raise NotImplementedError


@dataclass
class Climatology(Baseline):
    kind: ClassVar[str] = "climatology"

    def predict(self, history, t0, leads):
        return np.zeros((len(leads), *history.shape[1:]))


@dataclass
class Trend(Baseline):
    kind: ClassVar[str] = "trend"
    _line: tuple = field(default=(), init=False, repr=False)

    def fit(self, anomalies, t, weights, leads):
        self._line = fit_trend(anomalies, t)

    def predict(self, history, t0, leads):
        intercept, slope = self._line
        return intercept + slope * (t0 + np.asarray(leads))[:, None, None]


@dataclass
class Persistence(Baseline):
    kind: ClassVar[str] = "persistence"

    def predict(self, history, t0, leads):
        return np.repeat(history[-1:], len(leads), axis=0)


@dataclass
class DampedPersistence(Baseline):
    kind: ClassVar[str] = "damped_persistence"
    _damping: dict = field(default_factory=dict, init=False, repr=False)

    def fit(self, anomalies, t, weights, leads):
        leads = np.asarray(leads, dtype=int)
        self._damping = dict(zip(leads.tolist(), fit_damping(anomalies, leads), strict=True))

    def predict(self, history, t0, leads):
        return np.stack([self._damping[int(lead)] * history[-1] for lead in leads])


@dataclass
class RecentMean(Baseline):
    """The mean anomaly of the last `window` steps, carried forward unchanged."""

    kind: ClassVar[str] = "recent_mean"
    window: int = 36

    def __post_init__(self):
        if self.window < 1:
            raise ValueError(f"window: expected a positive number of steps, got {self.window}")

    @property
    def history(self) -> int:  # type: ignore[override]
        return self.window

    def predict(self, history, t0, leads):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # land: all NaN
            mean = np.nanmean(history, axis=0)
        return np.repeat(mean[None], len(leads), axis=0)


@dataclass
class LinearInverseModel(Baseline):
    """LIM on the leading `modes` area-weighted EOFs of detrended anomalies, lag `lag`."""

    kind: ClassVar[str] = "lim"
    modes: int = 30
    lag: int = 1
    _fit: dict = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self):
        if self.modes < 1 or self.lag < 1:
            raise ValueError(
                f"modes, lag: expected positive integers, got modes={self.modes}, lag={self.lag}"
            )

    def fit(self, anomalies, t, weights, leads):
        intercept, slope = fit_trend(anomalies, t)
        ocean = (weights > 0) & np.isfinite(anomalies).all(0)
        scale = np.sqrt(weights[ocean])  # EOFs orthonormal under the area weights
        x = np.nan_to_num(anomalies[:, ocean] - intercept[ocean] - slope[ocean] * t[:, None])
        x = x * scale
        eofs = leading_eofs(x, self.modes)  # (M, P); M < modes where x has fewer
        modes = len(eofs)
        pcs = x @ eofs.T  # (T, M)
        lag = self.lag
        if len(pcs) <= lag + modes:
            raise ValueError(
                f"lag, modes: {len(pcs)} training steps are too few for modes={modes} and "
                f"lag={lag}"
            )
        propagator = (pcs[lag:].T @ pcs[:-lag]) @ np.linalg.inv(pcs[:-lag].T @ pcs[:-lag])
        values, vectors = np.linalg.eig(propagator)
        self._fit = dict(intercept=intercept, slope=slope, ocean=ocean, scale=scale, eofs=eofs,
                         propagator=propagator, values=values.astype(complex),
                         vectors=vectors, inverse=np.linalg.inv(vectors))

    def propagator(self, lead: float) -> np.ndarray:
        """G^(lead / lag) (M, M), real part of the eigendecomposition's power."""
        f = self._fit
        return ((f["vectors"] * f["values"] ** (lead / self.lag)) @ f["inverse"]).real

    def predict(self, history, t0, leads):
        f = self._fit
        ocean, scale = f["ocean"], f["scale"]
        now = history[-1][ocean] - f["intercept"][ocean] - f["slope"][ocean] * t0
        pcs = f["eofs"] @ (np.nan_to_num(now) * scale)  # (M,)
        leads = np.asarray(leads)
        out = f["intercept"] + f["slope"] * (t0 + leads)[:, None, None]
        for i, lead in enumerate(leads):
            out[i][ocean] += (self.propagator(float(lead)) @ pcs) @ f["eofs"] / scale
        return np.where(np.isfinite(history[-1]), out, np.nan)


BASELINES: dict[str, type[Baseline]] = {
    cls.kind: cls
    for cls in (Climatology, Trend, Persistence, DampedPersistence, RecentMean,
                LinearInverseModel)
}
KINDS = tuple(BASELINES)


def make_baseline(kind: str, **options) -> Baseline:
    """The `kind` baseline with its options (e.g. window=36 for recent_mean, modes and lag
    for lim); an unknown kind or option is an error naming it."""
    if kind not in BASELINES:
        raise ValueError(f"kind: expected one of {KINDS}, got {kind!r}")
    cls = BASELINES[kind]
    allowed = sorted(f.name for f in dataclasses.fields(cls) if f.init)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"options: {kind} takes {allowed or 'no options'}, got {unknown}")
    return cls(**options)


def baseline_forecast(
    kind: str,
    store,
    out,
    *,
    inits,
    leads: int | list[int] = 48,
    train_end=None,
    train_start=None,
    climatology: xr.Dataset | None = None,
    options: dict | None = None,
    overwrite: bool = False,
) -> Path | str:
    """Write the `kind` baseline (one of `KINDS`, with `options` for it) for issue times
    `inits` and leads 1..leads (or the given list) to the forecast store `out` (an existing
    forecast store only with `overwrite`; None: returns the forecast as an in-memory Dataset).

    Climatology and baseline are fitted on the store over [train_start, train_end]; the
    forecast from each issue time sees the observations up to that time only. With
    `climatology` (a `fit_climatology` result, e.g. a run's stats.nc) that fit is used as it
    is, and the baseline is fitted over its period.
    """
    baseline = make_baseline(kind, **(options or {}))
    ds = open_sst(store)
    step = store_time_step(ds)
    lead_values = np.arange(1, leads + 1) if isinstance(leads, int) else np.asarray(leads)
    times = pd.DatetimeIndex(ds.time.values)
    inits = pd.DatetimeIndex(np.atleast_1d(inits))
    missing = inits.difference(times)
    if len(missing):
        raise ValueError(f"inits: not in the store's time axis: {[str(t) for t in missing]}")
    if climatology is None:
        if train_end is None:
            raise ValueError("train_end: expected the end of the fitting period, or a "
                             "climatology to take it from, got neither")
        stats = fit_climatology(ds.sst, start=train_start, end=train_end, step=step)
    else:
        stats = climatology
    clim = stats["clim"].values  # (season, Y, X)
    weights = lat_weights(ds.lat.values)[:, None] * ocean_mask(clim, ds)
    seasons = seasonal_index(times.values, step)
    first = int(times.searchsorted(pd.Timestamp(stats.attrs["start"])))
    last = int(times.searchsorted(pd.Timestamp(stats.attrs["end"]), side="right"))
    steps = np.arange(len(times))
    training = ds.sst.isel(time=slice(first, last)).values
    baseline.fit(training - clim[seasons[first:last]], steps[first:last], weights, lead_values)

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
            **{f"option_{k}": v for k, v in (options or {}).items()},
        },
        overwrite=overwrite,
    )
    valid = valid_times(inits.values, lead_values, step)  # (I, L)
    indices = times.get_indexer(inits)
    spans = [(max(0, index + 1 - baseline.history), index + 1) for index in indices]
    for i, (index, (start, stop), observed) in enumerate(
            zip(indices, spans, _histories(ds.sst, spans), strict=True)):
        history = observed - clim[seasons[start:stop]]  # up to the issue time, never later
        anomaly = baseline.predict(history, int(index), lead_values)
        writer.write(i, (clim[seasonal_index(valid[i], step)] + anomaly).astype(np.float32))
    return writer.path


# Reading each issue time's history alone builds and runs a dask graph over every chunk it
# touches (30 ms each at 2 degrees); consecutive issue times share blocks of at most this.
HISTORY_BLOCK_BYTES = 256e6


def _histories(sst: xr.DataArray, spans: list[tuple[int, int]],
               budget: float = HISTORY_BLOCK_BYTES):
    """Yields the values of `sst` (time, Y, X) over each span [start, stop) of time steps in
    turn, from blocks of consecutive steps read once: a block spans as many of the following
    spans as fit `budget` bytes (at least its first span)."""
    per_step = sst.dtype.itemsize * sst.size / max(sst.sizes["time"], 1)
    limit = max(1, int(budget // per_step))
    block, lo, hi = None, 0, 0
    for k, (start, stop) in enumerate(spans):
        if block is None or start < lo or stop > hi:
            lo, hi = start, stop
            for later_start, later_stop in spans[k + 1:]:
                if later_start < lo or max(hi, later_stop) - lo > limit:
                    break
                hi = max(hi, later_stop)
            block = sst.isel(time=slice(lo, hi)).values
        yield block[start - lo : stop - lo]
