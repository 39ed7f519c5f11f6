"""Plain typed records passed between collect stages (and read by annotate).

Every record is a dataclass that round-trips through JSON with `to_dict` / `from_dict`,
so stages exchange files, never Python objects.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


def to_dict(record: Any) -> dict:
    return dataclasses.asdict(record)


def from_dict(cls: type[T], data: dict) -> T:
    """Build a (possibly nested) dataclass from a dict, ignoring unknown keys."""
    hints = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for name, f in hints.items():
        if name not in data:
            continue
        value = data[name]
        nested = _NESTED.get((cls.__name__, name))
        if nested is not None and value is not None:
            value = [from_dict(nested, v) for v in value] if isinstance(value, list) else from_dict(nested, value)
        kwargs[name] = value
    return cls(**kwargs)


@dataclass
class Video:
    id: str
    url: str
    title: str = ""
    description: str = ""
    channel: str = ""
    upload_date: str | None = None  # YYYYMMDD as yt-dlp reports it
    duration_s: float | None = None
    challenge_tokens: list[str] = field(default_factory=list)


@dataclass
class Word:
    text: str
    start: float
    end: float


@dataclass
class Segment:
    start: float
    end: float
    text: str
    words: list[Word] = field(default_factory=list)


@dataclass
class Transcript:
    video_id: str
    source: str  # "captions:manual" | "captions:auto" | "whisper:<model>"
    language: str | None
    segments: list[Segment] = field(default_factory=list)

    def words(self) -> list[Word]:
        return [w for s in self.segments for w in s.words]

    def text_between(self, start_s: float, end_s: float) -> str:
        return " ".join(w.text for w in self.words() if start_s <= w.start < end_s)


@dataclass
class ChallengeRound:
    round: int
    lat: float
    lng: float
    pano_id: str | None = None
    heading: float | None = None
    pitch: float | None = None
    zoom: float | None = None
    country_code: str | None = None
    # the video's player's guess of this round (from their game in the highscores), when found
    player_points: int | None = None
    player_distance_km: float | None = None  # None when the round timed out without a guess
    player_lat: float | None = None
    player_lng: float | None = None
    player_timed_out: bool | None = None


@dataclass
class Challenge:
    token: str
    map_name: str | None = None
    map_slug: str | None = None
    round_count: int = 5
    time_limit_s: int = 0  # 0 = no limit (GeoGuessr's convention)
    forbid_moving: bool = False
    forbid_zooming: bool = False
    forbid_rotating: bool = False
    rounds: list[ChallengeRound] = field(default_factory=list)
    creator: str | None = None  # nick of the challenge's creator
    player: str | None = None  # nick of the player whose guesses fill ChallengeRound.player_*


@dataclass
class RoundSpan:
    round: int
    start_s: float
    guess_s: float  # result screen first seen
    end_s: float  # next round starts (or video ends)
    points: int | None = None
    distance_km: float | None = None
    evidence: list[str] = field(default_factory=list)
    # where independent evidence (HUD counter, HUD score, transcript, result screen) disagrees, and how
    disagreements: list[str] = field(default_factory=list)


@dataclass
class Frame:
    round: int
    time_s: float
    path: str  # relative to the video folder
    phash: str | None = None


@dataclass
class StageError:
    stage: str
    type: str
    message: str


_NESTED = {
    ("Segment", "words"): Word,
    ("Transcript", "segments"): Segment,
    ("Challenge", "rounds"): ChallengeRound,
}
