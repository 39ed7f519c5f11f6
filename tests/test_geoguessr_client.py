"""GeoGuessr client + challenge stage against a 127.0.0.1 server speaking the real protocol
(tests/geoguessr_server.py): highscores pagination, the player's guesses, and every API failure."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from collect import layout
from collect.clients.geoguessr import GeoGuessrClient, GeoGuessrUnavailableError, MalformedResponseError
from collect.config import load_config
from collect.records import Challenge, Video, from_dict
from collect.stages.base import VideoContext
from collect.stages.challenge import ChallengeStage, guess_distance_km, guess_points, parse_challenge
from geoguessr_server import (LOCATIONS, GeoGuessrServer, challenge_payload, guess, highscores_item,
                              other_players)
from naviclues.fsutil import read_json

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "geoguessr" / "challenge_api_samples.json"
TOKEN = "Zq8LmWc2Xr4TyU1o"
OTHER = "Bb7HhJj3Kk9Ll0Pp"
COOKIE = "ncfa-cookie-value-987"
CREATOR_ID = "5f0c0ffee0ddba11"
STREAMER_GUESSES = [guess(4874, 12_400.0, 59.2, 18.1), guess(0, None, timed_out=True), guess(3512, 431_000.0, 36.0, 139.0),
                    guess(5000, 8.0, -22.9, -43.17), guess(2101, 1_293_633.8, 62.0, -19.0)]


def games_with_streamer_at(position: int, total: int) -> list[dict]:
    games = other_players(total - 1)
    games.insert(position, highscores_item(CREATOR_ID, "StreamerOne", STREAMER_GUESSES))
    return games


def ctx_for(tmp_path: Path, server_url: str, token: str = TOKEN, video_id: str = "vid-1", channel: str = "",
            **challenge_cfg) -> VideoContext:
    video = Video(id=video_id, url=f"http://x/watch/{video_id}", challenge_tokens=[token], channel=channel)
    cfg = load_config(overrides={"challenge": {"api_base": server_url, "ncfa_cookie": COOKIE, "retries": 2,
                                               "backoff_s": 0.01, "timeout_s": 2, **challenge_cfg}}, env={})
    return VideoContext(video=video, out_dir=tmp_path / "out", config=cfg)


def stored(ctx: VideoContext) -> Challenge:
    return from_dict(Challenge, read_json(ctx.path(layout.CHALLENGE_JSON)))


def test_highscores_pages_are_followed_to_the_players_game(tmp_path):
    games = {TOKEN: games_with_streamer_at(55, 70)}
    with GeoGuessrServer({TOKEN: challenge_payload(TOKEN)}, games, cookie=COOKIE) as server:
        ctx = ctx_for(tmp_path, server.url)
        outcome = ChallengeStage()(ctx)
        pages = server.paths(f"/api/v3/results/highscores/{TOKEN}")
        again = ChallengeStage()(ctx)
        requests_after_rerun = len(server.log)
    assert outcome.status == "done", outcome.error
    assert outcome.outputs["player"] == "StreamerOne" and outcome.note is None
    base = f"/api/v3/results/highscores/{TOKEN}?friends=false&limit=26&minRounds=5"
    # the streamer is game 56: page 3; the last page (games 53-70) is never fetched past it
    assert pages == [base, base + "&paginationToken=page-26", base + "&paginationToken=page-52"]
    challenge = stored(ctx)
    assert challenge.player == "StreamerOne" and challenge.creator == "StreamerOne"
    assert [r.player_points for r in challenge.rounds] == [4874, 0, 3512, 5000, 2101]
    assert [r.player_distance_km for r in challenge.rounds] == [12.4, None, 431.0, 0.008, pytest.approx(1293.6338)]
    assert challenge.rounds[1].player_timed_out is True and challenge.rounds[1].player_lat is None
    assert (challenge.rounds[0].player_lat, challenge.rounds[0].player_lng) == (59.2, 18.1)
    # the locations: lat/lng/pano id (hex decoded)/heading of the game's rounds
    assert [(r.lat, r.lng, r.pano_id, r.heading, r.country_code) for r in challenge.rounds] == LOCATIONS
    raw = read_json(ctx.path(layout.CHALLENGE_RAW_DIR, f"rounds_{TOKEN}.json"))
    assert raw["pagesRead"] == 3 and len(raw["items"]) == 2  # the first game and the player's
    assert again.status == "done" and again.outputs["source"] == "cache"
    assert requests_after_rerun == 1 + 3  # the rerun asked nothing


def test_a_named_player_missing_from_the_pages_is_noted(tmp_path):
    games = {TOKEN: games_with_streamer_at(0, 60)}
    with GeoGuessrServer({TOKEN: challenge_payload(TOKEN)}, games, cookie=COOKIE) as server:
        found = ChallengeStage()(ctx_for(tmp_path / "a", server.url, player="streamerone"))  # nick, any case
        missing = ctx_for(tmp_path / "b", server.url, player="NotInThisChallenge", max_pages=2)
        outcome = ChallengeStage()(missing)
        pages = server.paths("/api/v3/results/highscores/")
    assert found.status == "done" and found.outputs["player"] == "StreamerOne"
    assert outcome.status == "done", outcome.error
    assert "no game of NotInThisChallenge in 2 highscores page(s)" in outcome.note
    assert all(r.player_points is None for r in stored(missing).rounds)
    assert stored(missing).rounds[0].lat == LOCATIONS[0][0]  # the locations still come from a finished game
    assert len(pages) == 1 + 2  # page 1 held the streamer; max_pages=2 stopped the other search


@pytest.mark.parametrize("status", [401, 403])
def test_rejected_cookie_fails_that_video_only(tmp_path, status):
    challenges = {TOKEN: challenge_payload(TOKEN), OTHER: challenge_payload(OTHER)}
    games = {TOKEN: games_with_streamer_at(0, 3), OTHER: games_with_streamer_at(0, 3)}
    faults = {(TOKEN, "challenges"): [{"status": status}]}
    with GeoGuessrServer(challenges, games, cookie=COOKIE, faults=faults) as server:
        rejected = ChallengeStage()(ctx_for(tmp_path, server.url, TOKEN, "vid-1"))
        fine = ChallengeStage()(ctx_for(tmp_path, server.url, OTHER, "vid-2"))
        hits = server.paths(f"/api/v3/challenges/{TOKEN}")
    assert rejected.status == "failed" and rejected.error.type == "GeoGuessrAuthError"
    assert f"HTTP {status}" in rejected.error.message and "cookie" in rejected.error.message
    assert TOKEN in rejected.error.message and COOKIE not in rejected.error.message
    assert hits == [f"/api/v3/challenges/{TOKEN}"]  # not retried
    assert fine.status == "done", fine.error


def test_deleted_challenge_is_the_videos_recorded_outcome(tmp_path):
    with GeoGuessrServer({}, {}, cookie=COOKIE) as server:
        ctx = ctx_for(tmp_path, server.url)
        outcome = ChallengeStage()(ctx)
        hits = len(server.log)
    assert outcome.status == "failed" and outcome.error.type == "ChallengeDeleted"
    assert outcome.error.message.startswith(f"challenge {TOKEN} deleted: not found (HTTP 404 from the challenges")
    assert hits == 1 and not ctx.path(layout.CHALLENGE_JSON).exists()


def test_429_waits_what_retry_after_asks(tmp_path):
    faults = {(TOKEN, "highscores"): [{"status": 429, "retry_after": "0.5"}, {"status": 429, "retry_after": "0.5"}]}
    with GeoGuessrServer({TOKEN: challenge_payload(TOKEN)}, {TOKEN: games_with_streamer_at(0, 2)}, cookie=COOKIE,
                         faults=faults) as server:
        outcome = ChallengeStage()(ctx_for(tmp_path, server.url))
        stamps = [t for t, p, _ in server.log if "/highscores/" in p]
    assert outcome.status == "done", outcome.error
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert len(gaps) == 2 and all(0.5 <= g < 1.5 for g in gaps), gaps  # not the 0.01 s exponential backoff


def test_retry_after_beyond_the_cap_waits_the_cap(tmp_path):
    faults = {(TOKEN, "challenges"): [{"status": 429, "retry_after": "3600"}]}
    with GeoGuessrServer({TOKEN: challenge_payload(TOKEN)}, {}, faults=faults) as server:
        start = time.monotonic()
        with GeoGuessrClient(server.url, retries=1, backoff_s=0.01, max_wait_s=0.3) as client:
            assert client.get_challenge(TOKEN)["challenge"]["token"] == TOKEN
        waited = time.monotonic() - start
    assert 0.3 <= waited < 2.0


@pytest.mark.parametrize("fault, fragment", [
    ({"status": 500}, "HTTP 500 server error"),
    ({"delay": 1.0}, "network error (ReadTimeout)"),
    ({"cut_off": True}, "network error (ChunkedEncodingError)"),
])
def test_persistent_failures_end_in_a_clear_error_after_the_retries(tmp_path, fault, fragment):
    faults = {(TOKEN, "challenges"): [fault] * 3}
    with GeoGuessrServer({TOKEN: challenge_payload(TOKEN)}, {}, cookie=COOKIE, faults=faults) as server:
        ctx = ctx_for(tmp_path, server.url, timeout_s=0.3)
        outcome = ChallengeStage()(ctx)
        hits = len(server.paths(f"/api/v3/challenges/{TOKEN}"))
    assert outcome.status == "failed" and outcome.error.type == "GeoGuessrUnavailableError"
    assert f"challenge {TOKEN} still failing after 3 attempts: {fragment}" in outcome.error.message
    assert hits == 3
    assert not ctx.path(layout.CHALLENGE_RAW_DIR, f"challenge_{TOKEN}.json").exists()


@pytest.mark.parametrize("fault", [{"status": 500}, {"delay": 1.0}, {"cut_off": True}])
def test_one_passing_failure_is_retried(tmp_path, fault):
    faults = {(TOKEN, "highscores"): [fault]}
    with GeoGuessrServer({TOKEN: challenge_payload(TOKEN)}, {TOKEN: games_with_streamer_at(0, 2)}, cookie=COOKIE,
                         faults=faults) as server:
        outcome = ChallengeStage()(ctx_for(tmp_path, server.url, timeout_s=0.3))
    assert outcome.status == "done", outcome.error
    assert outcome.outputs["player"] == "StreamerOne"


def test_truncated_json_is_a_malformed_response_and_nothing_is_cached(tmp_path):
    faults = {(TOKEN, "challenges"): [{"truncated_json": True}]}
    with GeoGuessrServer({TOKEN: challenge_payload(TOKEN)}, {}, cookie=COOKIE, faults=faults) as server:
        ctx = ctx_for(tmp_path, server.url)
        outcome = ChallengeStage()(ctx)
    assert outcome.status == "failed" and outcome.error.type == "MalformedResponseError"
    assert f"malformed JSON from the challenges endpoint for challenge {TOKEN}" in outcome.error.message
    assert not (ctx.video_dir / layout.CHALLENGE_RAW_DIR).exists() or not any(
        (ctx.video_dir / layout.CHALLENGE_RAW_DIR).iterdir())


def test_client_pages_and_refuses_a_looping_pagination_token():
    games = {TOKEN: other_players(5)}
    with GeoGuessrServer({TOKEN: challenge_payload(TOKEN)}, games) as server:
        with GeoGuessrClient(server.url, retries=0) as client:
            pages = list(client.iter_highscores(TOKEN, 5, limit=2))
            one = list(client.iter_highscores(TOKEN, 5, limit=2, max_pages=1))
    assert [len(p["items"]) for p in pages] == [2, 2, 1] and pages[-1]["paginationToken"] is None
    assert [i["playerName"] for p in pages for i in p["items"]] == [f"player{k}" for k in range(5)]
    assert len(one) == 1

    class Looping:  # a server that keeps answering the same token
        def get_highscores_page_raw(self, *args, **kwargs):
            return json.dumps({"items": [{}], "paginationToken": "same"}).encode()

    with pytest.raises(MalformedResponseError, match="paginationToken 'same' repeats"):
        list(GeoGuessrClient.iter_highscores(Looping(), TOKEN))  # type: ignore[arg-type]


def test_guess_fields_in_every_documented_form():
    assert guess_points({"roundScoreInPoints": 4874}) == 4874
    assert guess_points({"roundScore": {"amount": "4,874", "unit": "points"}}) == 4874
    assert guess_points({"roundScore": {"amount": "4.874", "unit": "points"}}) == 4874
    assert guess_distance_km({"distanceInMeters": 12_400.0}) == 12.4
    assert guess_distance_km({"distance": {"meters": {"amount": "1,293.6", "unit": "km"}}}) == pytest.approx(1293.6)
    assert guess_distance_km({"distance": {"meters": {"amount": "850", "unit": "m"}}}) == 0.85
    assert guess_distance_km({"timedOut": True, "timedOutWithGuess": False, "distanceInMeters": 0}) is None
    assert guess_distance_km({"timedOut": True, "timedOutWithGuess": True, "distanceInMeters": 5000.0}) == 5.0
    bad = {"items": [highscores_item(CREATOR_ID, "StreamerOne", [guess(4874, 1.0) for _ in range(5)])]}
    bad["items"][0]["game"]["player"]["guesses"][2]["roundScoreInPoints"] = 7000
    with pytest.raises(MalformedResponseError, match="player 'StreamerOne' round 3 points are 7000"):
        parse_challenge(TOKEN, challenge_payload(TOKEN), bad)


@pytest.mark.skipif(not SAMPLES.exists(), reason="shared GeoGuessr samples absent")
def test_real_challenge_payloads_with_their_creators_game():
    for payload in json.loads(SAMPLES.read_text()):
        token, creator = payload["challenge"]["token"], payload["creator"]
        highscores = {"items": other_players(2) + [highscores_item(creator["id"], creator["nick"], STREAMER_GUESSES)],
                      "paginationToken": None}
        challenge = parse_challenge(token, payload, highscores)
        assert challenge.token == token and challenge.map_name == payload["map"]["name"]
        assert challenge.time_limit_s == payload["challenge"]["timeLimit"]
        assert challenge.round_count == payload["challenge"]["roundCount"] == len(challenge.rounds)
        assert challenge.creator == creator["nick"] and challenge.player == creator["nick"]
        assert [r.player_points for r in challenge.rounds] == [4874, 0, 3512, 5000, 2101]


def test_another_player_setting_searches_the_pages_again(tmp_path):
    games = {TOKEN: other_players(3) + [highscores_item(CREATOR_ID, "StreamerOne", STREAMER_GUESSES)]}
    with GeoGuessrServer({TOKEN: challenge_payload(TOKEN)}, games, cookie=COOKIE) as server:
        creator = ChallengeStage()(ctx_for(tmp_path, server.url))
        before = len(server.paths("/api/v3/results/highscores/"))
        other = ctx_for(tmp_path, server.url, player="player1")  # the same video folder, another player
        again = ChallengeStage()(other)
        after = len(server.paths("/api/v3/results/highscores/"))
    assert creator.outputs["player"] == "StreamerOne" and before == 1
    assert again.status == "done" and again.outputs["source"] == "api" and after == 2
    assert again.outputs["player"] == "player1" and stored(other).rounds[0].player_points == 3999


def test_the_channel_playing_a_viewers_challenge_is_the_player(tmp_path):
    # the challenge was made by a viewer; the streamer's GeoGuessr nick is their channel name without spaces
    payload = challenge_payload(TOKEN, creator_id="61viewer0000000000000000", creator_nick="SomeViewer")
    games = {TOKEN: other_players(30) + [highscores_item(CREATOR_ID, "StreamerOne", STREAMER_GUESSES)]}
    with GeoGuessrServer({TOKEN: payload}, games, cookie=COOKIE) as server:
        streamer = ctx_for(tmp_path / "a", server.url, channel="Streamer One")
        outcome = ChallengeStage()(streamer)
        unknown = ChallengeStage()(ctx_for(tmp_path / "b", server.url, channel="Another Channel", max_pages=2))
    assert outcome.status == "done" and outcome.outputs["player"] == "StreamerOne", outcome.error
    assert [r.player_points for r in stored(streamer).rounds] == [4874, 0, 3512, 5000, 2101]
    assert unknown.status == "done" and unknown.outputs["player"] is None
    assert "no game of the channel (Another Channel) or the creator (SomeViewer) in 2 highscores page(s)" in unknown.note


def test_a_player_game_missing_guesses_is_malformed_not_silently_partial():
    """Three guesses for five rounds: an error naming the player and the counts, not two rounds
    quietly left without the player's points."""
    short = {"items": [highscores_item(CREATOR_ID, "StreamerOne", STREAMER_GUESSES)]}
    short["items"][0]["game"]["player"]["guesses"] = STREAMER_GUESSES[:3]
    with pytest.raises(MalformedResponseError, match="player 'StreamerOne' has 3 guesses for 5 rounds"):
        parse_challenge(TOKEN, challenge_payload(TOKEN), short)
