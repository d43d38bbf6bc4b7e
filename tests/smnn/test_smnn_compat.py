"""smnn.compat: the originals' argument lists one by one, and what each argument does."""

import inspect
import warnings

import pytest
import torch

from smnn import ode_forward
from smnn.compat import ODEINDLayer, ODESYSLayer, published
from smnn.compat._tables import (
    ODEINDLAYER,
    ODESYSLAYER,
    PUBLISHED_ODE_FORWARD,
    REQUIRED,
    markdown,
)

from .conftest import relative_error

ORIGINALS = [
    (ODEINDLayer.__init__, ODEINDLAYER),
    (ODESYSLayer.__init__, ODESYSLAYER),
    (published.ode_forward, PUBLISHED_ODE_FORWARD),
]
ROWS = [(f, i, row) for f, table in ORIGINALS for i, row in enumerate(table)]


@pytest.mark.parametrize(
    ("function", "position", "row"), ROWS, ids=[f"{f.__qualname__}-{r[0]}" for f, _, r in ROWS]
)
def test_every_original_argument_has_its_position_name_and_default(function, position, row):
    name, default, handling, _ = row
    params = [p for p in inspect.signature(function).parameters.values() if p.name != "self"]
    param = params[position]
    assert param.name == name
    assert param.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    assert param.default == (inspect.Parameter.empty if default is REQUIRED else default)
    assert handling in ("same", "honoured", "refused", "accepted")


@pytest.mark.parametrize("function,table", ORIGINALS)
def test_our_extra_options_are_keyword_only(function, table):
    params = [p for p in inspect.signature(function).parameters.values() if p.name != "self"]
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params[len(table) :])


def test_the_readme_tables_are_the_argument_tables():
    readme = (inspect.getfile(ODEINDLayer).rsplit("/smnn/", 1)[0]) + "/README.md"
    text = open(readme, encoding="utf-8").read()
    for _, table in ORIGINALS:
        assert markdown(table) in text


# A value other than the original default for each argument the tables mark accepted or
# refused: accepted ones must leave the numbers as they are, refused ones must raise.
OTHER_VALUE = {
    "gamma": 0.05,
    "alpha": 0.0,
    "device": "cpu",
    "periodic_boundary": True,
    "prefer_cuda_graph": False,
    "frozen_lhs_cache_version": 7,
}


def run_original(function, **options):
    if function is ODEINDLayer.__init__:
        return ODEINDLayer(2, 2, 3, 2, 9, 1, **options)(*ind_inputs(seed=8))[0]
    if function is ODESYSLayer.__init__:
        return ODESYSLayer(2, 2, 1, 2, 2, 1, 1, 12, **options)(*sys_inputs(seed=8))[4]
    return published.ode_forward(*published_inputs(seed=8), **options)


NOT_SAME = [(f, row) for f, _, row in ROWS if row[2] in ("accepted", "refused")]


@pytest.mark.parametrize(
    ("function", "row"), NOT_SAME, ids=[f"{f.__qualname__}-{r[0]}" for f, r in NOT_SAME]
)
def test_accepted_arguments_keep_the_numbers_and_refused_ones_raise(function, row):
    name, _, handling, _ = row
    if handling == "refused":
        with pytest.raises(ValueError, match=name):
            run_original(function, **{name: OTHER_VALUE[name]})
    else:
        assert torch.equal(
            run_original(function, **{name: OTHER_VALUE[name]}), run_original(function)
        )


# --- ODEINDLayer ---------------------------------------------------------------------------


