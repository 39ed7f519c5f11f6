"""The demo corpus generator: layout, media, captions, API payloads, truth, determinism."""
from __future__ import annotations

import json
import math
import re
import subprocess
from pathlib import Path

import pytest

from collect.demo.generate import format_distance, generate_corpus, generate_long_video, points_for
from naviclues.fsutil import read_json
from collect.stages.transcript import parse_vtt
from collect.video import ffmpeg_exe, probe

ROUNDS = 3


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("gen")
    truth = generate_corpus(root / "corpus", n_videos=2, rounds_per_video=ROUNDS, seed=11)
    return root / "corpus", truth


def test_layout_and_videos_json(corpus):
    root, truth = corpus
    assert read_json(root / "truth.json") == truth
    videos = read_json(root / "videos.json")
    assert [v["id"] for v in videos] == ["demo0001", "demo0002"]
    for v, tv in zip(videos, truth["videos"]):
        assert set(v) == {"id", "title", "description", "upload_date", "duration", "channel"}
        assert re.fullmatch(r"[a-z0-9]+", v["id"])  # ids are plain; hostility lives in titles
        assert re.fullmatch(r"\d{8}", v["upload_date"])
        token = re.search(r"https://www\.geoguessr\.com/challenge/([A-Za-z0-9]{16})\b", v["description"]).group(1)
        assert token == tv["challenge_token"]
        for name in (f"media/{v['id']}.mp4", f"media/{v['id']}.en.vtt", f"api/challenge_{token}.json",
                     f"api/rounds_{token}.json"):
            assert (root / name).is_file(), name
    assert any("../" in v["title"] and "<b>" in v["title"] for v in videos)


def test_video_has_audio_and_expected_duration(corpus):
    root, truth = corpus
    tv = truth["videos"][0]
    info = probe(root / tv["media"])
    assert (info.width, info.height) == (640, 360)
    assert abs(info.duration_s - tv["duration"]) < 0.6
    err = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(root / tv["media"])],
                         capture_output=True, text=True).stderr
    assert re.search(r"Audio: aac", err) and re.search(r"Video: h264.*yuv420p", err)


def test_timeline_points_and_distances_are_consistent(corpus):
    _, truth = corpus
    for tv in truth["videos"]:
        rounds = tv["rounds"]
        assert [r["round"] for r in rounds] == list(range(1, ROUNDS + 1))
        assert rounds[-1]["end_s"] == tv["duration"]
        for a, b in zip(rounds, rounds[1:]):
            assert a["end_s"] == b["start_s"]
        for r in rounds:
            assert r["start_s"] < r["guess_s"] < r["end_s"]
            assert r["points"] == min(5000, round(5000 * math.exp(-r["distance_km"] / 1492.7)))
            assert format_distance(r["distance_km"])[0] == r["distance_text"]
    assert format_distance(0.8504) == ("850 m", 0.85)
    assert format_distance(12.34) == ("12.3 km", 12.3)
    assert format_distance(1204.4) == ("1,204 km", 1204.0)
    assert points_for(0.0) == 5000


def test_captions_are_youtube_auto_style_and_narration_is_timed(corpus):
    root, truth = corpus
    tv = truth["videos"][0]
    text = (root / tv["captions"]).read_text("utf-8")
    assert text.startswith("WEBVTT\nKind: captions\nLanguage: en\n")
    assert "align:start position:0%" in text and "[Music]" in text
    assert re.search(r"<\d\d:\d\d:\d\d\.\d{3}><c> \w", text)
    transcript = parse_vtt(root / tv["captions"], video_id=tv["id"])
    assert transcript.source == "captions:auto"
    words = transcript.words()
    for r in tv["rounds"]:
        before = [w.text for w in words if r["start_s"] <= w.start < r["guess_s"] and not w.text.startswith("[")]
        after = " ".join(w.text for w in words if r["guess_s"] <= w.start < r["end_s"])
        assert len(before) >= 100, (r["round"], len(before))
        assert " ".join(before) == r["narration"]
        assert f"it was {r['city']}" in after and f"it was {r['city']}" not in " ".join(before)
        assert str(r["points"]) in after
        for clue in r["clues"]:
            said = transcript.text_between(clue["start_s"] - 0.01, clue["end_s"])
            assert clue["text"] in said
            assert r["start_s"] <= clue["start_s"] < clue["end_s"] < r["guess_s"]
    opening = transcript.text_between(tv["rounds"][1]["start_s"], tv["rounds"][1]["start_s"] + 3)
    assert re.search(r"round two|next round", opening)


