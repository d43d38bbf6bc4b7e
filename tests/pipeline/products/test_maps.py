"""pipeline.products.maps: real cartopy PNGs from forecast-format datasets built here."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from matplotlib.figure import Figure

from pipeline.products import maps

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def mock_truth(resolution: float = 4.0, months: int = 48, seed: int = 3) -> xr.Dataset:
    """A truth store: SST warm at the equator, a seasonal cycle, an ENSO-like Pacific bump,
    red noise, and two rectangular 'continents' of land (NaN, mask False)."""
    rng = np.random.default_rng(seed)
    lat = np.arange(-90 + resolution / 2, 90, resolution)
    lon = np.arange(resolution / 2, 360, resolution)
    time = pd.date_range("2000-01-01", periods=months, freq="MS")
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    base = 28.0 * np.cos(np.deg2rad(la)) ** 2 - 1.0
    season = 3.0 * np.sin(2 * np.pi * (time.month.values - 3) / 12)[:, None, None] * np.sin(
        np.deg2rad(la))
    enso = np.sin(2 * np.pi * np.arange(months) / 40.0)[:, None, None] * 1.5 * np.exp(
        -((la / 10) ** 2) - ((lo - 220) / 40) ** 2)
    noise = 0.2 * rng.standard_normal((months, lat.size, lon.size))
    land = ((lo > 280) & (lo < 320) & (la > -50) & (la < 60)) | (
        (lo > 10) & (lo < 50) & (la > -35) & (la < 40)) | (la < -70)
    sst = (base + season + enso + noise).astype("float32")
    sst[:, land] = np.nan
    return xr.Dataset(
        {"sst": (("time", "lat", "lon"), sst, {"units": "degC"}),
         "mask": (("lat", "lon"), ~land)},
        coords={"time": time, "lat": lat, "lon": lon},
    )


def mock_forecast(full: xr.Dataset, inits: int = 8, leads: int = 6, error: float = 0.5,
                  seed: int = 5, model: str = "smnn") -> xr.Dataset:
    """A forecast store issued monthly from `full` (a longer truth, so valid times stay inside
    it): the observed field plus red-noise error growing like sqrt(lead) and a warm bias of
    0.1 °C per lead. The last init is `leads` months before the end of `full`."""
    rng = np.random.default_rng(seed)
    times = full["time"].values
    init_idx = np.arange(times.size - leads - inits, times.size - leads)
    lead = np.arange(1, leads + 1)
    valid = times[init_idx[:, None] + lead[None, :]]
    observed = full["sst"].values[init_idx[:, None] + lead[None, :]]
    spread = error * np.sqrt(lead)[None, :, None, None]
    noise = spread * rng.standard_normal(observed.shape)
    sst = (observed + 0.1 * lead[None, :, None, None] + noise).astype("float32")
    return xr.Dataset(
        {"sst": (("init_time", "lead", "lat", "lon"), sst, {"units": "degC"})},
        coords={"init_time": times[init_idx], "lead": ("lead", lead, {"units": "months"}),
                "lat": full["lat"], "lon": full["lon"],
                "valid_time": (("init_time", "lead"), valid)},
        attrs={"model": model},
    )


@pytest.fixture(scope="module")
def stores():
    """(truth, forecast, full): truth ends before the forecast's last valid times."""
    full = mock_truth(months=60)
    return full.isel(time=slice(0, 52)), mock_forecast(full), full


def axes_values(fig: Figure) -> list[np.ndarray]:
    """The colour-mapped ocean arrays of every map panel (the first mesh of each GeoAxes)."""
    out = []
    for ax in fig.axes:
        if not hasattr(ax, "projection"):  # a colourbar
            continue
        meshes = [c for c in ax.collections
                  if getattr(c, "get_array", lambda: None)() is not None and c.get_cmap().N > 1]
        if meshes:
            out.append(np.ma.filled(meshes[0].get_array().astype(float), np.nan))
    return out


