"""The store on a real S3 endpoint: moto's server on a free 127.0.0.1 port, through s3fs.

Ingest, append, the write lock (exclusive create by PUT If-None-Match) and a writer killed
with SIGKILL mid-write. Skipped only when moto or s3fs is not installed (the dev extra).
"""

import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("moto.server", reason="moto[server] is not installed (pip install -e .[dev])")
pytest.importorskip("s3fs", reason="s3fs is not installed (pip install -e .[dev])")

from flows.cli import main  # noqa: E402
from pipeline.data.ingest import ingest  # noqa: E402
from pipeline.data.lock import StoreLocked, _create, lock_path, store_lock  # noqa: E402
from pipeline.data.store import open_store, validate_store  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SOURCE = {"start": "1990-01", "resolution": 4.0}


@pytest.fixture(scope="module")
def s3_endpoint():
    """moto's S3 server on 127.0.0.1 (in a thread), and the environment that points
    botocore/s3fs (here and in subprocesses) at it."""
    import s3fs
    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{port}",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    s3fs.S3FileSystem.clear_instance_cache()  # none may point at another endpoint
    yield env
    s3fs.S3FileSystem.clear_instance_cache()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    server.stop()


@pytest.fixture
def bucket(s3_endpoint):
    """A new bucket per test: its s3:// URL and the s3fs filesystem."""
    import fsspec

    fs = fsspec.filesystem("s3")
    name = f"sstcast-{uuid.uuid4().hex[:12]}"
    fs.mkdir(name)
    return f"s3://{name}", fs


def test_ingest_then_append_on_s3_matches_a_local_store(bucket, tmp_path):
    url, fs = bucket
    store = f"{url}/sst.zarr"
    first = ingest("synthetic", store, end="1994-12", cache_dir=tmp_path / "c", **SOURCE)
    grown = ingest("synthetic", store, end="1999-12", cache_dir=tmp_path / "c", **SOURCE)
    again = ingest("synthetic", store, end="1999-12", cache_dir=tmp_path / "c", **SOURCE)
    assert (first.added, grown.added, again.added, again.total) == (60, 60, 0, 120)
    validate_store(store, full=True)
    local = tmp_path / "local.zarr"
    ingest("synthetic", local, end="1999-12", cache_dir=tmp_path / "c", **SOURCE)
    np.testing.assert_array_equal(open_store(store)["sst"].values, open_store(local)["sst"].values)
    assert fs.exists(f"{url}/sst.zarr/zarr.json") and not fs.exists(lock_path(store)[1])


def test_exclusive_lock_creation_is_atomic_on_s3(bucket):
    url, fs = bucket
    path = f"{url.removeprefix('s3://')}/race.lock"

    def take(i):
        try:
            _create(fs, path, str(i).encode())
            return i
        except FileExistsError:
            return None

    with ThreadPoolExecutor(8) as pool:
        winners = [i for i in pool.map(take, range(16)) if i is not None]
    assert len(winners) == 1
    assert fs.cat_file(path) == str(winners[0]).encode()


def test_a_held_s3_lock_refuses_a_second_writer_in_another_process(bucket, tmp_path):
    url, fs = bucket
    store = f"{url}/sst.zarr"
    with store_lock(store):
        with pytest.raises(StoreLocked, match=f"being written by PID {os.getpid()} on "):
            with store_lock(store):
                pass
        proc = subprocess.run(
            [sys.executable, "-m", "flows", "ingest", "--store", store, "--start", "1990-01",
             "--end", "1990-12", "--synthetic-resolution", "4", "--cache-dir", str(tmp_path)],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
            text=True, timeout=180,
        )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert f"is being written by PID {os.getpid()} on {socket.gethostname()}" in proc.stderr
    assert not fs.exists(f"{url}/sst.zarr")  # nothing was written
    assert not fs.exists(lock_path(store)[1])


# Dies by SIGKILL right after the n-th data chunk of the append reached S3.
KILLER = textwrap.dedent("""
    import os, signal, sys
    import zarr.storage
    from pipeline.data.ingest import ingest

    original = zarr.storage.FsspecStore.set
    seen = {"n": 0}

    async def set_then_die(self, key, value, *args, **kwargs):
        await original(self, key, value, *args, **kwargs)
        if key.startswith("sst/c/"):
            seen["n"] += 1
            if seen["n"] == int(sys.argv[2]):
                os.kill(os.getpid(), signal.SIGKILL)

    zarr.storage.FsspecStore.set = set_then_die
    ingest("synthetic", sys.argv[1], start="1990-01", end="1999-12", resolution=4.0,
           cache_dir=sys.argv[3])
""")


@pytest.mark.parametrize("count", [1, 2])
def test_kill_9_mid_write_on_s3_leaves_a_valid_store_and_a_rerun_completes(bucket, tmp_path,
                                                                           count):
    url, fs = bucket
    store = f"{url}/sst.zarr"
    ingest("synthetic", store, end="1994-12", cache_dir=tmp_path / "c", **SOURCE)
    killed = subprocess.run(
        [sys.executable, "-c", KILLER, store, str(count), str(tmp_path / "c")],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
        timeout=180,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    validate_store(store, full=True)  # the committed view is intact
    assert open_store(store).sizes["time"] == 60
    assert fs.exists(lock_path(store)[1])  # the dead writer's lock is left behind
    with pytest.warns(UserWarning, match="breaking the stale lock .* is not running"):
        result = main(["ingest", "--store", store, "--start", "1990-01", "--end", "1999-12",
                       "--synthetic-resolution", "4", "--cache-dir", str(tmp_path / "c")])
    assert result == 0
    validate_store(store, full=True)
    local = tmp_path / "local.zarr"
    ingest("synthetic", local, end="1999-12", cache_dir=tmp_path / "c", **SOURCE)
    np.testing.assert_array_equal(open_store(store)["sst"].values, open_store(local)["sst"].values)
    assert not fs.exists(lock_path(store)[1])
