"""Forecast scores with WeatherBench 2 conventions (docs/design.md §3).

Ocean only; area weights proportional to cos(lat), normalised over the valid points of each
forecast; per lead and region: RMSE, bias, ACC (anomalies against the training-period
climatology) and skill 1 - RMSE/RMSE_ref against the climatology and anomaly-persistence
references. As in WeatherBench 2, RMSE is the square root of the issue-time mean of the
spatially averaged squared error, and ACC is computed per issue time and then averaged.

Array kernels (`weighted_scores`, `aggregate`) come first (regions and area weights are
`pipeline.regions`);
`evaluate` is the xarray wrapper that writes JSON and CSV.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.climatology import (
    fit_climatology,
    ocean_mask,
    open_sst,
    seasonal_index,
    store_time_step,
)
from pipeline.forecast_store import open_forecast
from pipeline.progress import progress
from pipeline.regions import REGIONS, lat_weights, region_mask

__all__ = [
    "BUILT_IN_REFERENCES",
    "MetricsResult",
    "aggregate",
    "evaluate",
    "index_correlation",
    "weighted_scores",
]

def weighted_scores(
    forecast: np.ndarray,
    truth: np.ndarray,
    weights: np.ndarray,
    climatology: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Per-sample area-weighted scores.

    forecast, truth: (N, Y, X); weights: (Y, X) >= 0 (zero outside the region or on land),
    or (R, Y, X) for R regions at once; climatology: (N, Y, X) or None (then `acc` is NaN).
    Points where forecast or truth is not finite are left out and the weights renormalised
    per sample. Returns `mse`, `bias`, `acc`, each (N,) (or (N, R)), NaN for a sample
    without valid points.
    """
    if np.shape(forecast) != np.shape(truth) or np.ndim(forecast) != 3:
        raise ValueError(
            f"forecast, truth: expected equal (N, Y, X) shapes, got {np.shape(forecast)}, "
            f"{np.shape(truth)}"
        )
    if climatology is not None and np.shape(climatology) != np.shape(truth):
        raise ValueError(f"climatology: expected the shape of truth {np.shape(truth)}, got "
                         f"{np.shape(climatology)}")
    f, o = _as_samples(forecast), _as_samples(truth)
    grid = np.shape(forecast)[1:]
    w = np.asarray(weights, dtype=np.float64)
    try:
        w = np.broadcast_to(w, (*w.shape[:-2], *grid))
    except ValueError:
        w = None
    if w is None or w.ndim not in (2, 3):
        raise ValueError(f"weights: expected a shape that broadcasts to (Y, X) = {grid} "
                         f"or (R, Y, X), got {np.shape(weights)}")
    c = o if climatology is None else _as_samples(climatology)
    regions = w.reshape(-1, f.shape[1])  # (R, Y X)
    points = np.flatnonzero((regions != 0).any(axis=0))  # the rest adds nothing
    from pipeline.evaluation.kernels import N_SUMS, weighted_sums

    if len(points) and len(f):
        sums = weighted_sums(f, o, c, points, np.ascontiguousarray(regions[:, points].T))
    else:
        sums = np.zeros((len(f), N_SUMS, len(regions)))
    total, error, squared, cross, f_var, o_var = np.moveaxis(sums, 1, 0)  # each (N, R)
    with np.errstate(invalid="ignore", divide="ignore"):
        mse = squared / total
        bias = error / total
        acc = cross / np.sqrt(f_var * o_var)
    if climatology is None:
        acc[:] = np.nan
    for score in (mse, bias, acc):
        score[total == 0] = np.nan
    shape = (len(f),) if w.ndim == 2 else (len(f), len(w))
    return {"mse": mse.reshape(shape), "bias": bias.reshape(shape), "acc": acc.reshape(shape)}


def _as_samples(values) -> np.ndarray:
    """(N, Y, X) -> a C-contiguous (N, Y X) array of float32 (as stored) or float64."""
    a = np.asarray(values)
    if a.dtype != np.float32:
        a = a.astype(np.float64, copy=False)
    return np.ascontiguousarray(a).reshape(a.shape[0], a.shape[1] * a.shape[2])


# The references evaluate() always builds from the truth store and scores itself.
BUILT_IN_REFERENCES = ("climatology", "persistence")


# Forecast stores hold one issue time per chunk with all its leads, so reading a single lead
# decompresses every chunk of the store: leads are read in blocks of at most this many bytes.
LEAD_BLOCK_BYTES = 256e6


def _member_mean(sst):
    """The ensemble mean of a forecast's sst when it has a `member` dimension."""
    return sst.mean("member") if "member" in sst.dims else sst


