"""Training of the Mechanistic Identifier: AdamW, warmup + cosine schedule, gradient clipping,
validation with early stopping, checkpoints (periodic and on SIGINT/SIGTERM), exact resume,
a metrics log (JSON lines) and a progress bar. Runs on CUDA when present, else the CPU, and
under `torchrun` as DistributedDataParallel (NCCL on GPUs, gloo on CPUs).

What a run directory holds, and how it is read back, is `pipeline.model.run`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import xarray as xr
from tqdm.auto import tqdm

import smnn
from pipeline.climatology import (
    fit_climatology,
    ocean_mask,
    open_sst,
    seasonal_index,
    store_time_step,
)
from pipeline.data.store import guard_write
from pipeline.model.config import Config, config_from_dict
from pipeline.model.dynamics import fit_mode_dynamics, last_blended_lead
from pipeline.model.modes import fit_modes, project
from pipeline.model.network import MechanisticIdentifier
from pipeline.model.prefetch import prefetched
from pipeline.model.run import (
    BEST,
    DYNAMICS,
    LAST,
    LOG,
    STATS,
    default_device,
    load_checkpoint,
)
from pipeline.model.windows import (
    BlockBatchSampler,
    WindowDataset,
    collate_batch,
    ocean_locations,
    plan_splits,
)
from smnn import SolveError

__all__ = [
    "Trainer", "TrainingDiverged", "TrainingInterrupted", "TrainingState", "masked_mse", "train",
]


class TrainingDiverged(RuntimeError):
    """The loss or the gradients became non-finite or exploded; the last good checkpoint
    is kept."""


class TrainingInterrupted(RuntimeError):
    """SIGINT/SIGTERM arrived; a checkpoint was written and `resume=True` continues."""


def masked_mse(prediction, target, mask, weight) -> torch.Tensor:
    """Weighted mean squared error over valid targets.  prediction, target, mask: (B, H);
    weight: (B,) area weights (cos lat)."""
    w = mask.to(prediction.dtype) * weight[:, None].to(prediction.dtype)
    return (w * (prediction - target.to(prediction.dtype)) ** 2).sum() / w.sum().clamp_min(1e-12)


def _lr_at(step: int, config: Config, time_fraction: float = 0.0) -> float:
    """Linear warmup, then cosine decay to min_lr_ratio of the peak at max_steps (or at the
    end of the time budget, whichever comes first: `time_fraction` of it is spent)."""
    t = config.train
    if step < t.warmup_steps:
        return t.lr * (step + 1) / t.warmup_steps
    span = max(1, t.max_steps - t.warmup_steps)
    done = max((step - t.warmup_steps) / span, time_fraction)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, done)))
    return t.lr * (t.min_lr_ratio + (1 - t.min_lr_ratio) * cosine)


def _budget_fraction(elapsed: float, budget: float | None, step: int, max_steps: int) -> float:
    """The share of the time budget spent, for the schedule: 0 unless, at the pace so far,
    the budget ends before max_steps. A run that ends by its steps then follows the step
    schedule alone, bit for bit the same on any machine (right after the warmup the step
    share is 0, and any time spent would otherwise lower the learning rate)."""
    if budget is None or step == 0:
        return 0.0
    fraction = elapsed / budget
    return fraction if fraction * max_steps / step > 1.0 else 0.0


def _save(path: Path, payload: dict) -> None:
    """Write atomically: an interrupted save never leaves a truncated checkpoint."""
    tmp = path.with_suffix(".tmp")
    with guard_write(path, partial=tmp):
        # A file object, not a path: torch then raises the OSError (ENOSPC) of the write
        # instead of an opaque "inline_container.cc" RuntimeError.
        with open(tmp, "wb") as handle:
            torch.save(payload, handle)
        os.replace(tmp, path)


def _trim_log(path: Path, step: int | None) -> None:
    """Keep the records of steps <= `step` (None: none), so a resumed run does not log the
    steps after its checkpoint twice; a torn last line is dropped too."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines() if step is not None else []:
        with contextlib.suppress(ValueError):
            if json.loads(line).get("step", 0) <= step:
                kept.append(line + "\n")
    with guard_write(path):
        path.write_text("".join(kept))


