"""Forecasts from a trained run: one issue time (`forecast`), many (`hindcast`), the maps
of latents and ODE parameters (`interpret`), and both in one pass (`hindcast_and_interpret`:
the run loaded and the store read once).

For each issue time the context is the last `window.context` observed steps ending AT the
issue time, normalised with the run's training-period statistics (stats.nc); nothing after
the issue time is read. Forecast anomalies are turned back into °C with the same
climatology. Work is batched over locations and issue times; the store is read one block
of grid rows at a time.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr

from pipeline.climatology import ocean_mask, open_sst, seasonal_index, store_time_step
from pipeline.data.store import check_writable
from pipeline.forecast_store import ForecastWriter, valid_times
from pipeline.model.dynamics import blend, blend_weights
from pipeline.model.modes import TENDENCY_LAG, mode_features, project
from pipeline.model.run import STATS, default_device, load_dynamics, load_model
from pipeline.model.windows import covariates, normalised_anomalies, ocean_locations
from pipeline.progress import Progress
from smnn import SolveError

__all__ = ["forecast", "hindcast", "hindcast_and_interpret", "interpret"]

MODEL_NAME = "mechanistic_identifier"


def _issue_indices(times: np.ndarray, start, end, context: int) -> np.ndarray:
    """Indices of the store's times within [start, end]; each needs `context` steps of
    history."""
    index = pd.DatetimeIndex(times)
    lo, hi = pd.Timestamp(start), pd.Timestamp(end)
    if hi < lo:
        raise ValueError(f"end: {end} is before start {start}")
    chosen = np.flatnonzero((index >= lo) & (index <= hi))
    if len(chosen) == 0:
        raise ValueError(
            f"init: no store time between {start} and {end}; the store covers "
            f"{index[0].date()}..{index[-1].date()}"
        )
    if chosen[0] < context - 1:
        raise ValueError(
            f"init: {index[chosen[0]].date()} has only {chosen[0] + 1} steps of history, the "
            f"model needs {context}; first possible init is {index[context - 1].date()}"
        )
    return chosen


def _lead_values(leads, horizon: int) -> np.ndarray:
    if np.ndim(leads) == 0 and leads is not None and not 1 <= leads <= horizon:
        # before np.arange: leads=1e9 would allocate 8 GB only to be refused
        raise ValueError(f"leads: expected 1..{horizon} (the model's horizon), got {leads}")
    values = np.arange(1, horizon + 1) if leads is None else (
        np.arange(1, int(leads) + 1) if np.ndim(leads) == 0 else np.asarray(leads, dtype=int)
    )
    if len(values) == 0 or values.min() < 1 or values.max() > horizon:
        raise ValueError(f"leads: expected values in 1..{horizon} (the model's horizon), got "
                         f"{leads}")
    return values


class _Runner:
    """A loaded run and the store: builds contexts and runs the model in batches."""

    def __init__(self, run_dir, store, batch_size: int):
        self.model, self.config, self.state = load_model(run_dir)
        self.device = default_device()
        self.model.to(self.device)
        self.run_dir = Path(run_dir)
        stats = xr.load_dataset(self.run_dir / STATS)
        self.clim = stats["clim"].values.astype(np.float32)
        self.std = stats["std"].values.astype(np.float32)
        self.stats_attrs = dict(stats.attrs)
        self.eof = stats["eof"].values if "eof" in stats else None
        self.amplitude_std = stats["amplitude_std"].values if "eof" in stats else None
        self.pattern = stats["pattern"].values if "pattern" in stats else None
        self.dynamics = (load_dynamics(run_dir) if self.config.model.mode_leads
                         and self.pattern is not None else None)
        self.ds = open_sst(store)
        self.times = self.ds.time.values
        self.step = store_time_step(self.ds)
        self.seasons = seasonal_index(self.times, self.step)
        ocean = ocean_mask(self.clim, self.ds)
        if self.clim.shape[1:] != ocean.shape or ocean.shape != (
            self.ds.sizes["lat"], self.ds.sizes["lon"]
        ):
            raise ValueError("store: grid differs from the grid the run was trained on")
        self.locations = ocean_locations(ocean, block=self.config.window.block_locations)
        self.batch_size = batch_size

    def blocks(self, issues: np.ndarray, projected=None):
        """Yield (iy, ix, outputs) per block of rows: outputs of the model for all issue
        times × block locations, each (I, n, ...) numpy arrays. `projected`: the issue
        times' `project_modes`, when the caller has them already."""
        C = self.config.window.context
        t0, t1 = int(issues.min()) - C + 1, int(issues.max()) + 1  # never past the last init
        locs = self.locations
        modes = self.modes(issues, projected)
        for b in range(locs.n_blocks):
            s, e = locs.block_starts[b], locs.block_starts[b + 1]
            iy, ix = locs.iy[s:e], locs.ix[s:e]
            y0, y1 = int(iy[0]), int(iy[-1]) + 1
            raw = self.ds.sst.isel(time=slice(t0, t1), lat=slice(y0, y1)).values
            data = np.nan_to_num(normalised_anomalies(
                raw, self.seasons[t0:t1], self.clim[:, y0:y1], self.std[y0:y1]
            ))
            rel = issues - t0
            steps = rel[:, None] + np.arange(-C + 1, 1)  # (I, C)
            ctx = data[steps][:, :, iy - y0, ix]  # (I, C, n)
            ctx = np.moveaxis(ctx, 1, 2).reshape(-1, C)  # (I*n, C)
            cov = covariates(
                np.repeat(self.seasons[issues], len(iy)), self.clim.shape[0],
                np.tile(self.ds.lat.values[iy], len(issues)),
                np.tile(self.ds.lon.values[ix], len(issues)),
            )
            if modes is not None:
                cov = np.concatenate([cov, np.repeat(modes, len(iy), axis=0)], axis=1)
            out = self.predict(ctx, cov)
            yield iy, ix, {k: v.reshape(len(issues), len(iy), *v.shape[1:])
                           for k, v in out.items()}

    def project_modes(self, issues: np.ndarray) -> tuple[int, np.ndarray] | None:
        """(first, amplitudes (last issue + 1 - first, M)) of the steps from TENDENCY_LAG
        before the first issue time to the last one (pipeline.model.modes.project): what
        the covariates and the mode dynamics of these issue times read; None without modes."""
        if self.eof is None:
            return None
        first = max(0, int(issues.min()) - TENDENCY_LAG)
        return first, project(self.ds.sst, self.clim, self.seasons, self.eof, first,
                              int(issues.max()) + 1)

    def modes(self, issues: np.ndarray, projected=None) -> np.ndarray | None:
        """Non-local encoder features (I, 2M) at the issue times (pipeline.model.modes), from the
        anomaly fields up to the last issue time only."""
        projected = projected or self.project_modes(issues)
        if projected is None:
            return None
        first, amplitudes = projected
        return mode_features(amplitudes, self.amplitude_std, 0)[issues - first]

    @torch.no_grad()
    def with_mode_dynamics(self, issues: np.ndarray, leads: np.ndarray, values: np.ndarray,
                           valid_seasons: np.ndarray, projected=None) -> np.ndarray:
        """values (I, L, Y, X) °C, the network's forecasts, with the modes' part replaced by
        the mode dynamics' forecast (pipeline.model.dynamics.blend); unchanged without them."""
        if self.dynamics is None:
            return values
        first, amplitudes = projected or self.project_modes(issues)
        a0 = amplitudes[issues - first] / self.amplitude_std  # (I, M), each from its own step
        future = self.dynamics(torch.from_numpy(a0), torch.from_numpy(self.seasons[issues]),
                               int(leads.max()))  # (I, H, M)
        modes = future.numpy()[:, leads - 1] * self.amplitude_std  # (I, L, M)
        clim = self.clim[valid_seasons]  # (I, L, Y, X)
        weights = blend_weights(leads, self.config.model.mode_leads)
        return clim + blend(values - clim, modes, self.eof, self.pattern, weights)

    @torch.no_grad()
    def predict(self, context: np.ndarray, cov: np.ndarray) -> dict[str, np.ndarray]:
        """context (N, C), cov (N, 5) -> forecast (N, H), latent (N, L), coefficients
        (N, T, K), rhs (N, T), steps (N, T-1) as numpy."""
        parts: dict[str, list] = {}
        for s in range(0, len(context), self.batch_size):
            try:
                out = self.model(
                    torch.from_numpy(context[s : s + self.batch_size]).to(self.device),
                    torch.from_numpy(cov[s : s + self.batch_size]).to(self.device),
                )
            except SolveError as error:
                raise ValueError(
                    f"forecast: the model's ODE solve failed for windows {s}.."
                    f"{min(s + self.batch_size, len(context)) - 1} of a block ({error}); "
                    "the store's data may hold infinite or extreme values in the context "
                    f"of these issue times, or the run {self.run_dir} diverged"
                ) from error
            for key in ("forecast", "latent", "coefficients", "rhs", "steps"):
                parts.setdefault(key, []).append(getattr(out, key).float().cpu().numpy())
        return {k: np.concatenate(v) for k, v in parts.items()}

    def attrs(self) -> dict:
        meta = self.state.get("meta", {})
        return {
            "model": MODEL_NAME,
            "run": str(self.run_dir),
            "train_end": meta.get("train_end"),
            "fit_end": meta.get("fit_end"),
            "climatology_start": self.stats_attrs.get("start"),
            "climatology_end": self.stats_attrs.get("end"),
            "config": json.dumps(self.config.model_dump()),
        }


