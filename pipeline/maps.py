"""Publication maps and skill plots for SST forecasts (cartopy + matplotlib).

Array-level functions that take xarray objects in the DESIGN.md §3 formats and return a
`matplotlib.figure.Figure` (no pyplot, no global state: safe in threads, servers and tests):

- forecast store: ``sst`` (init_time, lead, lat, lon) °C, coordinate ``valid_time(init_time, lead)``
- truth store: ``sst`` (time, lat, lon) °C, ``mask`` (lat, lon) bool ocean
- climatology: (month, lat, lon) °C, month 1..12 (see `monthly_climatology`)

Land is drawn from the data's own mask. Coastlines come from Natural Earth shapefiles only
when they are already on disk (``CARTOPY_DATA_DIR`` or cartopy's data dir); cartopy is never
asked to download anything. `write_forecast_maps` draws the standard set for a forecast run.
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
from matplotlib.figure import Figure

UNITS = "°C"
NINO34 = {"lat": (-5.0, 5.0), "lon": (190.0, 240.0)}  # 5S-5N, 170W-120W in 0..360 longitudes
LAND_COLOUR = "#d9d4c7"
_COASTLINE = Path("shapefiles", "natural_earth", "physical")

__all__ = [
    "bias_map",
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


def _pick_lead(forecast: xr.Dataset, lead: int | None) -> xr.Dataset:
    """Select one lead (default: the first) from a forecast store."""
    if lead is None:
        return forecast.isel(lead=0)
    if int(lead) not in forecast["lead"].values:
        raise ValueError(f"lead must be one of {forecast['lead'].values.tolist()}, got {lead!r}")
    return forecast.sel(lead=int(lead))


def _ocean_mask(ds: xr.Dataset, field: xr.DataArray) -> xr.DataArray:
    """The (lat, lon) bool ocean mask: the data's own `mask`, else where the field is finite."""
    if "mask" in ds:
        return ds["mask"].astype(bool)
    finite = np.isfinite(field)
    extra = [d for d in finite.dims if d not in ("lat", "lon")]
    return finite.any(extra) if extra else finite


def _lead_label(forecast: xr.Dataset, lead: int) -> str:
    units = str(forecast["lead"].attrs.get("units", "steps"))
    units = units[:-1] if int(lead) == 1 and units.endswith("s") else units
    return f"lead {int(lead)} {units}"


def _date(value) -> str:
    return pd.Timestamp(value).strftime("%Y-%m-%d")


def monthly_climatology(truth: xr.Dataset, *, start=None, end=None) -> xr.DataArray:
    """Calendar-month mean SST of a truth store: (month, lat, lon) °C, month 1..12.

    `start`/`end` restrict it to a reference (training) period.
    """
    sst = _check_dataset(truth, "truth", ("time", "lat", "lon")).sel(time=slice(start, end))
    if sst.sizes["time"] == 0:
        raise ValueError(f"truth has no time steps between start={start!r} and end={end!r}")
    return sst.groupby("time.month").mean("time")


def _anomaly(field: xr.DataArray, climatology: xr.DataArray, when) -> xr.DataArray:
    """`field` (lat, lon) minus the climatology of the calendar month of `when`."""
    month = pd.Timestamp(when).month
    if month not in climatology["month"].values:
        raise ValueError(f"climatology has no month {month}; it covers "
                         f"{climatology['month'].values.tolist()}")
    return field - climatology.sel(month=month, drop=True)


# --------------------------------------------------------------------------- drawing


def natural_earth_coastlines(resolution: str = "110m") -> Path | None:
    """Path of the Natural Earth coastline shapefile if it is already on disk, else None.

    Looks in ``$CARTOPY_DATA_DIR``, cartopy's ``pre_existing_data_dir`` and ``data_dir``,
    in that order. Never downloads.
    """
    roots = [
        os.environ.get("CARTOPY_DATA_DIR"),
        cartopy.config.get("pre_existing_data_dir"),
        cartopy.config.get("data_dir"),
    ]
    name = f"ne_{resolution}_coastline.shp"
    for root in roots:
        if root and str(root) not in ("", "."):
            path = Path(root) / _COASTLINE / name
            if path.is_file():
                return path
    return None


def _projection(lat: np.ndarray, lon: np.ndarray) -> tuple[ccrs.Projection, list | None]:
    """Robinson for (near-)global grids, else Plate Carrée cut to the data's extent."""
    global_grid = np.ptp(lon) > 300 and np.ptp(lat) > 120
    if global_grid:
        return ccrs.Robinson(central_longitude=180), None
    lat_edges, lon_edges = _cell_edges(lat, -90, 90), _cell_edges(lon, -360, 720)
    extent = [float(lon_edges[0]), float(lon_edges[-1]), float(lat_edges[0]),
              float(lat_edges[-1])]
    return ccrs.PlateCarree(central_longitude=float(np.mean(lon_edges[[0, -1]]))), extent


