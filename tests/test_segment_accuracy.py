"""benchmarks/segment_accuracy.py on small hand-made run folders: matching, every figure, errors;
and the truth.json fields the demo generator writes."""
from __future__ import annotations

import importlib.util
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

BENCH = ROOT / "benchmarks" / "segment_accuracy.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("segment_accuracy", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _round(k, start, guess, end, points, km=None, kept=False, clues=()):
    return {"round": k, "start_s": start, "guess_s": guess, "end_s": end, "points": points, "distance_km": km,
            "lat": 1.0, "lng": 2.0, "country": "X", "city": "Y", "clue_times": [list(c) for c in clues], "kept": kept}


TRUTH = {"videos": [
    {"id": "vidA", "page": "watch/vidA", "token": "tokA", "duration_s": 60.0, "style": "classic", "width": 854,
     "height": 480, "fps": 60, "rounds": [
         _round(1, 3.0, 26.0, 31.0, 4998, 0.62, True, [(5.0, "that sign says tromso so this is northern norway"),
                                                       (12.0, "black bollards with a yellow reflector")]),
         _round(2, 31.0, 36.0, 41.0, 1220, 2105.0),
         _round(3, 41.0, 46.0, 51.0, 0, None)]},
    {"id": "vidB", "page": "watch/vidB", "token": "tokB", "duration_s": 40.0, "style": "neon", "width": 1280,
     "height": 720, "fps": 30, "rounds": [
         _round(1, 3.0, 20.0, 25.0, 4000, 72.4, True, [(6.0, "the sign says curitiba")]),
         _round(2, 25.0, 30.0, 35.0, 300, 4000.0)]},
    {"id": "vidC", "page": "watch/vidC", "token": "tokC", "duration_s": 20.0, "style": "neon", "width": 1280,
     "height": 720, "fps": 30, "rounds": [_round(1, 2.0, 10.0, 15.0, 5000, 0.01, True)]},
]}


def _span(k, start, guess, end, points, km=None):
    return {"round": k, "start_s": start, "guess_s": guess, "end_s": end, "points": points, "distance_km": km,
            "evidence": []}


def _clue(text, start, frame_index):
    return {"text": text, "category": "sign", "entity": None, "start_s": start, "end_s": start + 0.3,
            "frame_index": frame_index}


def _write_run(out: Path, videos: dict[str, tuple[dict, list | None]], rows: list[dict],
               failures: list[tuple[str, str, str, str]] = ()) -> Path:
    import datasets

    for folder, (info, spans) in videos.items():
        d = out / "videos" / folder
        d.mkdir(parents=True)
        (d / "info.json").write_text(json.dumps(info))
        if spans is not None:
            (d / "rounds.json").write_text(json.dumps(spans))
    if rows:
        datasets.DatasetDict({"train": datasets.Dataset.from_list(rows)}).save_to_disk(str(out / "dataset"))
    with sqlite3.connect(out / "run.sqlite") as conn:
        conn.execute("CREATE TABLE stage_runs (video_id TEXT, stage TEXT, status TEXT, error_type TEXT, "
                     "error_message TEXT)")
        conn.executemany("INSERT INTO stage_runs VALUES (?, ?, 'failed', ?, ?)", failures)
    return out


@pytest.fixture()
def flawed_run(tmp_path) -> Path:
    """vidA: r1 close, r2 points misread, r3 labelled 4 (label error), a false round in the summary;
    vidB: under another id, matched by its page; vidC: segmentation failed."""
    videos = {
        "vidA": ({"id": "vidA", "webpage_url": "http://127.0.0.1:1/watch/vidA"}, [
            _span(1, 3.5, 26.2, 31.0, 4998, 0.62), _span(2, 31.0, 36.0, 41.0, 1200, 2105.0),
            _span(4, 41.0, 47.0, 51.0, 0, None), _span(5, 51.0, 58.0, 60.0, 4000, 12.0)]),
        "renamed": ({"id": "other-id", "webpage_url": "http://127.0.0.1:1/watch/vidB"}, [
            _span(1, 3.0, 21.0, 25.0, 4000, 72.0), _span(2, 25.0, 30.0, 35.0, 300, 4000.4)]),
        "vidC": ({"id": "vidC", "webpage_url": "http://127.0.0.1:1/watch/vidC"}, None),
    }
    rows = [
        {"video_id": "vidA", "round": 1, "frame_times_s": [3.5, 5.5, 11.0],
         "clues": [_clue("tromso", 5.1, 1), _clue("yellow reflector", 12.2, 2), _clue("pretty good road", 8.0, 0),
                   _clue("norway", 6.0, None), _clue("norway", 24.0, 2)]},  # the conclusion, not the clue
        {"video_id": "vidA", "round": 2, "frame_times_s": [32.0], "clues": []},
        {"video_id": "other-id", "round": 1, "frame_times_s": [6.2], "clues": [_clue("Curitiba", 6.1, 0)]},
    ]
    return _write_run(tmp_path / "run", videos, rows,
                      [("vidC", "segment", "NoRounds", "no result screens detected in 4 frames")])