def test_forecast_map_draws_ocean_values_and_leaves_land_out(stores, tmp_path):
    truth, forecast, _ = stores
    fig = maps.forecast_sst_map(forecast, lead=3)
    (drawn,) = axes_values(fig)
    ocean = truth["mask"].values
    latest = forecast["sst"].isel(init_time=-1).sel(lead=3).values
    np.testing.assert_allclose(drawn.reshape(ocean.shape)[ocean], latest[ocean], rtol=1e-6)
    assert np.isnan(drawn.reshape(ocean.shape)[~ocean]).all()
    path = maps.save_figure(fig, tmp_path / "sst.png")
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_error_map_shows_forecast_minus_observed_at_the_valid_time(stores):
    truth, forecast, _ = stores
    init = forecast["init_time"].values[0]
    (drawn,) = axes_values(maps.error_map(forecast, truth, init_time=init, lead=2))
    valid = forecast["valid_time"].sel(init_time=init, lead=2).values
    expected = forecast["sst"].sel(init_time=init, lead=2) - truth["sst"].sel(time=valid)
    ocean = truth["mask"].values
    np.testing.assert_allclose(drawn.reshape(ocean.shape)[ocean], expected.values[ocean],
                               rtol=1e-5, atol=1e-5)


def test_bias_map_recovers_the_built_in_warm_bias(stores):
    truth, forecast, _ = stores
    (drawn,) = axes_values(maps.bias_map(forecast, truth, lead=4))
    # mock_forecast adds +0.1 °C per lead: the mean over ocean is the bias 0.4 °C
    assert np.nanmean(drawn) == pytest.approx(0.4, abs=0.05)


def test_anomaly_map_removes_the_calendar_month_climatology(stores):
    truth, forecast, full = stores
    climatology = maps.monthly_climatology(full)
    (drawn,) = axes_values(maps.forecast_anomaly_map(forecast, climatology, lead=1))
    assert abs(np.nanmean(drawn)) < 1.0  # the raw field averages ~15 °C


def test_error_map_without_matching_truth_says_so(stores):
    truth, forecast, _ = stores
    with pytest.raises(ValueError, match="truth covers none"):
        maps.error_map(forecast, truth.isel(time=slice(0, 10)), lead=1)


def test_unknown_lead_and_init_are_named_in_the_error(stores):
    _, forecast, _ = stores
    with pytest.raises(ValueError, match="lead must be one of"):
        maps.forecast_sst_map(forecast, lead=99)
    with pytest.raises(ValueError, match="init_time must be one of"):
        maps.forecast_sst_map(forecast, init_time="1990-01-01")


def test_a_truth_shaped_dataset_is_refused_as_forecast(stores):
    truth, _, _ = stores
    with pytest.raises(ValueError, match=r"forecast.sst must have dims"):
        maps.forecast_sst_map(truth)


def test_an_all_land_field_raises_instead_of_drawing_a_blank_map(stores):
    _, forecast, _ = stores
    with pytest.raises(ValueError, match="blank map"):
        maps.forecast_sst_map(forecast, mask=xr.zeros_like(forecast["sst"][0, 0], dtype=bool))


def test_nino34_index_is_the_cos_lat_weighted_box_mean(stores):
    truth, _, _ = stores
    index = maps.nino34_index(truth["sst"])
    box = truth["sst"].sel(lat=slice(-5, 5), lon=slice(190, 240))
    weights = np.cos(np.deg2rad(box["lat"]))
    expected = box.weighted(weights).mean(("lat", "lon"))
    np.testing.assert_allclose(index.values, expected.values, rtol=1e-6)


def test_plume_draws_one_line_per_init_plus_the_observations(stores):
    truth, forecast, full = stores
    fig = maps.nino34_plume({"smnn": forecast, "persistence": forecast + 0.3}, truth,
                            climatology=maps.monthly_climatology(full), last=4)
    labels = [line.get_label() for line in fig.axes[0].lines]
    assert "observed" in labels and "S-MNN" in labels and "persistence" in labels
    members = [line for line in fig.axes[0].lines
               if line.get_marker() == "o" and len(line.get_xdata()) > 1]
    assert len(members) == 2 * 4


