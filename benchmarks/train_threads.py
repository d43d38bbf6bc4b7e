"""Training step time of the default config under thread settings, alternately in one process.

    python benchmarks/train_threads.py [--settings 1,2 2,1 2,2] [--rounds 12] [--steps 17]
                                       [--resolution 2.0]

Each setting is `network_threads,solver_threads` (torch's threads and the compiled solve's,
as `train.network_threads` and `train.solver_threads` set them), optionally followed by
`,bf16`: the encoder and decoders then run under torch's bfloat16 autocast (a measurement
only: the model has no such option). Every round runs each setting in turn for 3 warm-up and
`--steps` timed steps of a full training step as `Trainer` runs it (the next batch read by
the background thread, the model, the solve, backward, clipping, AdamW), so every setting
sees the same machine load; different processes of the same code differ by up to 1.5x on
these shared machines. Prints per setting the median step and solve-forward times and the
median over rounds of the step time relative to the first setting's in the same round.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import smnn  # noqa: E402
from pipeline.data.synthetic import synthetic_dataset  # noqa: E402
from pipeline.model.config import Config  # noqa: E402
from pipeline.model.prefetch import prefetched  # noqa: E402
from pipeline.model.train import Trainer, _loss, _to  # noqa: E402
from pipeline.model.windows import BlockBatchSampler, collate_batch  # noqa: E402


def parse_setting(text: str) -> tuple[int, int, bool]:
    """'2,1' or '1,2,bf16' -> (network threads, solver threads, autocast)."""
    parts = text.split(",")
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "bf16"):
        raise argparse.ArgumentTypeError(
            f"setting: expected 'NETWORK,SOLVER' or 'NETWORK,SOLVER,bf16', received {text!r}"
        )
    try:
        network, solver = int(parts[0]), int(parts[1])
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"setting: expected integer thread counts, received {text!r}") from None
    if network < 1 or solver < 1:
        raise argparse.ArgumentTypeError(f"setting: expected threads >= 1, received {text!r}")
    return network, solver, len(parts) == 3


class _TimedSolve(torch.nn.Module):
    """The model's ODE layer, recording each forward's wall time."""

    def __init__(self, ode: torch.nn.Module, times: list[float]):
        super().__init__()
        self.ode, self.times = ode, times

    def forward(self, *inputs):
        start = time.perf_counter()
        u = self.ode(*inputs)
        self.times.append(time.perf_counter() - start)
        return u


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--settings", nargs="+", type=parse_setting,
                        default=[parse_setting(s) for s in ("1,2", "2,1", "2,2")])
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--steps", type=int, default=17)
    parser.add_argument("--resolution", type=float, default=2.0)
    args = parser.parse_args(argv)

    config = Config()
    ds = synthetic_dataset("1950-01", "1989-12", resolution=args.resolution)
    trainer = Trainer(ds, Path(tempfile.mkdtemp()), config)
    model, optimiser, t = trainer.model, trainer.optimiser, config.train
    solve_times: list[float] = []
    model.ode = _TimedSolve(model.ode, solve_times)
    autocast = [False]
    for name in ("encode", "decode"):  # the network's two halves; the solve stays outside
        method = getattr(model, name)

        def network_half(*inputs, _method=method):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast[0]):
                out = _method(*inputs)
            return tuple(o.float() for o in out) if isinstance(out, tuple) else out.float()

        setattr(model, name, network_half)
    sampler = BlockBatchSampler(trainer.train_data, t.batch_size, seed=t.seed)
    loader = torch.utils.data.DataLoader(trainer.train_data, batch_sampler=sampler,
                                         collate_fn=collate_batch)

    def batches():
        while True:
            yield from prefetched(loader)

    source = batches()

    def step() -> None:
        batch = _to(next(source), trainer.device)
        loss = _loss(model, batch, config.model.align_weight)
        float(loss.detach())
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
        optimiser.step()

    steps = {s: [] for s in args.settings}
    solves = {s: [] for s in args.settings}
    for _ in range(args.rounds):
        for setting in args.settings:
            torch.set_num_threads(setting[0])
            smnn.set_num_threads(setting[1])
            autocast[0] = setting[2]
            for _ in range(3):
                step()
            solve_times.clear()
            times = []
            for _ in range(args.steps):
                start = time.perf_counter()
                step()
                times.append(time.perf_counter() - start)
            steps[setting].append(statistics.median(times))
            solves[setting].append(statistics.median(solve_times))
    first = args.settings[0]
    print(f"default config, batch {t.batch_size}; {args.rounds} rounds x {args.steps} steps")
    print("| network threads | solver threads | autocast | step ms | solve forward ms | "
          "step / first setting's |")
    print("|---|---|---|---|---|---|")
    for setting in args.settings:
        ratio = statistics.median(a / b for a, b in zip(steps[setting], steps[first], strict=True))
        print(f"| {setting[0]} | {setting[1]} | {'bf16' if setting[2] else '-'} | "
              f"{1e3 * statistics.median(steps[setting]):.2f} | "
              f"{1e3 * statistics.median(solves[setting]):.2f} | {ratio:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
