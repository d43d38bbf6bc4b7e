"""Data generators for the ODE experiments: the Lorenz system and a noisy damped sine."""

from __future__ import annotations

import numpy as np

LORENZ_SIGMA, LORENZ_RHO, LORENZ_BETA = 10.0, 28.0, 8.0 / 3.0


def lorenz_rhs(state: np.ndarray) -> np.ndarray:
    """Lorenz vector field at ``state`` (..., 3) -> (..., 3)."""
    x, y, z = state[..., 0], state[..., 1], state[..., 2]
    return np.stack(
        [LORENZ_SIGMA * (y - x), x * (LORENZ_RHO - z) - y, x * y - LORENZ_BETA * z], axis=-1
    )


def lorenz_trajectory(
    n_samples: int, dt: float = 0.01, *, substeps: int = 10, x0=(1.0, 1.0, 1.0)
) -> np.ndarray:
    """The Lorenz trajectory from ``x0`` sampled every ``dt``: (n_samples, 3), row 0 = x0.

    Classic RK4 at the fine step ``dt / substeps`` (1e-3 by default: local error ~1e-13,
    far below what the discovery experiment can resolve).
    """
    if n_samples < 1 or dt <= 0 or substeps < 1:
        raise ValueError(
            f"need n_samples >= 1, dt > 0, substeps >= 1; got {n_samples}, {dt}, {substeps}"
        )
    h = dt / substeps
    s, r, b = LORENZ_SIGMA, LORENZ_RHO, LORENZ_BETA

    def f(x, y, z):  # plain floats: far faster than numpy for a 3-vector
        return s * (y - x), x * (r - z) - y, x * y - b * z

    x, y, z = (float(v) for v in x0)
    out = np.empty((n_samples, 3))
    out[0] = x, y, z
    for i in range(1, n_samples):
        for _ in range(substeps):
            k1 = f(x, y, z)
            k2 = f(x + 0.5 * h * k1[0], y + 0.5 * h * k1[1], z + 0.5 * h * k1[2])
            k3 = f(x + 0.5 * h * k2[0], y + 0.5 * h * k2[1], z + 0.5 * h * k2[2])
            k4 = f(x + h * k3[0], y + h * k3[1], z + h * k3[2])
            x += h / 6.0 * (k1[0] + 2 * k2[0] + 2 * k3[0] + k4[0])
            y += h / 6.0 * (k1[1] + 2 * k2[1] + 2 * k3[1] + k4[1])
            z += h / 6.0 * (k1[2] + 2 * k2[2] + 2 * k3[2] + k4[2])
        out[i] = x, y, z
    return out


def damped_sine(
    n_samples: int,
    dt: float,
    *,
    decay: float = 0.3,
    omega: float = 2.0,
    noise: float = 0.05,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Samples of ``exp(-decay t) sin(omega t)`` with Gaussian noise.

    Returns (t (n,), clean (n,), noisy (n,)). The clean signal solves
    ``x'' + 2 decay x' + (omega^2 + decay^2) x = 0`` with x(0) = 0, x'(0) = omega.
    """
    t = np.arange(n_samples) * dt
    clean = np.exp(-decay * t) * np.sin(omega * t)
    noisy = clean + noise * np.random.default_rng(seed).standard_normal(n_samples)
    return t, clean, noisy
