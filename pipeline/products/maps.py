"""Publication maps and skill plots for SST forecasts (cartopy + matplotlib).

Array-level functions that take xarray objects and return a `matplotlib.figure.Figure` (no
pyplot, no global state: safe in threads, servers and tests):

- forecast store: ``sst`` (init_time, lead, lat, lon) °C, optionally with a ``member``
  dimension (the ensemble mean is drawn), coordinate ``valid_time(init_time, lead)``
- truth store: ``sst`` (time, lat, lon) °C, ``mask`` (lat, lon) bool ocean
- climatology: (month, lat, lon) °C, month 1..12 (see `monthly_climatology`)

Map functions take one lead or several: several leads are drawn side by side on one shared
colour scale, so lead 1 and lead 12 compare by eye. Land is drawn from the data's own mask,
coastlines from Natural Earth shapefiles: the 1:110m coastline ships with the package
(pipeline/products/map_data), finer ones are used when already on disk (``$CARTOPY_DATA_DIR`` or
cartopy's data dirs). Cartopy is never asked to download anything. `write_forecast_maps`
draws the standard set for a forecast run.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import cartopy
import cartopy.crs as ccrs
import numpy as np
import pandas as pd
import xarray as xr
from cartopy.io import shapereader
from matplotlib import colors
from matplotlib import dates as mdates
from matplotlib.figure import Figure

from pipeline.regions import REGIONS, lat_weights

UNITS = "°C"
_SOUTH, _NORTH, _WEST, _EAST = REGIONS["nino34"][:4]
NINO34 = {"lat": (_SOUTH, _NORTH), "lon": (_WEST, _EAST)}  # 0..360 longitudes
LAND_COLOUR = "#d9d4c7"
BUNDLED_DATA = Path(__file__).parent / "map_data" / "cartopy"  # a cartopy-style data dir
_COASTLINE = Path("shapefiles", "natural_earth", "physical")
NO_COASTLINES = "coastlines not drawn: no Natural Earth coastline file on disk"

# How forecasts are named on figures and in reports; unknown names lose their underscores.
DISPLAY_NAMES = {
    "mechanistic_identifier": "S-MNN",
    "smnn": "S-MNN",
    "forecast": "forecast",
    "damped_persistence": "damped pers.",
    "lim": "LIM",
    "recent_mean": "recent mean",
}

__all__ = [
    "BUNDLED_DATA",
    "bias_map",
    "calendar_climatology",
    "display_name",
    "error_map",
    "forecast_anomaly_map",
    "forecast_sst_map",
    "monthly_climatology",
    "natural_earth_coastlines",
    "nino34_index",
    "nino34_plume",
    "parameter_maps",
    "save_figure",
    "skill_vs_lead",
    "write_forecast_maps",
]


# --------------------------------------------------------------------------- names


def display_name(name: object) -> str:
    """A readable name for a forecast id: `mechanistic_identifier` -> `S-MNN`."""
    text = str(name)
    return DISPLAY_NAMES.get(text, text.replace("_", " "))


def _date(value) -> str:
    """`Jan 2007` for month starts (monthly data), else `2007-01-15`."""
    stamp = pd.Timestamp(value)
    if stamp.day == 1 and stamp.hour == stamp.minute == 0:
        return stamp.strftime("%b %Y")
    return stamp.strftime("%Y-%m-%d")


def _lead_label(forecast: xr.Dataset, lead: int) -> str:
    units = str(forecast["lead"].attrs.get("units", "steps"))
    units = units[:-1] if int(lead) == 1 and units.endswith("s") else units
    return f"lead {int(lead)} {units}"


def _model_name(forecast: xr.Dataset) -> str:
    return display_name(forecast.attrs.get("model", forecast.attrs.get("run", "forecast")))


def _period(forecast: xr.Dataset) -> str:
    """`1990–2003 ` from the forecast's climatology attributes, else ''."""
    start, end = forecast.attrs.get("climatology_start"), forecast.attrs.get("climatology_end")
    if not end:
        return ""
    years = f"{pd.Timestamp(start).year}–" if start else "to "
    return f"{years}{pd.Timestamp(end).year} "


# --------------------------------------------------------------------------- inputs


def _check_dataset(ds: object, name: str, dims: tuple[str, ...]) -> xr.DataArray:
    """Return ``ds.sst`` after checking that it is a Dataset whose sst has exactly `dims`."""
    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"{name} must be an xarray.Dataset, got {type(ds).__name__}")
    if "sst" not in ds:
        raise ValueError(f"{name} must hold a variable 'sst', got {sorted(ds.data_vars)}")
    if tuple(ds["sst"].dims) != dims:
        raise ValueError(f"{name}.sst must have dims {dims}, got {tuple(ds['sst'].dims)}")
    return ds["sst"]


def _check_forecast(forecast: object, name: str = "forecast") -> xr.Dataset:
    """A forecast store with sst (init_time, lead, lat, lon); an ensemble's `member`
    dimension is averaged out (the maps show the ensemble mean)."""
    if isinstance(forecast, xr.Dataset) and "sst" in forecast and (
            "member" in forecast["sst"].dims):
        attrs = dict(forecast.attrs)
        forecast = forecast.assign(sst=forecast["sst"].mean("member", keep_attrs=True))
        forecast = forecast.drop_dims("member", errors="ignore")
        forecast.attrs = attrs
    _check_dataset(forecast, name, ("init_time", "lead", "lat", "lon"))
    return forecast


