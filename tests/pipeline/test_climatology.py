"""The time step of a store: read from the attribute the store records, inferred only
without one."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from pipeline.climatology import TimeStep, store_time_step, time_step
from pipeline.data.store import TIME_STEP


def _times(freq, n=5):
    return xr.Dataset(coords={"time": pd.date_range("2000-01-01", periods=n, freq=freq)})


@pytest.mark.parametrize(
    ("frequency", "expected"),
    [("MS", TimeStep("months", 1)), ("3MS", TimeStep("months", 3)),
     ("7D", TimeStep("weeks", 1)), ("W-SUN", TimeStep("weeks", 1)),
     ("D", TimeStep("days", 1)), ("5D", TimeStep("days", 5))],
)
def test_the_store_attribute_is_the_time_step(frequency, expected):
    ds = _times(frequency)
    ds.attrs[TIME_STEP] = frequency
    assert store_time_step(ds) == expected == time_step(ds.time.values)


def test_the_attribute_wins_over_the_times():
    # Two times one day apart would infer daily; the store says monthly.
    ds = xr.Dataset(coords={"time": np.array(["2000-01-01", "2000-01-02"], "datetime64[ns]")})
    ds.attrs[TIME_STEP] = "MS"
    assert store_time_step(ds) == TimeStep("months", 1)


def test_without_the_attribute_the_step_is_inferred():
    assert store_time_step(_times("MS")) == TimeStep("months", 1)
    with pytest.raises(ValueError, match="at least 2 times"):
        store_time_step(_times("MS", n=1))
