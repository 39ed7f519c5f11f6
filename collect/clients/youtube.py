"""yt-dlp behind one small client: shared options, a global request rate limit, and
retries with exponential backoff (tenacity) on transient network errors only.

The rate limit counts HTTP requests (every page, subtitle, media range or fragment yt-dlp
fetches goes through `YoutubeDL.urlopen`, which waits for a slot), not yt-dlp calls. Its
schedule lives in a state file: the download stage keeps it in the run's output folder, so
every worker of a run, local processes or Ray tasks on an existing cluster, shares one budget.

Everything goes through yt-dlp's Python API (`YoutubeDL.extract_info`); nothing here knows
about YouTube's pages, so the same client works for the demo server (yt-dlp's generic
extractor) and for real channels. User options (`download.ytdlp_options`: cookiefile,
proxy, sleep_interval, ratelimit, …) are passed straight to `YoutubeDL(params)`.
"""
from __future__ import annotations

import atexit
import logging
import os
import re
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, TypeVar

from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

log = logging.getLogger("collect.youtube")
T = TypeVar("T")

from naviclues.secrets import SECRET_OPTION_KEYS, is_secret_key  # noqa: E402,F401  (re-exported)
from naviclues.secrets import redact_urls as redact  # noqa: E402


def public_options(options: dict[str, Any]) -> dict[str, Any]:
    """The yt-dlp options that may appear in a fingerprint or a log (no credentials)."""
    return {k: v for k, v in sorted(options.items()) if not is_secret_key(k)}


# ---- rate limit ---------------------------------------------------------------------------
RATE_STATE_ENV = "COLLECT_RATE_STATE"


