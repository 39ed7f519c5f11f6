"""Challenge: the GeoGuessr challenge linked in a video's description → `challenge.json`.

The settings come from `GET /api/v3/challenges/<token>` and the five locations from the
first finished game in `GET /api/v3/results/highscores/<token>` (see
`collect.clients.geoguessr`). The highscores pages are followed (`paginationToken`) until the
game of the video's player turns up (`challenge.player`, default the video's channel name or the
challenge's creator, compared without case or spaces): that
game's guesses give each round's points and distance. Raw responses are kept in `raw/` so a
rerun parses them without a request; `challenge.offline_dir` supplies payloads instead of the
API. A 404 (the challenge was deleted) is recorded as the video's `ChallengeDeleted` outcome;
401/403 fail that video alone with a cookie error.

An offline folder may hold, per token, either
  <token>.json                      {"challenge": <challenges payload>, "rounds": <highscores payload>}
  challenge_<token>.json + rounds_<token>.json      the two payloads (the demo corpus `api/` layout)
"""
from __future__ import annotations

import json
import re
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from collect import layout
from collect.clients.geoguessr import ChallengeDeletedError, GeoGuessrClient, MalformedResponseError
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


def parse_challenge(token: str, challenge_payload: dict, rounds_payload: dict | None,
                    player: str | None = None, channel: str | None = None) -> Challenge:
    """Build a `Challenge` from the two API payloads; raises MalformedResponseError naming the problem.

    `player` (a nick or user id; default: the video's channel name or the challenge's creator)
    picks whose guesses fill the rounds' `player_*` fields when that game is among the items."""
    if not isinstance(challenge_payload, dict):
        raise MalformedResponseError(f"challenge {token}: challenge payload is not a JSON object")
    settings = challenge_payload.get("challenge")
    if not isinstance(settings, dict):
        raise MalformedResponseError(f"challenge {token}: payload has no 'challenge' object")
    game_map = challenge_payload.get("map") if isinstance(challenge_payload.get("map"), dict) else {}
    creator = challenge_payload.get("creator") if isinstance(challenge_payload.get("creator"), dict) else {}
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
        creator=creator.get("nick") if isinstance(creator.get("nick"), str) else None,
    )
    if rounds_payload is not None:
        challenge.rounds = parse_rounds(token, rounds_payload)
        challenge.player = apply_player_guesses(token, challenge.rounds, rounds_payload,
                                                player_keys(challenge_payload, player, channel))
    return challenge


def _name_key(name: str) -> str:
    # nicks and channel names compared without case, spaces or punctuation ("GeoDemo Plays" = "GeoDemoPlays")
    return re.sub(r"[\W_]+", "", name.casefold())


def player_keys(challenge_payload: dict, player: str | None, channel: str | None = None) -> set[str]:
    """Name keys (see `_name_key`) of the video's player: the configured nick / user id, else the
    video's channel name and the challenge's creator (streamers play their own or a viewer's challenge)."""
    if player:
        return {_name_key(player)} - {""}
    keys = {_name_key(channel)} if channel else set()
    creator = challenge_payload.get("creator") if isinstance(challenge_payload, dict) else None
    if isinstance(creator, dict):
        keys |= {_name_key(creator[k]) for k in ("id", "nick") if isinstance(creator.get(k), str) and creator[k]}
    return keys - {""}


def _items(token: str, rounds_payload: Any) -> list:
    if not isinstance(rounds_payload, dict):
        raise MalformedResponseError(f"challenge {token}: highscores payload is not a JSON object")
    items = rounds_payload.get("items")
    if not isinstance(items, list):
        raise MalformedResponseError(f"challenge {token}: highscores payload has no 'items' list")
    return items


def find_player_item(items: list, wanted: set[str]) -> dict | None:
    """The highscores item of the player named by `wanted` (name keys of user id or nick), if present."""
    if not wanted:
        return None
    for item in items:
        if not isinstance(item, dict):
            continue
        game = item.get("game") if isinstance(item.get("game"), dict) else {}
        player = game.get("player") if isinstance(game.get("player"), dict) else {}
        names = {item.get("userId"), item.get("playerName"), player.get("id"), player.get("nick")}
        if wanted & {_name_key(n) for n in names if isinstance(n, str) and n}:
            return item
    return None


def parse_rounds(token: str, rounds_payload: dict) -> list[ChallengeRound]:
    items = _items(token, rounds_payload)
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


