"""Verification of the forecast archive once the truth is observed, and its history.

Each archived entry's leads are scored once, by the first verification that finds their
valid times in the truth store, with `pipeline.evaluation.metrics.evaluate` (model,
climatology and anomaly persistence from the truth) and, for every other kind in
`pipeline.evaluation.baselines.KINDS`, that baseline issued at the same time with the entry's
climatology period. The rows go to the archive's history
(`pipeline.evaluation.archive.add_verification`); `summary` and `skill_figure` read it.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from pipeline.data.store import open_store
from pipeline.evaluation import archive as arch
from pipeline.evaluation import baselines
from pipeline.evaluation.metrics import BUILT_IN_REFERENCES, evaluate

__all__ = ["pending", "score_entry", "skill_figure", "summary", "verify_archive"]

SCORES = ["rmse", "bias", "acc", "skill_vs_climatology", "skill_vs_persistence"]


def _truth(truth):
    """The truth as a loaded Dataset (read once per verification), from a path or Dataset."""
    return (truth if isinstance(truth, xr.Dataset) else open_store(str(truth))).load()


def pending(archive, truth) -> list[tuple[dict, list[int]]]:
    """(entry, leads) still to verify: leads whose valid time the truth store (path, URL or
    Dataset) now holds and that no verification has scored yet."""
    times = (truth if isinstance(truth, xr.Dataset) else open_store(str(truth)))["time"].values
    done = arch.verified_leads(archive)
    out = []
    for entry in arch.entries(archive):
        seen = arch.observed(entry["valid_times"], times)
        already = done.get((entry["issue_time"], int(entry["version"])), set())
        leads = [int(n) for n, ok in zip(entry["leads"], seen, strict=True)
                 if ok and int(n) not in already]
        if leads:
            out.append((entry, leads))
    return out



def score_entry(archive, entry: dict, leads: list[int], truth, *, kinds=None,
                work_dir=None) -> pd.DataFrame:
    """Scores of one entry at `leads` against the truth: the model and the baselines (`kinds`,
    default `baselines.KINDS`), per region and lead, as history rows."""
    fc = arch.open_entry(archive, entry)
    fc = fc.sel(lead=[int(n) for n in leads])
    kinds = tuple(baselines.KINDS if kinds is None else kinds)
    start, end = entry.get("climatology_start"), entry.get("climatology_end")
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        references = {}
        for kind in kinds:
            if kind in BUILT_IN_REFERENCES:  # evaluate's own, same truth and period
                continue
            references[kind] = baselines.baseline_forecast(  # in memory: scored, then gone
                kind, truth, None, inits=fc.init_time.values,
                leads=[int(n) for n in leads], train_start=start, train_end=end)
        rows = evaluate(fc, truth, Path(tmp) / "model", climatology_start=start,
                        climatology_end=end, references=references).table
    keep = set(kinds) | {str(fc.attrs.get("model", "forecast"))}
    rows = rows[rows["forecast"].isin(keep)].copy()
    valid = dict(zip(entry["leads"], entry["valid_times"], strict=True))
    rows["issue_time"] = entry["issue_time"]
    rows["version"] = int(entry["version"])
    rows["run"] = entry["run"]
    rows["model_version"] = entry["model_version"]
    rows["valid_time"] = [valid[int(n)] for n in rows["lead"]]
    return rows


def verify_archive(archive, truth, *, kinds=None, now: dt.datetime | None = None,
                   work_dir=None) -> pd.DataFrame:
    """Score every pending (entry, lead) and commit the rows to the history; returns the
    rows added (empty when nothing new is observed)."""
    stamp = (now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds")
    truth = _truth(truth)
    frames = []
    for entry, leads in pending(archive, truth):
        rows = score_entry(archive, entry, leads, truth, kinds=kinds, work_dir=work_dir)
        rows["verified_at"] = stamp
        frames.append(rows)
    if not frames:
        return pd.DataFrame(columns=arch.HISTORY_KEY)
    rows = pd.concat(frames, ignore_index=True)
    columns = [*arch.HISTORY_KEY, "valid_time", "run", "model_version", *SCORES, "n_init",
               "verified_at"]
    rows = rows[[c for c in columns if c in rows.columns]]
    arch.add_verification(archive, rows)
    return rows


def summary(history: pd.DataFrame, *, region: str | None = None) -> pd.DataFrame:
    """Mean scores per model version, forecast, region and lead, with the number of issue
    times verified (`n`)."""
    if history.empty:
        return pd.DataFrame(columns=["model_version", "forecast", "region", "lead", "n",
                                     "rmse", "skill_vs_climatology", "skill_vs_persistence"])
    table = history if region is None else history[history["region"] == region]
    grouped = table.groupby(["model_version", "forecast", "region", "lead"], sort=True)
    out = grouped[["rmse", "acc", "skill_vs_climatology", "skill_vs_persistence"]].mean()
    out.insert(0, "n", grouped["issue_time"].nunique())
    return out.reset_index()


def skill_figure(history: pd.DataFrame, *, region: str = "global",
                 metric: str = "skill_vs_climatology"):
    """Skill against issue time, one line per forecast and lead (model versions marked by
    vertical lines where a new run took over): a matplotlib Figure (no pyplot state)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 4), layout="constrained")
    ax = figure.add_subplot()
    table = history[history["region"] == region] if len(history) else history
    if table.empty:
        ax.text(0.5, 0.5, "nothing verified yet", ha="center", va="center",
                transform=ax.transAxes)
    else:
        table = table.assign(issue=pd.to_datetime(table["issue_time"]))
        leads = sorted(table["lead"].unique())
        styles = ["-", "--", ":", "-."]
        for f_index, (name, part) in enumerate(table.groupby("forecast", sort=True)):
            for l_index, lead in enumerate(leads):
                line = part[part["lead"] == lead].sort_values("issue")
                if line.empty:
                    continue
                ax.plot(line["issue"], line[metric], styles[l_index % len(styles)],
                        color=f"C{f_index}", marker=".",
                        label=f"{name}, lead {lead}")
        starts = table.groupby("model_version")["issue"].min().sort_values()
        for version, start in list(starts.items())[1:]:
            ax.axvline(start, color="0.6", linewidth=0.8)
            ax.annotate(str(version), (start, 1.0), xycoords=("data", "axes fraction"),
                        fontsize=6, rotation=90, va="top", color="0.4")
        ax.axhline(0.0, color="k", linewidth=0.5)
        ax.legend(fontsize=6, ncols=max(1, int(np.ceil(len(leads) / 4))), loc="best")
    ax.set_xlabel("issue time")
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_title(f"verification history, {region}")
    return figure
