"""Unattended operation: the scheduled flows of flows/deployments.py run through 15
simulated months on the session's real Prefect server, from a fresh working folder, with a
mirror that gains one month of data per month."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path

import pandas as pd
import pytest

from flows.deployments import DEPLOYMENTS
from flows.params import OperationParameters

# These tests share the session's Prefect server (conftest.py): one xdist worker.
pytestmark = pytest.mark.xdist_group("prefect")

TINY_TRAIN = """\
batch_size = 128
max_steps = 3
warmup_steps = 1
val_steps = 6
val_every = 3
val_samples = 128
checkpoint_every = 3
log_every = 3
"""  # with the tiny model (conftest)
FIRST = pd.Timestamp("2000-01-01")  # first month the mirror serves
BEGIN = dt.datetime(2005, 1, 1, 7, tzinfo=dt.UTC)  # the simulated clock starts here...
END = dt.datetime(2006, 4, 1, 5, tzinfo=dt.UTC)  # ...and stops here: 15 months
# The default crons, but ingest monthly on the 1st (the source gains a month per month, so a
# daily ingest adds nothing on the other days) and retraining twice a year, to keep the test
# short (two retrains: April and October).
CRONS = {**{d.option: d.cron for d in DEPLOYMENTS}, "ingest": "0 6 1 * *",
         "retrain": "0 4 3 4,10 *"}


def _fire_times(crons: dict[str, str]) -> list[tuple[dt.datetime, str]]:
    """(time, deployment option) of every scheduled run in [BEGIN, END), computed by
    Prefect's own scheduler code, in time order."""
    from prefect.server.schemas.schedules import CronSchedule

    events = []
    for option, cron in crons.items():
        dates = asyncio.run(CronSchedule(cron=cron, timezone="UTC").get_dates(
            n=1000, start=BEGIN, end=END))
        events += [(pd.Timestamp(d).to_pydatetime(), option) for d in dates]
    return sorted(events)


def _publish(mirror: Path, now: dt.datetime, served: list) -> None:
    """Put the months before `now`'s month on the mirror (a month is out on the 1st of the
    next), rewriting its one file in place as NOAA does when a month is added."""
    from pipeline.data.synthetic import write_layout

    last = pd.Timestamp(now.replace(tzinfo=None)).to_period("M").to_timestamp() - pd.DateOffset(
        months=1)
    if served[-1:] != [last]:
        write_layout("cobe2", mirror, FIRST, last, resolution=10.0)
        served.append(last)


@pytest.mark.slow
def test_scheduled_flows_run_unattended_through_15_months(prefect_server, tmp_path, tiny_toml):
    from flows import operations
    from flows.deployments import parameters
    from flows.verification import FIGURE
    from pipeline.data.store import open_store
    from pipeline.evaluation import archive as arch
    from pipeline.evaluation.baselines import KINDS

    mirror = tmp_path / "mirror"
    (tmp_path / "tiny.toml").write_text(tiny_toml(TINY_TRAIN))
    workdir = tmp_path / "work"
    events = _fire_times(CRONS)
    flows = {d.option: getattr(operations, d.flow) for d in DEPLOYMENTS}
    states: list[tuple[dt.datetime, str, object]] = []
    started = time.monotonic()
    params = OperationParameters(workdir=str(workdir), source="cobe2", mirror=mirror.as_uri(),
                                 start=FIRST.date(), config=str(tmp_path / "tiny.toml"),
                                 leads=3, maps=False)
    given = parameters(params)  # what the deployments pass
    took: dict[str, list[float]] = {}
    served: list[pd.Timestamp] = []
    for when, option in events:
        _publish(mirror, when, served)
        t0 = time.monotonic()
        state = flows[option](**given, return_state=True)
        took.setdefault(option, []).append(time.monotonic() - t0)
        states.append((when, option, state))
        assert state.is_completed(), (when, option, state.message)
    seconds = time.monotonic() - started
    print(f"\n15 simulated months: {len(events)} scheduled runs in {seconds:.0f} s; " + ", ".join(
        f"{o} {len(t)}x {sum(t) / len(t):.1f} s" for o, t in took.items()))

    failed = [(w, o, s.name, s.message) for w, o, s in states if not s.is_completed()]
    assert not failed, failed
    skipped = [(w, o) for w, o, s in states if s.name == operations.SKIPPED]
    assert skipped == [(BEGIN.replace(day=2, hour=7), "verify")]  # nothing archived yet
    retrains = [w for w, o, _ in states if o == "retrain"]
    assert len(retrains) >= 2
    runs = sorted(p.name for p in (workdir / "runs").iterdir())
    assert len(runs) == 1 + len(retrains)  # the bootstrap's first model, then each retrain

    # Every month has exactly one archived forecast, issued at the month just published.
    entries = arch.entries(workdir / "archive")
    issues = [pd.Timestamp(e["issue_time"]) for e in entries]
    assert issues == list(pd.date_range("2004-12-01", "2006-02-01", freq="MS"))
    assert {e["version"] for e in entries} == {1}
    # After each retrain the next forecasts come from the new run (none follows the last
    # retrain when it comes after the last forecast).
    last_forecast = max(w for w, o, _ in states if o == "forecast")
    used = 1 + sum(w < last_forecast for w in retrains)
    assert len({e["model_version"] for e in entries}) == used
    assert [e["model_version"] for e in entries] == sorted(e["model_version"] for e in entries)

    # Each (entry, lead) is verified once its valid time is observed, and only once.
    last = open_store(workdir / "store.zarr")["time"].to_index()[-1]
    assert last == pd.Timestamp("2006-02-01")  # the last ingest (1 March) before END
    history = arch.history(workdir / "archive")
    assert not history.duplicated(arch.HISTORY_KEY).any()
    for entry in entries:
        rows = history[history["issue_time"] == entry["issue_time"]]
        observed = [n for n, v in zip(entry["leads"], entry["valid_times"], strict=True)
                    if pd.Timestamp(v) <= pd.Timestamp("2006-02-01")]  # by the last verify
        assert sorted(set(rows["lead"])) == observed, entry["issue_time"]
        if observed:
            assert set(rows["forecast"]) == {"mechanistic_identifier", *KINDS}
            assert set(rows["model_version"]) == {entry["model_version"]}
    assert len(history.drop_duplicates(["issue_time", "lead"])) == 3 * (len(entries) - 3) + 3

    # The report and the artifacts show the verification history.
    report = (workdir / "forecast" / "report.md").read_text()
    assert "## Verification history" in report and f"({'verification/' + FIGURE})" in report
    assert (workdir / "forecast" / "verification" / FIGURE).stat().st_size > 1000
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        keys = {a.key for a in client.read_artifacts(limit=200)}
    assert {"verification-history", "verification-report", "forecast-report"} <= keys


