"""Typed, frozen parameters of the sstcast flows.

Prefect renders these pydantic models as the parameter form of a deployment in the UI, and
validates what a schedule, `prefect deployment run` or the CLI passes in. Everything here is
a path, store URL (any fsspec URL: file://, s3://, gs://), date or name: flows pass these
between tasks, never datasets, so cache keys stay stable.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipeline.model.config import MAX_STEPS


def _check_source(source: str, mirror: str | None) -> None:
    """A catalogue name, and no mirror for a locally generated source: refused here, before a
    run starts, rather than by the fetch task."""
    from pipeline.data.sources import get_source

    entry = get_source(source)  # ValueError naming the argument, the expected and the received
    if entry.synthetic and mirror is not None:
        raise ValueError(f"mirror: expected none for the synthetic source {source!r} (it is "
                         f"generated locally), got {mirror!r}; serve synthetic files from a "
                         "mirror under the product's name, e.g. source=cobe2")


class _Params(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    @model_validator(mode="after")
    def _source(self):
        if "source" in type(self).model_fields:
            _check_source(self.source, self.mirror)
        return self

    @model_validator(mode="after")
    def _span(self):
        # Every start/end pair here is refused when reversed, rather than being a no-op run.
        for first, last in (("start", "end"), ("forecast_start", "forecast_end")):
            a, b = getattr(self, first, None), getattr(self, last, None)
            if a is not None and b is not None and b < a:
                raise ValueError(f"{last}: expected a date on or after {first}={a}, got {b}")
        return self


class IngestParameters(_Params):
    """Pull a source's files and append them to the canonical zarr store."""

    source: str = Field("synthetic", description="catalogue name: synthetic, cobe2, "
                        "oisst-v2-weekly, oisst-v2.1-daily, ersst-v5")
    store: str = Field(..., description="zarr store URL or path of the canonical store")
    mirror: str | None = Field(None, description="base URL override: http(s)://, file:// "
                               "or a folder with the provider's layout")
    start: dt.date | None = Field(None, description="first date to fetch (default: source's)")
    end: dt.date | None = Field(None, description="last date to fetch (default: latest)")
    cache_dir: str | None = Field(None, description="download folder (default: next to "
                                  "the store)")
    grid: float | None = Field(None, gt=0, allow_inf_nan=False,
                               description="regrid to this resolution in degrees")
    freq: str | None = Field(None, description="resample a daily product: weekly or monthly")
    units: str | None = Field(None, description="SST units of files that declare none "
                              "(degC or K); such files are refused otherwise")

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
    train_end: dt.date | None = Field(None, description="last date used for training "
                                      "(default: all data)")


class ForecastParameters(_Params):
    """Issue forecasts from a trained run, score them and draw the maps."""

    run_dir: str = Field(..., description="trained run folder, or a folder of runs (the "
                         "newest trained one is used)")
    store: str = Field(..., description="canonical zarr store the forecast starts from")
    out_dir: str = Field(..., description="folder for the forecast stores, metrics, maps")
    start: dt.date | None = Field(None, description="first issue time (default: latest)")
    end: dt.date | None = Field(None, description="last issue time (default: latest)")
    leads: int | None = Field(None, ge=1, le=MAX_STEPS,
                              description="leads 1..N (default: model horizon)")
    truth: str | None = Field(None, description="truth store to score against (default: "
                              "the input store, when it covers the valid times)")
    baselines: tuple[str, ...] = Field(
        ("climatology", "persistence", "damped_persistence", "lim"),
        description="baseline forecasts scored and drawn alongside "
        "(pipeline.evaluation.baselines.KINDS)")
    train_end: dt.date | None = Field(None, description="end of the baselines' fitting "
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
    start: dt.date | None = Field(None, description="first date to ingest")
    end: dt.date | None = Field(None, description="last date to ingest")
    grid: float | None = Field(None, gt=0, allow_inf_nan=False,
                               description="regrid to this resolution (degrees)")
    config: str = Field("default", description="model preset name or TOML path")
    train_end: dt.date | None = Field(None, description="last training date; later data is "
                                      "held out and forecast (hindcast)")
    forecast_start: dt.date | None = Field(None, description="first issue time of the "
                                           "hindcast (default: latest time)")
    forecast_end: dt.date | None = Field(None, description="last issue time")
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
    start: dt.date | None = Field(None, description="first date to ingest")
    end: dt.date | None = Field(None, description="last date to ingest (default: latest)")
    grid: float | None = Field(None, gt=0, allow_inf_nan=False,
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
