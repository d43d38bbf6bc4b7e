"""Speed and memory of the S-MNN solver: every registered method against the dense solve.

    python benchmarks/solver.py [--repeats 5] [--cases T100,T1000,T10000,T100000,sst,train32]
                                [--methods compiled,sequential,parallel,dense] [--threads N]
                                [--sweep B64,B512,B2048,B1_T10000,...] [--published DIR]
                                [--before DIR]

For each case (B=1, D=1, K=3, E=1, S=1, J=2 at T = 100 ... 100,000, and the Mechanistic
Identifier's shape B=12,960, T=208, S=10, J=2, and a default-config training batch B=512,
T=54, S=6 in float32, solved in float64 as the model does) and each column (the methods in
`smnn.METHODS`, then `dense` = `smnn.reference.ode_forward_dense`, the original MNN's
O(T³) solve, only where its (3T)² matrix fits), a fresh subprocess builds the inputs,
runs one warm-up (none for the sequential method at T = 100,000) and `repeats` timed passes
(u.backward(cotangent), a random cotangent: gradients of all four inputs, without a loss
whose u-sized temporaries would be timed too) and reports the median wall time (and
process CPU time, steadier on a shared machine) and its peak resident memory (ru_maxrss,
which sees torch's allocations, unlike tracemalloc) above the memory held before the first
solve. Prints a table, each method's time relative to the dense solve, and
the growth of time and memory with T (linear means ×10 per ×10 in T). Then the crossover:
which method `method="auto"` picks for each case, and a sweep (cases `--sweep`, "" to skip:
batches at T=208, and B = 1, 8 and 64 at T = 10,000 and 30,000) timing every method to
show where the faster one changes, which is what `smnn._solve._auto_method` encodes.
Peak memory includes loading numba for the compiled method (~200 MB, once per process);
the second memory figure (and the growth with T) is above a process that has already run one
small solve of the same method: the solve's own working memory.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# name: (B, T, S) with D=1, K=3, E=1, J=2.
CASES = {
    "T100": (1, 100, 1),
    "T1000": (1, 1_000, 1),
    "T10000": (1, 10_000, 1),
    "T100000": (1, 100_000, 1),
    "sst": (12_960, 208, 10),
    "train32": (512, 54, 6),  # a default-config training batch, see INPUT_DTYPES
}
# train32 as the model calls the solve: float32 inputs solved in float64 (`solve_dtype`
# None); every other case is float64.
INPUT_DTYPES = {"train32": "float32"}
# Sweep for the auto crossover, name: (B, T, S): batches at the SST length, and few long
# sequences, where the CPU choice changes.
SWEEP = {f"B{b}": (b, 208, 10) for b in (64, 512, 2_048)} | {
    f"B{b}_T{t}": (b, t, 1) for b in (1, 8, 64) for t in (10_000, 30_000)
}
DENSE_MAX_T = 1_000  # the dense normal matrix is (3T)² float64: 72 MB at T = 1,000

CHILD = """
import json, resource, statistics, sys, time
sys.path.insert(0, sys.argv[1])
import torch
import smnn
from smnn.reference import ode_forward_dense
batch, t_len, s_len, method, repeats, threads, warmup, published, dtype = sys.argv[2:11]
batch, t_len, s_len, repeats, threads, warmup = map(
    int, (batch, t_len, s_len, repeats, threads, warmup))
if threads > 0:
    torch.set_num_threads(threads)
g = torch.Generator().manual_seed(0)
opts = dict(dtype=getattr(torch, dtype))
coefficients = torch.randn(batch, t_len, 1, 1, 3, generator=g, **opts)
coefficients[..., 0] += 1.5
rhs = torch.randn(batch, t_len, 1, generator=g, **opts)
init_vars = torch.randn(batch, s_len, 1, 2, generator=g, **opts)
steps = 0.05 + 0.2 * torch.rand(batch, t_len - 1, generator=g, **opts)
cotangent = torch.randn(batch, t_len, 1, 3, generator=g, **opts)
inputs = [x.requires_grad_() for x in (coefficients, rhs, init_vars, steps)]
if method == "dense":
    solve = ode_forward_dense
