"""Mode dynamics: the run's leading EOF amplitudes forecast by one coupled linear ODE,
solved with S-MNN.

    da/dt = A(s) a + b(s)     a (M,): amplitudes / their fitting-period std; s: the season
    A(s) = A0 + sum_h sin(2 pi h s / n) A_h + cos(2 pi h s / n) A'_h      (b alike)

With the seasonal terms and b at zero this is a linear inverse model (Penland & Sardeshmukh
1995): A0 starts at log(G) / lag of the propagator G = C(lag) C(0)^-1 fitted on the training
amplitudes, so training through the S-MNN solve starts from the LIM and keeps only what
lowers the validation error (mostly the seasonal cycle of the growth rates, ENSO's phase
locking). In S-MNN terms: E = D = M equations and variables, order 1, unit steps.

Why: the local network (pipeline.model.network) forecasts each location from its own past
and sees the basin-scale modes only as covariates; it carries the recent level and local
persistence well but not ENSO's evolution. `blend` therefore replaces the modes' part of the
network's forecast field by this forecast out to `mode_leads`, tapering to the network alone
at twice that, where the modes have no skill left.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn.functional import one_hot

import smnn
from pipeline.model.config import ModelConfig, WindowConfig

__all__ = [
    "ModeDynamics", "blend", "blend_weights", "fit_mode_dynamics", "last_blended_lead",
    "lim_generator", "warm_up",
]

DTYPE = torch.float64
VALIDATE_EVERY = 10  # optimiser steps between validations
PATIENCE = 5  # validations without improvement before stopping


def lim_generator(amplitudes: np.ndarray, lag: int = 1) -> np.ndarray:
    """The LIM's generator log(G) / lag (M, M), G = C(lag) C(0)^-1, from amplitudes (T, M)."""
    x, y = amplitudes[:-lag], amplitudes[lag:]
    propagator = (y.T @ x) @ np.linalg.pinv(x.T @ x)
    values, vectors = np.linalg.eig(propagator)
    # A negative or zero eigenvalue has no real logarithm; clip to a fast decay instead.
    logs = np.log(np.where(np.abs(values) > 1e-6, values, 1e-6).astype(complex))
    return (vectors @ np.diag(logs) @ np.linalg.pinv(vectors)).real / lag


