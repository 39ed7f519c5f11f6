"""Reverse geocoding from the embedded gazetteer: true coordinates → country and nearest city."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from annotate import gazetteer

EARTH_RADIUS_KM = 6371.0088


@dataclass(frozen=True)
class ReversePlace:
    country_code: str
    city: str
    distance_km: float


@lru_cache(maxsize=1)
def _table(min_population: int = 15000) -> tuple[np.ndarray, list]:
    places = [p for p in gazetteer.places(min_population) if p.kind == "city"]
    coords = np.radians(np.array([[p.lat, p.lng] for p in places], dtype=np.float64))
    return coords, places


def nearest_places(lats, lngs) -> list[ReversePlace]:
    """Nearest gazetteer city of each point (vectorised haversine, chunked)."""
    coords, places = _table()
    lat = np.radians(np.asarray(lats, dtype=np.float64))[:, None]
    lng = np.radians(np.asarray(lngs, dtype=np.float64))[:, None]
    out: list[ReversePlace] = []
    for i in range(0, lat.shape[0], 256):
        la, ln = lat[i:i + 256], lng[i:i + 256]
        a = (np.sin((coords[None, :, 0] - la) / 2) ** 2
             + np.cos(la) * np.cos(coords[None, :, 0]) * np.sin((coords[None, :, 1] - ln) / 2) ** 2)
        d = 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0, 1)))
        idx = d.argmin(axis=1)
        for row, j in enumerate(idx):
            p = places[int(j)]
            out.append(ReversePlace(p.country_code, p.name, float(d[row, j])))
    return out


def reverse(lat: float, lng: float) -> ReversePlace:
    return nearest_places([lat], [lng])[0]