def hindcast(
    run_dir, store, *, start, end, leads=None, out, every: int = 1, batch_size: int = 8192,
    inits_per_pass: int = 12, overwrite: bool = False,
) -> Path | str:
    """Forecasts issued at every `every`-th store time in [start, end], written to the
    forecast store `out` (pipeline/forecast_store.py). leads: None (the model's horizon),
    N (leads 1..N) or a list. An existing forecast store `out` is replaced only with
    `overwrite`; anything else there (the input SST store, other files) is refused."""
    path, _ = _hindcast(run_dir, store, start=start, end=end, leads=leads, out=out,
                        every=every, batch_size=batch_size, inits_per_pass=inits_per_pass,
                        overwrite=overwrite)
    return path


def hindcast_and_interpret(
    run_dir, store, *, start, end, leads=None, out, interpret_at, batch_size: int = 8192,
    inits_per_pass: int = 12, overwrite: bool = False,
) -> tuple[Path | str, xr.Dataset]:
    """`hindcast` and `interpret` at issue time `interpret_at` in one pass: the maps come
    from the same model outputs as that issue time's forecast when it is one of the
    hindcast's (else from one more batch of the same loaded run)."""
    return _hindcast(run_dir, store, start=start, end=end, leads=leads, out=out,
                     batch_size=batch_size, inits_per_pass=inits_per_pass,
                     overwrite=overwrite, interpret_at=interpret_at)