def ind_inputs(bs=2, n_ind_dim=3, order=2, n_step=9, n_iv=2, n_iv_steps=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    coeffs = torch.randn(bs, n_ind_dim, n_step, order + 1, generator=g, dtype=torch.float64)
    coeffs[..., -1] += 1.5
    rhs = torch.randn(bs, n_ind_dim, n_step, generator=g, dtype=torch.float64)
    iv_rhs = torch.randn(bs, n_ind_dim, n_iv_steps, n_iv, generator=g, dtype=torch.float64)
    steps = 0.1 + 0.1 * torch.rand(bs, n_ind_dim, n_step - 1, generator=g, dtype=torch.float64)
    return coeffs, rhs, iv_rhs, steps


def ind_reference(coeffs, rhs, iv_rhs, steps, central=True):
    """ODEINDLayer's problem, as a plain ode_forward call."""
    bs, n, t, k = coeffs.shape
    return ode_forward(
        coeffs.reshape(bs * n, t, 1, 1, k),
        rhs.reshape(bs * n, t, 1),
        iv_rhs.reshape(bs * n, -1, 1, iv_rhs.shape[-1]),
        steps.reshape(bs * n, t - 1),
        central=central,
    ).reshape(bs, n, t, k)


def test_ind_layer_defaults_solve_with_central_rows_and_return_float32():
    inputs = ind_inputs()
    u0, u1, u2, eps, steps_out = ODEINDLayer(2, 2, 3, 2, 9, 1)(*inputs)
    want = ind_reference(*inputs)
    assert u0.dtype == u1.dtype == u2.dtype == eps.dtype == torch.float32  # double_ret=False
    assert u0.shape == u1.shape == u2.shape == (2, 3, 9)
    assert relative_error(torch.stack([u0, u1, u2], -1).double(), want) < 1e-6
    assert eps.shape == (6,) and not eps.any()
    assert steps_out.shape == (6, 8, 1) and steps_out.dtype == torch.float64


def test_ind_layer_double_ret_returns_the_float64_solution():
    inputs = ind_inputs(seed=1)
    u0, u1, u2, *_ = ODEINDLayer(2, 2, 3, 2, 9, 1, double_ret=True)(*inputs)
    assert u0.dtype == torch.float64
    assert relative_error(torch.stack([u0, u1, u2], -1), ind_reference(*inputs)) < 1e-13


def test_ind_layer_central_diff_false_drops_the_central_rows():
    inputs = ind_inputs(seed=2)
    layer = ODEINDLayer(2, 2, 3, 2, 9, 1, central_diff=False, double_ret=True)
    u0, *_ = layer(*inputs)
    assert relative_error(u0, ind_reference(*inputs, central=False)[..., 0]) < 1e-13


def test_ind_layer_solver_dbl_false_solves_in_the_inputs_dtype():
    inputs = [x.float() for x in ind_inputs(seed=3)]
    single = ODEINDLayer(2, 2, 3, 2, 9, 1, solver_dbl=False, double_ret=True)
    double = ODEINDLayer(2, 2, 3, 2, 9, 1, solver_dbl=True, double_ret=True)
    u_single, u_double = single(*inputs)[0], double(*inputs)[0]
    assert u_single.dtype == torch.float32 and u_double.dtype == torch.float64
    assert single(*inputs)[4].dtype == torch.float32  # steps are not up-cast
    want = ind_reference(*[x.double() for x in inputs])[..., 0]
    assert relative_error(u_double, want) < 1e-13  # float32 inputs, a full float64 solve
    assert 0 < relative_error(u_single.double(), u_double) < 1e-3  # a float32 solve


def test_ind_layer_has_the_attributes_mnn_code_reads():
    layer = ODEINDLayer(2, 3, 4, 1, 10, 2, solver_dbl=False)
    assert (layer.bs, layer.order, layer.n_ind_dim, layer.n_iv, layer.n_step) == (2, 3, 4, 1, 10)
    assert (layer.n_iv_steps, layer.n_dim, layer.n_equations) == (2, 1, 1)
    assert layer.n_coeff == 40 and layer.step_size == 0.1 and layer.solver_dbl is False


def test_ind_layer_initial_values_pin_the_first_step():
    coeffs, rhs, iv_rhs, steps = ind_inputs(seed=5)
    u0, u1, *_ = ODEINDLayer(2, 2, 3, 2, 9, 1, weight_init=100.0)(coeffs, rhs, iv_rhs, steps)
    assert torch.allclose(u0[..., 0].double(), iv_rhs[..., 0, 0], atol=1e-2)
    assert torch.allclose(u1[..., 0].double(), iv_rhs[..., 0, 1], atol=1e-2)


def test_ind_layer_without_initial_values_and_first_order_gives_zero_u2():
    coeffs, rhs, _, steps = ind_inputs(order=1, seed=6)
    u0, u1, u2, _, _ = ODEINDLayer(2, 1, 3, 0, 9, 0)(coeffs, rhs, None, steps)
    assert u0.shape == (2, 3, 9) and torch.isfinite(u1).all()
    assert not u2.any()


def test_ind_layer_gradients_reach_every_input():
    inputs = [x.requires_grad_() for x in ind_inputs(seed=7)]
    u0, u1, u2, _, _ = ODEINDLayer(2, 2, 3, 2, 9, 1)(*inputs)
    (u0.sum() + u1.square().sum() + u2.mean()).backward()
    assert all(x.grad is not None and x.grad.abs().sum() > 0 for x in inputs)


def test_ind_layer_rejects_a_bad_order():
    with pytest.raises(ValueError, match="order: expected an integer >= 1, received 0"):
        ODEINDLayer(1, 0, 1, 1, 5, 1)


# --- ODESYSLayer ---------------------------------------------------------------------------


def sys_inputs(bs=2, n=1, e=2, t=12, d=2, order=2, s=1, j=1, seed=0, same_steps=True):
    g = torch.Generator().manual_seed(seed)
    f64 = dict(generator=g, dtype=torch.float64)
    coeffs = torch.randn(bs, n, e, t, d, order + 1, **f64)
    coeffs[..., -1] += 1.5
    rhs = torch.randn(bs, n, e, t, **f64)
    iv_rhs = torch.randn(bs, n, s, d, j, **f64)
    steps = 0.05 + 0.1 * torch.rand(bs, n, t - 1, 1 if same_steps else d, **f64)
    return coeffs, rhs, iv_rhs, steps.expand(bs, n, t - 1, d)


def test_sys_layer_solves_the_system_with_central_rows():
    coeffs, rhs, iv_rhs, steps = sys_inputs()
    u0, u1, u2, eps, u = ODESYSLayer(2, 2, 1, 2, 2, 1, 1, 12)(coeffs, rhs, iv_rhs, steps)
    want = ode_forward(
        coeffs.reshape(2, 2, 12, 2, 3).transpose(1, 2),
        rhs.reshape(2, 2, 12).transpose(1, 2),
        iv_rhs.reshape(2, 1, 2, 1),
        steps[:, 0, :, 0],
        central=True,
    )
    assert u.dtype == torch.float64 and u.shape == (2, 1, 12, 2, 3)  # double_ret=True
    assert relative_error(u[:, 0], want) < 1e-13
    assert torch.equal(u0, u[..., 0]) and torch.equal(u1, u[..., 1]) and torch.equal(u2, u[..., 2])
    assert eps.shape == (2,) and not eps.any()


def test_sys_layer_has_the_attributes_mnn_code_reads():
    layer = ODESYSLayer(
        bs=3,
        n_ind_dim=1,
        order=2,
        n_equations=4,
        n_dim=5,
        n_iv=1,
        n_step=7,
        n_iv_steps=2,
        solver_dbl=True,
    )  # the Mechanistic Identifier's call
    assert (layer.n_equations, layer.n_dim, layer.n_step, layer.n_iv_steps) == (4, 5, 7, 2)
    assert layer.bs == 3 and layer.periodic_boundary is False and layer.double_ret is True


def test_sys_layer_double_ret_false_returns_float32():
    out = ODESYSLayer(2, 2, 1, 2, 2, 1, 1, 12, double_ret=False)(*sys_inputs(seed=1))
    assert all(x.dtype == torch.float32 for x in out)


def test_sys_layer_solver_dbl_false_solves_in_the_inputs_dtype():
    inputs = [x.float() for x in sys_inputs(seed=4)]
    u_single = ODESYSLayer(2, 2, 1, 2, 2, 1, 1, 12, solver_dbl=False)(*inputs)[4]
    u_double = ODESYSLayer(2, 2, 1, 2, 2, 1, 1, 12)(*inputs)[4]
    assert u_single.dtype == torch.float32 and u_double.dtype == torch.float64
    assert 0 < relative_error(u_single.double(), u_double) < 1e-3  # a float32 solve


def test_sys_layer_averages_per_dimension_steps_and_says_so():
    inputs = sys_inputs(seed=2, same_steps=False)
    with pytest.warns(UserWarning, match="averaging the 2 dimensions' steps"):
        u = ODESYSLayer(2, 2, 1, 2, 2, 1, 1, 12)(*inputs)[4]
    averaged = (*inputs[:3], inputs[3].mean(-1, keepdim=True).expand_as(inputs[3]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch.equal(u, ODESYSLayer(2, 2, 1, 2, 2, 1, 1, 12)(*averaged)[4])
    with pytest.raises(ValueError, match="differ across n_dim=2"):
        ODESYSLayer(2, 2, 1, 2, 2, 1, 1, 12, step_dims="error")(*inputs)


def test_sys_layer_per_dim_steps_with_equal_steps_is_the_fast_solve():
    inputs = [x.clone().requires_grad_() for x in sys_inputs(seed=4)]
    dense = ODESYSLayer(2, 2, 1, 2, 2, 1, 1, 12, step_dims="per_dim")(*inputs)[4]
    (dense * torch.linspace(-1, 1, dense.numel()).reshape(dense.shape)).sum().backward()
    grads = [x.grad.clone() for x in inputs]
    for x in inputs:
        x.grad = None
    fast = ODESYSLayer(2, 2, 1, 2, 2, 1, 1, 12)(*inputs)[4]
    (fast * torch.linspace(-1, 1, fast.numel()).reshape(fast.shape)).sum().backward()
    assert relative_error(dense, fast) < 1e-10
    for got, x in zip(grads[:3], inputs[:3], strict=True):
        assert relative_error(got, x.grad) < 1e-9
    # the mean path shares a step's gradient evenly over the dims; per_dim keeps each dim's
    assert relative_error(grads[3].sum(-1), inputs[3].grad.sum(-1)) < 1e-9
    assert relative_error(grads[3], inputs[3].grad) > 1e-3


def test_sys_layer_per_dim_steps_give_each_dimension_its_own_steps():
    """Equations that each touch one state decouple the states: state d is then the scalar
    problem on its own steps steps[..., d] (the original MNN's per-dimension steps)."""
    coeffs, rhs, iv_rhs, steps = sys_inputs(seed=5, same_steps=False)
    coeffs = coeffs.clone()
    coeffs[:, :, 0, :, 1] = 0  # equation 0 touches state 0 only, equation 1 state 1 only
    coeffs[:, :, 1, :, 0] = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        u = ODESYSLayer(2, 2, 1, 2, 2, 1, 1, 12, step_dims="per_dim")(coeffs, rhs, iv_rhs, steps)[4]
    for d in range(2):
        want = ode_forward(
            coeffs[:, 0, d, :, d, None, None, :],
            rhs[:, 0, d, :, None],
            iv_rhs[:, 0, :, d, None, :],
            steps[:, 0, :, d],
            central=True,
        )
        assert relative_error(u[:, 0, :, d], want[:, :, 0]) < 1e-10, d


def test_sys_layer_gradients_reach_every_input():
    inputs = [x.clone().requires_grad_() for x in sys_inputs(seed=3)]
    u0, u1, u2, _, _ = ODESYSLayer(2, 2, 1, 2, 2, 1, 1, 12)(*inputs)
    (u0.sum() + u1.square().sum() + u2.mean()).backward()
    assert all(x.grad is not None and x.grad.abs().sum() > 0 for x in inputs)


# --- published ode_forward -----------------------------------------------------------------


def published_inputs(b=3, t=10, e=2, d=2, k=3, s=2, j=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    f64 = dict(generator=g, dtype=torch.float64)
    coefficients = torch.randn(b, t, e, d, k, **f64)
    coefficients[..., -1] += 1.5
    return (
        coefficients,
        torch.randn(b, t, e, **f64),
        torch.randn(b, s, d, j, **f64),
        0.05 + 0.1 * torch.rand(b, t - 1, **f64),
    )


def test_published_forward_takes_its_options_positionally():
    inputs = published_inputs()
    got = published.ode_forward(*inputs, None, None, False, 1.0, 2.0, 1.0, True, False, 3)
    assert relative_error(got, ode_forward(*inputs, weight_init=2.0, central=True)) < 1e-14


def test_published_forward_step_dim_first():
    inputs = published_inputs(seed=1)
    first = [x.movedim(-dim, 0) for x, dim in zip(inputs, (4, 2, 3, 1), strict=True)]
    got = published.ode_forward(*first, is_step_dim_first=True)
    assert got.shape == (10, 3, 2, 3)
    assert relative_error(got.movedim(0, -3), ode_forward(*inputs)) < 1e-14


def test_published_forward_broadcasts_step_dims_of_one_given_n_steps():
    c, r, v, h = published_inputs(seed=2)
    got = published.ode_forward(
        c[:, :1], r[:, :1], v[:, :1], h[:, :1], n_steps=10, n_init_var_steps=2
    )
    want = ode_forward(
        c[:, :1].expand_as(c), r[:, :1].expand_as(r), v[:, :1].expand_as(v), h[:, :1].expand_as(h)
    )
    assert got.shape == (3, 10, 2, 3) and relative_error(got, want) < 1e-14


def test_published_forward_names_a_step_dim_that_does_not_fit():
    c, r, v, h = published_inputs(seed=3)
    with pytest.raises(ValueError, match="rhs_equation: expected a step dim"):
        published.ode_forward(c, r[:, :4], v, h)
    with pytest.raises(ValueError, match="n_steps: expected an integer >= 2"):
        published.ode_forward(c, r, v, h, n_steps=1)


def test_ind_layer_default_central_rows_solve_the_harmonic_oscillator_as_mnn_does():
    t_len, h = 100, 0.1  # u'' + u = 0, u(0) = 1, u'(0) = 0: u = cos t, over 10 time units
    coeffs = torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64).repeat(1, 1, t_len, 1)
    rhs = torch.zeros(1, 1, t_len, dtype=torch.float64)
    iv_rhs = torch.tensor([1.0, 0.0], dtype=torch.float64).reshape(1, 1, 1, 2)
    steps = torch.full((1, 1, t_len - 1), h, dtype=torch.float64)
    exact = torch.cos(h * torch.arange(t_len, dtype=torch.float64))

    def error(**options):
        u0 = ODEINDLayer(1, 2, 1, 2, t_len, 1, double_ret=True, **options)(
            coeffs, rhs, iv_rhs, steps
        )[0]
        return float((u0[0, 0] - exact).abs().max())

    assert error() < 1.5e-2  # measured 1.3e-2
    assert error(central_diff=False) > 0.1  # measured 0.105: the central rows matter


def test_published_forward_runs_the_published_lorenz_examples_call():
    """The call in ScalableMNN's examples/lorenz: step-first, a shared step, T from n_steps."""
    bs, t_len = 4, 50
    coeffs = torch.zeros(1, 3, 1, 1, 1, 3, dtype=torch.float64)
    coeffs[..., 1] = 1.0
    var = torch.randn(bs, t_len, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    rhs = var.sin()
    step = torch.full((1, 1, 1), 1e-2, dtype=torch.float64)
    u = published.ode_forward(
        coeffs[None, :, :, 0],  # (1, 1, 3, 1, 1, 3)
        rhs.transpose(0, 1)[..., None],  # (50, bs, 3, 1)
        var[None, :, 0, :, None, None],  # (1, bs, 3, 1, 1)
        step,
        n_steps=t_len,
        is_step_dim_first=True,
        enable_central_smoothness=False,
        frozen_lhs_cache_version=1,
    )
    assert u.shape == (t_len, bs, 3, 1, 3)
    want = ode_forward(
        coeffs.expand(bs, 3, t_len, 1, 1, 3),
        rhs.transpose(1, 2)[..., None],
        var[:, 0, :, None, None, None],
        torch.full((bs, 3, t_len - 1), 1e-2, dtype=torch.float64),
    )
    assert relative_error(u.movedim(0, -3), want) < 1e-14
