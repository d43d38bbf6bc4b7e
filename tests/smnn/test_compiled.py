"""The compiled CPU method: chunks of systems in SIMD lanes, threads, kept or recomputed factors.

Its agreement with the dense solve over the shape grid, broadcasting, drawn shapes and
gradcheck is tested with the other methods (test_smnn_dense_agreement.py,
test_smnn_gradcheck.py); here are the parts of its own machinery that those small problems
do not reach.
"""

import numpy as np
import pytest
import torch

from smnn import _compiled, _kernels, ode_forward
from smnn._validate import canonicalise
from smnn.reference import ode_forward_dense

from .conftest import make_problem, relative_error
from .test_parallel import normal_residual

INPUT_NAMES = ("coefficients", "rhs", "init_vars", "steps")


def solve_with_gradients(inputs, central, method="compiled", seed=3):
    """u and the four input gradients for loss = Σ u·cotangent; method "dense": the reference."""
    leaves = [x.clone().requires_grad_() for x in inputs]
    if method == "dense":
        u = ode_forward_dense(*leaves, central=central)
    else:
        u = ode_forward(*leaves, central=central, method=method)
    g = torch.randn(u.shape, generator=torch.Generator().manual_seed(seed), dtype=u.dtype)
    (u * g).sum().backward()
    return u.detach(), [x.grad for x in leaves]


def assert_matches_dense(inputs, central):
    """The compiled u and gradients agree with the dense reference (1e-10 and 1e-8)."""
    u, grads = solve_with_gradients(inputs, central)
    dense_u, dense_grads = solve_with_gradients(inputs, central, method="dense")
    assert relative_error(u, dense_u) < 1e-10
    for name, got, want in zip(INPUT_NAMES, grads, dense_grads, strict=True):
        assert relative_error(got, want) < 1e-8, name


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("lanes", [8, 32])
@pytest.mark.parametrize("features", [20, 64, 67, 130])  # plain loops, whole tiles, tails
@pytest.mark.parametrize("systems", [32, 13, 1])  # a full chunk, a partial one, one system
@pytest.mark.parametrize("src_dtype, dst_dtype", [
    (np.float64, np.float64), (np.float32, np.float64), (np.float64, np.float32),
])
def test_gather_and_scatter_move_every_entry_of_a_chunk(
    lanes, features, systems, src_dtype, dst_dtype
):
    nw = min(systems, lanes)
    rng = np.random.default_rng(features + lanes + nw)
    rows = rng.standard_normal((50, features)).astype(src_dtype)
    n0 = 7  # a chunk that starts inside the array
    chunk = np.full((features, lanes), np.nan, dtype=dst_dtype)
    buf = np.full(lanes * features, np.nan, dtype=src_dtype)
    _kernels._gather(rows, n0, nw, chunk, buf)
    want = rows[[n0 + min(w, nw - 1) for w in range(lanes)]].T  # the last system repeated
    assert np.array_equal(chunk, want.astype(dst_dtype))

    out = np.full((50, features), np.nan, dtype=src_dtype)
    _kernels._scatter(chunk, n0, nw, out)
    assert np.array_equal(out[n0:n0 + nw], chunk[:, :nw].T.astype(src_dtype))
    untouched = np.ones(50, dtype=bool)
    untouched[n0:n0 + nw] = False
    assert np.isnan(out[untouched]).all()  # only the chunk's own rows are written


@pytest.mark.parametrize("central", [False, True], ids=["default", "central"])
def test_chunks_transposed_in_tiles_match_the_dense_solve(central, two_threads):
    # T = 30: 90 features per system in coefficients, x and g (tiles and a tail of 2),
    # 30 in rhs and steps (the plain loops); 45 systems: 22 and 23 per thread.
    inputs = make_problem(batch=(45,), t_len=30, k_len=3, s_len=2, j_len=2, seed=28)
    assert_matches_dense(inputs, central)


@pytest.mark.parametrize("central", [False, True], ids=["default", "central"])
def test_partial_chunks_and_thread_ranges_match_the_dense_solve(central, two_threads):
    # 77 systems over 2 threads: ranges of 38 and 39, each a full chunk of 32 and a part.
    assert _kernels.CHUNK == 32
    inputs = make_problem(batch=(77,), t_len=6, k_len=3, s_len=2, j_len=2, seed=21)
    assert_matches_dense(inputs, central)


