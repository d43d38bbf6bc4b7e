"""Fixtures of the flow tests: a tiny ingested and trained workdir. The Prefect settings and
the session's one real Prefect server (`prefect_server`) are in tests/conftest.py, shared
with tests/faults."""

from __future__ import annotations

import pytest

TINY_MODEL = """\
[model]
n_dct = 8
encoder_width = 16
encoder_depth = 1
latent_dim = 4
decoder_width = 16
init_steps = 4

[window]
context = 24
horizon = 6
"""
TINY_CONFIG = TINY_MODEL + """
[train]
batch_size = 128
max_steps = 6
warmup_steps = 1
val_steps = 6
val_every = 3
val_samples = 256
checkpoint_every = 3
log_every = 2
"""


@pytest.fixture(scope="session")
def tiny_toml():
    """The tiny model and windows with the given `[train]` table (TOML text)."""
    return lambda train: TINY_MODEL + "\n[train]\n" + train


@pytest.fixture(scope="session")
def tiny_workdir(prefect_server, tmp_path_factory):
    """A workdir whose store.zarr the ingest flow filled with synthetic SST (1995-2004,
    monthly, coarsened to 6°), plus a tiny model config."""
    from flows.params import IngestParameters
    from flows.pipelines import ingest_flow

    root = tmp_path_factory.mktemp("workdir")
    ingest_flow(IngestParameters(store=str(root / "store.zarr"), start="1995-01-01",
                                 end="2004-12-01", grid=6.0))
    (root / "tiny.toml").write_text(TINY_CONFIG)
    return root


@pytest.fixture(scope="session")
def trained(prefect_server, tiny_workdir):
    """train_flow on the tiny store (training to 2002-12): the checkpoint path."""
    from pathlib import Path

    from flows.params import TrainParameters
    from flows.pipelines import train_flow

    params = TrainParameters(store=str(tiny_workdir / "store.zarr"),
                             run_dir=str(tiny_workdir / "runs"), new_run=True,
                             config=str(tiny_workdir / "tiny.toml"), train_end="2002-12-01")
    return Path(train_flow(params))
