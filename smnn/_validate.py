"""Validate and canonicalise solver inputs once, at the boundary.

Every public entry point calls `canonicalise`; everything behind it may assume flat,
broadcast, finite inputs of one dtype on one device.

Malformed input (types, shapes, devices, options) raises TypeError or ValueError; input that
is well-formed but cannot be solved for its values (non-finite numbers, a normal matrix that
is not positive definite) raises `SolveError`, a ValueError, with the same message from
every method, so callers (e.g. a training loop) can catch exactly the numerical failures.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from numbers import Real

import torch

_FLOATS = (torch.float32, torch.float64)


class SolveError(ValueError):
    """Well-formed input the solve cannot handle for its values: non-finite inputs, or a
    normal matrix that is not (numerically) positive definite. Every method raises it with
    the same message for the same input."""


# A Cholesky pivot p_i = M_ii − Σ_k L_ik² counts as failed when p_i <= PIVOT_ULPS_PER_TERM
# · w · eps · M_ii, w = (nb + 1)·b the most terms in a row of the block-banded M (nb bands of
# b×b blocks): below that it is rounding noise of the subtraction (each term <= M_ii), not a
# pivot. The test is against the original M_ii, so it does not depend on the elimination
# order: the sequential, compiled and parallel (cyclic reduction) methods apply the same one.
PIVOT_ULPS_PER_TERM = 8.0


def pivot_tolerance(dtype: torch.dtype, b: int, n_bands: int) -> float:
    """The relative pivot threshold for an (N, T, b) system with `n_bands` lower bands."""
    return PIVOT_ULPS_PER_TERM * (n_bands + 1) * b * torch.finfo(dtype).eps


def not_positive_definite(index: int) -> SolveError:
    """The one error every method raises for a failed factorisation of system `index`."""
    return SolveError(
        "the normal matrix: expected symmetric positive definite (enough equation and "
        "initial-value rows to pin the solution, finite well-scaled inputs), received a "
        f"singular or indefinite system at batch index {index} of the flattened batch"
    )


def not_finite_solution(index: int) -> SolveError:
    """A solution with inf or NaN from finite inputs: they overflowed the solve's dtype."""
    return SolveError(
        "the solution: expected finite values, received inf or NaN at batch index "
        f"{index} of the flattened batch (finite inputs too large for the solve's dtype)"
    )


def not_positive_step(index: int) -> SolveError:
    """A step size that is not > 0 in system `index`, as a kernel saw it (`ode_forward`
    names the value first from the inputs; this is the message if it could not)."""
    return SolveError(
        f"steps: expected step sizes > 0, received one that is not at batch index {index} "
        "of the flattened batch"
    )


@dataclass(frozen=True)
class Problem:
    """Canonical inputs: batch flattened to N and every step dim at full length.

    coefficients (N / R, T, E, D, K); rhs (N, T, E); init_vars (N, S, D, J); steps
    (N / R, T-1). `batch_shape` is the broadcast of the inputs' leading dims (N = its
    product). R = `shared` systems in a row have one matrix (coefficients and steps
    broadcast along trailing batch dims: system n has matrix n // R), so a method can
    factorise it once; `unshared` gives every system its own rows.
    """

    coefficients: torch.Tensor
    rhs: torch.Tensor
    init_vars: torch.Tensor
    steps: torch.Tensor
    batch_shape: tuple[int, ...]
    weight_equation: float
    weight_init: float
    weight_smooth: float
    shared: int = 1

    @property
    def t_len(self) -> int:
        return self.coefficients.shape[1]

    @property
    def e_len(self) -> int:
        return self.coefficients.shape[2]

    @property
    def d_len(self) -> int:
        return self.coefficients.shape[3]

    @property
    def k_len(self) -> int:
        return self.coefficients.shape[4]

    @property
    def s_len(self) -> int:
        return self.init_vars.shape[1]

    @property
    def j_len(self) -> int:
        return self.init_vars.shape[3]

    def unshared(self) -> Problem:
        """The same problem with coefficients and steps repeated for every system (N rows)."""
        if self.shared == 1:
            return self
        return dataclasses.replace(
            self,
            coefficients=self.coefficients.repeat_interleave(self.shared, dim=0),
            steps=self.steps.repeat_interleave(self.shared, dim=0),
            shared=1,
        )

    def to(self, dtype: torch.dtype) -> Problem:
        """The same problem with its four tensors in `dtype` (differentiable casts)."""
        if self.coefficients.dtype == dtype:
            return self
        return dataclasses.replace(
            self,
            coefficients=self.coefficients.to(dtype),
            rhs=self.rhs.to(dtype),
            init_vars=self.init_vars.to(dtype),
            steps=self.steps.to(dtype),
        )


