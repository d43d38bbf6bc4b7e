"""The zarr store: schema, idempotent appends, validation, and the commit protocol."""

import errno

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import zarr

from pipeline.data.store import (
    COMMITTED,
    StoreError,
    StoreWriteError,
    describe,
    open_store,
    validate_store,
    write_store,
)
from pipeline.data.synthetic import synthetic_dataset


@pytest.fixture(scope="module")
def decade():
    return synthetic_dataset("1990-01", "1999-12", resolution=6.0, seed=5)


def test_new_store_round_trips_the_dataset(tmp_path, decade):
    result = write_store(decade, tmp_path / "s.zarr")
    ds = open_store(tmp_path / "s.zarr")
    assert result.added == 120 and result.total == 120
    np.testing.assert_array_equal(ds["sst"].values, decade["sst"].values)
    np.testing.assert_array_equal(ds["mask"].values, decade["mask"].values)
    assert ds["sst"].attrs["units"] == "degC"
    assert ds.attrs["sstcast_time_step"] == "MS"
    assert zarr.open_group(str(tmp_path / "s.zarr")).metadata.zarr_format == 3


def test_store_opens_lazily_with_chunks_for_location_blocks(tmp_path, decade):
    write_store(decade, tmp_path / "s.zarr")
    sst = open_store(tmp_path / "s.zarr")["sst"]
    assert sst.chunks is not None  # dask-backed
    assert sst.encoding["chunks"][0] == 120


def test_append_adds_only_new_steps_and_rerun_adds_nothing(tmp_path, decade):
    url = tmp_path / "s.zarr"
    write_store(decade.sel(time=slice("1990", "1994")), url)
    grown = write_store(decade.sel(time=slice("1993", "1999")), url)
    again = write_store(decade, url)
    ds = open_store(url)
    assert (grown.added, grown.total) == (60, 120)
    assert (again.added, again.total) == (0, 120)
    assert pd.DatetimeIndex(ds.time).is_unique
    np.testing.assert_array_equal(ds["sst"].values, decade["sst"].values)


def test_append_with_a_gap_is_refused_and_store_unchanged(tmp_path, decade):
    url = tmp_path / "s.zarr"
    write_store(decade.sel(time=slice("1990", "1991")), url)
    with pytest.raises(StoreError, match="1992-01-01"):
        write_store(decade.sel(time=slice("1993", "1994")), url)
    assert open_store(url).sizes["time"] == 24


def test_append_on_another_grid_is_refused(tmp_path, decade):
    url = tmp_path / "s.zarr"
    write_store(decade.sel(time=slice("1990", "1991")), url)
    other = synthetic_dataset("1992-01", "1992-06", resolution=4.0, seed=5)
    with pytest.raises(StoreError, match="grid"):
        write_store(other, url)


def test_non_canonical_input_is_rejected_naming_the_problem(tmp_path, decade):
    flipped = decade.isel(lat=slice(None, None, -1))
    with pytest.raises(StoreError, match="lat: expected ascending"):
        write_store(flipped, tmp_path / "s.zarr")
    with pytest.raises(StoreError, match="float32"):
        write_store(decade.assign(sst=decade.sst.astype("float64")), tmp_path / "s.zarr")


def test_finite_values_over_land_fail_validation(tmp_path, decade):
    bad = decade.copy(deep=True)
    bad["sst"].values[3, ~bad["mask"].values] = 10.0
    with pytest.raises(StoreError, match="over land"):
        write_store(bad, tmp_path / "s.zarr")
    assert open_store(tmp_path / "s.zarr").sizes["time"] == 0  # it committed nothing
    write_store(decade, tmp_path / "s.zarr")  # and the next run starts afresh
    assert open_store(tmp_path / "s.zarr").sizes["time"] == 120


def test_uncommitted_tail_is_invisible_and_overwritten_by_next_append(tmp_path, decade):
    url = tmp_path / "s.zarr"
    write_store(decade.sel(time=slice("1990", "1994")), url)
    # Simulate a crash after step 2 of the protocol: arrays grown, garbage in the tail.
    group = zarr.open_group(str(url), mode="r+")
    for name in ("time", "sst"):
        group[name].resize((90, *group[name].shape[1:]))
    group["sst"][60:90] = 99.0
    group["time"][60:90] = 0
    assert open_store(url).sizes["time"] == 60
    # Plain readers use the consolidated metadata of the last commit: committed steps only.
    assert xr.open_zarr(url).sizes["time"] == 60
    validate_store(url, full=True)
    write_store(decade, url)
    np.testing.assert_array_equal(open_store(url)["sst"].values, decade["sst"].values)
    assert zarr.open_group(str(url), use_consolidated=False)["sst"].shape[0] == 120
    assert xr.open_zarr(url).sizes["time"] == 120