elif method == "published":  # the published smnn.py, loaded by path (its name is ours too)
    import importlib.util
    spec = importlib.util.spec_from_file_location("published_smnn", published + "/smnn.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    solve = module.ode_forward
else:
    def solve(*xs):
        return smnn.ode_forward(*xs, method=method)
base_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
# One small solve first (64 systems of 16 steps, or the case's own if smaller), so that what
# loads once per process (numba and its kernels, torch's autograd) is in warm_kb: the
# difference from it is the solve's own working memory at the case's shape.
b, t = min(batch, 64), min(t_len, 16)
small = [coefficients[:b, :t], rhs[:b, :t], init_vars[:b], steps[:b, :t - 1]]
torch.autograd.backward(solve(*[x.detach().requires_grad_() for x in small]),
                        cotangent[:b, :t])
warm_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
times, cpu = [], []
for i in range(repeats + warmup):
    for x in inputs:
        x.grad = None
    t0, c0 = time.perf_counter(), time.process_time()
    # the VJP with the cotangent: no loss temporaries (two u-sized torch tensors) timed
    torch.autograd.backward(solve(*inputs), cotangent)
    if i >= warmup:
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps(dict(median_s=statistics.median(times), min_s=min(times),
                      cpu_s=statistics.median(cpu),
                      peak_mb=(peak_kb - base_kb) / 1024, solve_mb=(peak_kb - warm_kb) / 1024,
                      rss_mb=peak_kb / 1024)))
"""


def traffic_bytes(batch: int, t_len: int, s_len: int, itemsize: int) -> int:
    """Bytes a forward+backward must move at D=1, K=3, E=1, J=2: read the inputs
    (coefficients T·E·b, rhs T·E, init_vars S·D·J, steps T-1) and the output gradient
    (T·b), write u (T·b) and the input gradients (as the inputs); itemsize of the inputs."""
    b = 3
    inputs = t_len * b + t_len + s_len * 2 + (t_len - 1)
    return batch * itemsize * (2 * inputs + 2 * t_len * b)


def bandwidth(threads: int, megabytes: int = 256, repeats: int = 9) -> float:
    """Memory bandwidth, bytes read + written per second: the median of `repeats` copies
    of a `megabytes` array, the better of numpy (one thread) and torch (`threads`)."""
    import torch

    if threads > 0:
        torch.set_num_threads(threads)
    src = np.ones(megabytes << 17)  # float64: megabytes MB
    dst = np.empty_like(src)
    tsrc, tdst = torch.from_numpy(src), torch.from_numpy(dst)
    best = 0.0
    for copy in (lambda: np.copyto(dst, src), lambda: tdst.copy_(tsrc)):
        copy()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            copy()
            times.append(time.perf_counter() - start)
        best = max(best, 2 * src.nbytes / statistics.median(times))
    return best


BEFORE = {"dir": ""}  # --before: the checkout the "<method>@before" columns import


def bandwidth_in_child(threads: int) -> float:
    """`bandwidth` in a fresh interpreter: a child inherits its parent's peak resident
    memory (ru_maxrss), so the 512 MB of the copy here would hide every child's peak."""
    code = f"import sys; sys.path.insert(0, {str(ROOT / 'benchmarks')!r}); " \
        f"from solver import bandwidth; print(bandwidth({threads}))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    return float(proc.stdout.strip().splitlines()[-1])


