"""Lorenz governing-equation discovery with the S-MNN layer (the paper's Lorenz experiment).

The classic MNN setup: the coefficient tensor xi (10 polynomial terms x 3 equations) is a
parameter; each training window of 50 steps becomes the linear ODE system
``u_e' = sum_j xi[j, e] theta_j(x(t))`` (theta the degree <= 2 monomials of the observed
state, K = 3 orders per state dim, the window's first state as initial value), the layer
solves it, and the loss is the squared distance of the solution to the observed window.
After training, small terms are thresholded away and the kept terms are refitted by exact
least squares through the same layer (its solution is affine in xi), repeated a few times
(sequential thresholding, as in SINDy).

The first ``compare_steps`` steps are run twice with identical seeded batches, once with the
S-MNN solver and once with the dense reference solve (the original MNN's O(T^3) solver),
each in its own process to measure its peak memory: loss curves on one plot, time per step.

    python -m examples.lorenz --config full --out runs/examples
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

import smnn
from smnn.reference import ode_forward_dense

from ._data import LORENZ_BETA, LORENZ_RHO, LORENZ_SIGMA, lorenz_trajectory
from ._library import evaluate_library, polynomial_terms, term_names, threshold_mask
from ._output import (
    StepTimer,
    median,
    new_figure,
    peak_memory_mib,
    pick_device,
    run_example,
    run_isolated,
    save_figure,
)

NAME = "lorenz"
TERMS = polynomial_terms(3, 2)  # 1, x, y, z, xx, xy, xz, yy, yz, zz
NAMES = term_names(TERMS)


def true_coefficients() -> np.ndarray:
    """The Lorenz system in the library: (10 terms, 3 equations)."""
    xi = np.zeros((len(TERMS), 3))
    index = {name: j for j, name in enumerate(NAMES)}
    xi[index["x"], 0], xi[index["y"], 0] = -LORENZ_SIGMA, LORENZ_SIGMA
    xi[index["x"], 1], xi[index["y"], 1], xi[index["xz"], 1] = LORENZ_RHO, -1.0, -1.0
    xi[index["xy"], 2], xi[index["z"], 2] = 1.0, -LORENZ_BETA
    return xi


@dataclass(frozen=True)
class Config:
    n_samples: int = 10000  # trajectory length (dt = 0.01)
    dt: float = 0.01
    window: int = 50
    batch: int = 4  # windows per step (the dense solve's cost sets this on a shared CPU)
    train_steps: int = 2000  # S-MNN training steps
    compare_steps: int = 1000  # steps run with both solvers (same seed, same batches)
    lr: float = 0.02  # Adam, cosine-decayed to 0 over train_steps
    threshold: float = 0.1  # |xi| below this is set to zero after training
    refit_rounds: int = 3
    refit_windows: int = 100  # windows (non-overlapping) used by the least-squares refit
    seed: int = 0
    isolate: bool = True  # each solver's training in its own process (clean peak memory)


CONFIGS = {
    "small": Config(n_samples=1500, batch=2, train_steps=12, compare_steps=5, lr=0.2,
                    refit_windows=30, isolate=False),
    "full": Config(),
}


class LorenzData:
    """The trajectory, its library scales and seeded batches of windows."""

    def __init__(self, trajectory: np.ndarray, config: Config, device: torch.device):
        self.config = config
        self.x = torch.tensor(trajectory, dtype=torch.float64, device=device)  # (n, 3)
        # Scales so that the learned numbers are O(1): library terms by their RMS,
        # equations by the RMS of the finite-difference derivative.
        self.term_scale = evaluate_library(self.x, TERMS).pow(2).mean(0).sqrt()  # (10,)
        derivative = torch.diff(self.x, dim=0) / config.dt
        self.eq_scale = derivative.pow(2).mean(0).sqrt()  # (3,)

    def batches(self, n: int, seed: int) -> list[torch.Tensor]:
        """``n`` batches of window start indices, identical for identical seeds."""
        g = torch.Generator().manual_seed(seed)
        high = self.x.shape[0] - self.config.window + 1
        return [torch.randint(0, high, (self.config.batch,), generator=g) for _ in range(n)]

    def windows(self, starts: torch.Tensor) -> torch.Tensor:
        """(B,) starts -> (B, W, 3) windows."""
        offsets = torch.arange(self.config.window)
        return self.x[starts[:, None] + offsets[None, :].to(starts.device)]


def ode_system(x: torch.Tensor, rhs: torch.Tensor, dt: float):
    """Layer inputs for windows ``x`` (B, W, 3) and right-hand sides ``rhs`` (..., B, W, 3).

    Equation e reads u_e' = rhs_e: coefficients (1, 3, 3, 3) with c[e, e, 1] = 1.
    """
    coefficients = torch.zeros(1, 3, 3, 3, dtype=x.dtype, device=x.device)
    coefficients[0, [0, 1, 2], [0, 1, 2], 1] = 1.0
    init_vars = x[:, :1, :, None].expand(rhs.shape[:-2] + (1, 3, 1))  # (..., B, S=1, D=3, J=1)
    steps = torch.full((x.shape[1] - 1,), dt, dtype=x.dtype, device=x.device)
    return coefficients, rhs, init_vars, steps


class LorenzModel(torch.nn.Module):
    """xi as a parameter, in scaled units: xi[j, e] = scaled[j, e] * eq_scale[e] / term_scale[j]."""

    def __init__(self, data: LorenzData, dense: bool):
        super().__init__()
        self.scaled = torch.nn.Parameter(torch.zeros(len(TERMS), 3, dtype=torch.float64,
                                                     device=data.x.device))
        self.register_buffer("mask", torch.ones(len(TERMS), 3, dtype=torch.float64,
                                                device=data.x.device))
        self.data = data
        self.forward_fn = ode_forward_dense if dense else smnn.ode_forward

    def xi(self) -> torch.Tensor:
        """Coefficients in real units: (10, 3)."""
        return self.scaled * self.mask * self.data.eq_scale[None, :] / self.data.term_scale[:, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Windows (B, W, 3) -> the layer's solution u[..., 0]: (B, W, 3)."""
        rhs = evaluate_library(x, TERMS) @ self.xi()  # (B, W, 3)
        u = self.forward_fn(*ode_system(x, rhs, self.data.config.dt))  # (B, W, 3, K=3)
        return u[..., 0]


