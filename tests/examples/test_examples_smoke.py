"""Smoke runs of the paper-reproduction scripts with their ``small`` configs (seconds each).

Each run must write its PNG and a JSON of finite numbers, and the numbers must show the
property the experiment is about (accuracy, agreement with the dense solver, learning).
"""

import json
import math

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


def test_lorenz_training_is_identical_with_both_solvers(tmp_path):
    lorenz.main(["--config", "small", "--out", str(tmp_path)])
    numbers = load(tmp_path, "lorenz")
    compare = numbers["compare"]
    assert compare["max_loss_rel_diff"] < 1e-6
    assert compare["max_xi_abs_diff"] < 1e-6
    for key in ("smnn", "dense"):
        assert compare[key]["seconds_per_step"] > 0
        assert compare[key]["peak_memory_mib"] >= 0
    assert len(numbers["discovered_equations"]) == 3
    assert set(numbers["recovery"]) >= {"all_seven_within_2pct", "no_spurious_above_0.05"}


def test_lorenz_refit_through_the_layer_recovers_all_seven_terms():
    # From every term present and each coefficient off by 0.2, sequential thresholding with
    # least-squares refits through the S-MNN layer finds the Lorenz system (the full run's
    # last stage); 1500 samples, 30 windows.
    config = lorenz.CONFIGS["small"]
    trajectory = lorenz.lorenz_trajectory(config.n_samples, config.dt)
    xi, kept = lorenz.refit(trajectory, config, lorenz.true_coefficients() + 0.2)
    assert kept[0] == 30 and kept[-1] == 7
    result = lorenz.recovery(xi)
    assert result["all_seven_within_2pct"] and result["no_spurious_above_0.05"], result


def test_kdv_model_trains_identically_with_both_solvers_and_forecasts_alike(tmp_path):
    kdv.main(["--config", "small", "--out", str(tmp_path)])
    numbers = load(tmp_path, "kdv")
    assert numbers["compare"]["max_loss_rel_diff"] < 1e-6
    assert numbers["dense_eval"]["max_abs_forecast_diff"] < 1e-8
    assert 0 < numbers["smnn"]["test_relative_error"] < 1.5
    for key in ("smnn", "dense"):
        assert numbers[key]["seconds_per_step"] > 0
    assert numbers["persistence_relative_error"] > 0