def test_only_transient_io_failures_are_retried():
    import errno
    import urllib.error

    from flows.tasks import transient
    from pipeline.data.fetch import CorruptFileError, FetchError, NotFoundError
    from pipeline.data.lock import StoreLocked

    def http(code):
        return urllib.error.HTTPError("http://x", code, "status", {}, None)

    def chained(outer, inner):
        try:
            try:
                raise inner
            except BaseException as error:
                raise outer from error
        except BaseException as error:
            return error

    retried = [TimeoutError("t"), ConnectionResetError("r"), http(503), http(429),
               FetchError("gave up after 5 attempts", "u", transient=True),
               StoreLocked("busy"), OSError(errno.ETIMEDOUT, "timed out"),
               urllib.error.URLError("refused"), chained(RuntimeError("x"), TimeoutError())]
    refused = [ValueError("source: expected ..."), FileNotFoundError("url: no zarr store"),
               TypeError("attr"), PermissionError("p"), NotFoundError("404", "u"),
               CorruptFileError("bad", "u"), FetchError("401", "u"), http(404),
               OSError(errno.ENOSPC, "disk full"), RuntimeError("diverged"), None]
    assert [transient(e) for e in retried] == [True] * len(retried)
    assert [transient(e) for e in refused] == [False] * len(refused)


def test_bad_parameters_are_refused_before_a_run_in_one_line(capsys, tmp_path):
    from flows.cli import main

    started = time.monotonic()
    assert main(["run", "pipeline", "--workdir", str(tmp_path), "--source", "cobe3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "source: expected one of" in err and "'cobe3'" in err
    assert main(["serve", "--workdir", str(tmp_path), "--mirror", "file:///m"]) == 2
    assert "mirror: expected none for the synthetic source" in capsys.readouterr().err
    assert main(["run", "verify", "--workdir", str(tmp_path), "--leads", "0"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert time.monotonic() - started < 10  # no Prefect run was started, nothing retried
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_a_fresh_folder_with_nothing_to_forecast_from_skips_in_one_line(prefect_server,
                                                                        tmp_path, tiny_toml):
    """A source whose mirror holds only a few months: the forecast ingests them, finds too
    little to train on, and ends Completed ("Skipped") with the reason, without retries."""
    from flows import operations
    from pipeline.data.synthetic import write_layout

    write_layout("cobe2", tmp_path / "mirror", "2000-01-01", "2000-06-01", resolution=10.0)
    (tmp_path / "tiny.toml").write_text(tiny_toml(TINY_TRAIN))
    params = OperationParameters(workdir=str(tmp_path / "w"), source="cobe2",
                                 mirror=(tmp_path / "mirror").as_uri(), start="2000-01-01",
                                 config=str(tmp_path / "tiny.toml"), leads=3, maps=False)
    state = operations.scheduled_forecast(params, return_state=True)
    assert state.is_completed() and state.name == operations.SKIPPED
    assert "nothing to forecast from" in state.message and "\n" not in state.message
    assert (tmp_path / "w" / "store.zarr").exists()  # the bootstrap ingested first
    assert not (tmp_path / "w" / "runs").exists()


def test_a_missing_file_fails_the_fetch_once_without_retries(prefect_server, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from flows import operations

    (tmp_path / "mirror").mkdir()  # serves nothing: a 404 for the COBE2 file
    params = OperationParameters(workdir=str(tmp_path / "w"), source="cobe2",
                                 mirror=(tmp_path / "mirror").as_uri())
    started = time.monotonic()
    state = operations.scheduled_ingest(params, return_state=True)
    assert state.is_failed() and "not found (404)" in state.message
    assert time.monotonic() - started < 30  # no 2 + 4 + 8 s of backoff
    with get_client(sync_client=True) as client:
        children = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            parent_flow_run_id={"any_": [state.state_details.flow_run_id]}))
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(
            id=FlowRunFilterId(any_=[c.id for c in children])))
    fetch = [r for r in runs if r.name.startswith("fetch")]
    assert len(fetch) == 1 and fetch[0].run_count == 1, [(r.name, r.run_count) for r in runs]
