"""Ingest through a real HTTP mirror into real zarr stores: values, increments, faults."""

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import netCDF4
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from flows.cli import main
from pipeline.data import fetch
from pipeline.data.fetch import CorruptFileError
from pipeline.data.ingest import files_to_store, ingest
from pipeline.data.store import open_store, validate_store
from pipeline.data.synthetic import synthetic_dataset, write_layout

ROOT = Path(__file__).resolve().parents[3]
COBE = "Datasets/COBE2/sst.mon.mean.nc"


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    monkeypatch.setattr(fetch, "BACKOFF_S", 0.01)


def serve_cobe2(mirror, end="1994-12", start="1990-01"):
    path = write_layout("cobe2", mirror.root, start, end, resolution=6.0, seed=7)[0]
    stat = path.stat()  # a new upload must look new to HEAD even within one second
    os.utime(path, (stat.st_atime, stat.st_mtime + len(pd.date_range(start, end, freq="MS"))))
    return path


def standardised_source(path: Path) -> np.ndarray:
    """The served file read independently with netCDF4: fill -> NaN, lat flipped to ascending."""
    with netCDF4.Dataset(path) as nc:
        raw = nc["sst"][:].filled(np.nan).astype(np.float32)
        lat = nc["lat"][:]
    return raw[:, ::-1] if lat[0] > lat[-1] else raw


def sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def test_full_ingest_stores_exactly_the_standardised_source(noaa_mirror, tmp_path):
    served = serve_cobe2(noaa_mirror)
    result = ingest("cobe2", tmp_path / "s.zarr", mirror=noaa_mirror.url, cache_dir=tmp_path / "c")
    ds = open_store(tmp_path / "s.zarr")
    expected = standardised_source(served)
    assert (result.added, result.total, result.first, result.last) == (
        60,
        60,
        "1990-01-01",
        "1994-12-01",
    )
    assert sha256(ds["sst"].values) == sha256(expected)
    truth = synthetic_dataset("1990-01", "1994-12", resolution=6.0, seed=7)
    spot = {"time": "1992-07-01", "lat": 3.0, "lon": 237.0}  # eastern equatorial Pacific
    assert float(ds["sst"].sel(spot)) == float(truth["sst"].sel(spot))
    np.testing.assert_array_equal(ds["mask"].values, truth["mask"].values)
    assert noaa_mirror.url in ds.attrs["sstcast_urls"] and "cobe2" in ds.attrs["sstcast_source"]
    validate_store(tmp_path / "s.zarr", full=True)


def test_rerun_adds_nothing_and_leaves_the_store_untouched(noaa_mirror, tmp_path):
    serve_cobe2(noaa_mirror)
    kwargs = {"mirror": noaa_mirror.url, "cache_dir": tmp_path / "c"}
    ingest("cobe2", tmp_path / "s.zarr", **kwargs)
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "s.zarr").rglob("*")}
    again = ingest("cobe2", tmp_path / "s.zarr", **kwargs)
    after = {p: p.stat().st_mtime_ns for p in (tmp_path / "s.zarr").rglob("*")}
    assert (again.added, again.total) == (0, 60)
    assert before == after
    assert len(noaa_mirror.gets(COBE)) == 1


def test_new_months_upstream_are_appended(noaa_mirror, tmp_path):
    kwargs = {"mirror": noaa_mirror.url, "cache_dir": tmp_path / "c"}
    serve_cobe2(noaa_mirror, end="1993-06")
    ingest("cobe2", tmp_path / "s.zarr", **kwargs)
    served = serve_cobe2(noaa_mirror, end="1994-12")
    result = ingest("cobe2", tmp_path / "s.zarr", **kwargs)
    assert (result.added, result.total, result.last) == (18, 60, "1994-12-01")
    assert sha256(open_store(tmp_path / "s.zarr")["sst"].values) == sha256(
        standardised_source(served)
    )


