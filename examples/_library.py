"""Polynomial feature library and thresholding for governing-equation discovery (SINDy style)."""

from __future__ import annotations

import itertools

import torch


def polynomial_terms(n_vars: int, degree: int) -> tuple[tuple[int, ...], ...]:
    """Monomials of total degree <= ``degree`` as tuples of variable indices.

    ``()`` is the constant; for 3 variables and degree 2 there are 10 terms:
    1, x, y, z, xx, xy, xz, yy, yz, zz.
    """
    if n_vars < 1 or degree < 0:
        raise ValueError(f"need n_vars >= 1 and degree >= 0, got n_vars={n_vars}, degree={degree}")
    return tuple(
        itertools.chain.from_iterable(
            itertools.combinations_with_replacement(range(n_vars), r) for r in range(degree + 1)
        )
    )


def term_names(terms: tuple[tuple[int, ...], ...], names: str = "xyz") -> list[str]:
    """Readable names of monomials, e.g. ``('1', 'x', ..., 'xz')``."""
    return ["".join(names[i] for i in term) or "1" for term in terms]


def evaluate_library(x: torch.Tensor, terms: tuple[tuple[int, ...], ...]) -> torch.Tensor:
    """Monomials of ``x`` (..., n_vars) -> (..., n_terms)."""
    ones = torch.ones_like(x[..., 0])
    columns = [x[..., list(term)].prod(dim=-1) if term else ones for term in terms]
    return torch.stack(columns, dim=-1)


def threshold_mask(xi: torch.Tensor, threshold: float) -> torch.Tensor:
    """Boolean mask of the coefficients whose magnitude reaches ``threshold`` (same shape)."""
    if threshold < 0:
        raise ValueError(f"threshold must be >= 0, got {threshold}")
    return xi.abs() >= threshold
