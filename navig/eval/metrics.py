"""Geo-localization metrics from files: accuracy at distance thresholds, distance error, GeoScore,
country / city accuracy and the failure rate.

Conventions (the ones the Navig paper and the Im2GPS line of work use):

- Distance: great-circle (haversine) distance on a sphere of radius `EARTH_RADIUS_KM` = 6371.0088
  km, the IUGG mean Earth radius.
- Accuracy at a threshold t (1 / 25 / 200 / 750 / 2500 km): fraction of samples with
  distance `<=` t (a prediction exactly on the boundary counts as a hit).
- GeoScore: GeoGuessr's per-round score 5000 * exp(-d / 1492.7), averaged over samples.
- Country accuracy: the predicted country (the stated one when it resolves through the offline
  gazetteer, else the country of the gazetteer place nearest the predicted coordinates) equals
  the truth's country (given, or reverse-geocoded: the country of the place nearest the truth).
- City accuracy: the predicted city name (the stated one, else the nearest place's name) matches
  the truth's city: the given one, else any name (or alternate name) of the gazetteer cities within
  `CITY_RADIUS_KM` = 25 km of the truth, the nearest always included (GeoNames splits big cities
  into districts, e.g. "Paris 06 Luxembourg", so the nearest alone would miss "Paris").

Failures (`prediction` null, a `failure` reason, non-finite or out-of-range coordinates, or a
truth id with no prediction line at all) are never dropped silently. Under the default policy
`FAILURE_POLICY_MISS` they count as a miss at every threshold and for country / city, contribute
a GeoScore of 0, and are left out of the mean / median distance (which therefore describe the
answered samples; `n_answered` says how many). `FAILURE_POLICY_ANTIPODE` instead places a failed
answer at the largest possible distance (half the circumference) so it also weighs on mean and
median (GeoScore still 0: no answer scores no points). M.json always carries `failure_rate`, `n_failed` and the policy string.
"""
from __future__ import annotations

