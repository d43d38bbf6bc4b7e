"""S-MNN: the Scalable Mechanistic Neural Network solver in PyTorch.

It needs torch (and numpy) only; with numba installed, CPU solves run on compiled kernels
(method "compiled", the default on CPU), loaded on first use.

`ode_forward` solves the linear-ODE least-squares problem of DESIGN.md §2 in time and memory
linear in the number of steps; `ODELayer` wraps it as a module; `smnn.reference` holds the
dense ground truth and `smnn.compat` drop-ins for code written for the original MNN layers
and for the published S-MNN `ode_forward`.
"""

from smnn._layer import ODELayer
from smnn._ode import ode_forward
from smnn._solve import METHODS

__all__ = ["METHODS", "ODELayer", "ode_forward"]
