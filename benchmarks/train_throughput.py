"""Training throughput of the default config, before and after, with a per-stage profile.

    python benchmarks/train_throughput.py [--before /work/main] [--steps 30] [--rounds 3]
                                          [--threads 2] [--resolution 2.0]

A full training step as `pipeline.train` runs it (data: sampler indices -> windows ->
tensors; the model's encoder and decoders; the S-MNN solve; the loss; backward; gradient
clipping and AdamW), batch and model of the `default` config, on a synthetic monthly store
held in memory (1950-1989, `--resolution` degrees). Each checkout (`--before`, default
/work/main, the code as on main, and this one) runs in its own subprocess with its own
PYTHONPATH, `--rounds` times alternately, so both see the same machine load; each run does
three warm-up steps and `--steps` timed ones. Prints samples/s (median over the runs of the
per-run median step) and the median seconds per stage, and the after/before ratio; also
samples per process-CPU second (all threads), steadier where others share the machine.
`--threads` sets torch's threads in each process; a checkout whose Trainer sets its own
(`train.network_threads`, `train.solver_threads`) then trains with those, as
`sstcast train` does (the table's first lines print the torch threads each run used).

Stages: the solve's forward is timed around `model.ode`; its backward is the interval from
the gradient reaching u to the last gradient leaving for the ODE inputs (marks in the
autograd graph), the rest of backward is "backward (network)".
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = ["data", "network forward + loss", "solve forward", "solve backward",
          "backward (network)", "clip + optimiser"]

CHILD = r"""
import json, statistics, sys, tempfile, time
import numpy as np, torch
steps, threads, resolution = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
torch.set_num_threads(threads)
import smnn
from pipeline.data.synthetic import synthetic_dataset
from pipeline.model.config import Config
from pipeline.model.train import Trainer, _loss, _to

# The real Trainer builds the data, the model and the optimiser, so this measures what
# `sstcast train` runs; its loop is unrolled here only to time the stages.
config = Config()
ds = synthetic_dataset("1950-01", "1989-12", resolution=resolution)
trainer = Trainer(ds, __import__("pathlib").Path(tempfile.mkdtemp()), config)
model, optimiser, t = trainer.model, trainer.optimiser, config.train
try:  # the thread counts Trainer.run trains with, where the checkout sets them
    from pipeline.model.train import _threads
    threads_set = _threads(t, 1)  # kept: a collected generator would restore them
    threads_set.__enter__()
except ImportError:
    pass
log = {}

class Mark(torch.autograd.Function):
    # identity; records when the gradient passes through it
    @staticmethod
    def forward(ctx, x, key):
        ctx.key = key
        return x.view_as(x)
    @staticmethod
    def backward(ctx, g):
        log.setdefault(ctx.key, []).append(time.perf_counter())
        return g, None

class TimedODE(torch.nn.Module):
    def __init__(self, ode):
        super().__init__()
        self.ode = ode
    def forward(self, *xs):
        xs = [Mark.apply(x, "in") if x.requires_grad else x for x in xs]
        start = time.perf_counter()
        u = self.ode(*xs)
        log["solve forward"] = time.perf_counter() - start
        return Mark.apply(u, "out")

model.ode = TimedODE(model.ode)
from pipeline.model.windows import BlockBatchSampler, collate_batch
sampler = BlockBatchSampler(trainer.train_data, t.batch_size, seed=t.seed)
loader = torch.utils.data.DataLoader(trainer.train_data, batch_sampler=sampler,
                                     collate_fn=collate_batch, num_workers=t.num_workers)
try:  # as Trainer._epoch reads them: ahead, in a thread, where the checkout has that
    from pipeline.model.prefetch import prefetched
    loader = loader if t.num_workers else prefetched(loader)
except ImportError:
    pass
loader = iter(loader)
rows = []
for i in range(steps + 3):
    log.clear()
    c0 = time.process_time()
    t0 = time.perf_counter()
    batch = _to(next(loader), trainer.device)
    t1 = time.perf_counter()
    loss = _loss(model, batch, config.model.align_weight)
    float(loss.detach())
    t3 = time.perf_counter()
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    t4 = time.perf_counter()
    torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
    optimiser.step()
    t5 = time.perf_counter()
    solve_bwd = max(log["in"]) - min(log["out"])
    if i >= 3:
        rows.append({"data": t1 - t0, "network forward + loss": t3 - t1 - log["solve forward"],
                     "solve forward": log["solve forward"],
                     "solve backward": solve_bwd, "backward (network)": t4 - t3 - solve_bwd,
                     "clip + optimiser": t5 - t4, "step": t5 - t0,
                     "step CPU": time.process_time() - c0})
med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
print(json.dumps(dict(stages=med, batch=t.batch_size, smnn=smnn.__file__,
                      torch_threads=torch.get_num_threads(),
                      t_len=model.t_len, solve_dtype=str(model.ode.ode.solve_dtype))))
"""


def run(root: Path, steps: int, threads: int, resolution: float) -> dict:
    env = dict(os.environ, PYTHONPATH=str(root), NUMBA_NUM_THREADS=str(threads))
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(steps), str(threads), str(resolution)],
        capture_output=True, text=True, cwd=root, env=env, check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{root}: {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", type=Path, default=Path("/work/main"),
                        help="checkout with the code to compare against (main)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--resolution", type=float, default=2.0)
    args = parser.parse_args(argv)
    runs: dict[str, list[dict]] = {"before": [], "after": []}
    for _ in range(args.rounds):
        for name, root in (("before", args.before), ("after", ROOT)):
            got = run(root, args.steps, args.threads, args.resolution)
            runs[name].append(got)
            print(f"  {name}: {got['batch'] / got['stages']['step']:.0f} samples/s "
                  f"({got['smnn']}, torch threads {got['torch_threads']})", flush=True)
    first = runs["after"][0]
    print(f"\ndefault config: batch {first['batch']}, T = {first['t_len']}, "
          f"{args.threads} threads, {args.rounds} runs x {args.steps} steps each")
    keys = [*STAGES, "step", "step CPU"]
    med = {name: {k: statistics.median(r["stages"][k] for r in rs) for k in keys}
           for name, rs in runs.items()}
    print("| stage | before ms | after ms | before share | after share |")
    print("|---|---|---|---|---|")
    for k in keys:
        b, a = med["before"][k], med["after"][k]
        print(f"| {k} | {1e3 * b:.1f} | {1e3 * a:.1f} | "
              f"{b / med['before']['step']:.0%} | {a / med['after']['step']:.0%} |")
    sps = {name: first["batch"] / m["step"] for name, m in med.items()}
    cps = {name: first["batch"] / m["step CPU"] for name, m in med.items()}
    print(f"\nsamples/s: before {sps['before']:.0f}, after {sps['after']:.0f}, "
          f"x{sps['after'] / sps['before']:.2f}; per CPU-second (steadier on a shared "
          f"machine): before {cps['before']:.0f}, after {cps['after']:.0f}, "
          f"x{cps['after'] / cps['before']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