def test_skill_vs_lead_plots_each_model_and_checks_columns():
    table = pd.DataFrame([{"forecast": m, "region": r, "lead": k, "rmse": s * k,
                           "acc": 1 - s * k / 10}
                          for m, s in [("smnn", 0.3), ("persistence", 0.5)]
                          for r in ("global", "nino34") for k in (1, 2, 3)])
    fig = maps.skill_vs_lead(table, region="nino34")
    assert len(fig.axes) == 2
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["S-MNN", "persistence"]
    rmse_lines = {line.get_label(): line.get_ydata().tolist() for line in fig.axes[0].lines}
    assert rmse_lines["persistence"] == pytest.approx([0.5, 1.0, 1.5])
    with pytest.raises(ValueError, match="lacks columns"):
        maps.skill_vs_lead(table.drop(columns="acc"))
    with pytest.raises(ValueError, match="region must be one of"):
        maps.skill_vs_lead(table, region="arctic")


def test_parameter_maps_draw_one_panel_per_latent(stores):
    truth, _, _ = stores
    rng = np.random.default_rng(11)
    shape = (truth.sizes["lat"], truth.sizes["lon"])
    parameters = xr.Dataset(
        {"latent": (("k", "lat", "lon"), rng.standard_normal((3, *shape))),
         "damping": (("lat", "lon"), rng.uniform(0.1, 0.9, shape))},
        coords={"lat": truth["lat"], "lon": truth["lon"]},
    )
    fig = maps.parameter_maps(parameters, mask=truth["mask"])
    assert len(axes_values(fig)) == 4
    with pytest.raises(ValueError, match="no variable with dims"):
        maps.parameter_maps(xr.Dataset({"x": ("k", [1.0])}))


def test_regional_grid_uses_its_own_extent(stores):
    _, forecast, _ = stores
    pacific = forecast.sel(lat=slice(-30, 30), lon=slice(120, 290))
    fig = maps.forecast_sst_map(pacific)
    west, east, south, north = fig.axes[0].get_extent()  # in the map's own projection
    # cell edges 120..292 E and 30 S..30 N of the 4° grid
    assert (east - west, north - south) == pytest.approx((172, 60), abs=0.5)


def test_coastlines_come_from_files_on_disk_else_the_bundled_copy(tmp_path, monkeypatch):
    monkeypatch.setenv("CARTOPY_DATA_DIR", str(tmp_path))
    monkeypatch.setitem(maps.cartopy.config, "data_dir", str(tmp_path / "none"))
    monkeypatch.setitem(maps.cartopy.config, "pre_existing_data_dir", "")
    bundled = maps.natural_earth_coastlines()
    assert bundled is not None and bundled.is_relative_to(maps.BUNDLED_DATA)
    assert maps.natural_earth_coastlines(bundled=False) is None
    shp = tmp_path / "shapefiles" / "natural_earth" / "physical" / "ne_110m_coastline.shp"
    shp.parent.mkdir(parents=True)
    shp.write_bytes(b"")
    assert maps.natural_earth_coastlines() == shp


def _coastline_artists(fig: Figure) -> list:
    from cartopy.mpl.feature_artist import FeatureArtist

    return [c for ax in fig.axes for c in getattr(ax, "collections", [])
            if isinstance(c, FeatureArtist)]


