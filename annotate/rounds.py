"""Assemble `RoundInput` records from a collect output folder.

Reads only collect's published artifacts (layout names + records): the run store's video
list and stage statuses, then per video rounds.json, transcript.json, challenge.json,
frames/index.json and streetview/index.json — each only when its stage's latest run is done,
so an artifact left by an earlier success never outlives a later failure. A video that cannot be
assembled becomes a drop with its reason. Each segment's truth is the API round `annotate.truth`
aligns it with (round counter, result screen, talk, play order), never its OCR'd number alone;
the evidence is kept on the round (`truth_evidence`) for the filters and the evidence file.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from annotate.records import RoundInput
from annotate.reverse import reverse
from annotate.truth import ApiRound, SegmentClaim, align
from collect import layout
from collect.records import Challenge, ChallengeRound, RoundSpan, Transcript, Video, from_dict
from collect.store import RunStore
from naviclues.fsutil import fingerprint, inside, read_json, safe_name

log = logging.getLogger(__name__)

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


# (words of the round, guess time, the round's number) → the country its talk concludes, or None
TalkCountry = Callable[[list[dict], float, int], "str | None"]


def assemble_rounds(out_dir: Path, talk_country: TalkCountry | None = None) -> tuple[list[RoundInput], list[dict]]:
    """Every segmented round of every video, its truth attached by fused evidence (`annotate.truth`);
    `talk_country` adds the round's talk to that evidence. Drops: videos that cannot be assembled."""
    out_dir = Path(out_dir)
    rounds: list[RoundInput] = []
    drops: list[dict] = []
    videos, status = _videos(out_dir)
    for video in videos:
        folder = inside(out_dir, "videos", safe_name(video.id))
        try:
            got = _video_rounds(video, folder, _Reader(folder, video.id, status), talk_country)
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


@dataclass(frozen=True)
class _Truth:
    """One API round as challenge.json has it; coordinates None when its entry is malformed (the round
    still takes part in the alignment, so its segment is dropped as "no truth", not given a neighbour's)."""

    round: ChallengeRound | None
    number: int
    entry: dict

    def api_round(self) -> ApiRound:
        code = None
        if self.round is not None:
            code = (self.round.country_code or reverse(self.round.lat, self.round.lng).country_code or "").upper() or None
        return ApiRound(round=self.number, country_code=code, points=_optional_int(self.entry.get("player_points")),
                        distance_km=_optional_float(self.entry.get("player_distance_km")))


