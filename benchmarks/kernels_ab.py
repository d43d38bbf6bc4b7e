"""The compiled solver's kernels from two checkouts, alternately in one process.

    python benchmarks/kernels_ab.py --before DIR [--cases sst,train32] [--pairs 21]
                                    [--threads 2]

`solver.py --before` times each checkout in its own subprocess, one after the other; on a
shared machine the load and even where a process's arrays land differ between the two,
and identical code has measured 0.7-1.5x apart that way. Here one process loads
`smnn/_kernels.py` from both this checkout and DIR (numba compiles or loads each from its
own cache), checks that both give bit-identical x and input gradients, and then times
forward + backward of each (fresh outputs every pass, as a solve allocates them, split over
`--threads` as `smnn` does) in alternating pairs. Prints the median of each, their ratio
and the median and range of the per-pair ratios. float64, D=1, K=3, E=1, J=2; cases as in
`solver.py`: sst (B=12,960, T=208, S=10), train32's shape (B=512, T=54, S=6) in float64.
The kernels' arguments must be the same in both checkouts (true since issue 16's float32
path, e159394).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from solver import CASES as SOLVER_CASES  # noqa: E402  (B, T, S) per case name

CASES = {name: SOLVER_CASES[name] for name in ("sst", "train32")}


def load_kernels(checkout: Path):
    """`smnn/_kernels.py` of a checkout as a module of its own (it imports only numpy and
    numba, so it loads beside this checkout's)."""
    path = checkout / "smnn" / "_kernels.py"
    if not path.is_file():
        raise SystemExit(
            f"--before: expected a checkout with smnn/_kernels.py, received {checkout}")
    # A name fixed by the path, and the module in sys.modules: numba's cache refers to a
    # function's module by name, and a second run that loads the cached kernels of a
    # module it cannot import fails ("No module named '<dynamic>'").
    name = "kernels_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def problem(batch: int, t_len: int, s_len: int):
    """Flattened float64 inputs and a cotangent, as `solver.py` draws them."""
    rng = np.random.default_rng(0)
    c = rng.standard_normal((batch, t_len * 3))
    c[:, 0::3] += 1.5
    r = rng.standard_normal((batch, t_len))
    v = rng.standard_normal((batch, s_len * 2))
    h = 0.05 + 0.2 * rng.random((batch, t_len - 1))
    return (c, r, v, h), rng.standard_normal((batch, t_len * 3))


def forward_backward(module, inputs, cotangent, constants, shape, tag):
    """x and the input gradients from one checkout's kernels, in fresh arrays as a solve
    allocates them, split over the threads as `smnn` does."""
    from smnn import _compiled

    consts, order_gram, weights = constants
    batch, t_len = inputs[0].shape[0], shape[0]
    kept = (np.zeros((0, 1)), np.zeros((0, 1)))  # recomputed, as at these shapes
    x = np.empty((batch, t_len * 3))
    grads = tuple(np.empty_like(a) for a in inputs)
    # one right-hand side per matrix; uint8 status codes (older checkouts write bools there)
    _compiled._split(module.forward, batch, t_len, 1, *inputs, consts, weights, shape, False,
                     x, np.empty((0, t_len * 3)), np.zeros(batch, np.uint8), kept, tag)
    _compiled._split(module.backward, batch, t_len, 1, *inputs, x, cotangent, consts,
                     order_gram, weights, shape, False, kept, grads, tag)
    return x, grads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", required=True, type=Path, help="the reference checkout")
    parser.add_argument("--cases", default="sst,train32")
    parser.add_argument("--pairs", type=int, default=21, help="alternating pairs per case")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    cases = args.cases.split(",")
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        raise SystemExit(f"--cases: expected names from {sorted(CASES)}, received {unknown}")

    import torch

    import smnn
    from smnn import _compiled
    from smnn._validate import pivot_tolerance

    smnn.set_num_threads(args.threads)
    kernels = {"now": load_kernels(ROOT), "before": load_kernels(args.before.resolve())}
    consts, order_gram = _compiled._constants(3, False, torch.float64, 1.0)
    constants = (consts, order_gram, (1.0, 1.0, 1.0, pivot_tolerance(torch.float64, 3, 1)))
    for case in cases:
        batch, t_len, s_len = CASES[case]
        inputs, cotangent = problem(batch, t_len, s_len)
        shape = (t_len, 1, 1, 3, s_len, 2)
        run = (inputs, cotangent, constants, shape, _compiled._tag(shape, False, 8, batch))
        results = {name: forward_backward(module, *run) for name, module in kernels.items()}
        (x_now, g_now), (x_before, g_before) = results["now"], results["before"]
        identical = np.array_equal(x_now, x_before) and all(
            np.array_equal(a, b) for a, b in zip(g_now, g_before, strict=True))
        times = {name: [] for name in kernels}
        for _ in range(args.pairs):
            for name, module in kernels.items():
                start = time.perf_counter()
                forward_backward(module, *run)
                times[name].append(time.perf_counter() - start)
        now, before = (statistics.median(times[k]) for k in ("now", "before"))
        pairs = [b / a for a, b in zip(times["now"], times["before"], strict=True)]
        print(f"{case} (B={batch}, T={t_len}), {args.threads} threads, {args.pairs} pairs: "
              f"now {now * 1e3:.2f} ms, before {before * 1e3:.2f} ms, x{before / now:.2f} "
              f"(per pair: median x{statistics.median(pairs):.2f}, "
              f"{min(pairs):.2f}-{max(pairs):.2f}); results "
              f"{'bit-identical' if identical else 'DIFFER'}")


if __name__ == "__main__":
    main()
