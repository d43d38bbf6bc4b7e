"""ODELayer, precision options, and per-call factors."""

import torch

from smnn import ODELayer, ode_forward
from smnn.reference import ode_forward_dense

from .conftest import make_problem, relative_error


def test_layer_gives_the_same_solution_as_ode_forward():
    inputs = make_problem(t_len=6, seed=3)
    layer = ODELayer(central=True, weight_smooth=2.0)
    assert (
        relative_error(layer(*inputs), ode_forward(*inputs, central=True, weight_smooth=2.0)) == 0.0
    )
    assert "central=True" in repr(layer)


def test_weights_change_the_solution_as_the_dense_solve_does():
    inputs = make_problem(t_len=6, seed=4)
    weights = dict(weight_equation=0.5, weight_init=3.0, weight_smooth=2.0)
    fast = ode_forward(*inputs, **weights)
    assert relative_error(fast, ode_forward_dense(*inputs, **weights)) < 1e-10
    assert relative_error(fast, ode_forward(*inputs)) > 1e-3


def test_two_forwards_then_backward_give_each_call_its_own_gradients():
    first = [x.clone().requires_grad_() for x in make_problem(t_len=6, seed=5)]
    second = [x.clone().requires_grad_() for x in make_problem(t_len=6, seed=6)]
    u1 = ode_forward(*first)
    u2 = ode_forward(*second)
    (u1.sum() + (u2**2).sum()).backward()

    ref1 = [x.detach().clone().requires_grad_() for x in first]
    ref2 = [x.detach().clone().requires_grad_() for x in second]
    ode_forward_dense(*ref1).sum().backward()
    (ode_forward_dense(*ref2) ** 2).sum().backward()
    for got, want in zip(first + second, ref1 + ref2, strict=True):
        assert relative_error(got.grad, want.grad) < 1e-8


def test_float32_inputs_solved_in_float64_match_the_float64_solve():
    inputs64 = make_problem(t_len=8, seed=7)
    inputs32 = [x.float() for x in inputs64]
    u32 = ode_forward(*inputs32, solve_dtype=torch.float64)
    assert u32.dtype == torch.float32
    assert relative_error(u32.double(), ode_forward(*inputs64)) < 1e-6
    assert torch.equal(ode_forward(*inputs32), u32)  # float64 is the default solve dtype
    plain32 = ode_forward(*inputs32, solve_dtype=torch.float32)
    assert plain32.dtype == torch.float32
    assert relative_error(plain32.double(), ode_forward(*inputs64)) < 1e-3
