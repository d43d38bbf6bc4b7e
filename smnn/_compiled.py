"""The "compiled" method: the sequential block Cholesky as compiled CPU kernels (numba).

The torch methods spend most of their time moving (N, T, b, b) arrays through memory: each
of the few hundred tiny per-step operations streams all N systems. Here chunks of 32
systems are assembled, factorised and solved step by step with their working set in cache,
one system per SIMD lane (`_kernels.py`); a long sequence, whose chunk would outgrow the
cache, runs alone in one lane on its own rows. The batch is split over threads (the kernels
release the GIL; as many threads as `get_num_threads()`, by default torch's count). The
backward pass computes λ = M⁻¹g and the input gradients in one kernel, from factors the
forward pass kept when they are small, else from a fresh factorisation. CPU only. numba is
imported on first use; the first call in a fresh install compiles the kernels (~20 s per
dtype, then cached on disk).
"""

from __future__ import annotations

import functools
import importlib.util
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from smnn._assemble import taylor_rows
from smnn._validate import (
    Problem,
    SolveError,
    not_finite_solution,
    not_positive_definite,
    not_positive_step,
    pivot_tolerance,
)

# A thread is worth it for at least this many systems, or this many system-steps (~2 ms
# of work: a few long sequences split over threads too).
MIN_SYSTEMS_PER_THREAD = 16
MIN_STEPS_PER_THREAD = 10_000
# The forward pass keeps the factors for the backward pass when they take at most this many
# bytes (B=1 up to T ~ 550,000 at b=3), and the backward pass recomputes them otherwise: at
# the SST shape they would take 325 MB, and recomputing costs less than that much memory
# traffic (and page faults) would.
KEEP_FACTOR_BYTES = 64 << 20
# ...and only when a chunk runs at most this many lanes: copying a 32-lane chunk's factor
# out and back in costs more than factorising again (B=512, T=54: fwd+bwd 2.35 ms
# recomputed vs 3.15 ms kept; B=64, T=1,000: 7.3 vs 9.1 ms), while few long systems gain
# (B=1, T=20,000: 4.4 ms kept vs 7.5 ms; B=8, T=5,000: 6.7 vs 8.7 ms). 1 thread, float64.
KEEP_FACTOR_MAX_LANES = 8


_threads: int | None = None  # `set_num_threads`; None: follow torch


def set_num_threads(threads: int | None) -> int | None:
    """Threads of the compiled kernels: an int >= 1, or None (the default) to follow
    `torch.get_num_threads()`. Apart from torch's own count so that a model whose small
    matmuls gain nothing from a second thread can run torch on one while the solve uses
    every core (torch's spinning OpenMP worker would otherwise hold the second core).
    Returns the previous setting, to restore it."""
    global _threads
    if threads is not None and (
        isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
    ):
        raise ValueError(f"threads: expected an int >= 1 or None, received {threads!r}")
    previous, _threads = _threads, threads
    return previous


def get_num_threads() -> int:
    """Threads the compiled kernels split a batch over (`set_num_threads`)."""
    return torch.get_num_threads() if _threads is None else _threads


def _thread_count(n: int, t_len: int, shared: int = 1) -> int:
    """Threads for n matrices of t_len steps, `shared` systems each: `get_num_threads()`,
    at most one per matrix and per MIN_SYSTEMS_PER_THREAD systems or MIN_STEPS_PER_THREAD
    system-steps."""
    systems = n * shared
    worth = max(systems // MIN_SYSTEMS_PER_THREAD, systems * t_len // MIN_STEPS_PER_THREAD, 1)
    return max(1, min(get_num_threads(), n, worth))


@functools.lru_cache(maxsize=64)
def _constants(k_len: int, central: bool, dtype: torch.dtype, w_sm2: float):
    """w_sm²·(PaᵀPa, PbᵀPb, PbᵀPa) (3, K, K), and OG + GO (2K, 2K) for the Gram matrix
    G = PᵀP of [Pa Pb] and the orders O = diag(0..K-1, 0..K-1) (see `_kernels._gradients`).
    Cached (read-only arrays): building them costs more than a small solve."""
    pa, pb = taylor_rows(k_len, central, dtype, torch.device("cpu"))
    consts = torch.stack([pa.T @ pa, pb.T @ pb, pb.T @ pa]) * w_sm2
    pab = torch.cat([pa, pb], dim=1)
    gram = pab.T @ pab
    orders = torch.arange(k_len, dtype=dtype).repeat(2)
    order_gram = orders[:, None] * gram + gram * orders[None, :]
    arrays = consts.numpy(), order_gram.numpy()
    for array in arrays:
        array.flags.writeable = False
    return arrays


def _run(kernel, *args, lo: int, hi: int) -> None:
    """kernel(*args, lo, hi); an arithmetic error raised inside numba code (none is expected:
    the kernels use numpy's error model) becomes the solver's SolveError, not a traceback
    from the kernel."""
    try:
        kernel(*args, lo, hi)
    except ArithmeticError as error:
        raise SolveError(
            "the normal matrix: expected symmetric positive definite (enough equation and "
            "initial-value rows to pin the solution, finite well-scaled inputs), received a "
            f"system the compiled kernel could not factorise ({type(error).__name__}: "
            f"{error}) at a batch index in {lo}..{hi - 1} of the flattened batch"
        ) from error


@functools.cache
def _pool(workers: int) -> ThreadPoolExecutor:
    """One pool per thread count, kept: starting threads costs ~0.1 ms a call."""
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="smnn")


