"""Systems that share one matrix (coefficients and steps broadcast along trailing batch dims).

The compiled method factorises such a matrix once and solves every right-hand side with
it; the other methods get each system its own rows. Either way the result must be the one
of the same problem with the coefficients and steps expanded to every system.
"""

import pytest
import torch

from smnn import _compiled, ode_forward
from smnn._validate import canonicalise
from smnn.reference import ode_forward_dense

from .conftest import relative_error

INPUT_NAMES = ("coefficients", "rhs", "init_vars", "steps")


def shared_problem(matrices, systems, t_len, d_len=1, k_len=3, s_len=2, dtype=torch.float64):
    """`matrices` ODEs, each with `systems` right-hand sides and initial states."""
    g = torch.Generator().manual_seed(matrices * 100 + systems + t_len)
    c = 0.1 * torch.randn(matrices, 1, t_len, d_len, d_len, k_len, generator=g, dtype=dtype)
    for d in range(d_len):
        c[..., d, d, -1] += 1.0  # the highest derivative present in every equation
    rhs = torch.randn(matrices, systems, t_len, d_len, generator=g, dtype=dtype)
    init = torch.randn(matrices, systems, s_len, d_len, 2, generator=g, dtype=dtype)
    steps = 0.05 + 0.1 * torch.rand(matrices, 1, t_len - 1, generator=g, dtype=dtype)
    return c, rhs, init, steps


def solved(inputs, expand, method="compiled", central=False, **kwargs):
    """u and the four gradients of Σ u·g, the coefficients and steps expanded or not."""
    leaves = [x.clone().requires_grad_() for x in inputs]
    c, rhs, init, steps = leaves
    if expand:
        c = c.expand(*rhs.shape[:2], *c.shape[2:])
        steps = steps.expand(*rhs.shape[:2], steps.shape[-1])
    if method == "dense":  # the reference: one dense least-squares system per system
        u = ode_forward_dense(c, rhs, init, steps, central=central, **kwargs)
    else:
        u = ode_forward(c, rhs, init, steps, method=method, central=central, **kwargs)
    g = torch.randn(u.shape, generator=torch.Generator().manual_seed(1), dtype=u.dtype)
    return u.detach(), torch.autograd.grad((u * g).sum(), leaves)


def assert_same_as_expanded(inputs, tolerance=0.0, sum_tolerance=None, **kwargs):
    """u and the rhs and init_vars gradients within `tolerance` of the expanded solve's; the
    coefficient and step gradients, sums over each matrix's systems, within `sum_tolerance`
    (default: `tolerance`): systems of wide blocks (one per lane) add them one after the
    other, torch's sum over an expanded dim of more than 4 in another order."""
    sum_tolerance = tolerance if sum_tolerance is None else sum_tolerance
    u, grads = solved(inputs, expand=False, **kwargs)
    want_u, want_grads = solved(inputs, expand=True, **kwargs)
    assert relative_error(u, want_u) <= tolerance
    for name, got, want in zip(INPUT_NAMES, grads, want_grads, strict=True):
        bound = sum_tolerance if name in ("coefficients", "steps") else tolerance
        assert relative_error(got, want) <= bound, name


def test_canonical_problem_keeps_one_row_per_matrix():
    c, rhs, init, steps = shared_problem(matrices=4, systems=3, t_len=9)
    p = canonicalise(c, rhs, init, steps)
    assert p.shared == 3 and p.batch_shape == (4, 3)
    assert p.coefficients.shape[0] == 4 and p.steps.shape[0] == 4
    assert p.rhs.shape[0] == 12 and p.init_vars.shape[0] == 12
    full = p.unshared()
    assert full.shared == 1 and full.coefficients.shape[0] == 12
    assert torch.equal(full.coefficients[5], p.coefficients[5 // 3])


@pytest.mark.parametrize("c_batch, h_batch, shared", [
    ((4, 1), (4, 1), 3),  # both broadcast along the systems
    ((4, 3), (4, 1), 1),  # coefficients differ per system: nothing shared
    ((4, 1), (4, 3), 1),  # steps differ per system
    ((1, 1), (1,), 12),   # one ODE for the whole batch
    ((4, 1), (1,), 3),    # steps absent dims broadcast too
])
def test_only_dims_along_which_coefficients_and_steps_both_broadcast_are_shared(
    c_batch, h_batch, shared
):
    c = torch.ones(*c_batch, 5, 1, 1, 3, dtype=torch.float64)
    rhs = torch.ones(4, 3, 5, 1, dtype=torch.float64)
    init = torch.ones(4, 3, 1, 1, 2, dtype=torch.float64)
    steps = torch.full((*h_batch, 4), 0.1, dtype=torch.float64)
    assert canonicalise(c, rhs, init, steps).shared == shared


@pytest.mark.parametrize("central", [False, True], ids=["default", "central"])
@pytest.mark.parametrize("matrices, systems, t_len, d_len, sum_tolerance", [
    (40, 3, 30, 1, 0.0),     # chunks of 32 lanes, a partial one
    (12, 13, 49, 1, 0.0),    # few lanes: the factor kept
    (12, 13, 49, 3, 1e-14),  # wide blocks (b = 9), one per lane, 13 systems summed
    (1, 7, 25, 1, 0.0),      # a single matrix
    (2, 4, 1500, 1, 0.0),    # long sequences, one per lane
])
def test_sharing_gives_the_expanded_result_bit_for_bit(matrices, systems, t_len, d_len,
                                                       sum_tolerance, central):
    inputs = shared_problem(matrices, systems, t_len, d_len)
    assert_same_as_expanded(inputs, sum_tolerance=sum_tolerance, central=central)


def test_sharing_in_float32_and_solved_in_float64():
    inputs = shared_problem(12, 3, 20, d_len=1, dtype=torch.float32)
    assert_same_as_expanded(inputs)
    assert_same_as_expanded(inputs, solve_dtype=torch.float64)
    # wide blocks (b = 6, one per lane) sum the systems' gradients in float64, then round
    wide = shared_problem(12, 3, 20, d_len=2, dtype=torch.float32)
    assert_same_as_expanded(wide, sum_tolerance=1e-6)
    assert_same_as_expanded(wide, solve_dtype=torch.float32)


@pytest.mark.parametrize("method", ["sequential", "parallel", "dense"])
def test_methods_without_sharing_get_every_system_its_own_rows(method):
    inputs = shared_problem(5, 3, 12)
    u, grads = solved(inputs, expand=False, method=method)
    want_u, want_grads = solved(inputs, expand=False, method="compiled")
    assert relative_error(u, want_u) < 1e-10
    for name, got, want in zip(INPUT_NAMES, grads, want_grads, strict=True):
        assert relative_error(got, want) < 1e-8, name


def test_the_kernels_factorise_each_shared_matrix_once(monkeypatch):
    calls = []
    split = _compiled._split

    def spy(kernel, n, t_len, shared, *args):
        calls.append((n, shared))
        return split(kernel, n, t_len, shared, *args)

    monkeypatch.setattr(_compiled, "_split", spy)
    c, rhs, init, steps = (x.requires_grad_() for x in shared_problem(40, 3, 30))
    ode_forward(c, rhs, init, steps, method="compiled").sum().backward()
    assert calls and all(call == (40, 3) for call in calls)  # forward and backward


def test_a_singular_shared_matrix_names_the_first_system_that_uses_it():
    c, rhs, init, steps = shared_problem(40, 3, 10, s_len=0)
    c[25] = 0.0
    with pytest.raises(ValueError, match="batch index 75 of the flattened batch"):
        ode_forward(c, rhs, init, steps, method="compiled")