def _check_tensor(name: str, x: object, min_dims: int, layout: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor {layout}, received {type(x).__name__}")
    if x.dtype not in _FLOATS:
        raise TypeError(f"{name}: expected dtype float32 or float64, received {x.dtype}")
    if x.ndim < min_dims:
        raise ValueError(
            f"{name}: expected at least {min_dims} dims {layout}, received shape {tuple(x.shape)}"
        )
    return x


def _check_weight(name: str, w: object) -> float:
    if isinstance(w, bool) or not isinstance(w, Real):
        raise TypeError(f"{name}: expected a positive real number, received {w!r}")
    w = float(w)
    if not (math.isfinite(w) and w > 0):
        raise ValueError(f"{name}: expected a finite number > 0, received {w!r}")
    return w


def _check_finite(name: str, x: torch.Tensor) -> None:
    # One reduction pass: a sum is finite unless some entry is not (or it overflows, in which
    # case the exact check below decides).
    if x.numel() == 0 or bool(torch.isfinite(x.detach().sum())):
        return
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        index = tuple(int(i) for i in bad.nonzero()[0])
        raise SolveError(
            f"{name}: expected finite values, received {x[index].item()} at index {index}"
        )


def check_values(coefficients, rhs, init_vars, steps) -> None:
    """Raise SolveError naming the first input with an inf or NaN, and ValueError unless
    every step size is > 0."""
    for name, x in (("coefficients", coefficients), ("rhs", rhs), ("init_vars", init_vars),
                    ("steps", steps)):
        _check_finite(name, x)
    if steps.numel() and not bool(steps.detach().min() > 0):
        bad = tuple(int(i) for i in (steps <= 0).nonzero()[0])
        raise ValueError(
            f"steps: expected step sizes > 0, received {steps[bad].item()} at index {bad}"
        )


def canonicalise(
    coefficients: torch.Tensor,
    rhs: torch.Tensor,
    init_vars: torch.Tensor,
    steps: torch.Tensor,
    *,
    weight_equation: float = 1.0,
    weight_init: float = 1.0,
    weight_smooth: float = 1.0,
    values: bool = True,
) -> Problem:
    """Check shapes, dtypes, devices and (unless `values` is False: the caller runs
    `check_values` itself) values; broadcast and flatten the batch.

    Args:
        coefficients: (..., T or 1, E, D, K), K >= 2, D >= 1, E >= 1.
        rhs: (..., T or 1, E).
        init_vars: (..., S, D, J), 0 <= S <= T, J <= K.
        steps: (..., T-1 or 1), all > 0.

    Returns:
        A `Problem` with the canonical (N, ...) tensors (differentiable views or copies).

    Raises:
        TypeError / ValueError naming the argument, the expected and the received value.
    """
    c = _check_tensor("coefficients", coefficients, 4, "(..., T, E, D, K)")
    r = _check_tensor("rhs", rhs, 2, "(..., T, E)")
    v = _check_tensor("init_vars", init_vars, 3, "(..., S, D, J)")
    h = _check_tensor("steps", steps, 1, "(..., T-1)")
    devices = {x.device for x in (c, r, v, h)}
    if len(devices) > 1:
        raise ValueError(
            "coefficients, rhs, init_vars, steps: expected one device, received "
            f"{[str(x.device) for x in (c, r, v, h)]}"
        )
    weights = (
        _check_weight("weight_equation", weight_equation),
        _check_weight("weight_init", weight_init),
        _check_weight("weight_smooth", weight_smooth),
    )

    t_c, e_len, d_len, k_len = c.shape[-4:]
    if k_len < 2:
        raise ValueError(f"coefficients: expected K >= 2 (last dim), received K={k_len}")
    if d_len < 1 or e_len < 1:
        raise ValueError(
            f"coefficients: expected E >= 1 and D >= 1, received shape {tuple(c.shape)}"
        )
    if r.shape[-1] != e_len:
        raise ValueError(
            f"rhs: expected last dim E={e_len} (from coefficients), received shape {tuple(r.shape)}"
        )
    s_len, d_v, j_len = v.shape[-3:]
    if d_v != d_len:
        raise ValueError(
            f"init_vars: expected dim -2 to be D={d_len} (from coefficients), received shape "
            f"{tuple(v.shape)}"
        )
    if j_len > k_len:
        raise ValueError(f"init_vars: expected J <= K={k_len} (last dim), received J={j_len}")
    t_r, t_h = r.shape[-2], h.shape[-1]
    t_len = max(t_c, t_r, t_h + 1)
    if t_len < 2:
        raise ValueError(f"steps: expected T >= 2 time steps, received T={t_len}")
    for name, got, want in (
        ("coefficients", t_c, t_len),
        ("rhs", t_r, t_len),
        ("steps", t_h, t_len - 1),
    ):
        if got not in (1, want):
            raise ValueError(f"{name}: expected step dim {want} or 1 (T={t_len}), received {got}")
    if s_len > t_len:
        raise ValueError(f"init_vars: expected S <= T={t_len} initial steps, received S={s_len}")

    batch_dims = (c.shape[:-4], r.shape[:-2], v.shape[:-3], h.shape[:-1])
    try:  # equal dims need no broadcast (torch's costs ~30 µs, a tenth of this function)
        batch_shape = tuple(
            batch_dims[0] if len(set(batch_dims)) == 1 else torch.broadcast_shapes(*batch_dims)
        )
    except RuntimeError:
        raise ValueError(
            "coefficients, rhs, init_vars, steps: expected leading batch dims that broadcast, "
            f"received {[tuple(s) for s in batch_dims]}"
        ) from None

    if values:
        check_values(c, r, v, h)

    dtype = torch.promote_types(
        torch.promote_types(c.dtype, r.dtype), torch.promote_types(v.dtype, h.dtype)
    )
    n = math.prod(batch_shape)
    lead = _matrix_dims(batch_shape, batch_dims[0], batch_dims[3]) if n else len(batch_shape)
    matrices = (*batch_shape[:lead], *(1,) * (len(batch_shape) - lead))

    def flat(x: torch.Tensor, batch: tuple[int, ...], tail: tuple[int, ...]) -> torch.Tensor:
        rows = math.prod(batch)
        if x.dtype == dtype and x.shape == (rows, *tail):  # canonical already: no graph nodes
            return x
        return x.to(dtype).expand(*batch, *tail).reshape(rows, *tail)

    return Problem(
        coefficients=flat(c, matrices, (t_len, e_len, d_len, k_len)),
        rhs=flat(r, batch_shape, (t_len, e_len)),
        init_vars=flat(v, batch_shape, (s_len, d_len, j_len)),
        steps=flat(h, matrices, (t_len - 1,)),
        batch_shape=batch_shape,
        weight_equation=weights[0],
        weight_init=weights[1],
        weight_smooth=weights[2],
        shared=math.prod(batch_shape[lead:]),
    )


def _matrix_dims(batch_shape: tuple[int, ...], *matrix_dims: tuple[int, ...]) -> int:
    """How many leading dims of `batch_shape` index distinct matrices: the trailing dims
    along which the coefficients' and steps' batch dims (`matrix_dims`) both broadcast (size
    1 or absent) are shared, e.g. an ensemble of initial states of one ODE."""
    lead = len(batch_shape)
    while lead and all(
        len(dims) < len(batch_shape) - lead + 1 or dims[lead - len(batch_shape) - 1] == 1
        for dims in matrix_dims
    ):
        lead -= 1
    return lead
