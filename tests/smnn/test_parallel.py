"""The parallel-in-time method (block cyclic reduction) solves block-banded SPD systems.

Protocol-level tests build random symmetric positive definite block-banded matrices densely,
hand their blocks to `smnn._parallel.factor`, and compare with `torch.linalg.solve`.
"""

import pytest
import torch

from smnn import _parallel


def banded_spd(n_batch, t_len, b, n_bands, *, seed, scales=None, ridge=1e-3):
    """M = AᵀA + ridge·I with A block-banded (n_bands block sub-diagonals).

    scales: optional (b,) column scaling, e.g. h^k, to make M badly conditioned.
    Returns dense M (N, T·b, T·b), diag (N, T, b, b) and the lower bands.
    """
    g = torch.Generator().manual_seed(seed)
    size = t_len * b
    a = torch.zeros(n_batch, t_len + n_bands, b, t_len, b, dtype=torch.float64)
    idx = torch.arange(t_len)
    for k in range(n_bands + 1):  # block (t + k, t) of A
        a[:, idx + k, :, idx] = torch.randn(t_len, n_batch, b, b, generator=g, dtype=a.dtype)
    a = a.reshape(n_batch, (t_len + n_bands) * b, size)
    if scales is not None:
        a = a * scales.repeat(t_len)
    m = a.mT @ a + ridge * torch.eye(size, dtype=torch.float64)
    blocks = m.reshape(n_batch, t_len, b, t_len, b).transpose(2, 3)  # (N, T, T, b, b)
    diag = blocks[:, idx, idx]
    bands = tuple(blocks[:, idx[k:], idx[: t_len - k]] for k in range(1, n_bands + 1))
    return m, diag, bands


@pytest.fixture(params=["reduction_only", "dense_tail"])
def tail_mode(request, monkeypatch):
    """Run a test with cyclic reduction down to one step, and with the default dense tail."""
    if request.param == "reduction_only":
        monkeypatch.setattr(_parallel, "DENSE_TAIL_WORK", 0)
    return request.param


def dense_solve(m, rhs):
    n_batch, t_len, b = rhs.shape
    return torch.linalg.solve(m, rhs.reshape(n_batch, -1, 1)).reshape(n_batch, t_len, b)


def relative_error(got, want):
    return float((got - want).norm() / want.norm())


@pytest.mark.parametrize("n_bands", [1, 2], ids=["tridiagonal", "pentadiagonal"])
@pytest.mark.parametrize("b", [1, 4])
@pytest.mark.parametrize("t_len", [1, 2, 3, 5, 8, 17, 33])
def test_cyclic_reduction_matches_dense_solve(t_len, b, n_bands, tail_mode):
    m, diag, bands = banded_spd(3, t_len, b, n_bands, seed=10 * t_len + b)
    rhs = torch.randn(3, t_len, b, generator=torch.Generator().manual_seed(1), dtype=m.dtype)
    x = _parallel.factor(diag, bands).solve(rhs)
    assert x.shape == rhs.shape
    assert relative_error(x, dense_solve(m, rhs)) < 1e-11


@pytest.mark.parametrize("n_bands", [1, 2], ids=["tridiagonal", "pentadiagonal"])
@pytest.mark.parametrize("h", [1e-3, 1e-2, 0.1, 1.0])
def test_badly_scaled_systems_are_solved_with_a_tiny_backward_error(h, n_bands, tail_mode):
    # Columns scaled like the S-MNN unknowns u[t, k] (rows carry h^k): cond(M) ~ h^-8 at K=5.
    k_len = 5
    scales = torch.tensor([h**k for k in range(k_len)], dtype=torch.float64)
    m, diag, bands = banded_spd(2, 40, k_len, n_bands, seed=3, scales=scales, ridge=0.0)
    rhs = torch.randn(2, 40, k_len, generator=torch.Generator().manual_seed(2), dtype=m.dtype)
    x = _parallel.factor(diag, bands).solve(rhs)
    residual = m @ x.reshape(2, -1, 1) - rhs.reshape(2, -1, 1)
    scale = torch.linalg.matrix_norm(m).unsqueeze(-1) * x.reshape(2, -1).norm(dim=-1)
    backward_error = residual.reshape(2, -1).norm(dim=-1) / scale
    assert float(backward_error.max()) < 1e-14


def test_one_factorisation_serves_several_right_hand_sides(tail_mode):
    m, diag, bands = banded_spd(2, 11, 3, 1, seed=5)
    fac = _parallel.factor(diag, bands)
    g = torch.Generator().manual_seed(6)
    first, second = (torch.randn(2, 11, 3, generator=g, dtype=m.dtype) for _ in range(2))
    assert relative_error(fac.solve(first), dense_solve(m, first)) < 1e-11
    assert relative_error(fac.solve(second), dense_solve(m, second)) < 1e-11


