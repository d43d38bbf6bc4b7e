"""Fault injection: a tampered file in Prefect's result storage must not run code.

The result location (`--results`, PREFECT_LOCAL_STORAGE_PATH) is a folder of files that a
later run may read back. Prefect deserialises a result record with the serializer its own
metadata names, so a JSON serializer on the writing side is no defence: the tampered record
below names cloudpickle. The ingest flow runs on a real Prefect server, every file it left
in the result location is replaced by such a record, and the flow runs again: the payload
(which creates a marker file when unpickled) must never run, and the rerun must still do
its work."""

from __future__ import annotations

import base64
import json

import pytest

# These tests share the session's Prefect server (tests/conftest.py): one xdist worker.
pytestmark = pytest.mark.xdist_group("prefect")


class Payload:
    """Unpickling this calls open(marker, "w"), which creates the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def tamper(path, marker) -> None:
    """Replace a result file by a record whose metadata names cloudpickle and whose result
    is the payload (keeping the rest of the metadata when the file is a record)."""
    import cloudpickle

    payload = base64.b64encode(cloudpickle.dumps(Payload(marker))).decode()
    try:
        record = json.loads(path.read_bytes())
        metadata = record["metadata"]
    except (ValueError, KeyError, TypeError):
        metadata = {"storage_key": str(path), "expiration": None, "storage_block_id": None}
    metadata["serializer"] = {"type": "pickle", "picklelib": "cloudpickle",
                              "picklelib_version": None}
    path.write_text(json.dumps({"metadata": metadata, "result": payload,
                                "prefect_version": "3"}))


def test_tampered_result_files_run_no_code_and_the_rerun_recomputes(prefect_server, tmp_path):
    from prefect.settings import (
        PREFECT_LOCAL_STORAGE_PATH,
        PREFECT_RESULTS_PERSIST_BY_DEFAULT,
        temporary_settings,
    )

    from flows.params import IngestParameters
    from flows.pipelines import ingest_flow
    from pipeline.data.store import open_store

    results, marker = tmp_path / "results", tmp_path / "PWNED"
    params = IngestParameters(store=str(tmp_path / "s.zarr"), start="2000-01-01",
                              end="2001-12-01", grid=6.0, cache_dir=str(tmp_path / "dl"))
    # Persisting by default (a user's profile may say so) must not bring the files back.
    settings = {PREFECT_LOCAL_STORAGE_PATH: results, PREFECT_RESULTS_PERSIST_BY_DEFAULT: True}
    with temporary_settings(settings):
        first = ingest_flow(params)
        assert first["added"] == 24
        stored = sorted(p for p in results.rglob("*") if p.is_file()) if results.exists() else []
        for path in stored:
            tamper(path, marker)
        state = ingest_flow(params, return_state=True)
    assert not marker.exists(), f"unpickling a tampered result ran code ({stored})"
    assert state.is_completed() and state.result()["added"] == 0
    assert open_store(tmp_path / "s.zarr").sizes["time"] == 24
    # Nothing is taken from the result location, so the fetch really ran again.
    assert _task_states(state.state_details.flow_run_id)["fetch_task"] == "Completed"
    assert stored == []  # flows and tasks persist nothing there at all


def _task_states(flow_run_id) -> dict[str, str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(
            id=FlowRunFilterId(any_=[flow_run_id])))
    return {run.task_key.split("-")[0]: run.state.name for run in runs}
