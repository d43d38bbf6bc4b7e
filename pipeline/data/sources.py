"""The catalogue of SST products: where their files live and how their files are laid out.

Each `Source` names a real NOAA product (URL layout, variable, coordinate conventions,
fill/scale handling, land mask, time step). A `mirror` replaces the host and keeps the layout,
so an offline site, a local folder or a test server serves the same relative paths:

    https://downloads.psl.noaa.gov/Datasets/COBE2/sst.mon.mean.nc
    <mirror>/Datasets/COBE2/sst.mon.mean.nc

Scale factors, offsets and fill values are decoded by xarray's CF decoding from each file's
own attributes; the catalogue records them for documentation and for the file checks.

Besides NOAA's products: the Met Office's HadISST (one gzipped file) and `local-cf`, any
CF-compliant gridded SST file of the user's (a model run, CMIP6 `tos`), whose variable,
coordinates and units are found from its CF attributes (`pipeline.data.cf_source`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd

PSL = "https://downloads.psl.noaa.gov"
NCEI = "https://www.ncei.noaa.gov"
METOFFICE = "https://www.metoffice.gov.uk"
LOCAL_CF = "local-cf"


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
    lat_name: str = "lat"  # the files' names of the coordinates (HadISST: latitude)
    lon_name: str = "lon"
    units: str | None = None  # the product's SST units where its attribute is no udunits
    sea_ice_value: float | None = None  # HadISST marks sea ice with -1000
    compression: str | None = None  # "gzip": the file is fetched gzipped and unpacked
    cf_discover: bool = False  # local-cf: variable and coordinates found from CF attributes

    def relative_path(self, t: pd.Timestamp | None = None, *, preliminary=False) -> str:
        """Path under the host (and under a mirror) of the file for time `t`."""
        template = self.preliminary_filename if preliminary else self.filename
        if template is None:
            raise ValueError(f"preliminary: the {self.name} source has no preliminary files")
        name = template.format(t=t) if self.files != "single" else template
        return f"{self.layout_root}/{name}" if self.layout_root else name

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
SOURCES["ersst-v5-psl"] = Source(
    name="ersst-v5-psl",
    title="NOAA ERSSTv5 monthly 2° (PSL's single file)",
    host=PSL,
    layout_root="Datasets/noaa.ersst.v5",
    filename="sst.mnmean.nc",
    files="single",
    variable="sst",
    time_step="MS",
    resolution=2.0,
    lat_order="descending",
    land="missing",
    fill="missing_value/_FillValue -9.96921e36",
    scale="float32, no packing",
    default_start="1854-01-01",
)
SOURCES["hadisst"] = Source(
    name="hadisst",
    title="Met Office HadISST 1.1 monthly 1°",
    host=METOFFICE,
    layout_root="hadobs/hadisst/data",
    filename="HadISST_sst.nc.gz",
    files="single",
    variable="sst",
    time_step="MS",
    resolution=1.0,
    lat_order="descending",
    land="missing",
    fill="missing_value/_FillValue -1e30; sea ice -1000 (taken as -1.8 °C)",
    scale="float32, no packing",
    lat_name="latitude",
    lon_name="longitude",
    units="degC",  # the file says "C" (which udunits reads as coulomb)
    sea_ice_value=-1000.0,
    compression="gzip",
    default_start="1870-01-01",
)
SOURCES[LOCAL_CF] = Source(
    name=LOCAL_CF,
    title="a CF-compliant gridded SST file (--file)",
    host="",
    layout_root="",
    filename="",
    files="single",
    variable="",
    time_step="",  # read from the file's time axis
    resolution=0.0,
    lat_order="either",
    land="missing",
    fill="the file's _FillValue/missing_value",
    scale="the file's scale_factor/add_offset",
    default_start="1850-01-01",
    cf_discover=True,
)
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


def get_source(
    source: str | Source,
    *,
    resolution: float | None = None,
    seed: int | None = None,
    file: str | Path | None = None,
    variable: str | None = None,
):
    """The catalogue entry `source` (a name or a Source). `resolution` and `seed` only apply
    to the synthetic sources (the grid and seed they are generated with); `file` (a path or
    an http(s)/file URL) and `variable` (its SST variable, when it has several) to
    `local-cf`."""
    if isinstance(source, Source):
        entry = source
    elif isinstance(source, str) and source in SOURCES:
        entry = SOURCES[source]
    else:
        raise ValueError(f"source: expected one of {sorted(SOURCES)}, got {source!r}")
    if entry.name == LOCAL_CF and not entry.filename:
        entry = local_cf_source(file, variable)
    elif file is not None or variable is not None:
        raise ValueError(
            f"file/variable: only the {LOCAL_CF} source takes them, got source {entry.name!r}"
        )
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


def local_cf_source(file, variable: str | None = None) -> Source:
    """The `local-cf` entry for one CF netCDF `file`: a path or an http(s)/file URL (its
    folder is the host, its name the file fetched, cached and checked like any product)."""
    if file is None or str(file).strip() == "":
        raise ValueError(
            f"file: the {LOCAL_CF} source reads one CF netCDF file; expected a path or URL "
            "(--file run.nc), got none"
        )
    text = str(file)
    scheme = urlparse(text).scheme
    if scheme in ("http", "https", "file"):
        base, _, name = text.rstrip("/").rpartition("/")
    elif scheme and len(scheme) > 1:
        raise ValueError(f"file: expected a path or an http(s):// or file:// URL, got {text!r}")
    else:
        path = Path(text).expanduser().resolve()
        if not path.is_file():
            raise ValueError(f"file: expected an existing netCDF file, got {text!r}")
        base, name = path.parent.as_uri(), path.name
    if not name.endswith((".nc", ".nc4", ".netcdf")):
        raise ValueError(f"file: expected a netCDF file name (*.nc), got {text!r}")
    if variable is not None and not str(variable).strip():
        raise ValueError("variable: expected the name of the file's SST variable, got ''")
    return dataclasses.replace(
        SOURCES[LOCAL_CF],
        title=f"CF netCDF file {name}",
        host=base,
        filename=name,
        variable=variable or "",
    )