def test_factor_leaves_its_inputs_unchanged():
    _, diag, bands = banded_spd(2, 9, 3, 2, seed=7)
    before = [diag.clone(), *(band.clone() for band in bands)]
    _parallel.factor(diag, bands)
    assert all(torch.equal(a, b) for a, b in zip(before, [diag, *bands], strict=True))


@pytest.mark.parametrize("n_bands", [1, 2], ids=["tridiagonal", "pentadiagonal"])
@pytest.mark.parametrize("bad_step", [0, 6, 12])
def test_indefinite_system_raises_naming_the_batch_index(bad_step, n_bands, tail_mode):
    _, diag, bands = banded_spd(3, 13, 3, n_bands, seed=8)
    diag = diag.clone()
    diag[1, bad_step] -= 1e3 * torch.eye(3, dtype=diag.dtype)
    with pytest.raises(ValueError, match="batch index 1"):
        _parallel.factor(diag, bands)


def test_non_finite_blocks_raise_instead_of_returning_nans(tail_mode):
    _, diag, bands = banded_spd(2, 6, 2, 1, seed=9)
    diag = diag.clone()
    diag[0, 3, 1, 1] = float("nan")
    with pytest.raises(ValueError, match="batch index 0"):
        _parallel.factor(diag, bands)


def test_failure_in_a_decoupled_block_still_reaches_the_final_check(tail_mode):
    # Zero couplings around step 4: only NaN arithmetic (0·inf) carries the failure upwards.
    _, diag, bands = banded_spd(3, 17, 3, 1, seed=12)
    diag, band = diag.clone(), bands[0].clone()
    diag[2, 4] = -torch.eye(3, dtype=diag.dtype)
    band[2, 3:5] = 0.0
    with pytest.raises(ValueError, match="batch index 2"):
        _parallel.factor(diag, (band,))


@pytest.mark.parametrize("t_len", [5, 7, 40])
@pytest.mark.parametrize("central", [False, True])
def test_an_unpinned_system_through_the_public_api_names_its_batch_index(t_len, central):
    # Element 2 has zero equations and no initial values: M is singular, and the dense tail's
    # Cholesky may round its last pivot to a tiny positive number instead of failing.
    coefficients, rhs, _, steps = make_problem(batch=(4,), t_len=t_len, s_len=0)
    coefficients[2] = 0.0
    init_vars = torch.zeros(4, 0, 1, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="expected symmetric positive definite.*batch index 2"):
        ode_forward(coefficients, rhs, init_vars, steps, central=central, method="parallel")


def test_malformed_bands_and_rhs_are_rejected_with_their_shapes():
    _, diag, bands = banded_spd(2, 6, 2, 1, seed=9)
    with pytest.raises(ValueError, match=r"bands\[0\]: expected shape \(2, 5, 2, 2\)"):
        _parallel.factor(diag, (bands[0][:, :4],))
    fac = _parallel.factor(diag, bands)
    with pytest.raises(ValueError, match="rhs: expected shape"):
        fac.solve(torch.zeros(2, 5, 2, dtype=diag.dtype))


def test_float32_solution_is_close_to_float64_on_a_well_conditioned_system():
    m, diag, bands = banded_spd(2, 50, 3, 1, seed=11, ridge=1.0)
    rhs = torch.randn(2, 50, 3, generator=torch.Generator().manual_seed(3), dtype=m.dtype)
    x64 = _parallel.factor(diag, bands).solve(rhs)
    x32 = _parallel.factor(diag.float(), tuple(b.float() for b in bands)).solve(rhs.float())
    assert x32.dtype == torch.float32
    assert relative_error(x32.double(), x64) < 1e-4


# ---------------------------------------------------------------------------------------
# Through the public API: ode_forward(..., method="parallel") against the dense reference.

from smnn import ode_forward  # noqa: E402
from smnn._assemble import normal_equations  # noqa: E402
from smnn._solve import choose_method  # noqa: E402
from smnn._validate import canonicalise  # noqa: E402
from smnn.reference import ode_forward_dense  # noqa: E402

from .conftest import make_problem  # noqa: E402
from .test_smnn_dense_agreement import BROADCASTS, GRID  # noqa: E402

INPUT_NAMES = ("coefficients", "rhs", "init_vars", "steps")


@pytest.fixture
def reduction_only(monkeypatch):
    """Cyclic reduction all the way down: small test problems would otherwise go dense."""
    monkeypatch.setattr(_parallel, "DENSE_TAIL_WORK", 0)