def _optional_int(value) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _optional_float(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _challenge_truth(raw: dict | None) -> tuple[Challenge | None, list[_Truth]]:
    """The challenge and its rounds in play order. A malformed round loses only its own truth
    (that round is then dropped as "no truth"), never its video's other rounds."""
    if not raw:
        return None, []
    challenge = from_dict(Challenge, {**raw, "rounds": []})
    truth: list[_Truth] = []
    for position, entry in enumerate(raw.get("rounds") or [], start=1):
        if not isinstance(entry, dict):
            log.warning("challenge %s: round entry %r skipped: not an object", challenge.token, entry)
            continue
        number = entry.get("round") if isinstance(entry.get("round"), int) else position
        try:
            parsed = from_dict(ChallengeRound, entry)
            if not all(isinstance(v, (int, float)) for v in (parsed.lat, parsed.lng)):
                raise ValueError("lat/lng are not numbers")
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("challenge %s: round entry %r has no usable truth: %s", challenge.token, entry, exc)
            parsed = None
        truth.append(_Truth(parsed, number, entry))
    return challenge, sorted(truth, key=lambda t: t.number)


_SPOKEN_NUMBER = {w: i for i, w in enumerate("zero one two three four five six seven eight nine ten".split())}
_ROUND_IN_CUE = re.compile(r"round\s*(\d{1,2}|" + "|".join(_SPOKEN_NUMBER) + r")\b", re.I)


def segment_claim(raw: dict, span: RoundSpan, talk: str | None) -> SegmentClaim:
    """What rounds.json says about a segment: its number and how it was read, its result screen."""
    counter = raw.get("round_counter")
    source = raw.get("round_source") if raw.get("round_source") in ("counter", "cue", "sequence") else None
    if source is None:
        evidence = [str(e) for e in (span.evidence or [])]
        if isinstance(counter, int) and not isinstance(counter, bool) or any(
                e.startswith("ocr:round-counter") for e in evidence):
            source = "counter"
        elif any(_spoken_round(e) == span.round for e in evidence if e.startswith(("transcript:", "chapter:"))):
            source = "cue"
        else:
            source = "sequence"  # previous + 1: says nothing beyond play order
    number = counter if source == "counter" and isinstance(counter, int) and not isinstance(counter, bool) else span.round
    return SegmentClaim(round=int(number), round_source=source, points=span.points, distance_km=span.distance_km,
                        talk_country=talk)


def _spoken_round(cue: str) -> int | None:
    match = _ROUND_IN_CUE.search(cue)
    if not match:
        return None
    word = match.group(1).lower()
    return int(word) if word.isdigit() else _SPOKEN_NUMBER[word]


def _video_rounds(video: Video, folder: Path, _read: _Reader, talk_country: TalkCountry | None = None
                  ) -> list[RoundInput]:
    rounds: list[RoundInput] = []
    raw_spans = _read(layout.ROUNDS_JSON)
    if not raw_spans:
        return rounds
    transcript_raw = _read(layout.TRANSCRIPT_JSON)
    words = []
    if transcript_raw:
        words = [{"text": w.text, "start": w.start, "end": w.end}
                 for w in from_dict(Transcript, transcript_raw).words()]
    challenge, truth = _challenge_truth(_read(layout.CHALLENGE_JSON))
    frames = _read(layout.FRAMES_INDEX) or []
    panoramas = {int(p["round"]): p["path"] for p in (_read(layout.STREETVIEW_INDEX) or []) if p.get("path")}
    spans = [from_dict(RoundSpan, raw) for raw in raw_spans]
    span_words = [[w for w in words if span.start_s <= w["start"] < span.end_s] for span in spans]
    claims = [segment_claim(raw, span, talk_country(said, span.guess_s, span.round) if talk_country and said else None)
              for raw, span, said in zip(raw_spans, spans, span_words)]
    matches = align(claims, [t.api_round() for t in truth])
    by_number = {t.number: t for t in truth}
    taken: set[str] = set()
    for position, (raw, span, said, match) in enumerate(zip(raw_spans, spans, span_words, matches), start=1):
        true_round = by_number[match.round].round if match.round is not None else None
        number = match.round if match.round is not None else span.round
        round_id = f"{video.id}/{number}"
        if round_id in taken or match.round is None:  # a segment without an API round keeps a distinct id
            round_id = f"{video.id}/segment{position}"
        taken.add(round_id)
        # frames are named by the segment's number; its time window tells two same-numbered segments apart
        round_frames = sorted((f for f in frames if int(f["round"]) == span.round
                               and span.start_s <= float(f["time_s"]) <= span.guess_s), key=lambda f: f["time_s"])
        evidence = match.to_dict()
        # where segmentation's own readings parted (a counter read twice, a spoken number against the order)
        evidence["notes"] += [f"segmentation: {d}" for d in raw.get("disagreements") or [] if isinstance(d, str)]
        if not truth:
            evidence["notes"].append("no challenge rounds to attach")
        rounds.append(RoundInput(
            id=round_id,
            video_id=video.id,
            channel=video.channel,
            video_url=video.url,
            challenge_token=challenge.token if challenge else (video.challenge_tokens or [None])[0],
            round=number,
            start_s=span.start_s,
            guess_s=span.guess_s,
            end_s=span.end_s,
            words=said,
            lat=true_round.lat if true_round else None,
            lng=true_round.lng if true_round else None,
            country_code=true_round.country_code if true_round else None,
            points=span.points,
            distance_km=span.distance_km,
            time_limit_s=challenge.time_limit_s if challenge else None,
            forbid_moving=challenge.forbid_moving if challenge else None,
            frames=[str(folder / f["path"]) for f in round_frames],
            frame_times_s=[float(f["time_s"]) for f in round_frames],
            panorama=str(folder / panoramas[match.round]) if match.round in panoramas else None,
            truth_evidence=evidence if truth else {**evidence, "verdict": "no challenge"},
        ))
    return rounds
