"""A full disk (ENOSPC, simulated deterministically) ends with the store's disk-full message
naming the file, and leaves no partial file behind to keep the disk at 100 %."""

import errno
import shutil
from collections import namedtuple

import pytest
import xarray as xr

from flows.cli import main
from pipeline.data import synthetic
from pipeline.data.store import StoreWriteError
from pipeline.model import train as train_module
from pipeline.model.train import train


def _enospc_torch_save(payload, handle):
    handle.write(b"x" * 4096)  # a partial checkpoint really lands on disk
    handle.flush()
    raise OSError(errno.ENOSPC, "No space left on device")


def _tmp_files(folder):
    return sorted(p.name for p in folder.rglob("*.tmp"))


def test_a_full_disk_while_checkpointing_is_the_disk_full_message(
    model_store, tmp_path, tiny_config, monkeypatch
):
    monkeypatch.setattr(train_module.torch, "save", _enospc_torch_save)
    run = tmp_path / "run"
    full = r"writing .*(last|best)\.pt failed \(disk full"
    with pytest.raises(StoreWriteError, match=full) as info:
        train(model_store, run, config=tiny_config)
    assert info.value.errno == errno.ENOSPC
    assert "\n" not in str(info.value)
    assert not run.exists() or _tmp_files(run) == []


def test_the_cli_reports_a_full_disk_in_one_line(
    model_store, tmp_path, tiny_config, monkeypatch, capsys
):
    monkeypatch.setattr(train_module.torch, "save", _enospc_torch_save)
    code = main(["train", "--store", str(model_store), "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert "disk full" in err and "\n" not in err and "Traceback" not in err
    assert _tmp_files(tmp_path) == []


def test_a_full_disk_on_a_later_checkpoint_keeps_the_previous_one(
    model_store, tmp_path, tiny_config, monkeypatch
):
    t = tiny_config.train.model_copy(update={"max_steps": 4, "checkpoint_every": 2})
    config = tiny_config.model_copy(update={"train": t})
    real = train_module.torch.save

    def save(payload, handle):
        if payload["progress"]["step"] < 4:
            return real(payload, handle)
        handle.write(b"x" * 4096)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(train_module.torch, "save", save)
    run = tmp_path / "run"
    with pytest.raises(StoreWriteError, match="disk full"):
        train(model_store, run, config=config)
    assert _tmp_files(run) == []
    assert train_module.load_checkpoint(run / "last.pt")["progress"]["step"] == 2


def test_an_hdf_error_on_a_full_disk_writing_stats_is_the_disk_full_message(
    model_store, tmp_path, tiny_config, monkeypatch
):
    # netCDF4/HDF5 report ENOSPC as "NetCDF: HDF error" (RuntimeError, no errno).
    def to_netcdf(self, path, *args, **kwargs):
        open(path, "wb").write(b"\x89HDF" + b"x" * 4096)
        raise RuntimeError("NetCDF: HDF error")

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(xr.Dataset, "to_netcdf", to_netcdf)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9, 0))
    run = tmp_path / "run"
    with pytest.raises(StoreWriteError, match=r"stats\.nc failed \(disk full: NetCDF: HDF"):
        train(model_store, run, config=tiny_config)
    assert not run.exists()  # no half-written stats.nc, no empty folder


@pytest.mark.parametrize("error", [
    OSError(errno.ENOSPC, "No space left on device"),
    RuntimeError("NetCDF: HDF error"),
])
def test_a_full_disk_in_the_synthetic_cache_leaves_no_tmp(tmp_path, monkeypatch, error):
    real = xr.Dataset.to_netcdf

    def to_netcdf(self, path, *args, **kwargs):
        real(self, path, *args, **kwargs)  # the whole file lands, as a big .tmp
        raise error

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(xr.Dataset, "to_netcdf", to_netcdf)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9, 100))
    target = tmp_path / "cache" / "sst.mon.mean.nc"
    with pytest.raises(StoreWriteError, match=r"sst\.mon\.mean\.nc failed \(disk full") as info:
        synthetic.write_cobe2(target, "2000-01", "2000-03", resolution=10.0)
    assert info.value.errno == errno.ENOSPC
    assert list((tmp_path / "cache").iterdir()) == []


def test_another_write_failure_is_not_called_disk_full(tmp_path, monkeypatch):
    def to_netcdf(self, path, *args, **kwargs):
        raise RuntimeError("NetCDF: HDF error")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", to_netcdf)  # real disk_usage: space left
    with pytest.raises(StoreWriteError, match=r"failed \(I/O error: NetCDF: HDF error\)"):
        synthetic.write_cobe2(tmp_path / "sst.nc", "2000-01", "2000-03", resolution=10.0)
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_while_appending_drops_the_uncommitted_tail(
    tmp_path, monkeypatch, make_ar1_sst
):
    from pipeline.data import store as store_module

    ar1_sst = make_ar1_sst
    url = str(tmp_path / "s.zarr")
    store_module.write_store(ar1_sst("1980-01", "1989-12"), url)  # 120 steps: one time chunk
    real = store_module._validate_region

    def full(url, start, end, step):  # the tail's chunks are on disk when the disk fills
        real(url, start, end, step)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store_module, "_validate_region", full)
    with pytest.raises(StoreWriteError, match=r"disk full.*120 time steps"):
        store_module.write_store(ar1_sst("1980-01", "2009-12"), url)
    chunks = [p for p in (tmp_path / "s.zarr" / "sst" / "c").rglob("*") if p.is_file()]
    time_chunks = {p.relative_to(tmp_path / "s.zarr" / "sst" / "c").parts[0] for p in chunks}
    assert time_chunks == {"0"}  # the chunk files of steps 120..359 are gone
    assert xr.open_zarr(url, consolidated=False).sizes["time"] == 120  # plain readers too
    monkeypatch.setattr(store_module, "_validate_region", real)
    assert store_module.write_store(ar1_sst("1980-01", "2009-12"), url).total == 360
