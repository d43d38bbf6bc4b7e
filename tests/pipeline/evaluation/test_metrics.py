"""Metrics against brute-force numpy and identities (WeatherBench 2 conventions)."""

import json

import numpy as np
import pandas as pd
import pytest

from pipeline.evaluation.baselines import baseline_forecast
from pipeline.evaluation.metrics import aggregate, evaluate, weighted_scores
from pipeline.forecast_store import open_forecast
from pipeline.regions import lat_weights, region_mask


@pytest.fixture
def fields():
    rng = np.random.default_rng(3)
    lat = np.array([-45.0, -15.0, 0.0, 15.0, 45.0])
    lon = np.array([10.0, 100.0, 200.0, 230.0, 300.0])
    truth = 20 + rng.normal(0, 2, (4, 5, 5))
    forecast = truth + rng.normal(0.3, 0.5, (4, 5, 5))
    clim = 20 + rng.normal(0, 0.5, (4, 5, 5))
    forecast[1, 2, 3] = np.nan  # a missing forecast value is left out
    return lat, lon, forecast, truth, clim


def brute_force(forecast, truth, clim, weights):
    mse, bias, acc = [], [], []
    for f, o, c in zip(forecast, truth, clim, strict=True):
        ok = np.isfinite(f) & np.isfinite(o) & (weights > 0)
        w = weights[ok] / weights[ok].sum()
        e = f[ok] - o[ok]
        mse.append(np.sum(w * e * e))
        bias.append(np.sum(w * e))
        fa, oa = f[ok] - c[ok], o[ok] - c[ok]
        acc.append(np.sum(w * fa * oa) / np.sqrt(np.sum(w * fa**2) * np.sum(w * oa**2)))
    return np.array(mse), np.array(bias), np.array(acc)


def test_weighted_scores_match_brute_force(fields):
    lat, lon, forecast, truth, clim = fields
    weights = lat_weights(lat)[:, None] * np.ones(5)
    scores = weighted_scores(forecast, truth, weights, clim)
    mse, bias, acc = brute_force(forecast, truth, clim, weights)
    np.testing.assert_allclose(scores["mse"], mse, rtol=1e-12)
    np.testing.assert_allclose(scores["bias"], bias, rtol=1e-12)
    np.testing.assert_allclose(scores["acc"], acc, rtol=1e-12)
    agg = aggregate(scores)
    assert agg["rmse"] == pytest.approx(np.sqrt(mse.mean()))
    assert agg["acc"] == pytest.approx(acc.mean())


def test_a_perfect_forecast_has_zero_rmse_and_unit_acc(fields):
    lat, _, _, truth, clim = fields
    agg = aggregate(weighted_scores(truth, truth, lat_weights(lat)[:, None], clim))
    assert agg["rmse"] == 0.0
    assert agg["bias"] == 0.0
    assert agg["acc"] == pytest.approx(1.0)


def test_a_constant_offset_is_pure_bias(fields):
    lat, _, _, truth, _ = fields
    agg = aggregate(weighted_scores(truth + 0.7, truth, lat_weights(lat)[:, None]))
    assert agg["rmse"] == pytest.approx(0.7)
    assert agg["bias"] == pytest.approx(0.7)


def test_region_weights_exclude_points_outside(fields):
    lat, lon, forecast, truth, clim = fields
    nino = region_mask(lat, lon, "nino34")
    assert nino.sum() == 2  # lat 0 at lon 200 and 230
    weights = lat_weights(lat)[:, None] * nino
    far = forecast.copy()
    far[:, ~nino] += 100.0  # errors outside the region do not count
    np.testing.assert_allclose(
        weighted_scores(far, truth, weights, clim)["mse"],
        weighted_scores(forecast, truth, weights, clim)["mse"],
    )


def test_regions_scored_at_once_equal_each_scored_alone(fields):
    lat, lon, forecast, truth, clim = fields
    names = ["global", "nino34", "tropics", "nh"]
    stacked = np.stack([lat_weights(lat)[:, None] * region_mask(lat, lon, r) for r in names])
    stacked[2, 0, 0] = 0.0  # and a point left out of one region only
    together = weighted_scores(forecast, truth, stacked, clim)
    for ri, weights in enumerate(stacked):
        alone = weighted_scores(forecast, truth, weights, clim)
        mse, bias, acc = brute_force(forecast, truth, clim, weights)
        for key, want in (("mse", mse), ("bias", bias), ("acc", acc)):
            assert together[key].shape == (4, len(names))
            np.testing.assert_allclose(together[key][:, ri], alone[key], rtol=1e-12)
            np.testing.assert_allclose(alone[key], want, rtol=1e-12)
    with pytest.raises(ValueError, match=r"weights: expected a shape .* got \(3, 5\)"):
        weighted_scores(forecast, truth, np.ones((3, 5)))


