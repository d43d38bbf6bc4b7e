"""Fetching NOAA layouts from a real HTTP server on 127.0.0.1, with faults injected."""

import os

import pytest

from pipeline.data import fetch
from pipeline.data.fetch import CorruptFileError, FetchError, NotFoundError, fetch_files
from pipeline.data.sources import get_source, mirror_base
from pipeline.data.synthetic import write_layout

COBE = "Datasets/COBE2/sst.mon.mean.nc"
OISST = "data/sea-surface-temperature-optimum-interpolation/v2.1/access/avhrr"


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    monkeypatch.setattr(fetch, "BACKOFF_S", 0.01)


def cobe2_on(mirror, end="1991-12"):
    return write_layout("cobe2", mirror.root, "1990-01", end, resolution=10.0)[0]


def test_cobe2_is_fetched_whole_and_checked(noaa_mirror, tmp_path):
    served = cobe2_on(noaa_mirror)
    [path] = fetch_files("cobe2", tmp_path / "cache", mirror=noaa_mirror.url)
    assert path == tmp_path / "cache" / COBE
    assert path.read_bytes() == served.read_bytes()
    assert not path.with_name(path.name + ".part").exists()


def test_a_valid_file_is_not_fetched_again(noaa_mirror, tmp_path):
    cobe2_on(noaa_mirror)
    fetch_files("cobe2", tmp_path / "cache", mirror=noaa_mirror.url)
    fetch_files("cobe2", tmp_path / "cache", mirror=noaa_mirror.url)
    assert len(noaa_mirror.gets(COBE)) == 1  # the second run only asked HEAD


def test_a_file_updated_upstream_is_fetched_again(noaa_mirror, tmp_path):
    cobe2_on(noaa_mirror)
    [path] = fetch_files("cobe2", tmp_path / "cache", mirror=noaa_mirror.url)
    grown = cobe2_on(noaa_mirror, end="1992-06")
    os.utime(grown, (grown.stat().st_atime, grown.stat().st_mtime + 10))
    fetch_files("cobe2", tmp_path / "cache", mirror=noaa_mirror.url)
    assert path.read_bytes() == grown.read_bytes()


def test_dropped_connection_resumes_with_a_range_request(noaa_mirror, tmp_path):
    served = cobe2_on(noaa_mirror)
    noaa_mirror.drop[COBE] = served.stat().st_size // 2
    [path] = fetch_files("cobe2", tmp_path / "cache", mirror=noaa_mirror.url)
    gets = noaa_mirror.gets(COBE)
    assert len(gets) == 2 and gets[1][2] == f"bytes={served.stat().st_size // 2}-"
    assert path.read_bytes() == served.read_bytes()


