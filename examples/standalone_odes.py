"""Standalone validation: six linear ODEs with closed forms, solved by the S-MNN layer alone.

The paper's first experiment: no learning, the layer is given the true coefficients and the
initial state, and its solution is compared with the exact one (T = 1000 steps of h = 0.01,
K = 3, both smoothness variants). Each solution is also compared with the dense O(T^3)
reference solve of the same least-squares problem (the original MNN's solver), on the first
``dense_steps`` steps, which shows the two solve the same problem.

    python -m examples.standalone_odes --config full --out runs/examples
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

import smnn
from smnn.reference import ode_forward_dense

from ._odes import PROBLEMS, LinearODE
from ._output import new_figure, pick_device, run_example, save_figure

NAME = "standalone_odes"
VARIANTS = {"default": False, "central": True}


@dataclass(frozen=True)
class Config:
    n_steps: int = 1000
    step: float = 0.01
    order_count: int = 3  # K: derivative orders 0..K-1 per state dim
    dense_steps: int = 300  # prefix compared with the dense solve (its cost grows as T^3)
    inits_per_problem: int = 2  # the paper's benchmark gives two initial states per problem


CONFIGS = {"small": Config(n_steps=60, dense_steps=20, inits_per_problem=1), "full": Config()}


def solve(problem: LinearODE, init: np.ndarray, config: Config, n_steps: int, *,
          central: bool, dense: bool, device: torch.device) -> np.ndarray:
    """The layer's solution for one problem and initial state: (n_steps, D, K)."""
    f64 = dict(dtype=torch.float64, device=device)
    coefficients = torch.tensor(problem.padded_coefficients(config.order_count), **f64)[None]
    rhs = torch.tensor(problem.rhs, **f64)[None]  # (1, E)
    init_vars = torch.tensor(init, **f64)[None, :, None]  # (S=1, D, J=1): the state at t=0
    steps = torch.full((n_steps - 1,), config.step, **f64)  # (T-1,): fixes T
    forward = ode_forward_dense if dense else smnn.ode_forward
    with torch.no_grad():
        u = forward(coefficients, rhs, init_vars, steps, central=central)
    return u.cpu().numpy()


def run(config: Config) -> dict:
    """Solve every problem and initial state with both variants; the numbers of the table."""
    device = pick_device()
    t = np.arange(config.n_steps) * config.step
    rows, curves = [], {}
    for problem in PROBLEMS:
        for variant, central in VARIANTS.items():
            max_err = max_rel = dense_diff = 0.0
            seconds = []
            for k, init in enumerate(problem.inits[: config.inits_per_problem]):
                init = np.asarray(init)
                exact = problem.exact(t, init)  # (T, D)
                start = time.perf_counter()
                u = solve(problem, init, config, config.n_steps, central=central, dense=False,
                          device=device)
                seconds.append(time.perf_counter() - start)
                err = np.abs(u[..., 0] - exact)
                max_err = max(max_err, float(err.max()))
                max_rel = max(max_rel, float(err.max() / np.abs(exact).max()))
                n = min(config.dense_steps, config.n_steps)
                fast = solve(problem, init, config, n, central=central, dense=False, device=device)
                ref = solve(problem, init, config, n, central=central, dense=True, device=device)
                dense_diff = max(dense_diff, float(np.abs(fast - ref).max() / np.abs(ref).max()))
                if k == 0:
                    curves[(problem.name, variant)] = (exact[:, 0], u[:, 0, 0])
            rows.append({
                "problem": problem.name,
                "description": problem.description,
                "variant": variant,
                "dims": problem.dims,
                "max_abs_error": max_err,
                "max_rel_error": max_rel,
                "rel_diff_vs_dense": dense_diff,
                "solve_seconds": float(np.median(seconds)),
            })
    return {"config": asdict(config), "device": str(device), "rows": rows}, (t, curves)


def plot(t: np.ndarray, curves: dict, path: Path) -> Path:
    """Top row: exact solution and both variants; bottom row: absolute error (log scale)."""
    fig, axes = new_figure(2, len(PROBLEMS), figsize=(3.2 * len(PROBLEMS), 5.2), sharex=True)
    for j, problem in enumerate(PROBLEMS):
        top, bottom = axes[0, j], axes[1, j]
        exact = curves[(problem.name, "default")][0]
        top.plot(t, exact, color="black", lw=2.5, alpha=0.4, label="exact")
        for variant, style in zip(VARIANTS, ("-", "--"), strict=True):
            u = curves[(problem.name, variant)][1]
            top.plot(t, u, style, lw=1, label=f"S-MNN {variant}")
            bottom.semilogy(t, np.abs(u - exact) + 1e-16, style, lw=1, label=variant)
        top.set_title(problem.name.replace("_", " "), fontsize=10)
        bottom.set_xlabel("t")
    axes[0, 0].set_ylabel("x(t)")
    axes[1, 0].set_ylabel("|error|")
    axes[0, 0].legend(fontsize=7)
    axes[1, 0].legend(fontsize=7)
    fig.suptitle(f"Standalone validation: T = {len(t)}, h = {t[1] - t[0]:g}, K = 3")
    return save_figure(fig, path)


def main(argv: list[str] | None = None) -> dict:
    numbers = run_example(
        __doc__, NAME, CONFIGS, run, lambda numbers, extra, path: plot(*extra, path), argv
    )
    for row in numbers["rows"]:
        print(f"{row['problem']:20s} {row['variant']:8s} max|err| {row['max_abs_error']:.2e} "
              f"rel {row['max_rel_error']:.2e}  vs dense {row['rel_diff_vs_dense']:.1e}")
    return numbers


if __name__ == "__main__":
    main()
