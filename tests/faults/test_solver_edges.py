"""Fault injection at the solver's edges: empty batches, failed factorisations, non-finite
input, and how training and forecasting report them.

Every method must give the same answer for the same input: an empty solution for an empty
batch, and one `smnn.SolveError` (a ValueError) with one message for a system it cannot
solve; the training loop turns that error into TrainingDiverged and lets other ValueErrors
through as themselves.
"""

import pytest
import torch

import smnn
from pipeline.model import train as train_module
from pipeline.model.train import TrainingDiverged, train
from smnn import SolveError, ode_forward
from smnn._compiled import available as numba_available
from smnn._solve import ASSEMBLED

METHODS = [
    "sequential",
    "parallel",
    pytest.param("compiled", marks=pytest.mark.skipif(not numba_available(),
                                                      reason="needs numba")),
    "auto",
]


def make_problem(*, batch=(2,), t_len=7, k_len=3, s_len=1, j_len=2, seed=0,
                 dtype=torch.float64, step_range=(0.05, 0.25)):
    """Random well-scaled inputs, the same numbers as tests/smnn/conftest.py's maker."""
    g = torch.Generator().manual_seed(seed)
    coefficients = torch.randn(*batch, t_len, 1, 1, k_len, generator=g, dtype=dtype)
    coefficients[..., 0] += 1.5
    rhs = torch.randn(*batch, t_len, 1, generator=g, dtype=dtype)
    init_vars = torch.randn(*batch, s_len, 1, j_len, generator=g, dtype=dtype)
    lo, hi = step_range
    steps = lo + (hi - lo) * torch.rand(*batch, t_len - 1, generator=g, dtype=dtype)
    return coefficients, rhs, init_vars, steps


def solve_error(method, inputs, **options) -> str:
    """The message of the SolveError `method` raises for `inputs`."""
    with pytest.raises(SolveError) as caught:
        ode_forward(*inputs, method=method, **options)
    assert isinstance(caught.value, ValueError)
    return str(caught.value)


def all_methods() -> list[str]:
    return [m for m in smnn.METHODS if m != "compiled" or numba_available()] + ["auto"]


# --- empty batches ------------------------------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("central", [False, True], ids=["default", "central"])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("batch", "t_len"), [((0,), 6), ((3, 0), 6), ((0,), 20_000)])
def test_an_empty_batch_gives_an_empty_solution_and_empty_gradients(
    method, central, batch, t_len
):
    # T = 20,000: a long sequence, one lane per system in the compiled method.
    inputs = [x.requires_grad_() for x in make_problem(batch=batch, t_len=t_len, s_len=2)]
    u = ode_forward(*inputs, method=method, central=central)
    assert u.shape == (*batch, t_len, 1, 3)
    u.sum().backward()
    for x in inputs:
        assert x.grad is not None and x.grad.shape == x.shape


@pytest.mark.timeout(60)
@pytest.mark.parametrize("n_bands", [1, 2])
@pytest.mark.parametrize("method", sorted(ASSEMBLED))
def test_the_factor_protocol_takes_an_empty_batch(method, n_bands):
    diag = torch.zeros(0, 9, 3, 3, dtype=torch.float64)
    bands = tuple(torch.zeros(0, 9 - k, 3, 3, dtype=torch.float64) for k in range(1, n_bands + 1))
    fac = ASSEMBLED[method].factor(diag, bands)
    assert fac.solve(torch.zeros(0, 9, 3, dtype=torch.float64)).shape == (0, 9, 3)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("method", METHODS)
def test_an_empty_batch_through_the_layer_in_float32(method):
    inputs = [x.float() for x in make_problem(batch=(0,), t_len=9)]
    u = smnn.ODELayer(method=method, solve_dtype=torch.float32)(*inputs)
    assert u.shape == (0, 9, 1, 3) and u.dtype == torch.float32


# --- failed factorisations: one error, one message ------------------------------------------


def test_a_float32_solve_at_tiny_steps_raises_the_same_solve_error_everywhere():
    # h = 1e-4 in float32: h^4 = 1e-16 is below float32's resolution of the O(1) entries, so
    # a pivot rounds to zero or below; numba used to raise ZeroDivisionError here.
    inputs = [x.float() for x in make_problem(batch=(4,), t_len=30, step_range=(1e-4, 1.5e-4))]
    messages = {
        m: solve_error(m, inputs, solve_dtype=torch.float32)
        for m in all_methods()
    }
    assert len(set(messages.values())) == 1, messages
    assert "expected symmetric positive definite" in messages["sequential"]
    assert "batch index 0 of the flattened batch" in messages["sequential"]


def test_a_float32_layer_at_tiny_steps_raises_solve_error_not_zero_division():
    inputs = [x.float() for x in make_problem(batch=(4,), t_len=30, step_range=(1e-4, 1.5e-4))]
    layer = smnn.ODELayer(method="compiled" if numba_available() else "auto",
                          solve_dtype=torch.float32)
    with pytest.raises(SolveError, match="batch index 0"):
        layer(*inputs)


