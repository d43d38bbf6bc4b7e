"""Output and measurement helpers shared by the example scripts.

Writes the JSON of an experiment's numbers (refusing non-finite values, so a broken run
cannot pass for a result), saves figures, times steps and measures peak memory.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch


def pick_device() -> torch.device:
    """The CUDA device when one is present, the CPU otherwise."""
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


@contextlib.contextmanager
def torch_threads(n: int):
    """Run the block with ``n`` intra-op threads, restoring the previous number after.

    The experiments use one thread: on a shared, oversubscribed CPU, OpenMP worker threads
    spin and wait, and tiny batched kernels (the S-MNN block factorisations) become up to
    100x slower with 2 threads than with 1. One thread is also the fair setting for timing.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _check_finite(value: Any, where: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where} is {value}; the JSON of an experiment holds finite numbers only")
    if isinstance(value, dict):
        for key, item in value.items():
            _check_finite(item, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_finite(item, f"{where}[{i}]")


def write_json(path: Path, numbers: dict[str, Any]) -> Path:
    """Write ``numbers`` (nested dicts/lists of str, int, float, bool) as indented JSON."""
    _check_finite(numbers, path.stem)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(numbers, indent=2, sort_keys=False) + "\n")
    return path


def save_figure(fig, path: Path) -> Path:
    """Save a matplotlib figure as PNG and close it."""
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def new_figure(*args, **kwargs):
    """``plt.subplots`` on the non-interactive Agg backend (scripts and tests have no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def median(values: list[float]) -> float:
    return float(statistics.median(values))


class StepTimer:
    """Wall-clock time per training step (synchronising CUDA so the numbers are real)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.times: list[float] = []
        self._start = 0.0

    def __enter__(self) -> StepTimer:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.times.append(time.perf_counter() - self._start)


def _rss_bytes() -> int:
    """Resident set size of this process now (Linux), 0 where unknown."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0
    return pages * resource.getpagesize()


def _max_rss_bytes() -> int:
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def peak_memory_mib(fn: Callable[[], Any], device: torch.device) -> tuple[Any, float]:
    """Run ``fn()`` and return (its result, the peak memory it added in MiB).

    On CUDA: peak allocated tensor memory. On the CPU: the growth of the process's peak
    resident set size over its size before the call. That is only meaningful when ``fn``
    runs in a fresh process (or first), because the peak never goes down: the scripts run
    each measured solver in its own process for this reason (see ``run_isolated``).
    """
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        result = fn()
        return result, (torch.cuda.max_memory_allocated(device) - base) / 2**20
    base = _rss_bytes()
    result = fn()
    return result, max(_max_rss_bytes() - base, 0) / 2**20


def _one_thread_call(fn: Callable[..., Any], *args: Any) -> Any:
    with torch_threads(1):
        return fn(*args)


def run_isolated(fn: Callable[..., Any], *args: Any, isolate: bool = True) -> Any:
    """``fn(*args)`` on one thread, in a fresh spawned process when ``isolate`` (clean peak
    memory), else in this one.

    ``fn`` must be a module-level function of an importable module and its arguments and
    result picklable.
    """
    if not isolate:
        return _one_thread_call(fn, *args)
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(_one_thread_call, fn, *args).result()


def run_example(
    doc: str, name: str, configs: dict, run: Callable, plot: Callable, argv: list[str] | None
) -> dict:
    """The shared command line of the examples: `--config NAME --out DIR`.

    Runs `run(config) -> (numbers, extra)` on one torch thread, then writes
    `plot(numbers, extra, DIR/<name>.png)` and `DIR/<name>.json`; returns the numbers.
    """
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--config", choices=sorted(configs), default="small")
    parser.add_argument("--out", type=Path, default=Path("runs/examples"))
    args = parser.parse_args(argv)
    with torch_threads(1):
        numbers, extra = run(configs[args.config])
    numbers["config_name"] = args.config
    plot(numbers, extra, args.out / f"{name}.png")
    write_json(args.out / f"{name}.json", numbers)
    return numbers
