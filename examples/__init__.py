"""Reproductions of the S-MNN paper's experiments (Chen et al., ICLR 2025).

One script per experiment; each takes ``--config small|full`` and ``--out DIR`` and writes
``<name>.png`` (the figure) and ``<name>.json`` (its numbers). Run from the repository root::

    python -m examples.standalone_odes --config full --out runs/examples
    python -m examples.damped_sine --config full --out runs/examples
    python -m examples.lorenz --config full --out runs/examples
    python -m examples.kdv --config full --out runs/examples

``small`` runs in seconds (the smoke tests in ``tests/examples`` use it); ``full`` produced
the numbers in the README. The private modules hold what the scripts share: data generators
(``_data``, ``_kdv_data``), the linear test ODEs (``_odes``), the polynomial library
(``_library``) and output and measurement helpers (``_output``).
"""