def assert_parallel_matches_dense(inputs, central, value_tol=1e-10, grad_tol=1e-8, seed=1):
    fast_in = [x.clone().requires_grad_() for x in inputs]
    dense_in = [x.clone().requires_grad_() for x in inputs]
    fast = ode_forward(*fast_in, central=central, method="parallel")
    dense = ode_forward_dense(*dense_in, central=central)
    assert fast.shape == dense.shape
    assert relative_error(fast.detach(), dense.detach()) < value_tol
    g = torch.Generator().manual_seed(seed)
    cotangent = torch.randn(fast.shape, generator=g, dtype=fast.dtype)
    (fast * cotangent).sum().backward()
    (dense * cotangent).sum().backward()
    for name, a, b in zip(INPUT_NAMES, fast_in, dense_in, strict=True):
        if a.numel():  # S = 0 leaves nothing to differentiate
            assert relative_error(a.grad, b.grad) < grad_tol, name


@pytest.mark.parametrize("central", [False, True], ids=["default", "central"])
@pytest.mark.parametrize(("d", "k", "e", "s", "j", "t"), GRID)
def test_parallel_method_matches_dense_solve_over_shapes(d, k, e, s, j, t, central, reduction_only):
    step_range = (0.3, 0.6) if k >= 5 else (0.05, 0.25)  # as the sequential method's grid
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
    assert_parallel_matches_dense(inputs, central)


@pytest.mark.parametrize("central", [False, True], ids=["default", "central"])
@pytest.mark.parametrize("pattern", sorted(BROADCASTS))
def test_parallel_method_matches_dense_solve_under_broadcasting(pattern, central, reduction_only):
    inputs = make_problem(t_len=6, k_len=3, s_len=2, j_len=2, **BROADCASTS[pattern])
    assert_parallel_matches_dense(inputs, central)


@pytest.mark.parametrize("central", [False, True], ids=["default", "central"])
def test_parallel_method_with_its_dense_tail_matches_dense_solve(central):
    inputs = make_problem(t_len=23, k_len=3, s_len=2, j_len=2, seed=4)
    assert_parallel_matches_dense(inputs, central)


def test_gradcheck_of_ode_forward_with_the_parallel_method(reduction_only):
    inputs = make_problem(batch=(1,), t_len=5, k_len=3, s_len=1, j_len=2, seed=13)
    leaves = tuple(x.clone().requires_grad_() for x in inputs)

    def solve(*args):
        return ode_forward(*args, method="parallel", central=True)

    assert torch.autograd.gradcheck(solve, leaves, eps=1e-6, atol=1e-7, rtol=1e-5)


def normal_residual(inputs, central, u):
    """‖M x − β‖ / (‖M‖_F ‖x‖) of the assembled normal equations: the backward error."""
    diag, bands, beta = normal_equations(canonicalise(*inputs), central)
    x = u.reshape(beta.shape)
    mx = (diag @ x.unsqueeze(-1)).squeeze(-1)
    norm2 = diag.square().sum()
    for k, band in enumerate(bands, start=1):
        mx[:, k:] += (band @ x[:, :-k].unsqueeze(-1)).squeeze(-1)
        mx[:, :-k] += (band.mT @ x[:, k:].unsqueeze(-1)).squeeze(-1)
        norm2 = norm2 + 2 * band.square().sum()
    return float((mx - beta).norm() / (norm2.sqrt() * x.norm()))


STABILITY = [(k, h) for k in (2, 3, 4, 5) for h in (1e-3, 1e-2, 0.1, 1.0) if (k, h) != (5, 1e-3)]


@pytest.mark.parametrize("central", [False, True], ids=["default", "central"])
@pytest.mark.parametrize(("k", "h"), STABILITY)
def test_parallel_method_is_backward_stable_over_step_sizes_and_orders(k, h, central):
    inputs = make_problem(t_len=300, k_len=k, s_len=2, j_len=2, seed=k, step_range=(h, 1.5 * h))
    u = ode_forward(*inputs, central=central, method="parallel")
    assert normal_residual(inputs, central, u) < 1e-15


@pytest.mark.parametrize("central", [False, True], ids=["default", "central"])
def test_numerically_singular_system_raises_like_the_dense_cholesky(central):
    # K = 5 with h = 1e-3: M's entries span h^8 = 1e-24, below float64's resolution of the
    # zeroth-order ones; the dense Cholesky and the sequential method fail here too.
    inputs = make_problem(t_len=30, k_len=5, s_len=2, j_len=2, seed=5, step_range=(1e-3, 1.5e-3))
    with pytest.raises(ValueError, match="batch index 0"):
        ode_forward(*inputs, central=central, method="parallel")


