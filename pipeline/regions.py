"""Where on the globe: the one table of regions that scores, figures and reports use, and
the area weights (cos lat) of every spatial mean."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["REGIONS", "Region", "lat_weights", "region_mask"]


class Region(NamedTuple):
    """A lat/lon box in degrees, longitudes 0..360, with the names people read."""

    south: float
    north: float
    west: float
    east: float
    label: str  # in figure titles
    short: str  # in tables


REGIONS: dict[str, Region] = {
    "global": Region(-90.0, 90.0, 0.0, 360.0, "global ocean", "global"),
    "tropics": Region(-20.0, 20.0, 0.0, 360.0, "tropics", "tropics"),
    "nh": Region(20.0, 60.0, 0.0, 360.0, "northern extratropics", "NH"),
    "sh": Region(-60.0, -20.0, 0.0, 360.0, "southern extratropics", "SH"),
    "nino34": Region(-5.0, 5.0, 190.0, 240.0, "Niño3.4", "Niño3.4"),  # 170W-120W
}


def lat_weights(lat: np.ndarray) -> np.ndarray:
    """cos(lat) per latitude (Y,), unnormalised (normalised later over valid points)."""
    return np.clip(np.cos(np.deg2rad(np.asarray(lat, dtype=np.float64))), 0.0, None)


def region_mask(lat: np.ndarray, lon: np.ndarray, region: str) -> np.ndarray:
    """(Y, X) bool: grid points inside `region` (a key of REGIONS)."""
    if region not in REGIONS:
        raise ValueError(f"region: expected one of {sorted(REGIONS)}, got {region!r}")
    box = REGIONS[region]
    lat = np.asarray(lat)[:, None]
    lon = np.mod(np.asarray(lon), 360.0)[None, :]
    return (lat >= box.south) & (lat <= box.north) & (lon >= box.west) & (lon <= box.east)
