"""Writers refuse output paths that hold anything but their own kind of store.

Creating a zarr store clears its folder, so `ingest --store`, `forecast/hindcast --out` and
the library writers must check what is there first: a non-empty folder that is not a store,
the current folder, the input SST store, or (without --overwrite) an existing forecast.
"""

import hashlib

import numpy as np
import pytest

from flows.cli import main
from pipeline.data.store import open_store, validate_store, write_store
from pipeline.evaluation.baselines import baseline_forecast
from pipeline.forecast_store import open_forecast


def ingest_args(store, tmp_path):
    return ["ingest", "--store", str(store), "--start", "2001-01", "--end", "2001-12",
            "--synthetic-resolution", "10", "--cache-dir", str(tmp_path / "cache")]


def folder_with_files(path):
    path.mkdir(parents=True)
    (path / "notes.txt").write_text("keep me")
    (path / "sub").mkdir()
    (path / "sub" / "data.csv").write_text("1,2,3")
    return path


def assert_untouched(path):
    assert (path / "notes.txt").read_text() == "keep me"
    assert (path / "sub" / "data.csv").read_text() == "1,2,3"


def digest(store) -> str:
    return hashlib.sha256(open_store(store)["sst"].values.tobytes()).hexdigest()


def one_line_error(capsys, *words):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for word in words:
        assert word in err, err
    return err


def test_ingest_refuses_a_folder_of_other_files(tmp_path, capsys):
    folder = folder_with_files(tmp_path / "results")
    assert main(ingest_args(folder, tmp_path)) == 2
    one_line_error(capsys, "sstcast ingest: error: url:", "expected a new path, an empty folder "
                   "or an sstcast SST store", str(folder), "refusing to overwrite")
    assert_untouched(folder)
    assert not (tmp_path / "cache").exists()  # refused before fetching anything


def test_ingest_refuses_the_current_folder(tmp_path, capsys, monkeypatch):
    folder = folder_with_files(tmp_path / "work")
    monkeypatch.chdir(folder)
    assert main(ingest_args(".", tmp_path)) == 2
    one_line_error(capsys, "url:", "refusing to overwrite")
    assert_untouched(folder)


def test_ingest_refuses_a_file_and_a_forecast_store(tmp_path, model_store, capsys):
    file = tmp_path / "plain.txt"
    file.write_text("not a store")
    assert main(ingest_args(file, tmp_path)) == 2
    one_line_error(capsys, "url:", "refusing to overwrite")
    assert file.read_text() == "not a store"
    forecast = baseline_forecast("climatology", model_store, tmp_path / "fc.zarr",
                                 inits=["1996-01-01"], leads=2, train_end="1995-12")
    assert main(ingest_args(forecast, tmp_path)) == 2
    one_line_error(capsys, "url:", "holding a forecast store", "refusing to overwrite")
    assert open_forecast(forecast).init_time.size == 1


def test_ingest_into_an_empty_folder_creates_the_store(tmp_path, capsys):
    folder = tmp_path / "empty"
    folder.mkdir()
    assert main(ingest_args(folder, tmp_path)) == 0
    assert "12 steps added" in capsys.readouterr().out
    validate_store(folder, full=True)


def test_hindcast_never_writes_over_its_input_store(trained_model_run, tmp_path, capsys):
    # A copy of the shared store, so the session's fixture stays intact whatever happens.
    store, run = trained_model_run
    mine = tmp_path / "sst.zarr"
    write_store(open_store(store).load(), mine)
    before = digest(mine)
    for extra in ([], ["--overwrite"]):
        args = ["hindcast", "--run-dir", str(run), "--store", str(mine), "--start", "1996-01",
                "--end", "1996-02", "--out", str(mine), *extra]
        assert main(args) == 2
        one_line_error(capsys, "sstcast hindcast: error: out:", "an SST store", str(mine))
    validate_store(mine, full=True)
    assert digest(mine) == before


def test_forecast_replaces_an_existing_forecast_only_with_overwrite(trained_model_run, tmp_path,
                                                                    capsys):
    store, run = trained_model_run
    out = tmp_path / "fc.zarr"
    args = ["forecast", "--run-dir", str(run), "--store", str(store), "--leads", "2",
            "--out", str(out)]
    assert main([*args, "--init", "1996-06"]) == 0
    assert main([*args, "--init", "1996-07"]) == 2
    one_line_error(capsys, "out:", "existing forecast store", "--overwrite")
    assert str(open_forecast(out).init_time.values[0])[:7] == "1996-06"
    assert main([*args, "--init", "1996-07", "--overwrite"]) == 0
    assert str(open_forecast(out).init_time.values[0])[:7] == "1996-07"


def test_forecast_overwrite_never_clears_other_files(trained_model_run, tmp_path, capsys):
    store, run = trained_model_run
    folder = folder_with_files(tmp_path / "products")
    assert main(["forecast", "--run-dir", str(run), "--store", str(store), "--init", "1996-06",
                 "--leads", "2", "--out", str(folder), "--overwrite"]) == 2
    one_line_error(capsys, "out:", "other files", "refusing to overwrite")
    assert_untouched(folder)


def test_library_writers_take_overwrite_false_by_default(model_store, tmp_path):
    kw = {"inits": ["1996-01-01"], "leads": 2, "train_end": "1995-12"}
    out = baseline_forecast("persistence", model_store, tmp_path / "p.zarr", **kw)
    with pytest.raises(ValueError, match="out: expected a new path.*overwrite=True"):
        baseline_forecast("climatology", model_store, out, **kw)
    assert open_forecast(out).attrs["model"] == "persistence"
    baseline_forecast("climatology", model_store, out, overwrite=True, **kw)
    assert open_forecast(out).attrs["model"] == "climatology"
    from pipeline.data.store import store_kind

    assert store_kind(out) == "forecast" and store_kind(model_store) == "sst"
    with pytest.raises(ValueError, match="an SST store"):
        baseline_forecast("climatology", model_store, model_store, overwrite=True, **kw)
    assert np.isfinite(open_store(model_store)["sst"].values).any()
    validate_store(model_store, full=True)