def _hindcast(run_dir, store, *, start, end, leads, out, every: int = 1, batch_size: int,
              inits_per_pass: int, overwrite: bool, interpret_at=None):
    if not isinstance(every, int) or every < 1:
        raise ValueError(f"every: expected a positive integer, got {every!r}")
    check_writable(str(out), "forecast", "out", overwrite)  # before loading the model
    runner = _Runner(run_dir, store, batch_size)
    window = runner.config.window
    issues = _issue_indices(runner.times, start, end, window.context)[::every]
    lead_values = _lead_values(leads, window.horizon)
    maps, mapped = None, None
    if interpret_at is not None:
        maps = _Maps(runner)
        mapped = int(_issue_indices(runner.times, interpret_at, interpret_at,
                                    window.context)[0])
    writer = ForecastWriter(
        out, inits=runner.times[issues], leads=lead_values, lat=runner.ds.lat.values,
        lon=runner.ds.lon.values, step=runner.step, attrs=runner.attrs(), overwrite=overwrite,
    )
    shape = (len(lead_values), runner.ds.sizes["lat"], runner.ds.sizes["lon"])
    with Progress(len(issues) * len(runner.locations), "hindcast", unit="forecast",
                  key="progress-hindcast", unit_scale=True) as bar:
        for g in range(0, len(issues), inits_per_pass):
            group = issues[g : g + inits_per_pass]
            values = np.full((len(group), *shape), np.nan, np.float32)
            valid_seasons = seasonal_index(
                valid_times(runner.times[group], lead_values, runner.step), runner.step)  # (I, L)
            projected = runner.project_modes(group)  # one read for covariates and dynamics
            for iy, ix, out_block in runner.blocks(group, projected):
                anomaly = out_block["forecast"][:, :, lead_values - 1]  # (I, n, L)
                clim = runner.clim[:, iy, ix][valid_seasons]  # (I, L, n)
                values[:, :, iy, ix] = clim + np.moveaxis(anomaly, 1, 2) * runner.std[iy, ix]
                if maps is not None and mapped in group:
                    maps.add(iy, ix, out_block, int(np.flatnonzero(group == mapped)[0]))
                bar.update(len(group) * len(iy))
            values = runner.with_mode_dynamics(group, lead_values, values, valid_seasons,
                                               projected)
            for i in range(len(group)):
                writer.write(g + i, values[i])
    if maps is not None and mapped not in issues:
        for iy, ix, out_block in runner.blocks(np.array([mapped])):
            maps.add(iy, ix, out_block, 0)
    return writer.path, None if maps is None else maps.dataset(runner.times[mapped])