def test_stale_partial_file_is_not_resumed_when_upstream_changed(noaa_mirror, tmp_path):
    served = cobe2_on(noaa_mirror)
    part = tmp_path / "cache" / (COBE + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(b"bytes of an older version")
    part.with_name(part.name + ".validator").write_text("Mon, 01 Jan 2001 00:00:00 GMT")
    [path] = fetch_files("cobe2", tmp_path / "cache", mirror=noaa_mirror.url)
    assert path.read_bytes() == served.read_bytes()


@pytest.mark.parametrize("workers", [1, 3])
def test_downloads_run_with_bounded_concurrency(noaa_mirror, tmp_path, workers):
    noaa_mirror.delay = 0.1
    write_layout("oisst-v2.1-daily", noaa_mirror.root, "2024-01-01", "2024-01-08", resolution=10.0)
    paths = fetch_files(
        "oisst-v2.1-daily",
        tmp_path / "c",
        start="2024-01-01",
        end="2024-01-08",
        mirror=noaa_mirror.url,
        workers=workers,
    )
    assert len(paths) == 8
    assert noaa_mirror.max_active == workers


def test_server_errors_are_retried(noaa_mirror, tmp_path):
    served = cobe2_on(noaa_mirror)
    noaa_mirror.fail[COBE] = [500, 503]
    [path] = fetch_files("cobe2", tmp_path / "cache", mirror=noaa_mirror.url)
    assert path.read_bytes() == served.read_bytes()


def test_persistent_server_errors_give_up_naming_the_url(noaa_mirror, tmp_path):
    cobe2_on(noaa_mirror)
    noaa_mirror.fail[COBE] = [500] * 10
    with pytest.raises(FetchError, match=f"{noaa_mirror.url}/{COBE} failed after 5 attempts"):
        fetch_files("cobe2", tmp_path / "cache", mirror=noaa_mirror.url)


def test_missing_file_is_a_404_naming_the_url(noaa_mirror, tmp_path):
    with pytest.raises(NotFoundError, match=f"404.*{noaa_mirror.url}/{COBE}"):
        fetch_files("cobe2", tmp_path / "cache", mirror=noaa_mirror.url)


def test_corrupt_file_is_rejected_and_not_kept(noaa_mirror, tmp_path):
    served = cobe2_on(noaa_mirror)
    served.write_bytes(served.read_bytes()[: served.stat().st_size // 3])  # truncated upstream
    with pytest.raises(CorruptFileError, match=f"{noaa_mirror.url}/{COBE}"):
        fetch_files("cobe2", tmp_path / "cache", mirror=noaa_mirror.url)
    assert not (tmp_path / "cache" / COBE).exists()
    assert not list((tmp_path / "cache").rglob("*.part"))


def test_wrong_variable_is_rejected(noaa_mirror, tmp_path):
    served = write_layout("ersst-v5", noaa_mirror.root, "2000-01", "2000-01", resolution=10.0)
    target = noaa_mirror.root / COBE
    target.parent.mkdir(parents=True)
    served[0].rename(target)
    with pytest.raises(CorruptFileError, match=r"dims \('time', 'lat', 'lon'\)"):
        fetch_files("cobe2", tmp_path / "cache", mirror=noaa_mirror.url)


def test_oisst_daily_falls_back_to_preliminary_then_takes_the_final_file(noaa_mirror, tmp_path):
    cache = tmp_path / "cache"
    write_layout(
        "oisst-v2.1-daily",
        noaa_mirror.root,
        "2024-01-28",
        "2024-02-03",
        resolution=10.0,
        preliminary_from="2024-02-02",
    )
    kwargs = {"start": "2024-01-28", "end": "2024-02-10", "mirror": noaa_mirror.url}
    first = fetch_files("oisst-v2.1-daily", cache, **kwargs)
    names = [p.name for p in first]
    assert len(first) == 7  # 2024-02-04 onwards: not published yet, left out
    assert names[-2:] == [
        "oisst-avhrr-v02r01.20240202_preliminary.nc",
        "oisst-avhrr-v02r01.20240203_preliminary.nc",
    ]
    # NCEI publishes the final files; the next fetch replaces the preliminary ones.
    write_layout("oisst-v2.1-daily", noaa_mirror.root, "2024-02-02", "2024-02-04", resolution=10.0)
    second = fetch_files("oisst-v2.1-daily", cache, **kwargs)
    assert [p.name for p in second][-3:] == [f"oisst-avhrr-v02r01.2024020{d}.nc" for d in (2, 3, 4)]
    assert not list(cache.rglob("*_preliminary.nc"))
    assert len(noaa_mirror.gets("20240128.nc")) == 1  # final files are never fetched twice


def test_a_gap_in_daily_files_is_a_404_naming_the_day(noaa_mirror, tmp_path):
    paths = write_layout(
        "oisst-v2.1-daily", noaa_mirror.root, "2024-01-01", "2024-01-05", resolution=10.0
    )
    paths[2].unlink()
    with pytest.raises(NotFoundError, match=f"{OISST}/202401/oisst-avhrr-v02r01.20240103.nc"):
        fetch_files(
            "oisst-v2.1-daily",
            tmp_path / "c",
            start="2024-01-01",
            end="2024-01-05",
            mirror=noaa_mirror.url,
        )


def test_folder_and_file_url_mirrors_keep_the_layout(noaa_mirror, tmp_path):
    served = cobe2_on(noaa_mirror)
    for mirror in (noaa_mirror.root, noaa_mirror.root.as_uri()):
        cache = tmp_path / f"cache{len(str(mirror))}"
        [path] = fetch_files("cobe2", cache, mirror=mirror)
        assert path.read_bytes() == served.read_bytes()


def test_source_urls_follow_noaa_layouts():
    daily = get_source("oisst-v2.1-daily")
    import pandas as pd

    url = daily.url(daily.relative_path(pd.Timestamp("2024-02-03"), preliminary=True))
    assert url == (
        "https://www.ncei.noaa.gov/data/sea-surface-temperature-optimum-interpolation"
        "/v2.1/access/avhrr/202402/oisst-avhrr-v02r01.20240203_preliminary.nc"
    )
    cobe = get_source("cobe2")
    assert cobe.url(cobe.relative_path()) == f"https://downloads.psl.noaa.gov/{COBE}"
    assert cobe.url(cobe.relative_path(), "http://127.0.0.1:8/m/") == f"http://127.0.0.1:8/m/{COBE}"
    with pytest.raises(ValueError, match="mirror"):
        mirror_base("ftp://example.org/x")
    with pytest.raises(ValueError, match="source"):
        get_source("hadsst3")  # not in the catalogue


def test_daily_source_needs_a_start_date(tmp_path):
    with pytest.raises(ValueError, match="start"):
        fetch_files("oisst-v2.1-daily", tmp_path)
