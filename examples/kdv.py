"""Korteweg-de Vries forecasting with the S-MNN PDE model ("KdV easy"), against the dense solver.

Data: trajectories of ``u_t + 6 u u_x + u_xxx = 0`` (periodic, 256 points, 140 frames) from
random sums of solitons, by a pseudo-spectral ETDRK4 solver. Model (the MNN PDE setup):
a small circular 1-D CNN reads 10 frames and predicts, for every spatial point, the
coefficients of an order-4 linear ODE in time (K = 5, constant over the window) and its
right-hand side at each of the 20 steps; the layer solves one ODE per point with the 10
observed frames as initial values (S = 10, J = 1) and the next 10 steps are the forecast.
The S-MNN model trains for ``train_steps``; the dense reference solve (the original MNN's
solver) is far too slow to train for as long on this CPU, so it runs the same seeded
training for the first ``compare_steps`` steps (loss curves, time per step, peak memory) and
the S-MNN-trained model is evaluated with both solvers on the same test windows (relative
L2 error, time per batch), beside persistence (the last frame repeated).

    python -m examples.kdv --config full --out runs/examples
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

import smnn
from smnn.reference import ode_forward_dense

from ._kdv_data import random_solitons
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

NAME = "kdv"


@dataclass(frozen=True)
class Config:
    n_train: int = 24  # training trajectories
    n_test: int = 8
    n_points: int = 256
    n_frames: int = 140
    frames_in: int = 10
    frames_out: int = 10
    order_count: int = 5  # K: order 4
    hidden: int = 32
    kernel: int = 5
    ode_step: float = 1.0  # layer step per frame (time in frame units)
    batch: int = 4  # windows per training step
    train_steps: int = 300
    compare_steps: int = 10  # steps trained with both solvers (same seed, same batches)
    lr: float = 2e-3
    test_windows: int = 64
    dense_test_windows: int = 16  # test windows also forecast with the dense solve
    seed: int = 0
    isolate: bool = True


CONFIGS = {
    "small": Config(n_train=2, n_test=1, n_points=32, n_frames=24, hidden=8, batch=2,
                    train_steps=6, compare_steps=3, test_windows=4, dense_test_windows=2,
                    isolate=False),
    "full": Config(),
}


class KdVModel(torch.nn.Module):
    """CNN over space -> per-point order-4 ODE in time -> solved by the S-MNN layer."""

    def __init__(self, config: Config, dense: bool):
        super().__init__()
        c, k, pad = config.hidden, config.kernel, config.kernel // 2
        self.n_steps = config.frames_in + config.frames_out
        self.config = config

        def conv(n_in, n_out):
            return torch.nn.Conv1d(n_in, n_out, k, padding=pad, padding_mode="circular")

        self.net = torch.nn.Sequential(
            conv(config.frames_in, c), torch.nn.GELU(),
            conv(c, c), torch.nn.GELU(),
            conv(c, c), torch.nn.GELU(),
            torch.nn.Conv1d(c, config.order_count + self.n_steps, 1),
        ).double()
        self.forward_fn = ode_forward_dense if dense else smnn.ode_forward

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Observed frames (B, F_in, N) -> forecast frames (B, F_out, N)."""
        k = self.config.order_count
        out = self.net(frames).transpose(1, 2)  # (B, N, K + T)
        coefficients = out[..., None, None, None, :k]  # (B, N, 1, E=1, D=1, K): constant in t
        rhs = out[..., k:, None]  # (B, N, T, E=1)
        init_vars = frames.transpose(1, 2)[..., None, None]  # (B, N, S=F_in, D=1, J=1)
        steps = torch.full((self.n_steps - 1,), self.config.ode_step, dtype=frames.dtype,
                           device=frames.device)
        u = self.forward_fn(coefficients, rhs, init_vars, steps)  # (B, N, T, 1, K)
        return u[:, :, self.config.frames_in:, 0, 0].transpose(1, 2)


