"""Put a demo-corpus video into a run folder the way `download` and `transcript` leave it.

Lets later stages (segment, frames, ...) be run and tested on a demo video without the
network stages: media/video.mp4 + media/video.en.vtt, media.json, a yt-dlp-like info.json
and transcript.json (parsed from the captions by the transcript stage's own parser).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from collect import layout
from naviclues.fsutil import atomic_write_json, inside, read_json, safe_name
from collect.records import Video, to_dict


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def stage_demo_video(corpus_dir: Path | str, video_id: str, out_dir: Path | str, *,
                     with_transcript: bool = True, chapters: list[dict] | None = None) -> Video:
    """Write OUT/videos/<id>/{media/, media.json, info.json, transcript.json}; return the Video."""
    from collect.stages.transcript import parse_vtt

    corpus = Path(corpus_dir)
    meta = next((v for v in read_json(corpus / "videos.json") if v["id"] == video_id), None)
    if meta is None:
        raise KeyError(f"video {video_id!r} is not in {corpus / 'videos.json'}")
    video_dir = inside(Path(out_dir), "videos", safe_name(video_id))
    mp4 = inside(corpus / "media", f"{video_id}.mp4")
    vtt = inside(corpus / "media", f"{video_id}.en.vtt")
    _link_or_copy(mp4, video_dir / "media" / "video.mp4")
    _link_or_copy(vtt, video_dir / "media" / "video.en.vtt")
    atomic_write_json(video_dir / layout.MEDIA_JSON, {
        "video": "media/video.mp4", "audio": None,
        "captions": {"manual": None, "auto": "media/video.en.vtt"}})
    info = {"id": video_id, "title": meta["title"], "description": meta["description"],
            "duration": meta["duration"], "upload_date": meta["upload_date"], "channel": meta["channel"]}
    if chapters is not None:
        info["chapters"] = chapters
    atomic_write_json(video_dir / layout.INFO_JSON, info)
    if with_transcript:
        transcript = parse_vtt(video_dir / "media" / "video.en.vtt", video_id=video_id, language="en")
        atomic_write_json(video_dir / layout.TRANSCRIPT_JSON, to_dict(transcript))
    return Video(id=video_id, url=f"demo://{video_id}", title=meta["title"], description=meta["description"],
                 channel=meta["channel"], upload_date=meta["upload_date"], duration_s=meta["duration"])