def test_results_do_not_depend_on_the_thread_count(two_threads):
    inputs = make_problem(batch=(77,), t_len=9, k_len=3, s_len=2, j_len=2, seed=22)
    u2, grads2 = solve_with_gradients(inputs, central=False)
    torch.set_num_threads(1)
    u1, grads1 = solve_with_gradients(inputs, central=False)
    # Every system is computed alone in its lane with the same operations: bit for bit.
    assert torch.equal(u1, u2)
    for got, want in zip(grads1, grads2, strict=True):
        assert torch.equal(got, want)


@pytest.mark.parametrize("central", [False, True], ids=["default", "central"])
@pytest.mark.parametrize("batch", [1, 5], ids=["one_system_in_place", "five_lanes"])
def test_kept_and_recomputed_factors_give_the_same_gradients(batch, central, monkeypatch):
    inputs = make_problem(batch=(batch,), t_len=40, k_len=3, s_len=2, j_len=2, seed=23)
    u_kept, grads_kept = solve_with_gradients(inputs, central)
    monkeypatch.setattr(_compiled, "KEEP_FACTOR_BYTES", 0)
    u_again, grads_again = solve_with_gradients(inputs, central)
    assert torch.equal(u_kept, u_again)
    for got, want in zip(grads_again, grads_kept, strict=True):
        assert torch.equal(got, want)


@pytest.mark.parametrize("batch, lanes, kept", [(1, 1, 1), (5, 8, 5), (64, 32, 0)])
def test_only_chunks_of_few_lanes_keep_their_factor(batch, lanes, kept):
    inputs = make_problem(batch=(batch,), t_len=12, k_len=3, s_len=2, j_len=2, seed=24)
    leaves = [x.clone().requires_grad_() for x in inputs]
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        u = _compiled.solve(canonicalise(*leaves), central=False)
    finally:
        torch.set_num_threads(before)
    assert len(u.grad_fn.args[-1][0]) == lanes  # the tag's lanes per chunk
    assert u.grad_fn.args[5][0].shape[0] == kept


def test_a_solve_without_gradients_keeps_no_factor(monkeypatch):
    seen = []
    real = _kernels.forward

    def spy(*args):
        seen.append(args[11][0].shape[0])  # kept = (factor, pivots), rows per system
        return real(*args)

    monkeypatch.setattr(_kernels, "forward", spy)
    inputs = make_problem(batch=(1,), t_len=12, k_len=3, s_len=2, j_len=2, seed=25)
    _compiled.solve(canonicalise(*inputs), central=False)
    _compiled.solve(canonicalise(inputs[0].clone().requires_grad_(), *inputs[1:]),
                    central=False)
    assert seen == [0, 1]


def test_long_sequences_and_wide_blocks_run_one_per_lane_and_split_over_threads(two_threads):
    # (T, E, D, K, S, J), one band, float64: T·12·8 bytes of packed factor per system.
    assert _kernels.lane_count((208, 1, 1, 3, 10, 2), 1, 8, 12_960) == _kernels.CHUNK
    assert _kernels.lane_count((208, 1, 1, 3, 10, 2), 1, 8, 5) == 8  # padded to 8
    assert _kernels.lane_count((208, 1, 1, 3, 10, 2), 1, 8, 1) == 1
    assert _kernels.lane_count((1_000, 1, 1, 3, 1, 2), 1, 8, 64) == _kernels.CHUNK
    assert _kernels.lane_count((3_000, 1, 1, 3, 1, 2), 1, 8, 64) == 1  # 288 KB each
    assert _kernels.lane_count((3_000, 1, 1, 3, 1, 2), 1, 4, 64) == _kernels.CHUNK  # float32
    # wide blocks (b = D·K > 5) run one per lane at any length and batch
    assert _kernels.lane_count((54, 1, 1, 5, 1, 2), 1, 8, 512) == _kernels.CHUNK  # b = 5
    assert _kernels.lane_count((54, 2, 2, 2, 1, 1), 1, 8, 512) == _kernels.CHUNK  # b = 4
    assert _kernels.lane_count((54, 2, 2, 3, 1, 2), 1, 8, 512) == 1  # b = 6
    assert _kernels.lane_count((13, 12, 12, 2, 1, 1), 1, 8, 12) == 1  # the mode dynamics
    # threads: one per 16 systems or per 10,000 system-steps, never more than systems
    assert _compiled._thread_count(8, 208) == 1
    assert _compiled._thread_count(77, 6) == 2
    assert _compiled._thread_count(2, 10_000) == 2
    assert _compiled._thread_count(1, 10**6) == 1
    assert _compiled._thread_count(0, 10) == 1


