"""The columnar `navig score` gives what the row-wise one gave (tests/metrics_rowwise_reference.py,
the code as it was), on varied files: failures, missing and duplicate ids, torn and odd lines,
CSV / JSONL / parquet on both sides; and its truth cache is keyed by the truth file's content."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import metrics_rowwise_reference as rowwise
from navig.eval.metrics import score_files

NEW_KEYS = {"convention", "convention_rules", "threshold_rule", "truth_cache"}


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NAVIG_CACHE", str(tmp_path / "navig-cache"))


def _cities(n: int, rng) -> list:
    from annotate.reverse import ReverseGeocoder

    places = ReverseGeocoder().places
    return [places[int(i)] for i in rng.choice(len(places), size=n, replace=False)]


def varied_rows(seed: int = 7, n: int = 900):
    """(truth rows, locate records): truth at, near and far from cities, with and without names;
    predictions right, near, wrong, unnamed, failed, duplicated, missing."""
    rng = np.random.default_rng(seed)
    cities = _cities(400, rng)
    truth, records = [], []
    for i in range(n):
        c = cities[i % len(cities)]
        jitter = 0.0 if i % 3 == 0 else rng.normal(0, 0.2)
        lat, lng = float(np.clip(c.lat + jitter, -90, 90)), float((c.lng + jitter + 180) % 360 - 180)
        row = {"id": f"s{i:04d}", "lat": lat, "lng": lng}
        if i % 4 == 0:
            row["country"] = c.country_code
        elif i % 4 == 1:
            row["country"] = ["Narnia", "the Netherlands", "DE", "Brazil"][i % 8 // 2]
        if i % 5 == 0:
            row["city"] = c.name if i % 10 else "São Paulo"
        truth.append(row)
        kind = i % 11
        guess = cities[int(rng.integers(len(cities)))] if kind in (2, 3) else c
        pred = {"latitude": guess.lat + float(rng.normal(0, 0.05)), "longitude": guess.lng,
                "country": guess.country_code if kind % 2 else None, "city": guess.name if kind % 3 else None}
        if kind == 4:
            pred["country"] = ["France", "Kiribati", "Holland", "nowhere"][i % 4]
        record = {"id": row["id"], "image": f"{i}.jpg", "failure": None, "policy": ["full", "fallback"][i % 2],
                  "trace": {"tool_usage": {"map_search": i % 3}, "errors": ["ocr: boom"] if i % 13 == 0 else []},
                  "prediction": pred}
        if kind == 5:
            record.update(prediction=None, failure=["parse_error: no JSON", "backend: timeout"][i % 2],
                          failure_kind="unparseable" if i % 2 == 0 else "backend")
        elif kind == 6 and i % 2:
            record["prediction"]["latitude"] = 123.0  # out of range: a failure with a prediction
        if kind == 7 and i % 3 == 0:
            continue  # no prediction line at all
        records.append(record)
        if kind == 8 and i % 2:
            records.append({**record, "prediction": {**pred, "latitude": -pred["latitude"]}})  # a later line wins
    records.append({"id": "not-in-truth", "failure": None, "prediction": {"latitude": 1.0, "longitude": 2.0}})
    return truth, records


def write_truth(rows: list[dict], path: Path) -> Path:
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    elif path.suffix == ".csv":
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=["id", "lat", "lng", "country", "city"])
            writer.writeheader()
            writer.writerows(rows)
    else:
        pq.write_table(pa.Table.from_pylist(
            [{"id": r["id"], "lat": r["lat"], "lng": r["lng"], "country": r.get("country"), "city": r.get("city")}
             for r in rows]), path)
    return path


def flat_rows(records: list[dict]) -> list[dict]:
    """Locate records as flat prediction rows (no coordinates where there is no prediction)."""
    out = []
    for r in records:
        p = r.get("prediction") or {}
        out.append({"id": r["id"], "lat": p.get("latitude"), "lng": p.get("longitude"), "country": p.get("country"),
                    "city": p.get("city"), "failure": r.get("failure"), "policy": r.get("policy")})
    return out


def assert_same(new: dict, old: dict, ignore: tuple = ()) -> None:
    assert set(new) - NEW_KEYS == set(old), set(new) ^ set(old)
    for key, value in old.items():
        if key in ("predictions", "truth") or key in ignore:
            continue
        assert new[key] == value, (key, new[key], value)  # identical, not approximately equal


@pytest.mark.parametrize("truth_format", [".csv", ".jsonl", ".parquet"])
def test_columnar_equals_rowwise_on_a_varied_file(tmp_path, truth_format):
    truth_rows, records = varied_rows()
    preds = tmp_path / "pred.jsonl"
    lines = [json.dumps(r) for r in records]
    lines.insert(17, "{torn")  # a torn line and a line without id are reported, not fatal
    lines.insert(40, json.dumps({"image": "x.jpg", "prediction": None}))
    lines.insert(41, "")
    preds.write_text("\n".join(lines) + "\n", encoding="utf-8")
    truth = write_truth(truth_rows, tmp_path / f"truth{truth_format}")
    reference_truth = truth if truth_format != ".parquet" else write_truth(truth_rows, tmp_path / "ref.csv")
    old = rowwise.score_files(preds, reference_truth)
    new = score_files(preds, truth)
    assert old["n_failed"] > 50 and old["n_missing"] > 10 and old["n_duplicate_ids"] > 10  # the file is varied
    assert old["n_bad_lines"] == 2 and old["n_stage_errors"] > 0 and 0 < old["city_acc"] < old["country_acc"] < 1
    assert new["truth_cache"] == "miss"
    assert_same(new, old)
    if truth_format == ".csv":  # the options once: they act after the files are read
        assert_same(score_files(preds, truth, policy="antipode"),
                    rowwise.score_files(preds, reference_truth, policy="antipode"))
        assert_same(score_files(preds, truth, only_predicted=True),
                    rowwise.score_files(preds, reference_truth, only_predicted=True))
    warm = score_files(preds, truth)
    assert warm["truth_cache"] == "hit"
    assert_same(warm, old)


@pytest.mark.parametrize("pred_format", [".csv", ".parquet"])
def test_flat_prediction_files_score_like_the_jsonl(tmp_path, pred_format):
    truth_rows, records = varied_rows(seed=3, n=400)
    truth = write_truth(truth_rows, tmp_path / "truth.csv")
    jsonl = tmp_path / "pred.jsonl"
    # flat files carry no trace: compare on records without stage errors
    for r in records:
        r.pop("trace", None)
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    rows = flat_rows(records)
    flat = tmp_path / f"pred{pred_format}"
    if pred_format == ".csv":
        with open(flat, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    else:
        pq.write_table(pa.Table.from_pylist(rows), flat)
    old = rowwise.score_files(jsonl, truth)
    assert_same(score_files(flat, truth), old, ignore=("n_unparseable",))  # failure_kind is not in the flat rows
    # parquet written straight from the locate records (a `prediction` struct) reads the same way
    nested = tmp_path / "nested.parquet"
    pq.write_table(pa.Table.from_pylist([{"failure_kind": None, **r} for r in records]), nested)
    assert_same(score_files(nested, truth), old)


def test_odd_lines_take_the_rowwise_rules(tmp_path):
    """Values pyarrow will not read as typed (number ids, a latitude as text, a prediction that is
    not an object, error objects in the trace, NaN) in a file long enough to be split into pieces."""
    truth_rows, records = varied_rows(seed=11, n=1400)
    truth = write_truth(truth_rows, tmp_path / "truth.jsonl")
    lines = [json.dumps(r) for r in records]
    lines[5] = lines[5].replace('"latitude": ', '"latitude": "', 1).replace(', "longitude"', '", "longitude"', 1)
    lines[700] = json.dumps({**records[700], "prediction": "Paris"})
    lines[900] = json.dumps({**records[900], "trace": {"errors": [{"stage": "ocr"}]}})
    lines[1000] = json.dumps({**records[1000], "prediction": {"latitude": math.nan, "longitude": 3.0}})
    lines[1100] = "{\"id\": " + "9" * 5 + ", \"prediction\": null}"
    lines.insert(1200, '{"id": "half')
    preds = tmp_path / "pred.jsonl"
    preds.write_text("\n".join(lines) + "\n", encoding="utf-8")
    old = rowwise.score_files(preds, truth)
    assert old["n_bad_lines"] == 1
    assert_same(score_files(preds, truth), old)

    # integer ids on both sides (OSV-5M's test set numbers its images)
    numbered_truth = write_truth([{**r, "id": i} for i, r in enumerate(truth_rows)], tmp_path / "num.jsonl")
    numbered = tmp_path / "num-pred.jsonl"
    numbered.write_text("".join(json.dumps({**r, "id": i}) + "\n" for i, r in enumerate(records)), encoding="utf-8")
    assert_same(score_files(numbered, numbered_truth), rowwise.score_files(numbered, numbered_truth))


def test_truth_cache_follows_the_content_not_the_name(tmp_path):
    truth_rows, records = varied_rows(seed=5, n=200)
    preds = tmp_path / "pred.jsonl"
    preds.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    truth = write_truth(truth_rows, tmp_path / "truth.jsonl")
    first = score_files(preds, truth)
    assert first["truth_cache"] == "miss" and score_files(preds, truth)["truth_cache"] == "hit"
    # same name, same size: every truth point moved to the antipode of another city
    moved = [{**r, "lat": -r["lat"], "lng": r["lng"] - 180 if r["lng"] > 0 else r["lng"] + 180} for r in truth_rows]
    write_truth(moved, truth)
    second = score_files(preds, truth)
    assert second["truth_cache"] == "miss"
    assert_same(second, rowwise.score_files(preds, truth))
    assert second["acc_2500km"] < first["acc_2500km"]
    # off: nothing written
    cache = tmp_path / "elsewhere"
    assert score_files(preds, truth, truth_cache=False)["truth_cache"] == "off"
    score_files(preds, truth, truth_cache=cache)
    assert len(list(cache.glob("*.arrow"))) == 1


def test_bad_truth_rows_are_named_in_every_format(tmp_path):
    preds = tmp_path / "p.jsonl"
    preds.write_text('{"id": "x", "prediction": {"latitude": 0, "longitude": 0}}\n', encoding="utf-8")
    (tmp_path / "t.jsonl").write_text('{"id": "a", "lat": 1, "lng": 2}\n{"id": "a", "lat": 1, "lng": 2}\n')
    with pytest.raises(ValueError, match=r"t.jsonl:2: duplicate truth id 'a'"):
        score_files(preds, tmp_path / "t.jsonl")
    (tmp_path / "t2.jsonl").write_text('{"id": "a", "lat": 1, "lng": 2}\n{"id": "b", "lat": "north"')
    with pytest.raises(ValueError, match=r"t2.jsonl:2: invalid JSON"):
        score_files(preds, tmp_path / "t2.jsonl")
    pq.write_table(pa.table({"id": ["a", "b"], "lat": [1.0, None], "lng": [2.0, 3.0]}), tmp_path / "t.parquet")
    with pytest.raises(ValueError, match=r"t.parquet:row 1: truth row needs id, lat and lng"):
        score_files(preds, tmp_path / "t.parquet")


def test_tool_usage_from_the_file_equals_the_row_wise_tally(tmp_path, monkeypatch):
    import navig.eval.metrics as metrics
    from navig.eval.metrics import load_predictions, tool_usage, tool_usage_file

    _, records = varied_rows(seed=2, n=300)
    for i, r in enumerate(records):
        usage = r.setdefault("trace", {}).setdefault("tool_usage", {})
        usage.update({"ocr": i % 4 == 0, "guidebook": (i % 5) * 0.75, "batch_images": 8})
        if i % 7 == 0:
            usage["detector"] = i % 3
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    everything = list(load_predictions(path).by_id.values())
    some = {f"s{i:04d}" for i in range(0, 300, 3)}
    expected_all, expected_some = tool_usage(everything), tool_usage(r for r in everything if r["id"] in some)
    with monkeypatch.context() as m:  # the columnar read, not the row-wise fallback
        m.setattr(metrics, "load_predictions", None)
        assert tool_usage_file(path) == expected_all
        assert tool_usage_file(path, some) == expected_some
    assert expected_all["calls"]["map_search"] > 0 and "batch_images" not in expected_all["calls"]
    # a torn line: the row-wise reader, same figures
    path.write_text(path.read_text() + '{"id": "torn', encoding="utf-8")
    assert tool_usage_file(path, some) == tool_usage(r for r in everything if r["id"] in some)
