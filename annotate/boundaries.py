"""Country of a coordinate by point-in-polygon over country boundaries shipped offline.

The boundaries are the `countryinfo` package's GeoJSON outlines (Natural Earth, low resolution),
keyed by ISO 3166-1 alpha-2. They are coarse and incomplete: coastlines are generalised (a
beach or a pier may lie just outside), and some states ship no outline at all (among them
Hungary, Serbia, Montenegro, Myanmar and most small islands and microstates: see `missing`).
So a point is decided by the first rule that answers, and the rule is recorded:

  * `polygon`       — inside a country's outline;
  * `near-polygon`  — within `NEAR_POLYGON_DEG` of one (generalised coasts);
  * `city`          — the caller's nearest-city country (no outline answered, or the nearest
                      city is in a country without an outline the point may lie in);
  * `place`         — (annotate.reverse) no outline answered and the nearest city is far: the
                      nearest GeoNames place of ≥ 1,000 people (remote islands: the Aleutians).

Outlines that cross the antimeridian are stored as separate parts on either side of ±180°
(Fiji, Russia's Chukotka, the US Aleutians); a part that spans more than 180° of longitude is
taken as one drawn across the line and is cut there, so no polygon wraps the wrong way round.
Polygons are prepared once per process; queries are vectorised over points (shapely ≥ 2).
"""
from __future__ import annotations

import ast
import json
import os
from functools import lru_cache
from pathlib import Path

import numpy as np

# ~25 km at the equator: low-resolution coasts are off by about this much
NEAR_POLYGON_DEG = 0.25

RULES = ("polygon", "near-polygon", "city", "place")
POLYGON, NEAR_POLYGON, CITY, PLACE = range(4)


def _antimeridian_parts(geom) -> list:
    """The polygons of `geom`, a part drawn across ±180° (longitude extent > 180°) cut in two there."""
    from shapely.affinity import translate
    from shapely.geometry import Polygon, box

    out = []
    for part in getattr(geom, "geoms", [geom]):
        min_x, _, max_x, _ = part.bounds
        if max_x - min_x <= 180:
            out.append(part)
            continue
        # unwrap to 0..360, then split at 180 and move the eastern half back west
        ring = np.asarray(part.exterior.coords)
        ring[:, 0] = np.where(ring[:, 0] < 0, ring[:, 0] + 360, ring[:, 0])
        unwrapped = Polygon(ring).buffer(0)
        for piece in (unwrapped.intersection(box(0, -90, 180, 90)),
                      translate(unwrapped.intersection(box(180, -90, 360, 90)), xoff=-360)):
            out.extend(p for p in getattr(piece, "geoms", [piece]) if isinstance(p, Polygon) and not p.is_empty)
    return out


