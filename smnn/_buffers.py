"""Reused memory for the compiled solver's big output arrays.

An array larger than glibc's mmap threshold (32 MB at most) is mapped afresh for every
allocation and unmapped when freed, and the kernel zeroes each new page on first touch: at
the Mechanistic Identifier's shape (12,960 systems of 208 steps) a forward+backward writes
~175 MB of new pages, ~10 % of its time (benchmarks/README.md). The outputs are handed to
torch, so the solver cannot free them itself; instead it keeps each big array after use and
hands it out again once nothing but this cache refers to it (its reference count says so),
as torch's CUDA caching allocator does with device memory. Smaller arrays come from
malloc's own reused heap and are not kept.

At most `MAX_CACHED_BYTES` are kept; `empty_cache()` returns the free ones to the system.
"""

from __future__ import annotations

import sys
import threading

import numpy as np

MIN_BYTES = 32 << 20  # below this, malloc reuses freed memory by itself
MAX_CACHED_BYTES = 512 << 20  # 2.9x what the SST shape's forward+backward takes

_lock = threading.Lock()
_cached: list[np.ndarray] = []  # flat byte arrays, least recently handed out first


def _free(i: int) -> bool:
    """Whether nothing but the cache refers to block i (its count inside this call: the
    list's reference and getrefcount's argument)."""
    return sys.getrefcount(_cached[i]) <= 2


def empty(shape: tuple[int, ...], dtype) -> np.ndarray:
    """An uninitialised C-contiguous array: a view of a free cached block of exactly its
    size when there is one, else new (and cached when big and there is room)."""
    dtype = np.dtype(dtype)
    size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if size < MIN_BYTES:
        return np.empty(shape, dtype=dtype)
    with _lock:
        reuse = next((i for i in range(len(_cached))
                      if _cached[i].size == size and _free(i)), None)
        if reuse is not None:
            _cached.append(_cached.pop(reuse))
        else:
            _drop_free(MAX_CACHED_BYTES - size)
            _cached.append(np.empty(size, dtype=np.uint8))
            if sum(block.size for block in _cached) > MAX_CACHED_BYTES:
                return _cached.pop().view(dtype).reshape(shape)  # no room: not kept
        return _cached[-1].view(dtype).reshape(shape)


def _drop_free(keep: int) -> int:
    """Drop free blocks, least recently handed out first, until at most `keep` bytes are
    cached or none is free; returns the bytes dropped. Holds no reference to a block
    across `_free` calls (it would count as a user)."""
    total, dropped, i = sum(block.size for block in _cached), 0, 0
    while total > keep and i < len(_cached):
        if _free(i):
            size = _cached.pop(i).size
            total, dropped = total - size, dropped + size
        else:
            i += 1
    return dropped


def empty_cache() -> int:
    """Return the cached blocks nothing refers to any more to the system; the bytes freed."""
    with _lock:
        return _drop_free(0)


def cached_bytes() -> int:
    """Bytes the cache holds, in use or free."""
    with _lock:
        return sum(block.size for block in _cached)
