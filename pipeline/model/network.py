"""The Mechanistic Identifier (Yao et al. 2024) with the S-MNN solver (docs/design.md §4).

Per ocean location and issue time:

    context (B, C) normalised anomalies, last value = the issue time
      -> DCT-II (orthonormal), first n coefficients           (B, n)
      -> [+ covariates (B, 5 + 2M)] -> MLP encoder -> latent z (B, L)

(covariates: issue month, location, and the amplitudes and tendencies of the M leading
EOFs of the global anomaly field at the issue time, pipeline.model.modes)
      -> decoders: ODE coefficients (B, T, K), rhs (B, T), steps (B, T-1)
      -> smnn.ODELayer over T = S + H steps                    u (B, T, 1, K)
      -> forecast u[:, S:, 0, 0]                               (B, H)

The solve window starts S steps before the issue time: its first S steps are the last S
observed values (the initial conditions, plus their backward-difference derivatives when
`init_derivative`), so the initial conditions come only from data at or before the issue
time and the trajectory after it is the forecast: nothing later ever enters the model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

import smnn
from pipeline.model.config import ModelConfig, WindowConfig
from pipeline.model.windows import N_COVARIATES

__all__ = ["MechanisticIdentifier", "ModelOutput", "dct_matrix"]

MIN_STEP = 1e-3


def dct_matrix(length: int, keep: int, dtype=torch.float64) -> torch.Tensor:
    """Orthonormal DCT-II basis (length, keep): `x @ D` gives the first `keep` coefficients
    of x (..., length); with keep == length, D is orthogonal."""
    n = torch.arange(length, dtype=torch.float64)[:, None]
    k = torch.arange(keep, dtype=torch.float64)[None, :]
    basis = torch.cos(math.pi * (n + 0.5) * k / length) * math.sqrt(2.0 / length)
    basis[:, 0] /= math.sqrt(2.0)
    return basis.to(dtype)


def _mlp(n_in: int, width: int, depth: int, n_out: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Linear(n_in if i == 0 else width, width), nn.SiLU()]
    layers.append(nn.Linear(width if depth else n_in, n_out))
    return nn.Sequential(*layers)


@dataclass
class ModelOutput:
    """forecast (B, H); latent (B, L); coefficients (B, T, K); rhs (B, T); steps (B, T-1);
    u (B, T, K) the solution and its derivatives over the solve window (T = S + H)."""

    forecast: torch.Tensor
    latent: torch.Tensor
    coefficients: torch.Tensor
    rhs: torch.Tensor
    steps: torch.Tensor
    u: torch.Tensor


class MechanisticIdentifier(nn.Module):
    """DCT features -> MLP encoder -> latents -> ODE parameters -> S-MNN solve -> forecast."""

    def __init__(self, model: ModelConfig, window: WindowConfig):
        super().__init__()
        self.config, self.window = model, window
        self.context_len = window.context
        self.horizon = window.horizon
        self.s_len = model.init_steps
        self.t_len = model.init_steps + window.horizon
        self.k_len = model.order + 1
        dtype = getattr(torch, model.dtype)
        self.register_buffer("dct", dct_matrix(window.context, model.n_dct, dtype))
        self.n_covariates = (N_COVARIATES + 2 * model.context_modes) if model.covariates else 0
        n_in = model.n_dct + self.n_covariates
        self.encoder = _mlp(n_in, model.encoder_width, model.encoder_depth, model.latent_dim)
        dec = (model.latent_dim, model.decoder_width, model.decoder_depth)
        self.coefficient_decoder = _mlp(*dec, self.t_len * self.k_len)
        self.rhs_decoder = _mlp(*dec, self.t_len)
        self.step_decoder = _mlp(*dec, self.t_len - 1)
        self._init_decoders()
        self.ode = smnn.ODELayer(
            central=model.central,
            weight_init=model.init_weight,
            method=model.solver_method,
            solve_dtype=torch.float64,
        )
        self.to(dtype)

    def _init_decoders(self) -> None:
        """Start near a damped relaxation: coefficients of (d/dt + 1)^order, rhs 0, steps 0.1,
        so an untrained model already decays anomalies towards climatology."""
        with torch.no_grad():
            binomial = torch.tensor(
                [math.comb(self.k_len - 1, k) for k in range(self.k_len)], dtype=torch.float32
            )
            for decoder, bias in (
                (self.coefficient_decoder, binomial.repeat(self.t_len)),
                (self.rhs_decoder, torch.zeros(self.t_len)),
                (self.step_decoder, torch.full((self.t_len - 1,), math.log(0.1 / 0.9))),
            ):
                last = decoder[-1]
                last.weight.mul_(0.1)
                last.bias.copy_(bias)

    def encode(self, context: torch.Tensor, covariates: torch.Tensor | None = None):
        """context (B, C), covariates (B, 5 + 2 * context_modes) or None -> latent (B, L)."""
        if context.ndim != 2 or context.shape[1] != self.context_len:
            raise ValueError(
                f"context: expected shape (batch, {self.context_len}), got {tuple(context.shape)}"
            )
        features = context.to(self.dct.dtype) @ self.dct  # (B, n)
        if self.config.covariates:
            if covariates is None or covariates.shape != (len(context), self.n_covariates):
                raise ValueError(
                    f"covariates: expected shape ({len(context)}, {self.n_covariates}), got "
                    f"{None if covariates is None else tuple(covariates.shape)}"
                )
            features = torch.cat([features, covariates.to(features.dtype)], dim=-1)
        return self.encoder(features)  # (B, L)

    def decode(self, latent: torch.Tensor):
        """latent (B, L) -> coefficients (B, T, K), rhs (B, T), steps (B, T-1)."""
        coefficients = self.coefficient_decoder(latent).unflatten(-1, (self.t_len, self.k_len))
        rhs = self.rhs_decoder(latent)
        steps = torch.sigmoid(self.step_decoder(latent)).clamp(min=MIN_STEP)
        return coefficients, rhs, steps

    def level(self, context: torch.Tensor) -> torch.Tensor:
        """(B, 1): the mean of the last `level_window` context steps (all of them when the
        context is shorter; zero when off).

        The network sees and forecasts departures from this recent level. Anomalies taken
        against a climatology fitted on the training period revert to zero inside that
        period by construction, but the warming level persists after it; a network that
        never sees the level cannot learn that in-sample reversion."""
        window = self.config.level_window
        if not window:
            return torch.zeros_like(context[:, :1])
        return context[:, -window:].mean(dim=1, keepdim=True)

    def forward(
        self, context: torch.Tensor, covariates: torch.Tensor | None = None
    ) -> ModelOutput:
        """context (B, C) normalised anomalies up to and including the issue time.
        u holds the departure from the recent level; forecast = level + departure."""
        level = self.level(context)  # (B, 1)
        context = context - level
        latent = self.encode(context, covariates)  # (B, L)
        coefficients, rhs, steps = self.decode(latent)  # (B, T, K), (B, T), (B, T-1)
        observed = context[:, -self.s_len :].to(latent.dtype)  # (B, S)
        init = observed[..., None]  # (B, S, J=1)
        if self.config.init_derivative:
            previous = context[:, -self.s_len - 1 : -1].to(latent.dtype)  # (B, S)
            h = torch.cat([steps[:, :1], steps[:, : self.s_len - 1]], dim=1)  # (B, S)
            init = torch.stack([observed, (observed - previous) / h], dim=-1)  # (B, S, 2)
        u = self.ode(
            coefficients[:, :, None, None, :],  # (B, T, E=1, D=1, K)
            rhs[:, :, None],  # (B, T, E=1)
            init[:, :, None, :],  # (B, S, D=1, J)
            steps,  # (B, T-1)
        ).squeeze(2)  # (B, T, K); a squeeze's backward is a view, a select's fills zeros
        return ModelOutput(
            forecast=u[:, self.s_len :, 0] + level.to(u.dtype),
            latent=latent,
            coefficients=coefficients,
            rhs=rhs,
            steps=steps,
            u=u,
        )
