"""What the compiled solve spends around its kernels, measured by switching it off.

    python benchmarks/solve_overheads.py [--pairs 21] [--threads 2] [--batch 12960]

At the Mechanistic Identifier's shape (B systems, T = 208, K = 3, S = 10, J = 2, float64,
forward + backward with a random cotangent, gradients of all four inputs), alternately in
one process (separate processes of the same code differ by up to 1.5x on shared
machines): `now`, as `smnn` runs, against `before`, with the two savings undone:
every result allocated afresh (`smnn._buffers` off) and the up-front pass over the
coefficients, rhs and initial values for inf and NaN made again (`smnn._ode.KERNEL_DETECTED`
empty). Prints both medians and the median and range of the per-pair ratios.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import smnn  # noqa: E402
from smnn import _buffers, _ode  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=21)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=12_960)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    b, t, s = args.batch, 208, 10
    coefficients = torch.randn(b, t, 1, 1, 3, generator=g, dtype=torch.float64)
    coefficients[..., 0] += 1.5
    inputs = [
        coefficients,
        torch.randn(b, t, 1, generator=g, dtype=torch.float64),
        torch.randn(b, s, 1, 2, generator=g, dtype=torch.float64),
        0.05 + 0.2 * torch.rand(b, t - 1, generator=g, dtype=torch.float64),
    ]
    inputs = [x.requires_grad_() for x in inputs]
    cotangent = torch.randn(b, t, 1, 3, generator=g, dtype=torch.float64)
    saved = _buffers.MIN_BYTES, _ode.KERNEL_DETECTED

    def run(mode: str) -> float:
        if mode == "now":
            _buffers.MIN_BYTES, _ode.KERNEL_DETECTED = saved
        else:
            _buffers.MIN_BYTES, _ode.KERNEL_DETECTED = 1 << 62, ()
            smnn.empty_cache()
        for x in inputs:
            x.grad = None
        torch.autograd.backward(smnn.ode_forward(*inputs, method="compiled"), cotangent)
        for x in inputs:  # a second, timed pass in this mode (the first refills the cache)
            x.grad = None
        start = time.perf_counter()
        torch.autograd.backward(smnn.ode_forward(*inputs, method="compiled"), cotangent)
        return time.perf_counter() - start

    run("now")
    times: dict[str, list[float]] = {"now": [], "before": []}
    for i in range(args.pairs):
        for mode in ("now", "before") if i % 2 else ("before", "now"):
            times[mode].append(run(mode))
    ratios = [a / b for a, b in zip(times["before"], times["now"], strict=True)]
    now, before = (statistics.median(times[m]) * 1e3 for m in ("now", "before"))
    print(f"B={b}, T={t}, {args.threads} threads, {args.pairs} pairs: now {now:.1f} ms, "
          f"before {before:.1f} ms, x{before / now:.2f} (per pair: median "
          f"x{statistics.median(ratios):.2f}, {min(ratios):.2f}-{max(ratios):.2f})")


if __name__ == "__main__":
    main()