@pytest.mark.parametrize("layout", ["float32", "float64 strided", "int"])
def test_scores_of_stored_dtypes_and_strided_views_match_brute_force(fields, layout):
    lat, lon, forecast, truth, clim = fields
    weights = lat_weights(lat)[:, None] * np.ones(5)
    forecast = forecast.copy()
    forecast[2, 0, 0] = np.inf  # not finite: left out like NaN
    if layout == "float32":  # as forecast stores hold them, compiled without a cast
        forecast, truth, clim = (x.astype(np.float32) for x in (forecast, truth, clim))
    elif layout == "float64 strided":  # a lead's field out of a (lead, init, Y, X) block
        forecast, truth, clim = (np.stack([x, x]).transpose(1, 0, 2, 3)[:, 1]
                                 for x in (forecast, truth, clim))
    else:
        forecast, truth, clim = (np.round(np.nan_to_num(x, posinf=0.0)).astype(int)
                                 for x in (forecast, truth, clim))
    scores = weighted_scores(forecast, truth, weights, clim)
    want = brute_force(*(np.asarray(x, dtype=np.float64) for x in (forecast, truth, clim)),
                       weights)
    for key, value in zip(("mse", "bias", "acc"), want, strict=True):
        np.testing.assert_allclose(scores[key], value, rtol=1e-12)


def test_a_region_without_points_and_no_samples_give_nan_and_empty_scores(fields):
    _, _, forecast, truth, clim = fields
    nowhere = np.zeros((2, 5, 5))
    nowhere[1] = 1.0
    scores = weighted_scores(forecast, truth, nowhere, clim)
    assert np.isnan(scores["mse"][:, 0]).all() and np.isfinite(scores["mse"][:, 1]).all()
    assert np.isnan(weighted_scores(forecast, truth, nowhere[0], clim)["acc"]).all()
    empty = weighted_scores(forecast[:0], truth[:0], nowhere, clim[:0])
    assert all(v.shape == (0, 2) for v in empty.values())
    with pytest.raises(ValueError, match=r"climatology: expected the shape of truth"):
        weighted_scores(forecast, truth, nowhere, clim[:2])


def test_area_weights_are_cosine_latitude():
    np.testing.assert_allclose(lat_weights(np.array([0.0, 60.0, 90.0])), [1.0, 0.5, 0.0],
                               atol=1e-15)


def test_unknown_region_is_an_error():
    with pytest.raises(ValueError, match="nino34"):
        region_mask(np.zeros(1), np.zeros(1), "arctic")


def test_the_warm_up_compiles_the_scoring_kernel_that_evaluate_uses(model_store, tmp_path):
    from pipeline.evaluation import kernels

    kernels.warm_up()
    before = len(kernels.weighted_sums.signatures)
    out = baseline_forecast("damped_persistence", model_store, tmp_path / "d.zarr",
                            inits=np.array(["1995-01-01"], dtype="datetime64[ns]"), leads=2,
                            train_end="1994-12")
    evaluate(out, model_store, tmp_path / "metrics")
    weighted_scores(np.ones((1, 2, 2)), np.ones((1, 2, 2)), np.ones((2, 2)),
                    climatology=np.zeros((1, 2, 2)))  # float64 throughout
    assert len(kernels.weighted_sums.signatures) == before


def test_evaluate_scores_the_persistence_baseline_as_persistence(model_store, tmp_path):
    inits = np.array(["1995-01-01", "1995-02-01", "1995-03-01"], dtype="datetime64[ns]")
    out = baseline_forecast("persistence", model_store, tmp_path / "p.zarr", inits=inits,
                            leads=3, train_end="1994-12")
    result = evaluate(out, model_store, tmp_path / "metrics")
    table = result.table
    ours = table[table.forecast == "persistence"]
    assert np.allclose(ours[ours.region != "nino34"].skill_vs_persistence, 0.0)
    assert (ours[ours.region == "nino34"].n_init == 0).all()  # no grid point within 5S-5N
    glob = table[(table.region == "global")].pivot(index="lead", columns="forecast",
                                                   values="rmse")
    assert (glob["persistence"] < glob["climatology"]).all()  # AR(1) with phi = 0.8
    payload = json.loads(result.json_path.read_text())
    assert payload["climatology_period"] == ["1980-01-01", "1994-12-01"]
    assert len(payload["rows"]) == len(table) == 2 * 5 * 3  # persistence, climatology
    assert result.csv_path.read_text().startswith("forecast,region,lead,rmse")


def test_index_correlation_against_numpy(model_store, tmp_path):
    from pipeline.data.store import open_store
    from pipeline.evaluation.metrics import index_correlation

    inits = np.array([f"1996-{m:02d}-01" for m in range(1, 13)], dtype="datetime64[ns]")
    out = baseline_forecast("persistence", model_store, tmp_path / "p.zarr", inits=inits,
                            leads=2, train_end="1994-12")
    table = index_correlation(out, model_store, region="tropics")
    truth = open_store(str(model_store)).load()
    train = truth.sst.sel(time=slice(None, "1994-12"))
    normals = train.groupby("time.month").mean("time")
    anomaly = truth.sst.groupby("time.month") - normals
    box = anomaly.where((truth.lat >= -20) & (truth.lat <= 20))
    w = np.cos(np.deg2rad(truth.lat)) * truth["mask"]
    series = (box * w).sum(("lat", "lon")) / (w.where(box.notnull()).sum(("lat", "lon")))
    for lead in (1, 2):
        issued = series.sel(time=inits).values
        observed = series.shift(time=-lead).sel(time=inits).values
        expected = np.corrcoef(issued, observed)[0, 1]
        row = table[table.lead == lead].iloc[0]
        assert row.n == 12
        np.testing.assert_allclose(row.r, expected, atol=1e-5)
    with pytest.raises(ValueError, match="region"):
        index_correlation(out, model_store, region="atlantis")


