"""S-MNN: the Scalable Mechanistic Neural Network solver in PyTorch.

It needs torch (and numpy) only; with numba installed, CPU solves run on compiled kernels
(method "compiled", the default on CPU), loaded on first use.

`ode_forward` solves the linear-ODE least-squares problem in time and memory linear in the
number of steps; `ODELayer` wraps it as a module; `smnn.reference` holds the
dense ground truth and `smnn.compat` drop-ins for code written for the original MNN layers
and for the published S-MNN `ode_forward`. `SolveError` (a ValueError) is what every method
raises for input it cannot solve for its values (non-finite numbers, a normal matrix that is
not positive definite).
"""

from smnn._layer import ODELayer
from smnn._ode import ode_forward
from smnn._solve import METHODS
from smnn._validate import SolveError

__all__ = ["METHODS", "ODELayer", "SolveError", "ode_forward"]