def _init_position(forecast: xr.Dataset, init_time) -> int:
    """Position of one init_time (default: the latest) in a forecast store."""
    if init_time is None:
        return forecast.sizes["init_time"] - 1
    stamp = np.datetime64(pd.Timestamp(init_time), "ns")
    found = np.flatnonzero(forecast["init_time"].values == stamp)
    if found.size == 0:
        available = [str(t)[:10] for t in forecast["init_time"].values]
        raise ValueError(f"init_time must be one of {available}, got {init_time!r}")
    return int(found[0])


def _pick_init(forecast: xr.Dataset, init_time) -> xr.Dataset:
    """Select one init_time (default: the latest) from a forecast store."""
    return forecast.isel(init_time=_init_position(forecast, init_time))


def _leads(forecast: xr.Dataset, lead) -> list[int]:
    """The leads asked for: None -> the first, an int -> [it], a sequence -> each, checked."""
    if lead is None:
        return [int(forecast["lead"].values[0])]
    wanted = [int(v) for v in (lead if isinstance(lead, Sequence | np.ndarray) else [lead])]
    known = forecast["lead"].values.tolist()
    for value in wanted:
        if value not in known:
            raise ValueError(f"lead must be one of {known}, got {value!r}")
    if not wanted:
        raise ValueError("lead: expected at least one lead, got none")
    return wanted


def _ocean_mask(ds: xr.Dataset, field: xr.DataArray) -> xr.DataArray:
    """The (lat, lon) bool ocean mask: the data's own `mask`, else where the field is finite."""
    if "mask" in ds:
        return ds["mask"].astype(bool)
    finite = np.isfinite(field)
    extra = [d for d in finite.dims if d not in ("lat", "lon")]
    return finite.any(extra) if extra else finite


def monthly_climatology(truth: xr.Dataset, *, start=None, end=None) -> xr.DataArray:
    """Calendar-month mean SST of a truth store: (month, lat, lon) °C, month 1..12.

    `start`/`end` restrict it to a reference (training) period.
    """
    sst = _check_dataset(truth, "truth", ("time", "lat", "lon")).sel(time=slice(start, end))
    if sst.sizes["time"] == 0:
        raise ValueError(f"truth has no time steps between start={start!r} and end={end!r}")
    return sst.groupby("time.month").mean("time")


def calendar_climatology(fit: xr.Dataset) -> xr.DataArray | None:
    """A monthly `pipeline.climatology.fit_climatology` result (e.g. a run's stats.nc) as the
    (month, lat, lon) climatology the maps draw anomalies against, so that the maps use the
    run's one fit; None for a weekly or daily fit (its bins are not calendar months)."""
    if fit.attrs.get("step_units") != "months" or int(fit.attrs.get("step_size", 1)) != 1:
        return None
    clim = fit["clim"].rename(season="month")
    return clim.assign_coords(month=clim["month"].values + 1)


def _anomaly(field: xr.DataArray, climatology: xr.DataArray, when) -> xr.DataArray:
    """`field` (lat, lon) minus the climatology of the calendar month of `when`."""
    month = pd.Timestamp(when).month
    if month not in climatology["month"].values:
        raise ValueError(f"climatology has no month {month}; it covers "
                         f"{climatology['month'].values.tolist()}")
    return field - climatology.sel(month=month, drop=True)


# --------------------------------------------------------------------------- coastlines


def _data_roots() -> list[Path]:
    """Where Natural Earth files are looked for, read at call time: $CARTOPY_DATA_DIR,
    cartopy's pre_existing_data_dir and data_dir, then the files shipped in
    pipeline/products/map_data."""
    roots = [os.environ.get("CARTOPY_DATA_DIR"), cartopy.config.get("pre_existing_data_dir"),
             cartopy.config.get("data_dir")]
    found = [Path(r) for r in roots if r and str(r) not in ("", ".")]
    return [*found, BUNDLED_DATA]


def natural_earth_coastlines(resolution: str = "110m", *, bundled: bool = True) -> Path | None:
    """Path of the Natural Earth coastline shapefile at `resolution`, else None.

    Looks in ``$CARTOPY_DATA_DIR``, cartopy's ``pre_existing_data_dir`` and ``data_dir``, in
    that order, then (with `bundled`) in the copy shipped with sstcast (110m only). Never
    downloads.
    """
    name = f"ne_{resolution}_coastline.shp"
    roots = _data_roots() if bundled else _data_roots()[:-1]
    for root in roots:
        path = root / _COASTLINE / name
        if path.is_file():
            return path
    return None


def _coastline_file(extent: list | None) -> Path | None:
    """The finest coastline on disk that suits the map: 50m for regional maps when present,
    else the 110m coastline (shipped)."""
    regional = extent is not None and (extent[1] - extent[0]) < 90
    if regional:
        finer = natural_earth_coastlines("50m", bundled=False)
        if finer is not None:
            return finer
    return natural_earth_coastlines("110m")


# --------------------------------------------------------------------------- drawing


def _projection(lat: np.ndarray, lon: np.ndarray) -> tuple[ccrs.Projection, list | None]:
    """Robinson for (near-)global grids, else Plate Carrée cut to the data's extent."""
    global_grid = np.ptp(lon) > 300 and np.ptp(lat) > 120
    if global_grid:
        return ccrs.Robinson(central_longitude=180), None
    lat_edges, lon_edges = _cell_edges(lat, -90, 90), _cell_edges(lon, -360, 720)
    extent = [float(lon_edges[0]), float(lon_edges[-1]), float(lat_edges[0]),
              float(lat_edges[-1])]
    return ccrs.PlateCarree(central_longitude=float(np.mean(lon_edges[[0, -1]]))), extent


def _map_aspect(field: xr.DataArray) -> float:
    """Height / width of one map panel."""
    _, extent = _projection(field["lat"].values, field["lon"].values)
    aspect = 0.5 if extent is None else (extent[3] - extent[2]) / (extent[1] - extent[0])
    return min(max(aspect, 0.2), 1.2)


