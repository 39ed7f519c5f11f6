"""Assemble `RoundInput` records from a collect output folder.

Reads only collect's published artifacts (layout names + records): the run store's video
list and stage statuses, then per video rounds.json, transcript.json, challenge.json,
frames/index.json and streetview/index.json — each only when its stage's latest run is done,
so an artifact left by an earlier success never outlives a later failure. A round (or video)
that cannot be assembled becomes a drop with its reason.
"""
from __future__ import annotations

import logging
from pathlib import Path

from annotate.records import RoundInput
from collect import layout
from naviclues.fsutil import fingerprint, inside, read_json, safe_name
from collect.records import Challenge, ChallengeRound, RoundSpan, Transcript, Video, from_dict

log = logging.getLogger(__name__)
from collect.store import RunStore

# files whose change means the dataset must be rebuilt
_INPUT_FILES = (layout.ROUNDS_JSON, layout.TRANSCRIPT_JSON, layout.CHALLENGE_JSON, layout.FRAMES_INDEX,
                layout.STREETVIEW_INDEX, layout.INFO_JSON)


# artifact → the stage whose latest run must be done for it to be read
_PRODUCER = {layout.ROUNDS_JSON: "segment", layout.TRANSCRIPT_JSON: "transcript", layout.CHALLENGE_JSON: "challenge",
             layout.FRAMES_INDEX: "frames", layout.STREETVIEW_INDEX: "streetview", layout.INFO_JSON: "download"}


def _videos(out_dir: Path) -> tuple[list[Video], dict[tuple[str, str], str]]:
    if not (Path(out_dir) / "run.sqlite").exists():
        raise FileNotFoundError(f"{out_dir} has no run store (run.sqlite): run `collect run` first")
    with RunStore(out_dir) as store:
        return store.videos(), {(r.video_id, r.stage): r.status for r in store.rows()}


def inputs_fingerprint(out_dir: Path, settings: object) -> str:
    """Cheap (stat + stage status) fingerprint of every round input plus the annotate settings."""
    stats = []
    videos, status = _videos(out_dir)
    for video in videos:
        folder = inside(out_dir, "videos", safe_name(video.id))
        for name in _INPUT_FILES:
            p = folder / name
            state = status.get((video.id, _PRODUCER[name]))
            stats.append((video.id, name, state, p.stat().st_size, p.stat().st_mtime_ns) if p.exists()
                         else (video.id, name, state))
    return fingerprint("annotate", settings, stats)


class _Reader:
    """Reads a video's artifacts, each only when its producing stage is done."""

    def __init__(self, folder: Path, video_id: str, status: dict[tuple[str, str], str]):
        self.folder, self.video_id, self.status = folder, video_id, status

    def __call__(self, name: str):
        if self.status.get((self.video_id, _PRODUCER[name])) != "done":
            return None
        path = self.folder / name
        if not path.exists():
            return None
        try:
            return read_json(path)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{name} is unreadable: {exc}") from None


def assemble_rounds(out_dir: Path) -> tuple[list[RoundInput], list[dict]]:
    out_dir = Path(out_dir)
    rounds: list[RoundInput] = []
    drops: list[dict] = []
    videos, status = _videos(out_dir)
    for video in videos:
        folder = inside(out_dir, "videos", safe_name(video.id))
        try:
            got = _video_rounds(video, folder, _Reader(folder, video.id, status))
        except (ValueError, KeyError, TypeError) as exc:  # a corrupt artifact drops its video, not the build
            drops.append({"id": video.id, "video_id": video.id, "reasons": [f"bad collect artifact: {exc}"],
                          "stage": "collect"})
            continue
        if not got:
            state = status.get((video.id, "segment"), "not run")
            drops.append({"id": video.id, "video_id": video.id, "reasons": [f"no rounds segmented (segment {state})"],
                          "stage": "collect"})
        rounds += got
    return rounds, drops


def _challenge_truth(raw: dict | None) -> tuple[Challenge | None, dict[int, ChallengeRound]]:
    """The challenge and its rounds' truth by round number. A malformed round loses only its own
    truth (that round is then dropped as "no truth"), never its video's other rounds."""
    if not raw:
        return None, {}
    challenge = from_dict(Challenge, {**raw, "rounds": []})
    truth: dict[int, ChallengeRound] = {}
    for entry in raw.get("rounds") or []:
        try:
            parsed = from_dict(ChallengeRound, entry)
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("challenge %s: round entry %r skipped: %s", challenge.token, entry, exc)
            continue
        truth[parsed.round] = parsed
    return challenge, truth


def _video_rounds(video: Video, folder: Path, _read: _Reader) -> list[RoundInput]:
    rounds: list[RoundInput] = []
    spans = _read(layout.ROUNDS_JSON)
    if spans:
        transcript_raw = _read(layout.TRANSCRIPT_JSON)
        words = []
        if transcript_raw:
            words = [{"text": w.text, "start": w.start, "end": w.end}
                     for w in from_dict(Transcript, transcript_raw).words()]
        challenge, truth = _challenge_truth(_read(layout.CHALLENGE_JSON))
        frames = _read(layout.FRAMES_INDEX) or []
        panoramas = {int(p["round"]): p["path"] for p in (_read(layout.STREETVIEW_INDEX) or [])
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
    return rounds
