"""ERSSTv5 (PSL's single file), HadISST (gzipped, sea ice -1000, -180..180) and any CF file
(a model run in Kelvin, CMIP6 tos in a noleap calendar), served by the test mirror in the
products' on-disk formats and ingested like every other source."""

from pathlib import Path

import netCDF4
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from flows.cli import main
from pipeline.data import fetch
from pipeline.data.cf_source import LayoutError
from pipeline.data.ingest import ingest
from pipeline.data.sources import get_source
from pipeline.data.store import open_store, validate_store
from pipeline.data.synthetic import HADISST_SEA_ICE, grid, sst_fields, write_layout


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    monkeypatch.setattr(fetch, "BACKOFF_S", 0.01)


def read_raw(path: Path, variable: str, lat: str = "lat") -> np.ndarray:
    """The file's values read independently with netCDF4: fill -> NaN, lat ascending."""
    with netCDF4.Dataset(path) as nc:
        raw = nc[variable][:].filled(np.nan).astype(np.float32)
        flip = nc[lat][0] > nc[lat][-1]
    return raw[:, ::-1] if flip else raw


def test_ersst_v5_psl_single_file_is_ingested_exactly(noaa_mirror, tmp_path):
    served = write_layout("ersst-v5-psl", noaa_mirror.root, "1990-01", "1991-12", resolution=8.0)
    assert served[0] == noaa_mirror.root / "Datasets/noaa.ersst.v5/sst.mnmean.nc"
    with netCDF4.Dataset(served[0]) as nc:  # the real product's encoding
        assert nc["sst"].dtype == np.float32
        assert nc["sst"].missing_value == np.float32(-9.96921e36)
        assert nc["time"].units == "days since 1800-1-1 00:00:00" and "time_bnds" in nc.variables
        assert nc["lat"][0] > nc["lat"][-1]
    result = ingest("ersst-v5-psl", tmp_path / "s.zarr", mirror=noaa_mirror.url,
                    cache_dir=tmp_path / "c")
    assert (result.added, result.first, result.last) == (24, "1990-01-01", "1991-12-01")
    ds = open_store(tmp_path / "s.zarr")
    np.testing.assert_array_equal(ds["sst"].values, read_raw(served[0], "sst"))
    assert float(ds.lon[0]) == 0.0 and float(ds.lat[0]) < float(ds.lat[-1])
    validate_store(tmp_path / "s.zarr", full=True)


def test_hadisst_is_unpacked_sea_ice_becomes_freezing_and_lon_is_0_360(noaa_mirror, tmp_path):
    served = write_layout("hadisst", noaa_mirror.root, "2000-01", "2001-12", resolution=6.0)[0]
    assert served.name == "HadISST_sst.nc.gz"
    kwargs = {"mirror": noaa_mirror.url, "cache_dir": tmp_path / "c"}
    result = ingest("hadisst", tmp_path / "s.zarr", **kwargs)
    assert (result.added, result.first) == (24, "2000-01-01")
    ds = open_store(tmp_path / "s.zarr")
    cached = sorted(p.name for p in (tmp_path / "c/hadobs/hadisst/data").iterdir())
    assert cached == ["HadISST_sst.nc", "HadISST_sst.nc.ok"]  # unpacked, no .gz or .part
    raw = read_raw(tmp_path / "c/hadobs/hadisst/data/HadISST_sst.nc", "sst", "latitude")
    ice = raw == HADISST_SEA_ICE
    assert ice.any()
    # longitude -180..180 -> 0..360: the file's column for -177 is the store's 183.
    lon = xr.open_dataset(tmp_path / "c/hadobs/hadisst/data/HadISST_sst.nc")["longitude"].values
    order = np.argsort(np.mod(lon, 360))
    expected = np.where(ice, -1.8, raw)[:, :, order]
    np.testing.assert_allclose(ds["sst"].values, expected, rtol=0, atol=1e-6)
    assert ds["sst"].values[ice[:, :, order]].max() == np.float32(-1.8)
    assert float(ds.lon[0]) == 3.0 and float(ds.lat[0]) == -87.0
    validate_store(tmp_path / "s.zarr", full=True)
    again = ingest("hadisst", tmp_path / "s.zarr", **kwargs)
    assert again.added == 0 and len(noaa_mirror.gets("HadISST_sst.nc.gz")) == 1


