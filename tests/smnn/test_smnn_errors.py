"""Bad input raises ValueError/TypeError naming the argument, the expected and the received."""

import pytest
import torch

from smnn import ODELayer, SolveError, ode_forward

from .conftest import make_problem


def replaced(index, value, **kwargs):
    inputs = list(make_problem(t_len=5, **kwargs))
    inputs[index] = value(inputs[index]) if callable(value) else value
    return inputs


def nan_at(x, where=(0, 1)):
    x = x.clone()
    x.view(-1)[3 if x.numel() > 3 else 0] = float("nan")
    return x


CASES = {
    "coefficients_not_a_tensor": (0, [[1.0]], TypeError, "coefficients: expected a torch.Tensor"),
    "integer_rhs": (1, lambda r: r.long(), TypeError, "rhs: expected dtype float32 or float64"),
    "rhs_wrong_equation_count": (
        1,
        lambda r: torch.cat([r, r], -1),
        ValueError,
        r"rhs: expected last dim E=1",
    ),
    "rhs_wrong_step_count": (1, lambda r: r[:, :3], ValueError, r"rhs: expected step dim 5 or 1"),
    "steps_wrong_count": (
        3,
        lambda h: h[:, :2],
        ValueError,
        r"steps: expected step dim 4 or 1 \(T=5\), received 2",
    ),
    "init_vars_wrong_state_dims": (
        2,
        lambda v: torch.cat([v, v], -2),
        ValueError,
        r"init_vars: expected dim -2 to be D=1",
    ),
    "init_vars_too_many_orders": (
        2,
        lambda v: torch.cat([v, v], -1),
        ValueError,
        r"init_vars: expected J <= K=3",
    ),
    "order_zero": (0, lambda c: c[..., :1], ValueError, r"coefficients: expected K >= 2"),
    "nan_coefficient": (
        0,
        nan_at,
        ValueError,
        r"coefficients: expected finite values, received nan",
    ),
    "inf_rhs": (
        1,
        lambda r: r + float("inf"),
        ValueError,
        r"rhs: expected finite values, received inf",
    ),
    "nan_init_vars": (2, nan_at, ValueError, r"init_vars: expected finite values"),
    "zero_step": (3, lambda h: h * 0, ValueError, r"steps: expected step sizes > 0, received 0.0"),
    "negative_step": (3, lambda h: -h, ValueError, r"steps: expected step sizes > 0, received -"),
    "batch_dims_clash": (
        1,
        lambda r: torch.cat([r, r, r]),
        ValueError,
        r"expected leading batch dims that broadcast",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_raises_naming_argument_expected_and_received(case):
    index, value, error, message = CASES[case]
    with pytest.raises(error, match=message):
        ode_forward(*replaced(index, value))


def test_more_initial_steps_than_steps_raises():
    with pytest.raises(
        ValueError, match=r"init_vars: expected S <= T=5 initial steps, received S=6"
    ):
        ode_forward(*make_problem(t_len=5, s_len=6))


def test_bad_weight_and_method_raise():
    inputs = make_problem(t_len=5)
    with pytest.raises(
        ValueError, match=r"weight_smooth: expected a finite number > 0, received 0.0"
    ):
        ode_forward(*inputs, weight_smooth=0.0)
    with pytest.raises(TypeError, match="weight_init: expected a positive real number"):
        ode_forward(*inputs, weight_init="1")
    with pytest.raises(
        ValueError,
        match=r"method: expected 'auto' or one of \[.*'sequential'.*\], received 'cholesky'",
    ):
        ODELayer(method="cholesky")(*inputs)


@pytest.mark.parametrize(
    ("method", "batch", "bad"),
    # compiled: one system (one lane), a few (8 lanes), a partial second 32-lane chunk
    [("sequential", 4, 2), ("compiled", 1, 0), ("compiled", 4, 2), ("compiled", 45, 37)],
)
def test_a_singular_system_names_its_batch_index(method, batch, bad):
    # Batch element `bad` has all-zero equations and no initial values: nothing pins u.
    coefficients, rhs, _, steps = make_problem(batch=(batch,), t_len=5, s_len=0)
    coefficients[bad] = 0.0
    init_vars = torch.zeros(batch, 0, 1, 2, dtype=torch.float64)
    for central in (False, True):
        match = f"expected symmetric positive definite.*batch index {bad}"
        with pytest.raises(ValueError, match=match):
            ode_forward(coefficients, rhs, init_vars, steps, central=central, method=method)


# --- non-finite values the compiled kernels detect as they solve ---------------------------


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
@pytest.mark.parametrize("batch", [(1,), (4,), (45,), (3, 4)])
@pytest.mark.parametrize(("index", "name"), [(0, "coefficients"), (1, "rhs"),
                                             (2, "init_vars"), (3, "steps")])
def test_the_compiled_method_names_a_non_finite_value_at_any_position(index, name, batch,
                                                                      value):
    # One system (one lane), 8 lanes, a partial second 32-lane chunk, and 3 matrices of 4
    # right-hand sides each (coefficients and steps broadcast): the kernels skip the pass
    # over the inputs and must still see a bad value wherever it is.
    for inputs in with_value_everywhere(index, batch, value):
        with pytest.raises(SolveError, match=rf"^{name}: expected finite values"):
            ode_forward(*inputs, method="compiled")


@pytest.mark.parametrize("value", [0.0, -0.1, -float("inf")])
@pytest.mark.parametrize("batch", [(1,), (4,), (45,), (3, 4)])
def test_the_compiled_method_names_a_step_that_is_not_positive_at_any_position(batch, value):
    for inputs in with_value_everywhere(3, batch, value):
        with pytest.raises(ValueError, match=r"^steps: expected (step sizes > 0|finite)"):
            ode_forward(*inputs, method="compiled")


def with_value_everywhere(index, batch, value):
    """The inputs with input `index`'s first, second, middle and last entry set to value."""
    batches = [(3, 1), (3, 4), (3, 4), (3, 1)] if len(batch) == 2 else None
    clean = make_problem(t_len=5, batch=batch, batches=batches, s_len=2)
    size = clean[index].numel()
    for at in sorted({0, 1, size // 2, size - 1}):
        inputs = list(clean)
        inputs[index] = inputs[index].clone()
        inputs[index].view(-1)[at] = value
        yield inputs


def test_a_step_the_kernels_refuse_is_named_even_without_the_inputs_check(monkeypatch):
    # The kernels' own test, should the named check after a failed solve miss it.
    import smnn._ode

    c, r, v, h = make_problem(t_len=5, batch=(4,))
    monkeypatch.setattr(smnn._ode, "check_values", lambda *args, **kwargs: None)
    with pytest.raises(SolveError, match=r"^steps: expected step sizes > 0, received one "
                                         r"that is not at batch index 2"):
        ode_forward(c, r, v, h.index_fill(0, torch.tensor([2]), -0.1), method="compiled")


def test_a_solution_that_overflows_is_a_clear_error():
    c, r, v, h = make_problem(t_len=5, batch=(4,))
    with pytest.raises(SolveError, match=r"^the solution: expected finite values, received "
                                         r"inf or NaN at batch index 2"):
        ode_forward(c, r.index_fill(0, torch.tensor([2]), 1e308), v, h, method="compiled")