class ModeDynamics(nn.Module):
    """forward(a0 (B, M), season0 (B,) int, horizon H) -> amplitudes (B, H, M) at steps
    1..H after the issue time, each step advancing the season by one."""

    def __init__(self, n_modes: int, n_seasons: int, harmonics: int,
                 generator: np.ndarray | None = None):
        super().__init__()
        self.n_modes, self.n_seasons, self.harmonics = n_modes, n_seasons, harmonics
        a0 = torch.zeros(n_modes, n_modes) if generator is None else torch.from_numpy(generator)
        self.generator = nn.Parameter(a0.to(DTYPE))
        self.seasonal = nn.Parameter(torch.zeros(2 * harmonics, n_modes, n_modes, dtype=DTYPE))
        self.forcing = nn.Parameter(torch.zeros(2 * harmonics + 1, n_modes, dtype=DTYPE))
        self.ode = smnn.ODELayer(weight_init=10.0, solve_dtype=DTYPE)

    def _harmonics(self, seasons: torch.Tensor) -> torch.Tensor:
        angle = 2 * math.pi * seasons.to(DTYPE) / self.n_seasons
        parts = [f(h * angle) for h in range(1, self.harmonics + 1) for f in (torch.sin,
                                                                               torch.cos)]
        return torch.stack(parts, -1) if parts else angle[..., :0]

    def forward(self, a0: torch.Tensor, season0: torch.Tensor, horizon: int) -> torch.Tensor:
        """Amplitudes (B, H, M), solved once per issue season where that takes fewer solves.

        The trajectories are linear in a0 and in the forcing, and the system matrix depends
        only on the issue season: with M + 1 right-hand sides per season, the forcing alone
        and each unit initial state, every issue time of that season is a sum of those. A
        training set issues each season many times (35 years of months: 420 issues, 12
        matrices with 13 right-hand sides each, which smnn factorises once per matrix), a
        forecast only a few (solved directly)."""
        seasons, index = torch.unique(season0, return_inverse=True)
        per_season = self.n_modes + 1
        if len(seasons) * per_season >= len(a0):
            ones = torch.ones(len(a0), 1, dtype=DTYPE)
            return self._trajectories(a0.to(DTYPE)[:, None], season0, ones, horizon)[:, 0]
        basis = torch.cat([torch.zeros(1, self.n_modes, dtype=DTYPE),
                           torch.eye(self.n_modes, dtype=DTYPE)])  # (M + 1, M)
        forced = (torch.arange(per_season) == 0).to(DTYPE)  # the forcing alone, then none
        u = self._trajectories(basis.expand(len(seasons), -1, -1), seasons,
                               forced.expand(len(seasons), -1), horizon)  # (S, M + 1, H, M)
        # Each issue's sum as one matmul over all seasons, its own season's block holding
        # (1, a0) and the others zero: gathering u per issue would copy (B, M + 1, H, M)
        # and scatter its gradient back, 30-40 % of a step at 420 issues.
        weights = torch.cat([torch.ones(len(a0), 1, dtype=DTYPE), a0.to(DTYPE)], 1)
        placed = one_hot(index, len(seasons)).to(DTYPE)[:, :, None] * weights[:, None]
        return (placed.flatten(1) @ u.flatten(0, 1).flatten(1)).unflatten(-1, (horizon, -1))

    def _trajectories(self, a0: torch.Tensor, season0: torch.Tensor, forced: torch.Tensor,
                      horizon: int) -> torch.Tensor:
        """Amplitudes (B, R, H, M) from R initial states a0 (B, R, M) per issue season
        season0 (B,), with the forcing scaled by forced (B, R) (0 or 1): one matrix per
        issue, shared by its R right-hand sides."""
        batch, m = season0.shape[0], self.n_modes
        t = horizon + 1  # the issue time and the H steps after it
        seasons = (season0[:, None] + torch.arange(t)) % self.n_seasons  # (B, T)
        h = self._harmonics(seasons)  # (B, T, 2H)
        a = self.generator + torch.einsum("btf,fij->btij", h, self.seasonal)  # (B, T, M, M)
        eye = torch.eye(m, dtype=DTYPE).expand(batch, t, m, m)
        coefficients = torch.stack([-a, eye], -1)  # (B, T, E=M, D=M, K=2): a' - A a = b
        rhs = self.forcing[0] + torch.einsum("btf,fi->bti", h, self.forcing[1:])  # (B, T, M)
        rhs = rhs[:, None] * forced[:, :, None, None]  # (B, R, T, M)
        init = a0[:, :, None, :, None]  # (B, R, S=1, D, J=1)
        steps = torch.ones(batch, 1, t - 1, dtype=DTYPE)
        u = self.ode(coefficients[:, None], rhs, init, steps)  # (B, R, T, M, K)
        return u[:, :, 1:, :, 0]


def _loss(model, amplitudes, seasons, scale, first: int, last: int, end: int, horizon: int):
    """Mean squared error (in the amplitudes' own units: the area-weighted field error in
    the modes' subspace) of forecasts issued at steps first..last-1, targets up to `end`."""
    issues = np.arange(first, last)
    targets = issues[:, None] + np.arange(1, horizon + 1)
    mask = torch.from_numpy(targets <= end).to(DTYPE)
    truth = amplitudes[np.minimum(targets, end)]  # (B, H, M)
    pred = model(amplitudes[issues], seasons[issues], horizon)
    err = (((pred - truth) * scale) ** 2).sum(-1)
    return (err * mask).sum() / mask.sum().clamp(min=1)


