"""The forecast archive (pipeline/evaluation/archive.py) and its verification
(pipeline/evaluation/verify.py)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from pipeline.evaluation import archive as arch
from pipeline.evaluation import baselines, verify
from pipeline.forecast_store import open_forecast
from pipeline.model.forecast import hindcast


@pytest.fixture
def issued(trained_model_run, tmp_path):
    """Forecasts issued 1996-01..1996-03 (leads 1..3) by the shared tiny run."""
    store, run = trained_model_run
    out = hindcast(run, store, start="1996-01", end="1996-03", leads=3,
                   out=tmp_path / "fc.zarr")
    return store, run, out


def _as_other_run(forecast, tmp_path, name="20990101T000000Z"):
    """The same forecast store, labelled as made by another (newer) run."""
    ds = open_forecast(forecast).load()
    ds.attrs["run"] = str(tmp_path / "runs" / name)
    for v in ds.variables.values():
        v.encoding = {}
    path = tmp_path / f"{name}.zarr"
    ds.to_zarr(path, mode="w", consolidated=False)
    return path


def test_adding_is_idempotent_and_a_new_run_is_a_new_version(issued, tmp_path):
    _, _, forecast = issued
    archive = tmp_path / "archive"
    first = arch.add_forecast(archive, forecast)
    assert [e["added"] for e in first] == [True] * 3
    again = arch.add_forecast(archive, forecast)
    assert [e["added"] for e in again] == [False] * 3
    assert len(arch.entries(archive)) == 3
    newer = arch.add_forecast(archive, _as_other_run(forecast, tmp_path))
    assert [e["version"] for e in newer] == [2, 2, 2]
    entries = arch.entries(archive)
    assert [(e["issue_time"][:10], e["version"]) for e in entries] == [
        ("1996-01-01", 1), ("1996-01-01", 2), ("1996-02-01", 1), ("1996-02-01", 2),
        ("1996-03-01", 1), ("1996-03-01", 2)]
    assert entries[1]["model_version"] == "20990101T000000Z"
    one = arch.open_entry(archive, entries[0])
    np.testing.assert_array_equal(one.sst.values[0],
                                  open_forecast(forecast).sst.values[0])
    assert one.init_time.size == 1 and one.attrs["run"] == entries[0]["run"]


def test_an_interrupted_write_leaves_the_archive_as_it_was(issued, tmp_path, monkeypatch):
    _, _, forecast = issued
    archive = tmp_path / "archive"
    arch.add_forecast(archive, open_forecast(forecast).isel(init_time=[0]))
    before = (archive / "index.json").read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # killed after the entry stores, before the commit

    monkeypatch.setattr(arch, "_replace", crash)
    with pytest.raises(KeyboardInterrupt):
        arch.add_forecast(archive, forecast)
    monkeypatch.undo()
    assert (archive / "index.json").read_bytes() == before
    assert len(arch.entries(archive)) == 1
    assert (archive / "entries" / "19960201T000000-v1.zarr").exists()  # uncommitted
    assert not list(tmp_path.glob("archive.lock"))  # the lock was released
    added = arch.add_forecast(archive, forecast)  # the next writer redoes the entries
    assert [e["added"] for e in added] == [False, True, True]
    assert arch.open_entry(archive, arch.entries(archive)[1]).init_time.size == 1


def test_a_first_commit_interrupted_mid_write_leaves_an_empty_archive(issued, tmp_path):
    _, _, forecast = issued
    archive = tmp_path / "archive"
    (archive / "entries").mkdir(parents=True)
    (archive / "index.json.0123.tmp").write_text('{"format": "sstc')  # cut short
    assert arch.entries(archive) == []
    assert len(arch.add_forecast(archive, forecast)) == 3


def test_a_locked_archive_is_refused(issued, tmp_path):
    from pipeline.data.lock import StoreLocked, store_lock

    _, _, forecast = issued
    archive = tmp_path / "archive"
    with store_lock(archive), pytest.raises(StoreLocked):
        arch.add_forecast(archive, forecast)


def test_an_archive_path_holding_other_files_is_refused(issued, tmp_path):
    _, _, forecast = issued
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="archive: expected a forecast archive"):
        arch.add_forecast(tmp_path / "other", forecast)


def test_each_lead_is_verified_once_when_observed(issued, tmp_path, make_ar1_sst):
    from pipeline.data.store import write_store

    store, _, forecast = issued
    archive = tmp_path / "archive"
    arch.add_forecast(archive, forecast)
    # A truth store ending 1996-03: of the 1996-02 issue only lead 1 is observed.
    truth = tmp_path / "truth.zarr"
    write_store(make_ar1_sst().sel(time=slice(None, "1996-03")), str(truth))
    rows = verify.verify_archive(archive, truth)
    leads = {(i[:10], int(n)) for i, n in rows[["issue_time", "lead"]].drop_duplicates()
             .itertuples(index=False)}
    assert leads == {("1996-01-01", 1), ("1996-01-01", 2), ("1996-02-01", 1)}
    assert set(rows["forecast"]) == {"mechanistic_identifier", *baselines.KINDS}
    assert verify.verify_archive(archive, truth).empty  # nothing new: nothing scored twice
    shutil.rmtree(truth)
    write_store(make_ar1_sst(), str(truth))  # the truth grows
    later = verify.verify_archive(archive, truth)
    assert len(later) and ("1996-01-01", 1) not in {
        (i[:10], int(n)) for i, n in later[["issue_time", "lead"]].itertuples(index=False)}
    history = arch.history(archive)
    assert not history.duplicated(arch.HISTORY_KEY).any()
    assert len(history.drop_duplicates(["issue_time", "lead"])) == 9  # 3 issues x 3 leads
    # The model's scores are metrics.evaluate's own numbers.
    from pipeline.evaluation.metrics import evaluate

    direct = evaluate(open_forecast(forecast).isel(init_time=[0]), truth, tmp_path / "m").table
    for name in ("mechanistic_identifier", "persistence"):
        want = direct[(direct.forecast == name) & (direct.region == "global")]
        got = history[(history.forecast == name) & (history.region == "global")
                      & (history.issue_time.str.startswith("1996-01-01"))].sort_values("lead")
        np.testing.assert_allclose(got["rmse"].values, want["rmse"].values, rtol=1e-5)
    summary = verify.summary(history, region="global")
    assert set(summary["n"]) == {3}
    figure = verify.skill_figure(history)
    assert figure.axes[0].get_lines()


def test_history_rows_must_name_archived_entries(tmp_path):
    rows = pd.DataFrame([{"issue_time": "2000-01-01T00:00:00", "version": 1, "lead": 1,
                          "forecast": "m", "region": "global"}])
    with pytest.raises(ValueError, match="expected archived entries"):
        arch.add_verification(tmp_path / "archive", rows)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "index.json").write_text(json.dumps({"format": "x"}))
    with pytest.raises(ValueError, match="expected format"):
        arch.entries(tmp_path / "bad")
