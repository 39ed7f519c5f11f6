"""Challenge: the GeoGuessr challenge linked in a video's description → `challenge.json`.

The settings come from `GET /api/v3/challenges/<token>` and the five locations from the
first finished game in `GET /api/v3/results/highscores/<token>` (see
`collect.clients.geoguessr`). Raw responses are kept in `raw/` so a rerun parses them
without a request; `challenge.offline_dir` supplies payloads instead of the API.

An offline folder may hold, per token, either
  <token>.json                      {"challenge": <challenges payload>, "rounds": <highscores payload>}
  challenge_<token>.json + rounds_<token>.json      the two payloads (the demo corpus `api/` layout)
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from collect import layout
from collect.clients.geoguessr import GeoGuessrClient, MalformedResponseError
from naviclues.fsutil import atomic_write_bytes, atomic_write_json, inside, safe_name
from collect.records import Challenge, ChallengeRound, to_dict
from collect.stages.base import Stage, StageOutcome, VideoContext

_CHALLENGE_LINK = re.compile(
    r"geoguessr\.com/(?:[a-z]{2}(?:-[A-Za-z]{2})?/)?challenge/([A-Za-z0-9_-]{6,64})", re.I)
_PANO_CHARS = re.compile(r"^[A-Za-z0-9_-]{10,}$")


def parse_challenge_tokens(text: str | None) -> list[str]:
    """All distinct challenge tokens linked in `text`, in order of appearance."""
    tokens: list[str] = []
    for match in _CHALLENGE_LINK.finditer(text or ""):
        if match.group(1) not in tokens:
            tokens.append(match.group(1))
    return tokens


def decode_pano_id(raw: str | None) -> str | None:
    """GeoGuessr sends pano ids hex-encoded (ASCII as hex); plain ids pass through unchanged."""
    if not raw:
        return None
    if len(raw) % 2 == 0 and re.fullmatch(r"[0-9A-Fa-f]+", raw):
        try:
            decoded = bytes.fromhex(raw).decode("ascii")
        except (ValueError, UnicodeDecodeError):
            return raw
        if _PANO_CHARS.match(decoded):
            return decoded
    return raw


def _number(value: Any, what: str, token: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MalformedResponseError(f"challenge {token}: {what} is {value!r}, expected a number")
    return float(value)


def _optional_number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def parse_challenge(token: str, challenge_payload: dict, rounds_payload: dict | None) -> Challenge:
    """Build a `Challenge` from the two API payloads; raises MalformedResponseError naming the problem."""
    if not isinstance(challenge_payload, dict):
        raise MalformedResponseError(f"challenge {token}: challenge payload is not a JSON object")
    settings = challenge_payload.get("challenge")
    if not isinstance(settings, dict):
        raise MalformedResponseError(f"challenge {token}: payload has no 'challenge' object")
    game_map = challenge_payload.get("map") if isinstance(challenge_payload.get("map"), dict) else {}
    round_count = settings.get("roundCount", 5)
    time_limit = settings.get("timeLimit", 0)
    challenge = Challenge(
        token=str(settings.get("token") or token),
        map_name=game_map.get("name"),
        map_slug=settings.get("mapSlug") or game_map.get("slug"),
        round_count=int(_number(round_count, "roundCount", token)),
        time_limit_s=int(_number(time_limit or 0, "timeLimit", token)),
        forbid_moving=bool(settings.get("forbidMoving", False)),
        forbid_zooming=bool(settings.get("forbidZooming", False)),
        forbid_rotating=bool(settings.get("forbidRotating", False)),
    )
    if rounds_payload is not None:
        challenge.rounds = parse_rounds(token, rounds_payload)
    return challenge


def parse_rounds(token: str, rounds_payload: dict) -> list[ChallengeRound]:
    if not isinstance(rounds_payload, dict):
        raise MalformedResponseError(f"challenge {token}: highscores payload is not a JSON object")
    items = rounds_payload.get("items")
    if not isinstance(items, list):
        raise MalformedResponseError(f"challenge {token}: highscores payload has no 'items' list")
    if not items:
        raise MalformedResponseError(f"challenge {token}: no finished game yet, so its rounds are unknown "
                                     "(highscores returned no items)")
    game = items[0].get("game") if isinstance(items[0], dict) else None
    rounds = game.get("rounds") if isinstance(game, dict) else None
    if not isinstance(rounds, list) or not rounds:
        raise MalformedResponseError(f"challenge {token}: highscores item has no game.rounds")
    out = []
    for k, r in enumerate(rounds, start=1):
        if not isinstance(r, dict):
            raise MalformedResponseError(f"challenge {token}: round {k} is not an object")
        code = r.get("streakLocationCode")
        out.append(ChallengeRound(
            round=k,
            lat=_number(r.get("lat"), f"round {k} lat", token),
            lng=_number(r.get("lng"), f"round {k} lng", token),
            pano_id=decode_pano_id(r.get("panoId")),
            heading=_optional_number(r.get("heading")),
            pitch=_optional_number(r.get("pitch")),
            zoom=_optional_number(r.get("zoom")),
            country_code=code.lower() if isinstance(code, str) and code else None,
        ))
    return out


def _load_json(path: Path, token: str) -> Any:
    try:
        return json.loads(path.read_text("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedResponseError(f"challenge {token}: {path.name} is not valid JSON: {exc}") from None


def read_offline(offline_dir: Path, token: str) -> tuple[dict, dict | None] | None:
    """(challenge payload, rounds payload) from an offline folder, or None when it has nothing for `token`."""
    name = safe_name(token)
    combined = inside(offline_dir, f"{name}.json")
    if combined.is_file():
        data = _load_json(combined, token)
        if not isinstance(data, dict):
            raise MalformedResponseError(f"challenge {token}: {combined.name} is not a JSON object")
        if "rounds" in data:
            challenge = data.get("challenge")
            # {"challenge": <full challenges payload>} or {"challenge": <its inner settings object>}
            if isinstance(challenge, dict) and "challenge" not in challenge:
                challenge = {"challenge": challenge, "map": data.get("map") or {}}
            return challenge, data["rounds"]
        return data, None
    separate = inside(offline_dir, f"challenge_{name}.json")
    if separate.is_file():
        rounds = inside(offline_dir, f"rounds_{name}.json")
        return _load_json(separate, token), (_load_json(rounds, token) if rounds.is_file() else None)
    return None


class ChallengeStage(Stage):
    name = "challenge"
    output_keys = ("challenge",)
    requires = ()

    def _token(self, ctx: VideoContext) -> str | None:
        tokens = ctx.video.challenge_tokens or parse_challenge_tokens(ctx.video.description)
        return tokens[0] if tokens else None

    def config_slice(self, ctx: VideoContext) -> Any:
        cfg = ctx.config.challenge
        # the challenge's identity is its token; the API host (a mirror, the demo server's port) is not
        return {"offline_dir": str(cfg.offline_dir) if cfg.offline_dir else None, "token": self._token(ctx)}

    def input_files(self, ctx: VideoContext) -> list[Path]:
        cfg = ctx.config.challenge
        token = self._token(ctx)
        if not (cfg.offline_dir and token):
            return []
        name = safe_name(token)
        return [Path(cfg.offline_dir) / f"{name}.json", Path(cfg.offline_dir) / f"challenge_{name}.json",
                Path(cfg.offline_dir) / f"rounds_{name}.json"]

    def run(self, ctx: VideoContext) -> StageOutcome:
        token = self._token(ctx)
        if token is None:
            ctx.path(layout.CHALLENGE_JSON).unlink(missing_ok=True)  # no stale truth outlives the verdict
            return StageOutcome.failed(self.name, "no geoguessr.com/challenge link in the description", "NoChallengeLink")
        try:
            challenge, source = self._challenge(ctx, token)
        except Exception as exc:  # typed GeoGuessr errors carry a message naming token and cause
            ctx.path(layout.CHALLENGE_JSON).unlink(missing_ok=True)
            return StageOutcome.failed(self.name, exc)
        atomic_write_json(ctx.path(layout.CHALLENGE_JSON), to_dict(challenge))
        outcome = StageOutcome.done(challenge=layout.CHALLENGE_JSON, token=token, rounds=len(challenge.rounds),
                                    source=source)
        other = (ctx.video.challenge_tokens or parse_challenge_tokens(ctx.video.description))[1:]
        notes = []
        if other:
            outcome.outputs["other_tokens"] = other
            notes.append(f"description links {len(other) + 1} challenges; used the first ({token})")
        if len(challenge.rounds) != challenge.round_count:
            notes.append(f"challenge has roundCount {challenge.round_count} but {len(challenge.rounds)} rounds came back")
        outcome.note = "; ".join(notes) or None
        return outcome

    def _challenge(self, ctx: VideoContext, token: str) -> tuple[Challenge, str]:
        cfg = ctx.config.challenge
        if cfg.offline_dir:
            offline = read_offline(Path(cfg.offline_dir), token)
            if offline is not None:
                challenge_payload, rounds_payload = offline
                if rounds_payload is None:
                    raise MalformedResponseError(f"challenge {token}: offline payload in {cfg.offline_dir} has no rounds")
                return parse_challenge(token, challenge_payload, rounds_payload), "offline"
        name = safe_name(token)
        raw_challenge = ctx.path(layout.CHALLENGE_RAW_DIR, f"challenge_{name}.json")
        raw_rounds = ctx.path(layout.CHALLENGE_RAW_DIR, f"rounds_{name}.json")
        fetched = False
        client: GeoGuessrClient | None = None
        try:
            if raw_challenge.is_file():
                challenge = parse_challenge(token, _load_json(raw_challenge, token), None)
            else:
                client = GeoGuessrClient(cfg.api_base, cfg.ncfa_cookie, cfg.retries, cfg.backoff_s, cfg.timeout_s)
                body = client.get_challenge_raw(token)
                challenge = parse_challenge(token, json.loads(body), None)  # validate before caching
                atomic_write_bytes(raw_challenge, body)
                fetched = True
            if raw_rounds.is_file():
                rounds_payload = _load_json(raw_rounds, token)
            else:
                client = client or GeoGuessrClient(cfg.api_base, cfg.ncfa_cookie, cfg.retries, cfg.backoff_s,
                                                   cfg.timeout_s)
                body = client.get_rounds_raw(token, challenge.round_count)
                rounds_payload = json.loads(body)
                challenge.rounds = parse_rounds(token, rounds_payload)  # validate before caching
                atomic_write_bytes(raw_rounds, body)
                fetched = True
        finally:
            if client is not None:
                client.close()
        challenge.rounds = parse_rounds(token, rounds_payload)
        return challenge, ("api" if fetched else "cache")
