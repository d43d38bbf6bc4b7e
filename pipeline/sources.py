"""The catalogue of SST products: where their files live and how their files are laid out.

Each `Source` names a real NOAA product (URL layout, variable, coordinate conventions,
fill/scale handling, land mask, time step). A `mirror` replaces the host and keeps the layout,
so an offline site, a local folder or a test server serves the same relative paths:

    https://downloads.psl.noaa.gov/Datasets/COBE2/sst.mon.mean.nc
    <mirror>/Datasets/COBE2/sst.mon.mean.nc

Scale factors, offsets and fill values are decoded by xarray's CF decoding from each file's
own attributes; the catalogue records them for documentation and for the file checks.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd

PSL = "https://downloads.psl.noaa.gov"
NCEI = "https://www.ncei.noaa.gov"


@dataclass(frozen=True)
class Source:
    """One product. `files` is "single" (one file updated in place), "daily" or "monthly"
    (one immutable file per step). Templates use a pandas Timestamp `t`."""

    name: str
    title: str
    host: str
    layout_root: str  # folder under the host, e.g. "Datasets/COBE2"
    filename: str  # template relative to layout_root
    files: str
    variable: str
    time_step: str  # pandas frequency of the product's native steps
    resolution: float  # degrees
    lat_order: str  # "ascending" or "descending" in the files
    land: str  # "missing" (NaN/fill over land) or "filled" (needs the mask file)
    fill: str  # how missing values are encoded (documentation)
    scale: str  # packing (documentation)
    squeeze_dims: tuple[str, ...] = ()
    preliminary_filename: str | None = None  # OISST daily: the newest days' name
    mask_filename: str | None = None  # relative to layout_root
    mask_variable: str | None = None
    default_start: str | None = None  # None: a start date is required
    synthetic: bool = False  # generated locally in this layout instead of fetched
    synthetic_layout: str | None = None
    seed: int = 0

    def relative_path(self, t: pd.Timestamp | None = None, *, preliminary=False) -> str:
        """Path under the host (and under a mirror) of the file for time `t`."""
        template = self.preliminary_filename if preliminary else self.filename
        if template is None:
            raise ValueError(f"preliminary: the {self.name} source has no preliminary files")
        name = template.format(t=t) if self.files != "single" else template
        return f"{self.layout_root}/{name}"

    def mask_path(self) -> str | None:
        return f"{self.layout_root}/{self.mask_filename}" if self.mask_filename else None

    def url(self, relative: str, mirror: str | Path | None = None) -> str:
        """The URL of `relative` at NOAA, or at `mirror` (http(s)://, file:// or a folder)."""
        return f"{mirror_base(mirror) if mirror is not None else self.host}/{relative}"

    def file_times(self, start, end) -> pd.DatetimeIndex:
        """The steps with one file each between `start` and `end` (per-step products)."""
        freq = {"daily": "D", "monthly": "MS"}[self.files]
        first = pd.Timestamp(start).to_period(freq[0] if freq == "D" else "M").start_time
        return pd.date_range(first, pd.Timestamp(end), freq=freq)


def mirror_base(mirror) -> str:
    """Canonical base URL of a mirror: http(s)://host/path, or file:///abs/path for folders."""
    text = str(mirror).rstrip("/")
    scheme = urlparse(text).scheme
    if scheme in ("http", "https", "file"):
        return text
    if scheme and len(scheme) > 1:
        raise ValueError(
            f"mirror: expected http(s)://, file:// or a folder, got {mirror!r} "
            f"(scheme {scheme!r} is not supported)"
        )
    return Path(text).resolve().as_uri()


SOURCES = {
    "cobe2": Source(
        name="cobe2",
        title="NOAA PSL COBE-SST2 monthly 1°",
        host=PSL,
        layout_root="Datasets/COBE2",
        filename="sst.mon.mean.nc",
        files="single",
        variable="sst",
        time_step="MS",
        resolution=1.0,
        lat_order="descending",
        land="missing",
        fill="missing_value/_FillValue 1e20",
        scale="float32, no packing",
        default_start="1850-01-01",
    ),
    "oisst-v2-weekly": Source(
        name="oisst-v2-weekly",
        title="NOAA PSL OISST v2 weekly 1° (the Mechanistic Identifier paper's data)",
        host=PSL,
        layout_root="Datasets/noaa.oisst.v2",
        filename="sst.wkmean.1990-present.nc",
        files="single",
        variable="sst",
        time_step="7D",
        resolution=1.0,
        lat_order="descending",
        land="filled",
        fill="missing_value 32767",
        scale="int16, scale_factor 0.01",
        mask_filename="lsmask.nc",
        mask_variable="mask",
        default_start="1989-12-31",
    ),
    "oisst-v2.1-daily": Source(
        name="oisst-v2.1-daily",
        title="NOAA NCEI OISST v2.1 AVHRR daily 0.25°",
        host=NCEI,
        layout_root="data/sea-surface-temperature-optimum-interpolation/v2.1/access/avhrr",
        filename="{t:%Y%m}/oisst-avhrr-v02r01.{t:%Y%m%d}.nc",
        preliminary_filename="{t:%Y%m}/oisst-avhrr-v02r01.{t:%Y%m%d}_preliminary.nc",
        files="daily",
        variable="sst",
        time_step="D",
        resolution=0.25,
        lat_order="ascending",
        land="missing",
        fill="_FillValue -999",
        scale="int16, scale_factor 0.01",
        squeeze_dims=("zlev",),
        default_start=None,
    ),
    "ersst-v5": Source(
        name="ersst-v5",
        title="NOAA NCEI ERSSTv5 monthly 2°",
        host=NCEI,
        layout_root="pub/data/cmb/ersst/v5/netcdf",
        filename="ersst.v5.{t:%Y%m}.nc",
        files="monthly",
        variable="sst",
        time_step="MS",
        resolution=2.0,
        lat_order="ascending",
        land="missing",
        fill="_FillValue -999.9",
        scale="float32, no packing",
        squeeze_dims=("lev",),
        default_start="1854-01-01",
    ),
}
# The embedded default: generated locally in the COBE-SST2 layout (monthly, 1°), or in the
# OISST v2.1 daily layout ("synthetic-daily", 1° by default to stay small).
SOURCES["synthetic"] = dataclasses.replace(
    SOURCES["cobe2"],
    name="synthetic",
    title="synthetic SST in the COBE-SST2 layout (offline default)",
    host="synthetic://",
    synthetic=True,
    synthetic_layout="cobe2",
    default_start="1982-01-01",
)
SOURCES["synthetic-daily"] = dataclasses.replace(
    SOURCES["oisst-v2.1-daily"],
    name="synthetic-daily",
    title="synthetic SST in the OISST v2.1 daily layout",
    host="synthetic://",
    resolution=1.0,
    synthetic=True,
    synthetic_layout="oisst-v2.1-daily",
)
DEFAULT_SOURCE = "synthetic"
SYNTHETIC_DEFAULT_END = "2021-12-31"


def get_source(source: str | Source, *, resolution: float | None = None, seed: int | None = None):
    """The catalogue entry `source` (a name or a Source). `resolution` and `seed` only apply
    to the synthetic sources (the grid and seed they are generated with)."""
    if isinstance(source, Source):
        entry = source
    elif isinstance(source, str) and source in SOURCES:
        entry = SOURCES[source]
    else:
        raise ValueError(f"source: expected one of {sorted(SOURCES)}, got {source!r}")
    changes = {}
    if resolution is not None or seed is not None:
        if not entry.synthetic:
            raise ValueError(
                f"resolution/seed: only synthetic sources take them, got source {entry.name!r}"
            )
        if resolution is not None:
            changes["resolution"] = float(resolution)
        if seed is not None:
            changes["seed"] = int(seed)
    return dataclasses.replace(entry, **changes) if changes else entry