def _map_size(field: xr.DataArray, width: float) -> tuple[float, float]:
    """Figure (width, height) in inches for one map plus title and colourbar."""
    _, extent = _projection(field["lat"].values, field["lon"].values)
    aspect = 0.5 if extent is None else (extent[3] - extent[2]) / (extent[1] - extent[0])
    return width, width * min(max(aspect, 0.2), 1.2) + 1.4


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
    """Discrete colour levels from robust (1st-99th percentile) limits of finite `values`."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        raise ValueError("the field to draw has no finite ocean values (a blank map)")
    if symmetric:
        top = float(np.percentile(np.abs(finite), 98))
        top = top if top > 0 else 1.0
        step = _nice_step(2 * top, target + 4)
        top = step * math.ceil(top / step)
        return np.arange(-top, top + step / 2, step)
    low, high = (float(v) for v in np.percentile(finite, [1, 99]))
    if high <= low:
        low, high = low - 0.5, high + 0.5
    step = _nice_step(high - low, target)
    low, high = step * math.floor(low / step), step * math.ceil(high / step)
    return np.arange(low, high + step / 2, step)


def _draw_field(
    ax,
    field: xr.DataArray,
    mask: xr.DataArray,
    *,
    cmap: str,
    symmetric: bool,
    label: str,
    title: str,
    levels: np.ndarray | None = None,
    max_ticks: int = 7,
):
    """Draw a (lat, lon) field on a cartopy GeoAxes with land grey and an own colourbar."""
    field = field.transpose("lat", "lon")
    ocean = mask.transpose("lat", "lon").values.astype(bool)
    lat, lon = field["lat"].values, field["lon"].values
    values = np.where(ocean, field.values.astype(float), np.nan)
    if levels is None:
        levels = _levels(values, symmetric=symmetric)
    norm = colors.BoundaryNorm(levels, ncolors=256, extend="both")
    x, y = _projected_corners(ax.projection, lat, lon)
    # Corners are projected once here and drawn in map coordinates: cartopy's own
    # pcolormesh re-projects and splits the cells at the map edge, several times slower.
    mesh = ax.pcolormesh(x, y, np.ma.masked_invalid(values), cmap=cmap, norm=norm,
                         transform=ax.projection, rasterized=True)
    land = np.ma.masked_where(ocean, np.ones_like(values))
    ax.pcolormesh(x, y, land, cmap=colors.ListedColormap([LAND_COLOUR]),
                  transform=ax.projection, rasterized=True)
    data_crs = ccrs.PlateCarree()
    coastlines = natural_earth_coastlines()
    if coastlines is not None:
        ax.add_geometries(shapereader.Reader(str(coastlines)).geometries(), crs=data_crs,
                          facecolor="none", edgecolor="0.25", linewidth=0.4)
    ax.set_title(title, fontsize=10)
    bar = ax.figure.colorbar(mesh, ax=ax, orientation="horizontal", shrink=0.75, pad=0.05,
                             aspect=35, extend="both")
    # At most ~7 labelled ticks, keeping 0 on diverging scales, so small panels stay legible.
    every = max(1, math.ceil(len(levels) / max_ticks))
    bar.set_ticks(levels[(len(levels) // 2) % every :: every] if symmetric else levels[::every])
    bar.set_label(label)
    return mesh


def _map_axes(fig: Figure, field: xr.DataArray, position: tuple[int, int, int] = (1, 1, 1)):
    projection, extent = _projection(field["lat"].values, field["lon"].values)
    ax = fig.add_subplot(*position, projection=projection)
    if extent is None:
        ax.set_global()
    else:
        ax.set_extent(extent, crs=ccrs.PlateCarree())
    if extent is None:
        _graticule(ax)
    else:
        gridlines = ax.gridlines(draw_labels=True, linewidth=0.3, color="0.5", alpha=0.6,
                                 linestyle="--", xlocs=np.arange(-180, 181, 30),
                                 ylocs=np.arange(-60, 61, 15))
        gridlines.top_labels = gridlines.right_labels = False
    return ax


def _graticule(ax) -> None:
    """Meridians every 60° and parallels every 30°, projected once as plain lines (cartopy's
    gridlines re-project every line on each draw, most of a global map's drawing time)."""
    source = ccrs.PlateCarree()
    lines = [(np.full(181, lon), np.linspace(-90, 90, 181)) for lon in range(-180, 180, 60)]
    lines += [(np.linspace(-180, 180, 361), np.full(361, lat)) for lat in (-60, -30, 0, 30, 60)]
    for lon, lat in lines:
        xyz = ax.projection.transform_points(source, lon + 1e-6, lat)
        ax.plot(xyz[:, 0], xyz[:, 1], transform=ax.transData, color="0.5", linewidth=0.3,
                alpha=0.6, linestyle="--", zorder=3)


def _single_map(field, mask, *, cmap, symmetric, label, title) -> Figure:
    fig = Figure(figsize=_map_size(field, 8.0), layout="constrained")
    ax = _map_axes(fig, field)
    _draw_field(ax, field, mask, cmap=cmap, symmetric=symmetric, label=label, title=title)
    return fig


def _model_name(forecast: xr.Dataset) -> str:
    return str(forecast.attrs.get("model", forecast.attrs.get("run", "forecast")))


# --------------------------------------------------------------------------- maps


def forecast_sst_map(
    forecast: xr.Dataset, *, init_time=None, lead: int | None = None,
    mask: xr.DataArray | None = None,
) -> Figure:
    """Map of forecast SST (°C) for one init_time (default latest) and lead (default first)."""
    _check_dataset(forecast, "forecast", ("init_time", "lead", "lat", "lon"))
    one = _pick_lead(_pick_init(forecast, init_time), lead)
    mask = _ocean_mask(forecast, one["sst"]) if mask is None else mask
    title = (f"{_model_name(forecast)} SST forecast for {_date(one['valid_time'].values)}\n"
             f"issued {_date(one['init_time'].values)}, {_lead_label(forecast, one['lead'])}")
    return _single_map(one["sst"], mask, cmap="RdYlBu_r", symmetric=False,
                       label=f"sea-surface temperature [{UNITS}]", title=title)


def forecast_anomaly_map(
    forecast: xr.Dataset, climatology: xr.DataArray, *, init_time=None,
    lead: int | None = None, mask: xr.DataArray | None = None,
) -> Figure:
    """Map of the forecast SST anomaly (°C) against a (month, lat, lon) climatology."""
    _check_dataset(forecast, "forecast", ("init_time", "lead", "lat", "lon"))
    one = _pick_lead(_pick_init(forecast, init_time), lead)
    anomaly = _anomaly(one["sst"], climatology, one["valid_time"].values)
    mask = _ocean_mask(forecast, one["sst"]) if mask is None else mask
    title = (f"{_model_name(forecast)} SST anomaly forecast for "
             f"{_date(one['valid_time'].values)}\nissued {_date(one['init_time'].values)}, "
             f"{_lead_label(forecast, one['lead'])}, against the monthly climatology")
    return _single_map(anomaly, mask, cmap="RdBu_r", symmetric=True,
                       label=f"SST anomaly [{UNITS}]", title=title)


def _paired(forecast: xr.Dataset, truth: xr.Dataset, lead: int | None):
    """Forecast at one lead and the truth at its valid times: two (init_time, lat, lon) arrays."""
    _check_dataset(forecast, "forecast", ("init_time", "lead", "lat", "lon"))
    _check_dataset(truth, "truth", ("time", "lat", "lon"))
    one = _pick_lead(forecast, lead)
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
    forecast: xr.Dataset, truth: xr.Dataset, *, init_time=None, lead: int | None = None,
) -> Figure:
    """Map of forecast minus observed SST (°C) for one init_time and lead."""
    _check_dataset(forecast, "forecast", ("init_time", "lead", "lat", "lon"))
    chosen = forecast.isel(init_time=[_init_position(forecast, init_time)])
    one, observed = _paired(chosen, truth, lead)
    error = (one["sst"] - observed).isel(init_time=0)
    mask = _ocean_mask(truth, truth["sst"])
    title = (f"{_model_name(forecast)} error (forecast − observed) for "
             f"{_date(one['valid_time'].values[0])}\nissued "
             f"{_date(one['init_time'].values[0])}, {_lead_label(forecast, one['lead'])}")
    return _single_map(error, mask, cmap="RdBu_r", symmetric=True,
                       label=f"forecast error [{UNITS}]", title=title)