def test_references_are_scored_beside_the_forecast(model_store, tmp_path):
    inits = np.array(["1996-01-01", "1996-02-01", "1996-03-01"], dtype="datetime64[ns]")
    kw = dict(inits=inits, leads=3, train_end="1994-12")
    model = baseline_forecast("persistence", model_store, tmp_path / "m.zarr", **kw)
    damped = baseline_forecast("damped_persistence", model_store, tmp_path / "d.zarr", **kw)
    table = evaluate(model, model_store, tmp_path / "a", name="model",
                     references={"damped_persistence": damped}).table
    alone = evaluate(damped, model_store, tmp_path / "b").table
    got = table[table.forecast == "damped_persistence"].reset_index(drop=True)
    want = alone[alone.forecast == "damped_persistence"].reset_index(drop=True)
    np.testing.assert_allclose(got[["rmse", "acc", "skill_vs_climatology"]].values,
                               want[["rmse", "acc", "skill_vs_climatology"]].values)
    other = baseline_forecast("lim", model_store, tmp_path / "l.zarr", inits=inits[:2],
                              leads=3, train_end="1994-12")
    with pytest.raises(ValueError, match="references"):
        evaluate(model, model_store, tmp_path / "c", references={"lim": other})


def test_leads_read_in_blocks_score_as_read_one_by_one(model_store, tmp_path, monkeypatch):
    from pipeline.evaluation import metrics

    inits = np.array(["1996-01-01", "1996-02-01", "1996-03-01"], dtype="datetime64[ns]")
    kw = dict(inits=inits, leads=5, train_end="1994-12")
    model = baseline_forecast("damped_persistence", model_store, tmp_path / "m.zarr", **kw)
    lim = baseline_forecast("lim", model_store, tmp_path / "l.zarr", **kw)
    whole = evaluate(model, model_store, tmp_path / "a", references={"lim": lim}).table
    whole_r = metrics.index_correlation(model, model_store, region="tropics")
    read = []
    original = metrics._by_lead

    def recording(sst, budget=metrics.LEAD_BLOCK_BYTES):
        read.append(budget)
        return original(sst, budget)

    sst = open_forecast(model).sst
    per_lead = sst.nbytes / sst.sizes["lead"]
    fields = list(original(sst, 2.5 * per_lead))  # blocks of 2, 2 and 1 leads
    assert len(fields) == 5
    for lead, values in enumerate(fields):
        np.testing.assert_array_equal(values, sst.isel(lead=lead).values)
    monkeypatch.setattr(metrics, "_by_lead", recording)
    monkeypatch.setattr(metrics, "LEAD_BLOCK_BYTES", 5 * per_lead)
    blocks = evaluate(model, model_store, tmp_path / "b", references={"lim": lim}).table
    assert read == [2.5 * per_lead] * 2  # the budget split between the two stores
    pd.testing.assert_frame_equal(blocks, whole)
    monkeypatch.setattr(metrics, "_by_lead", original)
    pd.testing.assert_frame_equal(
        metrics.index_correlation(model, model_store, region="tropics"), whole_r)


def test_weighted_mse_agrees_with_xskillscore(fields):
    xs = pytest.importorskip("xskillscore")
    import xarray as xr

    lat, lon, forecast, truth, clim = fields
    weights = lat_weights(lat)[:, None] * np.ones((1, len(lon)))
    ours = weighted_scores(forecast, truth, weights)["mse"]
    dims = ("init", "lat", "lon")
    theirs = xs.mse(xr.DataArray(forecast, dims=dims), xr.DataArray(truth, dims=dims),
                    dim=["lat", "lon"], weights=xr.DataArray(weights, dims=("lat", "lon")),
                    skipna=True).values
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)


def test_scores_against_a_given_climatology_equal_those_of_the_same_fit(model_store, tmp_path):
    # The run's stored fit, handed over, gives the scores a fit of the truth would.
    from pipeline.climatology import fit_climatology, open_sst

    fc = baseline_forecast("persistence", model_store, tmp_path / "p.zarr",
                           inits=["1996-01-01", "1996-06-01"], leads=3, train_end="1995-12")
    fit = fit_climatology(open_sst(model_store).sst, end="1995-12")
    fitted = evaluate(fc, model_store, tmp_path / "a").table
    given = evaluate(fc, model_store, tmp_path / "b", climatology=fit).table
    pd.testing.assert_frame_equal(fitted, given)
