"""Smoke runs of the paper-reproduction scripts with their ``small`` configs (seconds each).

Each run must write its PNG and a JSON of finite numbers, and the numbers must show the
property the experiment is about (accuracy, agreement with the dense solver, learning).
"""

import json
import math

import pytest

from examples import damped_sine, kdv, lorenz, standalone_odes


def load(out, name):
    png, report = out / f"{name}.png", out / f"{name}.json"
    assert png.stat().st_size > 10_000, f"{png} missing or empty"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return json.loads(report.read_text())


def test_standalone_odes_are_accurate_and_match_the_dense_solve(tmp_path):
    standalone_odes.main(["--config", "small", "--out", str(tmp_path)])
    numbers = load(tmp_path, "standalone_odes")
    rows = numbers["rows"]
    assert {r["problem"] for r in rows} == {p.name for p in standalone_odes.PROBLEMS}
    assert {r["variant"] for r in rows} == {"default", "central"}
    for row in rows:
        assert row["max_rel_error"] < 1e-3, row
        assert row["rel_diff_vs_dense"] < 1e-9, row


def test_damped_sine_fit_beats_the_noise_with_either_solver(tmp_path):
    damped_sine.main(["--config", "small", "--out", str(tmp_path)])
    numbers = load(tmp_path, "damped_sine")
    for fit in numbers["fits"].values():
        assert fit["rmse_to_clean"] < numbers["noise_std"]
        assert all(math.isfinite(v) for v in fit.values())
    assert numbers["max_loss_curve_rel_diff"] < 1e-6


def test_lorenz_training_is_identical_with_both_solvers_and_finds_the_x_equation(tmp_path):
    lorenz.main(["--config", "small", "--out", str(tmp_path)])
    numbers = load(tmp_path, "lorenz")
    compare = numbers["compare"]
    assert compare["max_loss_rel_diff"] < 1e-6
    assert compare["max_xi_abs_diff"] < 1e-6
    for key in ("smnn", "dense"):
        assert compare[key]["seconds_per_step"] > 0
        assert compare[key]["peak_memory_mib"] >= 0
    # A few steps of training suffice for x' = 10 (y - x); the full config finds all seven.
    x_equation = [row[0] for row in numbers["discovered_xi"]]
    assert x_equation[1] == pytest.approx(-10.0, rel=0.02)
    assert x_equation[2] == pytest.approx(10.0, rel=0.02)
    assert set(numbers["recovery"]) >= {"all_seven_within_2pct", "no_spurious_above_0.05"}


def test_kdv_model_trains_identically_with_both_solvers_and_forecasts_alike(tmp_path):
    kdv.main(["--config", "small", "--out", str(tmp_path)])
    numbers = load(tmp_path, "kdv")
    assert numbers["compare"]["max_loss_rel_diff"] < 1e-6
    assert numbers["dense_eval"]["max_abs_forecast_diff"] < 1e-8
    assert 0 < numbers["smnn"]["test_relative_error"] < 1.5
    for key in ("smnn", "dense"):
        assert numbers[key]["seconds_per_step"] > 0
    assert numbers["persistence_relative_error"] > 0
