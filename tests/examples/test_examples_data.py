"""The generators and helpers the example scripts rely on: closed forms, solvers, library."""

import json

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from examples._data import damped_sine, lorenz_rhs, lorenz_trajectory
from examples._kdv_data import kdv_solve, random_solitons, soliton
from examples._library import evaluate_library, polynomial_terms, term_names, threshold_mask
from examples._odes import PROBLEMS
from examples._output import write_json


@pytest.mark.parametrize("problem", PROBLEMS, ids=lambda p: p.name)
def test_closed_form_matches_a_numerical_integration_of_the_system(problem):
    # The system sum_d c[e,d,0] x_d + c[e,d,1] x_d' = r[e] solved for x' and integrated.
    c = np.asarray(problem.coefficients)
    c0, c1, r = c[..., 0], c[..., 1], np.asarray(problem.rhs)
    t = np.linspace(0.0, 5.0, 51)
    init = np.asarray(problem.inits[-1])
    sol = solve_ivp(lambda _, x: np.linalg.solve(c1, r - c0 @ x), (0, 5), init, t_eval=t,
                    rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(problem.exact(t, init), sol.y.T, atol=1e-8)


def test_lorenz_trajectory_starts_at_x0_and_follows_the_vector_field():
    x = lorenz_trajectory(201, 0.01)
    assert x.shape == (201, 3)
    np.testing.assert_array_equal(x[0], [1.0, 1.0, 1.0])
    central_difference = (x[2:] - x[:-2]) / 0.02
    scale = np.abs(lorenz_rhs(x[1:-1])).max()
    assert np.abs(central_difference - lorenz_rhs(x[1:-1])).max() < 1e-2 * scale


def test_lorenz_fine_rk4_agrees_with_an_adaptive_high_order_solver():
    x = lorenz_trajectory(101, 0.01)
    ref = solve_ivp(lambda _, s: lorenz_rhs(s), (0, 1), [1.0, 1.0, 1.0], method="DOP853",
                    t_eval=np.linspace(0, 1, 101), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(x, ref.y.T, atol=1e-8)


def test_damped_sine_noise_has_the_requested_level():
    _, clean, noisy = damped_sine(4000, 0.01, noise=0.05, seed=3)
    assert abs(np.std(noisy - clean) - 0.05) < 0.005
    assert clean[0] == 0.0


def test_kdv_soliton_travels_unchanged_at_its_speed():
    length = 40.0
    x = np.arange(128) * length / 128
    t = np.array([0.0, 2.0])
    u = kdv_solve(soliton(x, 0.0, 1.2, 10.0, length)[None], length, t, dt=5e-3)
    np.testing.assert_allclose(u[0, -1], soliton(x, 2.0, 1.2, 10.0, length), atol=1e-6)


def test_random_solitons_are_seeded_finite_and_conserve_mass():
    _, t, u = random_solitons(2, n_points=64, n_frames=6, seed=5)
    _, _, again = random_solitons(2, n_points=64, n_frames=6, seed=5)
    np.testing.assert_array_equal(u, again)
    assert u.shape == (2, 6, 64) and np.isfinite(u).all()
    mass = u.sum(axis=-1)  # KdV conserves the integral of u
    np.testing.assert_allclose(mass, mass[:, :1].repeat(6, axis=1), rtol=1e-8)


def test_polynomial_library_of_degree_two_has_ten_named_terms():
    terms = polynomial_terms(3, 2)
    assert term_names(terms) == ["1", "x", "y", "z", "xx", "xy", "xz", "yy", "yz", "zz"]
    theta = evaluate_library(torch.tensor([[2.0, 3.0, 5.0]]), terms)
    assert theta.tolist() == [[1.0, 2.0, 3.0, 5.0, 4.0, 6.0, 10.0, 9.0, 15.0, 25.0]]


def test_threshold_keeps_terms_at_or_above_it_and_rejects_a_negative_threshold():
    xi = torch.tensor([0.05, -0.2, 0.1, -3.0])
    assert threshold_mask(xi, 0.1).tolist() == [False, True, True, True]
    with pytest.raises(ValueError, match="threshold"):
        threshold_mask(xi, -1.0)


def test_write_json_refuses_non_finite_numbers(tmp_path):
    with pytest.raises(ValueError, match=r"bad\.rows\[1\]\.err"):
        write_json(tmp_path / "bad.json", {"rows": [{"err": 1.0}, {"err": float("nan")}]})
    path = write_json(tmp_path / "ok.json", {"rows": [{"err": 1.0}]})
    assert json.loads(path.read_text()) == {"rows": [{"err": 1.0}]}
