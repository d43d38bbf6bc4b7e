"""Fixtures of the flow tests: one real Prefect server per test session (prefect_test_harness,
PREFECT_HOME in a temporary folder, telemetry off) and a tiny trained workdir."""

from __future__ import annotations

import os

import pytest

# Prefect reads its settings on first import, so the environment is set here, before any
# flows test module imports prefect (pytest_configure runs when this conftest is loaded).
TINY_CONFIG = """\
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


def pytest_configure(config):
    import tempfile

    from flows.runtime import offline_environment

    home = os.environ.get("SSTCAST_TEST_PREFECT_HOME")  # shared with tests/faults/conftest.py
    if home is None:
        home = os.environ["SSTCAST_TEST_PREFECT_HOME"] = tempfile.mkdtemp(
            prefix="sstcast-prefect-home-")
    os.environ["PREFECT_HOME"] = home
    os.environ.setdefault("PREFECT_LOCAL_STORAGE_PATH", os.path.join(home, "storage"))
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    offline_environment(home=home)


@pytest.fixture(scope="session")
def prefect_server():
    """A real local Prefect server (SQLite in a temp folder) for the whole session; yields
    its API URL."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield PREFECT_API_URL.value()


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
