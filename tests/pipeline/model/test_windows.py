"""Sequence windows: splits without leakage, values, streaming, deterministic batches."""

import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.climatology import fit_climatology
from pipeline.data.store import open_store
from pipeline.model.config import WindowConfig
from pipeline.model.windows import (
    BlockBatchSampler,
    WindowDataset,
    collate_batch,
    covariates,
    ocean_locations,
    plan_splits,
)

TIMES = pd.date_range("1980-01", "1999-12", freq="MS").values
WINDOW = WindowConfig(context=24, horizon=6, block_locations=10)


def test_validation_targets_never_overlap_training_targets():
    train, val, fit_end = plan_splits(TIMES, train_end="1997-12", val_steps=36, context=24)
    last_train_target = train.last + 6
    assert train.target_end == np.flatnonzero(TIMES == fit_end)[0]
    assert str(fit_end)[:7] == "1994-12"
    assert val.first == train.target_end  # the first validation target is after fit_end
    assert val.first + 1 > train.target_end
    assert last_train_target > train.target_end  # late windows exist, but are masked
    assert val.target_end == np.flatnonzero(TIMES == np.datetime64("1997-12-01"))[0]


def test_a_period_too_short_for_one_window_is_a_clear_error():
    with pytest.raises(ValueError, match="context"):
        plan_splits(TIMES[:30], val_steps=12, context=24)


@pytest.fixture
def dataset(model_store):
    ds = open_store(str(model_store))
    train, _, fit_end = plan_splits(ds.time.values, train_end="1995-12", val_steps=12,
                                    context=24)
    stats = fit_climatology(ds.sst, end=fit_end)
    return WindowDataset(model_store, stats, train, WINDOW), ds.load(), stats


def test_windows_hold_normalised_anomalies_of_the_right_steps(dataset):
    data, ds, stats = dataset
    batch = data.__getitems__([0, 5, len(data) - 1])
    for row, index in enumerate([0, 5, len(data) - 1]):
        loc, k = divmod(index, data.n_issues)
        iy, ix = data.locations.iy[loc], data.locations.ix[loc]
        issue = data.split.first + k
        series = ds.sst.values[:, iy, ix]
        months = pd.DatetimeIndex(ds.time.values).month.values - 1
        z = (series - stats["clim"].values[months, iy, ix]) / stats["std"].values[iy, ix]
        np.testing.assert_allclose(batch["context"][row], z[issue - 23 : issue + 1], atol=1e-5)
        mask = batch["mask"][row].numpy()
        valid = np.arange(issue + 1, issue + 7) <= data.split.target_end
        np.testing.assert_array_equal(mask, valid)
        np.testing.assert_allclose(batch["target"][row][mask], z[issue + 1 : issue + 7][valid],
                                   atol=1e-5)


def test_missing_values_neighbours_and_covariates_match_a_per_window_reference(
    model_store, make_ar1_sst
):
    ds = make_ar1_sst()
    ds["sst"][100:103, 2] = np.nan  # missing data inside contexts and targets
    train, _, fit_end = plan_splits(ds.time.values, train_end="1995-12", val_steps=12,
                                    context=24)
    stats = fit_climatology(ds.sst, end=fit_end)
    data = WindowDataset(ds, stats, train, WINDOW)
    index = np.arange(0, len(data), 7)
    batch = data.__getitems__(index)
    months = pd.DatetimeIndex(ds.time.values).month.values - 1
    z = (ds.sst.values - stats["clim"].values[months]) / stats["std"].values
    for row, i in enumerate(index):
        loc, k = divmod(int(i), data.n_issues)
        iy, ix = data.locations.iy[loc], data.locations.ix[loc]
        issue = data.split.first + k
        nx = data._neighbour_ix(np.array([iy]), np.array([ix]))[0]
        np.testing.assert_allclose(batch["neighbour"][row],
                                   np.nan_to_num(z[issue - 23 : issue + 1, iy, nx]), atol=1e-5)
        np.testing.assert_allclose(batch["context"][row],
                                   np.nan_to_num(z[issue - 23 : issue + 1, iy, ix]), atol=1e-5)
        steps = np.arange(issue + 1, issue + 7)
        future = z[np.minimum(steps, len(z) - 1), iy, ix]
        valid = np.isfinite(future) & (steps <= data.split.target_end)
        np.testing.assert_array_equal(batch["mask"][row], valid)
        np.testing.assert_allclose(batch["target"][row], np.where(valid, future, 0), atol=1e-5)
        cov = covariates(months[[issue]], 12, ds.lat.values[[iy]], ds.lon.values[[ix]])[0]
        np.testing.assert_array_equal(batch["covariates"][row], cov)
        assert batch["weight"][row] == np.float32(np.cos(np.deg2rad(ds.lat.values[iy])))
    assert not batch["mask"].all() and batch["mask"].any()


