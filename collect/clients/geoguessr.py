"""A small client for the (undocumented) GeoGuessr web API used by challenge links.

Endpoints (both need a logged-in session: the `_ncfa` cookie from geoguessr.com, sent only to the
configured API base, never along a redirect):

    GET {base}/api/v3/challenges/{token}
        → {"challenge": {"token", "mapSlug", "roundCount", "timeLimit", "forbidMoving",
                         "forbidZooming", "forbidRotating", ...},
           "map": {"id", "name", "slug", ...}, "creator": {...}}

    GET {base}/api/v3/results/highscores/{token}?friends=false&limit={n}&minRounds={roundCount}
                                                [&paginationToken={from the previous page}]
        → {"items": [{"gameToken", "playerName", "userId", "totalScore", "isLeader",
                      "game": {"token", "state", "roundCount", "timeLimit", "map", "mapName",
                               "rounds": [{"lat", "lng", "panoId", "heading", "pitch", "zoom",
                                           "streakLocationCode", "startTime"}, ...],
                               "player": {"id", "nick", "totalScore": {"amount", "unit"},
                                          "guesses": [{"lat", "lng", "timedOut", "timedOutWithGuess",
                                                       "roundScoreInPoints", "roundScore": {"amount", ...},
                                                       "distanceInMeters", "distance": {"meters":
                                                       {"amount", "unit"}, ...}, "time"}, ...]}}}, ...],
           "paginationToken": "<opaque>" | null}
        One page of the finished games, best first; the next page is asked for with the page's
        `paginationToken` until it is null. The rounds of any finished game are the challenge's
        locations; one player's `guesses` carry that player's points and distance per round.
        `panoId` is usually the Street View pano id hex-encoded (ASCII bytes as hex).

429 (waiting what Retry-After asks, capped by `max_wait_s`), 5xx, timeouts and cut-off bodies
are retried with exponential backoff (tenacity); 401/403 (the cookie), 404 (the challenge was
deleted) and malformed JSON raise typed errors whose messages name the token, never the cookie.
"""
from __future__ import annotations

import json
import logging
import re
from typing import Any, Iterator

import requests
from pydantic import SecretStr
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

log = logging.getLogger("collect.geoguessr")

_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class GeoGuessrError(Exception):
    """Base class; the message names the token and the cause, never the cookie."""


class GeoGuessrAuthError(GeoGuessrError):
    pass


class ChallengeDeletedError(GeoGuessrError):
    """HTTP 404: GeoGuessr no longer has the challenge (deleted by its creator, or never existed)."""


ChallengeNotFoundError = ChallengeDeletedError  # the earlier name


class MalformedResponseError(GeoGuessrError):
    pass


class GeoGuessrUnavailableError(GeoGuessrError):
    """429 or 5xx still failing after the retries."""


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


def _retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime
        from datetime import datetime, timezone

        try:
            return max(0.0, (parsedate_to_datetime(value) - datetime.now(timezone.utc)).total_seconds())
        except (TypeError, ValueError):
            return None


