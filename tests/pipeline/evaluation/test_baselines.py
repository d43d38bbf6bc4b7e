"""Climatology, anomaly persistence and damped persistence baselines."""

import numpy as np
import pytest
import xarray as xr

from pipeline.data.store import open_store
from pipeline.evaluation.baselines import baseline_forecast, fit_damping, fit_trend
from pipeline.forecast_store import open_forecast


def test_damping_of_an_ar1_process_is_phi_to_the_lead():
    rng = np.random.default_rng(1)
    phi, a = 0.7, np.zeros((20000, 2))
    for t in range(1, len(a)):
        a[t] = phi * a[t - 1] + rng.standard_normal(2)
    damping = fit_damping(a, np.array([1, 2, 3]))
    np.testing.assert_allclose(damping, (phi ** np.array([1, 2, 3]))[:, None] * [1, 1],
                               atol=0.03)


def test_damping_is_clipped_to_zero_for_anticorrelated_series():
    a = np.tile([1.0, -1.0], 50)[:, None]
    assert fit_damping(a, np.array([1]))[0, 0] == 0.0


@pytest.mark.parametrize("kind", ["climatology", "persistence", "damped_persistence"])
def test_baselines_write_the_forecast_store_format(kind, model_store, tmp_path):
    inits = np.array(["1996-03-01", "1996-04-01"], dtype="datetime64[ns]")
    out = baseline_forecast(kind, model_store, tmp_path / f"{kind}.zarr", inits=inits,
                            leads=4, train_end="1994-12")
    fc = xr.open_zarr(out, consolidated=False)
    assert fc.sst.dims == ("init_time", "lead", "lat", "lon")
    assert fc.lead.values.tolist() == [1, 2, 3, 4]
    assert fc.lead.attrs["units"] == "months"
    assert str(fc.valid_time.values[1, 2])[:10] == "1996-07-01"
    assert fc.attrs["model"] == kind
    assert np.isnan(fc.sst.values[:, :, 0, 0]).all()  # land stays NaN
    assert np.isfinite(fc.sst.values[:, :, 1, 1]).all()


def test_persistence_carries_the_issue_time_anomaly(model_store, tmp_path):
    truth = open_store(str(model_store)).load()
    init = np.datetime64("1996-03-01")
    kw = dict(inits=[init], leads=2, train_end="1994-12")
    pers = open_forecast(baseline_forecast("persistence", model_store, tmp_path / "p.zarr", **kw))
    clim = open_forecast(baseline_forecast("climatology", model_store, tmp_path / "c.zarr", **kw))
    train = truth.sst.sel(time=slice(None, "1994-12"))
    march = train.sel(time=train.time.dt.month == 3).mean("time")
    anomaly = truth.sst.sel(time=init) - march
    np.testing.assert_allclose(pers.sst.values[0] - clim.sst.values[0],
                               np.broadcast_to(anomaly.values, (2, 6, 8)), atol=1e-5)


def test_climatology_comes_from_the_training_period_only(make_ar1_sst, tmp_path):
    ds = make_ar1_sst()
    later = ds.copy(deep=True)
    later["sst"] = later.sst.where(later.time <= np.datetime64("1994-12-01"), later.sst + 5)
    kw = dict(inits=["1996-01-01"], leads=3, train_end="1994-12")
    a = open_forecast(baseline_forecast("climatology", ds, tmp_path / "a.zarr", **kw))
    b = open_forecast(baseline_forecast("climatology", later, tmp_path / "b.zarr", **kw))
    np.testing.assert_array_equal(a.sst.values, b.sst.values)


def test_unknown_kind_and_missing_init_are_errors(model_store, tmp_path):
    with pytest.raises(ValueError, match="kind"):
        baseline_forecast("analogue", model_store, tmp_path / "x.zarr", inits=["1996-01-01"],
                          train_end="1994-12")
    with pytest.raises(ValueError, match="inits"):
        baseline_forecast("climatology", model_store, tmp_path / "x.zarr",
                          inits=["2030-01-01"], train_end="1994-12")


