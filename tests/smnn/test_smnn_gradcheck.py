"""torch.autograd.gradcheck of ode_forward in float64 on tiny problems, all four inputs."""

import pytest
import torch

from smnn import ode_forward

from .conftest import make_problem


@pytest.mark.parametrize(
    ("central", "shape"),
    [
        (False, dict(t_len=4, k_len=3, s_len=1, j_len=2)),
        (True, dict(t_len=5, k_len=3, s_len=2, j_len=1)),
        (False, dict(t_len=4, d_len=2, e_len=2, k_len=2, s_len=1, j_len=1)),
        (True, dict(t_len=4, k_len=4, s_len=1, j_len=3, step_range=(0.3, 0.6))),
    ],
    ids=["k3", "k3_central", "d2_e2_k2", "k4_central"],
)
@pytest.mark.parametrize("method", ["sequential", "compiled"])
def test_gradients_of_all_four_inputs_pass_gradcheck(central, shape, method):
    inputs = [x.requires_grad_() for x in make_problem(batch=(1,), seed=11, **shape)]
    assert torch.autograd.gradcheck(
        lambda *xs: ode_forward(*xs, central=central, method=method),
        inputs,
        eps=1e-6,
        atol=1e-6,
        rtol=1e-5,
    )


def test_gradcheck_with_broadcast_inputs_and_weights():
    inputs = make_problem(batch=(2,), t_len=4, coeff_steps=1, batches=((2,), (1,), (), (2,)))
    inputs = [x.requires_grad_() for x in inputs]
    assert torch.autograd.gradcheck(
        lambda *xs: ode_forward(*xs, weight_equation=0.7, weight_init=2.0, weight_smooth=1.3),
        inputs,
        eps=1e-6,
        atol=1e-6,
        rtol=1e-5,
    )
