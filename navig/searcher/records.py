"""Typed outputs of the Searcher tools (plain dataclasses, JSON-ready through `asdict`)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Detection:
    label: str  # the object prompt it matched ("road sign", "house", "building sign")
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels of the original image
    score: float

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]


@dataclass
class GuidebookHit:
    clue: str
    country: str | None
    distance: float  # FAISS L2 distance (lower is closer)
    image: str | None = None  # guidebook image the hit came from, if any
    source: str | None = None
    via: str = "image"  # "image" (crop vs guidebook images), "clip_text" (crop vs clue texts), "text"


@dataclass(frozen=True)
class GeoHit:
    name: str
    country_code: str | None
    lat: float
    lng: float
    kind: str  # "city" | "admin1" | "country" | a Nominatim addresstype
    score: float  # 1 = exact name match; lower = looser match
    display_name: str | None = None
