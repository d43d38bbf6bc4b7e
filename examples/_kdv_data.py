"""Korteweg-de Vries trajectories with a pseudo-spectral ETDRK4 solver ("KdV easy" setting).

Equation ``u_t + 6 u u_x + u_xxx = 0`` on a periodic domain of length L. The soliton
``(c/2) sech^2(sqrt(c)/2 (x - x0 - c t))`` travels at speed c unchanged; initial conditions
are random sums of such solitons, so trajectories show solitons overtaking each other.
Time stepping: exponential time differencing RK4 (Cox & Matthews 2002) with the coefficients
evaluated by contour integrals (Kassam & Trefethen 2005), 2/3-rule dealiasing.
"""

from __future__ import annotations

import numpy as np


def soliton(x: np.ndarray, t: float, speed: float, position: float, length: float) -> np.ndarray:
    """One KdV soliton on the periodic domain at time t: same shape as ``x``."""
    d = (x - position - speed * t + 0.5 * length) % length - 0.5 * length
    return 0.5 * speed / np.cosh(0.5 * np.sqrt(speed) * d) ** 2


def _etdrk4_coefficients(lin: np.ndarray, dt: float, n_contour: int = 64):
    """ETDRK4 weights for the diagonal linear operator ``lin`` (complex, (n_modes,))."""
    roots = np.exp(2j * np.pi * (np.arange(1, n_contour + 1) - 0.5) / n_contour)  # full circle
    lr = dt * lin[:, None] + roots[None, :]
    e, e2 = np.exp(dt * lin), np.exp(0.5 * dt * lin)
    # The operator is imaginary (dispersion), so the weights stay complex (no real part taken).
    q = dt * np.mean((np.exp(lr / 2) - 1) / lr, axis=1)
    f1 = dt * np.mean((-4 - lr + np.exp(lr) * (4 - 3 * lr + lr**2)) / lr**3, axis=1)
    f2 = dt * np.mean((2 + lr + np.exp(lr) * (-2 + lr)) / lr**3, axis=1)
    f3 = dt * np.mean((-4 - 3 * lr - lr**2 + np.exp(lr) * (4 - lr)) / lr**3, axis=1)
    return e, e2, q, f1, f2, f3


def kdv_solve(
    u0: np.ndarray, length: float, t_frames: np.ndarray, dt: float = 2e-3
) -> np.ndarray:
    """Integrate KdV from ``u0`` (B, N) and return the frames at ``t_frames`` (F,): (B, F, N).

    ``t_frames`` must start at 0 and be multiples of ``dt`` (up to rounding).
    """
    u0 = np.atleast_2d(np.asarray(u0, dtype=np.float64))
    n = u0.shape[-1]
    k = 2 * np.pi / length * np.fft.rfftfreq(n, d=1.0 / n)
    lin = 1j * k**3  # from -u_xxx
    e, e2, q, f1, f2, f3 = _etdrk4_coefficients(lin.astype(complex), dt)
    dealias = k < (2.0 / 3.0) * k.max()
    g = -3j * k * dealias  # -6 u u_x = -3 (u^2)_x

    def nonlinear(v):
        return g * np.fft.rfft(np.fft.irfft(v, n=n) ** 2)

    v = np.fft.rfft(u0)
    steps = np.rint(np.asarray(t_frames) / dt).astype(int)
    if steps[0] != 0 or np.any(np.diff(steps) <= 0):
        raise ValueError(f"t_frames must start at 0 and increase, got {t_frames[:3]}...")
    frames = np.empty((u0.shape[0], len(steps), n))
    frames[:, 0] = u0
    done = 0
    for i, target in enumerate(steps[1:], start=1):
        for _ in range(target - done):
            nv = nonlinear(v)
            a = e2 * v + q * nv
            na = nonlinear(a)
            b = e2 * v + q * na
            nb = nonlinear(b)
            c = e2 * a + q * (2 * nb - nv)
            nc = nonlinear(c)
            v = e * v + f1 * nv + 2 * f2 * (na + nb) + f3 * nc
        done = target
        frames[:, i] = np.fft.irfft(v, n=n)
    return frames


def random_solitons(
    n_trajectories: int,
    *,
    n_points: int = 256,
    length: float = 64.0,
    n_frames: int = 140,
    frame_dt: float = 0.1,
    max_solitons: int = 3,
    speed_range: tuple[float, float] = (0.5, 2.0),
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """KdV trajectories from random sums of 1..max_solitons solitons.

    Returns (x (N,), t (F,), u (B, F, N)) with N = n_points, F = n_frames.
    """
    rng = np.random.default_rng(seed)
    x = np.arange(n_points) * length / n_points
    t = np.arange(n_frames) * frame_dt
    u0 = np.zeros((n_trajectories, n_points))
    for b in range(n_trajectories):
        for _ in range(rng.integers(1, max_solitons + 1)):
            u0[b] += soliton(x, 0.0, rng.uniform(*speed_range), rng.uniform(0, length), length)
    return x, t, kdv_solve(u0, length, t)