def forecast(run_dir, store, init, *, leads=None, out, batch_size: int = 8192,
             overwrite: bool = False) -> Path | str:
    """The forecast issued at `init` (a store time), using only data up to `init`."""
    return hindcast(run_dir, store, start=init, end=init, leads=leads, out=out,
                    batch_size=batch_size, overwrite=overwrite)


def interpret(run_dir, store, init, *, batch_size: int = 8192) -> xr.Dataset:
    """Maps of what the model identified at issue time `init`:

    latent (component, lat, lon); coefficient (derivative, lat, lon), rhs (lat, lon) and
    step_size (lat, lon) averaged over the solve window; NaN on land.
    """
    runner = _Runner(run_dir, store, batch_size)
    issues = _issue_indices(runner.times, init, init, runner.config.window.context)
    maps = _Maps(runner)
    for iy, ix, out in runner.blocks(issues):
        maps.add(iy, ix, out, 0)
    return maps.dataset(runner.times[issues[0]])


class _Maps:
    """The latents and window-mean ODE parameters of one issue time, filled block by block
    from the model outputs (`_Runner.blocks`)."""

    def __init__(self, runner: _Runner):
        self.runner = runner
        ny, nx = runner.ds.sizes["lat"], runner.ds.sizes["lon"]
        m = runner.config.model
        self.latent = np.full((m.latent_dim, ny, nx), np.nan, np.float32)
        self.coefficient = np.full((m.order + 1, ny, nx), np.nan, np.float32)
        self.rhs = np.full((ny, nx), np.nan, np.float32)
        self.steps = np.full((ny, nx), np.nan, np.float32)

    def add(self, iy, ix, out: dict, position: int) -> None:
        """The block's outputs of the issue time at `position` in the block's issue times."""
        self.latent[:, iy, ix] = out["latent"][position].T
        self.coefficient[:, iy, ix] = out["coefficients"][position].mean(1).T
        self.rhs[iy, ix] = out["rhs"][position].mean(1)
        self.steps[iy, ix] = out["steps"][position].mean(1)

    def dataset(self, init) -> xr.Dataset:
        runner, m = self.runner, self.runner.config.model
        return xr.Dataset(
            {
                "latent": (("component", "lat", "lon"), self.latent,
                           {"long_name": "latent variables"}),
                "coefficient": (("derivative", "lat", "lon"), self.coefficient,
                                {"long_name": "ODE coefficient of the k-th derivative, "
                                 "window mean"}),
                "rhs": (("lat", "lon"), self.rhs, {"long_name": "ODE right-hand side, "
                                                   "window mean"}),
                "step_size": (("lat", "lon"), self.steps,
                              {"long_name": "solver step size, window mean"}),
            },
            coords={"lat": runner.ds.lat.values, "lon": runner.ds.lon.values,
                    "component": np.arange(m.latent_dim), "derivative": np.arange(m.order + 1),
                    "init_time": init},
            attrs=runner.attrs(),
        )