def test_figures_on_a_flawed_run(bench, flawed_run):
    f = bench.evaluate(TRUTH["videos"], flawed_run)
    assert (f["videos_expected"], f["videos_found"]) == (3, 3)
    assert (f["rounds_expected"], f["rounds_found"], f["missed_rounds"]) == (6, 4, 2)
    assert (f["false_rounds"], f["label_errors"]) == (2, 1)  # round "4" inside round 3's span; "5" in the summary
    # guess errors of the matched rounds: 0.2, 0.0, 1.0, 0.0
    assert f["guess_err_median_s"] == pytest.approx(0.1)
    assert f["guess_err_p95_s"] == pytest.approx(0.88)
    assert f["start_err_p95_s"] == pytest.approx(0.425)  # 0.5, 0, 0, 0
    assert f["points_exact"] == 3 and f["points_exact_rate"] == pytest.approx(0.5)
    assert f["distance_close"] == 4  # 72.0 vs 72.4 and 4000.4 vs 4000 are within the display's rounding
    assert (f["kept_expected"], f["kept_rows"], f["kept_matching"], f["kept_false"], f["kept_missed"]) == (3, 3, 2, 1, 1)
    # clue → frame: tromso 5.5 vs 5.0, yellow reflector 11.0 vs 12.0, curitiba 6.2 vs 6.0 (case-insensitive)
    assert f["clues_aligned"] == 3 and f["clues_unmatched"] == 2
    assert f["align_err_median_s"] == pytest.approx(0.5)
    assert f["align_err_p95_s"] == pytest.approx(0.95)
    # frame vs the clue's own time: tromso 5.5 vs 5.25, yellow reflector 11.0 vs 12.35, curitiba 6.2 vs 6.25
    assert f["frame_gap_p95_s"] == pytest.approx(1.24)
    groups = f["groups"]
    assert set(groups) == {"video:vidA", "video:vidB", "video:vidC", "style:classic", "style:neon",
                           "resolution:854x480", "resolution:1280x720", "fps:60", "fps:30"}
    assert groups["style:neon"]["rounds_expected"] == 3 and groups["style:neon"]["rounds_found"] == 2
    assert groups["video:vidB"]["guess_err_p95_s"] == pytest.approx(0.95)
    assert groups["video:vidC"]["guess_err_p95_s"] is None and groups["video:vidC"]["rounds_found"] == 0
    details = {d["video"]: d for d in f["details"]}
    assert details["vidB"]["run_folder"] == "renamed"
    assert "no result screens detected" in details["vidC"]["error"]
    assert details["vidA"]["points_wrong"] == [{"round": 2, "truth": 1220, "read": 1200}]
    problems = bench.acceptance_failures(f)
    assert any(p.startswith("all: 4/6 rounds found") for p in problems)
    assert any("video:vidC" in p for p in problems) and not any(p.startswith("video:vidB: guess") for p in problems)


