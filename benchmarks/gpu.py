"""The solver table on CUDA, the auto crossover there, and the gpu-marked tests, in one go.

    python benchmarks/gpu.py [--repeats 5] [--no-tests]

Needs a CUDA device: without one it says so and exits with status 2 (nothing is measured).
For the cases of `benchmarks/solver.py` (B=1, D=1, K=3 at T = 100 ... 100,000, and the
Mechanistic Identifier's shape B=12,960, T=208, S=10, J=2), each torch method and the
dense solve (where its matrix fits) runs one warm-up and up to `repeats` forward+backward
passes in float64 (synchronised, median wall time) with the peak CUDA memory above the
inputs; a method whose warm-up pass takes over 20 s (the sequential one at T=100,000, whose
T steps are T kernel-launch rounds) is timed by that pass alone, which keeps the whole run,
tests included, under 5 minutes. Then it sweeps the batch size at T=208 to show where
"auto" should switch, and runs `pytest -m gpu`.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from solver import CASES  # noqa: E402  (same directory; one table of shapes)

CUDA_METHODS = ("sequential", "parallel")  # "compiled" is the CPU kernel
DENSE_MAX_T = 2_000  # (3T)² float64 and its Cholesky: 290 MB at T = 2,000
SWEEP_BATCHES = (1, 16, 256, 2_048, 12_960)
WARMUP_ALONE_S = 20.0  # a method slower than this per pass is timed by its warm-up only


def make_inputs(batch: int, t_len: int, s_len: int, device: torch.device):
    """Seeded float64 inputs and a cotangent, like benchmarks/solver.py."""
    g = torch.Generator().manual_seed(0)
    opts = dict(dtype=torch.float64)
    coefficients = torch.randn(batch, t_len, 1, 1, 3, generator=g, **opts)
    coefficients[..., 0] += 1.5
    rhs = torch.randn(batch, t_len, 1, generator=g, **opts)
    init_vars = torch.randn(batch, s_len, 1, 2, generator=g, **opts)
    steps = 0.05 + 0.2 * torch.rand(batch, t_len - 1, generator=g, **opts)
    cotangent = torch.randn(batch, t_len, 1, 3, generator=g, **opts)
    moved = [x.to(device) for x in (coefficients, rhs, init_vars, steps, cotangent)]
    return [x.requires_grad_() for x in moved[:4]], moved[4]


def time_method(method: str, batch: int, t_len: int, s_len: int, repeats: int, device):
    """Median seconds of forward+backward and peak MB above the inputs (None if it failed)."""
    import smnn
    from smnn.reference import ode_forward_dense

    inputs, cotangent = make_inputs(batch, t_len, s_len, device)

    def solve(*xs):
        if method == "dense":
            return ode_forward_dense(*xs)
        return smnn.ode_forward(*xs, method=method)

    def one_pass() -> float:
        for x in inputs:
            x.grad = None
        torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        torch.autograd.backward(solve(*inputs), cotangent)  # the VJP, as solver.py
        torch.cuda.synchronize(device)
        return time.perf_counter() - t0

    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    try:
        warm = one_pass()
        times = [warm] if warm > WARMUP_ALONE_S else [one_pass() for _ in range(repeats)]
    except (RuntimeError, ValueError) as err:  # out of memory, or a failed factorisation
        print(f"  {method} at B={batch}, T={t_len} failed: {str(err).splitlines()[0]}")
        return None
    peak = (torch.cuda.max_memory_allocated(device) - base) / 2**20
    return statistics.median(times), peak


def table(repeats: int, device) -> None:

    methods = [*CUDA_METHODS, "dense"]
    print(f"\nforward+backward on {torch.cuda.get_device_name(device)}, float64:")
    print("median seconds (peak MB above the inputs); dense/method = speed-up over dense")
    header = " | ".join(methods) + " | " + " | ".join(f"dense/{m}" for m in CUDA_METHODS)
    print(f"| case | {header} |")
    print("|---" * (1 + len(methods) + len(CUDA_METHODS)) + "|")
    for case, (batch, t_len, s_len) in CASES.items():
        results = {}
        for m in methods:
            if m == "dense" and (t_len > DENSE_MAX_T or batch > 1):
                continue
            results[m] = time_method(m, batch, t_len, s_len, repeats, device)
        cells = [
            "—" if results.get(m) is None else f"{results[m][0]:.4f} ({results[m][1]:.0f})"
            for m in methods
        ]
        dense = results.get("dense")
        for m in CUDA_METHODS:
            r = results.get(m)
            ok = r is not None and dense is not None
            cells.append(f"{dense[0] / r[0]:.1f}x" if ok else "—")
        print(f"| {case} | " + " | ".join(cells) + " |", flush=True)


def crossover(repeats: int, device) -> None:
    """Which method is faster as the batch grows at T=208 (what `auto` decides on)."""
    from smnn._solve import choose_method

    print("\nbatch sweep at T=208 (D=1, K=3): median seconds, faster method, auto's choice")
    for batch in SWEEP_BATCHES:
        got = {m: time_method(m, batch, 208, 10, repeats, device) for m in CUDA_METHODS}
        timed = {m: r[0] for m, r in got.items() if r is not None}
        best = min(timed, key=timed.get) if timed else "—"
        auto = choose_method("auto", batch, 208, 3, device)
        cells = ", ".join(f"{m} {s:.4f}" for m, s in timed.items())
        print(f"  B={batch:>6}: {cells}; faster: {best}; auto: {auto}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-tests", action="store_true", help="skip pytest -m gpu")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print(
            "benchmarks/gpu.py: no CUDA device is available (torch.cuda.is_available() is "
            f"False, torch {torch.__version__}); run it on a machine with a GPU and a CUDA "
            "build of torch. Nothing was measured.",
            file=sys.stderr,
        )
        return 2
    device = torch.device("cuda", torch.cuda.current_device())
    start = time.perf_counter()
    table(args.repeats, device)
    crossover(args.repeats, device)
    status = 0
    if not args.no_tests:
        print("\npytest -m gpu:", flush=True)
        status = subprocess.run(
            [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider"],
            cwd=ROOT,
            check=False,
        ).returncode
    print(f"\ntotal {time.perf_counter() - start:.0f} s")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