def run_case(
    case: str, method: str, repeats: int, threads: int, published: str = ""
) -> dict | None:
    """One (case, column) in a fresh interpreter; None if it failed (e.g. out of memory).
    A column "<method>@before" runs the method of the --before checkout."""
    batch, t_len, s_len = CASES[case] if case in CASES else SWEEP[case]
    method, _, before = method.partition("@")
    code = BEFORE["dir"] if before else str(ROOT)
    # The torch sequential method's minute-long pass at T = 100,000 is its own warm-up.
    slow = method in ("sequential", "published")
    warmup = 0 if t_len > 10_000 and slow else 1
    dtype = INPUT_DTYPES.get(case, "float64")
    args = [code, batch, t_len, s_len, method, repeats, threads, warmup, published, dtype]
    args = [str(a) for a in args]
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, *args], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        print(f"  {case}/{method} failed: {proc.stderr.strip().splitlines()[-1:]}")
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    import smnn

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--methods", default=",".join([*smnn.METHODS, "dense"]))
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--sweep", default=",".join(SWEEP), help="batch-sweep cases at T=208")
    parser.add_argument("--published", default="",
                        help="folder with the published S-MNN's smnn.py: time it too")
    parser.add_argument("--before", default="",
                        help="another checkout (e.g. main): its methods as <method>@before")
    args = parser.parse_args(argv)
    cases = args.cases.split(",")
    methods = args.methods.split(",")
    if args.before:
        BEFORE["dir"] = args.before
        methods += [f"{m}@before" for m in methods if m != "dense"]
    if args.published:
        methods.append("published")
    rate = bandwidth_in_child(args.threads)
    print(f"memory bandwidth (read + write): {rate / 1e9:.1f} GB/s", flush=True)

    results: dict[tuple[str, str], dict] = {}
    for case in cases:
        for method in methods:
            if method == "dense" and (CASES[case][1] > DENSE_MAX_T or CASES[case][0] > 1):
                continue  # SST: 12,960 dense (624 × 624) systems need 80 GB
            repeats = args.repeats if CASES[case][1] <= 10_000 else max(1, args.repeats // 2)
            result = run_case(case, method, repeats, args.threads, args.published)
            if result is not None:
                results[case, method] = result
                print(
                    f"  {case:>8} {method:>10}: {result['median_s']:.4f} s "
                    f"(CPU {result['cpu_s']:.4f} s), "
                    f"+{result['peak_mb']:.0f} MB, solve +{result['solve_mb']:.0f} MB",
                    flush=True,
                )

    print("\nforward+backward, float64 (train32: float32 inputs solved in float64): median "
          "wall / CPU seconds (peak MB above baseline / above a process warmed by one small "
          "solve)")
    refs = [m for m in ("dense", "published") if m in methods]
    ours = [m for m in methods if m not in refs and "@" not in m]
    ratios = [(m, ref) for ref in refs for m in ours]
    ratios += [(m, f"{m}@before") for m in ours if f"{m}@before" in methods]
    head = [*methods, *(f"{m} vs {ref}" for m, ref in ratios), "traffic bound", "x bound"]
    print("| case | " + " | ".join(head) + " |")
    print("|---" * (1 + len(head)) + "|")
    for case in cases:
        cells = []
        for m in methods:
            r = results.get((case, m))
            cells.append(
                "—" if r is None else
                f"{r['median_s']:.4f} / {r['cpu_s']:.4f} ({r['peak_mb']:.0f} / {r['solve_mb']:.0f})"
            )
        for m, ref in ratios:
            r, base = results.get((case, m)), results.get((case, ref))
            cells.append(
                "—" if r is None or base is None else f"{base['median_s'] / r['median_s']:.1f}x"
            )
        itemsize = 4 if INPUT_DTYPES.get(case) == "float32" else 8
        bound = traffic_bytes(*CASES[case], itemsize) / rate
        fastest = min(
            (results[case, m]["median_s"] for m in ours if (case, m) in results), default=None,
        )
        cells.append(f"{1e3 * bound:.2f} ms")
        cells.append("—" if fastest is None else f"{fastest / bound:.1f}x")
        print(f"| {case} | " + " | ".join(cells) + " |")
    print("(x bound: the fastest method's median over the traffic bound)")

    print("\ngrowth with T (B=1): time and memory ratio per x10 in T (linear = 10)")
    t_cases = [c for c in cases if c.startswith("T")]
    for m in methods:
        steps = []
        for a, b in zip(t_cases, t_cases[1:], strict=False):
            ra, rb = results.get((a, m)), results.get((b, m))
            if ra and rb:
                mem = rb["solve_mb"] / ra["solve_mb"] if ra["solve_mb"] > 1 else float("nan")
                steps.append(
                    f"{a}->{b}: time x{rb['median_s'] / ra['median_s']:.1f}, mem x{mem:.1f}"
                )
        if steps:
            print(f"  {m}: " + "; ".join(steps))
    crossover(cases, args.sweep, methods, args.repeats, args.threads)
    return 0


def crossover(cases, sweep: str, methods, repeats: int, threads: int) -> None:
    """Print auto's choice per case and time every method over the batch sweep."""
    import torch

    from smnn._solve import choose_method

    cpu = torch.device("cpu")
    print("\nauto crossover (CPU): auto's choice per case")
    for case in cases:
        batch, t_len, _ = CASES[case]
        print(f"  {case}: auto -> {choose_method('auto', batch, t_len, 3, cpu)}")
    solvers = [m for m in methods if m not in ("dense", "published") and "@" not in m]
    sweep_cases = [c for c in sweep.split(",") if c]
    if not sweep_cases or len(solvers) < 2:
        return
    print("\nsweep: medians per method, the faster one (CPU time), auto's choice")
    for case in sweep_cases:
        batch, t_len, _ = SWEEP[case]
        got = {m: run_case(case, m, max(1, repeats // 2), threads) for m in solvers}
        # Decided on process CPU time: wall time on a shared machine mostly measures others.
        timed = {m: r["cpu_s"] for m, r in got.items() if r is not None}
        best = min(timed, key=timed.get) if timed else "—"
        auto = choose_method("auto", batch, t_len, 3, cpu)
        cells = ", ".join(
            f"{m} {got[m]['median_s']:.3f} s wall / {t:.3f} s cpu" for m, t in timed.items()
        )
        print(f"  {case:>7}: {cells}; faster: {best}; auto: {auto}", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
