"""Process-level settings for running the flows offline, and the dask task runner.

Nothing here runs at import time: the CLI calls `offline_environment` before it imports
Prefect, because Prefect reads its settings when it is first imported.
"""

from __future__ import annotations

import os

# Telemetry off, no update checks or promotions: the flows run where nothing outside is
# reachable, and a blocked analytics call must not slow down or fail a run.
OFFLINE = {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY": "false",
    "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false",
    # A cold ephemeral server on a busy 2-core machine can take longer than the default 20 s.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    # The in-process dask cluster logs every worker start at INFO: keep the run log readable.
    "DASK_LOGGING__DISTRIBUTED": "warning",
}


def offline_environment(*, home: str | None = None, results: str | None = None) -> dict:
    """Set the offline defaults in `os.environ` (keeping what the user already set).

    `home` sets PREFECT_HOME (database, profiles); `results` sets Prefect's result location
    (PREFECT_LOCAL_STORAGE_PATH; sstcast's tasks persist nothing there, see flows/tasks.py).
    Returns the values applied.
    """
    applied = {}
    wanted = dict(OFFLINE)
    if home:
        wanted["PREFECT_HOME"] = str(home)
    for name, value in wanted.items():
        applied[name] = os.environ.setdefault(name, value)
    if results:  # an explicit --results wins over the environment
        os.environ["PREFECT_LOCAL_STORAGE_PATH"] = applied["PREFECT_LOCAL_STORAGE_PATH"] = str(
            results)
    return applied


def dask_runner(address: str | None = None, *, threads: int = 2):
    """Prefect's DaskTaskRunner on the cluster at `address` (any dask scheduler address),
    or on a small in-process LocalCluster (threads, no dashboard) when it is None."""
    from prefect_dask import DaskTaskRunner

    if address:
        return DaskTaskRunner(address=address)
    # dask starts its dashboards even when told None, on all interfaces: keep them local.
    return DaskTaskRunner(cluster_kwargs={"n_workers": 1, "processes": False,
                                          "threads_per_worker": threads,
                                          "dashboard_address": "127.0.0.1:0",
                                          "worker_dashboard_address": "127.0.0.1:0"})