# --- the statistical baselines against brute-force references -----------------------------

from pipeline.evaluation.baselines import KINDS, LinearInverseModel, make_baseline  # noqa: E402


def _linear_system(steps=6000, seed=3):
    """Anomalies on a 5x6 grid driven by 3 orthonormal patterns whose amplitudes follow
    p_{t+1} = G p_t + noise; returns (anomalies (T, 5, 6), G, patterns (3, 30))."""
    rng = np.random.default_rng(seed)
    g = np.array([[0.8, 0.15, 0.0], [-0.15, 0.8, 0.0], [0.05, 0.0, 0.5]])
    patterns = np.linalg.qr(rng.standard_normal((30, 3)))[0].T  # (3, 30), orthonormal rows
    p = np.zeros((steps, 3))
    for t in range(1, steps):
        p[t] = g @ p[t - 1] + rng.standard_normal(3)
    return (p @ patterns).reshape(steps, 5, 6), g, patterns


def test_lim_recovers_the_propagator_of_a_linear_system():
    anomalies, g, patterns = _linear_system()
    lim = LinearInverseModel(modes=3, lag=1)
    lim.fit(anomalies, np.arange(len(anomalies)), np.ones((5, 6)), np.arange(1, 4))
    eofs = lim._fit["eofs"]  # (3, 30) a rotation of the true patterns
    for lead in (1, 2, 5):
        fitted = eofs.T @ lim.propagator(lead) @ eofs  # (30, 30) operator on the field
        true = patterns.T @ np.linalg.matrix_power(g, lead) @ patterns
        np.testing.assert_allclose(fitted, true, atol=0.03)


def test_lim_with_lag_two_recovers_the_same_propagator():
    anomalies, g, patterns = _linear_system(steps=20000)
    lim = LinearInverseModel(modes=3, lag=2)
    lim.fit(anomalies, np.arange(len(anomalies)), np.ones((5, 6)), np.arange(1, 4))
    eofs = lim._fit["eofs"]
    np.testing.assert_allclose(eofs.T @ lim.propagator(2) @ eofs,
                               patterns.T @ g @ g @ patterns, atol=0.03)


def test_lim_forecast_is_the_propagated_state():
    anomalies, g, patterns = _linear_system()
    lim = make_baseline("lim", modes=3)
    t = np.arange(len(anomalies))
    lim.fit(anomalies, t, np.ones((5, 6)), np.arange(1, 3))
    state = anomalies[-1]
    forecast = lim.predict(anomalies[-1:], int(t[-1]), np.array([1, 2]))
    expected = (np.linalg.matrix_power(g, 2) @ (patterns @ state.ravel())) @ patterns
    trend = lim._fit["intercept"] + lim._fit["slope"] * (t[-1] + 2)
    # the trend of a stationary system is ~0; the propagated part matches G^2 p
    np.testing.assert_allclose(forecast[1].ravel(), expected + trend.ravel(), atol=0.1)


def test_lim_asked_for_more_modes_than_the_field_holds_uses_those_it_has():
    anomalies, g, patterns = _linear_system()  # three modes
    lim = make_baseline("lim", modes=8)
    t = np.arange(len(anomalies))
    lim.fit(anomalies, t, np.ones((5, 6)), np.arange(1, 3))
    assert lim._fit["eofs"].shape[0] == 3  # (an SVD gave 8, five of them noise)
    three = make_baseline("lim", modes=3)
    three.fit(anomalies, t, np.ones((5, 6)), np.arange(1, 3))
    np.testing.assert_allclose(lim.predict(anomalies[-1:], int(t[-1]), np.array([1, 2])),
                               three.predict(anomalies[-1:], int(t[-1]), np.array([1, 2])),
                               atol=1e-10)
    calm = make_baseline("lim", modes=3)  # no variance at all: the trend alone (zero)
    calm.fit(np.zeros((40, 5, 6)), np.arange(40.0), np.ones((5, 6)), np.arange(1, 3))
    assert np.array_equal(calm.predict(np.zeros((1, 5, 6)), 39, np.array([1, 2])),
                          np.zeros((2, 5, 6)))


