"""Typed, frozen configuration of the Mechanistic Identifier, its windows and its training.

Three parts, each a frozen pydantic model with validated fields:

- `ModelConfig`: the network (DCT features, encoder, latents, decoders, ODE order, solver).
- `WindowConfig`: how sequence windows are cut from the store (context, horizon, stride).
- `TrainConfig`: optimiser, schedule, validation, early stopping, checkpoints.

`Config` bundles them. Named presets live in `PRESETS` (`default`: CPU-sized, trains on COBE2
monthly in minutes on two cores; `paper`: the published weekly OISST setup). `load_config`
reads strict TOML: unknown keys are an error naming the key and the allowed ones.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = [
    "Config",
    "ModelConfig",
    "PRESETS",
    "TrainConfig",
    "WindowConfig",
    "load_config",
    "named_config",
    "preset",
]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# Steps of a window: 27 years of daily data, 40x the paper's 208. The model allocates
# (batch, context + horizon) arrays, so an unbounded value fails only after gigabytes.
MAX_STEPS = 10_000


class ModelConfig(_Frozen):
    """The Mechanistic Identifier network (docs/design.md §4)."""

    n_dct: int = Field(32, ge=1, description="DCT-II coefficients of the context kept")
    encoder_width: int = Field(128, ge=1)
    encoder_depth: int = Field(3, ge=1, description="hidden layers of the encoder MLP")
    latent_dim: int = Field(16, ge=1)
    decoder_width: int = Field(128, ge=1)
    decoder_depth: int = Field(1, ge=0, description="hidden layers of each decoder MLP")
    order: int = Field(2, ge=1, le=4, description="ODE order")
    init_steps: int = Field(6, ge=1, description="observed steps that pin the solution")
    init_derivative: bool = Field(
        False, description="also pin the backward-difference derivative at observed steps"
    )
    init_weight: float = Field(
        10.0, gt=0.0, description="weight of the initial-condition rows against the ODE rows"
    )
    central: bool = Field(False, description="S-MNN central-difference smoothness variant")
    solver_method: Literal["auto", "compiled", "sequential", "parallel"] = "auto"
    dtype: Literal["float32", "float64"] = "float32"
    covariates: bool = Field(
        True, description="feed the issue month and the location to the encoder"
    )
    context_modes: int = Field(
        12, ge=0, description="leading EOF amplitudes of the global anomaly field (and their "
        "tendencies) fed to every location's encoder (0: off; needs covariates)"
    )
    level_window: int = Field(
        120, ge=0, le=MAX_STEPS, description="context steps (at most the whole context) whose "
        "mean is the recent level: the network forecasts the departure from it (0: off)"
    )
    align_weight: float = Field(
        0.0, ge=0.0, description="weight of the multi-view latent alignment loss (0: off)"
    )
    mode_leads: int = Field(
        12, ge=0, le=MAX_STEPS, description="leads out to which the mode dynamics (a coupled "
        "S-MNN ODE over the context modes) forecast the modes' part of the field, tapering to "
        "the local network alone at twice this (0: off; needs context_modes)"
    )
    mode_harmonics: int = Field(
        2, ge=0, le=6, description="seasonal harmonics of the mode dynamics' coefficients "
        "(0: constant coefficients, a linear inverse model)"
    )




class WindowConfig(_Frozen):
    """Sequence windows per ocean location, in time steps of the store."""

    context: int = Field(120, ge=2, le=MAX_STEPS, description="observed steps fed to the "
                         "encoder")
    horizon: int = Field(48, ge=1, le=MAX_STEPS, description="forecast steps (leads "
                         "1..horizon)")
    stride: int = Field(1, ge=1, description="steps between consecutive issue times")
    location_stride: int = Field(
        2, ge=1, description="use every n-th grid row and column for training"
    )
    block_locations: int = Field(
        4096, ge=1, description="ocean locations read from the store at once"
    )
    std_floor: float = Field(
        0.1, gt=0.0, description="lower bound of the anomaly std used to normalise (degC)"
    )


class TrainConfig(_Frozen):
    """Optimisation, validation and checkpointing."""

    seed: int = 0
    batch_size: int = Field(512, ge=1)
    max_steps: int = Field(1500, ge=1)
    lr: float = Field(5e-4, gt=0.0)
    weight_decay: float = Field(1e-4, ge=0.0)
    warmup_steps: int = Field(50, ge=0)
    min_lr_ratio: float = Field(0.05, ge=0.0, le=1.0, description="cosine floor / peak lr")
    grad_clip: float = Field(1.0, gt=0.0)
    val_steps: int = Field(
        60, ge=0, description="last steps before train_end held out for validation (0: none)"
    )
    val_every: int = Field(25, ge=1, description="optimiser steps between validations")
    val_samples: int = Field(4096, ge=1, description="validation windows evaluated")
    patience: int = Field(8, ge=1, description="validations without improvement before stop")
    checkpoint_every: int = Field(100, ge=1)
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes")
    network_threads: int | None = Field(
        1, ge=1, description="torch threads while training (None: leave torch's setting); "
        "1 by default: a second thread's gain depends on the machine's load (2 cores: a "
        "step 0.72-1.00x the time, benchmarks/train_threads.py), and torch's idle OpenMP "
        "threads spin ~9 ms after each op on the cores the solve and the batch reader use"
    )
    solver_threads: int | None = Field(
        None, ge=1, description="threads of the compiled S-MNN solve while training (None: "
        "the process's cores divided among the ranks)"
    )
    max_loss: float = Field(1e4, gt=0.0, description="a loss above this counts as diverged")
    log_every: int = Field(10, ge=1)
    mode_steps: int = Field(
        150, ge=0, description="optimiser steps (full batch) of the mode dynamics, after the "
        "network; validated every 10, stopped after 5 without improvement"
    )
    mode_lr: float = Field(1e-3, gt=0.0, description="learning rate of the mode dynamics")
    max_minutes: float | None = Field(
        25.0, gt=0.0,
        description="wall-clock budget; the lr schedule then follows elapsed time as well "
        "(runs with a budget are not bit-for-bit resumable)",
    )


class Config(_Frozen):
    """Everything a training run needs; stored with each checkpoint as a plain dict."""

    model: ModelConfig = ModelConfig()
    window: WindowConfig = WindowConfig()
    train: TrainConfig = TrainConfig()

    @model_validator(mode="after")
    def _check(self) -> Config:
        if self.model.init_steps > self.window.context:
            raise ValueError(
                f"model.init_steps ({self.model.init_steps}) must be <= window.context "
                f"({self.window.context}): initial conditions come from the observed context"
            )
        if self.model.init_derivative and self.model.init_steps >= self.window.context:
            raise ValueError(
                "model.init_derivative needs model.init_steps < window.context (the backward "
                "difference uses the step before the first initial step)"
            )
        if self.model.init_derivative and self.model.order < 2:
            raise ValueError("model.init_derivative needs model.order >= 2")
        if self.model.context_modes and not self.model.covariates:
            raise ValueError("model.context_modes needs model.covariates = true (the mode "
                             "amplitudes are encoder covariates)")
        if self.model.mode_leads and not self.model.context_modes:
            raise ValueError("model.mode_leads needs model.context_modes > 0 (the mode "
                             "dynamics forecast the context modes); set mode_leads = 0")
        if self.model.n_dct > self.window.context:
            raise ValueError(
                f"model.n_dct ({self.model.n_dct}) must be <= window.context "
                f"({self.window.context})"
            )
        return self


PRESETS: dict[str, Config] = {
    # CPU-sized: trains on COBE2 monthly (every 2nd grid point) in under 30 min on 2 cores.
    "default": Config(),
    "paper": Config(
        model=ModelConfig(
            n_dct=208,
            encoder_width=1024,
            encoder_depth=5,
            latent_dim=20,
            decoder_width=1024,
            decoder_depth=1,
            order=2,
            init_steps=10,
            dtype="float64",
            covariates=False,
            context_modes=0,
            mode_leads=0,
            level_window=0,
        ),
        window=WindowConfig(context=208, horizon=208, location_stride=1),
        train=TrainConfig(
            batch_size=512, max_steps=100_000, lr=1e-4, val_steps=208, val_every=1000,
            checkpoint_every=1000, max_minutes=None,
        ),
    ),
}


def preset(name: str) -> Config:
    """The named preset (`default` or `paper`)."""
    if name not in PRESETS:
        raise ValueError(f"preset: expected one of {sorted(PRESETS)}, got {name!r}")
    return PRESETS[name]


def named_config(name: str | Path) -> Config:
    """A preset by name (`default`, `paper`), else the TOML file at `name`: what every
    `config` parameter and `--config` option means."""
    return preset(name) if str(name) in PRESETS else load_config(name)


def load_config(path: str | Path) -> Config:
    """Read a TOML config: an optional top-level `preset = "name"` to start from, then
    `[model]`, `[window]`, `[train]` tables overriding fields. Unknown keys are an error."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"config file {path} is not valid TOML: {error}") from None
    return config_from_dict(raw, source=str(path))


def config_from_dict(raw: dict[str, Any], *, source: str = "config") -> Config:
    """Build a `Config` from a plain dict (TOML tables or a checkpoint's stored config)."""
    raw = dict(raw)
    base = preset(raw.pop("preset", "default"))
    allowed = set(Config.model_fields)
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ValueError(
            f"{source}: unknown key(s) {unknown}; allowed top-level keys are "
            f"{sorted(allowed | {'preset'})}"
        )
    merged = base.model_dump()
    for section, values in raw.items():
        if not isinstance(values, dict):
            raise ValueError(f"{source}: [{section}] must be a table, got {values!r}")
        fields = set(type(getattr(base, section)).model_fields)
        bad = sorted(set(values) - fields)
        if bad:
            raise ValueError(
                f"{source}: unknown key(s) {bad} in [{section}]; allowed: {sorted(fields)}"
            )
        merged[section].update(values)
    try:
        return Config.model_validate(merged)
    except ValidationError as error:
        raise ValueError(f"{source}: invalid config:\n{error}") from None
