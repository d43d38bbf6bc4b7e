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
@pytest.mark.parametrize("b", [1, 3, 5])
@pytest.mark.parametrize("t_len", [1, 2, 3, 4, 5, 8, 9, 17, 33])
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
