"""Assemble `RoundInput` records from a collect output folder.

Reads only collect's published artifacts (layout names + records): the run store's video
list, then per video rounds.json, transcript.json, challenge.json, frames/index.json and
streetview/index.json. A round that cannot be assembled becomes a drop with its reason.
"""
from __future__ import annotations

from pathlib import Path

from annotate.records import RoundInput
from collect import layout
from collect.fsutil import fingerprint, inside, read_json, safe_name
from collect.records import Challenge, RoundSpan, Transcript, Video, from_dict
from collect.store import RunStore

# files whose change means the dataset must be rebuilt
_INPUT_FILES = (layout.ROUNDS_JSON, layout.TRANSCRIPT_JSON, layout.CHALLENGE_JSON, layout.FRAMES_INDEX,
                layout.STREETVIEW_INDEX, layout.INFO_JSON)


def _videos(out_dir: Path) -> list[Video]:
    if not (Path(out_dir) / "run.sqlite").exists():
        raise FileNotFoundError(f"{out_dir} has no run store (run.sqlite): run `collect run` first")
    with RunStore(out_dir) as store:
        return store.videos()


def inputs_fingerprint(out_dir: Path, settings: object) -> str:
    """Cheap (stat only) fingerprint of every round input plus the annotate settings."""
    stats = []
    for video in _videos(out_dir):
        folder = inside(out_dir, "videos", safe_name(video.id))
        for name in _INPUT_FILES:
            p = folder / name
            stats.append((video.id, name, p.stat().st_size, p.stat().st_mtime_ns) if p.exists() else (video.id, name))
    return fingerprint("annotate", settings, stats)


def _read(folder: Path, name: str):
    path = folder / name
    return read_json(path) if path.exists() else None


def assemble_rounds(out_dir: Path) -> tuple[list[RoundInput], list[dict]]:
    out_dir = Path(out_dir)
    rounds: list[RoundInput] = []
    drops: list[dict] = []
    for video in _videos(out_dir):
        folder = inside(out_dir, "videos", safe_name(video.id))
        spans = _read(folder, layout.ROUNDS_JSON)
        if not spans:
            drops.append({"id": video.id, "video_id": video.id, "reasons": ["no rounds segmented"]})
            continue
        transcript_raw = _read(folder, layout.TRANSCRIPT_JSON)
        words = []
        if transcript_raw:
            words = [{"text": w.text, "start": w.start, "end": w.end}
                     for w in from_dict(Transcript, transcript_raw).words()]
        challenge_raw = _read(folder, layout.CHALLENGE_JSON)
        challenge = from_dict(Challenge, challenge_raw) if challenge_raw else None
        truth = {r.round: r for r in challenge.rounds} if challenge else {}
        frames = _read(folder, layout.FRAMES_INDEX) or []
        panoramas = {int(p["round"]): p["path"] for p in (_read(folder, layout.STREETVIEW_INDEX) or [])
                     if p.get("path")}
        for raw in spans:
            span = from_dict(RoundSpan, raw)
            true_round = truth.get(span.round)
            round_frames = sorted((f for f in frames if int(f["round"]) == span.round), key=lambda f: f["time_s"])
            rounds.append(RoundInput(
                id=f"{video.id}/{span.round}",
                video_id=video.id,
                channel=video.channel,
                video_url=video.url,
                challenge_token=challenge.token if challenge else (video.challenge_tokens or [None])[0],
                round=span.round,
                start_s=span.start_s,
                guess_s=span.guess_s,
                end_s=span.end_s,
                words=[w for w in words if span.start_s <= w["start"] < span.end_s],
                lat=true_round.lat if true_round else None,
                lng=true_round.lng if true_round else None,
                country_code=true_round.country_code if true_round else None,
                points=span.points,
                distance_km=span.distance_km,
                time_limit_s=challenge.time_limit_s if challenge else None,
                forbid_moving=challenge.forbid_moving if challenge else None,
                frames=[str(folder / f["path"]) for f in round_frames],
                frame_times_s=[float(f["time_s"]) for f in round_frames],
                panorama=str(folder / panoramas[span.round]) if span.round in panoramas else None,
            ))
    return rounds, drops