def test_resume_after_dropped_connection_then_ingest(noaa_mirror, tmp_path):
    served = serve_cobe2(noaa_mirror)
    noaa_mirror.drop[COBE] = 5000
    ingest("cobe2", tmp_path / "s.zarr", mirror=noaa_mirror.url, cache_dir=tmp_path / "c")
    assert noaa_mirror.gets(COBE)[-1][2] == "bytes=5000-"
    assert sha256(open_store(tmp_path / "s.zarr")["sst"].values) == sha256(
        standardised_source(served)
    )


def test_corrupt_upstream_file_fails_clearly_and_leaves_the_store(noaa_mirror, tmp_path):
    kwargs = {"mirror": noaa_mirror.url, "cache_dir": tmp_path / "c"}
    serve_cobe2(noaa_mirror, end="1993-06")
    ingest("cobe2", tmp_path / "s.zarr", **kwargs)
    before = open_store(tmp_path / "s.zarr")["sst"].values
    served = serve_cobe2(noaa_mirror, end="1994-12")
    served.write_bytes(served.read_bytes()[:-20000])  # truncated upload
    os.utime(served, (served.stat().st_atime, served.stat().st_mtime + 100))
    with pytest.raises(CorruptFileError, match=f"{noaa_mirror.url}/{COBE}"):
        ingest("cobe2", tmp_path / "s.zarr", **kwargs)
    np.testing.assert_array_equal(open_store(tmp_path / "s.zarr")["sst"].values, before)


def test_corrupt_cached_file_is_a_clear_error_naming_it(tmp_path):
    bad = tmp_path / "sst.mon.mean.nc"
    bad.write_bytes(b"CDF\x01 this is not netCDF")
    with pytest.raises(ValueError, match="could not open the cobe2 files"):
        files_to_store([bad], "cobe2", tmp_path / "s.zarr")
    assert not (tmp_path / "s.zarr").exists()


def test_daily_preliminary_weeks_are_replaced_by_final_data(noaa_mirror, tmp_path):
    root = noaa_mirror.root
    kwargs = {
        "mirror": noaa_mirror.url,
        "cache_dir": tmp_path / "c",
        "grid": 10.0,
        "freq": "weekly",
        "start": "2024-01-07",
        "end": "2024-02-29",
    }
    write_layout(
        "oisst-v2.1-daily",
        root,
        "2024-01-07",
        "2024-01-27",
        resolution=5.0,
        preliminary_from="2024-01-21",
    )
    first = ingest("oisst-v2.1-daily", tmp_path / "s.zarr", **kwargs)
    assert (first.total, first.last, first.preliminary_from) == (3, "2024-01-21", "2024-01-21")
    provisional = open_store(tmp_path / "s.zarr")["sst"].isel(time=-1).values
    write_layout("oisst-v2.1-daily", root, "2024-01-21", "2024-02-03", resolution=5.0)
    second = ingest("oisst-v2.1-daily", tmp_path / "s.zarr", **kwargs)
    ds = open_store(tmp_path / "s.zarr")
    assert (second.replaced, second.added, second.preliminary_from) == (1, 1, None)
    assert pd.DatetimeIndex(ds.time)[-1] == pd.Timestamp("2024-01-28")
    np.testing.assert_allclose(ds["sst"].isel(time=2).values, provisional - 0.05, atol=0.006)


def test_daily_coarsened_weekly_matches_an_independent_computation(tmp_path):
    paths = write_layout(
        "oisst-v2.1-daily", tmp_path / "m", "2024-01-07", "2024-01-13", resolution=5.0
    )
    files_to_store(paths, "oisst-v2.1-daily", tmp_path / "s.zarr", grid=10.0, freq="weekly")
    ds = open_store(tmp_path / "s.zarr")
    days = np.stack([standardised_source(p)[0, 0] for p in paths])  # (7, 36, 72)
    week = days.mean(axis=0)
    lat = np.deg2rad(-87.5 + 5 * np.arange(36))
    w = np.cos(lat)[:, None] * np.isfinite(week)
    block = (np.nan_to_num(week) * w).reshape(18, 2, 36, 2).sum((1, 3))
    weight = w.reshape(18, 2, 36, 2).sum((1, 3))
    area = (np.cos(lat)[:, None] * np.ones(72)).reshape(18, 2, 36, 2).sum((1, 3))
    expected = np.where(weight >= 0.5 * area, block / np.where(weight > 0, weight, 1), np.nan)
    np.testing.assert_allclose(ds["sst"].isel(time=0).values, expected, atol=1e-4)
    assert ds.attrs["sstcast_time_step"] == "7D"


