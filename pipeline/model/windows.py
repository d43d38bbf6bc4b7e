"""Sequence windows per ocean location, time splits without leakage, streamed from zarr.

A sample is one ocean location and one issue time i (the last observed step):
- context: normalised anomalies at steps i-C+1..i (C = window.context);
- target: normalised anomalies at steps i+1..i+H (H = window.horizon), with a mask that is
  False where the target lies beyond the split's last step or is missing.
Anomalies are taken against the seasonal climatology of the fitting period and divided by
the per-location anomaly std of that period (pipeline.climatology), so nothing after the
fitting period enters the normalisation.

Splits (`plan_splits`): with `train_end` the last step used and `val_steps` held out,
fit = steps up to train_end - val_steps; training issue times end one step before the end of
fit and their targets are masked beyond it; validation issue times start at the end of fit,
so validation targets never overlap training targets (their contexts may reach back into the
fitting period, as any real forecast's does).

Streaming: locations are grouped into blocks of neighbouring grid rows; a block's series are
read from the store (rows y0..y1, all longitudes, steps up to the split end) only when a
batch needs it, and a few blocks are kept per dataset instance. `BlockBatchSampler` shuffles
within groups of blocks (a shuffle buffer), is deterministic in (seed, epoch) and can start at
any batch, which is what makes resumed training continue exactly.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import xarray as xr

from pipeline.climatology import ocean_mask, open_sst, seasonal_index, store_time_step
from pipeline.model.config import WindowConfig
from pipeline.model.modes import mode_features, project

N_COVARIATES = 5  # season phase (2) and location (3), `covariates`

__all__ = [
    "BlockBatchSampler",
    "Locations",
    "Split",
    "WindowDataset",
    "collate_batch",
    "covariates",
    "normalised_anomalies",
    "ocean_locations",
    "plan_splits",
]


@dataclass(frozen=True)
class Split:
    """Issue times first..last (indices into the store's time axis, every `stride`), with
    targets masked after `target_end`."""

    name: str
    first: int
    last: int
    stride: int
    target_end: int

    def __len__(self) -> int:
        return max(0, (self.last - self.first) // self.stride + 1)


def plan_splits(
    times, *, train_end=None, val_steps: int, context: int, stride: int = 1
) -> tuple[Split, Split | None, pd.Timestamp]:
    """Training and validation splits of a time axis, and the end of the fitting period.

    times: (T,) datetime64. Returns (train, val or None, fit_end) where fit_end is the last
    time whose data training may see (normalisation statistics come from <= fit_end).
    """
    index = pd.DatetimeIndex(np.asarray(times))
    end = len(index) - 1 if train_end is None else int(index.searchsorted(
        pd.Timestamp(train_end), side="right")) - 1
    if end < 0:
        raise ValueError(f"train_end: {train_end} is before the store's first time {index[0]}")
    fit_end = end - val_steps
    first = context - 1
    if fit_end - 1 < first:
        raise ValueError(
            f"train_end/val_steps: {fit_end + 1} steps left for fitting, but a window needs "
            f"context {context} + 1 target step; use an earlier start, a later train_end or "
            "fewer val_steps"
        )
    train = Split("train", first, fit_end - 1, stride, fit_end)
    val = None
    if val_steps > 0:
        val = Split("val", max(fit_end, first), end - 1, stride, end)
        if len(val) == 0:
            val = None
    return train, val, index[fit_end]


@dataclass(frozen=True)
class Locations:
    """Ocean grid points (iy, ix indices), sorted by row, grouped in blocks of rows."""

    iy: np.ndarray
    ix: np.ndarray
    block_starts: np.ndarray  # (n_blocks + 1,) offsets into iy/ix

    def __len__(self) -> int:
        return len(self.iy)

    @property
    def n_blocks(self) -> int:
        return len(self.block_starts) - 1

    def block_of(self, loc: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.block_starts, loc, side="right") - 1


def ocean_locations(ocean: np.ndarray, *, stride: int = 1, block: int = 4096) -> Locations:
    """Ocean points of a (Y, X) bool mask, every `stride`-th row and column, in blocks of at
    most `block` points that never split a grid row (so a block is one row range)."""
    ocean = np.asarray(ocean, dtype=bool)
    keep = np.zeros_like(ocean)
    keep[::stride, ::stride] = True
    iy, ix = np.nonzero(ocean & keep)
    if len(iy) == 0:
        raise ValueError("ocean: the mask holds no ocean points at this location stride")
    starts = [0]
    row_starts = np.flatnonzero(np.r_[True, iy[1:] != iy[:-1]])
    for s in row_starts[1:]:
        if s - starts[-1] >= block:
            starts.append(int(s))
    starts.append(len(iy))
    return Locations(iy=iy, ix=ix, block_starts=np.asarray(starts))


def normalised_anomalies(
    values: np.ndarray, seasons: np.ndarray, clim: np.ndarray, std: np.ndarray
) -> np.ndarray:
    """(values - clim[season]) / std.  values: (T, ...); seasons: (T,) ints;
    clim: (n_seasons, ...); std: (...). Returns float32 (T, ...), NaN stays NaN."""
    return ((values - clim[seasons]) / std).astype(np.float32)


def covariates(seasons: np.ndarray, n_seasons: int, lat: np.ndarray, lon: np.ndarray):
    """Encoder covariates (N, 5): issue season phase (sin, cos) and the location as a unit
    vector (sin lat, cos lat sin lon, cos lat cos lon). seasons, lat, lon: (N,)."""
    return np.concatenate(
        [season_features(seasons, n_seasons), location_features(lat, lon)], axis=1
    )


def season_features(seasons: np.ndarray, n_seasons: int) -> np.ndarray:
    """The season phase part of `covariates`: (N, 2) float32 (sin, cos)."""
    phase = 2 * np.pi * np.asarray(seasons) / n_seasons
    return np.stack([np.sin(phase), np.cos(phase)], axis=-1).astype(np.float32)


def location_features(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """The location part of `covariates`: (N, 3) float32 unit vectors."""
    la, lo = np.deg2rad(np.asarray(lat, float)), np.deg2rad(np.asarray(lon, float))
    return np.stack(
        [np.sin(la), np.cos(la) * np.sin(lo), np.cos(la) * np.cos(lo)], axis=-1
    ).astype(np.float32)


@dataclass(frozen=True)
class _Block:
    """A block's normalised anomalies ready for gathering: per grid point of its rows
    (point = row offset * X + ix), the series with NaN set to 0 (`values`) and where it was
    finite (`finite`), both (rows * X, T + H) with H padding steps (0, not finite) after the
    split end, so a target window never needs clamping: the padding is masked."""

    values: np.ndarray
    finite: np.ndarray


class WindowDataset(torch.utils.data.Dataset):
    """Windows of one split: index = location * n_issues + issue number.

    `__getitems__(indices)` returns a batch dict (see `collate_batch`):
    context (B, C), target (B, H), mask (B, H) bool, covariates (B, 5), weight (B,) cos(lat),
    loc (B,) and issue (B,) indices; with `neighbours`, also neighbour (B, C), the context of
    the next ocean point along the row, for the multi-view loss (off, its gather would be a
    quarter of a batch's reading for nothing).
    """

    def __init__(
        self,
        store,
        stats: xr.Dataset,
        split: Split,
        window: WindowConfig,
        *,
        locations: Locations | None = None,
        cache_blocks: int = 16,
        neighbours: bool = True,
    ):
        self.neighbours = neighbours
        self.store = store if isinstance(store, xr.Dataset) else str(store)
        self.split = split
        self.context = window.context
        self.horizon = window.horizon
        self.clim = stats["clim"].values.astype(np.float32)
        self.std = stats["std"].values.astype(np.float32)
        ds = open_sst(self.store)
        self.lat = ds.lat.values
        self.lon = ds.lon.values
        self.times = ds.time.values
        self.step = store_time_step(ds)
        self.seasons = seasonal_index(self.times, self.step)
        ocean = ocean_mask(self.clim, ds)
        self.ocean = ocean
        self.locations = locations or ocean_locations(
            ocean, stride=window.location_stride, block=window.block_locations
        )
        self.n_issues = len(split)
        if self.n_issues == 0:
            raise ValueError(f"split {split.name}: no issue times")
        self.modes = None  # (steps up to target_end, 2M) non-local encoder features
        if "eof" in stats:
            end = split.target_end + 1
            amplitudes = project(ds.sst, self.clim, self.seasons, stats["eof"].values, 0, end)
            self.modes = mode_features(amplitudes, stats["amplitude_std"].values, 0)
        # Per-batch covariates are gathered from these tables, computed once.
        self._season_features = season_features(self.seasons, self.clim.shape[0])
        self._location_features = location_features(
            self.lat[self.locations.iy], self.lon[self.locations.ix]
        )
        self._weights = np.cos(np.deg2rad(self.lat[self.locations.iy])).astype(np.float32)
        self.cache_blocks = cache_blocks
        self._cache: OrderedDict[int, _Block] = OrderedDict()
        self._ds = None

    def __len__(self) -> int:
        return len(self.locations) * self.n_issues

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_cache"], state["_ds"] = OrderedDict(), None  # workers read their own blocks
        return state

    def block(self, b: int) -> _Block:
        """Normalised anomalies of block `b` (`_Block`) for steps 0..split.target_end
        (the last step reachable by this split; nothing later is read)."""
        if b in self._cache:
            self._cache.move_to_end(b)
            return self._cache[b]
        if self._ds is None:
            self._ds = open_sst(self.store)
        y0, y1 = self._rows(b)
        end = self.split.target_end + 1
        raw = self._ds.sst.isel(time=slice(0, end), lat=slice(y0, y1)).values
        data = normalised_anomalies(
            raw, self.seasons[:end], self.clim[:, y0:y1], self.std[y0:y1]
        )
        self._cache[b] = _series_block(data, self.horizon)
        while len(self._cache) > self.cache_blocks:
            self._cache.popitem(last=False)
        return self._cache[b]

    def _rows(self, b: int) -> tuple[int, int]:
        """Grid rows y0..y1-1 of block b."""
        locs = self.locations
        s, e = locs.block_starts[b], locs.block_starts[b + 1]
        return int(locs.iy[s]), int(locs.iy[e - 1]) + 1

    def _neighbour_ix(self, iy: np.ndarray, ix: np.ndarray) -> np.ndarray:
        east = (ix + 1) % len(self.lon)
        west = (ix - 1) % len(self.lon)
        return np.where(self.ocean[iy, east], east, np.where(self.ocean[iy, west], west, ix))

    def _covariates(self, issue: np.ndarray, loc: np.ndarray) -> np.ndarray:
        """(B, 5 [+ 2M]): `covariates` of the issue times and locations, then the modes."""
        n_modes = 0 if self.modes is None else self.modes.shape[1]
        out = np.empty((len(issue), N_COVARIATES + n_modes), np.float32)
        out[:, :2] = self._season_features[issue]
        out[:, 2:N_COVARIATES] = self._location_features[loc]
        if n_modes:
            out[:, N_COVARIATES:] = self.modes[issue]
        return out

    def __getitem__(self, index: int) -> dict:
        return self.__getitems__([index])

    def __getitems__(self, indices) -> dict:
        indices = np.asarray(indices, dtype=np.int64)
        if indices.min() < 0 or indices.max() >= len(self):
            raise IndexError(f"indices: expected 0..{len(self) - 1}, got {indices}")
        loc, k = np.divmod(indices, self.n_issues)
        issue = self.split.first + k * self.split.stride
        blocks = self.locations.block_of(loc)
        C, H = self.context, self.horizon
        context = np.empty((len(indices), C), np.float32)
        neighbour = np.empty((len(indices), C), np.float32) if self.neighbours else None
        target = np.empty((len(indices), H), np.float32)
        mask = np.empty((len(indices), H), bool)
        for b in np.unique(blocks):
            rows = np.flatnonzero(blocks == b)
            block = self.block(int(b))
            row0 = (self.locations.iy[loc[rows]] - self._rows(int(b))[0]) * len(self.lon)
            ix = self.locations.ix[loc[rows]]
            start = issue[rows] - C + 1
            context[rows] = _windows(block.values, row0 + ix, start, C)
            if neighbour is not None:
                nx = self._neighbour_ix(self.locations.iy[loc[rows]], ix)
                neighbour[rows] = _windows(block.values, row0 + nx, start, C)
            target[rows] = _windows(block.values, row0 + ix, issue[rows] + 1, H)
            mask[rows] = _windows(block.finite, row0 + ix, issue[rows] + 1, H)
        batch = {
            "context": torch.from_numpy(context),
            "target": torch.from_numpy(target),
            "mask": torch.from_numpy(mask),
            "covariates": torch.from_numpy(self._covariates(issue, loc)),
            "weight": torch.from_numpy(self._weights[loc]),
            "loc": torch.from_numpy(loc),
            "issue": torch.from_numpy(issue),
        }
        if neighbour is not None:
            batch["neighbour"] = torch.from_numpy(neighbour)
        return batch


def _series_block(data: np.ndarray, horizon: int) -> _Block:
    """A `_Block` of normalised anomalies data (T, rows, X)."""
    series = data.reshape(data.shape[0], -1).T  # (points, T)
    pad = ((0, 0), (0, horizon))
    return _Block(
        values=np.pad(np.nan_to_num(series), pad),
        finite=np.pad(np.isfinite(series), pad, constant_values=False),
    )


def _windows(series: np.ndarray, points: np.ndarray, start: np.ndarray, length: int):
    """(n, length): series[points[i], start[i] : start[i] + length] for each i."""
    view = np.lib.stride_tricks.sliding_window_view(series, length, axis=1)
    return view[points, start]


def collate_batch(batch: dict) -> dict:
    """`__getitems__` already returns a collated batch; DataLoader passes it through."""
    return batch


class BlockBatchSampler(torch.utils.data.Sampler):
    """Batches of dataset indices, shuffled within groups of `mix_blocks` location blocks.

    Deterministic in (seed, epoch): epoch e permutes the blocks, takes them `mix_blocks` at a
    time, permutes all windows of a group and cuts batches of `batch_size`. `start` skips
    the first batches of the first epoch without reading data (resume). Under data parallel
    training rank r of `world` takes every world-th element of each batch.
    """

    def __init__(
        self,
        dataset: WindowDataset,
        batch_size: int,
        *,
        seed: int,
        epoch: int = 0,
        start: int = 0,
        mix_blocks: int = 16,
        rank: int = 0,
        world: int = 1,
    ):
        self.dataset = dataset
        self.batch_size = batch_size
        self.seed, self.epoch, self.start = seed, epoch, start
        self.mix_blocks = mix_blocks
        self.rank, self.world = rank, world

    def epoch_batches(self, epoch: int):
        """Yield (batch number, global indices) for one epoch."""
        rng = np.random.default_rng([self.seed, epoch])
        locs = self.dataset.locations
        n_issues = self.dataset.n_issues
        order = rng.permutation(locs.n_blocks)
        number, pending = 0, np.empty(0, np.int64)
        for g in range(0, len(order), self.mix_blocks):
            group = order[g : g + self.mix_blocks]
            loc = np.concatenate(
                [np.arange(locs.block_starts[b], locs.block_starts[b + 1]) for b in group]
            )
            idx = (loc[:, None] * n_issues + np.arange(n_issues)).ravel()
            idx = np.concatenate([pending, rng.permutation(idx)])
            full = len(idx) // self.batch_size * self.batch_size
            for s in range(0, full, self.batch_size):
                yield number, idx[s : s + self.batch_size]
                number += 1
            pending = idx[full:]
        if len(pending):
            yield number, pending

    def __iter__(self):
        for number, batch in self.epoch_batches(self.epoch):
            if number < self.start:
                continue
            yield batch[self.rank :: self.world].tolist()

    def __len__(self) -> int:
        return max(0, -(-len(self.dataset) // self.batch_size) - self.start)
