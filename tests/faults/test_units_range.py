"""Fault injection: impossible SST values and units must never reach the store.

Files are written in COBE-SST2's real on-disk layout (netCDF4, by the writer the synthetic
source uses) and then edited in place with netCDF4 the way a bad upstream file would be:
Kelvin under the CF spellings, units missing, an inf cell, 5000 °C. Each refusal happens
before anything is written, so a store keeps what it had (or is never created)."""

from __future__ import annotations

import netCDF4
import numpy as np
import pytest
import zarr

from flows.cli import main
from pipeline.data.ingest import files_to_store
from pipeline.data.preprocess import UnitsError, ValueRangeError, sst_units
from pipeline.data.store import StoreError, open_store, validate_store
from pipeline.data.synthetic import write_cobe2, write_ersst

RES = 10.0  # an 18 x 36 grid keeps every file tiny


def cobe2(path, start="2000-01", end="2001-12", *, units="degC", edit=None):
    """A COBE-SST2 layout file; `units` None deletes the attribute, "K"-like spellings
    store the values in Kelvin; `edit(sst_variable)` changes values in place."""
    write_cobe2(path, start, end, resolution=RES)
    with netCDF4.Dataset(path, "a") as nc:
        var = nc["sst"]
        if units is None:
            var.delncattr("units")
        else:
            var.units = units
            if sst_units(units) == "K":
                var[:] = var[:] + 273.15
        if edit is not None:
            edit(var)
    return path


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The store values of the unedited (degC) file: what every accepted variant must give."""
    root = tmp_path_factory.mktemp("reference")
    files_to_store([cobe2(root / "sst.mon.mean.nc")], "cobe2", root / "s.zarr")
    return open_store(root / "s.zarr")["sst"].values


@pytest.mark.parametrize("units", ["degrees_K", "kelvins", "degK", "K", "deg_K", "degree_K"])
def test_kelvin_in_any_cf_spelling_is_converted(units, reference, tmp_path):
    files_to_store([cobe2(tmp_path / "sst.mon.mean.nc", units=units)], "cobe2", tmp_path / "s")
    np.testing.assert_allclose(open_store(tmp_path / "s")["sst"].values, reference, atol=1e-4)


@pytest.mark.parametrize("units", ["degree_C", "degrees_C", "Celsius", "degree_Celsius", "°C"])
def test_celsius_spellings_are_taken_as_they_are(units, reference, tmp_path):
    files_to_store([cobe2(tmp_path / "sst.mon.mean.nc", units=units)], "cobe2", tmp_path / "s")
    np.testing.assert_array_equal(open_store(tmp_path / "s")["sst"].values, reference)


def test_missing_units_are_refused_and_nothing_is_written(tmp_path):
    path = cobe2(tmp_path / "sst.mon.mean.nc", units=None)
    with pytest.raises(UnitsError, match=r"units: the variable 'sst' of .*sst.mon.mean.nc has "
                       r"no units attribute; expected the units named"):
        files_to_store([path], "cobe2", tmp_path / "s.zarr")
    assert not (tmp_path / "s.zarr").exists()


def test_missing_units_named_by_the_user_are_accepted(reference, tmp_path):
    path = cobe2(tmp_path / "sst.mon.mean.nc", units=None)
    files_to_store([path], "cobe2", tmp_path / "s.zarr", units="degC")
    np.testing.assert_array_equal(open_store(tmp_path / "s.zarr")["sst"].values, reference)


def test_cli_refuses_missing_units_and_takes_units_option(reference, tmp_path, capsys):
    """`sstcast ingest` from a folder mirror: refused (exit 2, one line) without --units,
    stored with `--units degC`."""
    mirror = tmp_path / "mirror"
    cobe2(mirror / "Datasets/COBE2/sst.mon.mean.nc", units=None)
    args = ["ingest", "--source", "cobe2", "--mirror", str(mirror), "--store",
            str(tmp_path / "s.zarr"), "--cache-dir", str(tmp_path / "cache")]
    assert main(args) == 2
    assert "has no units attribute" in capsys.readouterr().err
    assert not (tmp_path / "s.zarr").exists()
    assert main([*args, "--units", "degC"]) == 0
    np.testing.assert_array_equal(open_store(tmp_path / "s.zarr")["sst"].values, reference)


def test_named_units_that_contradict_the_file_are_refused(tmp_path):
    path = cobe2(tmp_path / "sst.mon.mean.nc", units="degrees_K")
    with pytest.raises(UnitsError, match=r"units: expected units matching the units attribute "
                       r"'degrees_K' of the variable 'sst' of .*, got 'degC'"):
        files_to_store([path], "cobe2", tmp_path / "s.zarr", units="degC")
    with pytest.raises(UnitsError, match="units: expected Kelvin or Celsius.*got 'degF'"):
        files_to_store([path], "cobe2", tmp_path / "s.zarr", units="degF")
    assert not (tmp_path / "s.zarr").exists()


def _ocean_cell(var):
    """(lat, lon) index of an ocean cell (a value at the first step)."""
    first = np.ma.getmaskarray(var[0])
    return tuple(int(i) for i in np.argwhere(~first)[0])


def test_inf_cell_is_refused_naming_file_time_count_and_the_store_keeps_its_steps(tmp_path):
    path = tmp_path / "sst.mon.mean.nc"
    files_to_store([cobe2(path, end="2001-12")], "cobe2", tmp_path / "s.zarr")
    before = open_store(tmp_path / "s.zarr")["sst"].values

    def inf(var):  # the updated file holds 2002 too, with one infinite ocean cell in June
        var[29, *_ocean_cell(var)] = np.inf

    cobe2(path, end="2002-12", edit=inf)
    with pytest.raises(ValueRangeError, match=r"files: expected finite ocean SST within "
                       r"-3..45 °C, got 1 ocean cell\(s\) outside it at 2002-06-01 in "
                       r".*sst.mon.mean.nc"):
        files_to_store([path], "cobe2", tmp_path / "s.zarr")
    after = open_store(tmp_path / "s.zarr")["sst"].values
    np.testing.assert_array_equal(after, before)  # 24 steps, unchanged


def test_inf_at_the_first_step_is_not_taken_for_land(tmp_path):
    def inf(var):
        var[0, *_ocean_cell(var)] = -np.inf

    path = cobe2(tmp_path / "sst.mon.mean.nc", edit=inf)
    with pytest.raises(ValueRangeError, match=r"got 1 ocean cell\(s\) outside it at 2000-01-01"):
        files_to_store([path], "cobe2", tmp_path / "s.zarr")
    assert not (tmp_path / "s.zarr").exists()


def test_5000_degrees_is_refused_with_the_count(tmp_path):
    def hot(var):
        cell = _ocean_cell(var)
        var[3, cell[0], cell[1]] = 5000.0
        var[3, cell[0], cell[1] + 1] = 5000.0  # the next cell east: ocean in the synthetic map

    path = cobe2(tmp_path / "sst.mon.mean.nc", edit=hot)
    with pytest.raises(ValueRangeError, match=r"got 2 ocean cell\(s\) outside it at 2000-04-01 .*"
                       r"to 5000 °C; 1 of 24 steps affected"):
        files_to_store([path], "cobe2", tmp_path / "s.zarr")
    assert not (tmp_path / "s.zarr").exists()


def test_per_month_files_name_the_bad_file(tmp_path):
    """ERSSTv5 layout (one file per month): the error names the month's file."""
    files = write_ersst(tmp_path, "2000-01", "2000-06", resolution=RES)
    with netCDF4.Dataset(files[3], "a") as nc:
        var = nc["sst"]
        ocean = np.argwhere(~np.ma.getmaskarray(var[0, 0]))[0]
        var[0, 0, ocean[0], ocean[1]] = 5000.0
    with pytest.raises(ValueRangeError, match=r"got 1 ocean cell\(s\) outside it at 2000-04-01 "
                       r"in .*ersst\.v5\.200004\.nc \(from 5000 to 5000 °C; 1 of 6 steps"):
        files_to_store(files, "ersst-v5", tmp_path / "s.zarr")
    assert not (tmp_path / "s.zarr").exists()