def fit_mode_dynamics(
    amplitudes: np.ndarray, amplitude_std: np.ndarray, seasons: np.ndarray, n_seasons: int, *,
    fit_end: int, val_end: int | None, horizon: int, harmonics: int, steps: int, lr: float,
) -> tuple[ModeDynamics, dict]:
    """Train the mode dynamics on forecasts issued up to `fit_end` (targets up to it),
    validated on those issued after it up to `val_end` (None: no validation, all `steps`).

    amplitudes (T, M) raw projections (pipeline.model.modes.project), seasons (T,) ints.
    Returns the model (best validation weights) and a summary: the validation loss of the
    LIM it started from and of the trained model (None without validation), the steps
    taken and the horizon fitted.
    """
    scaled = amplitudes / np.maximum(amplitude_std, 1e-12)
    model = ModeDynamics(amplitudes.shape[1], n_seasons, harmonics,
                         lim_generator(scaled[: fit_end + 1]))
    a = torch.from_numpy(scaled).to(DTYPE)
    s = torch.from_numpy(np.asarray(seasons, dtype=np.int64))
    scale = torch.from_numpy(np.maximum(amplitude_std, 1e-12)).to(DTYPE)
    train = (0, fit_end, fit_end)
    val = None if val_end is None or val_end <= fit_end else (fit_end, val_end, val_end)

    def validation() -> float | None:  # None, not NaN: the summary goes to a JSON log
        with torch.no_grad():
            return float(_loss(model, a, s, scale, *val, horizon)) if val else None

    best = start = validation()
    best_state, bad, step = None, 0, 0
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    for step in range(1, steps + 1):
        optimiser.zero_grad()
        _loss(model, a, s, scale, *train, horizon).backward()
        optimiser.step()
        if val and step % VALIDATE_EVERY == 0:
            loss = validation()
            if loss < best:
                best, bad = loss, 0
                best_state = {k: v.clone() for k, v in model.state_dict().items()}
            else:
                bad += 1
                if bad >= PATIENCE:
                    break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return model, {"lim_val_loss": start, "val_loss": best, "steps": step, "horizon": horizon}


def warm_up(n_modes: int | None = None, harmonics: int | None = None,
            horizon: int | None = None) -> None:
    """Compile the S-MNN kernels for the mode dynamics' systems (numba, ~25 s once per
    install, then loaded from its disk cache in ~1 s): a fit step and a forecast on tiny
    data, defaults from the default config. The dynamics' block size D·K = 2M is not the
    network's, so `smnn`'s own warm-up does not cover it; `make install` runs this, so the
    first training run does not wait for it."""
    defaults = ModelConfig()
    n_modes = defaults.context_modes if n_modes is None else n_modes
    harmonics = defaults.mode_harmonics if harmonics is None else harmonics
    horizon = WindowConfig().horizon if horizon is None else horizon
    if not n_modes:
        return
    n_seasons = 12
    issues = n_seasons * (n_modes + 2)  # more than (M + 1) x seasons: the shared path
    steps = issues + horizon + 1
    angle = np.arange(steps)[:, None] * (1 + np.arange(n_modes)) / n_seasons
    amplitudes, seasons = torch.from_numpy(np.sin(angle)), torch.arange(steps) % n_seasons
    model = ModeDynamics(n_modes, n_seasons, harmonics, -0.1 * np.eye(n_modes))
    scale = torch.ones(n_modes, dtype=DTYPE)
    _loss(model, amplitudes, seasons, scale, 0, issues, steps - 1, horizon).backward()
    with torch.no_grad():  # a forecast: one issue time, solved directly
        model(amplitudes[:1], seasons[:1], horizon)


def last_blended_lead(mode_leads: int) -> int:
    """The longest lead at which `blend_weights` is above zero: the dynamics' forecasts
    after it are never used, so they are fitted only out to it."""
    return max(2 * mode_leads - 1, 0)


def blend_weights(leads: np.ndarray, mode_leads: int) -> np.ndarray:
    """(L,) weight of the mode dynamics at each lead: 1 up to `mode_leads`, falling linearly
    to 0 at twice that."""
    leads = np.asarray(leads, dtype=np.float64)
    if mode_leads <= 0:
        return np.zeros_like(leads)
    return np.clip((2 * mode_leads - leads) / mode_leads, 0.0, 1.0)


def blend(anomaly: np.ndarray, modes: np.ndarray, eof: np.ndarray, pattern: np.ndarray,
          weights: np.ndarray) -> np.ndarray:
    """The network's forecast anomalies (I, L, Y, X) with their projection on the modes
    replaced, by `weights` (L,), with the mode dynamics' amplitudes `modes` (I, L, M).

    eof (M, Y, X) gives a field's amplitudes (zero off the training sub-grid); pattern
    (M, Y, X) is each mode's field (the regression map, defined on every ocean point).
    NaN (land) stays NaN.
    """
    own = np.einsum("ilyx,myx->ilm", np.nan_to_num(anomaly), eof)
    change = np.einsum("ilm,myx->ilyx", (modes - own) * weights[None, :, None], pattern)
    return anomaly + change.astype(anomaly.dtype)
