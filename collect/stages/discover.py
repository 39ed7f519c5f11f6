"""Discover: sources (channel / playlist / video URLs, text files of URLs, the demo feed) →
the videos worth collecting.

Runs once in the main process. yt-dlp lists playlists and channels flat
(`extract_flat="in_playlist"`), so a channel of hundreds of videos costs one request per
page; an entry is only extracted fully when the flat listing lacks what the filters need
(a description, or an upload date for a date filter). YouTube's flat listings carry a
truncated description snippet, so a YouTube entry whose snippet shows no challenge link
is extracted fully before it is dropped.

A failing source is recorded in `DiscoverResult.errors` and the other sources continue;
every dropped video is recorded in `DiscoverResult.skipped` with the reason.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from collect.clients.youtube import YouTubeClient, redact, share_rate_limit_with_children
from collect.config import DiscoverConfig, check_regex, check_yyyymmdd
from collect.records import Video
from collect.stages.challenge import parse_challenge_tokens

log = logging.getLogger("collect.discover")

_NESTED_PLAYLIST_KEYS = {"YoutubeTab", "YoutubePlaylist"}
_MAX_NESTING = 3


@dataclass
class DiscoverError:
    source: str  # the source (or video URL) that failed
    type: str
    message: str


@dataclass
class DiscoverResult:
    videos: list[Video] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (video id or URL, reason)
    errors: list[DiscoverError] = field(default_factory=list)


def expand_sources(sources: list[str]) -> tuple[list[str], list[DiscoverError]]:
    """URLs as given; text files replaced by their lines (blank lines and `#` comments ignored)."""
    urls: list[str] = []
    errors: list[DiscoverError] = []
    for source in sources:
        source = source.strip()
        if not source:
            continue
        if re.match(r"^[a-z][a-z0-9+.-]*://", source, re.I):
            urls.append(source)
            continue
        path = Path(source).expanduser()
        if path.is_file():
            try:
                lines = path.read_text("utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as exc:
                errors.append(DiscoverError(source, type(exc).__name__, f"cannot read source file {source}: {exc}"))
                continue
            for line in lines:
                # whole-line comments and trailing " # comments"; a '#' inside a URL is a fragment
                line = re.split(r"\s+#", line.strip(), maxsplit=1)[0].strip()
                if line and not line.startswith("#"):
                    urls.append(line)
            continue
        errors.append(DiscoverError(source, "InvalidSource", f"source {source!r} is neither a URL nor an existing file"))
    return urls, errors


def _unsmuggle(url: str) -> tuple[str, dict]:
    from yt_dlp.utils import unsmuggle_url

    return unsmuggle_url(url, {})


def _upload_date(entry: dict) -> str | None:
    if entry.get("upload_date"):
        return str(entry["upload_date"])
    for key in ("timestamp", "release_timestamp"):
        if entry.get(key) is not None:
            try:
                return datetime.fromtimestamp(float(entry[key]), tz=timezone.utc).strftime("%Y%m%d")
            except (OverflowError, OSError, ValueError):
                return None
    return None


def _video_from_entry(entry: dict, parent: dict | None) -> Video:
    raw_url = entry.get("webpage_url") or entry.get("url") or ""
    url, smuggled = _unsmuggle(raw_url)
    video_id = (entry.get("id") or smuggled.get("force_videoid")
                or Path(urlsplit(url).path).name or url)
    channel = (entry.get("channel") or entry.get("uploader") or (parent or {}).get("channel")
               or (parent or {}).get("uploader") or (parent or {}).get("title") or "")
    duration = entry.get("duration")
    return Video(
        id=str(video_id),
        url=url,
        title=entry.get("title") or "",
        description=entry.get("description") or "",
        channel=str(channel),
        upload_date=_upload_date(entry),
        duration_s=float(duration) if duration is not None else None,
    )


def _is_nested_playlist(entry: dict) -> bool:
    return entry.get("_type") == "playlist" or entry.get("ie_key") in _NESTED_PLAYLIST_KEYS


class _Discoverer:
    def __init__(self, config: DiscoverConfig, client: YouTubeClient):
        self.config = config
        self.client = client
        self.title_re = re.compile(config.title_regex) if config.title_regex else None
        self.result = DiscoverResult()
        self.seen: set[str] = set()

    @property
    def full(self) -> bool:
        return self.config.limit is not None and len(self.result.videos) >= self.config.limit

    def source(self, url: str) -> None:
        try:
            info = self.client.extract(url, flat=True)
        except Exception as exc:  # one failing source never stops the others
            self.result.errors.append(DiscoverError(url, type(exc).__name__, f"source {redact(url)}: {redact(str(exc))}"))
            return
        self.walk(info, None, 0)

    def walk(self, info: dict, parent: dict | None, depth: int) -> None:
        if "entries" not in info:
            self.consider(info, parent, fully_extracted=info.get("_type") in (None, "video"))
            return
        for entry in info["entries"]:
            if self.full:
                return
            if _is_nested_playlist(entry) and depth < _MAX_NESTING:
                nested_url = entry.get("url") or entry.get("webpage_url")
                if "entries" in entry:
                    self.walk(entry, info, depth + 1)
                elif nested_url:
                    try:
                        self.walk(self.client.extract(nested_url, flat=True), info, depth + 1)
                    except Exception as exc:
                        self.result.errors.append(DiscoverError(nested_url, type(exc).__name__,
                                                                f"playlist {redact(nested_url)}: {redact(str(exc))}"))
                continue
            self.consider(entry, info, fully_extracted=False)

    def consider(self, entry: dict, parent: dict | None, fully_extracted: bool) -> None:
        video = _video_from_entry(entry, parent)
        if video.id in self.seen:
            return
        self.seen.add(video.id)
        label = video.id or video.url
        if self.title_re and video.title and not self.title_re.search(video.title):
            self.result.skipped.append((label, f"title does not match {self.config.title_regex!r}"))
            return
        needs_date = bool(self.config.date_after or self.config.date_before) and not video.upload_date
        snippet_only = entry.get("ie_key") == "Youtube" and not parse_challenge_tokens(video.description)
        if not fully_extracted and (entry.get("description") is None or needs_date or snippet_only or not video.title):
            try:
                full = self.client.extract(video.url, extra={"noplaylist": True})
            except Exception as exc:
                self.result.errors.append(DiscoverError(video.url, type(exc).__name__,
                                                        f"video {label}: metadata extraction failed: {redact(str(exc))}"))
                return
            video.title = video.title or full.get("title") or ""
            video.description = full.get("description") or video.description
            video.upload_date = video.upload_date or _upload_date(full)
            if video.duration_s is None and full.get("duration") is not None:
                video.duration_s = float(full["duration"])
            video.channel = video.channel or full.get("channel") or full.get("uploader") or ""
            if self.title_re and not self.title_re.search(video.title):
                self.result.skipped.append((label, f"title does not match {self.config.title_regex!r}"))
                return
        if (reason := self.date_reason(video)) is not None:
            self.result.skipped.append((label, reason))
            return
        video.challenge_tokens = parse_challenge_tokens(video.description)
        if not video.challenge_tokens and self.config.require_challenge_link:
            self.result.skipped.append((label, "no challenge link (geoguessr.com/challenge/<token>) in the description"))
            return
        self.result.videos.append(video)

    def date_reason(self, video: Video) -> str | None:
        after, before = self.config.date_after, self.config.date_before
        if not (after or before):
            return None
        if not video.upload_date:
            return "upload date unknown; cannot apply date_after/date_before"
        if after and video.upload_date < after:
            return f"uploaded {video.upload_date}, before date_after {after}"
        if before and video.upload_date > before:
            return f"uploaded {video.upload_date}, after date_before {before}"
        return None


def discover(sources: list[str], config: DiscoverConfig, ytdlp_options: dict[str, Any] | None = None, *,
             client: YouTubeClient | None = None, retries: int = 3, backoff_s: float = 2.0,
             requests_per_s: float = 2.0) -> DiscoverResult:
    """List the videos of `sources`, keeping those that link a GeoGuessr challenge and pass the filters.

    Raises ValueError only for an invalid configuration (bad regex or date); everything about
    a source or a video is recorded in the result instead.
    """
    # a validated DiscoverConfig already passed these checks (`collect run` fails with a
    # configuration error first); they guard configs built with model_construct / model_copy
    check_yyyymmdd("discover.date_after", config.date_after)
    check_yyyymmdd("discover.date_before", config.date_before)
    check_regex("discover.title_regex", config.title_regex)
    share_rate_limit_with_children()  # the run's worker processes start later: one budget for all
    client = client or YouTubeClient(ytdlp_options, retries=retries, backoff_s=backoff_s, requests_per_s=requests_per_s)
    walker = _Discoverer(config, client)
    urls, errors = expand_sources(sources)
    walker.result.errors.extend(errors)
    for url in urls:
        if walker.full:
            break
        walker.source(url)
    log.info("discover: %d videos kept, %d skipped, %d errors", len(walker.result.videos),
             len(walker.result.skipped), len(walker.result.errors))
    return walker.result
