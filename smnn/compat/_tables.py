"""The originals' argument lists and what sstcast does with each: the one table per original.

Each row is (name, original default, handling, note). `REQUIRED` marks an argument with no
default. Handling is one of
- "same": the argument means the same here (shapes, sizes, row weights);
- "honoured": it changes results and sstcast reproduces its effect;
- "refused": it would change results in a way S-MNN cannot reproduce; any value other than
  the default raises a ValueError saying so;
- "accepted": it has no meaning for S-MNN (a slack weight, a device hint, a solver cache) and
  is stored but does not change the numbers.

The tests check our signatures against these rows one by one, and README's tables are
printed from them (`python -m smnn.compat._tables`).
"""

from __future__ import annotations

REQUIRED = object()

# alpz/mech-nn, solver/ode_layer.py, class ODEINDLayer.__init__
ODEINDLAYER = (
    ("bs", REQUIRED, "same", "batch size B"),
    ("order", REQUIRED, "same", "ODE order; K = order + 1 unknowns per step"),
    ("n_ind_dim", REQUIRED, "same", "independent scalar ODEs N per batch element"),
    ("n_iv", REQUIRED, "same", "initial-value orders J fixed per initial step"),
    ("n_step", REQUIRED, "same", "steps T"),
    ("n_iv_steps", REQUIRED, "same", "initial steps S holding initial values"),
    ("solver_dbl", True, "honoured", "True: solve in float64; False: in the inputs' dtype"),
    ("gamma", 0.5, "accepted", "weight of MNN's slack term; S-MNN has no slack variable"),
    ("alpha", 0.1, "accepted", "cost of MNN's slack variable; S-MNN has none (eps is 0)"),
    (
        "central_diff",
        True,
        "honoured",
        "central-difference rows (MNN always builds them); False drops them, as the "
        "published S-MNN default does",
    ),
    ("double_ret", False, "honoured", "False: outputs in float32 (as MNN); True: solve dtype"),
    ("device", None, "accepted", "the inputs' device is used"),
)

# alpz/mech-nn, solver/ode_layer.py, class ODESYSLayer.__init__
ODESYSLAYER = (
    ("bs", REQUIRED, "same", "batch size B"),
    ("order", REQUIRED, "same", "ODE order; K = order + 1"),
    ("n_ind_dim", REQUIRED, "same", "independent systems N per batch element"),
    ("n_dim", REQUIRED, "same", "state dimensions D of each system"),
    ("n_equations", REQUIRED, "same", "equations E of each system"),
    ("n_iv", REQUIRED, "same", "initial-value orders J fixed per initial step"),
    ("n_iv_steps", REQUIRED, "same", "initial steps S holding initial values"),
    ("n_step", REQUIRED, "same", "steps T"),
    (
        "periodic_boundary",
        False,
        "refused",
        "True (smoothness rows wrapping from the last step to the first) is not an S-MNN problem",
    ),
    ("solver_dbl", True, "honoured", "True: solve in float64; False: in the inputs' dtype"),
    ("gamma", 0.5, "accepted", "weight of MNN's slack term; S-MNN has no slack variable"),
    ("alpha", 0.1, "accepted", "cost of MNN's slack variable; S-MNN has none (eps is 0)"),
    ("double_ret", True, "honoured", "False: outputs in float32; True: solve dtype"),
    ("device", None, "accepted", "the inputs' device is used"),
)

# IST-DASLab/ScalableMNN, smnn.py, ode_forward
PUBLISHED_ODE_FORWARD = (
    ("coefficients", REQUIRED, "same", "(..., T, E, D, K); T may be 1 (broadcast)"),
    ("rhs_equation", REQUIRED, "same", "(..., T, E); T may be 1"),
    ("init_vars", REQUIRED, "same", "(..., S, D, J); S may be 1 (broadcast to n_init_var_steps)"),
    ("steps", REQUIRED, "same", "(..., T-1); may be 1 (broadcast)"),
    ("n_steps", None, "honoured", "T, when no input has a full step dim"),
    ("n_init_var_steps", None, "honoured", "S, when init_vars' step dim is 1"),
    ("is_step_dim_first", False, "honoured", "True: step dim first in inputs and output"),
    ("weight_equation", 1.0, "same", "weight of the equation rows"),
    ("weight_init_var", 1.0, "same", "weight of the initial-value rows (our weight_init)"),
    ("weight_smooth", 1.0, "same", "weight of the smoothness rows"),
    ("enable_central_smoothness", False, "same", "central-difference rows (our central)"),
    ("prefer_cuda_graph", True, "accepted", "a launch optimisation; no effect on the numbers"),
    (
        "frozen_lhs_cache_version",
        0,
        "accepted",
        "a cache of the factorised matrix; sstcast factorises every call (same numbers when "
        "the cached matrix is the current one, as the published code requires)",
    ),
)

TABLES = {
    "ODEINDLayer": ODEINDLAYER,
    "ODESYSLayer": ODESYSLAYER,
    "published ode_forward": PUBLISHED_ODE_FORWARD,
}


def markdown(table) -> str:
    """The README table for one original."""
    lines = ["| argument | original default | sstcast |", "|---|---|---|"]
    for name, default, handling, note in table:
        shown = "required" if default is REQUIRED else f"`{default!r}`"
        lines.append(f"| `{name}` | {shown} | {handling}: {note} |")
    return "\n".join(lines)


if __name__ == "__main__":
    for title, rows in TABLES.items():
        print(f"{title}:\n\n{markdown(rows)}\n")