def _by_lead(sst, budget: float = LEAD_BLOCK_BYTES):
    """Yields each lead's field (init_time, Y, X) of a forecast's `sst` in lead order (the
    ensemble mean where it has members), reading blocks of leads of at most `budget`
    bytes."""
    n_leads = sst.sizes["lead"]
    per_lead = sst.dtype.itemsize * sst.size / n_leads
    size = max(1, int(budget // per_lead))
    for first in range(0, n_leads, size):
        block = _member_mean(sst.isel(lead=slice(first, first + size)).load())
        yield from block.transpose("lead", "init_time", ...).values


def _scoring_inputs(fc, tr, climatology_start, climatology_end, climatology=None):
    """What every score of forecast `fc` against truth `tr` needs: a function times ->
    truth fields (NaN where unobserved), the climatology (season, Y, X), the time step, the
    ocean area weights (Y, X) and the climatology period. `climatology`: a fit to use as it
    is (`fit_climatology`'s Dataset, e.g. the run's stats.nc) instead of fitting the truth."""
    if climatology is not None:
        climatology_start = climatology_start or climatology.attrs.get("start")
        climatology_end = climatology_end or climatology.attrs.get("end")
    start = climatology_start or fc.attrs.get("climatology_start")
    end = climatology_end or fc.attrs.get("climatology_end")
    if end is None:
        raise ValueError(
            "climatology_end: the forecast has no climatology_end attribute; pass the end "
            "of the training period"
        )
    if not (np.array_equal(fc.lat.values, tr.lat.values) and np.array_equal(
        fc.lon.values, tr.lon.values
    )):
        raise ValueError("forecast and truth: expected the same lat/lon grid")
    step = store_time_step(tr)
    if climatology is None:
        climatology = fit_climatology(tr.sst, start=start, end=end, step=step)
    clim = climatology["clim"].values  # (season, Y, X)
    times = np.concatenate([fc.init_time.values, fc.valid_time.values.ravel()])
    needed = pd.DatetimeIndex(tr.time.values).intersection(pd.DatetimeIndex(times))
    observed = tr.sst.sel(time=needed).load()

    def at(times):  # (N,) -> (N, Y, X), NaN where the truth store has no such time
        return observed.reindex(time=times).values

    weights = lat_weights(tr.lat.values)[:, None] * ocean_mask(clim, tr)
    return at, clim, step, weights, (start, end)


def index_correlation(
    forecast, truth, *, region: str = "nino34", climatology_start=None, climatology_end=None
) -> pd.DataFrame:
    """Correlation over issue times of a regional index, per lead.

    The index is the area-weighted mean anomaly (against the training-period climatology)
    over the ocean points of `region`; for each lead, the Pearson (centred) correlation of
    the forecast index with the observed index over the issue times whose valid time is
    observed. Returns a table with columns lead, r, n.
    """
    fc = open_forecast(forecast)
    tr = open_sst(truth)
    at, clim, step, weights, _ = _scoring_inputs(fc, tr, climatology_start, climatology_end)
    weights = weights * region_mask(tr.lat.values, tr.lon.values, region)
    if weights.sum() == 0:
        raise ValueError(f"region: {region!r} holds no ocean point of this grid")

    def index(values, normals):  # (N, Y, X) -> (N,): the weighted mean of values - normals
        return weighted_scores(values, normals, weights)["bias"]

    rows = []
    for li, (lead, values) in enumerate(zip(fc.lead.values, _by_lead(fc.sst), strict=True)):
        vt = fc.valid_time.values[:, li]
        normals = clim[seasonal_index(vt, step)]
        observed = index(at(vt), normals)
        predicted = index(values, normals)
        ok = np.isfinite(observed) & np.isfinite(predicted)
        r = np.nan
        if ok.sum() >= 3 and np.std(predicted[ok]) > 0 and np.std(observed[ok]) > 0:
            r = float(np.corrcoef(predicted[ok], observed[ok])[0, 1])
        rows.append({"lead": int(lead), "r": r, "n": int(ok.sum())})
    return pd.DataFrame(rows)


def aggregate(scores: dict[str, np.ndarray]) -> dict[str, float]:
    """Issue-time mean of per-sample scores: rmse = sqrt(mean mse), bias, acc; n samples."""
    mse = scores["mse"]
    n = int(np.isfinite(mse).sum())
    if n == 0:
        return {"rmse": np.nan, "bias": np.nan, "acc": np.nan, "n": 0}
    acc = scores["acc"]
    return {
        "rmse": float(np.sqrt(np.nanmean(mse))),
        "bias": float(np.nanmean(scores["bias"])),
        "acc": float(np.nanmean(acc)) if np.isfinite(acc).any() else np.nan,
        "n": n,
    }


@dataclass
class MetricsResult:
    """The score table (one row per forecast, region and lead) and where it was written."""

    table: pd.DataFrame
    json_path: Path
    csv_path: Path
    summary: dict = field(default_factory=dict)


def evaluate(
    forecast,
    truth,
    out_dir,
    *,
    climatology_start=None,
    climatology_end=None,
    regions: list[str] | None = None,
    name: str | None = None,
    references: dict | None = None,
    climatology=None,
) -> MetricsResult:
    """Score a forecast store against the truth store; write metrics.json and metrics.csv.

    The climatology period defaults to the forecast's `climatology_start/_end` attributes
    (the training period). The climatology and anomaly-persistence references are built
    from the truth store itself and scored alongside; `references` (name -> forecast store
    with the same issue times and leads, e.g. pipeline.evaluation.baselines output) are scored too.
    `climatology` (a `fit_climatology` Dataset, e.g. the run's stats.nc) is used as it is
    instead of a fit of the truth over that period.
    """
    fc = open_forecast(forecast)
    tr = open_sst(truth)
    regions = list(regions or REGIONS)
    for region in regions:
        region_mask(fc.lat.values, fc.lon.values, region)  # validates the name
    name = name or str(fc.attrs.get("model", "forecast"))
    at, clim, step, base_w, (start, end) = _scoring_inputs(
        fc, tr, climatology_start, climatology_end, climatology)
    inits = fc.init_time.values
    valid = fc.valid_time.values  # (I, L)
    weights = np.stack([base_w * region_mask(tr.lat.values, tr.lon.values, r)
                        for r in regions])  # (R, Y, X)

    others = {}
    for key, store in (references or {}).items():
        other = open_forecast(store)
        if not (np.array_equal(other.init_time.values, inits)
                and np.array_equal(other.lead.values, fc.lead.values)):
            raise ValueError(f"references[{key!r}]: expected the issue times and leads of "
                             "the forecast")
        if key not in BUILT_IN_REFERENCES:
            others[key] = other.sst
    init_anomaly = at(inits) - clim[seasonal_index(inits, step)]  # (I, Y, X)
    rows = []
    leads = progress(fc.lead.values, desc="evaluate", unit="lead", key="progress-evaluate")
    budget = LEAD_BLOCK_BYTES / (1 + len(others))  # one block of each store at a time
    fields = zip(_by_lead(fc.sst, budget), *(_by_lead(o, budget) for o in others.values()),
                 strict=True)
    for li, (lead, (values, *other_values)) in enumerate(zip(leads, fields, strict=True)):
        vt = valid[:, li]
        truth_l = at(vt)
        clim_l = clim[seasonal_index(vt, step)]
        candidates = {
            name: values,
            "climatology": clim_l,
            "persistence": clim_l + init_anomaly,
            **dict(zip(others, other_values, strict=True)),
        }
        per_region = {key: weighted_scores(values, truth_l, weights, clim_l)  # (I, R)
                      for key, values in candidates.items()}
        for ri, region in enumerate(regions):
            scored = {key: aggregate({score: v[:, ri] for score, v in s.items()})
                      for key, s in per_region.items()}
            for key, s in scored.items():
                rows.append(
                    {
                        "forecast": key,
                        "region": region,
                        "lead": int(lead),
                        "rmse": s["rmse"],
                        "bias": s["bias"],
                        "acc": s["acc"],
                        "skill_vs_climatology": 1 - s["rmse"] / scored["climatology"]["rmse"],
                        "skill_vs_persistence": 1 - s["rmse"] / scored["persistence"]["rmse"],
                        "n_init": s["n"],
                    }
                )
    table = pd.DataFrame(rows)
    summary = (
        table.groupby(["forecast", "region"])[
            ["rmse", "acc", "skill_vs_climatology", "skill_vs_persistence"]
        ]
        .mean()
        .reset_index()
        .to_dict(orient="records")
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / "metrics.csv"
    json_path = out_dir / "metrics.json"
    table.to_csv(csv_path, index=False, float_format="%.6g")
    payload = {
        "forecast": name,
        "run": fc.attrs.get("run"),
        "climatology_period": [str(start) if start else None, str(end)],
        "lead_units": fc.lead.attrs.get("units"),
        "acc_definition": "uncentred anomaly correlation (WeatherBench 2): per issue time "
        "sum(w f' o') / sqrt(sum(w f'^2) sum(w o'^2)), anomalies against the climatology "
        "period, cos(lat) weights, spatial means not removed; then the issue-time mean",
        "summary_mean_over_leads": summary,
        "rows": json.loads(table.to_json(orient="records")),
    }
    # Strict JSON: a score that does not exist (no valid point, as for nino34 on a coarse
    # grid) is null, never the bare NaN that JSON parsers outside Python reject.
    json_path.write_text(json.dumps(_json_safe(payload), indent=1, allow_nan=False))
    return MetricsResult(table=table, json_path=json_path, csv_path=csv_path, summary=summary)



def _json_safe(value):
    """`value` with every NaN or infinite float (numpy's too) as None, recursively."""
    if isinstance(value, dict):
        return {key: _json_safe(v) for key, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value