def test_maps_draw_coastlines_without_touching_the_network(stores, tmp_path, monkeypatch):
    import urllib.request

    import cartopy.io

    def refuse(*args, **kwargs):
        raise AssertionError("cartopy tried the network")

    monkeypatch.setattr(cartopy.io.Downloader, "acquire_resource", refuse)
    monkeypatch.setattr(cartopy.io, "urlopen", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setitem(maps.cartopy.config, "data_dir", str(tmp_path / "empty"))
    monkeypatch.setitem(maps.cartopy.config, "pre_existing_data_dir", "")
    monkeypatch.delenv("CARTOPY_DATA_DIR", raising=False)
    truth, forecast, _ = stores
    for fig in (maps.forecast_sst_map(forecast, lead=[1, 6]),
                maps.forecast_sst_map(forecast.sel(lat=slice(-30, 30), lon=slice(120, 290)))):
        drawn = _coastline_artists(fig)
        assert len(drawn) == len(axes_values(fig)) >= 1
        maps.save_figure(fig, tmp_path / "coast.png")  # drawing reads the shapefile lazily
        assert not any(maps.NO_COASTLINES in t.get_text() for ax in fig.axes for t in ax.texts)


def test_a_map_says_so_when_no_coastline_file_exists(stores, tmp_path, monkeypatch):
    monkeypatch.setattr(maps, "BUNDLED_DATA", tmp_path / "nothing")
    monkeypatch.setitem(maps.cartopy.config, "data_dir", str(tmp_path / "empty"))
    monkeypatch.setitem(maps.cartopy.config, "pre_existing_data_dir", "")
    monkeypatch.delenv("CARTOPY_DATA_DIR", raising=False)
    _, forecast, _ = stores
    fig = maps.forecast_sst_map(forecast)
    assert not _coastline_artists(fig)
    assert any(maps.NO_COASTLINES in t.get_text() for ax in fig.axes for t in ax.texts)


def test_global_maps_label_their_gridlines(stores):
    _, forecast, _ = stores
    fig = maps.forecast_sst_map(forecast)
    texts = {t.get_text().strip() for t in fig.axes[0].texts}
    assert {"30°N", "0°", "30°S", "60°E", "180°", "120°W"} <= texts


def _norm_boundaries(fig: Figure) -> list[np.ndarray]:
    out = []
    for ax in fig.axes:
        if hasattr(ax, "projection"):
            mesh = next(c for c in ax.collections if c.get_cmap().N > 1)
            out.append(np.asarray(mesh.norm.boundaries))
    return out


def test_several_leads_share_one_colour_scale_that_the_strongest_anomaly_fits(stores):
    truth, forecast, full = stores
    climatology = maps.monthly_climatology(full)
    fig = maps.forecast_anomaly_map(forecast, climatology, lead=[1, 6])
    first, last = _norm_boundaries(fig)
    np.testing.assert_array_equal(first, last)
    assert first[0] == -first[-1]  # diverging about 0
    drawn = np.concatenate([v.ravel() for v in axes_values(fig)])
    assert np.nanpercentile(np.abs(drawn), 99.9) <= first[-1]
    colourbars = [ax for ax in fig.axes if not hasattr(ax, "projection")]
    assert len(colourbars) == 1
    errors = maps.error_map(forecast, truth, lead=[1, 2])
    assert len(axes_values(errors)) == 2 and len(set(map(tuple, _norm_boundaries(errors)))) == 1


def test_titles_name_the_model_and_months_readably(stores):
    truth, forecast, _ = stores
    forecast = forecast.assign_attrs(model="mechanistic_identifier")
    fig = maps.bias_map(forecast, truth, lead=[1, 3])
    texts = [fig.get_suptitle()] + [ax.get_title() for ax in fig.axes]
    joined = " ".join(texts)
    assert "S-MNN" in joined and "mechanistic_identifier" not in joined
    assert "-01-01" not in joined and "2003" in joined
    assert "lead 1 month:" in joined and "lead 3 months:" in joined


def test_an_ensemble_forecast_is_drawn_as_its_member_mean(stores):
    _, forecast, _ = stores
    ensemble = xr.concat([forecast["sst"] - 1.0, forecast["sst"] + 1.0], dim="member")
    ensemble = forecast.assign(sst=ensemble.transpose("init_time", "lead", "member", "lat",
                                                      "lon"))
    (drawn,) = axes_values(maps.forecast_sst_map(ensemble, lead=2))
    (plain,) = axes_values(maps.forecast_sst_map(forecast, lead=2))
    np.testing.assert_allclose(drawn, plain, rtol=1e-5)


def _interpretation(truth: xr.Dataset, latents: int = 16) -> xr.Dataset:
    """Maps as pipeline.model.forecast.interpret writes them: latents, three ODE coefficients (one
    all but negative), the right-hand side and the step size."""
    rng = np.random.default_rng(2)
    shape = (truth.sizes["lat"], truth.sizes["lon"])
    coefficient = np.stack([rng.uniform(-7.13, 0.16, shape), rng.normal(0, 1, shape),
                            rng.uniform(0.5, 2.0, shape)])
    return xr.Dataset(
        {"latent": (("component", "lat", "lon"), rng.standard_normal((latents, *shape)),
                    {"long_name": "latent variables"}),
         "coefficient": (("derivative", "lat", "lon"), coefficient,
                         {"long_name": "ODE coefficient of the k-th derivative, window mean"}),
         "rhs": (("lat", "lon"), rng.normal(0, 0.3, shape),
                 {"long_name": "ODE right-hand side, window mean"}),
         "step_size": (("lat", "lon"), rng.uniform(0.5, 1.0, shape),
                       {"long_name": "solver step size, window mean", "units": "months"})},
        coords={"lat": truth["lat"], "lon": truth["lon"], "component": np.arange(latents),
                "derivative": np.arange(3)},
    )


def test_parameter_maps_show_every_ode_parameter_and_say_what_is_left_out(stores):
    truth, _, _ = stores
    fig = maps.parameter_maps(_interpretation(truth), mask=truth["mask"])
    titles = [ax.get_title() for ax in fig.axes if hasattr(ax, "projection")]
    assert len(titles) == 16
    assert titles[:5] == ["ODE coefficient of u", "ODE coefficient of du/dt",
                          "ODE coefficient of d²u/dt²", "ODE right-hand side",
                          "solver step size"]
    assert "5 of 16 latents not shown (latent 11 to 15" in fig.get_suptitle()
    labels = [ax.get_xlabel() for ax in fig.axes if not hasattr(ax, "projection")]
    assert "window mean, [months]" in labels and "value (dimensionless)" not in labels
    boundaries = _norm_boundaries(fig)
    # the all-but-negative coefficient gets a sequential scale over its own range
    assert boundaries[0][0] < -6 and boundaries[0][-1] <= 1.0  # not a ±8 diverging scale
    assert boundaries[1][0] == -boundaries[1][-1]  # the balanced one diverges about 0


def test_skill_plot_names_missing_references_and_shows_the_sample_size():
    table = pd.DataFrame([{"forecast": m, "region": "global", "lead": k, "rmse": s * k,
                           "acc": np.nan if m == "climatology" else 1 - s * k / 10,
                           "n_init": 36 - k}
                          for m, s in [("mechanistic_identifier", 0.3), ("climatology", 0.5),
                                       ("persistence", 0.4)] for k in (1, 2, 3)])
    fig = maps.skill_vs_lead(table)
    rmse, acc, size = fig.axes
    assert {t.get_text() for t in fig.legends[0].get_texts()} == {
        "S-MNN", "climatology", "persistence"}
    assert any("climatology: no ACC" in t.get_text() for t in acc.texts)
    assert size.get_ylabel() == "issue times scored"
    assert size.lines[0].get_ydata().tolist() == [35, 34, 33]


def test_write_forecast_maps_writes_the_standard_set(stores, tmp_path):
    truth, forecast, _ = stores
    table = pd.DataFrame({"region": "global", "lead": [1, 2], "rmse": [0.3, 0.4],
                          "acc": [0.9, 0.8]})
    written = maps.write_forecast_maps(forecast, tmp_path, truth=truth, metrics=table,
                                       leads=[1, 6])
    assert set(written) == {"sst", "anomaly", "bias", "error", "nino34_plume",
                            "skill_vs_lead"}
    for path in written.values():
        assert path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 10_000


def test_a_runs_monthly_fit_is_the_calendar_climatology_of_the_maps(stores):
    # The run's one fit, handed to the maps, is the climatology they would fit themselves.
    from pipeline.climatology import fit_climatology

    _, _, full = stores
    fit = fit_climatology(full["sst"], end=str(full.time.values[-1])[:10])
    np.testing.assert_allclose(maps.calendar_climatology(fit).values,
                               maps.monthly_climatology(full).values, rtol=1e-5)
    assert list(maps.calendar_climatology(fit)["month"].values) == list(range(1, 13))
    weekly = fit.assign_attrs(step_units="weeks")
    assert maps.calendar_climatology(weekly) is None