def test_a_truncated_hadisst_archive_is_refused_naming_the_url(noaa_mirror, tmp_path):
    served = write_layout("hadisst", noaa_mirror.root, "2000-01", "2000-06", resolution=12.0)[0]
    served.write_bytes(served.read_bytes()[:-100])
    with pytest.raises(fetch.CorruptFileError, match="HadISST_sst.nc.gz: not a whole gzip"):
        ingest("hadisst", tmp_path / "s.zarr", mirror=noaa_mirror.url, cache_dir=tmp_path / "c")
    assert not (tmp_path / "s.zarr").exists()
    assert not list((tmp_path / "c").rglob("*.part"))


# --------------------------------------------------------------------- local CF files

LAT, LON = grid(10.0)


def field(times):
    return sst_fields(pd.DatetimeIndex(times), LAT, LON, seed=3)[0]


def write_cmip6_tos(path: Path, start="1990-01", end="1991-12") -> Path:
    """CMIP6 Omon tos on a regular (gr) grid: noleap calendar, mid-month times, 1e20 fill,
    bounds variables, degC."""
    import cftime

    months = pd.date_range(start, end, freq="MS")
    times = [cftime.DatetimeNoLeap(t.year, t.month, 15, 12) for t in months]
    values = field(months)
    ds = xr.Dataset(
        {
            "tos": (("time", "lat", "lon"), values, {
                "standard_name": "sea_surface_temperature",
                "long_name": "Sea Surface Temperature", "units": "degC",
                "cell_methods": "area: mean where sea time: mean",
                "cell_measures": "area: areacello"}),
            "time_bnds": (("time", "bnds"), np.array(
                [[cftime.DatetimeNoLeap(t.year, t.month, 1) for t in months],
                 [cftime.DatetimeNoLeap((t + pd.offsets.MonthBegin(1)).year,
                                        (t + pd.offsets.MonthBegin(1)).month, 1)
                  for t in months]]).T),
            "lat_bnds": (("lat", "bnds"), np.stack([LAT - 5, LAT + 5], axis=1)),
            "lon_bnds": (("lon", "bnds"), np.stack([LON - 5, LON + 5], axis=1)),
        },
        coords={
            "time": ("time", times, {"standard_name": "time", "axis": "T",
                                     "bounds": "time_bnds"}),
            "lat": ("lat", LAT, {"standard_name": "latitude", "units": "degrees_north",
                                 "axis": "Y", "bounds": "lat_bnds"}),
            "lon": ("lon", LON, {"standard_name": "longitude", "units": "degrees_east",
                                 "axis": "X", "bounds": "lon_bnds"}),
        },
        attrs={"Conventions": "CF-1.7 CMIP-6.2", "mip_era": "CMIP6", "table_id": "Omon",
               "variable_id": "tos", "grid_label": "gr", "frequency": "mon"},
    )
    encoding = {
        "tos": {"dtype": "float32", "_FillValue": np.float32(1e20),
                "missing_value": np.float32(1e20), "zlib": True},
        "time": {"units": "days since 1850-01-01", "calendar": "noleap", "dtype": "float64"},
        "time_bnds": {"units": "days since 1850-01-01", "calendar": "noleap"},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.to_netcdf(path, encoding=encoding, format="NETCDF4")
    return path


def write_model_run(path: Path, *, kelvin_names=("SST_K",), curvilinear=False) -> Path:
    """A model's own output: SST in Kelvin under any name, int16 packed, dims named
    (t, latitude, longitude), an unrelated variable beside it; or a curvilinear grid."""
    months = pd.date_range("1990-01", "1990-12", freq="MS")
    values = field(months) + 273.15
    data = {
        name: (("t", "latitude", "longitude"), values, {
            "standard_name": "sea_surface_temperature", "units": "K"})
        for name in kelvin_names
    }
    data["sic"] = (("t", "latitude", "longitude"), np.zeros_like(values),
                   {"standard_name": "sea_ice_area_fraction", "units": "1"})
    coords = {
        "t": ("t", months, {"standard_name": "time"}),
        "latitude": ("latitude", LAT, {"units": "degrees_north"}),
        "longitude": ("longitude", LON, {"units": "degrees_east"}),
    }
    if curvilinear:
        lon2, lat2 = np.meshgrid(LON, LAT)
        data = {"tos": (("t", "j", "i"), values, {"standard_name": "sea_surface_temperature",
                                                  "units": "K"})}
        coords = {"t": coords["t"],
                  "lat": (("j", "i"), lat2, {"standard_name": "latitude",
                                             "units": "degrees_north"}),
                  "lon": (("j", "i"), lon2, {"standard_name": "longitude",
                                             "units": "degrees_east"})}
    ds = xr.Dataset(data, coords=coords, attrs={"Conventions": "CF-1.8"})
    encoding = {name: {"dtype": "int16", "scale_factor": 0.01, "add_offset": 273.15,
                       "_FillValue": np.int16(-32767)} for name in data}
    encoding["t"] = {"units": "hours since 1990-01-01", "calendar": "standard"}
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.to_netcdf(path, encoding=encoding, format="NETCDF4")
    return path


def test_cmip6_tos_over_http_is_found_by_its_cf_attributes(noaa_mirror, tmp_path):
    served = write_cmip6_tos(noaa_mirror.root / "cmip6/tos_Omon_MODEL_historical_gr.nc")
    url = f"{noaa_mirror.url}/cmip6/{served.name}"
    result = ingest("local-cf", tmp_path / "s.zarr", file=url, cache_dir=tmp_path / "c")
    assert (result.added, result.first, result.last) == (24, "1990-01-01", "1991-12-01")
    ds = open_store(tmp_path / "s.zarr")
    np.testing.assert_array_equal(ds["sst"].values, read_raw(served, "tos"))
    assert url in ds.attrs["sstcast_urls"] and "tos_Omon" in ds.attrs["sstcast_source"]
    validate_store(tmp_path / "s.zarr", full=True)
    again = ingest("local-cf", tmp_path / "s.zarr", file=url, cache_dir=tmp_path / "c")
    assert again.added == 0 and len(noaa_mirror.gets(served.name)) == 1


def test_a_model_run_in_kelvin_is_converted_and_its_names_found(tmp_path, capsys):
    run = write_model_run(tmp_path / "run" / "ocean_month.nc")
    code = main(["ingest", "--source", "local-cf", "--file", str(run), "--store",
                 str(tmp_path / "s.zarr"), "--cache-dir", str(tmp_path / "c")])
    assert code == 0, capsys.readouterr().err
    ds = open_store(tmp_path / "s.zarr")
    with netCDF4.Dataset(run) as nc:
        kelvin = nc["SST_K"][:].filled(np.nan)
    np.testing.assert_allclose(ds["sst"].values, kelvin - 273.15, atol=1e-4)
    assert ds.sizes["time"] == 12 and ds.attrs["sstcast_time_step"] == "MS"


def test_a_curvilinear_grid_is_refused_naming_the_argument(tmp_path):
    run = write_model_run(tmp_path / "tos_gn.nc", curvilinear=True)
    with pytest.raises(LayoutError, match=r"^file: expected a regular lat/lon grid .* 2-D "
                       r"latitude 'lat' on dims \('j', 'i'\).*curvilinear"):
        ingest("local-cf", tmp_path / "s.zarr", file=run, cache_dir=tmp_path / "c")
    assert not (tmp_path / "s.zarr").exists()


def test_several_sst_variables_need_the_variable_argument(tmp_path):
    run = write_model_run(tmp_path / "two.nc", kelvin_names=("sst_a", "sst_b"))
    with pytest.raises(LayoutError, match=r"^variable: .* several SST variables \['sst_a', "
                       r"'sst_b'\]"):
        ingest("local-cf", tmp_path / "s.zarr", file=run, cache_dir=tmp_path / "c")
    result = ingest("local-cf", tmp_path / "s.zarr", file=run, variable="sst_b",
                    cache_dir=tmp_path / "c")
    assert result.added == 12


@pytest.mark.parametrize(
    "kwargs, message",
    [({"file": None}, r"^file: the local-cf source reads one CF netCDF file"),
     ({"file": "/no/such/file.nc"}, r"^file: expected an existing netCDF file"),
     ({"file": "s3://bucket/x.nc"}, r"^file: expected a path or an http"),
     ({"file": "x.nc", "source": "cobe2"}, r"^file/variable: only the local-cf source")],
)
def test_local_cf_arguments_are_checked_at_the_boundary(tmp_path, kwargs, message):
    source = kwargs.pop("source", "local-cf")
    with pytest.raises(ValueError, match=message):
        get_source(source, **kwargs)