def test_damped_persistence_of_an_ar1_series_recovers_its_coefficient():
    rng = np.random.default_rng(5)
    phi, a = 0.6, np.zeros((20000, 1, 2))
    for t in range(1, len(a)):
        a[t] = phi * a[t - 1] + rng.standard_normal((1, 2))
    damped = make_baseline("damped_persistence")
    damped.fit(a, np.arange(len(a)), np.ones((1, 2)), np.arange(1, 4))
    forecast = damped.predict(np.ones((1, 1, 2)), len(a) - 1, np.arange(1, 4))
    np.testing.assert_allclose(forecast[:, 0, 0], phi ** np.arange(1, 4), atol=0.03)


def test_trend_extrapolates_a_linear_anomaly_exactly():
    t = np.arange(100.0)
    a = (0.5 + 0.02 * t)[:, None, None] * np.ones((1, 2, 3))
    trend = make_baseline("trend")
    trend.fit(a, t, np.ones((2, 3)), np.array([1, 12]))
    np.testing.assert_allclose(trend.predict(a[-1:], 99, np.array([1, 12]))[:, 0, 0],
                               [0.5 + 0.02 * 100, 0.5 + 0.02 * 111])


def test_per_cell_trends_are_least_squares_lines_over_the_finite_values_in_any_block():
    rng = np.random.default_rng(4)
    t = np.arange(60.0) + 240.0  # step numbers need not start at zero
    a = (rng.standard_normal((60, 9, 40)) + 0.03 * t[:, None, None]).astype(np.float32)
    a[rng.random(a.shape) < 0.2] = np.nan  # gaps
    a[:, 0, 0] = np.nan  # land
    a[:-1, 0, 1] = np.nan  # one value: no slope
    whole = fit_trend(a, t, block_bytes=1 << 30)
    for cell in [(3, 7), (8, 39), (0, 2)]:
        ok = np.isfinite(a[(slice(None), *cell)])
        slope, intercept = np.polyfit(t[ok], a[(slice(None), *cell)][ok].astype(float), 1)
        np.testing.assert_allclose([whole[0][cell], whole[1][cell]], [intercept, slope],
                                   rtol=1e-9, atol=1e-12)
    assert whole[0][0, 0] == whole[1][0, 0] == 0.0
    assert whole[1][0, 1] == 0.0 and whole[0][0, 1] == a[-1, 0, 1]
    for block_bytes in (1, 64 * 8 * 60, 100_000):  # blocks of 64, 64 and 208 cells
        blocked = fit_trend(a, t, block_bytes=block_bytes)
        for got, want in zip(blocked, whole, strict=True):
            np.testing.assert_array_equal(got, want)


