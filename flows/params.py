"""Typed, frozen parameters of the sstcast flows and commands.

Prefect renders these pydantic models as the parameter form of a deployment in the UI, and
validates what a schedule, `prefect deployment run` or the CLI passes in; the `sstcast`
command line is generated from them (flows/cli_options.py), one option per field, so a
command and its flow take the same names and refuse the same values. Everything here is a
path, store URL (any fsspec URL: file://, s3://, gs://), date or name: flows pass these
between tasks, never datasets, so cache keys stay stable.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from pipeline.model.config import MAX_STEPS


def _date(value):
    """A date, or its text YYYY-MM-DD or YYYY-MM (the first of the month, as stores date
    monthly steps)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if re.fullmatch(r"\d{4}-\d{2}", text):
        text += "-01"
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        try:
            return dt.date.fromisoformat(text)
        except ValueError:  # a month 13 or a 31 April
            pass
    raise ValueError(f"expected a date YYYY-MM[-DD], got {value!r}")


# Every date parameter: a date picker in Prefect's form, YYYY-MM[-DD] on the command line.
Date = Annotated[dt.date, BeforeValidator(_date)]


def _check_source(source: str, mirror: str | None, file: str | None = None,
                  variable: str | None = None) -> None:
    """A catalogue name, and no mirror for a locally generated source: refused here, before a
    run starts, rather than by the fetch task."""
    from pipeline.data.sources import get_source

    # ValueError naming the argument, the expected and the received
    entry = get_source(source, file=file, variable=variable)
    if entry.synthetic and mirror is not None:
        raise ValueError(f"mirror: expected none for the synthetic source {source!r} (it is "
                         f"generated locally), got {mirror!r}; serve synthetic files from a "
                         "mirror under the product's name, e.g. source=cobe2")


