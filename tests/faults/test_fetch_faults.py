"""Downloads against misbehaving mirrors: a real HTTP server on 127.0.0.1 in a thread."""

import base64
import http.server
import logging
import threading
import time

import pytest

from pipeline.data import fetch
from pipeline.data.fetch import FetchError, download, fetch_files

SECRET = "s3cr3tTOKEN"


class Mirror:
    """Answers every request with `behaviour` ("trickle", "silent", "401", "500") and logs
    (path, Authorization header) of each request."""

    def __init__(self, behaviour: str):
        self.behaviour, self.requests, self.release = behaviour, [], threading.Event()
        mirror = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                mirror.requests.append((self.path, self.headers.get("Authorization")))
                if mirror.behaviour == "silent":
                    mirror.release.wait(30)  # never answers while the test runs
                    return
                if mirror.behaviour in ("401", "500"):
                    self.send_error(int(mirror.behaviour))
                    return
                self.send_response(200)  # trickle: a byte every 0.5 s, 1000 promised
                self.send_header("Content-Length", "1000")
                self.end_headers()
                for _ in range(1000):
                    if mirror.release.wait(0.5):
                        return
                    self.wfile.write(b"x")
                    self.wfile.flush()

            do_HEAD = do_GET

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.port = self.server.server_address[1]

    def url(self, path="/sst.mon.mean.nc", credentials=""):
        return f"http://{credentials}127.0.0.1:{self.port}{path}"

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def mirror(request):
    server = Mirror(request.param)
    yield server
    server.close()


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch):
    monkeypatch.setattr(fetch, "BACKOFF_S", 0.01)


@pytest.mark.parametrize("mirror", ["trickle"], indirect=True)
def test_a_trickling_mirror_hits_the_overall_deadline(mirror, tmp_path):
    began = time.monotonic()
    with pytest.raises(FetchError, match=r"deadline of 2 s"):
        download(mirror.url(), tmp_path / "f.part", timeout=5, deadline=2)
    took = time.monotonic() - began
    assert 1.9 < took < 4, took  # each read gets a byte well within `timeout`


@pytest.mark.parametrize("mirror", ["trickle"], indirect=True)
def test_the_deadline_default_is_read_when_called(mirror, tmp_path, monkeypatch):
    monkeypatch.setattr(fetch, "DEADLINE_S", 1.0)
    began = time.monotonic()
    with pytest.raises(FetchError, match="deadline"):
        download(mirror.url(), tmp_path / "f.part")
    assert time.monotonic() - began < 3


@pytest.mark.parametrize("mirror", ["silent"], indirect=True)
def test_a_silent_mirror_is_reported_within_the_timeout(mirror, tmp_path):
    began = time.monotonic()
    with pytest.raises(FetchError, match=r"no data from the server for 0.5 s") as info:
        download(mirror.url(), tmp_path / "f.part", timeout=0.5, deadline=60)
    took = time.monotonic() - began
    assert took < 1.5, took
    assert len(mirror.requests) == 1
    assert "127.0.0.1" in str(info.value)


@pytest.mark.parametrize("mirror", ["401"], indirect=True)
def test_a_401_is_not_retried_and_the_token_never_shows(mirror, tmp_path, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    with pytest.raises(FetchError) as info:
        download(mirror.url(credentials=f"reader:{SECRET}@"), tmp_path / "f.part")
    text = str(info.value) + repr(info.value) + str(info.value.url)
    assert len(mirror.requests) == 1
    assert "401" in text and "credentials" in text
    assert SECRET not in text and "reader" not in text and "***@127.0.0.1" in text
    cause = info.value.__cause__ or info.value.__context__
    assert cause is None or SECRET not in repr(cause)
    out = capsys.readouterr()
    assert SECRET not in caplog.text + out.out + out.err
    # the credentials went to the server as HTTP Basic auth, not as part of the host
    sent = base64.b64decode(mirror.requests[0][1].split()[1]).decode()
    assert sent == f"reader:{SECRET}"


@pytest.mark.parametrize("mirror", ["401"], indirect=True)
def test_a_mirror_with_credentials_refused_through_fetch_files(mirror, tmp_path, capsys):
    with pytest.raises(FetchError) as info:
        fetch_files("cobe2", tmp_path, mirror=mirror.url("/", credentials=f"u:{SECRET}@"))
    out = capsys.readouterr()
    assert SECRET not in str(info.value) + out.out + out.err
    assert len(mirror.requests) == 1


@pytest.mark.parametrize("mirror", ["500"], indirect=True)
def test_server_errors_are_retried_and_still_hide_the_token(mirror, tmp_path):
    with pytest.raises(FetchError, match="after 3 attempts") as info:
        download(mirror.url(credentials=f"u:{SECRET}@"), tmp_path / "f.part", retries=3)
    assert len(mirror.requests) == 3
    assert SECRET not in str(info.value)


def test_the_cli_error_line_hides_the_token(tmp_path, capsys):
    from flows.cli import main

    server = Mirror("401")
    try:
        code = main(["ingest", "--source", "cobe2", "--store", str(tmp_path / "s.zarr"),
                     "--cache-dir", str(tmp_path / "c"),
                     "--mirror", server.url("/", credentials=f"u:{SECRET}@")])
    finally:
        server.close()
    err = capsys.readouterr().err
    assert code == 2 and "401" in err and SECRET not in err and err.count("\n") == 1