class GeoGuessrClient:
    def __init__(self, api_base: str = "https://www.geoguessr.com", ncfa_cookie: SecretStr | str | None = None,
                 retries: int = 4, backoff_s: float = 1.0, timeout_s: float = 20.0, max_wait_s: float = 120.0):
        self.api_base = api_base.rstrip("/")
        self.retries = max(0, int(retries))
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self.max_wait_s = max_wait_s
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "naviclues-collect/0.1 (+https://github.com/)"
        self.session.headers["Accept"] = "application/json"
        secret = ncfa_cookie.get_secret_value() if isinstance(ncfa_cookie, SecretStr) else ncfa_cookie
        self.has_cookie = bool(secret)
        # Not in the session's cookie jar: a jar cookie follows redirects to any host (and to other ports of the
        # same host). As a per-request header it goes only to URLs under api_base; on a redirect requests
        # rebuilds the Cookie header from the jar, so the secret never travels with one.
        self._ncfa = secret or None

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> "GeoGuessrClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---- endpoints -------------------------------------------------------------------------
    def challenge_url(self, token: str) -> str:
        return f"{self.api_base}/api/v3/challenges/{_check_token(token)}"

    def highscores_url(self, token: str) -> str:
        return f"{self.api_base}/api/v3/results/highscores/{_check_token(token)}"

    def get_challenge_raw(self, token: str) -> bytes:
        """The challenge payload as received (validated to be a JSON object)."""
        return self._get(self.challenge_url(token), token, "challenges")

    def get_highscores_page_raw(self, token: str, round_count: int = 5, pagination_token: str | None = None,
                                limit: int = 26) -> bytes:
        """One highscores page as received (a JSON object with `items` and `paginationToken`)."""
        params = {"friends": "false", "limit": str(int(limit)), "minRounds": str(int(round_count))}
        if pagination_token:
            params["paginationToken"] = pagination_token
        return self._get(self.highscores_url(token), token, "highscores", params)

    def iter_highscores(self, token: str, round_count: int = 5, *, limit: int = 26,
                        max_pages: int = 20) -> Iterator[dict]:
        """The highscores pages in order, following `paginationToken` until it is null (or `max_pages`)."""
        seen: set[str] = set()
        pagination_token: str | None = None
        for _ in range(max(1, int(max_pages))):
            page = json.loads(self.get_highscores_page_raw(token, round_count, pagination_token, limit))
            yield page
            pagination_token = page.get("paginationToken")
            if not pagination_token or not page.get("items"):
                return
            if not isinstance(pagination_token, str) or pagination_token in seen:
                raise MalformedResponseError(f"highscores of challenge {token}: paginationToken "
                                             f"{str(pagination_token)[:40]!r} repeats or is not text")
            seen.add(pagination_token)

    def get_rounds_raw(self, token: str, round_count: int = 5) -> bytes:
        """The first highscores page of one game (its rounds are the challenge's locations)."""
        return self.get_highscores_page_raw(token, round_count, limit=1)

    def get_challenge(self, token: str) -> dict:
        return json.loads(self.get_challenge_raw(token))

    def get_rounds(self, token: str, round_count: int = 5) -> dict:
        return json.loads(self.get_rounds_raw(token, round_count))

    # ---- transport -------------------------------------------------------------------------
    def _wait(self, retry_state: Any) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, _Retryable) and exc.retry_after is not None:
            return min(exc.retry_after, self.max_wait_s)
        return wait_exponential(multiplier=self.backoff_s, max=self.max_wait_s)(retry_state)

    def _get(self, url: str, token: str, what: str, params: dict | None = None) -> bytes:
        retrying = Retrying(
            stop=stop_after_attempt(self.retries + 1),
            wait=self._wait,
            retry=retry_if_exception_type(_Retryable),
            before_sleep=lambda rs: log.warning("GeoGuessr %s endpoint, challenge %s: %s; retrying (attempt %d)",
                                                what, token, rs.outcome.exception(), rs.attempt_number),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self._get_once(url, token, what, params)
        except _Retryable as exc:
            raise GeoGuessrUnavailableError(
                f"GeoGuessr {what} endpoint for challenge {token} still failing after {self.retries + 1} attempts: {exc}") from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _get_once(self, url: str, token: str, what: str, params: dict | None) -> bytes:
        headers = {"Cookie": f"_ncfa={self._ncfa}"} if self._ncfa and url.startswith(self.api_base + "/") else None
        try:
            resp = self.session.get(url, params=params, headers=headers, timeout=self.timeout_s)
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
                requests.exceptions.ContentDecodingError) as exc:  # refused, timed out, a body cut off mid-way
            raise _Retryable(f"network error ({type(exc).__name__})") from None
        status = resp.status_code
        if status in (401, 403):
            hint = "the cookie may be expired; log in again and copy `_ncfa`" if self.has_cookie else \
                "no cookie configured: set challenge.ncfa_cookie or GEOGUESSR_NCFA"
            raise GeoGuessrAuthError(f"GeoGuessr rejected the session cookie (_ncfa) with HTTP {status} on the "
                                     f"{what} endpoint for challenge {token}: {hint}")
        if status == 404:
            raise ChallengeDeletedError(f"challenge {token} deleted: not found (HTTP 404 from the {what} endpoint; "
                                        "removed by its creator, or the link is wrong)")
        if status == 429:
            raise _Retryable("HTTP 429 Too Many Requests", _retry_after_seconds(resp.headers.get("Retry-After")))
        if status >= 500:
            raise _Retryable(f"HTTP {status} server error", _retry_after_seconds(resp.headers.get("Retry-After")))
        if status != 200:
            raise GeoGuessrError(f"unexpected HTTP {status} from the {what} endpoint for challenge {token}")
        body = resp.content
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MalformedResponseError(f"malformed JSON from the {what} endpoint for challenge {token}: {exc}") from None
        if not isinstance(data, dict):
            raise MalformedResponseError(f"{what} response for challenge {token} is not a JSON object")
        return body


def _check_token(token: str) -> str:
    if not _TOKEN.match(token or ""):
        raise ValueError(f"invalid challenge token {token!r}")
    return token