class _StopFlag:
    """Turns SIGINT/SIGTERM into a flag checked between steps (main thread only)."""

    def __init__(self):
        self.signal: int | None = None
        self._previous: dict = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        self.signal = signum

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class _Distributed:
    """Rank and world size; initialises torch.distributed under torchrun."""

    def __init__(self, device: torch.device):
        self.world = int(os.environ.get("WORLD_SIZE", 1))
        self.rank = int(os.environ.get("RANK", 0))
        self.owns_group = False
        if self.world > 1 and not torch.distributed.is_initialized():
            backend = "nccl" if device.type == "cuda" else "gloo"
            torch.distributed.init_process_group(backend=backend)
            self.owns_group = True

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            value = value.clone()
            torch.distributed.all_reduce(value)
            value /= self.world
        return value

    def any_of(self, *values: float) -> list[float]:
        """Element-wise maximum over ranks, so that every rank takes the same decision
        (stop on a signal, time budget spent)."""
        if self.world == 1:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64)
        torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.MAX)
        return tensor.tolist()

    def close(self):
        if self.owns_group:
            torch.distributed.destroy_process_group()


def _validation_indices(n: int, samples: int, seed: int) -> np.ndarray:
    """A fixed, sorted subset of validation windows (sorted: fewer block reads)."""
    if n <= samples:
        return np.arange(n)
    return np.sort(np.random.default_rng([seed, 7]).choice(n, samples, replace=False))


@contextlib.contextmanager
def _threads(train, world: int):
    """torch's and the compiled solve's thread counts set for training (`network_threads`,
    `solver_threads`), restored after: they are process-wide, and a notebook that trains
    keeps its own settings."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    torch_before = torch.get_num_threads()
    solver_before = smnn.set_num_threads(train.solver_threads or max(1, (cores or 1) // world))
    try:
        if train.network_threads is not None:
            torch.set_num_threads(train.network_threads)
        yield
    finally:
        torch.set_num_threads(torch_before)
        smnn.set_num_threads(solver_before)


def _to(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


@torch.no_grad()
def _validate(model, dataset, indices, batch_size, device) -> float:
    """Weighted masked MSE (normalised units) over the validation windows."""
    model.eval()
    total, weight = 0.0, 0.0
    for s in range(0, len(indices), batch_size):
        batch = _to(dataset.__getitems__(indices[s : s + batch_size]), device)
        out = model(batch["context"], batch["covariates"])
        w = batch["mask"].double() * batch["weight"].double()[:, None]
        total += float((w * (out.forecast.double() - batch["target"].double()) ** 2).sum())
        weight += float(w.sum())
    model.train()
    return total / max(weight, 1e-12)


def _loss(model, batch, align_weight: float):
    out = model(batch["context"], batch["covariates"])
    loss = masked_mse(out.forecast, batch["target"], batch["mask"], batch["weight"])
    if align_weight > 0:
        # Multi-view alignment: the neighbouring location is a second view of the same
        # regional dynamics, so its latent should be close.
        core = getattr(model, "module", model)
        other = core.encode(batch["neighbour"], batch["covariates"])
        loss = loss + align_weight * ((out.latent - other) ** 2).mean()
    return loss


def _optimiser(model: torch.nn.Module, config: Config) -> torch.optim.AdamW:
    """AdamW with the fused kernel: one pass over all parameters instead of a dozen small
    ops per tensor (the same update up to float rounding, ~3x faster at the default size)."""
    t = config.train
    return torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay,
                             fused=True)


def _load_optimiser(optimiser: torch.optim.AdamW, state: dict) -> None:
    """Load a checkpoint's optimiser state, keeping the fused kernel: a checkpoint written
    before it (fused=None in its groups) would otherwise switch it off."""
    optimiser.load_state_dict(state)
    for group in optimiser.param_groups:
        group["fused"], group["foreach"] = True, None


def context_modes(ds, stats, end: int, config: Config):
    """The run's EOFs (pipeline.model.modes) of steps 0..end on the training sub-grid."""
    clim = stats["clim"].values
    seasons = seasonal_index(ds.time.values, store_time_step(ds))
    locations = ocean_locations(ocean_mask(clim, ds), stride=config.window.location_stride)
    sample = np.zeros(clim.shape[1:], bool)
    sample[locations.iy, locations.ix] = True
    modes = fit_modes(ds.sst, clim, seasons, end=end, sample=sample,
                      n_modes=config.model.context_modes)
    return modes.drop_vars(["lat", "lon"])


def train(
    store,
    run_dir,
    *,
    config: Config | None = None,
    resume: bool = False,
    train_end=None,
    progress: Callable[[float, dict], None] | None = None,
) -> Path:
    """Train on the store's data at or before `train_end` (default: all of it), holding out
    the last `config.train.val_steps` steps of that for validation. Returns the path of the
    checkpoint to forecast with (best validation weights).

    Raises TrainingDiverged (non-finite or exploding loss; `last.pt` is the last good state)
    and TrainingInterrupted (SIGINT/SIGTERM; `last.pt` written, call again with resume=True).
    A run folder this call created is removed again when training fails before its first
    checkpoint: without last.pt it can be neither resumed nor used.
    """
    run_dir = Path(run_dir)
    created = not run_dir.exists()
    try:
        config, train_end, saved = _start_or_resume(run_dir, config, resume, train_end)
        return Trainer(store, run_dir, config, train_end=train_end, saved=saved,
                       progress=progress).run()
    except BaseException:
        if created and not (run_dir / LAST).exists():
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