class RateLimiter:
    """At most `per_second` request starts per second.

    Without `state_file` the limit holds across the threads of this process; with one, across
    every process that shares the file (the slot schedule lives in it, under an flock), so the
    worker processes of one run share one budget towards YouTube.
    """

    def __init__(self, per_second: float, state_file: Path | str | None = None):
        self.per_second = per_second
        self.state_file = Path(state_file) if state_file else None
        self._lock = threading.Lock()
        self._next_free = 0.0

    def _reserve(self, interval: float) -> tuple[float, float]:
        now = time.time()
        if self.state_file is None:
            start = max(now, self._next_free)
            self._next_free = start + interval
            return now, start
        import fcntl

        with open(self.state_file, "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                fh.seek(0)
                try:
                    next_free = float(fh.read().strip() or 0.0)
                except ValueError:  # a torn or foreign file: start a fresh schedule
                    next_free = 0.0
                start = max(now, next_free)
                fh.seek(0)
                fh.truncate()
                fh.write(repr(start + interval))
                fh.flush()
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
        return now, start

    def acquire(self) -> float:
        """Block until a request may start; returns the seconds waited."""
        if not self.per_second or self.per_second <= 0:
            return 0.0
        with self._lock:
            now, start = self._reserve(1.0 / self.per_second)
        wait = start - now
        if wait > 0:
            time.sleep(wait)
        return wait


_LIMITERS: dict[tuple[float, str | None], RateLimiter] = {}
_LIMITERS_LOCK = threading.Lock()


def share_rate_limit_with_children() -> str | None:
    """Give this process tree one rate-limit schedule: child processes started after this call
    (the run's worker pool) inherit the state file through the environment. Returns its path."""
    if os.name != "posix":
        return None  # fcntl is POSIX-only: per-process limits elsewhere
    if not os.environ.get(RATE_STATE_ENV):
        fd, path = tempfile.mkstemp(prefix=f"naviclues-rate-{os.getpid()}-", suffix=".state")
        os.close(fd)
        os.environ[RATE_STATE_ENV] = path
        atexit.register(_forget_rate_state, path, os.getpid())  # the creating process cleans up after its run
    return os.environ[RATE_STATE_ENV]


def _forget_rate_state(path: str, owner: int) -> None:
    if os.getpid() == owner:  # never from a forked child that inherited the handler
        Path(path).unlink(missing_ok=True)
        if os.environ.get(RATE_STATE_ENV) == path:
            del os.environ[RATE_STATE_ENV]


RATE_STATE_FILE = ".rate-limit.state"  # in the run's output folder: seen by every worker of the run


def global_rate_limiter(per_second: float, state_file: Path | str | None = None) -> RateLimiter:
    """The limiter shared by every client in this process, and across processes that share
    `state_file` (else the one `share_rate_limit_with_children()` set up, from COLLECT_RATE_STATE)."""
    state = str(state_file) if state_file else (os.environ.get(RATE_STATE_ENV) or None)
    key = (per_second, state)
    with _LIMITERS_LOCK:
        if key not in _LIMITERS:
            _LIMITERS[key] = RateLimiter(per_second, state)
        return _LIMITERS[key]


# ---- error classification -----------------------------------------------------------------
class PermanentError(Exception):
    """Retrying will not help (video removed/private, 4xx, unsupported URL)."""


_TRANSIENT_TEXT = re.compile(
    r"HTTP Error (?:5\d\d|429|408)|timed? ?out|Connection (?:reset|refused|aborted)|Temporary failure"
    r"|Remote end closed|IncompleteRead|ConnectionError|Network is unreachable|EOF occurred", re.I)


def _causes(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    stack = [exc]
    while stack:
        cur = stack.pop()
        if cur is None or any(cur is s for s in seen):
            continue
        seen.append(cur)
        exc_info = getattr(cur, "exc_info", None)
        if isinstance(exc_info, tuple) and len(exc_info) > 1 and isinstance(exc_info[1], BaseException):
            stack.append(exc_info[1])
        for attr in ("cause", "orig_msg"):
            value = getattr(cur, attr, None)
            if isinstance(value, BaseException):
                stack.append(value)
        stack.extend(c for c in (cur.__cause__, cur.__context__) if c is not None)
    return seen


def is_transient(exc: BaseException) -> bool:
    """True for network trouble worth a retry (5xx, 429, timeouts, resets); False otherwise."""
    from yt_dlp.networking.exceptions import HTTPError, TransportError

    for cause in _causes(exc):
        if isinstance(cause, PermanentError):
            return False
        if isinstance(cause, HTTPError):
            return cause.status >= 500 or cause.status in (408, 429)
        if isinstance(cause, (TransportError, TimeoutError, ConnectionError)):
            return True
    return bool(_TRANSIENT_TEXT.search(str(exc)))


# ---- yt-dlp ---------------------------------------------------------------------------------
class _YtdlpLogger:
    """Route yt-dlp's messages to logging, redacted; debug chatter stays at DEBUG."""

    def debug(self, msg: str) -> None:
        log.debug(redact(msg))

    def info(self, msg: str) -> None:
        log.debug(redact(msg))

    def warning(self, msg: str) -> None:
        log.warning(redact(msg))

    def error(self, msg: str) -> None:
        log.error(redact(msg))


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def base_options(user_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Quiet, non-interactive yt-dlp parameters; user options win."""
    params: dict[str, Any] = {
        "quiet": True,
        "no_warnings": False,
        "noprogress": True,
        "logger": _YtdlpLogger(),
        "ffmpeg_location": ffmpeg_exe(),
        "socket_timeout": 30,
    }
    params.update(user_options or {})
    return params


_RATE_LIMITED_CLASS: type | None = None


def rate_limited_youtube_dl(params: dict[str, Any], limiter: RateLimiter) -> Any:
    """A `yt_dlp.YoutubeDL` whose every HTTP request (extractor pages, subtitles, media, fragments:
    all go through `urlopen`) first waits for a slot of `limiter`."""
    global _RATE_LIMITED_CLASS
    if _RATE_LIMITED_CLASS is None:
        import yt_dlp

        class RateLimitedYoutubeDL(yt_dlp.YoutubeDL):
            rate_limiter: RateLimiter | None = None

            def urlopen(self, req: Any) -> Any:
                if self.rate_limiter is not None:
                    self.rate_limiter.acquire()
                return super().urlopen(req)

        _RATE_LIMITED_CLASS = RateLimitedYoutubeDL
    ydl = _RATE_LIMITED_CLASS(params)
    ydl.rate_limiter = limiter
    return ydl


def format_selector(max_height: int) -> str:
    # best video ≤ max_height + best audio (merged); else the best single file ≤ max_height;
    # heights unknown to the extractor (`?`) are accepted rather than rejected.
    return (f"bv*[height<=?{max_height}]+ba/b[height<=?{max_height}]"
            f"/wv*+ba/w")


class YouTubeClient:
    """yt-dlp calls with a shared rate limit and tenacity retries on transient errors."""

    def __init__(self, ytdlp_options: dict[str, Any] | None = None, *, retries: int = 3, backoff_s: float = 2.0,
                 requests_per_s: float = 2.0, max_backoff_s: float = 60.0, rate_state: Path | str | None = None):
        self.options = dict(ytdlp_options or {})
        self.retries = max(0, int(retries))
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.limiter = global_rate_limiter(requests_per_s, rate_state)

    def call(self, fn: Callable[[], T], what: str) -> T:
        """Run `fn`; retry transient failures with exponential backoff (the rate limit applies to
        each HTTP request `fn` makes, see `rate_limited_youtube_dl`)."""
        retrying = Retrying(
            stop=stop_after_attempt(self.retries + 1),
            wait=wait_exponential(multiplier=self.backoff_s, max=self.max_backoff_s),
            retry=retry_if_exception(is_transient),
            before_sleep=lambda rs: log.warning("%s: attempt %d failed (%s); retrying", what, rs.attempt_number,
                                                redact(str(rs.outcome.exception()))[:300]),
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                return fn()
        raise AssertionError("unreachable")  # pragma: no cover

    def extract(self, url: str, *, flat: bool = False, extra: dict[str, Any] | None = None) -> dict:
        """Metadata only (no download). `flat=True` lists playlist/channel entries without resolving them."""
        params = base_options(self.options)
        params.update({"skip_download": True})
        if flat:
            params["extract_flat"] = "in_playlist"
        params.update(extra or {})

        def run() -> dict:
            with rate_limited_youtube_dl(params, self.limiter) as ydl:
                info = ydl.extract_info(url, download=False)
                if info is None:
                    raise PermanentError(f"yt-dlp returned nothing for {redact(url)}")
                if "entries" in info:
                    info["entries"] = [e for e in (info.get("entries") or []) if e]
                return info

        return self.call(run, f"extract {redact(url)}")

    def download(self, url: str, params: dict[str, Any]) -> dict:
        """One `extract_info(download=True)` call; returns the info dict yt-dlp built."""
        full = base_options(self.options)
        full.update(params)

        def run() -> dict:
            with rate_limited_youtube_dl(full, self.limiter) as ydl:
                info = ydl.extract_info(url, download=True)
                if info is None:
                    raise PermanentError(f"yt-dlp returned nothing for {redact(url)}")
                return info

        return self.call(run, f"download {redact(url)}")


def sanitize_info(info: dict) -> dict:
    """yt-dlp's own JSON sanitising plus removal of cookies, headers and secret-looking keys."""
    import yt_dlp

    clean = yt_dlp.YoutubeDL.sanitize_info(info, remove_private_keys=True)

    def scrub(node: Any) -> Any:
        if isinstance(node, dict):
            # "_…" keys are yt-dlp internals (versions, private state), not metadata
            return {k: scrub(v) for k, v in node.items() if not is_secret_key(str(k)) and not str(k).startswith("_")}
        if isinstance(node, list):
            return [scrub(v) for v in node]
        if isinstance(node, str) and "://" in node:
            return redact(node)
        return node

    return scrub(clean)
