"""CF conventions and the tools of the ecosystem: the CF checker, cf_xarray, netCDF export
(atomic), consolidated metadata, and climpred's HindcastEnsemble."""

import warnings
from pathlib import Path

import netCDF4
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from flows.cli import main
from pipeline.climatology import TimeStep
from pipeline.data.store import FORECAST_FORMAT, open_store, write_store
from pipeline.data.synthetic import synthetic_dataset
from pipeline.forecast_store import ForecastWriter, open_forecast
from pipeline.products.export import export_netcdf, to_climpred

TABLES = Path(__file__).resolve().parents[1] / "data" / "cf"
STANDARD_NAMES = TABLES / "cf-standard-name-table.xml"


@pytest.fixture(scope="module")
def sst_store(tmp_path_factory):
    url = tmp_path_factory.mktemp("cf") / "s.zarr"
    write_store(synthetic_dataset("1990-01", "1993-12", resolution=10.0, seed=5), url)
    return url


def persistence_store(sst_store, out, inits=("1991-01-01", "1992-12-01")):
    """A forecast store written by ForecastWriter: every lead repeats the issue month."""
    obs = open_store(sst_store)
    inits = pd.date_range(*inits, freq="MS")
    writer = ForecastWriter(out, inits=inits, leads=[1, 2, 3], lat=obs.lat.values,
                            lon=obs.lon.values, step=TimeStep("months", 1),
                            attrs={"model": "persistence", "run": None, "flag": True})
    for i, t in enumerate(inits):
        writer.write(i, np.repeat(obs["sst"].sel(time=t).values[None], 3, axis=0))
    return out


@pytest.fixture(scope="module")
def forecast_store(sst_store):
    return persistence_store(sst_store, sst_store.parent / "f.zarr")


def cf_check(path: Path) -> dict:
    """The CF checker's counts for `path`, offline (the tables in tests/data/cf)."""
    try:
        from cfchecker.cfchecks import CFChecker
    except (ImportError, FileNotFoundError) as error:  # cfunits needs libudunits2
        pytest.skip(f"the CF checker is not usable here: {error}")
    checker = CFChecker(cfStandardNamesXML=str(STANDARD_NAMES),
                        cfAreaTypesXML=str(TABLES / "area-type-table.xml"),
                        cfRegionNamesXML=str(TABLES / "standardized-region-list.xml"),
                        version="1.8", silent=True)
    checker.checker(str(path))
    return checker.get_total_counts()


def clean(counts: dict) -> bool:
    return counts["FATAL"] == counts["ERROR"] == counts["WARN"] == 0


def test_the_sst_store_exports_to_netcdf_that_passes_the_cf_checker(sst_store, tmp_path):
    out = export_netcdf(sst_store, tmp_path / "sst.nc")
    counts = cf_check(out)
    assert clean(counts), counts
    with netCDF4.Dataset(out) as nc:
        assert nc.Conventions == "CF-1.8"
        assert nc["lat"].standard_name == "latitude" and nc["lat"].units == "degrees_north"
        assert nc["lon"].axis == "X" and nc["time"].axis == "T"
        assert "_FillValue" not in nc["lat"].ncattrs()
        assert nc["sst"].standard_name == "sea_surface_temperature"
        assert list(nc["mask"].flag_values) == [0, 1]
        assert "sstcast_committed_steps" not in nc.ncattrs()
    back = xr.open_dataset(out)
    np.testing.assert_array_equal(back["sst"].values, open_store(sst_store)["sst"].values)


def test_the_forecast_store_exports_to_netcdf_that_passes_the_cf_checker(forecast_store,
                                                                         tmp_path):
    for layout in ("cf", "climpred"):
        out = export_netcdf(forecast_store, tmp_path / f"{layout}.nc", layout=layout)
        counts = cf_check(out)
        assert clean(counts), (layout, counts)
    with netCDF4.Dataset(tmp_path / "cf.nc") as nc:
        assert nc["init_time"].standard_name == "forecast_reference_time"
        assert nc["lead"].standard_name == "forecast_period" and nc["lead"].units == "months"
        assert nc["valid_time"].standard_name == "time"
        assert nc["sst"].coordinates == "valid_time"