def _cell_edges(centres: np.ndarray, low: float, high: float) -> np.ndarray:
    """Cell boundaries for a regular-ish 1-D grid, clipped to [low, high]."""
    centres = np.asarray(centres, dtype=float)
    if centres.size == 1:
        return np.array([centres[0] - 0.5, centres[0] + 0.5]).clip(low, high)
    mids = (centres[1:] + centres[:-1]) / 2
    first = centres[0] - (mids[0] - centres[0])
    last = centres[-1] + (centres[-1] - mids[-1])
    return np.concatenate([[first], mids, [last]]).clip(low, high)


def _projected_corners(projection, lat: np.ndarray, lon: np.ndarray):
    """Map coordinates (x, y), each (nlat+1, nlon+1), of the cell corners of a lat/lon grid.

    Longitudes are taken relative to the projection's central longitude so that a global
    0..360 grid spans exactly the map from its left to its right edge.
    """
    central = float(projection.proj4_params.get("lon_0", 0.0))
    lat_edges = _cell_edges(lat, -90, 90)
    lon_edges = _cell_edges(lon, -360, 720) - central
    lon_edges = np.where(lon_edges > 180, lon_edges - 360, lon_edges)
    lon_edges = np.where(lon_edges < -180, lon_edges + 360, lon_edges)
    # proj folds +180 onto -180: keep the outermost corners just inside the map edge.
    lon2, lat2 = np.meshgrid(np.clip(lon_edges, -179.9999, 179.9999), lat_edges)
    xyz = projection.transform_points(ccrs.PlateCarree(central_longitude=central), lon2, lat2)
    return xyz[..., 0], xyz[..., 1]


def _nice_step(span: float, target: int) -> float:
    """A 1-2-2.5-5 step that splits `span` into about `target` intervals."""
    raw = max(span, 1e-12) / target
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * power:
            return factor * power
    return 10 * power


def _levels(values: np.ndarray, *, symmetric: bool, target: int = 16) -> np.ndarray:
    """Discrete colour levels for finite `values`.

    Diverging (symmetric about 0) scales reach the 99.9th percentile of the magnitude, so
    the strongest anomaly or error is not clipped; sequential scales span the 1st-99th
    percentile.
    """
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        raise ValueError("the field to draw has no finite ocean values (a blank map)")
    if symmetric:
        top = float(np.percentile(np.abs(finite), 99.9))
        top = top if top > 0 else 1.0
        step = _nice_step(2 * top, target)
        top = step * math.ceil(top / step - 1e-9)
        return np.linspace(-top, top, round(2 * top / step) + 1)
    low, high = (float(v) for v in np.percentile(finite, [1, 99]))
    if high <= low:
        low, high = low - 0.5, high + 0.5
    step = _nice_step(high - low, target)
    low, high = step * math.floor(low / step), step * math.ceil(high / step)
    return np.linspace(low, high, round((high - low) / step) + 1)


