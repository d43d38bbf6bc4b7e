"""The one EOF routine (pipeline.eof): the leading right singular vectors, from a Gram matrix."""

import numpy as np
import pytest

from pipeline.eof import RTOL, leading_eofs


def _data(times, points, rank=None, seed=0):
    """Anomalies with singular values that fall off like 1/k (a red spectrum, as SST has)."""
    rng = np.random.default_rng(seed)
    k = min(times, points) if rank is None else rank
    u = np.linalg.qr(rng.standard_normal((times, k)))[0]
    v = np.linalg.qr(rng.standard_normal((points, k)))[0]
    return (u / np.arange(1, k + 1)) @ v.T * 10.0


@pytest.mark.parametrize("shape", [(120, 700), (700, 120), (50, 50)])
def test_the_modes_are_the_leading_right_singular_vectors(shape):
    x = _data(*shape)
    got = leading_eofs(x, 12)
    want = np.linalg.svd(x, full_matrices=False)[2][:12]
    assert got.shape == (12, shape[1])
    signs = np.sign((got * want).sum(1))
    np.testing.assert_allclose(got, want * signs[:, None], atol=1e-9)
    np.testing.assert_allclose(got @ got.T, np.eye(12), atol=1e-12)
    # amplitudes x @ eofs.T hold the singular values, in decreasing order
    s = np.linalg.norm(x @ got.T, axis=0)
    np.testing.assert_allclose(s, np.linalg.svd(x, compute_uv=False)[:12], rtol=1e-10)


def test_signs_are_fixed_by_the_largest_entry_whatever_the_sign_of_the_data():
    x = _data(80, 300, seed=3)
    eofs = leading_eofs(x, 6)
    largest = eofs[np.arange(6), np.abs(eofs).argmax(1)]
    assert (largest > 0).all()
    np.testing.assert_array_equal(leading_eofs(-x, 6), eofs)


def test_a_rank_deficient_matrix_gives_only_the_modes_it_has():
    x = _data(60, 200, rank=3)
    eofs = leading_eofs(x, 10)
    assert eofs.shape == (3, 200)
    np.testing.assert_allclose(x - (x @ eofs.T) @ eofs, 0.0, atol=1e-12)
    assert leading_eofs(np.zeros((20, 30)), 4).shape == (0, 30)
    assert leading_eofs(np.zeros((0, 30)), 4).shape == (0, 30)
    # a mode under RTOL of the leading one is rounding, not signal
    tiny = _data(60, 200, rank=2)
    tiny[:, 0] += RTOL * 1e-3 * np.linalg.norm(tiny, 2) * np.sin(np.arange(60))
    assert len(leading_eofs(tiny, 5)) == 2


@pytest.mark.parametrize("n_modes", [0, -1, 2.5, True, "3"])
def test_the_number_of_modes_must_be_a_positive_integer(n_modes):
    with pytest.raises(ValueError, match="n_modes: expected a positive integer"):
        leading_eofs(np.ones((5, 4)), n_modes)


def test_the_data_must_be_a_matrix():
    with pytest.raises(ValueError, match=r"x: expected a \(time, point\) matrix, got shape \(5,\)"):
        leading_eofs(np.ones(5), 2)
