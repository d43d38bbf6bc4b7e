"""A trained run: what its directory holds and how forecasting reads it back.

    stats.nc       training-period climatology and anomaly std (pipeline.climatology), and
                   the context modes when the model uses them (pipeline.model.modes)
    last.pt        the latest checkpoint (weights, optimiser, data position, RNG state)
    best.pt        the weights with the lowest validation loss (or the final ones)
    metrics.jsonl  one JSON object per log line / validation
    dynamics.pt    the mode dynamics (pipeline.model.dynamics), when the model uses them

Checkpoints hold only tensors and plain values (config as a dict) so they load with
`torch.load(..., weights_only=True)`. Training writes a run (pipeline.model.train);
forecasting only reads one, through this module.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import torch

from pipeline.model.config import Config, config_from_dict
from pipeline.model.dynamics import ModeDynamics
from pipeline.model.network import MechanisticIdentifier

__all__ = [
    "BEST", "DYNAMICS", "LAST", "LOG", "STATS", "default_device", "load_checkpoint",
    "load_dynamics", "load_model",
]

LAST, BEST, STATS, LOG = "last.pt", "best.pt", "stats.nc", "metrics.jsonl"
DYNAMICS = "dynamics.pt"


def default_device() -> torch.device:
    """CUDA (this process's local device under torchrun) when present, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def load_checkpoint(path) -> dict:
    """A checkpoint dict, loaded safely (weights_only=True) onto the CPU."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (EOFError, pickle.UnpicklingError, RuntimeError, OSError, ValueError) as error:
        # Truncated or foreign files fail deep in torch with multi-line messages; one line
        # naming the file is what a user can act on.
        detail = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ValueError(
            f"checkpoint {path} is corrupt or truncated ({type(error).__name__}: {detail}); "
            "delete it, or train again"
        ) from None
    if not isinstance(state, dict) or "config" not in state or "model" not in state:
        raise ValueError(f"checkpoint {path} is not an sstcast checkpoint (no config/model)")
    return state


def load_model(run_dir) -> tuple[MechanisticIdentifier, Config, dict]:
    """The trained model of a run (best weights, else the latest), its config and checkpoint."""
    run_dir = Path(run_dir)
    path = run_dir / BEST if (run_dir / BEST).exists() else run_dir / LAST
    state = load_checkpoint(path)
    config = config_from_dict(state["config"], source=str(path))
    model = MechanisticIdentifier(config.model, config.window)
    model.load_state_dict(state["model"])
    model.eval()
    return model, config, state


def load_dynamics(run_dir) -> ModeDynamics | None:
    """The run's mode dynamics, or None when it has none (a model without them, or a run
    trained before they existed)."""
    path = Path(run_dir) / DYNAMICS
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        dynamics = ModeDynamics(*state["shape"])
        dynamics.load_state_dict(state["model"])
    except (EOFError, pickle.UnpicklingError, RuntimeError, OSError, KeyError, TypeError,
            ValueError) as error:
        raise ValueError(f"{path} is corrupt or not an sstcast mode-dynamics file "
                         f"({type(error).__name__}); delete it, or train again") from None
    dynamics.eval()
    return dynamics
