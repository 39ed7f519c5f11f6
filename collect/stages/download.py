"""Download: one yt-dlp call per video → `media/` + `media.json` + a sanitised `info.json`.

Video capped at `download.max_height` plus the best audio (merged into mp4 with the
imageio-ffmpeg binary), English subtitles (manual, else automatic) as WebVTT; a user's
`ytdlp_options` `format` / `merge_output_format` / `subtitleslangs` replace those choices. File names
are fixed (`media/video.<ext>`, `media/video.<lang>.vtt`); a title from the internet never
chooses a path. The downloaded file is checked with ffmpeg (every packet demuxed, the first
second decoded), so a truncated or corrupt file is reported here rather than deep in segment.
"""
from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collect import layout
from collect.config import USER_YTDLP_CHOICES
from collect.clients.youtube import (RATE_STATE_FILE, YouTubeClient, ffmpeg_exe, format_selector, public_options,
                                     redact, sanitize_info)
from naviclues.fsutil import atomic_write_json, fingerprint, inside, read_json
from collect.stages.base import Stage, StageOutcome, VideoContext

MEDIA_DIR = "media"
MEDIA_STEM = "video"
SUBTITLE_LANGS = [r"en(-[A-Za-z]+)?"]  # en, en-orig, en-US, en-GB … (yt-dlp treats these as regexes)


class CorruptMediaError(Exception):
    pass


@dataclass
class MediaProbe:
    duration_s: float | None
    has_video: bool
    has_audio: bool


def probe_media(path: Path | str, timeout_s: float = 120.0) -> MediaProbe:
    """Stream layout and duration from ffmpeg, after demuxing the whole file and decoding its first second.

    Raises CorruptMediaError naming the file and ffmpeg's complaint when the file cannot be
    opened or decoded (a missing moov atom, a truncated tail, …).
    """
    ffmpeg = ffmpeg_exe()
    path = Path(path)
    info = subprocess.run([ffmpeg, "-hide_banner", "-i", str(path)], capture_output=True, text=True,
                          timeout=timeout_s, errors="replace")
    header = info.stderr
    duration = None
    if m := re.search(r"Duration:\s*(\d+):(\d+):(\d+(?:\.\d+)?)", header):
        duration = int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
    has_video = bool(re.search(r"Stream #\S+.*: Video:", header))
    has_audio = bool(re.search(r"Stream #\S+.*: Audio:", header))
    if not (has_video or has_audio):
        last = [ln for ln in header.strip().splitlines() if ln.strip()][-1:] or ["no streams"]
        raise CorruptMediaError(f"{path.name} is unreadable: {last[0].strip()[:300]}")
    checks = [
        # demux every packet without decoding (I/O speed): a truncated file reports "partial file"
        ("is truncated or corrupt", ["-i", str(path), "-map", "0", "-c", "copy"]),
        # decode the first second: catches a broken codec stream the demuxer cannot see
        ("fails to decode at its start", ["-i", str(path), "-t", "1"]),
    ]
    for problem, args in checks:
        run = subprocess.run([ffmpeg, "-v", "error", "-xerror", *args, "-f", "null", "-"], capture_output=True,
                             text=True, timeout=timeout_s, errors="replace")
        if run.returncode != 0 or run.stderr.strip():
            complaint = run.stderr.strip().splitlines()[:2] or [f"ffmpeg exit {run.returncode}"]
            raise CorruptMediaError(f"{path.name} {problem}: {' | '.join(complaint)[:300]}")
    return MediaProbe(duration_s=duration, has_video=has_video, has_audio=has_audio)