def train(trajectory: np.ndarray, config: Config, n_steps: int, dense: bool) -> dict:
    """Seeded Adam training for ``n_steps``; returns losses, step times, peak memory, xi.

    ``xi_compared`` is xi after ``config.compare_steps`` steps (the point where the dense
    run stops), so that the two solvers' parameters can be compared at the same step.
    """
    device = pick_device()
    torch.manual_seed(config.seed)
    data = LorenzData(trajectory, config, device)
    model = LorenzModel(data, dense)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    # The schedule depends on train_steps only, so a shorter run follows the same path.
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.train_steps)
    timer = StepTimer(device)
    losses: list[float] = []
    snapshot = {}

    def loop() -> None:
        for step, starts in enumerate(data.batches(n_steps, config.seed)):
            if step == config.compare_steps:
                snapshot["xi"] = model.xi().detach().cpu().numpy()
            x = data.windows(starts.to(device))
            with timer:
                optimizer.zero_grad()
                loss = torch.mean((model(x) - x) ** 2)
                loss.backward()
                optimizer.step()
            schedule.step()
            losses.append(loss.item())

    _, peak = peak_memory_mib(loop, device)
    return {
        "losses": losses,
        "seconds_per_step": median(timer.times),
        "total_seconds": float(sum(timer.times)),
        "peak_memory_mib": peak,
        "xi": model.xi().detach().cpu().numpy(),
        "xi_compared": snapshot.get("xi", model.xi().detach().cpu().numpy()),
    }


