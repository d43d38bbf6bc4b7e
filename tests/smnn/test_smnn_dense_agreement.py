"""The fast solver agrees with the dense reference: values 1e-10, gradients 1e-8 (float64)."""

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from smnn import ode_forward
from smnn.reference import dense_system, ode_forward_dense

from .conftest import make_problem, relative_error

# The step-by-step methods; the parallel one has its own tests (tests/smnn/test_parallel.py).
METHODS = ["sequential", "compiled"]


def assert_fast_matches_dense(
    inputs, central, value_tol=1e-10, grad_tol=1e-8, seed=1, method="sequential"
):
    """A fast method against the dense solve: values and the gradients of all four inputs."""
    fast_in = [x.clone().requires_grad_() for x in inputs]
    dense_in = [x.clone().requires_grad_() for x in inputs]
    fast = ode_forward(*fast_in, central=central, method=method)
    dense = ode_forward_dense(*dense_in, central=central)
    assert fast.shape == dense.shape
    assert relative_error(fast.detach(), dense.detach()) < value_tol
    cotangent = torch.randn(
        fast.shape, generator=torch.Generator().manual_seed(seed), dtype=fast.dtype
    )
    (fast * cotangent).sum().backward()
    (dense * cotangent).sum().backward()
    for name, a, b in zip(
        ("coefficients", "rhs", "init_vars", "steps"), fast_in, dense_in, strict=True
    ):
        if a.numel() == 0:  # S = 0: nothing to differentiate
            continue
        assert a.grad.shape == a.shape, name
        assert relative_error(a.grad, b.grad) < grad_tol, name


# (D, K, E, S, J, T): orders, systems, initial-value patterns and lengths, small and odd.
GRID = [
    (1, 2, 1, 1, 1, 5),
    (1, 3, 1, 1, 2, 8),
    (1, 3, 1, 3, 2, 9),
    (1, 4, 2, 2, 3, 6),
    (2, 3, 2, 1, 2, 7),
    (2, 4, 3, 0, 1, 10),
    (3, 2, 3, 2, 2, 4),
    (1, 5, 1, 3, 2, 12),
    (1, 3, 1, 1, 3, 2),
]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("central", [False, True], ids=["default", "central"])
@pytest.mark.parametrize(("d", "k", "e", "s", "j", "t"), GRID)
def test_fast_solver_matches_dense_solve_over_shapes(d, k, e, s, j, t, central, method):
    if central and t < 3:
        pytest.skip("central rows need T >= 3 to matter")
    # High orders make M ill-conditioned (entries scale as h^(2K-2)): use larger steps there.
    step_range = (0.3, 0.6) if k >= 5 else (0.05, 0.25)
    inputs = make_problem(
        t_len=t,
        d_len=d,
        k_len=k,
        e_len=e,
        s_len=s,
        j_len=j,
        seed=d + 7 * k + t,
        step_range=step_range,
    )
    assert_fast_matches_dense(inputs, central, method=method)


BROADCASTS = {
    "coefficients_constant_in_time": dict(coeff_steps=1),
    "rhs_constant_in_time": dict(rhs_steps=1),
    "one_step_size": dict(step_steps=1),
    "all_constant_in_time": dict(coeff_steps=1, rhs_steps=1, step_steps=1),
    "batch_dims_broadcast": dict(batches=((3, 1), (1, 2), (2,), (1, 1))),
    "unbatched_init_and_steps": dict(batches=((2, 2), (2, 2), (), ())),
}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("central", [False, True], ids=["default", "central"])
@pytest.mark.parametrize("pattern", sorted(BROADCASTS))
def test_fast_solver_matches_dense_solve_under_broadcasting(pattern, central, method):
    inputs = make_problem(t_len=6, k_len=3, s_len=2, j_len=2, **BROADCASTS[pattern])
    assert_fast_matches_dense(inputs, central, method=method)


def test_broadcast_shapes_give_the_broadcast_batch():
    inputs = make_problem(t_len=5, batches=((3, 1), (1, 2), (2,), (1, 1)))
    assert ode_forward(*inputs).shape == (3, 2, 5, 1, 3)


@settings(max_examples=12, deadline=None)
@given(
    d=st.integers(1, 2),
    k=st.integers(2, 4),
    extra_e=st.integers(0, 1),
    s=st.integers(0, 3),
    extra_t=st.integers(1, 5),
    n=st.integers(1, 3),
    central=st.booleans(),
    method=st.sampled_from(METHODS),
    data=st.data(),
)
def test_fast_solver_matches_dense_solve_on_drawn_shapes(
    d, k, extra_e, s, extra_t, n, central, method, data
):
    # Well-posed draws: at least D equations per step and more steps than orders.
    e, t = d + extra_e, k + extra_t
    j = data.draw(st.integers(1, k), label="j")
    seed = data.draw(st.integers(0, 2**16), label="seed")
    inputs = make_problem(
        batch=(n,), t_len=t, d_len=d, k_len=k, e_len=e, s_len=s, j_len=j, seed=seed
    )
    # Any solver's error grows as cond(M)·eps: a 1e-10 agreement is only defined for draws
    # whose normal matrix is reasonably conditioned (a rare draw reaches cond ~ 1e9).
    a, _, w = dense_system(*inputs, central=central)
    wa = a * w[:, None]
    assume(float(torch.linalg.cond(wa.mT @ wa).max()) < 1e6)
    assert_fast_matches_dense(inputs, central, method=method)
