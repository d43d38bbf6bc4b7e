"""Shared pytest fixtures (append only; each area adds its own below)."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

# --- model area (issue 5) ---------------------------------------------------------------


def ar1_sst(start="1980-01", end="1999-12", *, ny=6, nx=8, phi=0.8, seed=0) -> xr.Dataset:
    """A small canonical SST dataset (docs/design.md §3) with known statistics: a latitude-
    dependent mean, a hemispheric seasonal cycle of 3 °C and AR(1) anomalies with lag-one
    coefficient `phi` and innovation std 0.3 °C; two land points (NaN, mask False)."""
    rng = np.random.default_rng(seed)
    time = pd.date_range(start, end, freq="MS")
    lat = np.linspace(-50.0, 50.0, ny)
    lon = (np.arange(nx) + 0.5) * 360.0 / nx
    mean = 28.0 - 20.0 * (lat / 60.0) ** 2
    season = 3.0 * np.sin(2 * np.pi * (time.month.values - 1) / 12)[:, None] * np.sign(lat)
    anomaly = np.zeros((len(time), ny, nx))
    for t in range(1, len(time)):
        anomaly[t] = phi * anomaly[t - 1] + 0.3 * rng.standard_normal((ny, nx))
    sst = mean[None, :, None] + season[:, :, None] + anomaly
    mask = np.ones((ny, nx), bool)
    mask[0, :2] = False
    sst[:, ~mask] = np.nan
    return xr.Dataset(
        {
            "sst": (("time", "lat", "lon"), sst.astype(np.float32), {"units": "degC"}),
            "mask": (("lat", "lon"), mask),
        },
        coords={"time": time, "lat": lat, "lon": lon},
    )


@pytest.fixture
def model_store(tmp_path):
    """The path of a real zarr store holding `ar1_sst()` (20 years, monthly, 6x8 grid)."""
    from pipeline.data.store import write_store

    path = tmp_path / "sst.zarr"
    write_store(ar1_sst(), str(path))
    return path


@pytest.fixture
def make_ar1_sst():
    """The `ar1_sst` maker, for tests that need other periods, sizes or seeds."""
    return ar1_sst


# --- data area (issue 4) ----------------------------------------------------------------


class NoaaMirror:
    """A real HTTP server on 127.0.0.1 serving `root` in NOAA's layouts, with faults on demand.

    `fail[path] = [500, 500]` answers those statuses first; `drop[path] = n` sends the headers
    and n bytes, then closes the connection (once); `requests` logs (method, path, Range);
    `max_active` is the most requests waiting out `delay` at once. Range requests get 206 with the
    requested tail unless an If-Range validator is stale; HEAD gives size and Last-Modified.
    """

    def __init__(self, root):
        import http.server
        import threading
        import time
        from email.utils import formatdate
        from pathlib import Path

        self.root = Path(root)
        self.fail: dict[str, list[int]] = {}
        self.drop: dict[str, int] = {}
        self.requests: list[tuple[str, str, str | None]] = []
        self.delay = 0.0  # seconds each request takes, to make downloads overlap
        self.active = 0  # requests being answered now, and the most at once
        self.max_active = 0
        self.lock = threading.Lock()
        mirror = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output quiet
                pass

            def _serve(self, body: bool):
                path = self.path.split("?")[0].lstrip("/")
                mirror.requests.append((self.command, path, self.headers.get("Range")))
                if mirror.fail.get(path):
                    code = mirror.fail[path].pop(0)
                    self.send_response(code)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                file = mirror.root / path
                if not file.is_file():
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = file.read_bytes()
                modified = formatdate(file.stat().st_mtime, usegmt=True)
                start = 0
                rng = self.headers.get("Range")
                if_range = self.headers.get("If-Range")
                if rng and if_range and if_range != modified:
                    rng = None  # the file changed since the client's partial copy: send all
                if rng and rng.startswith("bytes="):
                    start = int(rng[6:].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(len(data) - start))
                self.send_header("Last-Modified", modified)
                self.end_headers()
                if not body:
                    return
                payload = data[start:]
                if path in mirror.drop:
                    cut = mirror.drop.pop(path)
                    self.wfile.write(payload[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.wfile.write(payload)

            def _counted(self, body: bool):
                # Counted while waiting, before any byte of the answer goes out: a client can
                # send its next request only after reading this answer, so a sequential client
                # never overlaps itself here, however late this thread is scheduled again.
                with mirror.lock:
                    mirror.active += 1
                    mirror.max_active = max(mirror.max_active, mirror.active)
                try:
                    time.sleep(mirror.delay)
                finally:
                    with mirror.lock:
                        mirror.active -= 1
                self._serve(body)

            def do_GET(self):
                self._counted(body=True)

            def do_HEAD(self):
                self._counted(body=False)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def gets(self, path_end: str) -> list[tuple[str, str, str | None]]:
        """The GET requests for paths ending in `path_end`."""
        return [r for r in self.requests if r[0] == "GET" and r[1].endswith(path_end)]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def noaa_mirror(tmp_path):
    """A `NoaaMirror` over an empty folder tmp_path/"mirror" (write files there with
    pipeline.data.synthetic.write_layout); its base URL is `noaa_mirror.url`."""
    root = tmp_path / "mirror"
    root.mkdir()
    server = NoaaMirror(root)
    yield server
    server.close()
def tiny_model_config():
    """A model config small enough to train in seconds on `ar1_sst()`."""
    from pipeline.model.config import Config, ModelConfig, TrainConfig, WindowConfig

    return Config(
        model=ModelConfig(n_dct=8, encoder_width=16, encoder_depth=1, latent_dim=4,
                          decoder_width=16, init_steps=3),
        window=WindowConfig(context=24, horizon=6, location_stride=1, block_locations=20),
        train=TrainConfig(batch_size=64, max_steps=4, warmup_steps=1, val_steps=24,
                          val_every=2, val_samples=256, checkpoint_every=2, log_every=1,
                          max_minutes=None, seed=5),
    )


@pytest.fixture
def tiny_config():
    """`tiny_model_config()` as a fixture."""
    return tiny_model_config()


@pytest.fixture(scope="session")
def trained_model_run(tmp_path_factory):
    """(store path, run dir) of a tiny model trained for 2 steps on `ar1_sst()` up to 1995-12;
    shared by the forecast and CLI tests, which must not modify it."""
    from pipeline.data.store import write_store
    from pipeline.model.train import train

    root = tmp_path_factory.mktemp("model_run")
    store = root / "sst.zarr"
    write_store(ar1_sst(), str(store))
    config = tiny_model_config()
    config = config.model_copy(update={"train": config.train.model_copy(
        update={"max_steps": 2})})
    train(store, root / "run", config=config, train_end="1995-12")
    return store, root / "run"


# --- Prefect (the flows and faults tests) -------------------------------------------------


def pytest_configure(config):
    """Prefect reads its settings on first import, so they are set here, before any test
    module imports it: PREFECT_HOME in a temporary folder, telemetry off, quiet logs."""
    import os
    import tempfile

    from flows.runtime import offline_environment

    home = tempfile.mkdtemp(prefix="sstcast-prefect-home-")
    os.environ["PREFECT_HOME"] = home
    os.environ.setdefault("PREFECT_LOCAL_STORAGE_PATH", os.path.join(home, "storage"))
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    offline_environment(home=home)


@pytest.fixture(scope="session")
def prefect_server():
    """One real local Prefect server (SQLite in a temp folder) for the whole session, shared
    by every test that needs one (two would split a flow's task runs between them); yields
    its API URL. Tests using it carry `pytest.mark.xdist_group("prefect")`."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield PREFECT_API_URL.value()