def _amount(value: Any, whole: bool = False) -> float | None:
    """A number, or GeoGuessr's display text of one ("4,874", "12.3"); `whole`: an integer whose
    text may group thousands with ',' or '.' ("4.874" points)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and whole and re.fullmatch(r"\s*\d{1,3}(?:[,.\s]?\d{3})*\s*", value):
        return float(re.sub(r"\D", "", value))
    if isinstance(value, str) and re.fullmatch(r"\s*\d[\d,]*(?:\.\d+)?\s*", value):
        return float(value.replace(",", ""))
    return None


_METRES_PER = {"m": 1.0, "km": 1000.0}


def guess_points(guess: dict) -> float | None:
    points = _amount(guess.get("roundScoreInPoints"))
    if points is None and isinstance(guess.get("roundScore"), dict):
        points = _amount(guess["roundScore"].get("amount"), whole=True)
    return points


def guess_distance_km(guess: dict) -> float | None:
    """Kilometres from the truth; None for a round that timed out without a guess."""
    if guess.get("timedOut") and not guess.get("timedOutWithGuess"):
        return None
    metres = _amount(guess.get("distanceInMeters"))
    if metres is None:
        shown = (guess.get("distance") or {}).get("meters") if isinstance(guess.get("distance"), dict) else None
        if isinstance(shown, dict) and str(shown.get("unit", "")).lower() in _METRES_PER:
            amount = _amount(shown.get("amount"))
            metres = None if amount is None else amount * _METRES_PER[str(shown["unit"]).lower()]
    return None if metres is None else metres / 1000.0


def apply_player_guesses(token: str, rounds: list[ChallengeRound], rounds_payload: dict,
                         wanted: set[str]) -> str | None:
    """Fill `rounds[*].player_*` from the wanted player's game; returns the player's nick (None: not found)."""
    item = find_player_item(_items(token, rounds_payload), wanted)
    if item is None:
        return None
    game = item.get("game") if isinstance(item.get("game"), dict) else {}
    player = game.get("player") if isinstance(game.get("player"), dict) else {}
    guesses = player.get("guesses")
    nick = player.get("nick") or item.get("playerName")
    if not isinstance(guesses, list):
        raise MalformedResponseError(f"challenge {token}: the game of player {nick!r} has no player.guesses list")
    if len(guesses) != len(rounds):  # a round left without the player's points would pass as "not known"
        raise MalformedResponseError(f"challenge {token}: the game of player {nick!r} has {len(guesses)} guesses "
                                     f"for {len(rounds)} rounds")
    for k, (round_, guess) in enumerate(zip(rounds, guesses), start=1):
        if not isinstance(guess, dict):
            raise MalformedResponseError(f"challenge {token}: player {nick!r} guess {k} is not an object")
        points = guess_points(guess)
        if points is None or not 0 <= points <= 5000:
            raise MalformedResponseError(f"challenge {token}: player {nick!r} round {k} points are "
                                         f"{guess.get('roundScoreInPoints', guess.get('roundScore'))!r}, "
                                         "expected 0-5000")
        round_.player_points = int(points)
        round_.player_distance_km = guess_distance_km(guess)
        round_.player_timed_out = bool(guess.get("timedOut", False))
        if not (round_.player_timed_out and not guess.get("timedOutWithGuess")):
            round_.player_lat = _optional_number(guess.get("lat"))
            round_.player_lng = _optional_number(guess.get("lng"))
    return str(nick) if nick else None


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
        return {"offline_dir": str(cfg.offline_dir) if cfg.offline_dir else None, "token": self._token(ctx),
                "player": cfg.player or {"channel": ctx.video.channel}}  # whose guesses are read

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
            challenge, source, pages = self._challenge(ctx, token)
        except ChallengeDeletedError as exc:  # a fact about this video's link, recorded as its outcome
            ctx.path(layout.CHALLENGE_JSON).unlink(missing_ok=True)
            return StageOutcome.failed(self.name, exc, "ChallengeDeleted")
        except Exception as exc:  # typed GeoGuessr errors carry a message naming token and cause
            ctx.path(layout.CHALLENGE_JSON).unlink(missing_ok=True)
            return StageOutcome.failed(self.name, exc)
        atomic_write_json(ctx.path(layout.CHALLENGE_JSON), to_dict(challenge))
        outcome = StageOutcome.done(challenge=layout.CHALLENGE_JSON, token=token, rounds=len(challenge.rounds),
                                    source=source, player=challenge.player)
        other = (ctx.video.challenge_tokens or parse_challenge_tokens(ctx.video.description))[1:]
        notes = []
        if other:
            outcome.outputs["other_tokens"] = other
            notes.append(f"description links {len(other) + 1} challenges; used the first ({token})")
        if len(challenge.rounds) != challenge.round_count:
            notes.append(f"challenge has roundCount {challenge.round_count} but {len(challenge.rounds)} rounds came back")
        if challenge.player is None:
            who = ctx.config.challenge.player or (f"the channel ({ctx.video.channel or 'unknown'}) or the creator "
                                                  f"({challenge.creator or 'unknown'})")
            where = f" in {pages} highscores page(s)" if pages else ""
            notes.append(f"no game of {who}{where}: the rounds carry no player points or distance")
        outcome.note = "; ".join(notes) or None
        return outcome

    def _challenge(self, ctx: VideoContext, token: str) -> tuple[Challenge, str, int]:
        """(challenge, source: offline | api | cache, highscores pages requested)."""
        cfg = ctx.config.challenge
        if cfg.offline_dir:
            offline = read_offline(Path(cfg.offline_dir), token)
            if offline is not None:
                challenge_payload, rounds_payload = offline
                if rounds_payload is None:
                    raise MalformedResponseError(f"challenge {token}: offline payload in {cfg.offline_dir} has no rounds")
                return parse_challenge(token, challenge_payload, rounds_payload, cfg.player,
                                       ctx.video.channel), "offline", 0
        name = safe_name(token)
        raw_challenge = ctx.path(layout.CHALLENGE_RAW_DIR, f"challenge_{name}.json")
        raw_rounds = ctx.path(layout.CHALLENGE_RAW_DIR, f"rounds_{name}.json")
        fetched, pages = False, 0
        with ExitStack() as stack:
            client: GeoGuessrClient | None = None

            def api() -> GeoGuessrClient:
                nonlocal client
                if client is None:
                    client = stack.enter_context(GeoGuessrClient(cfg.api_base, cfg.ncfa_cookie, cfg.retries,
                                                                 cfg.backoff_s, cfg.timeout_s, cfg.max_wait_s))
                return client

            if raw_challenge.is_file():
                challenge_payload = _load_json(raw_challenge, token)
                challenge = parse_challenge(token, challenge_payload, None)
            else:
                body = api().get_challenge_raw(token)
                challenge_payload = json.loads(body)
                challenge = parse_challenge(token, challenge_payload, None)  # validate before caching
                atomic_write_bytes(raw_challenge, body)
                fetched = True
            wanted = player_keys(challenge_payload, cfg.player, ctx.video.channel)
            rounds_payload = _load_json(raw_rounds, token) if raw_rounds.is_file() else None
            if not isinstance(rounds_payload, dict) or rounds_payload.get("playerWanted") != sorted(wanted):
                # not cached, or cached while looking for another player: search the pages again
                rounds_payload, pages = self._fetch_games(api(), token, challenge.round_count, wanted, cfg)
                parse_challenge(token, challenge_payload, rounds_payload, cfg.player,
                                ctx.video.channel)  # validate before caching
                atomic_write_json(raw_rounds, rounds_payload)
                fetched = True
        final = parse_challenge(token, challenge_payload, rounds_payload, cfg.player, ctx.video.channel)
        return final, ("api" if fetched else "cache"), pages

    @staticmethod
    def _fetch_games(client: GeoGuessrClient, token: str, round_count: int, wanted: set[str],
                     cfg: Any) -> tuple[dict, int]:
        """Highscores pages until the player's game turns up (or the pages run out).

        Kept: the first game (its rounds are the locations) and the player's game, as one
        highscores-shaped payload; `pagesRead` says how far the search went."""
        first: dict | None = None
        mine: dict | None = None
        pages = 0
        for page in client.iter_highscores(token, round_count, limit=cfg.page_size, max_pages=cfg.max_pages):
            pages += 1
            items = _items(token, page)
            if first is None and items:
                first = items[0]
            mine = find_player_item(items, wanted)
            if mine is not None:
                break
        kept = [first] if first is not None else []
        if mine is not None and mine is not first:
            kept.append(mine)
        return {"items": kept, "paginationToken": None, "pagesRead": pages, "playerWanted": sorted(wanted)}, pages
