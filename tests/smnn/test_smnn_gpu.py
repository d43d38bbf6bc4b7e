"""The solver runs on CUDA and agrees with the CPU solve (skipped without a GPU)."""

import pytest
import torch

from smnn import ode_forward

from .conftest import make_problem, relative_error

pytestmark = pytest.mark.gpu


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("central", [False, True], ids=["default", "central"])
def test_cuda_solution_and_gradients_match_cpu(central):
    cpu = [x.requires_grad_() for x in make_problem(batch=(3,), t_len=9, s_len=2, seed=5)]
    gpu = [x.detach().cuda().requires_grad_() for x in cpu]
    u_cpu = ode_forward(*cpu, central=central)
    u_gpu = ode_forward(*gpu, central=central)
    assert u_gpu.device.type == "cuda"
    assert relative_error(u_gpu.cpu(), u_cpu.detach()) < 1e-10
    (u_cpu**2).sum().backward()
    (u_gpu**2).sum().backward()
    for a, b in zip(cpu, gpu, strict=True):
        assert relative_error(b.grad.cpu(), a.grad) < 1e-8