KILLER = textwrap.dedent("""
    import os, signal, sys
    import zarr.storage
    from pipeline.data.ingest import ingest

    writes = {"n": 0}
    original = zarr.storage.LocalStore.set

    async def set_then_die(self, key, value, *args, **kwargs):
        await original(self, key, value, *args, **kwargs)
        if sys.argv[2] in key:  # e.g. a data chunk of the new months has landed
            writes["n"] += 1
            if writes["n"] == int(sys.argv[3]):
                os.kill(os.getpid(), signal.SIGKILL)

    zarr.storage.LocalStore.set = set_then_die
    ingest("cobe2", sys.argv[1], mirror=sys.argv[4], cache_dir=sys.argv[5])
""")


# Killed right after the first of two new data chunks landed, and after both landed (just
# before the commit). A kill after growing the arrays is covered in test_store.py.
@pytest.mark.parametrize("key, count", [("sst/c/", 1), ("sst/c/", 2)])
def test_kill_9_during_a_write_then_rerun_completes_the_store(noaa_mirror, tmp_path, key, count):
    store, cache = tmp_path / "s.zarr", tmp_path / "c"
    serve_cobe2(noaa_mirror, end="1992-03")
    ingest("cobe2", store, mirror=noaa_mirror.url, cache_dir=cache)
    served = serve_cobe2(noaa_mirror, end="1994-12")
    killed = subprocess.run(
        [sys.executable, "-c", KILLER, str(store), key, str(count), noaa_mirror.url, str(cache)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    # The store still opens and validates, with exactly its committed months.
    validate_store(store, full=True)
    assert open_store(store).sizes["time"] == 27
    assert xr.open_zarr(store).sizes["time"] == 27  # plain readers (consolidated) too
    result = ingest("cobe2", store, mirror=noaa_mirror.url, cache_dir=cache)
    assert (result.added, result.total) == (33, 60)
    validate_store(store, full=True)
    assert sha256(open_store(store)["sst"].values) == sha256(standardised_source(served))


def test_ingest_runs_on_a_dask_distributed_cluster(tmp_path):
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0"
    ) as cluster:
        result = ingest(
            "synthetic",
            tmp_path / "s.zarr",
            start="2000-01",
            end="2000-12",
            resolution=10.0,
            cache_dir=tmp_path / "c",
            dask_address=cluster.scheduler_address,
        )
    assert result.total == 12


def test_cli_ingest_then_info(tmp_path, capsys):
    store = str(tmp_path / "s.zarr")
    args = [
        "ingest",
        "--store",
        store,
        "--start",
        "2001-01",
        "--end",
        "2002-12",
        "--synthetic-resolution",
        "10",
        "--cache-dir",
        str(tmp_path / "c"),
    ]
    assert main(args) == 0
    assert "24 steps added" in capsys.readouterr().out
    assert main(args) == 0
    assert "0 steps added" in capsys.readouterr().out
    assert main(["info", "--store", store, "--full"]) == 0
    out = capsys.readouterr().out
    assert "24 steps at MS: 2001-01-01 .. 2002-12-01" in out and "valid      yes" in out


def test_cli_reports_errors_in_one_line(tmp_path, capsys):
    assert main(["info", "--store", str(tmp_path / "absent.zarr")]) == 2
    assert "no zarr store" in capsys.readouterr().err
    code = main(
        [
            "ingest",
            "--store",
            str(tmp_path / "s.zarr"),
            "--source",
            "cobe2",
            "--mirror",
            str(tmp_path / "empty"),
            "--cache-dir",
            str(tmp_path / "c"),
        ]
    )
    assert code == 2
    assert "404" in capsys.readouterr().err