def download_params(media_dir: Path, max_height: int, user_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """The yt-dlp parameters the stage sets (they win over user options, which are merged underneath),
    except the choices a user may make (`USER_YTDLP_CHOICES`: format, merge format, subtitle
    languages), where the user's value is used. Options the stage must own are refused by the config."""
    params = {
        "format": format_selector(max_height),
        "merge_output_format": "mp4",
        "writesubtitles": True,
        "writeautomaticsub": True,
        "subtitleslangs": SUBTITLE_LANGS,
        "subtitlesformat": "vtt/best",
        "paths": {"home": str(media_dir)},  # yt-dlp downloads to .part files and renames when complete
        "outtmpl": {"default": f"{MEDIA_STEM}.%(ext)s"},
        "noplaylist": True,
        "writeinfojson": False,  # info.json is written by the stage, sanitised (no cookies/headers)
        "overwrites": False,
        "continuedl": True,
    }
    for key in USER_YTDLP_CHOICES:
        if key in (user_options or {}):
            params[key] = user_options[key]
    return params


CORRUPT_SUFFIX = ".corrupt"
# yt-dlp options that change which file is fetched (not how: rate limits, sleeps, proxies, cookies)
FORMAT_OPTIONS = ("format", "format_sort", "format_sort_force", "merge_output_format", "postprocessors",
                  "audio_format", "prefer_free_formats", "allow_unplayable_formats", "extract_audio")


def media_settings(cfg) -> str:
    """Fingerprint of the settings that decide the media file itself."""
    return fingerprint(cfg.max_height, {k: v for k, v in sorted(cfg.ytdlp_options.items()) if k in FORMAT_OPTIONS})


def _drop_stale_media(ctx: VideoContext, media_dir: Path, settings: str) -> None:
    """Before yt-dlp runs (it keeps any file already at the output name): remove media fetched with
    other download settings (e.g. another max_height) and a file that no longer decodes, so they
    are downloaded again instead of reused."""
    try:
        previous = (read_json(ctx.path(layout.MEDIA_JSON)) or {}).get("downloaded_with")
    except (OSError, ValueError, AttributeError):
        previous = None
    changed = previous is not None and previous != settings
    if changed:
        # media.json describes the old files and goes with them: a retry of the new download (after a
        # kill) then finds no old settings and resumes its own .part instead of starting over
        ctx.path(layout.MEDIA_JSON).unlink(missing_ok=True)
    for path in sorted(media_dir.glob(f"{MEDIA_STEM}.*")):
        if not path.is_file() or path.name.endswith(CORRUPT_SUFFIX):
            continue
        if not changed and path.name.endswith((".part", ".ytdl")):
            continue  # yt-dlp resumes its own partial download
        stale = changed
        if not stale and path.suffix.lower() in MEDIA_SUFFIXES:
            try:
                probe_media(path)
            except (CorruptMediaError, subprocess.TimeoutExpired):
                stale = True
        if stale:
            path.unlink(missing_ok=True)


MEDIA_SUFFIXES = (".mp4", ".webm", ".mkv", ".m4a", ".mp3", ".opus", ".ogg", ".wav", ".mov")


def _caption_kind(info: dict, lang: str) -> str:
    return "manual" if lang in (info.get("subtitles") or {}) else "auto"


def _lang_rank(lang: str) -> tuple[int, str]:
    return ({"en": 0, "en-orig": 1}.get(lang, 2), lang)


def _relative(ctx: VideoContext, path: str | Path) -> str:
    """`path` relative to the video folder; refuses anything yt-dlp put outside it."""
    resolved = inside(ctx.video_dir, str(Path(path).resolve().relative_to(ctx.video_dir.resolve())))
    return resolved.relative_to(ctx.video_dir.resolve()).as_posix()


class DownloadStage(Stage):
    name = "download"
    output_keys = ("media", "video", "audio")
    requires = ()

    def config_slice(self, ctx: VideoContext) -> Any:
        cfg = ctx.config.download
        # the video's identity is its id: the same video reached by another URL form is not new input
        return {"max_height": cfg.max_height, "ytdlp_options": public_options(cfg.ytdlp_options),
                "video_id": ctx.video.id}

    def run(self, ctx: VideoContext) -> StageOutcome:
        cfg = ctx.config.download
        media_dir = ctx.path(MEDIA_DIR)
        media_dir.mkdir(parents=True, exist_ok=True)
        settings = media_settings(cfg)
        _drop_stale_media(ctx, media_dir, settings)
        # the rate-limit schedule lives in the output folder: every worker of the run (a pool process, a Ray task
        # on another machine of the cluster) reaches it, as it reaches the run store
        client = YouTubeClient(cfg.ytdlp_options, retries=cfg.retries, backoff_s=cfg.backoff_s,
                               requests_per_s=cfg.requests_per_s, rate_state=ctx.out_dir / RATE_STATE_FILE)
        try:
            info = client.download(ctx.video.url, download_params(media_dir, cfg.max_height, cfg.ytdlp_options))
        except Exception as exc:
            return StageOutcome.failed(self.name, f"download of {ctx.video.id} failed: {redact(str(exc))}",
                                       type(exc).__name__)
        if info.get("_type") == "playlist":
            return StageOutcome.failed(self.name, f"{ctx.video.id}: URL resolved to a playlist, not one video",
                                       "NotAVideo")

        video_rel = None
        for item in info.get("requested_downloads") or [info]:
            filepath = item.get("filepath") or item.get("_filename")
            if filepath and Path(filepath).is_file():
                video_rel = _relative(ctx, filepath)
                break
        if video_rel is None:
            return StageOutcome.failed(self.name, f"{ctx.video.id}: yt-dlp reported success but no media file exists",
                                       "MissingMedia")
        try:
            probe = probe_media(ctx.path(video_rel))
        except (CorruptMediaError, subprocess.TimeoutExpired) as exc:
            # moved aside: yt-dlp would otherwise take the file as downloaded on every later attempt
            ctx.path(video_rel).replace(ctx.path(video_rel + CORRUPT_SUFFIX))
            return StageOutcome.failed(self.name, f"{ctx.video.id}: {exc} (kept as {video_rel + CORRUPT_SUFFIX}; "
                                                  "the next run downloads it again)", "CorruptMedia")
        audio_rel = video_rel if probe.has_audio else None  # merged file: whisper reads its audio track
        video_rel_out = video_rel if probe.has_video else None

        captions: dict[str, str | None] = {"manual": None, "auto": None}
        languages: dict[str, str] = {}
        for lang in sorted((info.get("requested_subtitles") or {}), key=_lang_rank):
            sub = info["requested_subtitles"][lang]
            path = sub.get("filepath")
            if not path or not Path(path).is_file():
                continue
            kind = _caption_kind(info, lang)
            if captions[kind] is None:
                captions[kind] = _relative(ctx, path)
                languages[kind] = lang

        atomic_write_json(ctx.path(layout.INFO_JSON), sanitize_info(info))
        media = {"video": video_rel_out, "audio": audio_rel, "captions": captions,
                 "caption_languages": languages, "duration_s": probe.duration_s, "downloaded_with": settings}
        atomic_write_json(ctx.path(layout.MEDIA_JSON), media)
        return StageOutcome.done(media=layout.MEDIA_JSON, video=video_rel_out, audio=audio_rel,
                                 captions=[k for k, v in captions.items() if v], duration_s=probe.duration_s)
