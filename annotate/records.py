"""Records of the annotate flow: what a round looks like going in, what a dataset row is."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Clue:
    text: str
    category: str  # taxonomy key, e.g. "licence_plate", "language", "country_mention"
    entity: str | None = None  # normalised entity, e.g. ISO-3166 alpha-2 "KZ"
    start_s: float | None = None  # seconds in the video, from word timestamps
    end_s: float | None = None
    frame_index: int | None = None  # index into the round's frames (set by align)


@dataclass
class RoundInput:
    """One round as the collect flow hands it over (assembled by annotate.rounds)."""

    id: str  # f"{video_id}/{round}"
    video_id: str
    channel: str
    video_url: str
    challenge_token: str | None
    round: int
    start_s: float
    guess_s: float
    end_s: float
    words: list[dict] = field(default_factory=list)  # {"text","start","end"} of the whole round, reveal included
    lat: float | None = None
    lng: float | None = None
    country_code: str | None = None  # from the challenge payload when it carries one
    points: int | None = None
    distance_km: float | None = None
    time_limit_s: int | None = None
    forbid_moving: bool | None = None
    frames: list[str] = field(default_factory=list)  # absolute image paths
    frame_times_s: list[float] = field(default_factory=list)
    panorama: str | None = None  # Street View panorama path when fetched
    # how the truth was attached (annotate.truth.TruthMatch.to_dict: agreed, disagreed, score, verdict)
    truth_evidence: dict | None = None
    # the previous round's reveal talk that ran on into this round's window, cut from `words`
    # ({"until_s", "text", "markers"}; None when there was none)
    reveal_spill: dict | None = None

    def pre_reveal_text(self) -> str:
        return " ".join(w["text"] for w in self.words if w["start"] < self.guess_s)


@dataclass
class Example:
    """One NaviClues row (the dataset schema; see annotate.build for the features)."""

    id: str
    video_id: str
    channel: str
    video_url: str
    challenge_token: str | None
    round: int
    lat: float
    lng: float
    country: str | None
    country_code: str | None
    continent: str | None
    city: str | None
    points: int | None
    distance_km: float | None
    time_limit_s: int | None
    forbid_moving: bool | None
    transcript: str
    clues: list[dict[str, Any]]
    frames: list[str]
    frame_times_s: list[float]
    image: str | None
    reasoning: str
    reasoning_source: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    # the country the transcript itself concludes (geoparse), a check that the talk belongs to this round
    transcript_country_code: str | None = None