def bias_map(forecast: xr.Dataset, truth: xr.Dataset, *, lead: int | None = None) -> Figure:
    """Map of the mean forecast error (°C) at one lead, over all init_times with truth."""
    one, observed = _paired(forecast, truth, lead)
    bias = (one["sst"] - observed).mean("init_time")
    mask = _ocean_mask(truth, truth["sst"])
    n = one.sizes["init_time"]
    title = (f"{_model_name(forecast)} mean bias, {_lead_label(forecast, one['lead'])}\n"
             f"{n} forecasts issued {_date(one['init_time'].values.min())} to "
             f"{_date(one['init_time'].values.max())}")
    return _single_map(bias, mask, cmap="RdBu_r", symmetric=True,
                       label=f"mean bias (forecast − observed) [{UNITS}]", title=title)


def parameter_maps(
    parameters: xr.Dataset, *, mask: xr.DataArray | None = None, max_panels: int = 12,
    columns: int = 3,
) -> Figure:
    """Small-multiple maps of learned latents and ODE parameters.

    `parameters` holds variables with dims (lat, lon) or (k, lat, lon) (one panel per k, e.g.
    latent index or ODE coefficient); the first `max_panels` panels are drawn, each with its
    own colour scale (diverging when the field changes sign, sequential otherwise).
    """
    if not isinstance(parameters, xr.Dataset):
        raise TypeError(f"parameters must be an xarray.Dataset, got {type(parameters).__name__}")
    panels = []
    for name, var in parameters.data_vars.items():
        if "lat" not in var.dims or "lon" not in var.dims:
            continue
        extra = [d for d in var.dims if d not in ("lat", "lon")]
        var = var.transpose(*extra, "lat", "lon")
        for index in np.ndindex(*(var.sizes[d] for d in extra)):
            where = dict(zip(extra, index, strict=True))
            labels = ", ".join(f"{d}={var[d].values[i] if d in var.coords else i}"
                               for d, i in where.items())
            title = f"{name} ({labels})" if labels else str(name)
            panels.append((title, var.isel(where), var.attrs))
    if not panels:
        raise ValueError("parameters has no variable with dims (..., lat, lon), got "
                         f"{ {k: v.dims for k, v in parameters.data_vars.items()} }")
    panels = panels[:max_panels]
    columns = min(columns, len(panels))
    rows = math.ceil(len(panels) / columns)
    fig = Figure(figsize=(4.2 * columns, 3.4 * rows + 0.4), layout="constrained")
    for i, (title, field, attrs) in enumerate(panels):
        ocean = _ocean_mask(parameters, field) if mask is None else mask
        ax = _map_axes(fig, field, position=(rows, columns, i + 1))
        values = field.where(ocean).values
        finite = values[np.isfinite(values)]
        symmetric = finite.size > 0 and finite.min() < 0 < finite.max()
        units = attrs.get("units", "")
        _draw_field(ax, field, ocean, cmap="RdBu_r" if symmetric else "viridis",
                    symmetric=symmetric, label=units or "value (dimensionless)", title=title,
                    max_ticks=5)
    fig.suptitle(str(parameters.attrs.get("title", "Learned latents and ODE parameters")))
    return fig