def test_a_run_that_matches_the_truth_meets_the_acceptance(bench, tmp_path):
    # vidD: every round dropped by the filters, so no rows and nothing to align (not a failure)
    vid_d = {"id": "vidD", "page": "watch/vidD", "style": "classic", "rounds": [_round(1, 1.0, 6.0, 9.0, 120, 3000.0)]}
    truth = [TRUTH["videos"][1], vid_d]

    def spans(video):
        return [_span(r["round"], r["start_s"], r["guess_s"] + 0.2, r["end_s"], r["points"], r["distance_km"])
                for r in video["rounds"]]

    rows = [{"video_id": "vidB", "round": 1, "frame_times_s": [3.0, 6.4], "clues": [_clue("curitiba", 6.1, 1)]}]
    run = _write_run(tmp_path / "run", {"vidB": ({"id": "vidB"}, spans(truth[0])),
                                        "vidD": ({"id": "vidD"}, spans(vid_d))}, rows)
    f = bench.evaluate(truth, run)
    assert f["groups"]["video:vidD"]["align_err_p95_s"] is None
    assert bench.acceptance_failures(f) == []
    assert f["guess_err_p95_s"] == pytest.approx(0.2) and f["align_err_p95_s"] == pytest.approx(0.4)


def test_command_line_prints_one_json_object_last(flawed_run, tmp_path):
    truth = tmp_path / "truth.json"
    truth.write_text(json.dumps(TRUTH))
    proc = subprocess.run([sys.executable, str(BENCH), "--truth", str(truth), "--out", str(flawed_run)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    figures = json.loads(lines[-1])
    for key in ("rounds_expected", "rounds_found", "false_rounds", "guess_err_p95_s", "points_exact",
                "kept_expected", "kept_rows", "align_err_p95_s"):
        assert key in figures
    assert figures["rounds_found"] == 4 and figures["acceptance_failures"]
    assert any(line.startswith("video:vidC") for line in lines) and "acceptance: NOT met" in proc.stdout


def test_bad_inputs_name_the_item_and_the_cause(tmp_path, flawed_run):
    broken = json.loads(json.dumps(TRUTH))
    del broken["videos"][1]["rounds"][0]["guess_s"]
    truth = tmp_path / "truth.json"
    truth.write_text(json.dumps(broken))
    proc = subprocess.run([sys.executable, str(BENCH), "--truth", str(truth), "--out", str(flawed_run)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "video vidB rounds[0]: missing guess_s" in proc.stderr
    truth.write_text("[1, 2")
    proc = subprocess.run([sys.executable, str(BENCH), "--truth", str(truth), "--out", str(flawed_run)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "cannot read the truth file" in proc.stderr
    truth.write_text(json.dumps(TRUTH))
    proc = subprocess.run([sys.executable, str(BENCH), "--truth", str(truth), "--out", str(tmp_path / "nowhere")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "no videos/ folder" in proc.stderr


def test_demo_generator_writes_the_truth_fields(tmp_path):
    """The demo's truth.json carries the README fields; `kept` follows the paper's rules, recounted here
    from the captions the demo wrote (words starting in [start_s, guess_s), as the caption parser reads them)."""
    from collect.demo.generate import generate_corpus
    from collect.stages.transcript import parse_vtt

    truth = generate_corpus(tmp_path / "demo", n_videos=1, rounds_per_video=3, seed=5, round_seconds=38.0,
                            result_seconds=3.0, fps=1, size=(320, 180), intro_seconds=2.0)
    assert json.loads((tmp_path / "demo" / "truth.json").read_text()) == truth
    (video,) = truth["videos"]
    assert video["page"] == f"watch/{video['id']}" and video["duration_s"] == video["duration"]
    assert f"geoguessr.com/challenge/{video['token']}" in video["description"]
    transcript = parse_vtt(tmp_path / "demo" / "media" / f"{video['id']}.en.vtt", video_id=video["id"])
    words = [(w.start, w.text) for w in transcript.words()]
    limit = truth["videos"][0]["time_limit"]
    for r in video["rounds"]:
        said = [w for t, w in words if r["start_s"] <= t < r["guess_s"] and not w.startswith("[")]
        expected = r["points"] >= 3400 and len(said) >= 100 and (not limit or limit >= 30)
        assert r["kept"] == expected, (r["round"], r["points"], len(said))
        assert [text for _, text in r["clue_times"]] == [c["text"] for c in r["clues"]]
        assert all(r["start_s"] <= t < r["guess_s"] for t, _ in r["clue_times"])
