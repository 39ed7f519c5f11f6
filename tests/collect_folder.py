"""Write a collect output folder by hand: the run store and, per video, exactly the artifacts collect
publishes (rounds.json, transcript.json, challenge.json, frames/index.json + JPEGs), so annotate can
be run on situations the demo corpus never produces (a round cut from the video, a spill of reveal
talk into the next round, a result screen whose points belong to another game)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from annotate import gazetteer
from collect import layout
from collect.records import Segment, Transcript, Video, Word, to_dict
from collect.store import RunStore

WORD_S = 0.4  # seconds per spoken word
STAGES = ("download", "transcript", "challenge", "segment", "frames")


@dataclass(frozen=True)
class Place:
    """One challenge round: where it was and how the API's player scored it."""

    country_code: str
    lat: float
    lng: float
    points: int
    distance_km: float
    talk: str  # what the player says before guessing


PLACES = [
    Place("br", -15.79, -47.88, 4100, 350.0,
          "okay we have red soil and the road lines are yellow with a white outer line there are palm trees and "
          "the language on the sign looks portuguese I think this is Brazil so I will click somewhere in Brazil"),
    Place("jp", 35.68, 139.69, 3900, 420.0,
          "alright so we drive on the left here the poles are concrete and the sign has japanese characters with "
          "small houses and narrow roads this has to be Japan I am going to guess Japan"),
    Place("ke", -1.29, 36.82, 4500, 120.0,
          "red dirt road with acacia trees and the car has a snorkel the plates are yellow at the back and people "
          "drive on the left this must be Kenya I will go with Kenya"),
    Place("no", 59.91, 10.75, 4800, 30.0,
          "we have mountains and a fjord with yellow center lines and the bollards have a yellow reflector the "
          "houses are red and wooden so this should be Norway going with Norway"),
    Place("ar", -34.60, -58.38, 3600, 700.0,
          "flat pampas with long straight roads and white lines the license plates are white and the language on "
          "the signs is spanish I think Argentina so my guess is Argentina"),
]


def spoken(text: str, start_s: float) -> list[Word]:
    return [Word(w, round(start_s + i * WORD_S, 3), round(start_s + i * WORD_S + WORD_S * 0.8, 3))
            for i, w in enumerate(text.split())]


@dataclass
class PlayedRound:
    """One round as it appears in the video: which place it is, what segmentation read off it."""

    place: Place
    segment_round: int  # the number segmentation gave it
    evidence: tuple[str, ...] = ()  # rounds.json evidence ("ocr:round-counter 3/5@…" marks an OCR'd counter)
    screen_points: int | None = None  # result screen as OCR read it
    screen_distance_km: float | None = None
    opening: str = ""  # said first in the round's window (e.g. the previous round's reveal talk running on)
    disagreements: tuple[str, ...] = ()  # rounds.json: where segmentation's own readings parted


def write_video(out: Path, video_id: str, token: str, api_places: list[Place], played: list[PlayedRound],
                round_s: float = 80.0) -> None:
    """One video of `played` rounds whose challenge is `api_places`, with its stages marked done."""
    folder = out / "videos" / video_id
    (folder / "frames").mkdir(parents=True, exist_ok=True)
    words: list[Word] = []
    spans, frames = [], []
    for k, p in enumerate(played):
        start = 5.0 + k * round_s
        t = start + 0.5
        if p.opening:
            words += spoken(p.opening, t)
            t = words[-1].end + 0.2
        words += spoken(p.place.talk, t)
        guess = words[-1].end + 2.0
        words += spoken(f"oh it was {country_name(p.place)} nice {p.place.points} points", guess + 1.0)
        spans.append({"round": p.segment_round, "start_s": start, "guess_s": round(guess, 3),
                      "end_s": start + round_s, "points": p.screen_points, "distance_km": p.screen_distance_km,
                      "evidence": [f"ocr:result@{guess:.1f}", *p.evidence], "disagreements": list(p.disagreements)})
        for n, ft in enumerate((start + 1.0, guess - 1.0)):
            rel = f"frames/r{p.segment_round}_{k}_{n}.jpg"
            Image.new("RGB", (32, 24), (40 * k % 255, 120, 60 * n)).save(folder / rel, "JPEG")
            frames.append({"round": p.segment_round, "time_s": round(ft, 3), "path": rel})
    transcript = Transcript(video_id, "captions:auto", "en",
                            [Segment(words[0].start, words[-1].end, " ".join(w.text for w in words), words)])
    challenge = {"token": token, "map_name": "A Diverse World", "round_count": len(api_places), "time_limit_s": 0,
                 "forbid_moving": True, "rounds": [
                     {"round": k, "lat": a.lat, "lng": a.lng, "country_code": a.country_code,
                      "player_points": a.points, "player_distance_km": a.distance_km}
                     for k, a in enumerate(api_places, start=1)]}
    (folder / layout.ROUNDS_JSON).write_text(json.dumps(spans))
    (folder / layout.TRANSCRIPT_JSON).write_text(json.dumps(to_dict(transcript)))
    (folder / layout.CHALLENGE_JSON).write_text(json.dumps(challenge))
    (folder / layout.FRAMES_INDEX).write_text(json.dumps(frames))
    with RunStore(out) as store:
        store.upsert_videos([Video(id=video_id, url=f"https://www.youtube.com/watch?v={video_id}", title=video_id,
                                   channel="Hand Made", challenge_tokens=[token])])
        for stage in STAGES:
            store.mark_running(video_id, stage, "fp")
            store.mark_finished(video_id, stage, "done", fingerprint="fp")


def country_name(place: Place) -> str:
    return gazetteer.country_by_code(place.country_code).name