def _diverges(values: np.ndarray) -> bool:
    """Whether a field wants a diverging scale: it takes both signs, the smaller side at
    least a fifth of the larger (else a diverging scale wastes most of its colours)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0 or not (finite.min() < 0 < finite.max()):
        return False
    low, high = -float(np.percentile(finite, 1)), float(np.percentile(finite, 99))
    return min(low, high) >= 0.2 * max(low, high)


def _draw_field(ax, field: xr.DataArray, mask: xr.DataArray, *, cmap: str,
                levels: np.ndarray, title: str):
    """Draw a (lat, lon) field on a cartopy GeoAxes: ocean coloured, land grey, coastlines."""
    field = field.transpose("lat", "lon")
    ocean = mask.transpose("lat", "lon").values.astype(bool)
    lat, lon = field["lat"].values, field["lon"].values
    values = np.where(ocean, field.values.astype(float), np.nan)
    norm = colors.BoundaryNorm(levels, ncolors=256, extend="both")
    x, y = _projected_corners(ax.projection, lat, lon)
    # Corners are projected once here and drawn in map coordinates: cartopy's own
    # pcolormesh re-projects and splits the cells at the map edge, several times slower.
    mesh = ax.pcolormesh(x, y, np.ma.masked_invalid(values), cmap=cmap, norm=norm,
                         transform=ax.projection, rasterized=True)
    land = np.ma.masked_where(ocean, np.ones_like(values))
    ax.pcolormesh(x, y, land, cmap=colors.ListedColormap([LAND_COLOUR]),
                  transform=ax.projection, rasterized=True)
    coastlines = _coastline_file(getattr(ax, "_sstcast_extent", None))
    if coastlines is not None:
        ax.add_geometries(shapereader.Reader(str(coastlines)).geometries(),
                          crs=ccrs.PlateCarree(), facecolor="none", edgecolor="0.2",
                          linewidth=0.5, zorder=4)
    else:
        ax.text(0.5, 0.02, NO_COASTLINES, transform=ax.transAxes, ha="center",
                va="bottom", fontsize=7, color="0.3", zorder=6)
    ax.set_title(title, fontsize=10)
    return mesh


def _colourbar(fig: Figure, mesh, axes, *, levels: np.ndarray, label: str, symmetric: bool,
               max_ticks: int = 9) -> None:
    """One horizontal colourbar under `axes`, at most `max_ticks` labels (0 kept on
    diverging scales)."""
    bar = fig.colorbar(mesh, ax=axes, orientation="horizontal", shrink=0.7, pad=0.04,
                       aspect=40, extend="both")
    every = max(1, math.ceil(len(levels) / max_ticks))
    ticks = levels[(len(levels) // 2) % every :: every] if symmetric else levels[::every]
    bar.set_ticks(ticks)
    bar.set_ticklabels([_tick(t, levels) for t in ticks])
    bar.set_label(label)


def _tick(value: float, levels: np.ndarray) -> str:
    step = float(np.min(np.diff(levels))) if len(levels) > 1 else 1.0
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) if step < 1 else 0
    text = f"{value:.{decimals}f}"
    return "0" if float(text) == 0 else text.replace("-", "−")


def _map_axes(fig: Figure, field: xr.DataArray, position: tuple[int, int, int] = (1, 1, 1),
              *, small: bool = False):
    projection, extent = _projection(field["lat"].values, field["lon"].values)
    ax = fig.add_subplot(*position, projection=projection)
    ax._sstcast_extent = extent
    if extent is None:
        ax.set_global()
        _graticule(ax, small=small)
    else:
        ax.set_extent(extent, crs=ccrs.PlateCarree())
        span = max(extent[1] - extent[0], extent[3] - extent[2])
        step = 10 if span <= 60 else 30
        gridlines = ax.gridlines(draw_labels=True, linewidth=0.3, color="0.5", alpha=0.6,
                                 linestyle="--", xlocs=np.arange(-180, 181, step),
                                 ylocs=np.arange(-90, 91, step / 2 if step > 10 else step))
        gridlines.top_labels = gridlines.right_labels = False
        gridlines.xlabel_style = gridlines.ylabel_style = {"size": 7}
    return ax


def _lon_text(lon: float) -> str:
    lon = (lon + 180) % 360 - 180
    if abs(lon) < 1e-6 or abs(abs(lon) - 180) < 1e-6:
        return f"{abs(lon):.0f}°"
    return f"{abs(lon):.0f}°{'E' if lon > 0 else 'W'}"


def _lat_text(lat: float) -> str:
    return "0°" if abs(lat) < 1e-6 else f"{abs(lat):.0f}°{'N' if lat > 0 else 'S'}"


def _graticule(ax, *, small: bool = False) -> None:
    """Meridians every 60° and parallels every 30°, projected once as plain lines (cartopy's
    gridlines re-project every line on each draw, most of a global map's drawing time),
    labelled along the left and bottom edges (every other meridian on `small` panels)."""
    source = ccrs.PlateCarree()
    central = float(ax.projection.proj4_params.get("lon_0", 0.0))
    meridians = [central - 180 + 60 * i for i in range(1, 6)]
    parallels = (-60, -30, 0, 30, 60)
    lines = [(np.full(181, lon), np.linspace(-90, 90, 181)) for lon in meridians]
    lines += [(np.linspace(central - 179.99, central + 179.99, 361), np.full(361, lat))
              for lat in parallels]
    for lon, lat in lines:
        xyz = ax.projection.transform_points(source, lon, lat)
        ax.plot(xyz[:, 0], xyz[:, 1], transform=ax.transData, color="0.5", linewidth=0.3,
                alpha=0.6, linestyle="--", zorder=3)
    style = dict(fontsize=7, color="0.25", transform=ax.transData, clip_on=False)
    for lat in parallels:
        x, y = ax.projection.transform_point(central - 179.99, lat, source)
        ax.text(x, y, _lat_text(lat) + " ", ha="right", va="center", **style)
    for lon in meridians[::2] if small else meridians:
        x, y = ax.projection.transform_point(lon, -90, source)
        ax.text(x, y, _lon_text(lon), ha="center", va="top", **style)


def _panels(panels: list[tuple[xr.DataArray, xr.DataArray, str]], *, cmap: str,
            symmetric: bool, label: str, suptitle: str | None) -> Figure:
    """One map per (field, mask, title), side by side, on one shared colour scale."""
    values = np.concatenate([np.where(m.transpose("lat", "lon").values.astype(bool),
                                      f.transpose("lat", "lon").values.astype(float),
                                      np.nan).ravel() for f, m, _ in panels])
    levels = _levels(values, symmetric=symmetric)
    columns = len(panels) if len(panels) <= 3 else (2 if _map_aspect(panels[0][0]) < 0.8 else 3)
    rows = math.ceil(len(panels) / columns)
    width = 8.0 if columns == 1 else 5.5 * columns
    height = rows * (width / columns) * _map_aspect(panels[0][0]) + 1.1 + 0.3 * bool(suptitle)
    fig = Figure(figsize=(width, height), layout="constrained")
    axes, mesh = [], None
    for i, (field, mask, title) in enumerate(panels):
        ax = _map_axes(fig, field, position=(rows, columns, i + 1))
        mesh = _draw_field(ax, field, mask, cmap=cmap, levels=levels, title=title)
        axes.append(ax)
    _colourbar(fig, mesh, axes, levels=levels, label=label, symmetric=symmetric)
    if suptitle:
        fig.suptitle(suptitle, fontsize=11)
    return fig


# --------------------------------------------------------------------------- maps


def forecast_sst_map(
    forecast: xr.Dataset, *, init_time=None, lead: int | Sequence[int] | None = None,
    mask: xr.DataArray | None = None,
) -> Figure:
    """Map of forecast SST (°C) for one init_time (default latest) at one lead (default the
    first) or several (side by side, one colour scale)."""
    forecast = _check_forecast(forecast)
    one = _pick_init(forecast, init_time)
    panels = []
    for value in _leads(forecast, lead):
        at = one.sel(lead=value)
        ocean = _ocean_mask(forecast, at["sst"]) if mask is None else mask
        panels.append((at["sst"], ocean, f"{_lead_label(forecast, value)}: "
                                         f"{_date(at['valid_time'].values)}"))
    title = (f"{_model_name(forecast)} SST forecast issued {_date(one['init_time'].values)}")
    return _panels(panels, cmap="RdYlBu_r", symmetric=False,
                   label=f"sea-surface temperature [{UNITS}]", suptitle=title)


def forecast_anomaly_map(
    forecast: xr.Dataset, climatology: xr.DataArray, *, init_time=None,
    lead: int | Sequence[int] | None = None, mask: xr.DataArray | None = None,
) -> Figure:
    """Map of the forecast SST anomaly (°C) against a (month, lat, lon) climatology, at one
    lead or several on one shared diverging scale."""
    forecast = _check_forecast(forecast)
    one = _pick_init(forecast, init_time)
    panels = []
    for value in _leads(forecast, lead):
        at = one.sel(lead=value)
        anomaly = _anomaly(at["sst"], climatology, at["valid_time"].values)
        ocean = _ocean_mask(forecast, at["sst"]) if mask is None else mask
        panels.append((anomaly, ocean, f"{_lead_label(forecast, value)}: "
                                       f"{_date(at['valid_time'].values)}"))
    title = (f"{_model_name(forecast)} SST anomaly forecast issued "
             f"{_date(one['init_time'].values)}, against the {_period(forecast)}monthly "
             "climatology")
    return _panels(panels, cmap="RdBu_r", symmetric=True, label=f"SST anomaly [{UNITS}]",
                   suptitle=title)


def _paired(forecast: xr.Dataset, truth: xr.Dataset, lead: int | None):
    """Forecast at one lead and the truth at its valid times: two (init_time, lat, lon) arrays."""
    forecast = _check_forecast(forecast)
    _check_dataset(truth, "truth", ("time", "lat", "lon"))
    one = forecast.sel(lead=_leads(forecast, lead)[0])
    valid = one["valid_time"].values
    known = np.isin(valid, truth["time"].values)
    if not known.any():
        raise ValueError("truth covers none of the forecast's valid times "
                         f"({_date(valid.min())} to {_date(valid.max())})")
    one = one.isel(init_time=np.flatnonzero(known))
    observed = truth["sst"].sel(time=one["valid_time"].values)
    observed = observed.rename(time="init_time").assign_coords(init_time=one["init_time"].values)
    return one, observed


def error_map(
    forecast: xr.Dataset, truth: xr.Dataset, *, init_time=None,
    lead: int | Sequence[int] | None = None,
) -> Figure:
    """Map of forecast minus observed SST (°C), one panel per lead on one shared scale.

    `init_time` picks the issue time; by default each lead shows its latest issue time
    whose valid time the truth holds.
    """
    forecast = _check_forecast(forecast)
    _check_dataset(truth, "truth", ("time", "lat", "lon"))
    mask = _ocean_mask(truth, truth["sst"])
    panels = []
    for value in _leads(forecast, lead):
        if init_time is None and _has_truth(forecast, truth, value):
            chosen = _latest_verified_init(forecast, truth, value)
        else:
            chosen = init_time
        one, observed = _paired(forecast.isel(init_time=[_init_position(forecast, chosen)]),
                                truth, value)
        error = (one["sst"] - observed).isel(init_time=0)
        panels.append((error, mask, f"{_lead_label(forecast, value)}: issued "
                                    f"{_date(one['init_time'].values[0])}, valid "
                                    f"{_date(one['valid_time'].values[0])}"))
    title = f"{_model_name(forecast)} error (forecast − observed), latest verified forecasts"
    return _panels(panels, cmap="RdBu_r", symmetric=True, label=f"forecast error [{UNITS}]",
                   suptitle=title)


def bias_map(forecast: xr.Dataset, truth: xr.Dataset, *,
             lead: int | Sequence[int] | None = None) -> Figure:
    """Map of the mean forecast error (°C) over all init_times with truth, per lead."""
    forecast = _check_forecast(forecast)
    mask = _ocean_mask(truth, _check_dataset(truth, "truth", ("time", "lat", "lon")))
    panels, issued = [], []
    for value in _leads(forecast, lead):
        one, observed = _paired(forecast, truth, value)
        bias = (one["sst"] - observed).mean("init_time")
        n = one.sizes["init_time"]
        issued.append(one["init_time"].values)
        panels.append((bias, mask, f"{_lead_label(forecast, value)}: mean of {n} forecasts"))
    inits = np.concatenate(issued)
    title = (f"{_model_name(forecast)} mean bias (forecast − observed), issued "
             f"{_date(inits.min())} to {_date(inits.max())}")
    return _panels(panels, cmap="RdBu_r", symmetric=True,
                   label=f"mean bias [{UNITS}]", suptitle=title)


# --------------------------------------------------------------------------- parameters


def _parameter_title(name: str, where: dict, var: xr.DataArray) -> str:
    """`ODE coefficient, derivative 2` from a variable and its index."""
    readable = {"coefficient": "ODE coefficient", "rhs": "ODE right-hand side",
                "step_size": "solver step size", "latent": "latent"}.get(name,
                                                                       name.replace("_", " "))
    labels = ", ".join(f"{d} {var[d].values[i] if d in var.coords else i}"
                       for d, i in where.items())
    if name == "latent" and where:
        return f"latent {next(iter(where.values()))}"
    if name == "coefficient" and list(where) == ["derivative"]:
        k = int(var["derivative"].values[where["derivative"]]) if "derivative" in var.coords \
            else where["derivative"]
        term = {0: "u", 1: "du/dt", 2: "d²u/dt²", 3: "d³u/dt³"}.get(k, f"d^{k}u/dt^{k}")
        return f"ODE coefficient of {term}"
    return f"{readable}, {labels}" if labels else readable


def _parameter_panels(parameters: xr.Dataset) -> list[tuple[str, xr.DataArray, dict, bool]]:
    """(title, field, attrs, is_latent) per panel: ODE parameters first, then latents."""
    panels = []
    for name, var in parameters.data_vars.items():
        if "lat" not in var.dims or "lon" not in var.dims:
            continue
        extra = [d for d in var.dims if d not in ("lat", "lon")]
        var = var.transpose(*extra, "lat", "lon")
        for index in np.ndindex(*(var.sizes[d] for d in extra)):
            where = dict(zip(extra, index, strict=True))
            panels.append((_parameter_title(str(name), where, var), var.isel(where),
                           dict(var.attrs), str(name).startswith("latent")))
    if not panels:
        raise ValueError("parameters has no variable with dims (..., lat, lon), got "
                         f"{ {k: v.dims for k, v in parameters.data_vars.items()} }")
    return sorted(panels, key=lambda p: p[3])  # stable: ODE parameters keep their order


def parameter_maps(
    parameters: xr.Dataset, *, mask: xr.DataArray | None = None, max_panels: int = 16,
    columns: int = 4,
) -> Figure:
    """Small-multiple maps of learned ODE parameters and latents.

    `parameters` holds variables with dims (lat, lon) or (k, lat, lon) (one panel per k, e.g.
    latent index or ODE coefficient). Every ODE parameter is drawn; latents fill the
    remaining panels up to `max_panels`, and the title says which were left out. Each panel
    has its own scale, labelled with the variable's long name and units: diverging about 0
    when the field takes both signs in comparable amounts, sequential otherwise.
    """
    if not isinstance(parameters, xr.Dataset):
        raise TypeError(f"parameters must be an xarray.Dataset, got {type(parameters).__name__}")
    every = _parameter_panels(parameters)
    ode = [p for p in every if not p[3]]
    latents = [p for p in every if p[3]]
    room = max(0, max_panels - len(ode))
    shown = ode + latents[:room]
    columns = min(columns, len(shown))
    rows = math.ceil(len(shown) / columns)
    aspect = _map_aspect(shown[0][1])
    fig = Figure(figsize=(3.6 * columns, rows * (3.6 * aspect + 0.9) + 0.6),
                 layout="constrained")
    for i, (title, field, attrs, _) in enumerate(shown):
        ocean = _ocean_mask(parameters, field) if mask is None else mask
        ax = _map_axes(fig, field, position=(rows, columns, i + 1), small=True)
        values = np.where(ocean.values.astype(bool), field.values.astype(float), np.nan)
        symmetric = _diverges(values)
        levels = _levels(values, symmetric=symmetric, target=10)
        mesh = _draw_field(ax, field, ocean, cmap="RdBu_r" if symmetric else "viridis",
                           levels=levels, title=title)
        mean = "window mean, " if "window mean" in str(attrs.get("long_name", "")) else ""
        units = f"[{attrs['units']}]" if attrs.get("units") else "no units attribute"
        label = f"{mean}{units}"
        _colourbar(fig, mesh, ax, levels=levels, label=label, symmetric=symmetric,
                   max_ticks=5)
    title = str(parameters.attrs.get("title", "Learned ODE parameters and latents"))
    if "init_time" in parameters.coords and parameters["init_time"].size == 1:
        title += f" at {_date(parameters['init_time'].values)}"
    left = latents[room:]
    if left:
        title += (f"\n{len(left)} of {len(latents)} latents not shown "
                  f"({left[0][0]} to {left[-1][0].split()[-1]}; all are in the parameters file)")
    fig.suptitle(title, fontsize=11)
    return fig


# --------------------------------------------------------------------------- indices and lines


def _box_text() -> str:
    """`5°S–5°N, 170°W–120°W` for the Niño3.4 box."""
    return (f"{_lat_text(_SOUTH)}–{_lat_text(_NORTH)}, "
            f"{_lon_text(_WEST)}–{_lon_text(_EAST)}")


def nino34_index(sst: xr.DataArray, climatology: xr.DataArray | None = None,
                 time_dim: str = "time") -> xr.DataArray:
    """Area-weighted (cos lat) mean over ocean in the Niño3.4 box (`NINO34`, from
    `pipeline.regions.REGIONS`).

    `sst` has dims (..., lat, lon) with longitudes 0..360; with a (month, lat, lon)
    `climatology` the index is an anomaly, the month taken from coordinate `time_dim`.
    Returns the index with the remaining dims, °C.
    """
    box = sst.sel(lat=slice(*NINO34["lat"]), lon=slice(*NINO34["lon"]))
    if box.sizes["lat"] == 0 or box.sizes["lon"] == 0:
        raise ValueError(f"sst does not cover the Niño3.4 box ({_box_text()})")
    if climatology is not None:
        months = box[time_dim].dt.month
        clim = climatology.sel(lat=box["lat"], lon=box["lon"]).sel(month=months)
        box = box - clim.drop_vars("month")
    weights = xr.DataArray(lat_weights(box["lat"].values), coords={"lat": box["lat"]})
    weights = weights * xr.ones_like(box["lon"], dtype=float)
    weights = weights.where(np.isfinite(box))
    return (box * weights).sum(("lat", "lon")) / weights.sum(("lat", "lon"))


def nino34_plume(
    forecasts: xr.Dataset | Mapping[str, xr.Dataset], truth: xr.Dataset | None = None, *,
    climatology: xr.DataArray | None = None, last: int = 6,
) -> Figure:
    """Niño3.4 plume: index against valid time for the `last` init_times of each forecast.

    `forecasts` is one forecast store or a mapping name -> store (model and baselines);
    the observed index from `truth` is drawn in black. Anomalies when `climatology` is given.
    """
    if isinstance(forecasts, xr.Dataset):
        forecasts = {_model_name(forecasts): forecasts}
    if not forecasts:
        raise ValueError("forecasts must name at least one forecast store, got none")
    observed = None
    if truth is not None:
        _check_dataset(truth, "truth", ("time", "lat", "lon"))
        observed = nino34_index(truth["sst"], climatology)
    fig = Figure(figsize=(8.0, 4.2), layout="constrained")
    ax = fig.add_subplot()
    palette = ["tab:red", "tab:blue", "tab:green", "tab:purple", "tab:orange"]
    for colour, (name, forecast) in zip(palette * 4, forecasts.items(), strict=False):
        forecast = _check_forecast(forecast, f"forecasts[{name!r}]")
        recent = forecast.isel(init_time=slice(-last, None))
        stacked = recent["sst"].stack(sample=("init_time", "lead"))
        stacked = stacked.assign_coords(time=("sample", recent["valid_time"].values.ravel()))
        index = nino34_index(stacked, climatology).unstack("sample")
        for j, init in enumerate(recent["init_time"].values):
            times = recent["valid_time"].sel(init_time=init).values
            values = index.sel(init_time=init).values
            if observed is not None and init in observed["time"].values:
                # Start each member at the observed state of its issue time.
                times = np.concatenate([[init], times])
                values = np.concatenate([[float(observed.sel(time=init))], values])
                ax.plot(times[:1], values[:1], color=colour, marker="o", markersize=5,
                        linestyle="none")
            ax.plot(times, values, color=colour, alpha=0.75, linewidth=1.2, marker="o",
                    markersize=2.5, label=display_name(name) if j == 0 else None)
    if observed is not None:
        first = min(f["valid_time"].values.min() for f in forecasts.values())
        last_time = max(f["valid_time"].values.max() for f in forecasts.values())
        span = np.timedelta64(365, "D")
        observed = observed.sel(time=slice(first - span, last_time))
        ax.plot(observed["time"].values, observed.values, color="black", linewidth=2,
                label="observed")
    ax.axhline(0, color="0.5", linewidth=0.6) if climatology is not None else None
    for threshold in (0.5, -0.5) if climatology is not None else ():
        ax.axhline(threshold, color="0.6", linewidth=0.6, linestyle=":")
    kind = "anomaly" if climatology is not None else "SST"
    ax.set_ylabel(f"Niño3.4 {kind} [{UNITS}]")
    ax.set_xlabel("valid time")
    ax.set_title(f"Niño3.4 forecast plume ({_box_text()}), last {last} issue times\n"
                 "large dots: observed state at issue"
                 + ("; dotted: ±0.5 °C El Niño / La Niña thresholds" if climatology is not None
                    else ""), fontsize=10)
    locator = mdates.AutoDateLocator(minticks=4, maxticks=10)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return fig


_METRIC_LABELS = {
    "rmse": f"RMSE [{UNITS}]",
    "bias": f"bias [{UNITS}]",
    "acc": "anomaly correlation (ACC)",
    "mae": f"MAE [{UNITS}]",
    "skill_vs_climatology": "RMSE skill vs climatology",
    "skill_vs_persistence": "RMSE skill vs persistence",
}
# Why a reference forecast has no value of a metric (instead of silently no line).
_UNDEFINED = {("climatology", "acc"): "climatology: no ACC (its anomaly is zero)"}


def _region_label(name: str) -> str:
    return REGIONS[name].label if name in REGIONS else name


def _style(name: str, order: int) -> dict:
    """The model solid and thick, references dashed, one colour per forecast."""
    palette = ["tab:red", "tab:blue", "tab:green", "tab:purple", "tab:orange", "tab:brown"]
    reference = order > 0
    return dict(color=palette[order % len(palette)], linestyle="--" if reference else "-",
                linewidth=1.2 if reference else 2.0, marker="o", markersize=3)


def skill_vs_lead(
    table: pd.DataFrame, *, metrics: Sequence[str] = ("rmse", "acc"),
    region: str | Sequence[str] = "global", lead_units: str = "months",
) -> Figure:
    """Lines of each metric against lead, one line per forecast, one row per region.

    `table` is a long metrics table with columns ``lead``, ``region``, one column per metric
    and optionally ``forecast`` or ``model`` naming the forecast of each row (the S-MNN model
    and the baselines), as `pipeline.evaluation.metrics.evaluate` writes it. With a ``n_init``
    column a last panel shows how many issue times each lead was scored on. A forecast without any
    value of a metric is named in that panel rather than left out silently.
    """
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"table must be a pandas.DataFrame, got {type(table).__name__}")
    missing = {"lead", "region", *metrics} - set(table.columns)
    if missing:
        raise ValueError(f"table lacks columns {sorted(missing)}; it has {list(table.columns)}")
    regions = [region] if isinstance(region, str) else list(region)
    for name in regions:
        if name not in set(table["region"]):
            raise ValueError(f"region must be one of {sorted(table['region'].unique())}, "
                             f"got {name!r}")
    name_column = next((c for c in ("forecast", "model") if c in table), None)
    names = table[name_column] if name_column else pd.Series("forecast", index=table.index)
    order = list(dict.fromkeys(names))  # the model first, as evaluate writes it
    panels = [*metrics, *(["n_init"] if "n_init" in table else [])]
    fig = Figure(figsize=(3.9 * len(panels), 3.1 * len(regions) + 0.7), layout="constrained")
    grid = fig.subplots(len(regions), len(panels), squeeze=False)
    for row, name in zip(grid, regions, strict=True):
        rows = table[table["region"] == name]
        by_name = {key: group.sort_values("lead")
                   for key, group in rows.groupby(names[rows.index], sort=False)}
        shared_n = "n_init" in rows and rows.groupby("lead")["n_init"].nunique().max() == 1
        for ax, metric in zip(row, panels, strict=True):
            notes = []
            for key in order:
                group = by_name.get(key)
                if group is None:
                    continue
                if metric == "n_init":
                    if shared_n:  # every forecast scored on the same issue times: one line
                        ax.plot(group["lead"], group[metric], color="black", marker="o",
                                markersize=3)
                        break
                    ax.plot(group["lead"], group[metric], **_style(key, order.index(key)),
                            label=display_name(key))
                    continue
                if group[metric].isna().all():
                    notes.append(_UNDEFINED.get((str(key), metric),
                                                f"{display_name(key)}: no {metric.upper()}"))
                ax.plot(group["lead"], group[metric], **_style(key, order.index(key)),
                        label=display_name(key))
            if metric == "n_init":
                ax.set_ylabel("issue times scored")
                ax.set_ylim(bottom=0)
                ax.set_title(f"sample size, {_region_label(name)}", fontsize=10)
            else:
                ax.set_ylabel(_METRIC_LABELS.get(metric, metric))
                ax.set_title(f"{metric.upper()}, {_region_label(name)}", fontsize=10)
            if notes:
                ax.text(0.03, 0.03, "\n".join(notes), transform=ax.transAxes, fontsize=7,
                        color="0.3", va="bottom")
            if metric == "acc":
                ax.axhline(0.6, color="0.5", linewidth=0.7, linestyle=":")
            ax.set_xlabel(f"lead [{lead_units}]")
            ax.grid(alpha=0.3)
            ax.xaxis.get_major_locator().set_params(integer=True)
    handles, labels = grid[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 6),
               fontsize=8, frameon=False)
    if "acc" in metrics:
        fig.text(0.995, 0.005, "dotted: ACC 0.6, a common threshold of useful skill",
                 ha="right", va="bottom", fontsize=6.5, color="0.4")
    return fig


# --------------------------------------------------------------------------- files


def save_figure(fig: Figure, path: str | os.PathLike, *, dpi: int = 150) -> Path:
    """Write `fig` as PNG (or the format of the suffix) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, facecolor="white")
    return path