def test_preliminary_steps_are_replaced_by_final_ones(tmp_path, decade):
    url = tmp_path / "s.zarr"
    provisional = decade.sel(time=slice("1990", "1991")).copy(deep=True)
    provisional["sst"][-3:] += 0.5
    write_store(provisional, url, preliminary_from="1991-10-01")
    final = decade.sel(time=slice("1990", "1992"))
    result = write_store(final, url)
    ds = open_store(url)
    assert (result.replaced, result.added) == (3, 12)
    np.testing.assert_array_equal(ds["sst"].values, final["sst"].values)
    assert ds.attrs.get("sstcast_preliminary_from") is None  # None attrs are left out


def test_disk_full_is_reported_clearly_and_store_keeps_its_state(tmp_path, decade, monkeypatch):
    url = tmp_path / "s.zarr"
    write_store(decade.sel(time=slice("1990", "1991")), url)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(zarr.storage.LocalStore, "set", full)
    with pytest.raises(StoreWriteError, match="disk full.*24 time steps"):
        write_store(decade, url)
    monkeypatch.undo()
    assert open_store(url).sizes["time"] == 24
    assert zarr.open_group(str(url)).attrs[COMMITTED] == 24


def test_describe_summarises_span_grid_and_provenance(tmp_path, decade):
    write_store(decade, tmp_path / "s.zarr", provenance={"sstcast_source": "synthetic"})
    text = describe(tmp_path / "s.zarr")
    assert "120 steps at MS: 1990-01-01 .. 1999-12-01" in text
    assert "30 lat x 60 lon" in text and "synthetic" in text


def test_missing_store_and_foreign_store_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no zarr store"):
        open_store(tmp_path / "absent.zarr")
    other = xr.Dataset({"x": ("a", [1, 2])})
    other.to_zarr(tmp_path / "other.zarr", zarr_format=3, consolidated=False)
    with pytest.raises(StoreError, match="not an sstcast"):
        open_store(tmp_path / "other.zarr")


def test_plain_canonical_zarr_from_other_tools_is_readable_but_not_appended(tmp_path, decade):
    plain = decade.drop_vars("mask")
    plain.to_zarr(tmp_path / "plain.zarr", zarr_format=2, consolidated=False)
    ds = open_store(tmp_path / "plain.zarr")
    assert ds.sizes["time"] == 120
    np.testing.assert_array_equal(ds["mask"].values, decade["mask"].values)
    with pytest.raises(StoreError, match="not an sstcast store"):
        write_store(decade, tmp_path / "plain.zarr")


def test_stores_work_on_fsspec_urls(decade):
    url = "memory://sstcast-test/s.zarr"
    write_store(decade.sel(time=slice("1990", "1990")), url, time_step="MS")
    write_store(decade.sel(time=slice("1990", "1991")), url)
    assert open_store(url).sizes["time"] == 24


@pytest.mark.parametrize(
    "code, words", [(errno.EACCES, "permission denied"), (errno.EROFS, "read-only")]
)
def test_permission_errors_are_reported_clearly(tmp_path, decade, monkeypatch, code, words):
    url = tmp_path / "s.zarr"
    write_store(decade.sel(time=slice("1990", "1991")), url)

    def refuse(*args, **kwargs):
        raise PermissionError(code, "refused")

    monkeypatch.setattr(zarr.storage.LocalStore, "set", refuse)
    with pytest.raises(StoreWriteError, match=f"{words}.*24 time steps"):
        write_store(decade, url)


def test_first_write_killed_after_the_skeleton_leaves_an_empty_valid_store(tmp_path, decade):
    url = tmp_path / "s.zarr"
    write_store(decade.sel(time=slice("1990", "1991")), url)
    zarr.open_group(str(url), mode="r+").attrs[COMMITTED] = 0  # as if killed before commit
    validate_store(url, full=True)
    assert open_store(url).sizes["time"] == 0
    assert "0 steps" in describe(url) and "empty" in describe(url)
    write_store(decade, url)
    assert open_store(url).sizes["time"] == 120
