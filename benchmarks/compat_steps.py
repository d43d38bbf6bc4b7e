"""Time per training step of MNN's sine fit and Lorenz discovery, original layer vs ours.

    python benchmarks/compat_steps.py [--steps 20] [--threads 1] [--mech-nn PATH]

Two training steps written after alpz/mech-nn's `fit/sine.py` and `discovery/lorenz.py`
(re-written here, same sizes and layer arguments; no code of theirs):
- sine: one damped noisy sine of T = 500 steps fitted by a second-order ODE whose
  coefficients (1, 500, 3) and steps (logit-parametrised) are the parameters;
  `ODEINDLayer(bs=1, order=2, n_ind_dim=1, n_iv=0, n_step=500, n_iv_steps=1)`, loss
  Σ (u0 − y)², Adam.
- lorenz: batches of 20 windows of 50 steps of the Lorenz system; a linear layer maps each
  window to a state `var`, the right-hand side is its degree-2 polynomial library times the
  sparse coefficients xi; `ODEINDLayer(bs=20, order=2, n_ind_dim=3, n_iv=1, n_step=50,
  n_iv_steps=1, gamma=0.5, alpha=0)` with coefficients (0, 1, 0) (u' = rhs), loss
  Σ (x0 − batch)² + (var − batch)², Adam; float64.
Each step is forward, backward and the optimiser update; the median over `--steps` steps
after two warm-up steps is printed (ms, wall and process CPU time). With `--mech-nn PATH`
(a checkout of alpz/mech-nn, whose `solver.ode_layer` imports there) the same steps run on
the original layer too; without it only ours is timed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from smnn.compat import ODEINDLayer  # noqa: E402


def sine_step(layer_cls):
    """A closure running one training step of the sine fit."""
    t_len, rng = 500, np.random.default_rng(0)
    x = np.linspace(0, 50, t_len)
    y = torch.tensor((np.sin(2 * x) + 0.5 * rng.standard_normal(t_len)) * np.exp(-0.1 * x))
    coeffs = torch.nn.Parameter(torch.tensor(rng.random((1, t_len, 3))))
    steps = torch.nn.Parameter(torch.logit(0.1 * torch.ones(1, t_len - 1, 1, dtype=torch.float64)))
    rhs = torch.ones(1, 1, t_len, dtype=torch.float64)
    layer = layer_cls(bs=1, order=2, n_ind_dim=1, n_iv=0, n_step=t_len, n_iv_steps=1)
    optimiser = torch.optim.Adam([coeffs, steps], lr=0.01)

    def step():
        optimiser.zero_grad()
        h = torch.sigmoid(steps).reshape(1, 1, t_len - 1)
        u0, *_ = layer(coeffs.unsqueeze(0), rhs, None, h)
        loss = (u0.double() - y).pow(2).sum()
        loss.backward()
        optimiser.step()

    return step


def lorenz_data(t_len=2_000, dt=0.001):
    """The Lorenz trajectory by RK4 (the original uses scipy's odeint)."""

    def f(s):
        x, y, z = s
        return np.array([10 * (y - x), x * (28 - z) - y, x * y - 8 / 3 * z])

    out = np.empty((t_len, 3))
    s = np.ones(3)
    for i in range(t_len):
        out[i] = s
        k1 = f(s)
        k2 = f(s + dt / 2 * k1)
        k3 = f(s + dt / 2 * k2)
        k4 = f(s + dt * k3)
        s = s + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return torch.tensor(out)


def library(v):
    """(B, T, 3) -> (B, T, 9): x, y, z and their degree-2 products."""
    products = [v[..., i] * v[..., j] for i in range(3) for j in range(i, 3)]
    return torch.cat([v, torch.stack(products, -1)], -1)


def lorenz_step(layer_cls):
    """A closure running one training step of the Lorenz discovery."""
    bs, t_len, n = 20, 50, 3
    data = lorenz_data()
    g = torch.Generator().manual_seed(0)
    net = torch.nn.Linear(t_len * n, t_len * n).double()
    xi = torch.nn.Parameter(torch.rand(1, 9, n, generator=g, dtype=torch.float64))
    step_size = torch.nn.Parameter(torch.logit(torch.tensor([1e-4], dtype=torch.float64)))
    layer = layer_cls(
        bs=bs, order=2, n_ind_dim=n, n_step=t_len, n_iv=1, n_iv_steps=1, gamma=0.5, alpha=0.0
    )
    optimiser = torch.optim.Adam([*net.parameters(), xi, step_size], lr=0.001)
    coeffs = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64).expand(bs, n, t_len, 3)

    def step():
        start = torch.randint(0, len(data) - t_len, (bs,), generator=g)
        batch = torch.stack([data[i : i + t_len] for i in start.tolist()])  # (bs, T, 3)
        optimiser.zero_grad()
        var = net(batch.reshape(bs, -1)).reshape(bs, t_len, n)
        rhs = (library(var) @ xi).permute(0, 2, 1)  # (bs, 3, T)
        h = torch.sigmoid(step_size * torch.ones(bs, n, t_len - 1, dtype=torch.float64))
        x0, *_ = layer(coeffs, rhs, var[:, 0], h.clip(min=1e-4))
        loss = (x0.double().permute(0, 2, 1) - batch).pow(2) + (var - batch).pow(2)
        loss.sum(dim=[-1, -2]).mean().backward()
        optimiser.step()

    return step


def median_ms(step, repeats):
    """Median wall and process CPU time of one step, in ms (CPU time is steadier under load)."""
    for _ in range(2):
        step()
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        step()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return 1e3 * statistics.median(wall), 1e3 * statistics.median(cpu)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--mech-nn", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    layers = {"sstcast (smnn.compat)": ODEINDLayer}
    if args.mech_nn is not None:
        sys.path.insert(0, str(args.mech_nn))
        from solver.ode_layer import ODEINDLayer as Original  # noqa: PLC0415

        layers["original (alpz/mech-nn)"] = Original
    print(f"ms per training step, wall / CPU (median of {args.steps}, {args.threads} thread(s))")
    for name, layer_cls in layers.items():
        sine = median_ms(sine_step(layer_cls), args.steps)
        lorenz = median_ms(lorenz_step(layer_cls), args.steps)
        print(
            f"{name:26s} sine {sine[0]:7.2f} / {sine[1]:7.2f}   "
            f"lorenz {lorenz[0]:7.2f} / {lorenz[1]:7.2f}"
        )


if __name__ == "__main__":
    main()