def test_without_neighbours_a_batch_drops_only_the_neighbour_windows(dataset, model_store):
    data, _, stats = dataset
    plain = WindowDataset(model_store, stats, data.split, WINDOW, neighbours=False)
    index = np.arange(0, len(data), 11)
    full, lean = data.__getitems__(index), plain.__getitems__(index)
    assert set(full) - set(lean) == {"neighbour"}
    for key in lean:
        torch.testing.assert_close(lean[key], full[key])


def test_data_after_the_split_end_is_never_read(dataset, model_store, make_ar1_sst):
    data, ds, stats = dataset
    changed = make_ar1_sst()
    end = data.split.target_end
    changed["sst"][end + 1 :] = changed.sst[end + 1 :] + 100.0
    other = WindowDataset(changed, stats, data.split, WINDOW)
    index = np.arange(0, len(data), 37)
    a, b = data.__getitems__(index), other.__getitems__(index)
    for key in a:
        torch.testing.assert_close(a[key], b[key])


def test_blocks_are_row_ranges_of_bounded_size():
    ocean = np.ones((6, 8), bool)
    ocean[0, :2] = False
    locs = ocean_locations(ocean, block=10)
    sizes = np.diff(locs.block_starts)
    assert sizes.sum() == 46
    assert sizes.max() <= 10 + 8  # a block closes at the first row boundary past the limit
    for b in range(locs.n_blocks):
        rows = locs.iy[locs.block_starts[b] : locs.block_starts[b + 1]]
        assert np.all(np.diff(rows) >= 0)


def test_sampler_is_deterministic_covers_an_epoch_and_resumes_at_any_batch(dataset):
    data, _, _ = dataset
    full = list(BlockBatchSampler(data, 64, seed=3, epoch=1, mix_blocks=2))
    again = list(BlockBatchSampler(data, 64, seed=3, epoch=1, mix_blocks=2))
    other_epoch = list(BlockBatchSampler(data, 64, seed=3, epoch=2, mix_blocks=2))
    resumed = list(BlockBatchSampler(data, 64, seed=3, epoch=1, start=5, mix_blocks=2))
    assert full == again
    assert full != other_epoch
    assert resumed == full[5:]
    assert sorted(np.concatenate(full).tolist()) == list(range(len(data)))


def test_ranks_split_each_batch_without_overlap(dataset):
    data, _, _ = dataset
    whole = list(BlockBatchSampler(data, 8, seed=0))
    r0 = list(BlockBatchSampler(data, 8, seed=0, rank=0, world=2))
    r1 = list(BlockBatchSampler(data, 8, seed=0, rank=1, world=2))
    for w, a, b in zip(whole[:20], r0, r1, strict=False):
        assert sorted(a + b) == sorted(w)


def test_worker_processes_give_the_same_batches(dataset):
    data, _, _ = dataset

    def batches(workers):
        sampler = BlockBatchSampler(data, 32, seed=1)
        loader = torch.utils.data.DataLoader(data, batch_sampler=sampler,
                                             collate_fn=collate_batch, num_workers=workers)
        return [b["context"] for _, b in zip(range(4), loader, strict=False)]

    for a, b in zip(batches(0), batches(2), strict=True):
        torch.testing.assert_close(a, b)