def _start_or_resume(run_dir: Path, config, resume: bool, train_end):
    """(config, train_end, saved checkpoint or None): a new run, or the one in `run_dir`
    continued with its own config and train_end."""
    last_path = run_dir / LAST
    saved = None
    if resume and last_path.exists():
        saved = load_checkpoint(last_path)
        stored = config_from_dict(saved["config"], source=str(last_path))
        if config is not None and config != stored:
            raise ValueError(
                f"config: differs from the one of the run being resumed in {run_dir}; "
                "pass config=None to resume with the stored one"
            )
        config = stored
        train_end = saved["train_end"]
    elif last_path.exists():
        raise ValueError(
            f"run_dir: {run_dir} already holds a run (last.pt); pass resume=True to continue "
            "it or choose a new directory"
        )
    config = config or Config()
    if not isinstance(config, Config):
        raise TypeError(
            f"config: expected pipeline.model.config.Config, got {type(config).__name__}")
    return config, train_end, saved


@dataclass
class TrainingState:
    """Where a run stands; every checkpoint keeps it (as a plain dict, `progress`) so that
    a resumed run continues exactly: optimiser steps, epoch and batch position in it, the
    best validation loss and the validations since, whether it is done, seconds trained."""

    step: int = 0
    epoch: int = 0
    position: int = 0
    best: float = math.inf
    bad: int = 0
    done: bool = False
    elapsed: float = 0.0


@dataclass
class _LogWindow:
    """Loss and samples since the last log line (not checkpointed: a log line's average)."""

    loss: float = 0.0
    samples: int = 0
    start: float = field(default_factory=time.perf_counter)