def make_windows(u: np.ndarray, config: Config) -> np.ndarray:
    """All windows of F_in + F_out frames: (B, F, N) -> (B * n_starts, F_in + F_out, N)."""
    w = config.frames_in + config.frames_out
    starts = range(u.shape[1] - w + 1)
    return np.concatenate([u[:, s:s + w] for s in starts], axis=0)


def relative_error(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Mean over windows of ||pred - target||_2 / ||target||_2."""
    dims = tuple(range(1, pred.ndim))
    num = torch.linalg.vector_norm(pred - target, dim=dims)
    return float((num / torch.linalg.vector_norm(target, dim=dims)).mean())


def forecast(model: KdVModel, windows: torch.Tensor, batch: int) -> tuple[torch.Tensor, float]:
    """Forecasts (B, F_out, N) of ``windows`` (B, F, N) and the median seconds per batch."""
    fi, times, out = model.config.frames_in, [], []
    with torch.no_grad():
        for i in range(0, windows.shape[0], batch):
            start = time.perf_counter()
            out.append(model(windows[i:i + batch, :fi]))
            times.append(time.perf_counter() - start)
    return torch.cat(out), median(times)


def train(train_windows: np.ndarray, test_windows: np.ndarray, config: Config,
          n_steps: int, dense: bool) -> dict:
    """Seeded training for ``n_steps``; with the S-MNN solver also the test evaluation."""
    device = pick_device()
    torch.manual_seed(config.seed)
    model = KdVModel(config, dense).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    data = torch.tensor(train_windows, device=device)
    g = torch.Generator().manual_seed(config.seed)
    timer = StepTimer(device)
    losses: list[float] = []
    fi = config.frames_in

    def loop() -> None:
        for _ in range(n_steps):
            batch = data[torch.randint(0, data.shape[0], (config.batch,), generator=g)]
            with timer:
                optimizer.zero_grad()
                loss = torch.mean((model(batch[:, :fi]) - batch[:, fi:]) ** 2)
                loss.backward()
                optimizer.step()
            losses.append(loss.item())

    _, peak = peak_memory_mib(loop, device)
    result = {
        "losses": losses,
        "seconds_per_step": median(timer.times),
        "total_seconds": float(sum(timer.times)),
        "peak_memory_mib": peak,
    }
    if dense:
        return result
    test = torch.tensor(test_windows, device=device)
    pred, seconds = forecast(model, test, config.batch)
    result["test_relative_error"] = relative_error(pred, test[:, fi:])
    result["forecast_seconds_per_batch"] = seconds
    result["example"] = pred[0].cpu().numpy()
    # The same trained model, solving with the dense reference on a subset of the windows.
    model.forward_fn = ode_forward_dense
    subset = test[: config.dense_test_windows]
    dense_pred, dense_seconds = forecast(model, subset, config.batch)
    result["dense_eval"] = {
        "windows": int(subset.shape[0]),
        "test_relative_error": relative_error(dense_pred, subset[:, fi:]),
        "smnn_test_relative_error_same_windows": relative_error(
            pred[: subset.shape[0]], subset[:, fi:]),
        "max_abs_forecast_diff": float((dense_pred - pred[: subset.shape[0]]).abs().max()),
        "forecast_seconds_per_batch": dense_seconds,
    }
    return result


def run(config: Config) -> tuple[dict, dict]:
    _, _, u_train = random_solitons(config.n_train, n_points=config.n_points,
                                    n_frames=config.n_frames, seed=config.seed)
    _, _, u_test = random_solitons(config.n_test, n_points=config.n_points,
                                   n_frames=config.n_frames, seed=config.seed + 1)
    train_windows = make_windows(u_train, config)
    rng = np.random.default_rng(config.seed)
    all_test = make_windows(u_test, config)
    test_windows = all_test[rng.choice(len(all_test), config.test_windows, replace=False)]
    runs = {
        "smnn": run_isolated(train, train_windows, test_windows, config, config.train_steps,
                             False, isolate=config.isolate),
        "dense": run_isolated(train, train_windows, test_windows, config,
                              config.compare_steps, True, isolate=config.isolate),
    }
    fi = config.frames_in
    last = np.repeat(test_windows[:, fi - 1:fi], config.frames_out, axis=1)
    persistence = relative_error(torch.from_numpy(last), torch.from_numpy(test_windows[:, fi:]))
    timing = ("seconds_per_step", "total_seconds", "peak_memory_mib")
    smnn_run, dense_run = runs["smnn"], runs["dense"]
    n = config.compare_steps
    a, b = np.array(smnn_run["losses"][:n]), np.array(dense_run["losses"])
    numbers = {
        "config": asdict(config),
        "device": str(pick_device()),
        "train_windows": int(len(train_windows)),
        "persistence_relative_error": persistence,
        "smnn": {k: smnn_run[k] for k in timing + ("test_relative_error",
                                                   "forecast_seconds_per_batch")}
        | {"final_loss": smnn_run["losses"][-1]},
        "dense": {k: dense_run[k] for k in timing},
        "dense_eval": smnn_run["dense_eval"],
        "compare": {"steps": n, "max_loss_rel_diff": float(np.max(np.abs(a - b) / np.abs(b)))},
    }
    numbers["speedup_train_step"] = (numbers["dense"]["seconds_per_step"]
                                     / numbers["smnn"]["seconds_per_step"])
    numbers["speedup_forecast"] = (numbers["dense_eval"]["forecast_seconds_per_batch"]
                                   / numbers["smnn"]["forecast_seconds_per_batch"])
    curves = {"u_test": u_test[0], "window": test_windows[0], "runs": runs}
    return numbers, curves


def plot(numbers: dict, curves: dict, path: Path) -> Path:
    fig, axes = new_figure(1, 4, figsize=(18, 3.8))
    fi = numbers["config"]["frames_in"]
    axes[0].imshow(curves["u_test"], aspect="auto", origin="lower", cmap="viridis")
    axes[0].set_xlabel("x (grid point)")
    axes[0].set_ylabel("frame")
    axes[0].set_title("a test trajectory (KdV, sums of solitons)")
    window = curves["window"]
    pred = curves["runs"]["smnn"]["example"]
    vmax = np.abs(window).max()
    axes[1].imshow(window[fi:], aspect="auto", origin="lower", vmin=0, vmax=vmax)
    axes[1].set_title("truth, 10 frames ahead")
    axes[2].imshow(pred, aspect="auto", origin="lower", vmin=0, vmax=vmax)
    axes[2].set_title(f"S-MNN forecast (rel. err {numbers['smnn']['test_relative_error']:.3f})")
    for key, style in (("smnn", "-"), ("dense", "--")):
        r = numbers[key]
        axes[3].semilogy(curves["runs"][key]["losses"], style,
                         label=f"{key} ({r['seconds_per_step']:.2f} s/step)")
    axes[3].set_xlabel("training step")
    axes[3].set_ylabel("MSE loss")
    axes[3].legend()
    axes[3].set_title(f"training loss (dense: first {numbers['compare']['steps']} steps)")
    return save_figure(fig, path)


def main(argv: list[str] | None = None) -> dict:
    numbers = run_example(__doc__, NAME, CONFIGS, run, plot, argv)
    for key in ("smnn", "dense"):
        r = numbers[key]
        print(f"{key:6s} {r['seconds_per_step']:.3f} s/step  peak {r['peak_memory_mib']:.0f} MiB")
    print("test", numbers["smnn"]["test_relative_error"], "dense eval", numbers["dense_eval"])
    print(f"persistence rel err {numbers['persistence_relative_error']:.4f}")
    return numbers


if __name__ == "__main__":
    main()