# --------------------------------------------------------------------------- indices and lines


def nino34_index(sst: xr.DataArray, climatology: xr.DataArray | None = None,
                 time_dim: str = "time") -> xr.DataArray:
    """Area-weighted (cos lat) mean over ocean in Niño3.4 (5S-5N, 170W-120W).

    `sst` has dims (..., lat, lon) with longitudes 0..360; with a (month, lat, lon)
    `climatology` the index is an anomaly, the month taken from coordinate `time_dim`.
    Returns the index with the remaining dims, °C.
    """
    box = sst.sel(lat=slice(*NINO34["lat"]), lon=slice(*NINO34["lon"]))
    if box.sizes["lat"] == 0 or box.sizes["lon"] == 0:
        raise ValueError("sst does not cover the Niño3.4 box (5S-5N, 190-240E in 0..360 lon)")
    if climatology is not None:
        months = box[time_dim].dt.month
        clim = climatology.sel(lat=box["lat"], lon=box["lon"]).sel(month=months)
        box = box - clim.drop_vars("month")
    weights = np.cos(np.deg2rad(box["lat"])) * xr.ones_like(box["lon"], dtype=float)
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
        _check_dataset(forecast, f"forecasts[{name!r}]", ("init_time", "lead", "lat", "lon"))
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
                    markersize=2.5, label=name if j == 0 else None)
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
    ax.set_title("Niño3.4 forecast plume (5°S–5°N, 170°W–120°W); large dots: issue times")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return fig


_METRIC_LABELS = {
    "rmse": f"RMSE [{UNITS}]",
    "bias": f"bias [{UNITS}]",
    "acc": "anomaly correlation (ACC)",
    "mae": f"MAE [{UNITS}]",
}