def test_open_store_goes_to_netcdf_directly(sst_store, tmp_path):
    """The reported failure: attributes holding None (sstcast_preliminary_from)."""
    open_store(sst_store).to_netcdf(tmp_path / "direct.nc")
    assert xr.open_dataset(tmp_path / "direct.nc").sizes["time"] == 48


def test_cf_xarray_finds_every_axis_of_both_stores(sst_store, forecast_store):
    pytest.importorskip("cf_xarray")
    ds = open_store(sst_store)
    assert ds.cf.axes == {"X": ["lon"], "Y": ["lat"], "T": ["time"]}
    assert ds.cf["latitude"].name == "lat" and ds.cf["longitude"].name == "lon"
    assert ds.cf["sea_surface_temperature"].name == "sst"
    fc = open_forecast(forecast_store)
    names = fc.cf.standard_names
    assert names["forecast_reference_time"] == ["init_time"]
    assert names["forecast_period"] == ["lead"] and names["time"] == ["valid_time"]
    assert fc.cf["latitude"].name == "lat"


def test_plain_xarray_opens_both_stores_without_a_warning(sst_store, forecast_store):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Failed to open Zarr store with consolidated metadata"
        assert xr.open_zarr(sst_store).sizes["time"] == 48
        assert xr.open_zarr(forecast_store).sizes["init_time"] == 24
        assert xr.open_zarr(sst_store)["lat"].attrs["standard_name"] == "latitude"


def test_stores_written_before_the_cf_attributes_are_annotated_when_read(tmp_path):
    """A forecast store as earlier versions wrote it: no Conventions, standard names or axes."""
    lat, lon = np.array([-5.0, 5.0]), np.array([180.0, 190.0, 200.0])
    old = xr.Dataset(
        {"sst": (("init_time", "lead", "lat", "lon"), np.ones((2, 2, 2, 3), np.float32))},
        coords={"init_time": pd.date_range("2000-01-01", periods=2, freq="MS"),
                "lead": ("lead", [1, 2], {"units": "months"}), "lat": lat, "lon": lon,
                "valid_time": (("init_time", "lead"),
                               pd.date_range("2000-02-01", periods=4, freq="MS").values
                               .reshape(2, 2))},
        attrs={"sstcast_format": FORECAST_FORMAT},
    )
    old.to_zarr(tmp_path / "old.zarr", consolidated=False)
    fc = open_forecast(tmp_path / "old.zarr")
    assert fc.attrs["Conventions"] == "CF-1.8"
    assert fc["init_time"].attrs["standard_name"] == "forecast_reference_time"
    out = export_netcdf(tmp_path / "old.zarr", tmp_path / "old.nc")
    assert clean(cf_check(out))


def test_export_is_atomic_and_refuses_to_overwrite(sst_store, tmp_path, monkeypatch):
    out = tmp_path / "sst.nc"
    out.write_bytes(b"the old file")
    with pytest.raises(FileExistsError, match="out: expected a new file.*--overwrite"):
        export_netcdf(sst_store, out)

    def fail_half_way(self, path, *args, **kwargs):
        Path(path).write_bytes(b"half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", fail_half_way)
    with pytest.raises(OSError, match="disk full"):
        export_netcdf(sst_store, out, overwrite=True)
    assert out.read_bytes() == b"the old file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sst.nc"]  # no partial file left
    monkeypatch.undo()
    export_netcdf(sst_store, out, overwrite=True)
    assert xr.open_dataset(out).sizes["time"] == 48


@pytest.mark.parametrize(
    "out, layout, message",
    [("x.zarr", "cf", r"out: expected a file name ending in \.nc, got"),
     ("x.nc", "grib", r"layout: expected one of \['cf', 'climpred'\], got 'grib'"),
     ("x.nc", "climpred", r"layout: 'climpred' is for forecast stores")],
)
def test_export_arguments_are_checked(sst_store, tmp_path, out, layout, message):
    with pytest.raises(ValueError, match=message):
        export_netcdf(sst_store, tmp_path / out, layout=layout)