def test_api_payloads_follow_geoguessr_format(corpus, shared_dir_optional):
    root, truth = corpus
    tv = truth["videos"][0]
    challenge = read_json(root / f"api/challenge_{tv['challenge_token']}.json")
    assert challenge["challenge"]["token"] == tv["challenge_token"]
    assert challenge["challenge"]["roundCount"] == ROUNDS
    assert challenge["challenge"]["forbidMoving"] is True
    assert challenge["challenge"]["timeLimit"] == 0 or challenge["challenge"]["timeLimit"] >= 30
    assert challenge["map"]["name"] == tv["map_name"]
    if shared_dir_optional is not None:  # same keys as the real endpoint's answers
        sample = json.loads((shared_dir_optional / "geoguessr/challenge_api_samples.json").read_text())[0]
        assert set(sample["challenge"]) <= set(challenge["challenge"])
        assert set(sample["map"]) <= set(challenge["map"])
        assert {"nick", "id", "countryCode"} <= set(challenge["creator"])
    scores = read_json(root / f"api/rounds_{tv['challenge_token']}.json")
    game = scores["items"][0]["game"]
    assert len(game["rounds"]) == len(game["player"]["guesses"]) == ROUNDS
    for api_round, guess, r in zip(game["rounds"], game["player"]["guesses"], tv["rounds"]):
        assert (api_round["lat"], api_round["lng"]) == (r["lat"], r["lng"])
        assert bytes.fromhex(api_round["panoId"]).decode("ascii") == r["pano_id"]  # hex-encoded, as GeoGuessr does
        assert len(r["pano_id"]) == 22 and api_round["streakLocationCode"] == r["country_code"].lower()
        assert guess["roundScoreInPoints"] == r["points"]
        assert guess["distanceInMeters"] == pytest.approx(r["distance_km"] * 1000)
        from geopy.distance import geodesic

        assert geodesic((guess["lat"], guess["lng"]), (r["lat"], r["lng"])).km == pytest.approx(
            r["distance_km"], rel=0.01, abs=0.01)


def test_same_seed_same_bytes(tmp_path):
    kwargs = dict(n_videos=1, rounds_per_video=2, seed=3, round_seconds=12.0, result_seconds=4.0, intro_seconds=4.0)
    a = generate_corpus(tmp_path / "a", **kwargs)
    b = generate_corpus(tmp_path / "b", **kwargs)
    assert a == b
    for rel in ("media/demo0001.mp4", "media/demo0001.en.vtt", "videos.json"):
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    c = generate_corpus(tmp_path / "c", **{**kwargs, "seed": 4})
    assert c["videos"][0]["challenge_token"] != a["videos"][0]["challenge_token"]


def test_long_video_for_benchmarks(tmp_path):
    truth = generate_long_video(tmp_path / "long", minutes=2.0, round_seconds=12.0, result_seconds=4.0)
    (video,) = truth["videos"]
    assert video["id"] == "long0001"
    assert 120 <= video["duration"] < 140
    assert abs(probe(tmp_path / "long" / video["media"]).duration_s - video["duration"]) < 0.6


@pytest.fixture
def shared_dir_optional():
    shared = Path(__file__).resolve().parents[2] / "shared"
    return shared if shared.exists() else None
