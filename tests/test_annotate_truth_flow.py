"""The annotate flow on a hand-made collect folder whose videos do what the demo never does: one cuts
round 2 (segmentation numbers the rest previous + 1), one shows another game's score on round 3's
result screen and keeps talking about round 1's result into round 2. The dataset must carry the right
labels, drop the contradicted round with its evidence, and keep the spilled reveal talk out of round 2."""
from __future__ import annotations

import json

import pytest

from annotate.card import drop_reason_key
from annotate.flow import TRUTH_EVIDENCE_FILE, run_annotate
from collect_folder import PLACES, PlayedRound, write_video
from conftest import card_drop_table

SETTINGS = {"filter": {"min_words": 20, "min_points": 0}, "build": {"test_challenges": 0}}
SPILL = "oh it was Brazil I said Peru that's like two thousand kilometers off"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("truth-flow")
    cut = [PlayedRound(p, segment_round=k, evidence=("fallback:previous-guess",), screen_points=p.points)
           for k, p in enumerate([PLACES[0], PLACES[2], PLACES[3], PLACES[4]], start=1)]
    write_video(out, "cutvideo", "TOKENCUT", PLACES, cut)
    odd = [PlayedRound(p, segment_round=k, evidence=(f"ocr:round-counter {k}/5@{k * 80.0:.1f}",),
                       screen_points=1200 if k == 3 else p.points, opening=SPILL if k == 2 else "")
           for k, p in enumerate(PLACES, start=1)]
    write_video(out, "oddvideo", "TOKENODD", PLACES, odd)
    summary = run_annotate(out, SETTINGS)
    import datasets

    rows = {row["id"]: row for row in datasets.load_from_disk(str(out / "dataset"))["train"]}
    drops = [json.loads(line) for line in (out / "dataset" / "drops.jsonl").read_text().splitlines()]
    evidence = {e["id"]: e for e in map(json.loads, (out / TRUTH_EVIDENCE_FILE).read_text().splitlines())}
    return out, summary, rows, drops, evidence


def test_labels_after_a_cut_round_stay_right(built):
    _, _, rows, _, evidence = built
    labels = {i: rows[i]["country_code"].lower() for i in rows if i.startswith("cutvideo/")}
    assert labels == {"cutvideo/1": "br", "cutvideo/3": "ke", "cutvideo/4": "no", "cutvideo/5": "ar"}
    assert [rows[f"cutvideo/{k}"]["round"] for k in (1, 3, 4, 5)] == [1, 3, 4, 5]
    assert evidence["cutvideo/3"]["segment_round"] == 2 and evidence["cutvideo/3"]["round"] == 3
    assert evidence["cutvideo/3"]["agreed"][0] == "points: screen 4500, API 4500"


def test_a_contradicted_round_is_dropped_with_its_evidence(built):
    out, summary, rows, drops, evidence = built
    assert "oddvideo/3" not in rows and {"oddvideo/1", "oddvideo/2", "oddvideo/4", "oddvideo/5"} <= set(rows)
    (drop,) = [d for d in drops if d["id"] == "oddvideo/3"]
    assert drop["reasons"] == ["truth mismatch (points): screen 1200, API 4500"]
    assert drop["truth_evidence"]["disagreed"] == ["points: screen 1200, API 4500"]
    assert drop["truth_evidence"]["agreed"] == ["round counter: segment says round 3, API round 3",
                                                "talk: concludes KE, truth KE"]
    assert evidence["oddvideo/3"]["verdict"] == "disagrees"
    assert summary["truth"]["disagrees"] == 1
    card = (out / "hub" / "README.md").read_text("utf-8")
    assert card_drop_table(card) == {drop_reason_key(drop["reasons"][0]): 1}


def test_spilled_reveal_talk_stays_out_of_the_next_rounds_clues_and_reasoning(built):
    _, _, rows, _, evidence = built
    row = rows["oddvideo/2"]
    assert row["country_code"].lower() == "jp"
    assert {c["entity"] for c in row["clues"] if c["entity"]} == {"JP"}
    for column in ("reasoning", "transcript"):
        assert "brazil" not in row[column].lower() and "peru" not in row[column].lower(), row[column]
    assert evidence["oddvideo/2"]["reveal_spill"]["text"] == SPILL
