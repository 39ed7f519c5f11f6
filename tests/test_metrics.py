"""Golden tests of navig.eval.metrics and `navig score` (hand-computed distances and scores)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from navig.eval.metrics import (
    EARTH_RADIUS_KM,
    FAILURE_POLICY_ANTIPODE,
    FAILURE_POLICY_MISS,
    haversine_km,
    score_arrays,
    score_files,
)

R = 6371.0088
HALF_CIRCUMFERENCE = math.pi * R  # 20015.114 km
ONE_DEGREE = math.pi * R / 180  # 111.195 km along a great circle


def gs(d: float) -> float:
    return 5000 * math.exp(-d / 1492.7)


def test_haversine_golden_points():
    assert EARTH_RADIUS_KM == R
    assert haversine_km(0, 0, 0, 180) == pytest.approx(HALF_CIRCUMFERENCE, abs=1e-6)  # antipodes
    assert haversine_km(48.8566, 2.3522, -48.8566, -177.6478) == pytest.approx(HALF_CIRCUMFERENCE, abs=1e-6)
    assert haversine_km(90, 0, -90, 0) == pytest.approx(HALF_CIRCUMFERENCE, abs=1e-6)  # pole to pole
    assert haversine_km(90, 0, 90, 135) == pytest.approx(0, abs=1e-9)  # the pole has every longitude
    assert haversine_km(90, 0, 0, 77) == pytest.approx(HALF_CIRCUMFERENCE / 2, abs=1e-6)
    assert haversine_km(0, 179.5, 0, -179.5) == pytest.approx(ONE_DEGREE, abs=1e-9)  # across the date line
    assert haversine_km(10, -180, 10, 180) == pytest.approx(0, abs=1e-9)


def test_threshold_boundary_is_inclusive():
    # walk float by float to a latitude whose distance from (0, 0) is exactly 25.0 km, and to one just past it
    lat = np.degrees(25 / R)
    assert float(haversine_km(0, 0, lat, 0)) == 25.0
    above = lat
    while float(haversine_km(0, 0, above, 0)) <= 25.0:
        above = np.nextafter(above, 1.0)
    d_above = float(haversine_km(0, 0, above, 0))
    assert 25.0 < d_above < 25.0 + 1e-9
    m = score_arrays([lat, above], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0])
    assert m["acc_25km"] == 0.5  # exactly 25 km is a hit, a hair more is not
    assert m["acc_1km"] == 0.0 and m["acc_200km"] == 1.0
    # the other thresholds at their exact boundary
    for t in (1, 200, 750, 2500):
        lat_t = np.degrees(t / R)
        d = float(haversine_km(0, 0, lat_t, 0))
        m = score_arrays([lat_t], [0.0], [0.0], [0.0])
        assert m[f"acc_{t}km"] == (1.0 if d <= t else 0.0)


def test_geoscore_and_policies():
    # d = 0, d = 1492.7 km (score 5000/e), and one failure
    lat_e = np.degrees(1492.7 / R)
    m = score_arrays([0.0, lat_e, np.nan], [0.0, 0.0, np.nan], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0])
    assert m["geoscore"] == pytest.approx((5000 + 5000 / math.e + 0) / 3)
    assert m["failure_rate"] == pytest.approx(1 / 3) and m["n_failed"] == 1 and m["n"] == 3
    assert m["mean_km"] == pytest.approx(1492.7 / 2) and m["median_km"] == pytest.approx(1492.7 / 2)
    assert m["failure_policy"] == FAILURE_POLICY_MISS
    a = score_arrays([0.0, lat_e, np.nan], [0.0, 0.0, np.nan], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0], policy="antipode")
    assert a["mean_km"] == pytest.approx((0 + 1492.7 + HALF_CIRCUMFERENCE) / 3)
    assert a["median_km"] == pytest.approx(1492.7)
    assert a["geoscore"] == pytest.approx((5000 + 5000 / math.e + 0) / 3)  # no answer scores 0 points either way
    assert a["failure_policy"] == FAILURE_POLICY_ANTIPODE
    # out-of-range coordinates are failures, not scored as points
    bad = score_arrays([95.0], [0.0], [0.0], [0.0])
    assert bad["n_failed"] == 1 and bad["acc_2500km"] == 0.0 and bad["mean_km"] is None
    with pytest.raises(ValueError, match="unknown failure policy"):
        score_arrays([0.0], [0.0], [0.0], [0.0], policy="drop")


def _write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def _pred(i, lat, lng, country=None, city=None):
    return {"id": i, "image": f"{i}.jpg", "failure": None, "trace": {"tool_usage": {"map_search": 1}},
            "prediction": {"country": country, "city": city, "latitude": lat, "longitude": lng}}


@pytest.fixture
def golden_files(tmp_path):
    truth = tmp_path / "truth.csv"
    truth.write_text(
        "id,lat,lng,country,city\n"
        "a,48.8566,2.3522,FR,Paris\n"  # exact hit
        "b,0,0,Ghana,Accra\n"  # antipodal guess
        "c,90,0,Norway,Longyearbyen\n"  # the pole, guessed at another longitude
        "d,0,179.5,Fiji,Suva\n"  # across the date line, 111.2 km
        "e,10,10,NG,Kano\n"  # parse failure
        "f,20,20,TD,Faya\n",  # no prediction line at all
        encoding="utf-8")
    preds = _write_jsonl(tmp_path / "pred.jsonl", [
        _pred("a", 48.8566, 2.3522, "France", "Paris"),
        _pred("b", 0.0, 180.0, "Kiribati", "Tarawa"),
        _pred("c", 90.0, 135.0, "Norway", "Longyearbyen"),
        _pred("d", 0.0, -179.5, "FJ", None),
        {"id": "e", "image": "e.jpg", "prediction": None, "failure": "parse_error: no JSON in answer",
         "trace": {"tool_usage": {}}},
        "{not json",  # a torn line is reported, not fatal
    ])
    return preds, truth


def expected_golden() -> dict:
    answered = [0.0, HALF_CIRCUMFERENCE, 0.0, ONE_DEGREE]
    return {
        "n": 6, "n_failed": 2, "failure_rate": 2 / 6,
        "acc_1km": 2 / 6, "acc_25km": 2 / 6, "acc_200km": 3 / 6, "acc_750km": 3 / 6, "acc_2500km": 3 / 6,
        "mean_km": sum(answered) / 4, "median_km": ONE_DEGREE / 2,
        "geoscore": (5000 + gs(HALF_CIRCUMFERENCE) + 5000 + gs(ONE_DEGREE)) / 6,
        # country: a (France=FR), c (Norway), d (FJ code) hit; b (Kiribati vs Ghana) misses
        "country_acc": 3 / 6,
        # city: a and c named right; d names none, and the city nearest (0, -179.5) is not Suva
        "city_acc": 2 / 6,
    }


def _check(metrics: dict, expected: dict) -> None:
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value, rel=1e-9, abs=1e-9), key


def test_score_files_golden(golden_files):
    preds, truth = golden_files
    m = score_files(preds, truth)
    _check(m, expected_golden())
    assert m["n_missing"] == 1 and m["n_bad_lines"] == 1
    assert m["failure_reasons"] == {"parse_error": 1, "missing": 1}
    assert m["failure_policy"] == FAILURE_POLICY_MISS
    # restricting to predicted ids drops f (missing) but keeps e (failed)
    p = score_files(preds, truth, only_predicted=True)
    assert p["n"] == 5 and p["n_failed"] == 1


def test_truth_names_reverse_geocoded(tmp_path):
    truth = _write_jsonl(tmp_path / "t.jsonl", [
        {"id": "tokyo", "lat": 35.6895, "lng": 139.6917},
        {"id": "paris", "lat": 48.8566, "lng": 2.3522},
        {"id": "lima", "lat": -12.0464, "lng": -77.0428},
    ])
    preds = _write_jsonl(tmp_path / "p.jsonl", [
        _pred("tokyo", 35.0, 139.0, "Japan", "Tokyo"),  # stated names, truth names from the gazetteer
        _pred("paris", 48.0, 2.0, "the Netherlands", "Paris"),  # wrong country, right city name
        _pred("lima", -12.05, -77.04),  # no names: both taken from the predicted coordinates
    ])
    m = score_files(preds, truth)
    assert m["n_truth_country_geocoded"] == 3 and m["n_pred_country_from_coords"] == 1
    assert m["country_acc"] == pytest.approx(2 / 3)
    assert m["city_acc"] == pytest.approx(1.0)


def test_non_finite_predictions_are_failures_not_a_crash(tmp_path):
    truth = _write_jsonl(tmp_path / "t.jsonl", [{"id": "a", "lat": 35.6895, "lng": 139.6917},
                                                {"id": "b", "lat": 48.8566, "lng": 2.3522}])
    preds = tmp_path / "p.jsonl"  # Python's json writes NaN/Infinity, and so may a sloppy tool
    preds.write_text('{"id": "a", "prediction": {"latitude": NaN, "longitude": 139.0}, "failure": null}\n'
                     '{"id": "b", "prediction": {"latitude": 48.85, "longitude": Infinity}, "failure": null}\n')
    m = score_files(preds, truth)
    assert m["n_failed"] == 2 and m["failure_rate"] == 1.0 and m["acc_2500km"] == 0.0


def _cli_app():
    from navig.cli import app

    return app


def test_navig_score_cli(golden_files, tmp_path):
    from typer.testing import CliRunner

    preds, truth = golden_files
    out = tmp_path / "m.json"
    result = CliRunner().invoke(_cli_app(), ["score", "--predictions", str(preds), "--truth", str(truth),
                                             "--out", str(out)])
    assert result.exit_code == 0, result.output
    written = json.loads(out.read_text())
    _check(written, expected_golden())
    assert written["failure_policy"] == FAILURE_POLICY_MISS
    last = json.loads(result.output.strip().splitlines()[-1])
    assert last["acc_200km"] == pytest.approx(0.5) and last["n"] == 6
    # the antipode policy through the CLI
    result = CliRunner().invoke(_cli_app(), ["score", "--predictions", str(preds), "--truth", str(truth),
                                             "--out", str(out), "--policy", "antipode"])
    assert result.exit_code == 0, result.output
    antipode = json.loads(out.read_text())
    assert antipode["mean_km"] == pytest.approx((HALF_CIRCUMFERENCE * 3 + ONE_DEGREE) / 6)


def test_bad_truth_names_the_row(tmp_path):
    truth = tmp_path / "t.csv"
    truth.write_text("id,lat,lng\nx,91,0\n", encoding="utf-8")
    preds = _write_jsonl(tmp_path / "p.jsonl", [_pred("x", 0, 0)])
    with pytest.raises(ValueError, match=r"t.csv:2: id 'x' has out-of-range"):
        score_files(preds, truth)
