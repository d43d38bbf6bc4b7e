"""The compiled solver's reused output memory: an array is handed out again only once
nothing refers to it, the cache stays within its bound, and solves stay correct."""

import numpy as np
import pytest
import torch

import smnn
from smnn import _buffers
from smnn.reference import ode_forward_dense

from .conftest import make_problem


@pytest.fixture
def small_blocks(monkeypatch):
    """Cache arrays from 1 KB on, at most 8 KB, starting empty (restored afterwards)."""
    monkeypatch.setattr(_buffers, "MIN_BYTES", 1 << 10)
    monkeypatch.setattr(_buffers, "MAX_CACHED_BYTES", 8 << 10)
    monkeypatch.setattr(_buffers, "_cached", [])


def address(a):
    return a.__array_interface__["data"][0]


def test_memory_is_reused_only_once_nothing_refers_to_it(small_blocks):
    a = _buffers.empty((16, 16), np.float64)  # 2 KB
    where = address(a)
    b = _buffers.empty((16, 16), np.float64)
    assert address(b) != where  # a still holds its block
    tensor = torch.from_numpy(a[2:])  # a view of a view: still a user
    del a
    assert address(_buffers.empty((16, 16), np.float64)) != where
    del tensor
    again = _buffers.empty((32, 8), np.float64)
    assert address(again) == where and again.shape == (32, 8)
    assert address(_buffers.empty((16, 16), np.float32)) != where  # another size: new


def test_small_arrays_are_not_kept_and_the_cache_stays_within_its_bound(small_blocks):
    _buffers.empty((10,), np.float64)
    assert _buffers.cached_bytes() == 0
    held = [_buffers.empty((2 << 10,), np.uint8) for _ in range(4)]  # 8 KB, all in use
    assert _buffers.cached_bytes() == 8 << 10
    extra = _buffers.empty((2 << 10,), np.uint8)  # no room and nothing free: not kept
    assert _buffers.cached_bytes() == 8 << 10 and extra.size == 2 << 10
    del held[0]
    bigger = _buffers.empty((4 << 10,), np.uint8)  # drops the free block; still no room
    assert bigger.size == 4 << 10 and _buffers.cached_bytes() == 6 << 10
    where = address(held[0])
    del held[0]
    assert address(_buffers.empty((2 << 10,), np.uint8)) == where  # freed, then reused
    assert _buffers.empty_cache() == 2 << 10  # the free block only: two are still held
    del held
    assert _buffers.empty_cache() == 4 << 10 and _buffers.cached_bytes() == 0


def test_results_held_across_later_solves_keep_their_values(small_blocks, monkeypatch):
    """A later solve must never write into memory an earlier result still uses."""
    monkeypatch.setattr(_buffers, "MAX_CACHED_BYTES", 1 << 20)  # every result cached
    first = [x.requires_grad_() for x in make_problem(batch=(40,), t_len=9, seed=1)]
    second = [x.requires_grad_() for x in make_problem(batch=(40,), t_len=9, seed=2)]
    u1 = smnn.ode_forward(*first, method="compiled")
    g1 = torch.autograd.grad(u1.sum(), first)
    keep_u, keep_g = u1.detach().clone(), [g.clone() for g in g1]
    for _ in range(3):  # reuses what these calls free, never u1 or g1
        u2 = smnn.ode_forward(*second, method="compiled")
        torch.autograd.grad(u2.sum(), second)
    assert _buffers.cached_bytes() > 0  # the solves did go through the cache
    assert torch.equal(u1, keep_u)
    for g, kept in zip(g1, keep_g, strict=True):
        assert torch.equal(g, kept)
    want = ode_forward_dense(*[x.detach() for x in second])
    torch.testing.assert_close(u2.detach(), want, rtol=1e-9, atol=1e-10)


def test_empty_cache_is_public():
    assert "empty_cache" in smnn.__all__ and smnn.empty_cache() >= 0