def refit(trajectory: np.ndarray, config: Config, xi: np.ndarray) -> tuple[np.ndarray, list]:
    """Sequential thresholding with exact least-squares refits through the S-MNN layer.

    For fixed windows the layer's solution is affine in xi, u_e = u0_e + sum_j xi[j, e] G_j,e,
    (equation e only drives state e), so one batched solve per round gives the columns G
    and the refit of the kept terms is an ordinary least-squares problem per equation.
    Returns the final xi (10, 3) and the number of kept terms per round.
    """
    device = pick_device()
    data = LorenzData(trajectory, config, device)
    w = config.window
    n_windows = min(config.refit_windows, (data.x.shape[0]) // w)
    x = data.windows(torch.arange(n_windows, device=device) * w)  # (B, W, 3)
    theta = evaluate_library(x, TERMS)  # (B, W, 10)
    # rhs variants: index 0 the zero rhs (free response to the initial state), 1 + j the
    # term theta_j driving every equation at once (equations are decoupled).
    rhs = torch.cat([torch.zeros_like(theta[..., :1]), theta], dim=-1)  # (B, W, 11)
    rhs = rhs.permute(2, 0, 1)[..., None].expand(-1, -1, -1, 3)  # (11, B, W, 3)
    with torch.no_grad():
        u = smnn.ode_forward(*ode_system(x, rhs, config.dt))[..., 0]  # (11, B, W, 3)
    free, columns = u[0], u[1:] - u[0]  # (B, W, 3), (10, B, W, 3)
    target = (x - free).cpu().numpy()
    columns = columns.cpu().numpy()
    xi = xi.copy()
    kept = []
    for _ in range(config.refit_rounds):
        mask = threshold_mask(torch.from_numpy(xi), config.threshold).numpy()
        kept.append(int(mask.sum()))
        for e in range(3):
            j = np.flatnonzero(mask[:, e])
            xi[:, e] = 0.0
            if len(j):
                design = columns[j][..., e].reshape(len(j), -1).T  # (B*W, kept)
                xi[j, e] = np.linalg.lstsq(design, target[..., e].reshape(-1), rcond=None)[0]
    return xi, kept


def recovery(xi: np.ndarray) -> dict:
    """How well ``xi`` (10, 3) matches the Lorenz system."""
    truth = true_coefficients()
    nonzero = truth != 0
    rel = np.abs(xi[nonzero] - truth[nonzero]) / np.abs(truth[nonzero])
    spurious = np.abs(xi[~nonzero])
    return {
        "max_rel_error_nonzero": float(rel.max()),
        "max_spurious": float(spurious.max()),
        "all_seven_within_2pct": bool(rel.max() < 0.02),
        "no_spurious_above_0.05": bool(spurious.max() <= 0.05),
    }


def equations(xi: np.ndarray) -> list[str]:
    out = []
    for e, lhs in enumerate(("x'", "y'", "z'")):
        terms = [f"{xi[j, e]:+.4f} {NAMES[j]}" for j in range(len(TERMS)) if xi[j, e] != 0]
        out.append(f"{lhs} = " + " ".join(terms))
    return out


def run(config: Config) -> tuple[dict, dict]:
    trajectory = lorenz_trajectory(config.n_samples, config.dt)
    smnn_run = run_isolated(train, trajectory, config, config.train_steps, False,
                            isolate=config.isolate)
    dense_run = run_isolated(train, trajectory, config, config.compare_steps, True,
                             isolate=config.isolate)
    refitted, kept = refit(trajectory, config, smnn_run["xi"])
    n = config.compare_steps
    a, b = np.array(smnn_run["losses"][:n]), np.array(dense_run["losses"])
    numbers = {
        "config": asdict(config),
        "device": str(pick_device()),
        "terms": NAMES,
        "true_xi": true_coefficients().tolist(),
        "trained_xi": smnn_run["xi"].tolist(),
        "trained_recovery": recovery(smnn_run["xi"]),
        "discovered_xi": refitted.tolist(),
        "discovered_equations": equations(refitted),
        "kept_terms_per_round": kept,
        "recovery": recovery(refitted),
        "compare": {
            "steps": n,
            "max_loss_rel_diff": float(np.max(np.abs(a - b) / np.abs(b))),
            "max_xi_abs_diff": float(np.abs(smnn_run["xi_compared"] - dense_run["xi"]).max()),
            "smnn": {k: smnn_run[k] for k in ("seconds_per_step", "total_seconds",
                                               "peak_memory_mib")},
            "dense": {k: dense_run[k] for k in ("seconds_per_step", "total_seconds",
                                                "peak_memory_mib")},
        },
        "initial_loss": smnn_run["losses"][0],
        "final_loss": smnn_run["losses"][-1],
    }
    c = numbers["compare"]
    c["speedup"] = c["dense"]["seconds_per_step"] / c["smnn"]["seconds_per_step"]
    c["memory_ratio"] = c["dense"]["peak_memory_mib"] / max(c["smnn"]["peak_memory_mib"], 1e-3)
    curves = {"trajectory": trajectory, "smnn": smnn_run["losses"], "dense": dense_run["losses"],
              "xi": refitted}
    return numbers, curves


def plot(numbers: dict, curves: dict, path: Path) -> Path:
    fig, (left, middle, right) = new_figure(1, 3, figsize=(15, 4))
    traj = curves["trajectory"]
    left.plot(traj[:, 0], traj[:, 2], lw=0.4)
    left.set_xlabel("x")
    left.set_ylabel("z")
    left.set_title("Lorenz training trajectory")
    n = numbers["compare"]["steps"]
    c = numbers["compare"]
    middle.semilogy(curves["smnn"][:n], lw=1.5,
                    label=f"S-MNN ({c['smnn']['seconds_per_step'] * 1e3:.0f} ms/step)")
    middle.semilogy(curves["dense"], "--", lw=1.2,
                    label=f"dense MNN ({c['dense']['seconds_per_step'] * 1e3:.0f} ms/step)")
    middle.set_xlabel("training step")
    middle.set_ylabel("MSE loss")
    middle.set_title(f"Same seeded training, first {n} steps")
    middle.legend()
    truth = np.array(numbers["true_xi"])
    width = 0.4
    pos = np.arange(len(NAMES))
    for e, color in enumerate(("C0", "C1", "C2")):
        right.bar(pos + (e - 1) * width / 1.5, curves["xi"][:, e], width / 1.5, color=color,
                  label=("x'", "y'", "z'")[e])
        right.scatter(pos + (e - 1) * width / 1.5, truth[:, e], marker="_", color="black", s=80)
    right.set_xticks(pos, NAMES)
    right.set_yscale("symlog", linthresh=1.0)
    right.set_title("Discovered coefficients (bars) vs truth (—)")
    right.legend(fontsize=8)
    return save_figure(fig, path)


def main(argv: list[str] | None = None) -> dict:
    numbers = run_example(__doc__, NAME, CONFIGS, run, plot, argv)
    print("\n".join(numbers["discovered_equations"]))
    print("recovery", numbers["recovery"])
    print("compare", numbers["compare"])
    return numbers


if __name__ == "__main__":
    main()
