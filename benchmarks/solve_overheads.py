"""The compiled solve with and without the up-front pass over its inputs, alternately.

    python benchmarks/solve_overheads.py [--rounds 4] [--passes 12] [--threads 2]
                                         [--batch 12960]

At the Mechanistic Identifier's shape (B systems, T = 208, K = 3, S = 10, J = 2, float64,
forward + backward with a random cotangent, gradients of all four inputs): `now`, as
`smnn` runs (the kernels test the step sizes, pivots and solutions, and the inputs are
looked through only after a failed solve), against `before`, with the up-front checks for
inf, NaN and steps not > 0 made again (`smnn._ode.SELF_CHECKING` empty). Each round runs
one fresh process per setting, one after the other, so both see the same machine load;
a process times `--passes` passes and keeps the median of those after the first three
(a fresh process's first passes touch new memory and run up to 3x slower). Fresh
processes, not alternation inside one: memory effects (which pages a result gets) differ
between the two, and in-process alternation once measured a gain that fresh processes,
the way a solve runs, showed to be a loss (benchmarks/README.md, 2026-12-08).
Prints both medians over the rounds and the median and range of the per-round ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, statistics, sys, time
sys.path.insert(0, sys.argv[1])
import torch
import smnn
from smnn import _ode
mode, threads, batch, passes = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
if mode == "before":
    _ode.SELF_CHECKING = set()
torch.set_num_threads(threads)
g = torch.Generator().manual_seed(0)
t, s = 208, 10
coefficients = torch.randn(batch, t, 1, 1, 3, generator=g, dtype=torch.float64)
coefficients[..., 0] += 1.5
inputs = [
    coefficients,
    torch.randn(batch, t, 1, generator=g, dtype=torch.float64),
    torch.randn(batch, s, 1, 2, generator=g, dtype=torch.float64),
    0.05 + 0.2 * torch.rand(batch, t - 1, generator=g, dtype=torch.float64),
]
inputs = [x.requires_grad_() for x in inputs]
cotangent = torch.randn(batch, t, 1, 3, generator=g, dtype=torch.float64)
times = []
for _ in range(passes):
    for x in inputs:
        x.grad = None
    start = time.perf_counter()
    torch.autograd.backward(smnn.ode_forward(*inputs, method="compiled"), cotangent)
    times.append(time.perf_counter() - start)
print(json.dumps(statistics.median(times[3:])))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--passes", type=int, default=12)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=12_960)
    args = parser.parse_args()
    if args.passes < 4:
        parser.error(f"--passes: expected at least 4 (3 untimed), received {args.passes}")
    times: dict[str, list[float]] = {"now": [], "before": []}
    for i in range(args.rounds):
        for mode in ("now", "before") if i % 2 else ("before", "now"):
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(ROOT), mode, str(args.threads),
                 str(args.batch), str(args.passes)],
                check=True, capture_output=True, text=True,
            ).stdout
            times[mode].append(json.loads(out.splitlines()[-1]))
    ratios = [a / b for a, b in zip(times["before"], times["now"], strict=True)]
    now, before = (statistics.median(times[m]) * 1e3 for m in ("now", "before"))
    print(f"B={args.batch}, T=208, {args.threads} threads, {args.rounds} rounds of "
          f"{args.passes} passes: now {now:.1f} ms, before {before:.1f} ms, "
          f"x{before / now:.2f} (per round: median x{statistics.median(ratios):.2f}, "
          f"{min(ratios):.2f}-{max(ratios):.2f})")


if __name__ == "__main__":
    main()