class _Params(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    @model_validator(mode="after")
    def _source(self):
        if "source" in type(self).model_fields:
            _check_source(self.source, self.mirror, getattr(self, "file", None),
                          getattr(self, "variable", None))
        return self

    @field_validator("grid", "synthetic_resolution", check_fields=False)
    @classmethod
    def _degrees(cls, value):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise ValueError(f"expected a positive number of degrees, got {value!r}")
        return value

    @model_validator(mode="after")
    def _span(self):
        # Every start/end pair here is refused when reversed, rather than being a no-op run.
        for first, last in (("start", "end"), ("forecast_start", "forecast_end")):
            a, b = getattr(self, first, None), getattr(self, last, None)
            if a is not None and b is not None and b < a:
                raise ValueError(f"{first}, {last}: expected {first} <= {last}, got "
                                 f"{first}={a} > {last}={b}")
        return self


class IngestParameters(_Params):
    """Pull a source's files and append them to the canonical zarr store."""

    source: str = Field("synthetic", description="catalogue name: synthetic, cobe2, "
                        "oisst-v2-weekly, oisst-v2.1-daily, ersst-v5, hadisst, local-cf")
    store: str = Field(..., description="zarr store URL or path of the canonical store")
    mirror: str | None = Field(None, description="base URL override: http(s)://, file:// "
                               "or a folder with the provider's layout")
    file: str | None = Field(None, description="the local-cf source's CF netCDF file (a path, "
                             "http(s):// or file:// URL): any regular lat/lon SST with CF "
                             "attributes, e.g. a model run or CMIP6 tos")
    variable: str | None = Field(None, description="the SST variable of `file` when it holds "
                                 "several (default: the one with standard_name "
                                 "sea_surface_temperature)")
    start: Date | None = Field(None, description="first date to fetch, YYYY-MM[-DD] "
                               "(default: source's)")
    end: Date | None = Field(None, description="last date to fetch, YYYY-MM[-DD] "
                             "(default: latest)")
    cache_dir: str | None = Field(None, description="download folder (default: `sstcast "
                                  "ingest` ~/.cache/sstcast/<source>; the ingest flow "
                                  "<store>.downloads beside a local store)")
    grid: float | None = Field(None, description="regrid to this resolution in degrees "
                               "(area-weighted)")
    freq: Literal["daily", "weekly", "monthly"] | None = Field(
        None, description="resample a daily product to weekly or monthly means")
    units: str | None = Field(None, description="SST units of files that declare none "
                              "(degC or K); such files are refused otherwise")
    synthetic_resolution: float | None = Field(None, description="grid in degrees of the "
                                               "synthetic sources (default 1)")

    def download_dir(self) -> str:
        """Where fetched files go: `cache_dir`, or `<store>.downloads` for a local store."""
        if self.cache_dir:
            return self.cache_dir
        if "://" in self.store and not self.store.startswith("file://"):
            return str(Path.home() / ".cache" / "sstcast" / self.source)
        return self.store.removeprefix("file://").rstrip("/") + ".downloads"


class TrainParameters(_Params):
    """Train the Mechanistic Identifier on a store into a run folder."""

    store: str = Field(..., description="canonical zarr store URL or path")
    run_dir: str = Field(..., description="folder for checkpoints and the run's config")
    new_run: bool = Field(False, description="train into a new time-stamped subfolder of "
                          "run_dir (scheduled retraining; forecasts pick the newest)")
    config: str = Field("default", description="preset name (default, paper) or TOML path")
    resume: bool = Field(False, description="continue the run in run_dir from last.pt")
    train_end: Date | None = Field(None, description="last date used for training "
                                   "(default: all data)")

    def run_folder(self) -> str:
        """Where this run trains: `run_dir`, or with `new_run` a new subfolder of it named by
        the UTC time (runs sort by age; forecasts take the newest)."""
        if not self.new_run:
            return self.run_dir
        return str(Path(self.run_dir) / dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ"))


class ForecastParameters(_Params):
    """Issue forecasts from a trained run, score them and draw the maps."""

    run_dir: str = Field(..., description="trained run folder, or a folder of runs (the "
                         "newest trained one is used)")
    store: str = Field(..., description="canonical zarr store the forecast starts from")
    out_dir: str = Field(..., description="folder for the forecast stores, metrics, maps")
    start: Date | None = Field(None, description="first issue time (default: latest)")
    end: Date | None = Field(None, description="last issue time (default: latest)")
    leads: int | None = Field(None, ge=1, le=MAX_STEPS,
                              description="leads 1..N (default: model horizon)")
    truth: str | None = Field(None, description="truth store to score against (default: "
                              "the input store, when it covers the valid times)")
    baselines: tuple[str, ...] = Field(
        ("climatology", "persistence", "damped_persistence", "lim"),
        description="baseline forecasts scored and drawn alongside "
        "(pipeline.evaluation.baselines.KINDS)")
    train_end: Date | None = Field(None, description="end of the baselines' fitting "
                                   "period (default: the run's own climatology period, the "
                                   "one the model and the scores use)")
    maps: bool = Field(True, description="draw cartopy maps")
    archive: str | None = Field(None, description="forecast archive (folder) that keeps "
                                "every issued forecast; the report shows its verification "
                                "history (default: none)")

    @field_validator("end")
    @classmethod
    def _end_after_start(cls, end, info):
        start = info.data.get("start")
        if end is not None and start is not None and end < start:
            raise ValueError(f"end must be on or after start={start}, got {end}")
        return end


class PipelineParameters(_Params):
    """ingest -> train -> forecast in one working folder."""

    workdir: str = Field(..., description="folder holding store, run and forecasts")
    source: str = Field("synthetic", description="catalogue name of the SST source")
    mirror: str | None = Field(None, description="base URL override for the source")
    start: Date | None = Field(None, description="first date to ingest")
    end: Date | None = Field(None, description="last date to ingest")
    grid: float | None = Field(None,
                               description="regrid to this resolution (degrees)")
    config: str = Field("default", description="model preset name or TOML path")
    train_end: Date | None = Field(None, description="last training date; later data is "
                                      "held out and forecast (hindcast)")
    forecast_start: Date | None = Field(None, description="first issue time of the "
                                           "hindcast (default: latest time)")
    forecast_end: Date | None = Field(None, description="last issue time")
    leads: int | None = Field(None, ge=1, le=MAX_STEPS,
                              description="leads 1..N (default: model horizon)")
    retrain: bool = Field(False, description="train a new run even when runs/ already "
                          "holds a trained one")

    def paths(self) -> dict[str, str]:
        """The fixed layout inside `workdir`: store.zarr, runs/<stamp>/, forecast/, archive/."""
        root = Path(self.workdir)
        return {"store": str(root / "store.zarr"), "run_dir": str(root / "runs"),
                "out_dir": str(root / "forecast"), "cache_dir": str(root / "downloads"),
                "archive": str(root / "archive")}

    def ingest(self) -> IngestParameters:
        p = self.paths()
        return IngestParameters(source=self.source, store=p["store"], mirror=self.mirror,
                                start=self.start, end=self.end, cache_dir=p["cache_dir"],
                                grid=self.grid)

    def train(self) -> TrainParameters:
        p = self.paths()
        return TrainParameters(store=p["store"], run_dir=p["run_dir"], new_run=True,
                               config=self.config, train_end=self.train_end)

    def forecast(self) -> ForecastParameters:
        p = self.paths()
        start = self.forecast_start
        if start is None and self.train_end is not None:
            start = self.train_end + dt.timedelta(days=1)  # hindcast the held-out period
        return ForecastParameters(run_dir=p["run_dir"], store=p["store"], out_dir=p["out_dir"],
                                  start=start, end=self.forecast_end, leads=self.leads)


class OperationParameters(_Params):
    """The one parameter set of every scheduled deployment (ingest, forecast, retrain, verify):
    a working folder, its source and the model settings. Runs on a fresh folder bootstrap it:
    ingest first where there is no store, train where there is no model."""

    workdir: str = Field(..., description="folder holding store, runs, forecasts, archive")
    source: str = Field("synthetic", description="catalogue name of the SST source")
    mirror: str | None = Field(None, description="base URL override for the source")
    start: Date | None = Field(None, description="first date to ingest")
    end: Date | None = Field(None, description="last date to ingest (default: latest)")
    grid: float | None = Field(None,
                               description="regrid to this resolution (degrees)")
    config: str = Field("default", description="model preset name or TOML path")
    leads: int | None = Field(None, ge=1, le=MAX_STEPS,
                              description="leads 1..N (default: model horizon)")
    maps: bool = Field(True, description="draw cartopy maps in the forecast report")

    def pipeline(self) -> PipelineParameters:
        """The same folder as PipelineParameters: scheduled runs use the newest data (no
        train_end, forecasts issued at the store's latest time)."""
        return PipelineParameters(workdir=self.workdir, source=self.source, mirror=self.mirror,
                                  start=self.start, end=self.end, grid=self.grid,
                                  config=self.config, leads=self.leads)

    def paths(self) -> dict[str, str]:
        return self.pipeline().paths()

    def forecast(self) -> ForecastParameters:
        p = self.paths()
        # Baseline stores are drawn in the maps; verification issues its own baselines.
        extra = {} if self.maps else {"baselines": ()}
        return ForecastParameters(run_dir=p["run_dir"], store=p["store"], out_dir=p["out_dir"],
                                  leads=self.leads, maps=self.maps, archive=p["archive"],
                                  **extra)


# --------------------------------------------------------------------------- commands
# The commands that call one library function without a flow (sstcast forecast, hindcast,
# evaluate, info, export, demo) take these, in the same style and with the same names.

_RUN = Field(..., description="trained run folder")
_STORE = Field(..., description="SST store the forecasts start from (path or fsspec URL)")
_LEADS = Field(None, description="leads 1..N steps (default: the model's horizon)")
_OUT = Field(..., description="forecast store to write")
_OVERWRITE = Field(False, description="replace `out` when it is a forecast store (never any "
                   "other folder)")


class IssueParameters(_Params):
    """Forecast from one issue time into a forecast store."""

    run_dir: str = _RUN
    store: str = _STORE
    init: Date = Field(..., description="issue time YYYY-MM[-DD]; only data up to it is used")
    leads: int | None = _LEADS
    out: str = _OUT
    overwrite: bool = _OVERWRITE


class HindcastParameters(_Params):
    """Forecasts from every issue time in a range into one forecast store."""

    run_dir: str = _RUN
    store: str = _STORE
    start: Date = Field(..., description="first issue time YYYY-MM[-DD]")
    end: Date = Field(..., description="last issue time YYYY-MM[-DD] (every step from "
                      "start to it)")
    leads: int | None = _LEADS
    out: str = _OUT
    overwrite: bool = _OVERWRITE


class EvaluateParameters(_Params):
    """Score a forecast store against the truth."""

    forecast: str = Field(..., description="forecast store")
    truth: str = Field(..., description="SST store")
    out: str = Field(..., description="folder for metrics.json and metrics.csv")
    climatology_end: Date | None = Field(None, description="end of the climatology period "
                                         "(default: the forecast's attribute)")
    regions: tuple[str, ...] | None = Field(None, description="regions to score (default: "
                                            "all: global, tropics, nh, sh, nino34)")


class InfoParameters(_Params):
    """Summarise and validate an sstcast zarr store."""

    store: str = Field(..., description="zarr store path or fsspec URL")
    full: bool = Field(False, description="also validate every value")


class ExportParameters(_Params):
    """Write an SST store (its committed steps) or a forecast store to one CF-1.8 netCDF-4
    file."""

    store: str = Field(..., description="SST store or forecast store (path or fsspec URL)")
    out: str = Field(..., description="netCDF file to write (*.nc)")
    layout: Literal["cf", "climpred"] = Field("cf", description="cf: the store's own dims; "
                                               "climpred: a forecast store with climpred's "
                                               "dims init, lead (and member)")
    overwrite: bool = Field(False, description="replace `out` if it exists")


class DemoParameters(_Params):
    """The whole pipeline on synthetic data with a small model."""

    workdir: str = Field("demo-output", description="output folder")

