"""Drop-in replacements for code written for the original MNN and the published S-MNN.

- `ODEINDLayer`, `ODESYSLayer`: alpz/mech-nn's layers (`solver/ode_layer.py`), same
  constructor and forward arguments, defaults and attributes, solved by S-MNN.
- `smnn.compat.published.ode_forward`: IST-DASLab/ScalableMNN's `ode_forward` signature
  (positional options, `n_steps`, `is_step_dim_first`, ...), solved by `smnn.ode_forward`.

What each original argument does here: `smnn/compat/_tables.py` and README.
"""

from smnn.compat import published
from smnn.compat._mnn import ODEINDLayer, ODESYSLayer

__all__ = ["ODEINDLayer", "ODESYSLayer", "published"]