def test_recent_mean_is_the_mean_of_its_window(model_store, tmp_path):
    init = np.datetime64("1996-03-01")
    kw = dict(inits=[init], leads=2, train_end="1994-12")
    recent = open_forecast(baseline_forecast("recent_mean", model_store, tmp_path / "r.zarr",
                                             options={"window": 4}, **kw))
    clim = open_forecast(baseline_forecast("climatology", model_store, tmp_path / "c.zarr", **kw))
    truth = open_store(str(model_store)).load().sst
    train = truth.sel(time=slice(None, "1994-12"))
    months = truth.sel(time=slice("1995-12", "1996-03"))
    normals = train.groupby("time.month").mean("time").sel(month=months.time.dt.month)
    expected = (months.values - normals.values).mean(0)
    np.testing.assert_allclose(recent.sst.values[0, 1] - clim.sst.values[0, 1], expected,
                               atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_no_baseline_reads_data_after_its_issue_time(kind, make_ar1_sst, tmp_path):
    ds = make_ar1_sst()
    later = ds.copy(deep=True)
    issue = np.datetime64("1996-06-01")
    later["sst"] = later.sst.where(later.time <= issue, later.sst + 7.0)
    kw = dict(inits=["1996-01-01", "1996-06-01"], leads=6, train_end="1994-12")
    a = open_forecast(baseline_forecast(kind, ds, tmp_path / "a.zarr", **kw))
    b = open_forecast(baseline_forecast(kind, later, tmp_path / "b.zarr", **kw))
    np.testing.assert_array_equal(a.sst.values, b.sst.values)
    assert np.isfinite(a.sst.values[:, :, 1, 1]).all()
    # and the data up to the issue time does matter (except for the unconditional kinds)
    earlier = ds.copy(deep=True)
    earlier["sst"] = earlier.sst.where(earlier.time != issue, earlier.sst + 1.0)
    c = open_forecast(baseline_forecast(kind, earlier, tmp_path / "c.zarr", **kw))
    changed = not np.array_equal(a.sst.values[1], c.sst.values[1], equal_nan=True)
    assert changed == (kind not in ("climatology", "trend"))


def test_baseline_options_are_validated():
    with pytest.raises(ValueError, match="options: recent_mean takes \\['window'\\]"):
        make_baseline("recent_mean", windw=3)
    with pytest.raises(ValueError, match="window"):
        make_baseline("recent_mean", window=0)
    with pytest.raises(ValueError, match="modes, lag"):
        make_baseline("lim", modes=0)


def test_a_baseline_without_out_is_the_same_forecast_in_memory(model_store, tmp_path):
    kw = dict(inits=["1996-01-01", "1996-02-01"], leads=3, train_end="1994-12")
    stored = open_forecast(baseline_forecast("lim", model_store, tmp_path / "l.zarr", **kw))
    memory = baseline_forecast("lim", model_store, None, **kw)
    assert isinstance(memory, xr.Dataset)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["l.zarr", "sst.zarr"]  # no new store
    np.testing.assert_array_equal(memory.sst.values, stored.sst.values)
    np.testing.assert_array_equal(memory.valid_time.values, stored.valid_time.values)


def test_a_baseline_on_a_given_climatology_equals_one_fitted_over_its_period(model_store,
                                                                             tmp_path):
    from pipeline.climatology import fit_climatology, open_sst

    fit = fit_climatology(open_sst(model_store).sst, end="1995-12")
    kw = {"inits": ["1996-01-01", "1996-06-01"], "leads": 3}
    for kind in ("damped_persistence", "lim"):
        fitted = baseline_forecast(kind, model_store, None, train_end="1995-12", **kw)
        given = baseline_forecast(kind, model_store, None, climatology=fit, **kw)
        np.testing.assert_array_equal(fitted.sst.values, given.sst.values)
    with pytest.raises(ValueError, match="train_end"):
        baseline_forecast("persistence", model_store, None, **kw)


class _CountingReads:
    """Stands for an SST DataArray (time, Y, X) and records which time slices are read."""

    def __init__(self, values):
        self.values, self.reads = values, []
        self.dtype, self.size = values.dtype, values.size
        self.sizes = {"time": len(values)}

    def isel(self, time):
        self.reads.append((time.start, time.stop))
        return xr.DataArray(self.values[time])


@pytest.mark.parametrize(("spans", "budget_steps", "reads"), [
    ([(0, 3), (1, 4), (2, 5), (7, 10)], 100, [(0, 10)]),  # all in one block
    ([(0, 3), (1, 4), (2, 5), (7, 10)], 5, [(0, 5), (7, 10)]),  # blocks of at most 5
    ([(7, 10), (2, 5), (0, 3)], 100, [(7, 10), (2, 5), (0, 3)]),  # backwards: each alone
    ([(0, 6), (1, 7)], 2, [(0, 6), (1, 7)]),  # a span longer than the budget still comes
])
def test_histories_are_read_in_blocks_and_each_is_its_own_span(spans, budget_steps, reads):
    from pipeline.evaluation.baselines import _histories

    sst = _CountingReads(np.arange(12 * 2 * 3, dtype=np.float32).reshape(12, 2, 3))
    got = list(_histories(sst, spans, budget=budget_steps * 2 * 3 * 4))
    assert sst.reads == reads
    for (start, stop), values in zip(spans, got, strict=True):
        np.testing.assert_array_equal(values, sst.values[start:stop])