def skill_vs_lead(
    table: pd.DataFrame, *, metrics: Sequence[str] = ("rmse", "acc"), region: str = "global",
    lead_units: str = "months",
) -> Figure:
    """Lines of each metric against lead, one line per model, for one region.

    `table` is a long metrics table with columns ``lead``, ``region``, one column per metric
    and optionally ``forecast`` or ``model`` naming the forecast of each row (the S-MNN model
    and the baselines), as `pipeline.metrics.evaluate` writes it.
    """
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"table must be a pandas.DataFrame, got {type(table).__name__}")
    missing = {"lead", "region", *metrics} - set(table.columns)
    if missing:
        raise ValueError(f"table lacks columns {sorted(missing)}; it has {list(table.columns)}")
    rows = table[table["region"] == region]
    if rows.empty:
        raise ValueError(f"region must be one of {sorted(table['region'].unique())}, "
                         f"got {region!r}")
    name_column = next((c for c in ("forecast", "model") if c in rows), None)
    models = rows[name_column] if name_column else pd.Series("forecast", index=rows.index)
    fig = Figure(figsize=(4.2 * len(metrics), 3.6), layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, metric in zip(axes, metrics, strict=True):
        for name, group in rows.groupby(models, sort=False):
            group = group.sort_values("lead")
            style = "-" if str(name) not in ("climatology", "persistence") else "--"
            ax.plot(group["lead"], group[metric], style, marker="o", markersize=3, label=name)
        ax.set_xlabel(f"lead [{lead_units}]")
        ax.set_ylabel(_METRIC_LABELS.get(metric, metric))
        ax.set_title(f"{metric.upper()} against lead, {region}", fontsize=10)
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    axes[0].legend(fontsize=8)
    return fig


# --------------------------------------------------------------------------- files


def save_figure(fig: Figure, path: str | os.PathLike, *, dpi: int = 150) -> Path:
    """Write `fig` as PNG (or the format of the suffix) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, facecolor="white")
    return path


def write_forecast_maps(
    forecast: xr.Dataset, out_dir: str | os.PathLike, *, truth: xr.Dataset | None = None,
    climatology: xr.DataArray | None = None, metrics: pd.DataFrame | None = None,
    parameters: xr.Dataset | None = None, leads: Sequence[int] | None = None,
    baselines: Mapping[str, xr.Dataset] | None = None,
) -> dict[str, Path]:
    """Draw the standard maps of a forecast run into `out_dir`; returns name -> PNG path.

    Always the forecast SST per lead (default: first and last lead); with a climatology (by
    default the truth's over the forecast's `climatology_start/_end` attributes) the anomaly;
    with the truth the error, bias and Niño3.4 plume; with a metrics table the
    RMSE/ACC-against-lead lines; with interpretation `parameters` their maps.
    """
    out = Path(out_dir)
    leads = list(leads) if leads is not None else sorted({int(forecast["lead"][0]),
                                                         int(forecast["lead"][-1])})
    if truth is not None and climatology is None:
        # Anomalies against the training period when the forecast store names it.
        climatology = monthly_climatology(truth, start=forecast.attrs.get("climatology_start"),
                                          end=forecast.attrs.get("climatology_end"))
    written: dict[str, Path] = {}
    for lead in leads:
        written[f"sst_lead{lead}"] = save_figure(
            forecast_sst_map(forecast, lead=lead), out / f"sst_lead{lead}.png")
        if climatology is not None:
            written[f"anomaly_lead{lead}"] = save_figure(
                forecast_anomaly_map(forecast, climatology, lead=lead),
                out / f"anomaly_lead{lead}.png")
        if truth is not None and _has_truth(forecast, truth, lead):
            written[f"bias_lead{lead}"] = save_figure(
                bias_map(forecast, truth, lead=lead), out / f"bias_lead{lead}.png")
            latest = _latest_verified_init(forecast, truth, lead)
            written[f"error_lead{lead}"] = save_figure(
                error_map(forecast, truth, init_time=latest, lead=lead),
                out / f"error_lead{lead}.png")
    if _covers_nino34(forecast):
        stores = {_model_name(forecast): forecast, **dict(baselines or {})}
        written["nino34_plume"] = save_figure(
            nino34_plume(stores, truth, climatology=climatology), out / "nino34_plume.png")
    if metrics is not None:
        written["skill_vs_lead"] = save_figure(skill_vs_lead(metrics), out / "skill_vs_lead.png")
    if parameters is not None:
        written["parameters"] = save_figure(parameter_maps(parameters), out / "parameters.png")
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
    return bool(((lat >= -5) & (lat <= 5)).any() and ((lon >= 190) & (lon <= 240)).any())
