"""S-MNN: the Scalable Mechanistic Neural Network solver in PyTorch.

It needs torch (and numpy) only; with numba installed, CPU solves run on compiled kernels
(method "compiled", the default on CPU), loaded on first use.

`ode_forward` solves the linear-ODE least-squares problem in time and memory linear in the
number of steps; `ODELayer` wraps it as a module; `smnn.reference` holds the
dense ground truth and `smnn.compat` drop-ins for code written for the original MNN layers
and for the published S-MNN `ode_forward`. `SolveError` (a ValueError) is what every method
raises for input it cannot solve for its values (non-finite numbers, a normal matrix that is
not positive definite). `set_num_threads` sets the compiled kernels' threads apart from
torch's (by default they follow `torch.get_num_threads()`).
"""

from smnn._compiled import get_num_threads, set_num_threads
from smnn._layer import ODELayer
from smnn._ode import ode_forward
from smnn._solve import METHODS
from smnn._validate import SolveError

__all__ = [
    "METHODS",
    "ODELayer",
    "SolveError",
    "get_num_threads",
    "ode_forward",
    "set_num_threads",
]