class CountryBoundaries:
    """Country outlines in an STRtree of their polygons (`part_country`: the country of each),
    prepared for bulk queries."""

    def __init__(self, data_dir: str | Path | None = None, cache_dir: str | Path | None = None):
        import shapely

        cached = self._read_cache(cache_dir)
        if cached is None:
            codes, geoms, part_country = self._read_outlines(data_dir)
            self._write_cache(cache_dir, codes, geoms, part_country)
        else:
            codes, geoms, part_country = cached
        self.codes = codes
        self.geoms = np.asarray(geoms, dtype=object)
        self.part_country = np.asarray(part_country, dtype=np.int64)
        self.bounds = shapely.bounds(self.geoms)
        shapely.prepare(self.geoms)
        self._parts = [np.flatnonzero(self.part_country == c) for c in range(len(codes))]
        self.tree = shapely.STRtree(self.geoms)
        self._index = {c: i for i, c in enumerate(codes)}

    @staticmethod
    def _cache_path(cache_dir) -> Path | None:
        if cache_dir is None:
            return None
        from importlib.metadata import version

        from naviclues.fsutil import file_sha256, fingerprint

        return Path(cache_dir) / f"country-outlines-{fingerprint(file_sha256(__file__), version('countryinfo'))}.npz"

    def _read_cache(self, cache_dir):
        """Parsing the GeoJSON takes seconds; the polygons' WKB loads in milliseconds."""
        import shapely

        path = self._cache_path(cache_dir)
        if path is None or not path.is_file():
            return None
        try:
            with np.load(path) as z:
                blob, offsets = z["wkb"].tobytes(), z["offsets"]
                geoms = shapely.from_wkb([blob[a:b] for a, b in zip(offsets[:-1], offsets[1:])])
                return [str(c) for c in z["codes"]], list(geoms), z["part_country"]
        except (OSError, ValueError, KeyError):
            return None  # damaged: parsed again

    def _write_cache(self, cache_dir, codes, geoms, part_country) -> None:
        import shapely

        from naviclues.fsutil import atomic_path

        path = self._cache_path(cache_dir)
        if path is None:
            return
        wkb = shapely.to_wkb(np.asarray(geoms, dtype=object))
        offsets = np.concatenate([[0], np.cumsum([len(b) for b in wkb])])
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                with open(tmp, "wb") as f:
                    np.savez(f, wkb=np.frombuffer(b"".join(wkb), dtype=np.uint8), offsets=offsets,
                             codes=np.asarray(codes), part_country=np.asarray(part_country, dtype=np.int64))
        except OSError:
            pass  # a read-only cache folder only costs the next process its speed

    @staticmethod
    def _read_outlines(data_dir):
        from shapely.geometry import shape

        if data_dir is None:
            import countryinfo

            data_dir = Path(countryinfo.__file__).parent / "data"
        codes, geoms, part_country = [], [], []
        for path in sorted(Path(data_dir).glob("*.json")):
            record = json.loads(path.read_text(encoding="utf-8"))
            iso, outline = _field(record.get("ISO")), _field(record.get("geoJSON"))
            code = (iso or {}).get("alpha2") if isinstance(iso, dict) else None
            features = (outline or {}).get("features") if isinstance(outline, dict) else None
            if not code or not features or code in codes:
                continue
            parts = [p for f in features if f.get("geometry") for p in _antimeridian_parts(shape(f["geometry"]))]
            if not parts:
                continue
            part_country.extend([len(codes)] * len(parts))
            codes.append(code)
            geoms.extend(parts)
        if not codes:
            raise ValueError(f"no country outlines found in {data_dir} (countryinfo's data/*.json with geoJSON)")
        return codes, geoms, part_country

    @property
    def covered(self) -> frozenset[str]:
        return frozenset(self.codes)

    def missing(self, codes) -> list[str]:
        """Those of `codes` that have no outline here (their points fall back to the city rule)."""
        return sorted(set(codes) - self.covered)

    def index_of(self, codes) -> np.ndarray:
        """Outline index of each ISO code (-1 where none)."""
        return np.asarray([self._index.get(c, -1) for c in codes], dtype=np.int64)

    def locate(self, lat, lng, hint: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(country index into `codes` or -1, rule) per point.

        `hint`: a country index per point (-1 for none), the nearest city's country: most points
        lie in it, so it is tested first, and a point outside every outline but within
        `NEAR_POLYGON_DEG` of the hint's outline gets it by the `near-polygon` rule. Each test is
        shapely's prepared `contains_xy`/`dwithin` over the points of one polygon's bounding box,
        so a million points take about a second, not the minutes of a per-point loop.
        """
        import shapely

        x = np.asarray(lng, dtype=np.float64)
        y = np.asarray(lat, dtype=np.float64)
        found = np.full(len(x), -1, dtype=np.int64)
        rule = np.full(len(x), CITY, dtype=np.int8)
        if len(x) == 0:
            return found, rule
        hint = None if hint is None else np.asarray(hint, dtype=np.int64)
        if hint is not None:
            for country, rows in _groups(hint, len(self.codes)):
                self._contains(self._parts[country], rows, x, y, found, country)
        rest = np.flatnonzero(found < 0)
        if len(rest):
            # bounding-box candidates from the tree, then the exact test per polygon
            point_at, part_at = self.tree.query(shapely.points(x[rest], y[rest]))
            for part, pairs in _groups(part_at, len(self.geoms)):
                rows = rest[point_at[pairs]]
                rows = rows[found[rows] < 0]
                self._contains([part], rows, x, y, found, self.part_country[part])
        rule[found >= 0] = POLYGON
        if hint is not None:
            rest = np.flatnonzero((found < 0) & (hint >= 0))
            for country, pairs in _groups(hint[rest], len(self.codes)):
                rows = rest[pairs]
                near = np.zeros(len(rows), dtype=bool)
                for part in self._parts[country]:
                    near |= shapely.dwithin(self.geoms[part], shapely.points(x[rows], y[rows]), NEAR_POLYGON_DEG)
                found[rows[near]] = country
                rule[rows[near]] = NEAR_POLYGON
        return found, rule

    def _contains(self, parts, rows, x, y, found, country) -> None:
        import shapely

        for part in parts:
            min_x, min_y, max_x, max_y = self.bounds[part]
            box_rows = rows[(x[rows] >= min_x) & (x[rows] <= max_x) & (y[rows] >= min_y) & (y[rows] <= max_y)]
            if len(box_rows):
                found[box_rows[shapely.contains_xy(self.geoms[part], x[box_rows], y[box_rows])]] = country


def _groups(keys: np.ndarray, size: int):
    """(key, positions of that key) for each key in 0..size-1 that occurs (negative keys skipped)."""
    order = np.argsort(keys, kind="stable")
    bounds = np.searchsorted(keys[order], np.arange(size + 1))
    for key in np.flatnonzero(np.diff(bounds)):
        yield int(key), order[bounds[key]:bounds[key + 1]]


def _field(value):
    """countryinfo stores some fields as Python/JSON literal strings ("{'alpha2': 'HU', ...}")."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            return json.loads(text)
        except ValueError:
            return ast.literal_eval(text)
    return value


@lru_cache(maxsize=1)
def default_boundaries() -> CountryBoundaries:
    """The outlines, parsed once per process, their polygons kept under `$NAVIG_CACHE` (or
    ~/.cache/navig) for later processes."""
    root = os.environ.get("NAVIG_CACHE")
    return CountryBoundaries(cache_dir=Path(root) if root else Path.home() / ".cache" / "navig")
