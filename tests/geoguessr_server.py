"""A GeoGuessr web-API double on 127.0.0.1, written from the documented protocol (see
collect/clients/geoguessr.py): the challenge settings endpoint and the paginated highscores
endpoint, the `_ncfa` cookie check, and faults injected per request.

Payload builders make responses shaped like the real ones (`challenge`/`map`/`creator` objects;
highscores items with `game.rounds` and `game.player.guesses`; `paginationToken`), so tests are
self-contained; tests/test_challenge.py also parses the real samples in ../shared when present.
"""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlparse

from navig_fixtures import LocalServer


def challenge_payload(token: str, *, creator_id: str = "5f0c0ffee0ddba11", creator_nick: str = "StreamerOne",
                      time_limit: int = 120, round_count: int = 5) -> dict:
    return {
        "challenge": {"token": token, "mapSlug": "62a44b22040f04bd36e8a914", "roundCount": round_count,
                      "timeLimit": time_limit, "forbidMoving": True, "forbidZooming": False, "forbidRotating": False,
                      "numberOfParticipants": 3, "gameMode": "standard", "challengeType": 0,
                      "streakType": "countrystreak", "accessLevel": 0},
        "map": {"id": "62a44b22040f04bd36e8a914", "name": "A Community World", "slug": "62a44b22040f04bd36e8a914",
                "bounds": {"min": {"lat": -54.8, "lng": -170.7}, "max": {"lat": 70.2, "lng": 174.7}},
                "panoramaProvider": "StreetView", "maxErrorDistance": 13949358},
        "creator": {"nick": creator_nick, "id": creator_id, "isProUser": True, "countryCode": "se",
                    "url": f"/user/{creator_id}"},
    }


LOCATIONS = [  # (lat, lng, pano id as GeoGuessr stores it, heading, country code)
    (59.3293, 18.0686, "CAoSLEFGMVFpcE5fZ2h3", 90.5, "se"),
    (-33.8688, 151.2093, "Qk1ZZGJaeHhSaTRqX0xF", 180.0, "au"),
    (35.6762, 139.6503, "dVRzZy1GRlF6R1ZCcEN4", 12.25, "jp"),
    (-22.9068, -43.1729, "OHBUZ1RpQkhFNDBmN1hB", 270.0, "br"),
    (64.1466, -21.9426, "NHdZM2JqX2hZb3ZHeWlw", 0.0, "is"),
]


def game_rounds(round_count: int = 5) -> list[dict]:
    return [{"lat": lat, "lng": lng, "panoId": pano.encode().hex().upper(), "heading": heading, "pitch": 0.5,
             "zoom": 0, "streakLocationCode": code, "startTime": f"2024-03-09T00:3{k}:24.4550000+00:00"}
            for k, (lat, lng, pano, heading, code) in enumerate(LOCATIONS[:round_count])]


def guess(points: int, distance_m: float | None, lat: float = 0.0, lng: float = 0.0, *,
          timed_out: bool = False) -> dict:
    """One entry of `game.player.guesses` as the API sends it (a timed-out round: 0 points, no guess)."""
    metres = 0.0 if distance_m is None else distance_m
    shown = (f"{metres / 1000:,.1f}", "km") if metres >= 1000 else (f"{metres:.0f}", "m")
    return {"lat": lat, "lng": lng, "timedOut": timed_out, "timedOutWithGuess": False, "skippedRound": False,
            "roundScore": {"amount": f"{points:,}", "unit": "points", "percentage": points / 50},
            "roundScoreInPercentage": points / 50, "roundScoreInPoints": points,
            "distance": {"meters": {"amount": shown[0], "unit": shown[1]},
                         "miles": {"amount": f"{metres / 1609.344:.1f}", "unit": "miles"}},
            "distanceInMeters": metres, "streakLocationCode": None, "time": 42}


def highscores_item(user_id: str, nick: str, guesses: list[dict], round_count: int = 5) -> dict:
    total = sum(g["roundScoreInPoints"] for g in guesses)
    return {"gameToken": f"g{user_id[-8:]}", "playerName": nick, "userId": user_id, "totalScore": total,
            "isLeader": False, "pinUrl": "pin/abc.png",
            "game": {"token": f"g{user_id[-8:]}", "type": "challenge", "mode": "standard", "state": "finished",
                     "roundCount": round_count, "timeLimit": 120, "forbidMoving": True, "map": "62a44b22040f04bd36e8a914",
                     "mapName": "A Community World", "round": round_count, "rounds": game_rounds(round_count),
                     "player": {"totalScore": {"amount": f"{total:,}", "unit": "points", "percentage": total / 250},
                                "totalDistanceInMeters": sum(g["distanceInMeters"] for g in guesses),
                                "totalTime": 210, "guesses": guesses, "id": user_id, "nick": nick,
                                "countryCode": "se"}}}


