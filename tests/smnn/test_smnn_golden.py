"""Our solver reproduces the published S-MNN implementation's golden vectors."""

from pathlib import Path

import numpy as np
import pytest
import torch

from smnn import METHODS, ode_forward
from smnn.reference import ode_forward_dense

GOLDEN = (
    Path(__file__).resolve().parents[2].parent
    / "shared"
    / "data"
    / "smnn"
    / "golden_published_smnn.npz"
)
CASES = [
    "k3_d1_default",
    "k3_d1_central",
    "k4_d2_e2_default",
    "k4_d2_e2_central",
    "k2_d3_s0_default",
    "k5_d1_e1_central",
]
INPUTS = ("coefficients", "rhs", "init_vars", "steps")


@pytest.fixture(scope="module")
def golden():
    if not GOLDEN.exists():
        pytest.skip(f"golden vectors not present at {GOLDEN}")
    with np.load(GOLDEN) as z:
        return {k: z[k] for k in z.files}


def method_solver(name):
    def solve(*inputs, central):
        return ode_forward(*inputs, central=central, method=name)

    return solve


SOLVERS = {name: method_solver(name) for name in METHODS} | {"dense": ode_forward_dense}


@pytest.mark.parametrize("solver", list(SOLVERS.values()), ids=list(SOLVERS))
@pytest.mark.parametrize("case", CASES)
def test_solution_and_gradients_match_the_published_implementation(golden, case, solver, rel_err):
    inputs = [torch.tensor(golden[f"{case}/{name}"], requires_grad=True) for name in INPUTS]
    u = solver(*inputs, central=bool(golden[f"{case}/central"]))
    (u * torch.tensor(golden[f"{case}/cotangent"])).sum().backward()

    assert rel_err(u.detach(), torch.tensor(golden[f"{case}/u"])) < 1e-9
    for name, x in zip(INPUTS, inputs, strict=True):
        want = torch.tensor(golden[f"{case}/grad_{name}"])
        got = x.grad if x.grad is not None else torch.zeros_like(want)
        assert rel_err(got, want) < 1e-9, name
