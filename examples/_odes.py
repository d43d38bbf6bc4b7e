"""The six linear test ODEs of the S-MNN paper's standalone validation, with closed forms.

Parameters, initial conditions and the first-order system form are those of the paper's
benchmark (a selection from Strogatz, "Nonlinear Dynamics and Chaos"): each problem is
D first-order equations ``sum_d c[e, d, 0] x_d + c[e, d, 1] x_d' = r[e]`` with constant
coefficients, which the S-MNN layer solves with the derivative order padded to K (the paper
uses K = 3; the padded top derivative is left free and only smoothed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LinearODE:
    """One test problem.

    coefficients: (E, D, 2) over (equation, state dim, order 0..1); rhs: (E,);
    inits: initial states, each (D,); exact(t (T,), init (D,)) -> (T, D).
    """

    name: str
    description: str
    coefficients: tuple
    rhs: tuple
    inits: tuple
    exact: Callable[[np.ndarray, np.ndarray], np.ndarray]

    @property
    def dims(self) -> int:
        return len(self.inits[0])

    def padded_coefficients(self, order_count: int) -> np.ndarray:
        """Coefficients (E, D, order_count), zero beyond the first derivative."""
        if order_count < 2:
            raise ValueError(f"order_count must be >= 2 for first-order systems, got {order_count}")
        c = np.asarray(self.coefficients, dtype=np.float64)
        pad = np.zeros(c.shape[:-1] + (order_count - c.shape[-1],))
        return np.concatenate([c, pad], axis=-1)


def _rc(t, i):
    c0, c1, c2 = 0.7, 1.2, 2.31
    return (c0 * c1 + (i[0] - c0 * c1) * np.exp(-t / (c1 * c2)))[:, None]


def _growth(t, i):
    return (i[0] * np.exp(0.23 * t))[:, None]


def _language(t, i):
    c0, c1 = 0.32, 0.28
    eq = c0 / (c0 + c1)
    return (eq - (eq - i[0]) * np.exp(-t * (c0 + c1)))[:, None]


def _harmonic(t, i):
    w = np.sqrt(2.1)
    x = i[0] * np.cos(w * t) + i[1] / w * np.sin(w * t)
    v = i[1] * np.cos(w * t) - w * i[0] * np.sin(w * t)
    return np.stack([x, v], axis=-1)


def _damped(t, i):
    c0, c1 = 4.5, 0.43
    w = np.sqrt(c0 - 0.25 * c1**2)
    a = (0.5 * c1 * i[0] + i[1]) / w
    decay = np.exp(-0.5 * c1 * t)
    x = decay * (i[0] * np.cos(w * t) + a * np.sin(w * t))
    v = decay * (i[1] * np.cos(w * t) - (0.5 * c1 * a + w * i[0]) * np.sin(w * t))
    return np.stack([x, v], axis=-1)


def _third_order(t, i):
    # x''' = -x'' - x' written as x0' = x1, x1' = x2, x2' = -x1 - x2.
    w, s3 = np.sqrt(0.75), np.sqrt(3.0)
    decay = np.exp(-0.5 * t)
    x0 = i[0] + i[1] + i[2] + decay * (
        -(i[1] + i[2]) * np.cos(w * t) + (i[1] - i[2]) / s3 * np.sin(w * t)
    )
    x1 = decay * (i[1] * np.cos(w * t) + (i[1] + 2 * i[2]) / s3 * np.sin(w * t))
    x2 = decay * (i[2] * np.cos(w * t) - (2 * i[1] + i[2]) / s3 * np.sin(w * t))
    return np.stack([x0, x1, x2], axis=-1)


PROBLEMS: tuple[LinearODE, ...] = (
    LinearODE(
        "rc_circuit", "RC circuit (charging capacitor): x' = (0.7 - x/1.2)/2.31",
        (((1 / 1.2, 2.31),),), (0.7,), ((10.0,), (3.54,)), _rc,
    ),
    LinearODE(
        "population_growth", "population growth: x' = 0.23 x",
        (((0.23, -1.0),),), (0.0,), ((4.78,), (0.87,)), _growth,
    ),
    LinearODE(
        "language_death", "language death (two languages): x' = 0.32 (1 - x) - 0.28 x",
        (((0.6, 1.0),),), (0.32,), ((0.14,), (0.55,)), _language,
    ),
    LinearODE(
        "harmonic_oscillator", "harmonic oscillator: x'' = -2.1 x",
        (((0.0, 1.0), (-1.0, 0.0)), ((2.1, 0.0), (0.0, 1.0))), (0.0, 0.0),
        ((0.4, -0.03), (0.0, 0.2)), _harmonic,
    ),
    LinearODE(
        "damped_oscillator", "damped oscillator: x'' = -4.5 x - 0.43 x'",
        (((0.0, 1.0), (-1.0, 0.0)), ((4.5, 0.0), (0.43, 1.0))), (0.0, 0.0),
        ((0.12, 0.043), (0.0, -0.3)), _damped,
    ),
    LinearODE(
        "third_order", "third order: x''' = -x'' - x'",
        (
            ((0.0, 1.0), (-1.0, 0.0), (0.0, 0.0)),
            ((0.0, 0.0), (0.0, 1.0), (-1.0, 0.0)),
            ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0)),
        ),
        (0.0, 0.0, 0.0), ((0.0, -1.0, 1.0),), _third_order,
    ),
)