def test_export_of_something_that_is_no_store_names_the_argument(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"store: expected an sstcast SST store"):
        export_netcdf(tmp_path / "nothing.zarr", tmp_path / "x.nc")


def test_cli_export_writes_the_file_and_reports_errors_in_one_line(forecast_store, tmp_path,
                                                                   capsys):
    out = tmp_path / "fc.nc"
    assert main(["export", "--store", str(forecast_store), "--out", str(out),
                 "--layout", "climpred"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert set(xr.open_dataset(out)["sst"].dims) == {"init", "lead", "lat", "lon"}
    assert main(["export", "--store", str(forecast_store), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("sstcast export: error: out: expected a new file") and "\n" not in err


@pytest.fixture
def offline_cf_table(monkeypatch):
    """climpred asks cf_xarray for the CF standard name table, which it downloads; offline,
    cf_xarray reads the copy in tests/data/cf."""
    accessor = pytest.importorskip("cf_xarray.accessor")
    parse = accessor.parse_cf_standard_name_table
    monkeypatch.setattr(accessor, "parse_cf_standard_name_table",
                        lambda source=None: parse(str(STANDARD_NAMES)))


def _verify(hindcast, obs, metric):
    return hindcast.add_observations(obs).verify(
        metric=metric, comparison="e2o", dim="init", alignment="same_inits"
    )


def test_climpred_takes_the_forecast_store_as_it_is(forecast_store, sst_store,
                                                    offline_cf_table):
    climpred = pytest.importorskip("climpred")
    fc = open_forecast(forecast_store)[["sst"]].load()
    obs = open_store(sst_store)[["sst"]]
    with pytest.warns(UserWarning, match="renamed dimension init_time"):
        hindcast = climpred.HindcastEnsemble(fc)
    rmse = _verify(hindcast, obs, "rmse")["sst"]
    # Persistence: lead 1 is last month repeated, so its error is the month-to-month change.
    expected = np.sqrt(((obs["sst"].shift(time=-1) - obs["sst"]) ** 2).sel(
        time=slice("1991-01", "1992-12")).mean("time"))
    np.testing.assert_allclose(rmse.sel(lead=1).values, expected.values, rtol=1e-4)


def test_climpred_takes_the_export_with_init_lead_and_member(sst_store, tmp_path,
                                                            offline_cf_table):
    """A store with a `member` dimension (as ensembles will write): passed through."""
    climpred = pytest.importorskip("climpred")
    fc = open_forecast(forecast := persistence_store(sst_store, tmp_path / "f.zarr"))
    members = xr.concat([fc, fc + 0.1], dim="member").assign_coords(member=[0, 1])
    members["sst"] = members["sst"].transpose("init_time", "lead", "member", "lat", "lon")
    members.attrs = fc.attrs
    for name in members.variables:
        members[name].encoding = {}
    members.chunk({"init_time": 1}).to_zarr(tmp_path / "ens.zarr", consolidated=False)
    out = export_netcdf(tmp_path / "ens.zarr", tmp_path / "ens.nc", layout="climpred")
    assert clean(cf_check(out))
    ds = xr.open_dataset(out)
    assert ds["sst"].dims == ("init", "lead", "member", "lat", "lon")
    assert ds["member"].attrs["standard_name"] == "realization"
    hindcast = climpred.HindcastEnsemble(ds[["sst"]])
    obs = xr.open_dataset(export_netcdf(sst_store, tmp_path / "obs.nc"))[["sst"]]
    rmse = _verify(hindcast, obs, "rmse")["sst"]  # of the ensemble mean
    assert set(rmse.dims) == {"lead", "lat", "lon"} and np.isfinite(rmse).any()
    lazy = to_climpred(forecast)
    assert lazy["sst"].chunks is not None and "valid_time" not in lazy.coords