class Trainer:
    """One training run: data, model and optimiser set up once (`__init__`), then `run`
    steps, logs, validates and checkpoints until max_steps, early stopping or the time
    budget."""

    def __init__(self, store, run_dir: Path, config: Config, *, train_end=None,
                 saved: dict | None = None,
                 progress: Callable[[float, dict], None] | None = None):
        self.run_dir, self.config, self.progress = run_dir, config, progress
        self.last_path = run_dir / LAST
        run_dir.mkdir(parents=True, exist_ok=True)
        t = config.train
        self.budget = None if t.max_minutes is None else 60.0 * t.max_minutes

        ds = open_sst(store)
        train_split, val_split, fit_end = plan_splits(
            ds.time.values, train_end=train_end, val_steps=t.val_steps,
            context=config.window.context, stride=config.window.stride,
        )
        self.device = default_device()
        self.dist = _Distributed(self.device)
        stats = self._stats(ds, saved, fit_end, train_split.target_end)
        self.ds, self.stats = ds, stats
        self.ends = (train_split.target_end,
                     None if val_split is None else val_split.target_end)
        self.train_data = WindowDataset(store, stats, train_split, config.window,
                                        neighbours=config.model.align_weight > 0)
        self.val_data = (  # validation scores the forecast only: no neighbours
            WindowDataset(store, stats, val_split, config.window,
                          locations=self.train_data.locations, neighbours=False)
            if val_split is not None else None
        )
        self.val_idx = (_validation_indices(len(self.val_data), t.val_samples, t.seed)
                        if self.val_data else None)

        torch.manual_seed(t.seed)
        self.model = MechanisticIdentifier(config.model, config.window).to(self.device)
        self.optimiser = _optimiser(self.model, config)
        self.state = TrainingState()
        if saved is not None:
            self.model.load_state_dict(saved["model"])
            _load_optimiser(self.optimiser, saved["optimiser"])
            self.state = TrainingState(**saved["progress"])
            torch.set_rng_state(saved["rng"])
        if self.dist.rank == 0:
            _trim_log(run_dir / LOG, None if saved is None else self.state.step)
        self.net = self.model
        if self.dist.world > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda"
                else None)
        self.meta = {
            "store": str(store) if not hasattr(store, "sst") else "<in-memory dataset>",
            "train_end": None if train_end is None else str(train_end),
            "fit_end": str(fit_end.date()),
            "climatology_start": stats.attrs["start"],
            "climatology_end": stats.attrs["end"],
            "train_windows": len(self.train_data),
            "val_windows": 0 if self.val_idx is None else len(self.val_idx),
        }

    def _stats(self, ds, saved, fit_end, target_end):
        """The run's climatology (and modes): fitted once, kept in stats.nc, read back on
        resume."""
        stats_path = self.run_dir / STATS
        if saved is not None and stats_path.exists():
            stats = xr.load_dataset(stats_path)
        else:
            stats = fit_climatology(ds.sst, end=fit_end, std_floor=self.config.window.std_floor,
                                    step=store_time_step(ds))
            if self.config.model.context_modes:
                stats = stats.merge(context_modes(ds, stats, target_end, self.config))
        if self.dist.rank == 0 and not stats_path.exists():
            with guard_write(stats_path, partial=stats_path):
                stats.to_netcdf(stats_path)
        return stats

    def run(self) -> Path:
        t, s = self.config.train, self.state
        bar = tqdm(total=t.max_steps, initial=s.step, desc="train", unit="step",
                   disable=None if self.dist.rank == 0 else True)
        self.window = _LogWindow()
        try:
            with _StopFlag() as stop, _threads(t, self.dist.world):
                while not s.done and s.step < t.max_steps:
                    if self._epoch(stop, bar):
                        break
                    s.epoch += 1
                    s.position = 0
                s.done = True
                self.checkpoint(self.last_path)
                if self.val_data is None or not (self.run_dir / BEST).exists():
                    self.checkpoint(self.run_dir / BEST)
            if self.dist.rank == 0 and not (self.run_dir / DYNAMICS).exists():
                self._fit_dynamics()
        finally:
            bar.close()
            with contextlib.suppress(Exception):
                self.dist.close()
        return self.run_dir / BEST

    def _epoch(self, stop: _StopFlag, bar) -> bool:
        """The rest of the current epoch; True when training ends within it."""
        t, s = self.config.train, self.state
        sampler = BlockBatchSampler(
            self.train_data, t.batch_size, seed=t.seed, epoch=s.epoch, start=s.position,
            rank=self.dist.rank, world=self.dist.world,
        )
        loader = torch.utils.data.DataLoader(
            self.train_data, batch_sampler=sampler, collate_fn=collate_batch,
            num_workers=t.num_workers,
        )
        # closed on every way out of the loop, so the read-ahead thread stops with it
        reading = contextlib.nullcontext(loader) if t.num_workers else (
            contextlib.closing(prefetched(loader))
        )
        with reading as batches:
            return self._run_batches(batches, stop, bar)

    def _run_batches(self, batches, stop: _StopFlag, bar) -> bool:
        """Train on `batches` (the rest of an epoch); True when training ends within it."""
        t, s = self.config.train, self.state
        step_start = time.perf_counter()
        for batch in batches:
            batch = _to(batch, self.device)
            value = self._step(batch)
            now = time.perf_counter()
            s.elapsed += now - step_start
            step_start = now
            s.step += 1
            s.position += 1
            self.window.loss += value * len(batch["context"])
            self.window.samples += len(batch["context"]) * self.dist.world
            bar.update(1)
            if s.step % t.log_every == 0 or s.step == t.max_steps:
                self._log_window(bar)
            if self.val_data is not None and (
                s.step % t.val_every == 0 or s.step == t.max_steps
            ):
                self._validate()
            self._stop_or_go(stop)
            if s.done or s.step >= t.max_steps:
                return True
        return False

    def _step(self, batch: dict) -> float:
        """One optimiser step; returns the batch loss (mean over ranks)."""
        t, s = self.config.train, self.state
        time_fraction = _budget_fraction(s.elapsed, self.budget, s.step, t.max_steps)
        for group in self.optimiser.param_groups:
            group["lr"] = _lr_at(s.step, self.config, time_fraction)
        try:
            loss = _loss(self.net, batch, self.config.model.align_weight)
        except SolveError as error:  # the solver refused the decoded system
            raise TrainingDiverged(
                f"step {s.step}: the ODE solve failed ({error}); the last good "
                f"checkpoint is {self.last_path}"
            ) from error
        value = float(self.dist.mean(loss.detach()))
        if not math.isfinite(value) or value > t.max_loss:
            raise TrainingDiverged(
                f"step {s.step}: loss {value:.4g} is not finite or above "
                f"max_loss={t.max_loss}; the last good checkpoint is {self.last_path} "
                "(lower train.lr or raise train.grad_clip's strictness)"
            )
        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.grad_clip)
        if not torch.isfinite(norm):
            raise TrainingDiverged(
                f"step {s.step}: gradient norm is {float(norm)}; the last good "
                f"checkpoint is {self.last_path}"
            )
        self.optimiser.step()
        return value

    def _log_window(self, bar) -> None:
        s, w = self.state, self.window
        elapsed = time.perf_counter() - w.start
        record = {
            "step": s.step, "epoch": s.epoch,
            "loss": w.loss * self.dist.world / max(w.samples, 1),
            "lr": self.optimiser.param_groups[0]["lr"],
            "samples_per_s": w.samples / max(elapsed, 1e-9),
        }
        self.log(record)
        bar.set_postfix(loss=f"{record['loss']:.4f}",
                        samples_s=f"{record['samples_per_s']:.0f}")
        if self.progress is not None:
            self.progress(s.step / self.config.train.max_steps, record)
        self.window = _LogWindow()

    def _validate(self) -> None:
        """Validation loss; the best weights to best.pt; early stopping after `patience`
        validations without improvement."""
        t, s = self.config.train, self.state
        try:
            val_loss = _validate(self.model, self.val_data, self.val_idx, t.batch_size,
                                 self.device)
        except SolveError as error:
            raise TrainingDiverged(
                f"step {s.step}: the ODE solve failed on the validation "
                f"windows ({error}); the last good checkpoint is {self.last_path}"
            ) from error
        if not math.isfinite(val_loss):
            raise TrainingDiverged(
                f"step {s.step}: validation loss {val_loss:.4g} is not "
                f"finite; the last good checkpoint is {self.last_path}"
            )
        if val_loss < s.best:
            s.best, s.bad = val_loss, 0
            self.checkpoint(self.run_dir / BEST)
        else:
            s.bad += 1
        self.log({"step": s.step, "val_loss": val_loss, "best": s.best})
        if s.bad >= t.patience:
            s.done = True  # early stopping

    def _stop_or_go(self, stop: _StopFlag) -> None:
        """The same decision on every rank: time budget spent, periodic checkpoint, signal."""
        t, s = self.config.train, self.state
        elapsed, signalled = self.dist.any_of(s.elapsed, float(stop.signal or 0))
        # Every rank carries the slowest one's clock, so the next step's learning rate (its
        # time share) is the same on all of them, as this stop decision is.
        s.elapsed = elapsed
        if self.budget is not None and elapsed >= self.budget:
            s.done = True  # time budget spent
        if s.step % t.checkpoint_every == 0 or s.done:
            self.checkpoint(self.last_path)
        if signalled:
            self.checkpoint(self.last_path)
            raise TrainingInterrupted(
                f"stopped by signal {signal.Signals(int(signalled)).name} at step "
                f"{s.step}; checkpoint {self.last_path}; resume=True continues"
            )

    def _fit_dynamics(self) -> None:
        """The mode dynamics (pipeline.model.dynamics), fitted on the same split once the
        network is trained; their validation losses go to the log."""
        m, t = self.config.model, self.config.train
        if not m.mode_leads or "eof" not in self.stats:
            return
        fit_end, val_end = self.ends
        last = fit_end if val_end is None else val_end
        seasons = seasonal_index(self.ds.time.values, store_time_step(self.ds))
        clim = self.stats["clim"].values
        amplitudes = project(self.ds.sst, clim, seasons, self.stats["eof"].values, 0, last + 1)
        start = time.perf_counter()
        dynamics, summary = fit_mode_dynamics(
            amplitudes, self.stats["amplitude_std"].values, seasons[: last + 1], clim.shape[0],
            fit_end=fit_end, val_end=val_end,
            horizon=min(self.config.window.horizon, last_blended_lead(m.mode_leads)),
            harmonics=m.mode_harmonics, steps=t.mode_steps, lr=t.mode_lr,
        )
        _save(self.run_dir / DYNAMICS, {
            "model": dynamics.state_dict(),
            "shape": [dynamics.n_modes, dynamics.n_seasons, dynamics.harmonics],
            "summary": summary,
        })
        self.log({"step": self.state.step, "mode_dynamics": summary,
                  "seconds": time.perf_counter() - start})

    def checkpoint(self, path: Path) -> None:
        if self.dist.rank == 0:
            _save(path, {
                "config": self.config.model_dump(),
                "model": self.model.state_dict(),
                "optimiser": self.optimiser.state_dict(),
                "progress": dataclasses.asdict(self.state),
                "rng": torch.get_rng_state(),
                "train_end": self.meta["train_end"],
                "meta": self.meta,
            })

    def log(self, record: dict) -> None:
        if self.dist.rank == 0:
            path = self.run_dir / LOG
            with guard_write(path), open(path, "a") as handle:
                handle.write(json.dumps(record) + "\n")
