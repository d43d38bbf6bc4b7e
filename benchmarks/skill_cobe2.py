"""Skill of the Mechanistic Identifier on real COBE-SST2 against climatology and persistence.

    python benchmarks/skill_cobe2.py /path/to/COBE2/sst.mon.mean.nc [--workdir DIR]

Train the `default` (CPU-sized) config on 1950-1984, validate (early stopping) on 1985-1989,
hindcast every month of 1990-1995 with leads 1-48 months, and score it with
pipeline.evaluation.metrics.evaluate next to the climatology, anomaly-persistence and
damped-persistence baselines (all from the 1950-1984 climatology). Prints a markdown table
per region (global ocean, Niño3.4) and writes everything under --workdir. Also reports
training samples/s and the share of a training step spent in the S-MNN solve (forward +
backward).

The store comes from the `cobe2` source (pipeline.data.ingest) through a file:// mirror folder
that links the given file under Datasets/COBE2/. `--grid-stride s`
keeps every s-th latitude and longitude (default 2: 2° sampling of the 1° grid) so that the
whole benchmark fits in about an hour of two shared CPU cores; area-weighted scores on that
sample estimate the full-grid scores.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
import xarray as xr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.data.ingest import ingest  # noqa: E402
from pipeline.data.store import open_store, write_store  # noqa: E402
from pipeline.evaluation.baselines import KINDS, baseline_forecast  # noqa: E402
from pipeline.evaluation.metrics import evaluate, index_correlation  # noqa: E402
from pipeline.model.config import config_from_dict, load_config, preset  # noqa: E402
from pipeline.model.forecast import hindcast  # noqa: E402
from pipeline.model.run import default_device, load_model  # noqa: E402
from pipeline.model.train import masked_mse, train  # noqa: E402

LEADS_SHOWN = [1, 2, 3, 6, 9, 12, 18, 24, 36, 48]
NINO_LEADS = (3, 6, 12)
REGIONS = ["global", "tropics", "nh", "sh", "nino34"]
# name -> (kind, options): every baseline, the recent mean at two windows.
BASELINE_RUNS = {
    **{kind: (kind, None) for kind in KINDS},
    "recent_mean": ("recent_mean", {"window": 36}),
    "recent_mean_120": ("recent_mean", {"window": 120}),
    "lim": ("lim", {"modes": 30, "lag": 1}),
}


def canonical_store(nc_path: Path, workdir: Path, stride: int) -> Path:
    """A canonical zarr store of the file (every `stride`-th lat/lon)."""
    full = workdir / "cobe2.zarr"
    if not full.exists():
        mirror = Path(tempfile.mkdtemp(prefix="cobe2-mirror-"))
        (mirror / "Datasets/COBE2").mkdir(parents=True)
        (mirror / "Datasets/COBE2/sst.mon.mean.nc").symlink_to(nc_path.resolve())
        ingest("cobe2", str(full), mirror=mirror.as_uri())
    if stride == 1:
        return full
    sub = workdir / f"cobe2_stride{stride}.zarr"
    if not sub.exists():
        ds = open_store(str(full))
        ds = ds.isel(lat=slice(stride // 2, None, stride), lon=slice(stride // 2, None, stride))
        write_store(ds.load(), str(sub))
    return sub


class _Mark(torch.autograd.Function):
    """Identity whose backward records when the gradient passes (solver timing)."""

    @staticmethod
    def forward(ctx, x, log, key):
        ctx.log, ctx.key = log, key
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        ctx.log.setdefault(ctx.key, []).append(time.perf_counter())
        return grad, None, None


class _TimedODE(torch.nn.Module):
    """Wraps the model's ODE layer: forward wall time, and backward time from the gradient
    reaching the solution to the last gradient leaving towards the ODE parameters."""

    def __init__(self, ode, log):
        super().__init__()
        self.ode, self.log = ode, log

    def forward(self, c, r, v, h):
        c, r, v, h = (_Mark.apply(x, self.log, "in") for x in (c, r, v, h))
        start = time.perf_counter()
        u = self.ode(c, r, v, h)
        self.log.setdefault("forward", []).append(time.perf_counter() - start)
        return _Mark.apply(u, self.log, "out")


def solver_share(run_dir: Path, store: Path, steps: int = 5) -> dict:
    """Median share of a training step (batch of the run's size) spent in the S-MNN solve."""
    from pipeline.model.windows import BlockBatchSampler, WindowDataset, plan_splits

    model, config, _ = load_model(run_dir)
    model.train()
    device = default_device()
    model.to(device)
    stats = xr.load_dataset(run_dir / "stats.nc")
    ds = open_store(str(store))
    split, _, _ = plan_splits(ds.time.values, train_end="1989-12", val_steps=60,
                              context=config.window.context)
    data = WindowDataset(store, stats, split, config.window)
    sampler = BlockBatchSampler(data, config.train.batch_size, seed=1)
    log: dict = {}
    model.ode = _TimedODE(model.ode, log)
    shares, totals = [], []
    for i, indices in enumerate(sampler):
        if i >= steps:
            break
        batch = {k: v.to(device) for k, v in data.__getitems__(indices).items()}
        log.clear()
        start = time.perf_counter()
        out = model(batch["context"], batch["covariates"])
        loss = masked_mse(out.forecast, batch["target"], batch["mask"], batch["weight"])
        loss.backward()
        total = time.perf_counter() - start
        solve = log["forward"][0] + (max(log["in"]) - min(log["out"]))
        shares.append(solve / total)
        totals.append(total)
    return {"solver_share": statistics.median(shares), "step_s": statistics.median(totals),
            "batch": config.train.batch_size}


def summary_table(table: pd.DataFrame, index_r: dict) -> list[dict]:
    """Per forecast: mean over leads 1-48 of skill vs climatology (pooled RMSE) per region,
    and the Niño3.4 index correlation at leads 3, 6, 12."""
    rows = []
    for name, r in index_r.items():
        sel = table[table.forecast == name]
        row = {"forecast": name}
        for region in ("global", "tropics", "nh", "sh"):
            row[f"skill_{region}"] = float(sel[sel.region == region].skill_vs_climatology.mean())
        for lead in NINO_LEADS:
            row[f"nino34_r_{lead}"] = float(r[r.lead == lead].r.iloc[0])
        rows.append(row)
    return rows


def summary_markdown(rows: list[dict]) -> str:
    head = ("| forecast | mean skill (global) | tropics | NH | SH | Niño3.4 r "
            + "/".join(map(str, NINO_LEADS)) + " |")
    lines = [head, "|---|---|---|---|---|---|"]
    for row in rows:
        r = " / ".join(f"{row[f'nino34_r_{lead}']:.2f}" for lead in NINO_LEADS)
        lines.append(f"| {row['forecast']} | {row['skill_global']:+.3f} | "
                     f"{row['skill_tropics']:+.3f} | {row['skill_nh']:+.3f} | "
                     f"{row['skill_sh']:+.3f} | {r} |")
    return "\n".join(lines)


def markdown(table: pd.DataFrame, region: str) -> str:
    rows = table[table.region == region]
    names = list(dict.fromkeys(rows.forecast))
    head = "| lead | " + " | ".join(
        f"{n} RMSE | {n} ACC | {n} skill vs clim" for n in names) + " |"
    lines = [head, "|" + "---|" * (1 + 3 * len(names))]
    for lead in [*LEADS_SHOWN, "mean 1-48"]:
        cells = []
        for n in names:
            sel = rows[rows.forecast == n]
            sel = sel if lead == "mean 1-48" else sel[sel.lead == lead]
            cells += [f"{sel.rmse.mean():.3f}", f"{sel.acc.mean():.3f}",
                      f"{sel.skill_vs_climatology.mean():+.3f}"]
        lines.append(f"| {lead} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path, help="COBE2 sst.mon.mean.nc")
    parser.add_argument("--workdir", type=Path, default=Path("skill-cobe2"))
    parser.add_argument("--grid-stride", type=int, default=2)
    parser.add_argument("--config", type=Path, help="TOML config (default: preset default)")
    parser.add_argument("--max-minutes", type=float, help="override train.max_minutes")
    parser.add_argument("--hindcast-end", default="1995-12", help="last issue month")
    parser.add_argument("--hindcast-every", type=int, default=1,
                        help="issue a forecast every n-th month (1: every month)")
    args = parser.parse_args(argv)
    if not args.path.exists():
        parser.error(f"no such file: {args.path}")
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    timings = {}

    t = time.perf_counter()
    store = canonical_store(args.path, work, args.grid_stride)
    timings["store_s"] = time.perf_counter() - t

    config = load_config(args.config) if args.config else preset("default")
    raw = config.model_dump()
    raw["train"]["val_steps"] = 60  # validate on 1985-1989
    if args.grid_stride > 1:
        raw["window"]["location_stride"] = 1  # the store is already sampled
    if args.max_minutes:
        raw["train"]["max_minutes"] = args.max_minutes
    config = config_from_dict(raw, source="benchmark")
    run = work / "run"
    t = time.perf_counter()
    train(store, run, config=config, train_end="1989-12", resume=(run / "last.pt").exists())
    timings["train_s"] = time.perf_counter() - t
    log = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    rates = [r["samples_per_s"] for r in log if "samples_per_s" in r]
    steps = max(r["step"] for r in log)

    t = time.perf_counter()
    model_fc = hindcast(run, store, start="1990-01", end=args.hindcast_end, leads=48,
                        every=args.hindcast_every, out=work / "model.zarr", overwrite=True)
    timings["hindcast_s"] = time.perf_counter() - t
    inits = xr.open_zarr(model_fc, consolidated=False).init_time.values
    model_name = "mechanistic_identifier"
    forecasts = {model_name: model_fc}
    t = time.perf_counter()
    for name, (kind, options) in BASELINE_RUNS.items():
        forecasts[name] = baseline_forecast(
            kind, store, work / f"{name}.zarr", inits=inits, leads=48, train_end="1984-12",
            options=options, overwrite=True)
    timings["baseline_s"] = time.perf_counter() - t
    t = time.perf_counter()
    # One evaluate: the truth, its climatology and the references are read and fitted
    # once. Its built-in climatology and persistence references stand in for the baseline
    # stores of those names; they are the same forecasts (equal scores, to the last digit).
    scored = evaluate(model_fc, store, work / "metrics", regions=REGIONS, name=model_name,
                      references={k: v for k, v in forecasts.items() if k != model_name})
    table = pd.concat([scored.table[scored.table.forecast == name] for name in forecasts])
    index_r = {name: index_correlation(path, store, region="nino34")
               for name, path in forecasts.items()}
    timings["evaluate_s"] = time.perf_counter() - t
    table.to_csv(work / "skill_table.csv", index=False, float_format="%.5g")
    summary_rows = summary_table(table, index_r)
    share = solver_share(run, store)
    summary = {
        "train_steps": steps,
        "train_minutes": timings["train_s"] / 60,
        "samples_per_s_median": statistics.median(rates) if rates else None,
        **share,
        "device": str(default_device()),
        "torch_threads": torch.get_num_threads(),
        "timings_s": timings,
        "forecasts": summary_rows,
    }
    (work / "summary.json").write_text(json.dumps(summary, indent=1))
    for region in ("global", "nino34"):
        print(f"\n### {region}\n")
        print(markdown(table, region))
    print("\n### summary (mean skill vs climatology over leads 1-48; Niño3.4 index r)\n")
    print(summary_markdown(summary_rows))
    print("\n" + json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
