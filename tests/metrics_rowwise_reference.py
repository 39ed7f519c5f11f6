"""The row-wise `navig score` as it was before the columnar rewrite (commit 58036a4), kept as the
oracle the columnar path is tested against (tests/test_metrics_columnar.py). Not used by the package.

Only the imports changed: the shared pieces (score_arrays, normalize_name, the reverse geocoder)
come from the package, so this checks the file reading, joining and naming, which is what moved.
"""
from __future__ import annotations

import csv
import json
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from annotate.reverse import ReverseGeocoder, reverse
# the JSONL reader of whole records is unchanged: the package's own is the old one
from navig.eval.metrics import CITY_RADIUS_KM, load_predictions, normalize_name, score_arrays


@dataclass
class TruthTable:
    ids: list[str]
    lat: np.ndarray
    lng: np.ndarray
    country: list[str | None]
    city: list[str | None]


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
            # the country a point lies in (point-in-polygon), one point at a time
            code, n_truth_geocoded = reverse(float(true_lat[i]), float(true_lng[i])).country_code, n_truth_geocoded + 1
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
            code = reverse(float(pred_lat[i]), float(pred_lng[i])).country_code
            n_country_from_coords += 1
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