def test_kelvin_named_as_celsius_is_caught_by_the_range(tmp_path):
    """A file in Kelvin without units, declared degC by mistake: ~300 °C everywhere."""
    def kelvin(var):
        var[:] = var[:] + 273.15

    path = cobe2(tmp_path / "sst.mon.mean.nc", units=None, edit=kelvin)
    with pytest.raises(ValueRangeError, match="24 of 24 steps affected"):
        files_to_store([path], "cobe2", tmp_path / "s.zarr", units="degC")
    assert not (tmp_path / "s.zarr").exists()


@pytest.mark.parametrize("value", [np.inf, 5000.0, 300.15])
def test_info_full_flags_impossible_values_already_in_a_store(value, tmp_path, capsys):
    """A store edited behind sstcast's back: `info` (metadata) passes, `info --full` names
    the step and the count, and exits 2."""
    store = tmp_path / "s.zarr"
    files_to_store([cobe2(tmp_path / "sst.mon.mean.nc")], "cobe2", store)
    ocean = np.argwhere(open_store(store)["mask"].values)[0]
    zarr.open_group(str(store), mode="r+")["sst"][5, ocean[0], ocean[1]] = value
    validate_store(store)
    with pytest.raises(StoreError, match=r"got 1 ocean cell\(s\) outside it at 2000-06-01"):
        validate_store(store, full=True)
    assert main(["info", "--store", str(store)]) == 0
    assert main(["info", "--store", str(store), "--full"]) == 2
    assert "cell(s) outside it at 2000-06-01" in capsys.readouterr().err