def other_players(n: int, round_count: int = 5) -> list[dict]:
    return [highscores_item(f"60aa{k:020x}", f"player{k}", [guess(4000 - k, 250_000.0 + k) for _ in range(round_count)],
                            round_count) for k in range(n)]


class GeoGuessrServer:
    """`challenges[token]` → settings payload; `games[token]` → highscores items (paged by `limit`).

    `faults[(token, endpoint)]` is a list consumed one per request to that endpoint ("challenges" or
    "highscores"): {"status": 429, "retry_after": "0.4"}, {"status": 401|403|404|500},
    {"delay": s} (answer late), {"truncated_json": True} (a cut JSON body with a matching length),
    {"cut_off": True} (Content-Length promises more than is sent, then the connection closes).
    """

    def __init__(self, challenges: dict[str, dict], games: dict[str, list[dict]], *, cookie: str | None = None,
                 faults: dict[tuple[str, str], list[dict]] | None = None):
        self.challenges = challenges
        self.games = games
        self.cookie = cookie
        self.faults = {k: list(v) for k, v in (faults or {}).items()}
        self.log: list[tuple[float, str, str | None]] = []  # (monotonic time, path?query, Cookie header)
        self._lock = threading.Lock()
        state = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                state._handle(self)

        self._server = LocalServer(Handler)

    @property
    def url(self) -> str:
        return self._server.url

    def paths(self, prefix: str = "") -> list[str]:
        return [p for _, p, _ in self.log if p.startswith(prefix)]

    def __enter__(self) -> "GeoGuessrServer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.close()

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str] | None = None,
              length: int | None = None) -> None:
        h.send_response(status)
        h.send_header("Content-Type", "application/json; charset=utf-8")
        h.send_header("Content-Length", str(len(body) if length is None else length))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(body)

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        url = urlparse(h.path)
        with self._lock:
            self.log.append((time.monotonic(), h.path, h.headers.get("Cookie")))
        parts = url.path.strip("/").split("/")
        if parts[:3] == ["api", "v3", "challenges"] and len(parts) == 4:
            token, endpoint = parts[3], "challenges"
        elif parts[:4] == ["api", "v3", "results", "highscores"] and len(parts) == 5:
            token, endpoint = parts[4], "highscores"
        else:
            return self._send(h, 404, b'{"message":"Not found"}')
        if self.cookie is not None and h.headers.get("Cookie") != f"_ncfa={self.cookie}":
            return self._send(h, 401, b'{"message":"Unauthorized"}')
        with self._lock:
            pending = self.faults.get((token, endpoint))
            fault = pending.pop(0) if pending else None
        if fault is not None:
            if "delay" in fault:
                time.sleep(fault["delay"])
            elif fault.get("truncated_json"):
                return self._send(h, 200, json.dumps(self.challenges.get(token, {})).encode()[:40])
            elif fault.get("cut_off"):
                self._send(h, 200, b'{"challenge": {"tok', length=4096)
                h.close_connection = True
                return
            else:
                headers = {"Retry-After": str(fault["retry_after"])} if "retry_after" in fault else None
                return self._send(h, int(fault["status"]), json.dumps({"message": f"HTTP {fault['status']}"}).encode(),
                                  headers)
        if endpoint == "challenges":
            if token not in self.challenges:
                return self._send(h, 404, b'{"message":"Challenge not found"}')
            return self._send(h, 200, json.dumps(self.challenges[token]).encode())
        if token not in self.games:
            return self._send(h, 404, b'{"message":"Challenge not found"}')
        query = parse_qs(url.query)
        limit = int(query.get("limit", ["26"])[0])
        offset = int(query.get("paginationToken", ["page-0"])[0].split("-", 1)[1])
        items = self.games[token][offset:offset + limit]
        more = offset + limit < len(self.games[token])
        page = {"items": items, "paginationToken": f"page-{offset + limit}" if more else None}
        return self._send(h, 200, json.dumps(page).encode())