@pytest.mark.parametrize("keep", [True, False], ids=["kept_in_place", "recomputed"])
@pytest.mark.parametrize("central", [False, True], ids=["default", "central"])
def test_one_lane_systems_over_two_threads_match_the_dense_solve(
    central, keep, two_threads, monkeypatch
):
    # What long sequences get (one lane each, rows read and written in place, split over
    # the threads), forced at a size the dense solve can check.
    monkeypatch.setattr(_kernels, "LANE_SYSTEM_BYTES", 0)
    monkeypatch.setattr(_compiled, "MIN_STEPS_PER_THREAD", 1)
    if not keep:
        monkeypatch.setattr(_compiled, "KEEP_FACTOR_BYTES", 0)
    assert _compiled._tag((30, 1, 1, 3, 2, 2), central, 8, 5)[0] == (0,)
    assert _compiled._thread_count(5, 30) == 2
    inputs = make_problem(batch=(5,), t_len=30, k_len=3, s_len=2, j_len=2, seed=26)
    assert_matches_dense(inputs, central)


@pytest.mark.parametrize("central", [False, True], ids=["default", "central"])
def test_wide_blocks_one_per_lane_over_two_threads_match_the_dense_solve(central, two_threads):
    # b = D·K = 6: one lane per system, 40 systems split over the threads
    assert _compiled._tag((9, 2, 2, 3, 2, 2), central, 8, 40)[0] == (0,)
    assert _compiled._thread_count(40, 9) == 2
    inputs = make_problem(batch=(40,), t_len=9, e_len=2, d_len=2, k_len=3, s_len=2, j_len=2,
                          seed=27)
    assert_matches_dense(inputs, central)


def test_a_partial_chunk_of_few_systems_matches_the_dense_solve():
    # 5 systems run in 8 lanes, the last 3 copies of the fifth.
    inputs = make_problem(batch=(5,), t_len=7, k_len=3, s_len=2, j_len=2, seed=22)
    assert_matches_dense(inputs, False)


@pytest.mark.parametrize("central", [False, True], ids=["default", "central"])
def test_a_long_sequence_matches_the_parallel_method_and_is_backward_stable(central):
    inputs = make_problem(batch=(2,), t_len=3_000, k_len=4, s_len=3, j_len=2, seed=24)
    u, grads = solve_with_gradients(inputs, central)
    u_par, grads_par = solve_with_gradients(inputs, central, method="parallel")
    assert normal_residual(inputs, central, u) < 1e-15
    assert relative_error(u, u_par) < 1e-10
    for name, got, want in zip(INPUT_NAMES, grads, grads_par, strict=True):
        assert relative_error(got, want) < 1e-8, name


def test_float32_solve_is_close_to_float64_when_well_conditioned():
    inputs = make_problem(t_len=200, k_len=3, s_len=2, j_len=2, seed=9, step_range=(0.1, 1.0))
    u64 = ode_forward(*inputs, method="compiled")
    u32 = ode_forward(
        *(x.float() for x in inputs), method="compiled", solve_dtype=torch.float32
    )
    assert u32.dtype == torch.float32
    assert relative_error(u32.double(), u64) < 1e-3


def test_a_singular_system_in_a_later_thread_range_names_its_index(two_threads):
    coefficients, rhs, _, steps = make_problem(batch=(77,), t_len=5, s_len=0)
    coefficients[70] = 0.0
    init_vars = torch.zeros(77, 0, 1, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="batch index 70 of the flattened batch"):
        ode_forward(coefficients, rhs, init_vars, steps, method="compiled")


def test_requested_gradients_only():
    coefficients, rhs, init_vars, steps = make_problem(t_len=6, seed=25)
    rhs.requires_grad_()
    ode_forward(coefficients, rhs, init_vars, steps, method="compiled").sum().backward()
    dense_rhs = rhs.detach().clone().requires_grad_()
    ode_forward_dense(coefficients, dense_rhs, init_vars, steps).sum().backward()
    assert coefficients.grad is None and steps.grad is None
    assert relative_error(rhs.grad, dense_rhs.grad) < 1e-8


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_tensors_are_refused_with_the_methods_that_run_there():
    inputs = [x.cuda() for x in make_problem(t_len=5)]
    with pytest.raises(ValueError, match="method: 'compiled' runs on CPU tensors"):
        ode_forward(*inputs, method="compiled")


