"""Fit a noisy damped sine with a learnable second-order linear ODE.

The ODE ``x'' + a x' + b x = r`` has free learnable coefficients a, b, r, learnable initial
values x(0), x'(0) and learned step sizes (one per step, ``h_t = h exp(s_t)``); the S-MNN
layer solves it and the loss is the mean squared distance of the solution to the noisy
samples. The clean signal ``exp(-g t) sin(w t)`` has a = 2g and b = w^2 + g^2, so the
learned coefficients can be read against the truth. The same seeded fit runs with the
dense reference solver as well.

    python -m examples.damped_sine --config full --out runs/examples
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

import smnn
from smnn.reference import ode_forward_dense

from ._data import damped_sine
from ._output import median, new_figure, pick_device, run_example, save_figure

NAME = "damped_sine"


@dataclass(frozen=True)
class Config:
    n_samples: int = 100
    dt: float = 0.1
    decay: float = 0.3
    omega: float = 2.0
    noise: float = 0.05
    iterations: int = 400
    lr: float = 0.03
    initial_b: float = 3.0  # starting guess of the stiffness (truth: w^2 + g^2 = 4.09)
    seed: int = 0


CONFIGS = {"small": Config(n_samples=40, dt=0.25, iterations=40, lr=0.05), "full": Config()}


class DampedODE(torch.nn.Module):
    """Second-order linear ODE with learnable coefficients, initial values and steps."""

    def __init__(self, n_steps: int, dt: float, x0: float, v0: float, b0: float, forward_fn):
        super().__init__()
        f64 = dict(dtype=torch.float64)
        self.a = torch.nn.Parameter(torch.tensor(0.0, **f64))
        self.b = torch.nn.Parameter(torch.tensor(b0, **f64))
        self.r = torch.nn.Parameter(torch.tensor(0.0, **f64))
        self.init = torch.nn.Parameter(torch.tensor([x0, v0], **f64))
        self.log_steps = torch.nn.Parameter(torch.zeros(n_steps - 1, **f64))
        self.dt = dt
        self.forward_fn = forward_fn

    def steps(self) -> torch.Tensor:
        return self.dt * torch.exp(self.log_steps)  # (T-1,), positive by construction

    def forward(self) -> torch.Tensor:
        """The solution x(t): (T,)."""
        one = torch.ones_like(self.a)
        coefficients = torch.stack([self.b, self.a, one]).reshape(1, 1, 1, 3)  # (1, E, D, K)
        rhs = self.r.reshape(1, 1)  # (1, E)
        init_vars = self.init.reshape(1, 1, 2)  # (S=1, D=1, J=2)
        u = self.forward_fn(coefficients, rhs, init_vars, self.steps())  # (T, D=1, K=3)
        return u[:, 0, 0]


def fit(config: Config, dense: bool) -> dict:
    """One seeded fit; returns its loss curve, timings, learned values and the fitted curve."""
    torch.manual_seed(config.seed)
    device = pick_device()
    _, clean, noisy = damped_sine(config.n_samples, config.dt, decay=config.decay,
                                  omega=config.omega, noise=config.noise, seed=config.seed)
    target = torch.tensor(noisy, dtype=torch.float64, device=device)
    v0 = float((noisy[1] - noisy[0]) / config.dt)
    model = DampedODE(config.n_samples, config.dt, float(noisy[0]), v0, config.initial_b,
                      ode_forward_dense if dense else smnn.ode_forward).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    losses, seconds = [], []
    for _ in range(config.iterations):
        start = time.perf_counter()
        optimizer.zero_grad()
        loss = torch.mean((model() - target) ** 2)
        loss.backward()
        optimizer.step()
        seconds.append(time.perf_counter() - start)
        losses.append(loss.item())
    with torch.no_grad():
        x = model().cpu().numpy()
        t_learned = np.concatenate([[0.0], np.cumsum(model.steps().cpu().numpy())])
    # Learned steps stretch time by s on average; in real time the ODE reads
    # x'' + (a s) x' + (b s^2) x = r s^2, so those are the coefficients to compare with truth.
    stretch = float(t_learned[-1] / ((config.n_samples - 1) * config.dt))
    a, b = model.a.item(), model.b.item()
    return {
        "losses": losses,
        "seconds_per_step": median(seconds),
        "a": a, "b": b, "r": model.r.item(),
        "mean_step_ratio": stretch,
        "a_real_time": a * stretch,
        "b_real_time": b * stretch**2,
        "rmse_to_clean": float(np.sqrt(np.mean((x - clean) ** 2))),
        "rmse_to_noisy": float(np.sqrt(np.mean((x - noisy) ** 2))),
        "fit": x,
    }


def run(config: Config) -> tuple[dict, dict]:
    t, clean, noisy = damped_sine(config.n_samples, config.dt, decay=config.decay,
                                  omega=config.omega, noise=config.noise, seed=config.seed)
    fits = {"smnn": fit(config, dense=False), "dense": fit(config, dense=True)}
    truth = {"a": 2 * config.decay, "b": config.omega**2 + config.decay**2, "r": 0.0}
    summary = {k: {key: v for key, v in f.items() if key not in ("fit", "losses")}
               for k, f in fits.items()}
    for k in fits:
        summary[k]["final_loss"] = fits[k]["losses"][-1]
    numbers = {
        "config": asdict(config),
        "truth": truth,
        "noise_std": config.noise,
        "fits": summary,
        "max_loss_curve_rel_diff": max(
            abs(p - q) / abs(q) for p, q in zip(fits["smnn"]["losses"], fits["dense"]["losses"],
                                                strict=True)
        ),
        "learned_frequency": math.sqrt(
            max(fits["smnn"]["b_real_time"] - fits["smnn"]["a_real_time"] ** 2 / 4, 0.0)
        ),
    }
    return numbers, {"t": t, "clean": clean, "noisy": noisy, "fits": fits}


def plot(curves: dict, path: Path) -> Path:
    fig, (left, right) = new_figure(1, 2, figsize=(11, 3.8))
    left.plot(curves["t"], curves["noisy"], ".", ms=3, color="grey", label="noisy samples")
    left.plot(curves["t"], curves["clean"], color="black", lw=2, alpha=0.4, label="clean signal")
    left.plot(curves["t"], curves["fits"]["smnn"]["fit"], lw=1.2, label="S-MNN ODE fit")
    left.plot(curves["t"], curves["fits"]["dense"]["fit"], "--", lw=1, label="dense-solver fit")
    left.set_xlabel("t")
    left.legend(fontsize=8)
    left.set_title("Damped sine fitted by x'' + a x' + b x = r")
    for key, style in (("smnn", "-"), ("dense", "--")):
        right.semilogy(curves["fits"][key]["losses"], style, label=key)
    right.set_xlabel("iteration")
    right.set_ylabel("MSE loss")
    right.legend()
    return save_figure(fig, path)


def main(argv: list[str] | None = None) -> dict:
    numbers = run_example(
        __doc__, NAME, CONFIGS, run, lambda numbers, curves, path: plot(curves, path), argv
    )
    for key, f in numbers["fits"].items():
        print(f"{key:6s} a={f['a_real_time']:.3f} b={f['b_real_time']:.3f} r={f['r']:.3f} "
              f"rmse(clean)={f['rmse_to_clean']:.4f} {f['seconds_per_step'] * 1e3:.1f} ms/step")
    print("truth", numbers["truth"])
    return numbers


if __name__ == "__main__":
    main()