import csv
import json
import math
import re
import unicodedata
from collections import Counter
from functools import lru_cache
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from annotate.reverse import EARTH_RADIUS_KM, ReverseGeocoder  # noqa: F401  (re-exported for callers)
THRESHOLDS_KM: tuple[int, ...] = (1, 25, 200, 750, 2500)
GEOSCORE_MAX = 5000.0
GEOSCORE_SCALE_KM = 1492.7
MAX_DISTANCE_KM = math.pi * EARTH_RADIUS_KM  # antipodal points
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
FAILURE_POLICIES = {"miss": FAILURE_POLICY_MISS, "antipode": FAILURE_POLICY_ANTIPODE}


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
) -> dict[str, Any]:
    """The metrics of already-aligned arrays (one element per evaluated sample).

    `failed[i]` marks sample i as a failure whatever its coordinates hold; non-finite or out of
    range predicted coordinates are failures too. `country_hit` / `city_hit` are boolean arrays
    (already False for failures is not required: failures are forced to misses here).
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
    out: dict[str, Any] = {"n": n, "n_failed": n_failed, "n_answered": n - n_failed,
                           "failure_rate": (n_failed / n) if n else 0.0,
                           "failure_policy": FAILURE_POLICIES[policy]}
    for t in THRESHOLDS_KM:
        hits = answered & (distance <= t)
        out[f"acc_{t}km"] = float(hits.sum() / n) if n else 0.0
    counted = distance if policy == "antipode" else distance[answered]
    out["mean_km"] = float(counted.mean()) if counted.size else None
    out["median_km"] = float(np.median(counted)) if counted.size else None
    scores = np.where(answered, geoscore(distance), 0.0)
    out["geoscore"] = float(scores.mean()) if n else 0.0
    for key, hit in (("country_acc", country_hit), ("city_acc", city_hit)):
        out[key] = float((np.asarray(hit, dtype=bool) & answered).sum() / n) if (hit is not None and n) else None
    return out


# ----------------------------------------------------------------------------- files


@dataclass
class TruthTable:
    ids: list[str]
    lat: np.ndarray
    lng: np.ndarray
    country: list[str | None]
    city: list[str | None]


@dataclass
class PredictionTable:
    by_id: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> JSONL record (last one wins)
    bad_lines: list[str] = field(default_factory=list)  # "line N: cause"
    duplicates: int = 0


_LAT_KEYS = ("lat", "latitude", "LAT", "Latitude")
_LNG_KEYS = ("lng", "lon", "long", "longitude", "LON", "LNG", "Longitude")


def _first(row: dict, keys: Sequence[str]) -> Any:
    for k in keys:
        if k in row and row[k] not in (None, ""):
            return row[k]
    return None


def _rows(path: Path) -> Iterable[tuple[int, dict]]:
    if path.suffix.lower() in (".jsonl", ".json"):
        with open(path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if line.strip():
                    yield lineno, json.loads(line)
    else:
        with open(path, encoding="utf-8", newline="") as fh:
            for lineno, row in enumerate(csv.DictReader(fh), 2):
                yield lineno, row


def load_truth(path: Path | str) -> TruthTable:
    """A CSV or JSONL with `id`, `lat`, `lng` (lon/longitude accepted) and optional `country`, `city`."""
    path = Path(path)
    ids, lats, lngs, countries, cities = [], [], [], [], []
    seen: set[str] = set()
    for lineno, row in _rows(path):
        rid = _first(row, ("id", "ID", "IMG_ID"))
        lat, lng = _first(row, _LAT_KEYS), _first(row, _LNG_KEYS)
        if rid is None or lat is None or lng is None:
            raise ValueError(f"{path}:{lineno}: truth row needs id, lat and lng (got keys {sorted(row)})")
        try:
            lat_f, lng_f = float(lat), float(lng)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}:{lineno}: id {rid!r} has non-numeric coordinates: {exc}") from None
        if not (abs(lat_f) <= 90 and abs(lng_f) <= 180):
            raise ValueError(f"{path}:{lineno}: id {rid!r} has out-of-range coordinates ({lat_f}, {lng_f})")
        rid = str(rid)
        if rid in seen:
            raise ValueError(f"{path}:{lineno}: duplicate truth id {rid!r}")
        seen.add(rid)
        ids.append(rid)
        lats.append(lat_f)
        lngs.append(lng_f)
        countries.append(_first(row, ("country", "country_code")) or None)
        cities.append(_first(row, ("city",)) or None)
    return TruthTable(ids, np.asarray(lats, dtype=np.float64), np.asarray(lngs, dtype=np.float64), countries, cities)


def load_predictions(path: Path | str) -> PredictionTable:
    """Predictions in the `navig locate` JSONL format; a later line for the same id replaces an earlier one."""
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


def _prediction_fields(record: dict | None) -> tuple[float, float, str | None, str | None, bool]:
    """(lat, lng, country, city, failed) of one JSONL record; missing numbers become NaN."""
    if record is None:
        return math.nan, math.nan, None, None, True
    pred = record.get("prediction")
    if record.get("failure") or not isinstance(pred, dict):
        return math.nan, math.nan, None, None, True
    try:
        lat = float(pred.get("latitude"))
        lng = float(pred.get("longitude"))
    except (TypeError, ValueError):
        return math.nan, math.nan, pred.get("country"), pred.get("city"), True
    if not (math.isfinite(lat) and math.isfinite(lng) and abs(lat) <= 90 and abs(lng) <= 180):
        return math.nan, math.nan, pred.get("country"), pred.get("city"), True  # NaN/∞/out of range: a failure
    return lat, lng, pred.get("country"), pred.get("city"), False


# ----------------------------------------------------------------------------- reverse geocoding


def _trace_errors(record: dict) -> list:
    trace = record.get("trace")
    return (trace.get("errors") or []) if isinstance(trace, dict) else []


def _country_code(text: str | None) -> str | None:
    if not text:
        return None
    from annotate import gazetteer

    text = str(text).strip()
    if len(text) == 2 and gazetteer.country_by_code(text):
        return text.upper()
    country = gazetteer.resolve_country(text)
    return country.code if country else None


def score_files(
    predictions: Path | str,
    truth: Path | str,
    *,
    policy: str = "miss",
    only_predicted: bool = False,
    geocode_min_population: int = 15000,
    city_radius_km: float = CITY_RADIUS_KM,
) -> dict[str, Any]:
    """Score a `navig locate` JSONL against a truth CSV/JSONL; the dict M.json holds.

    `only_predicted` restricts scoring to truth ids that have a prediction line (a partial run);
    otherwise a truth id without a prediction is a failure (`n_missing`).
    """
    truth_t = load_truth(truth)
    preds = load_predictions(predictions)
    keep = [i for i, rid in enumerate(truth_t.ids) if not only_predicted or rid in preds.by_id]
    ids = [truth_t.ids[i] for i in keep]
    true_lat, true_lng = truth_t.lat[keep], truth_t.lng[keep]
    fields = [_prediction_fields(preds.by_id.get(rid)) for rid in ids]
    n = len(ids)
    pred_lat = np.fromiter((f[0] for f in fields), dtype=np.float64, count=n)
    pred_lng = np.fromiter((f[1] for f in fields), dtype=np.float64, count=n)
    failed = np.fromiter((f[4] for f in fields), dtype=bool, count=n)

    geocoder = ReverseGeocoder(geocode_min_population)
    # truth names: given, else reverse-geocoded from the truth coordinates
    need_truth = [i for i, k in enumerate(keep) if not truth_t.country[k] or not truth_t.city[k]]
    truth_places = dict(zip(need_truth, geocoder.nearby(true_lat[need_truth], true_lng[need_truth], city_radius_km)))
    true_country: list[str | None] = []
    true_city_names: list[set[str]] = []
    n_truth_geocoded = 0
    for i, k in enumerate(keep):
        near = truth_places.get(i) or []
        code = _country_code(truth_t.country[k])
        if code is None and near:
            code, n_truth_geocoded = near[0].country_code, n_truth_geocoded + 1
        true_country.append(code)
        if truth_t.city[k]:
            true_city_names.append({normalize_name(truth_t.city[k])})
        elif near:
            true_city_names.append({normalize_name(x) for p in near for x in (p.name, *p.alt_names)} - {""})
        else:
            true_city_names.append(set())

    # predicted names: stated, else the place nearest the predicted coordinates
    stated_country = [_country_code(f[2]) for f in fields]
    need_pred = [i for i in range(n) if not failed[i] and (stated_country[i] is None or not fields[i][3])]
    pred_places = dict(zip(need_pred, geocoder.nearest(pred_lat[need_pred], pred_lng[need_pred])))
    country_hit = np.zeros(n, dtype=bool)
    city_hit = np.zeros(n, dtype=bool)
    n_country_from_coords = 0
    for i in range(n):
        if failed[i]:
            continue
        place = pred_places.get(i)
        code = stated_country[i]
        if code is None and place is not None:
            code, n_country_from_coords = place.country_code, n_country_from_coords + 1
        country_hit[i] = code is not None and code == true_country[i]
        city = fields[i][3] or (place.name if place is not None else None)
        city_hit[i] = normalize_name(city) in true_city_names[i]

    metrics = score_arrays(pred_lat, pred_lng, true_lat, true_lng, failed,
                           country_hit=country_hit, city_hit=city_hit, policy=policy)
    missing = sum(1 for rid in ids if rid not in preds.by_id)
    records = [preds.by_id[rid] for rid in ids if rid in preds.by_id]
    # a prediction made while a tool or the Reasoner failed is scored, but is not the full method's
    stage_errors = sum(1 for rec in records if rec.get("prediction") is not None and _trace_errors(rec))
    policies = Counter(str(rec.get("policy")) for rec in records if rec.get("prediction") is not None)
    reasons: dict[str, int] = {}
    for rid, f in zip(ids, fields):
        if f[4]:
            rec = preds.by_id.get(rid)
            reason = "missing" if rec is None else str(rec.get("failure") or "no valid coordinates")
            key = reason.split(":")[0][:60]
            reasons[key] = reasons.get(key, 0) + 1
    metrics.update({
        "n_missing": missing,
        "n_stage_errors": stage_errors,
        "stage_error_rate": (stage_errors / n) if n else 0.0,
        "n_unparseable": sum(1 for rec in records if rec.get("failure_kind") == "unparseable"),
        "policies": dict(sorted(policies.items())),
        "failure_reasons": dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
        "n_bad_lines": len(preds.bad_lines),
        "bad_lines": preds.bad_lines[:20],
        "n_duplicate_ids": preds.duplicates,
        "n_unmatched_predictions": len(preds.by_id.keys() - set(truth_t.ids)),
        "n_truth_country_geocoded": n_truth_geocoded,
        "n_pred_country_from_coords": n_country_from_coords,
        "only_predicted": only_predicted,
        "predictions": str(predictions),
        "truth": str(truth),
    })
    return metrics


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