def test_the_kernels_thread_count_is_set_apart_from_torch_and_restorable(monkeypatch):
    import smnn
    from smnn import _compiled

    torch_before = torch.get_num_threads()
    previous = smnn.set_num_threads(None)
    try:
        torch.set_num_threads(1)
        assert smnn.get_num_threads() == 1  # None follows torch
        assert smnn.set_num_threads(2) is None  # returns what it replaced
        assert smnn.get_num_threads() == 2 and torch.get_num_threads() == 1
        calls = []
        real = _compiled._run
        monkeypatch.setattr(_compiled, "_run", lambda *a, lo, hi: (calls.append((lo, hi)),
                                                                    real(*a, lo=lo, hi=hi)))
        inputs = make_problem(batch=(77,), t_len=6, k_len=3, s_len=2, j_len=2, seed=23)
        u2, _ = solve_with_gradients(inputs, central=False)
        assert sorted(calls)[:2] == [(0, 38), (0, 38)]  # forward and backward, split in two
        assert {hi for _, hi in calls} == {38, 77}
        assert smnn.set_num_threads(1) == 2
        u1, _ = solve_with_gradients(inputs, central=False)
        assert torch.equal(u1, u2)
        for bad in (0, -1, 1.5, True, "2"):
            with pytest.raises(ValueError, match=rf"threads: expected an int >= 1 or None, "
                               rf"received {bad!r}"):
                smnn.set_num_threads(bad)
    finally:
        smnn.set_num_threads(previous)
        torch.set_num_threads(torch_before)


def _solved_in(inputs, dtype, work, central, cast_first):
    """u and the four gradients of inputs in `dtype` solved in `work`: by the compiled
    method itself, or (`cast_first`) with torch casting the inputs to `work` and u back."""
    leaves = [x.to(dtype).requires_grad_() for x in inputs]
    if cast_first:
        u = _compiled.solve(canonicalise(*[x.to(work) for x in leaves]), central).to(dtype)
    else:
        u = _compiled.solve(canonicalise(*leaves), central, work)
    g = torch.randn(u.shape, generator=torch.Generator().manual_seed(7), dtype=u.dtype)
    return u, torch.autograd.grad(u, leaves, g)


@pytest.mark.parametrize("batch, t_len, central, dtype, work", [
    (40, 30, False, torch.float32, torch.float64),  # 32-lane chunks and a partial one
    (5, 12, True, torch.float32, torch.float64),  # one 8-lane chunk, central rows
    (1, 50, False, torch.float32, torch.float64),  # one system: one lane, cast around
    (3, 3_000, False, torch.float32, torch.float64),  # long sequences: one lane each
    (40, 30, False, torch.float64, torch.float32),  # a float32 solve of float64 inputs
])
def test_inputs_solved_in_another_dtype_match_casting_around_the_solve_bit_for_bit(
    batch, t_len, central, dtype, work
):
    inputs = make_problem(batch=(batch,), t_len=t_len, k_len=3, s_len=2, j_len=2, seed=26)
    u, grads = _solved_in(inputs, dtype, work, central, cast_first=False)
    want_u, want_grads = _solved_in(inputs, dtype, work, central, cast_first=True)
    assert u.dtype == dtype and all(g.dtype == dtype for g in grads)
    assert torch.equal(u, want_u)
    for name, got, want in zip(INPUT_NAMES, grads, want_grads, strict=True):
        assert torch.equal(got, want), name


def test_a_float32_batch_solved_in_float64_is_never_cast_as_a_whole():
    # The lane kernels convert while they gather and scatter; a torch cast of an (N, ...)
    # array would be one more pass over memory each way (10 of them a training step).
    inputs = make_problem(batch=(64,), t_len=20, k_len=3, s_len=2, j_len=2, seed=27)
    leaves = [x.float().requires_grad_() for x in inputs]
    with torch.profiler.profile(record_shapes=True) as prof:
        u = ode_forward(*leaves, method="compiled", solve_dtype=torch.float64)
        u.backward(torch.ones_like(u))
    casts = [e.input_shapes[0] for e in prof.events()
             if e.name == "aten::_to_copy" and e.input_shapes and len(e.input_shapes[0]) > 1]
    assert u.dtype == torch.float32 and leaves[0].grad.dtype == torch.float32
    assert casts == []
