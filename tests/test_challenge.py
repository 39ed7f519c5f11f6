"""Challenge stage + GeoGuessr client against the demo server's GeoGuessr-compatible API."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from collect import layout
from collect.clients.geoguessr import (ChallengeNotFoundError, GeoGuessrAuthError, GeoGuessrClient,
                                       GeoGuessrUnavailableError, MalformedResponseError)
from collect.config import load_config
from collect.demo.server import DemoServer
from naviclues.fsutil import read_json
from collect.records import Challenge, Video, from_dict
from collect.stages.base import VideoContext
from collect.stages.challenge import (ChallengeStage, decode_pano_id, parse_challenge, parse_challenge_tokens,
                                      read_offline)

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "geoguessr" / "challenge_api_samples.json"
TOKEN = "Tok3nAAAAAAAAAAA"
COOKIE = "ncfa-secret-value-123"
PANO = "CAoSLEFGMVFpcE5fZ2h3"  # a Street View pano id as GeoGuessr stores it …
PANO_HEX = PANO.encode().hex()  # … and as the API sends it


def challenge_payload(token: str) -> dict:
    return {"challenge": {"token": token, "mapSlug": "world", "roundCount": 5, "timeLimit": 120,
                          "forbidMoving": True, "forbidZooming": False, "forbidRotating": True},
            "map": {"id": "world", "name": "A Diverse World", "slug": "world"}}


def rounds_payload() -> dict:
    rounds = [{"lat": 10.5 + k, "lng": -20.25 - k, "panoId": PANO_HEX if k == 0 else None, "heading": 90.0 + k,
               "pitch": 1.5, "zoom": 0, "streakLocationCode": "FR" if k == 0 else None,
               "startTime": "2024-01-01T00:00:00Z"} for k in range(5)]
    return {"items": [{"gameToken": "g", "playerName": "p", "game": {"token": "g", "rounds": rounds}}]}


@pytest.fixture()
def corpus(tmp_path) -> Path:
    api = tmp_path / "corpus" / "api"
    api.mkdir(parents=True)
    for token in (TOKEN, "Other1234567"):
        (api / f"challenge_{token}.json").write_text(json.dumps(challenge_payload(token)))
        (api / f"rounds_{token}.json").write_text(json.dumps(rounds_payload()))
    (tmp_path / "corpus" / "videos.json").write_text("[]")
    return tmp_path / "corpus"


def make_ctx(tmp_path: Path, server_url: str, token: str | None = TOKEN, **challenge_cfg) -> VideoContext:
    description = f"Play: https://www.geoguessr.com/challenge/{token} !" if token else "just a vlog"
    video = Video(id="vid-1", url="http://x/watch/vid-1", description=description,
                  challenge_tokens=parse_challenge_tokens(description))
    cfg = load_config(overrides={"challenge": {"api_base": server_url, "ncfa_cookie": COOKIE, "retries": 3,
                                               "backoff_s": 0.01, "timeout_s": 5, **challenge_cfg}}, env={})
    return VideoContext(video=video, out_dir=tmp_path / "out", config=cfg)


def all_text(root: Path) -> str:
    return "\n".join(p.read_text("utf-8", errors="replace") for p in root.rglob("*") if p.is_file())


def test_parse_tokens_and_pano_ids():
    text = ("Play https://www.geoguessr.com/challenge/AbC123xyz and geoguessr.com/de/challenge/Zz_9-8yy "
            "again https://geoguessr.com/challenge/AbC123xyz?x=1 not geoguessr.com/maps/abc")
    assert parse_challenge_tokens(text) == ["AbC123xyz", "Zz_9-8yy"]
    assert parse_challenge_tokens(None) == []
    assert decode_pano_id(PANO_HEX) == PANO
    assert decode_pano_id(PANO) == PANO  # already plain
    assert decode_pano_id(None) is None


@pytest.mark.skipif(not SAMPLES.exists(), reason="shared GeoGuessr samples absent")
def test_real_api_samples_parse():
    samples = json.loads(SAMPLES.read_text())
    for payload in samples:
        token = payload["challenge"]["token"]
        challenge = parse_challenge(token, payload, rounds_payload())
        assert challenge.token == token
        assert challenge.map_name == payload["map"]["name"]
        assert challenge.map_slug == payload["challenge"]["mapSlug"]
        assert challenge.round_count == payload["challenge"]["roundCount"]
        assert challenge.time_limit_s == payload["challenge"]["timeLimit"]
        assert challenge.forbid_moving is payload["challenge"]["forbidMoving"]
        assert [r.round for r in challenge.rounds] == [1, 2, 3, 4, 5]
        assert challenge.rounds[0].pano_id == PANO and challenge.rounds[0].country_code == "fr"


def test_stage_fetches_caches_and_rerun_does_not_request(tmp_path, corpus):
    with DemoServer(corpus, require_cookie=COOKIE) as server:
        ctx = make_ctx(tmp_path, server.url)
        outcome = ChallengeStage()(ctx)
        assert outcome.status == "done", outcome.error
        assert outcome.outputs["source"] == "api"
        challenge = from_dict(Challenge, read_json(ctx.path(layout.CHALLENGE_JSON)))
        assert challenge.map_name == "A Diverse World" and challenge.time_limit_s == 120
        assert challenge.rounds[0].pano_id == PANO and challenge.rounds[0].heading == 90.0
        assert challenge.rounds[4].lat == 14.5 and challenge.rounds[4].pano_id is None
        assert (ctx.path(layout.CHALLENGE_RAW_DIR) / f"challenge_{TOKEN}.json").is_file()
        highscores = server.requests_matching(f"/api/v3/results/highscores/{TOKEN}")
        assert highscores == [f"/api/v3/results/highscores/{TOKEN}?friends=false&limit=26&minRounds=5"]
        before = len(server.request_log)
        again = ChallengeStage()(ctx)
        assert again.status == "done" and again.outputs["source"] == "cache"
        assert len(server.request_log) == before  # cache hit: no new request
    assert COOKIE not in all_text(ctx.out_dir)
    assert COOKIE not in json.dumps(ChallengeStage().config_slice(ctx))


def test_429_backs_off_honouring_retry_after_then_succeeds(tmp_path, corpus):
    faults = {TOKEN: {"status": 429, "times": 2, "retry_after": 0.3, "endpoint": "challenges"}}
    with DemoServer(corpus, faults=faults, require_cookie=COOKIE) as server:
        start = time.monotonic()
        outcome = ChallengeStage()(make_ctx(tmp_path, server.url))
        elapsed = time.monotonic() - start
        assert outcome.status == "done", outcome.error
        assert server.request_log.count(f"/api/v3/challenges/{TOKEN}") == 3
    assert elapsed >= 0.6  # two Retry-After waits of 0.3 s, not the 0.01 s exponential backoff


@pytest.mark.parametrize("fault, error_type, fragment", [
    ({"status": 500, "times": None}, "GeoGuessrUnavailableError", "still failing after 4 attempts"),
    (404, "ChallengeDeleted", f"challenge {TOKEN} deleted"),
    ("malformed", "MalformedResponseError", "malformed JSON"),
])
def test_failures_become_clear_error_records(tmp_path, corpus, fault, error_type, fragment):
    with DemoServer(corpus, faults={TOKEN: fault}, require_cookie=COOKIE) as server:
        ctx = make_ctx(tmp_path, server.url)
        outcome = ChallengeStage()(ctx)
        hits = server.request_log.count(f"/api/v3/challenges/{TOKEN}")
    assert outcome.status == "failed"
    assert outcome.error.type == error_type and fragment in outcome.error.message
    assert TOKEN in outcome.error.message
    assert hits == (4 if fault != 404 and fault != "malformed" else 1)  # only 5xx/429 are retried
    assert not ctx.path(layout.CHALLENGE_JSON).exists()
    assert not (ctx.video_dir / layout.CHALLENGE_RAW_DIR).exists() or not any(
        (ctx.video_dir / layout.CHALLENGE_RAW_DIR).iterdir())  # nothing bad cached


def test_500_once_is_retried(tmp_path, corpus):
    with DemoServer(corpus, faults={TOKEN: {"status": 500, "times": 1}}, require_cookie=COOKIE) as server:
        outcome = ChallengeStage()(make_ctx(tmp_path, server.url))
    assert outcome.status == "done", outcome.error


def test_401_names_the_cookie_but_not_its_value(tmp_path, corpus):
    with DemoServer(corpus, require_cookie="the-right-one") as server:
        outcome = ChallengeStage()(make_ctx(tmp_path, server.url))
        with GeoGuessrClient(server.url, None, retries=0) as anonymous, pytest.raises(GeoGuessrAuthError,
                                                                                      match="GEOGUESSR_NCFA"):
            anonymous.get_challenge(TOKEN)
    assert outcome.status == "failed" and outcome.error.type == "GeoGuessrAuthError"
    assert "GeoGuessr rejected the session cookie (_ncfa)" in outcome.error.message
    assert COOKIE not in outcome.error.message


def test_client_typed_errors(corpus):
    with DemoServer(corpus, faults={"Other1234567": "malformed"}) as server:
        client = GeoGuessrClient(server.url, COOKIE, retries=0, backoff_s=0)
        assert client.get_challenge(TOKEN)["challenge"]["roundCount"] == 5
        assert client.get_rounds(TOKEN, 5)["items"][0]["game"]["rounds"][0]["panoId"] == PANO_HEX
        with pytest.raises(ChallengeNotFoundError):
            client.get_challenge("Missing12345")
        with pytest.raises(MalformedResponseError):
            client.get_challenge("Other1234567")
        with pytest.raises(ValueError, match="invalid challenge token"):
            client.get_challenge("../../etc")
    with pytest.raises(GeoGuessrUnavailableError, match="network error"):
        GeoGuessrClient("http://127.0.0.1:9", retries=1, backoff_s=0, timeout_s=1).get_challenge(TOKEN)


class _RecordingServer:
    """127.0.0.1 server that records each request's Cookie header; redirects when `redirect_to` is set."""

    def __init__(self, redirect_to: str | None = None):
        from http.server import BaseHTTPRequestHandler

        from navig_fixtures import LocalServer

        self.cookies: list[str | None] = []
        self.redirect_to = redirect_to
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.cookies.append(self.headers.get("Cookie"))
                if server.redirect_to:
                    self.send_response(302)
                    self.send_header("Location", server.redirect_to + self.path)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = json.dumps(challenge_payload(TOKEN)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = LocalServer(Handler)
        self.port = self.server.httpd.server_address[1]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.server.close()


@pytest.mark.parametrize("target_host", ["localhost", "127.0.0.1"])  # another host; the same host, another port
def test_cookie_does_not_follow_a_redirect(target_host):
    with _RecordingServer() as elsewhere, \
            _RecordingServer(redirect_to=f"http://{target_host}:{elsewhere.port}") as api:
        with GeoGuessrClient(f"http://127.0.0.1:{api.port}", COOKIE, retries=0, timeout_s=5) as client:
            assert client.get_challenge(TOKEN)["challenge"]["token"] == TOKEN  # served after the redirect
    assert api.cookies == [f"_ncfa={COOKIE}"]  # the configured base gets the cookie …
    assert elsewhere.cookies == [None]  # … the redirect target does not


def test_offline_dir_combined_and_separate(tmp_path):
    offline = tmp_path / "offline"
    offline.mkdir()
    (offline / f"{TOKEN}.json").write_text(json.dumps({"challenge": challenge_payload(TOKEN), "rounds": rounds_payload()}))
    ctx = make_ctx(tmp_path, "http://127.0.0.1:9", offline_dir=str(offline))  # unreachable API: must not be used
    outcome = ChallengeStage()(ctx)
    assert outcome.status == "done" and outcome.outputs["source"] == "offline", outcome.error
    assert from_dict(Challenge, read_json(ctx.path(layout.CHALLENGE_JSON))).rounds[0].pano_id == PANO

    corpus_api = tmp_path / "api"
    corpus_api.mkdir()
    (corpus_api / "challenge_Other1234567.json").write_text(json.dumps(challenge_payload("Other1234567")))
    (corpus_api / "rounds_Other1234567.json").write_text(json.dumps(rounds_payload()))
    challenge, rounds = read_offline(corpus_api, "Other1234567")
    assert parse_challenge("Other1234567", challenge, rounds).rounds[2].lng == -22.25
    assert read_offline(corpus_api, TOKEN) is None


def test_no_link_and_bad_rounds(tmp_path, corpus):
    outcome = ChallengeStage()(make_ctx(tmp_path, "http://127.0.0.1:9", token=None))
    assert outcome.status == "failed"
    assert outcome.error.message == "no geoguessr.com/challenge link in the description"
    with pytest.raises(MalformedResponseError, match="no finished game"):
        parse_challenge(TOKEN, challenge_payload(TOKEN), {"items": []})
    broken = rounds_payload()
    broken["items"][0]["game"]["rounds"][1]["lat"] = "north"
    with pytest.raises(MalformedResponseError, match="round 2 lat"):
        parse_challenge(TOKEN, challenge_payload(TOKEN), broken)