# (central, T, seed, J): S = 1 and batch element 1 with all-zero coefficients, so only the
# initial values pin the polynomials the smoothness rows leave free: M is singular. Before,
# some methods refused these and others returned (different) numbers.
SINGULAR = [(False, 5, 0, 2), (False, 5, 1, 1), (False, 5, 3, 1), (False, 5, 3, 2),
            (False, 7, 2, 1), (False, 12, 0, 1), (True, 7, 0, 1)]


@pytest.mark.parametrize(("central", "t_len", "seed", "j_len"), SINGULAR)
def test_a_singular_system_raises_the_identical_error_from_every_method(
    central, t_len, seed, j_len
):
    coefficients, rhs, init_vars, steps = make_problem(t_len=t_len, seed=seed, j_len=j_len)
    coefficients[1] = 0.0
    inputs = (coefficients, rhs, init_vars, steps)
    messages = {m: solve_error(m, inputs, central=central) for m in all_methods()}
    assert len(set(messages.values())) == 1, messages
    assert messages["sequential"].endswith("at batch index 1 of the flattened batch")


def test_the_healthy_batch_element_still_solves_when_alone():
    coefficients, rhs, init_vars, steps = make_problem(t_len=5, seed=0)
    u = {m: ode_forward(coefficients, rhs, init_vars, steps, method=m) for m in all_methods()}
    for m in u:
        torch.testing.assert_close(u[m], u["sequential"], rtol=1e-9, atol=1e-9)


def test_solve_error_is_exported_and_is_a_value_error():
    assert "SolveError" in smnn.__all__ and issubclass(SolveError, ValueError)


# --- non-finite input ------------------------------------------------------------------------


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
@pytest.mark.parametrize(("index", "name"), [(0, "coefficients"), (1, "rhs"),
                                             (2, "init_vars"), (3, "steps")])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_non_finite_input_is_refused_by_name_for_every_method(index, name, value, dtype):
    inputs = [x.to(dtype) for x in make_problem(t_len=6)]
    inputs[index] = inputs[index].clone()
    inputs[index].view(-1)[1] = value
    for method in all_methods():
        for solve_dtype in (None, dtype):
            with pytest.raises(SolveError, match=rf"^{name}: expected finite values"):
                ode_forward(*inputs, method=method, solve_dtype=solve_dtype)


# --- training and forecasting -------------------------------------------------------------


def test_a_poisoned_validation_batch_stops_training_with_training_diverged(
    model_store, tmp_path, tiny_config, monkeypatch
):
    real = train_module._validate

    class Poisoned:
        def __init__(self, dataset):
            self.dataset = dataset

        def __getitems__(self, indices):
            batch = self.dataset.__getitems__(indices)
            batch["context"] = batch["context"].clone()
            batch["context"][0, -1] = float("inf")
            return batch

    def poisoned_validate(model, dataset, *args):
        return real(model, Poisoned(dataset), *args)

    monkeypatch.setattr(train_module, "_validate", poisoned_validate)
    with pytest.raises(TrainingDiverged, match=r"step 2: .*last\.pt"):
        train(model_store, tmp_path / "run", config=tiny_config)


def test_a_solve_error_in_a_training_step_is_training_diverged(
    model_store, tmp_path, tiny_config, monkeypatch
):
    def refuse(*args, **kwargs):
        raise SolveError("the normal matrix: injected failure at batch index 3")

    monkeypatch.setattr(smnn.ODELayer, "forward", refuse)
    with pytest.raises(TrainingDiverged, match="step 0: the ODE solve failed.*batch index 3"):
        train(model_store, tmp_path / "run", config=tiny_config)


def test_other_value_errors_in_a_training_step_surface_as_themselves(
    model_store, tmp_path, tiny_config, monkeypatch
):
    def malformed(*args, **kwargs):
        raise ValueError("coefficients: expected at least 4 dims, injected")

    monkeypatch.setattr(smnn.ODELayer, "forward", malformed)
    with pytest.raises(ValueError, match="injected") as caught:
        train(model_store, tmp_path / "run", config=tiny_config)
    assert not isinstance(caught.value, TrainingDiverged)


def test_a_solve_error_while_forecasting_is_a_clear_value_error(
    trained_model_run, tmp_path, monkeypatch
):
    from pipeline.model.forecast import forecast

    store, run = trained_model_run

    def refuse(*args, **kwargs):
        raise SolveError("the normal matrix: injected failure at batch index 0")

    monkeypatch.setattr(smnn.ODELayer, "forward", refuse)
    with pytest.raises(ValueError, match=r"forecast: the model's ODE solve failed .*injected"):
        forecast(run, store, "1997-01-01", out=tmp_path / "f.zarr")