def _split(kernel, n: int, t_len: int, shared: int, *args) -> None:
    """Run kernel(*args, lo, hi) over matrices [0, n) in contiguous chunks, one per thread;
    the calling thread runs the first chunk."""
    threads = _thread_count(n, t_len, shared)
    if threads == 1:
        _run(kernel, *args, lo=0, hi=n)
        return
    bounds = [n * k // threads for k in range(threads + 1)]
    pool = _pool(threads - 1)
    jobs = [
        pool.submit(_run, kernel, *args, lo=lo, hi=hi)
        for lo, hi in zip(bounds[1:-1], bounds[2:], strict=True)
    ]
    _run(kernel, *args, lo=bounds[0], hi=bounds[1])
    for job in jobs:
        job.result()


def _tag(shape, central: bool, itemsize: int, n: int, shared: int = 1) -> tuple:
    """The kernels' `tag` argument (fixed, lanes, dims), see `_kernels.forward`, for n
    matrices of `shared` systems each."""
    from smnn import _kernels

    threads = _thread_count(n, shape[0], shared)
    per_thread = -(-n // threads)
    lanes = _kernels.lane_count(shape, 2 if central else 1, itemsize, per_thread)
    fixed = (0,) * lanes
    b, nb = shape[2] * shape[3], 2 if central else 1
    dims = ((0,) * b, (0,) * nb, (0,) * shape[3], (0,) * shape[1])
    return fixed, fixed if lanes == 1 else np.zeros(lanes, np.int8), dims


def _flat(*tensors: torch.Tensor):
    """numpy views (N, features) of detached, C-contiguous tensors."""
    return tuple(t.detach().contiguous().reshape(t.shape[0], -1).numpy() for t in tensors)


def _empty(*shapes, dtype) -> list[np.ndarray]:
    """New arrays from numpy: it asks for huge pages for big ones, so first-touch page
    faults cost a fraction of torch's (~4x less on this project's CI machines). Keeping
    big results' memory for reuse instead measured slower in steady state (2026-12-08:
    x0.66 at the SST shape in separate processes, benchmarks/README.md)."""
    return [np.empty(shape, dtype=dtype) for shape in shapes]


class _CompiledSolve(torch.autograd.Function):
    """u = argmin ‖W(A(c, h) u − y(r, v))‖² for canonical CPU inputs, solved in `work`
    (`solve`'s solve_dtype); u: (N, T, D, K) in the inputs' dtype. tag: `_tag`'s."""

    @staticmethod
    def forward(ctx, coefficients, rhs, init_vars, steps, like: Problem, central: bool, tag,
                work: torch.dtype):
        from smnn import _kernels

        n, t_len, e_len, d_len, k_len = coefficients.shape  # n matrices
        n_all = rhs.shape[0]  # right-hand sides, n_all / n per matrix (`Problem.shared`)
        shape = (t_len, e_len, d_len, k_len, like.s_len, like.j_len)
        consts, order_gram = _constants(k_len, central, work, like.weight_smooth**2)
        rtol = pivot_tolerance(work, d_len * k_len, 2 if central else 1)
        weights = (like.weight_equation**2, like.weight_init**2, like.weight_smooth**2, rtol)
        inputs = _flat(coefficients, rhs, init_vars, steps)
        b, nb = d_len * k_len, 2 if central else 1
        packed, rows = _kernels.factor_sizes(shape, nb)  # per system
        factor_bytes = n * (packed + rows) * consts.itemsize
        keep = (
            factor_bytes <= KEEP_FACTOR_BYTES
            and len(tag[0]) <= KEEP_FACTOR_MAX_LANES
            and any(ctx.needs_input_grad[:4])  # no backward pass, nothing to keep for
        )
        kept_rows = n if keep else 0
        # x in the work dtype, for the backward pass; u, the result, in the inputs' (the
        # kernel writes both as it goes: no cast afterwards), or x itself.
        mixed = inputs[0].dtype != consts.dtype
        (x,) = _empty((n_all, t_len * b), dtype=consts.dtype)
        (u,) = _empty((n_all if mixed else 0, t_len * b), dtype=inputs[0].dtype)
        kept = [  # zeros: the padding rows must be
            np.zeros(size, dtype=consts.dtype)
            for size in ((kept_rows, packed), (kept_rows, rows))
        ]
        status = np.zeros(n, dtype=np.uint8)
        _split(
            _kernels.forward, n, t_len, n_all // n, *inputs, consts, weights, shape, central, x, u,
            status, tuple(kept), tag,
        )
        if status.any():  # the first system of the batch with that matrix
            first = int(np.flatnonzero(status)[0])
            error = {_kernels.NOT_DEFINITE: not_positive_definite,
                     _kernels.NOT_FINITE: not_finite_solution,
                     _kernels.NOT_POSITIVE_STEP: not_positive_step}[int(status[first])]
            raise error(first * (n_all // n))
        solution = torch.from_numpy(x).view(n_all, t_len, d_len, k_len)
        ctx.args = (consts, order_gram, weights, shape, central, tuple(kept), tag)
        ctx.save_for_backward(coefficients, rhs, init_vars, steps, solution)
        return torch.from_numpy(u).view(n_all, t_len, d_len, k_len) if mixed else solution

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_u):
        from smnn import _kernels

        *inputs, x = ctx.saved_tensors
        consts, order_gram, weights, shape, central, kept, tag = ctx.args
        arrays = _flat(*inputs, x, grad_u.to(inputs[0].dtype))
        grads = _empty(*(a.shape for a in arrays[:4]), dtype=arrays[0].dtype)
        args = (consts, order_gram, weights, shape, central, kept, tuple(grads), tag)
        n = inputs[0].shape[0]
        _split(_kernels.backward, n, shape[0], x.shape[0] // n, *arrays, *args)
        needs = ctx.needs_input_grad[:4]
        out = [
            torch.from_numpy(grad).view(t.shape) if need else None
            for grad, t, need in zip(grads, inputs, needs, strict=True)
        ]
        return (*out, None, None, None, None)


@functools.cache
def available() -> bool:
    """Whether numba can be imported (without importing it); asked once per process, as the
    lookup costs ~60 µs, a tenth of a small solve."""
    try:
        return importlib.util.find_spec("numba") is not None
    except ValueError:  # sys.modules["numba"] is None: deliberately blocked
        return False


def solve(p: Problem, central: bool, solve_dtype: torch.dtype | None = None) -> torch.Tensor:
    """Solve a canonical CPU problem in `solve_dtype` (None: the inputs' dtype): u
    (N, T, D, K) in the inputs' dtype, differentiable in p's four tensors."""
    if not available():
        raise ValueError(
            "method: 'compiled' needs the numba package, which is not installed "
            "(pip install numba); received method='compiled', use 'auto', 'parallel' or "
            "'sequential' without it"
        )
    device = p.coefficients.device
    if device.type != "cpu":
        raise ValueError(
            f"method: 'compiled' runs on CPU tensors, received tensors on {device}; "
            "use 'parallel' or 'auto' there"
        )
    work = solve_dtype or p.coefficients.dtype
    shape = (p.t_len, p.e_len, p.d_len, p.k_len, p.s_len, p.j_len)
    tag = _tag(shape, central, work.itemsize, p.coefficients.shape[0], p.shared)
    if p.shared > 1 and len(tag[0]) != len(_tag(shape, central, work.itemsize, len(p.rhs))[0]):
        # Factorising each matrix once pays unless it would take the systems out of SIMD
        # lanes (a few matrices with many small systems each: they run as lane chunks).
        p = p.unshared()
        tag = _tag(shape, central, work.itemsize, len(p.rhs))
    if len(tag[0]) == 1 and p.coefficients.dtype != work:
        # One-lane chunks work on their rows in place, in the work dtype: cast around them.
        return solve(p.to(work), central).to(p.coefficients.dtype)
    rhs, init_vars = (_by_rhs(x, p.shared) for x in (p.rhs, p.init_vars))
    u = _CompiledSolve.apply(p.coefficients, rhs, init_vars, p.steps, p, bool(central), tag, work)
    return _by_rhs(u, len(u) // p.shared) if p.shared > 1 else u


def _by_rhs(x: torch.Tensor, shared: int) -> torch.Tensor:
    """(N·R, ...) with system n's right-hand side q at row n·R + q (R = shared) ->
    right-hand side q of every system together, row q·N + n: the kernels' order (a copy,
    differentiable; itself the inverse with R and N swapped)."""
    if shared == 1:
        return x
    return x.unflatten(0, (-1, shared)).transpose(0, 1).flatten(0, 1)


def warm_up(
    dtypes=((torch.float64, torch.float64), (torch.float32, torch.float32),
            (torch.float32, torch.float64)),
) -> None:
    """Compile the kernels, or load them from numba's disk cache, for the model's shape
    (D·K = 3, no central rows) for each (inputs' dtype, solve dtype) pair, one system and
    a batch (the two lane kinds, `_tag`; one system of float32 solved in float64 runs the
    float64 kernels): a tiny forward+backward each. `make install` runs it, so no training
    run or first solve waits; other block sizes and the central rows compile on first use."""
    for dtype, work in dtypes:
        for n in (1, 2 * MIN_SYSTEMS_PER_THREAD):
            inputs = [
                torch.ones(n, 3, 1, 1, 3, dtype=dtype, requires_grad=True),
                torch.ones(n, 3, 1, dtype=dtype),
                torch.ones(n, 1, 1, 2, dtype=dtype),
                torch.full((n, 2), 0.1, dtype=dtype),
            ]
            p = Problem(*inputs, batch_shape=(n,), weight_equation=1.0, weight_init=1.0,
                        weight_smooth=1.0)
            solve(p, central=False, solve_dtype=work).sum().backward()