@pytest.mark.parametrize("central", [False, True], ids=["default", "central"])
def test_parallel_method_agrees_with_the_sequential_method(central, reduction_only):
    inputs = make_problem(t_len=70, k_len=4, s_len=2, j_len=2, seed=21)
    parallel = ode_forward(*inputs, central=central, method="parallel")
    sequential = ode_forward(*inputs, central=central, method="sequential")
    assert relative_error(parallel, sequential) < 1e-10


@pytest.mark.slow
@pytest.mark.parametrize("central", [False, True], ids=["default", "central"])
def test_hundred_thousand_steps_are_solved_to_a_tiny_backward_error(central):
    # The dense solve cannot hold this; the assembled normal equations are the judge.
    inputs = make_problem(batch=(1,), t_len=100_000, k_len=3, s_len=10, j_len=2, seed=8)
    u = ode_forward(*inputs, central=central, method="parallel")
    assert torch.isfinite(u).all()
    assert normal_residual(inputs, central, u) < 1e-15


@pytest.mark.parametrize("central", [False, True], ids=["default", "central"])
def test_float32_parallel_solve_is_close_to_float64_when_well_conditioned(central):
    inputs = make_problem(t_len=200, k_len=3, s_len=2, j_len=2, seed=9, step_range=(0.1, 1.0))
    u64 = ode_forward(*inputs, central=central, method="parallel")
    u32 = ode_forward(
        *(x.float() for x in inputs), central=central, method="parallel", solve_dtype=torch.float32
    )
    assert u32.dtype == torch.float32
    assert relative_error(u32.double(), u64) < 1e-3


@pytest.mark.parametrize("central", [False, True], ids=["default", "central"])
def test_float32_inputs_solved_in_float64_stay_close_on_ill_conditioned_steps(central):
    # Small steps at K = 4 defeat float32 arithmetic (cond(M) ~ h^-6); float32 inputs are
    # assembled and factorised in float64 by default (the automatic fallback).
    inputs = make_problem(t_len=200, k_len=4, s_len=2, j_len=2, seed=10, step_range=(0.01, 0.02))
    rounded = [x.float().double() for x in inputs]  # the float32 inputs, exactly
    u64 = ode_forward(*rounded, central=central, method="parallel")
    u32 = ode_forward(
        *(x.float() for x in inputs),
        central=central,
        method="parallel",
    )
    assert u32.dtype == torch.float32
    assert relative_error(u32.double(), u64) < 1e-6


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("central", [False, True], ids=["default", "central"])
def test_parallel_method_on_cuda_matches_cpu(central):
    inputs = make_problem(batch=(3,), t_len=1000, k_len=3, s_len=2, j_len=2, seed=14)
    cpu_in = [x.clone().requires_grad_() for x in inputs]
    gpu_in = [x.cuda().requires_grad_() for x in inputs]
    cpu = ode_forward(*cpu_in, central=central, method="parallel")
    gpu = ode_forward(*gpu_in, central=central, method="parallel")
    assert gpu.device.type == "cuda"
    assert relative_error(gpu.cpu().detach(), cpu.detach()) < 1e-10
    cpu.square().sum().backward()
    gpu.square().sum().backward()
    for name, a, b in zip(INPUT_NAMES, cpu_in, gpu_in, strict=True):
        assert relative_error(b.grad.cpu(), a.grad) < 1e-8, name


@pytest.mark.parametrize(
    ("n_batch", "t_len", "device", "expected"),
    [
        (1, 208, "cpu", "compiled"),
        (12_960, 208, "cpu", "compiled"),
        (1, 100_000, "cpu", "compiled"),
        (8, 30_000, "cpu", "compiled"),
        (64, 30_000, "cpu", "compiled"),
        (12_960, 208, "cuda", "parallel"),
        (1, 100_000, "cuda", "parallel"),
    ],
)
def test_auto_picks_the_method_measured_faster_for_the_shape_and_device(
    n_batch, t_len, device, expected
):
    assert choose_method("auto", n_batch, t_len, 3, torch.device(device)) == expected


@pytest.mark.parametrize(("n_batch", "expected"), [(1, "parallel"), (12_960, "sequential")])
def test_auto_without_numba_picks_between_the_torch_methods(n_batch, expected, monkeypatch):
    from smnn import _compiled

    monkeypatch.setattr(_compiled, "available", lambda: False)
    assert choose_method("auto", n_batch, 208, 3, torch.device("cpu")) == expected


def test_explicit_method_is_kept_and_unknown_names_are_rejected():
    assert choose_method("sequential", 1, 10, 3, torch.device("cpu")) == "sequential"
    with pytest.raises(ValueError, match="method: expected 'auto' or one of"):
        choose_method("cyclic", 1, 10, 3, torch.device("cpu"))
