"""Fixtures of the fault-injection tests that need Prefect: the same offline settings and
real local server as tests/flows/conftest.py (both conftests share one PREFECT_HOME, through
SSTCAST_TEST_PREFECT_HOME, whichever of them pytest loads first)."""

from __future__ import annotations

import os

import pytest


def pytest_configure(config):
    # Prefect reads its settings on first import: set them before any test module imports it.
    import tempfile

    from flows.runtime import offline_environment

    home = os.environ.get("SSTCAST_TEST_PREFECT_HOME")
    if home is None:
        home = os.environ["SSTCAST_TEST_PREFECT_HOME"] = tempfile.mkdtemp(
            prefix="sstcast-prefect-home-")
    os.environ["PREFECT_HOME"] = home
    os.environ.setdefault("PREFECT_LOCAL_STORAGE_PATH", os.path.join(home, "storage"))
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    offline_environment(home=home)


@pytest.fixture(scope="session")
def prefect_server():
    """A real local Prefect server (SQLite in a temp folder) for the session; its API URL."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield PREFECT_API_URL.value()