def _default_leads(forecast: xr.Dataset) -> list[int]:
    """The first and the last lead."""
    values = [int(v) for v in forecast["lead"].values]
    return sorted({values[0], values[-1]})


def write_forecast_maps(
    forecast: xr.Dataset, out_dir: str | os.PathLike, *, truth: xr.Dataset | None = None,
    climatology: xr.DataArray | None = None, metrics: pd.DataFrame | None = None,
    parameters: xr.Dataset | None = None, leads: Sequence[int] | None = None,
    baselines: Mapping[str, xr.Dataset] | None = None,
) -> dict[str, Path]:
    """Draw the standard figures of a forecast run into `out_dir`; returns name -> PNG path.

    ``sst`` (forecast SST) and, with a climatology (by default the truth's over the
    forecast's `climatology_start/_end` attributes), ``anomaly``; with the truth ``error``,
    ``bias`` and ``nino34_plume``; with a metrics table ``skill_vs_lead``; with
    interpretation `parameters` ``parameters``. Each map figure shows `leads` (default: the
    first and the last lead) side by side on one shared colour scale.
    """
    forecast = _check_forecast(forecast)
    out = Path(out_dir)
    leads = list(leads) if leads is not None else _default_leads(forecast)
    if truth is not None and climatology is None:
        # Anomalies against the training period when the forecast store names it.
        climatology = monthly_climatology(truth, start=forecast.attrs.get("climatology_start"),
                                          end=forecast.attrs.get("climatology_end"))
    written: dict[str, Path] = {}

    def draw(name: str, fig: Figure) -> None:
        written[name] = save_figure(fig, out / f"{name}.png")

    if metrics is not None:
        regions = [r for r in ("global", "nino34") if r in set(metrics["region"])]
        draw("skill_vs_lead", skill_vs_lead(metrics, region=regions or "global"))
    if _covers_nino34(forecast):
        stores = {str(forecast.attrs.get("model", "forecast")): forecast,
                  **dict(baselines or {})}
        draw("nino34_plume", nino34_plume(stores, truth, climatology=climatology))
    if climatology is not None:
        draw("anomaly", forecast_anomaly_map(forecast, climatology, lead=leads))
    draw("sst", forecast_sst_map(forecast, lead=leads))
    verified = [lead for lead in leads if truth is not None and _has_truth(forecast, truth, lead)]
    if verified:
        draw("error", error_map(forecast, truth, lead=verified))
        draw("bias", bias_map(forecast, truth, lead=verified))
    if parameters is not None:
        draw("parameters", parameter_maps(parameters))
    return written


def _has_truth(forecast: xr.Dataset, truth: xr.Dataset, lead: int) -> bool:
    valid = forecast["valid_time"].sel(lead=lead).values
    return bool(np.isin(valid, truth["time"].values).any())


def _latest_verified_init(forecast: xr.Dataset, truth: xr.Dataset, lead: int):
    valid = forecast["valid_time"].sel(lead=lead).values
    known = np.isin(valid, truth["time"].values)
    return forecast["init_time"].values[np.flatnonzero(known)[-1]]


def _covers_nino34(forecast: xr.Dataset) -> bool:
    lat, lon = forecast["lat"].values, forecast["lon"].values
    return bool(((lat >= _SOUTH) & (lat <= _NORTH)).any()
                and ((lon >= _WEST) & (lon <= _EAST)).any())
