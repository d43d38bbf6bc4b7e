"""Out-of-range parameters are refused at the boundary, at once, naming the argument, what
was expected and what was received."""

import time
import tracemalloc

import pytest
from pydantic import ValidationError

from flows.cli import main
from flows.params import ForecastParameters, IngestParameters, PipelineParameters
from pipeline.data.ingest import ingest
from pipeline.model.config import MAX_STEPS, load_config
from pipeline.model.forecast import hindcast


def _cli(argv, capsys):
    code = main(argv)
    return code, capsys.readouterr().err


@pytest.mark.parametrize("grid", ["nan", "inf", "-1", "0"])
def test_a_bad_grid_is_refused_before_anything_is_fetched(tmp_path, capsys, grid):
    code, err = _cli(["ingest", "--store", str(tmp_path / "s.zarr"), "--cache-dir",
                      str(tmp_path / "c"), "--grid", grid], capsys)
    assert code == 2
    assert "grid: expected a positive number of degrees, got" in err and grid in err
    assert not (tmp_path / "c").exists() and not (tmp_path / "s.zarr").exists()


@pytest.mark.parametrize("flag, value", [("--end", "3000-12"), ("--start", "1700-01"),
                                         ("--end", "not-a-date")])
def test_a_date_out_of_range_is_refused(tmp_path, capsys, flag, value):
    began = time.monotonic()
    code, err = _cli(["ingest", "--store", str(tmp_path / "s.zarr"), "--cache-dir",
                      str(tmp_path / "c"), flag, value], capsys)
    assert time.monotonic() - began < 1
    assert code == 2 and f"{flag[2:]}: expected a date" in err and value in err
    assert not (tmp_path / "c").exists()


def test_start_after_end_is_an_error_not_a_silent_success(tmp_path, capsys):
    code, err = _cli(["ingest", "--store", str(tmp_path / "s.zarr"), "--cache-dir",
                      str(tmp_path / "c"), "--start", "2001-01", "--end", "2000-01"], capsys)
    assert code == 2
    assert "start, end: expected start <= end" in err and "2001-01" in err
    with pytest.raises(ValueError, match="start <= end"):
        ingest(store=str(tmp_path / "s.zarr"), start="2001-01", end="2000-01")


def test_a_huge_horizon_is_a_config_error(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[window]\nhorizon = 1000000000\n")
    with pytest.raises(ValueError, match=r"horizon(.|\n)*less than or equal to 10000"
                                         r"(.|\n)*1000000000"):
        load_config(path)


def test_the_cli_refuses_a_huge_horizon(model_store, tmp_path, capsys):
    path = tmp_path / "c.toml"
    path.write_text("[window]\nhorizon = 1000000000\n")
    code, err = _cli(["train", "--store", str(model_store), "--run-dir", str(tmp_path / "run"),
                      "--config", str(path)], capsys)
    assert code == 2 and "horizon" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("leads", [10**9, 1e9])
def test_huge_leads_are_refused_at_once_with_little_memory(trained_model_run, tmp_path, leads):
    store, run = trained_model_run
    tracemalloc.start()
    began = time.monotonic()
    with pytest.raises(ValueError, match=r"leads: expected 1\.\.\d+ .*got 1"):
        hindcast(run, store, start="1995-12", end="1995-12", leads=leads,
                 out=tmp_path / "f.zarr")
    took = time.monotonic() - began
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert took < 1, took
    assert peak < 100 * 2**20, peak  # a refusal must not allocate the 8 GB lead array
    assert not (tmp_path / "f.zarr").exists()


def test_the_cli_refuses_huge_leads_in_a_second(trained_model_run, tmp_path, capsys):
    store, run = trained_model_run
    began = time.monotonic()
    code, err = _cli(["forecast", "--run-dir", str(run), "--store", str(store), "--init",
                      "1995-12", "--leads", "1000000000", "--out", str(tmp_path / "f.zarr")],
                     capsys)
    assert time.monotonic() - began < 1
    assert code == 2 and "leads: expected 1.." in err and "1000000000" in err


@pytest.mark.parametrize("make", [
    lambda: ForecastParameters(run_dir="r", store="s", out_dir="o", leads=1e9),
    lambda: PipelineParameters(workdir="w", leads=10**9),
    lambda: IngestParameters(store="s", grid=float("inf")),
    lambda: PipelineParameters(workdir="w", grid=float("inf")),
    lambda: IngestParameters(store="s", start="2001-01-01", end="2000-01-01"),
    lambda: PipelineParameters(workdir="w", start="2001-01-01", end="2000-01-01"),
    lambda: PipelineParameters(workdir="w", forecast_start="2001-01-01",
                               forecast_end="2000-01-01"),
])
def test_flow_parameters_refuse_out_of_range_values(make):
    with pytest.raises(ValidationError):
        make()
    assert ForecastParameters(run_dir="r", store="s", out_dir="o", leads=MAX_STEPS).leads
