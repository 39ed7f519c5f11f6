"""Import the NaviClues files released with the paper into this toolkit's dataset layout.

A release row looks like

    {"youtube_url": "XXXX", "challenge_url": "XXXX", "points": "5000", "distance": 0.0,
     "image_path": "images/images_geogasm/<token>/<round>/combined.jpg",
     "location": {"round": 1, "lat": .., "lng": .., "continent": "..", "country": ".."},
     "clues": "<GPT-4o reasoning>"}

URLs are masked ("XXXX"), `points` is a string, `distance` is in km, and the channel and challenge
token only survive in `image_path`. Each row becomes an `Example` (reasoning_source
"paper:gpt-4o", no transcript, the released image as `image`) and the whole set goes through
`build_dataset`, so the result has the same splits, features, card and hub folder as a build of
our own. A row that cannot be converted (missing image, bad JSON, unparseable field) is a drop
record naming the line and the cause.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qs, urlsplit

from annotate.build import BuildResult, build_dataset
from annotate.records import Example
from naviclues.fsutil import inside

REASONING_SOURCE = "paper:gpt-4o"
IMPORT_STAGE = "import"
MASK = "XXXX"


@dataclass
class ReleaseRow:
    line: int
    example: Example | None = None
    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- field parsing


def parse_image_path(image_path: str) -> tuple[str, str, int]:
    """(channel, challenge token, round) from `images/images_<channel>/<token>/<round>/<file>`."""
    parts = PurePosixPath(str(image_path)).parts
    for i, part in enumerate(parts):
        if part.startswith("images_") and len(part) > len("images_") and i + 3 < len(parts):
            channel, token, round_text = part[len("images_"):], parts[i + 1], parts[i + 2]
            if not token or token in (".", ".."):
                break
            try:
                return channel, token, int(round_text)
            except ValueError:
                raise ValueError(f"round {round_text!r} in image_path is not a number") from None
    raise ValueError(f"image_path {image_path!r} is not images/images_<channel>/<token>/<round>/<file>")


def youtube_video(url: Any) -> tuple[str | None, str | None]:
    """(video_id, url) for a real YouTube watch/short link; (None, None) for the release's masked values."""
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        return None, None
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if host.endswith("youtu.be"):
        video = parts.path.strip("/").split("/")[0]
    elif host.endswith("youtube.com"):
        video = (parse_qs(parts.query).get("v") or [""])[0]
        if not video and parts.path.startswith(("/shorts/", "/live/")):
            video = parts.path.split("/")[2]
    else:
        return None, None
    if not video or MASK in video:
        return None, None
    return video, f"https://www.youtube.com/watch?v={video}"


def resolve_country_code(name: str | None) -> str | None:
    """ISO alpha-2 of a country name: the project gazetteer when present, else pycountry's fuzzy search."""
    if not name:
        return None
    try:
        from annotate.gazetteer import resolve_country
    except ImportError:
        resolve_country = None
    if resolve_country is not None:
        country = resolve_country(name)
        if country is not None:
            return country.code
    import pycountry

    try:
        return pycountry.countries.search_fuzzy(name)[0].alpha_2
    except LookupError:
        return None


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{name} {value!r} is not a number")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} {value!r} is not finite")
    return number


def _locate_image(images_dir: Path, image_path: str) -> Path:
    """The image under `images_dir`, whether it is the folder holding `images/` or `images/` itself."""
    rel = PurePosixPath(image_path)
    candidates = [rel.parts]
    if rel.parts and rel.parts[0] == "images":
        candidates.append(rel.parts[1:])
    first = None
    for parts in candidates:
        path = inside(images_dir, *parts)  # a crafted "../" path is refused, never followed
        first = first or path
        if path.is_file():
            return path
    return first


def convert_row(raw: Any, line: int, images_dir: Path) -> ReleaseRow:
    row = ReleaseRow(line=line)
    if not isinstance(raw, dict):
        row.reasons.append(f"malformed row: expected an object, got {type(raw).__name__}")
        return row
    image_path = raw.get("image_path")
    try:
        channel, token, path_round = parse_image_path(image_path)
    except ValueError as exc:
        row.reasons.append(f"malformed image_path: {exc}")
        return row
    location = raw.get("location") if isinstance(raw.get("location"), dict) else {}
    try:
        lat, lng = _number(location.get("lat"), "lat"), _number(location.get("lng"), "lng")
    except (TypeError, ValueError) as exc:
        row.reasons.append(f"no truth: {exc}")
        lat = lng = None
    round_number = location.get("round", path_round)
    if round_number != path_round:
        row.reasons.append(f"round mismatch: location.round {round_number!r} vs image_path round {path_round}")
    points = None
    if raw.get("points") not in (None, ""):
        try:
            points = int(str(raw["points"]).strip())
        except ValueError:
            row.reasons.append(f"malformed points: {raw['points']!r}")
    distance = None
    if raw.get("distance") is not None:
        try:
            distance = _number(raw["distance"], "distance")
        except (TypeError, ValueError) as exc:
            row.reasons.append(f"malformed distance: {exc}")
    reasoning = raw.get("clues")
    if not isinstance(reasoning, str) or not reasoning.strip():
        row.reasons.append("empty reasoning: the release row has no clues text")
    try:
        image = _locate_image(images_dir, str(image_path))
    except ValueError as exc:
        row.reasons.append(f"malformed image_path: {exc}")
        image = None
    if image is not None and not image.is_file():
        row.reasons.append(f"image missing: {image_path}")
    if row.reasons:
        return row

    country = location.get("country")
    code = resolve_country_code(country)
    if country and code is None:
        row.notes.append(f"country {country!r} not resolved to an ISO code")
    video_id, video_url = youtube_video(raw.get("youtube_url"))
    row.example = Example(
        id=f"{channel}/{token}/{path_round}",
        video_id=video_id,
        channel=channel,
        video_url=video_url,
        challenge_token=token,
        round=path_round,
        lat=lat,
        lng=lng,
        country=country,
        country_code=code,
        continent=location.get("continent"),
        city=None,
        points=points,
        distance_km=distance,
        time_limit_s=None,
        forbid_moving=None,
        transcript="",
        clues=[],
        frames=[],
        frame_times_s=[],
        image=str(image),
        reasoning=reasoning.strip(),
        reasoning_source=REASONING_SOURCE,
    )
    return row


def read_release(jsonl_path: Path | str, images_dir: Path | str) -> list[ReleaseRow]:
    images_dir = Path(images_dir)
    rows = []
    with open(jsonl_path, encoding="utf-8") as fh:
        for line_number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as exc:
                rows.append(ReleaseRow(line=line_number, reasons=[f"malformed JSON: {exc}"]))
                continue
            rows.append(convert_row(raw, line_number, images_dir))
    return rows


def import_paper_release(
    jsonl_path: Path | str,
    images_dir: Path | str,
    out_dir: Path | str,
    *,
    test_fraction: float | None = None,
    test_challenges: int = 50,
    max_test_fraction: float | None = 0.2,
    val_fraction: float = 0.0,
    seed: int = 0,
    title: str = "NaviClues (paper release)",
) -> BuildResult:
    """Convert the released JSONL + images into OUT/dataset and OUT/hub through `build_dataset`."""
    jsonl_path = Path(jsonl_path)
    rows = read_release(jsonl_path, images_dir)
    examples = [r.example for r in rows if r.example is not None]
    drops = [
        {"id": f"{jsonl_path.name}:{r.line}", "line": r.line, "reasons": r.reasons, "stage": IMPORT_STAGE}
        for r in rows if r.example is None
    ]
    notes = {f"{jsonl_path.name}:{r.line}": r.notes for r in rows if r.notes}
    result = build_dataset(
        examples, drops, out_dir,
        test_fraction=test_fraction, test_challenges=test_challenges, max_test_fraction=max_test_fraction,
        val_fraction=val_fraction, seed=seed,
        filters_applied={"source": f"paper release {jsonl_path.name}", "transcript required": False},
        require_transcript=False,
        title=title,
        provenance={
            "source": "The NaviClues files released with the paper (arXiv:2502.14638): one GeoGuessr round per row, "
            "video and challenge URLs masked by the authors; channel and challenge token recovered from image_path.",
            "reasoning": "The `reasoning` column is the paper's GPT-4o reasoning (`reasoning_source` = paper:gpt-4o); "
            "the release has no transcripts, frames or structured clues.",
        },
    )
    result.stats["import_notes"] = notes
    return result


def run_import(jsonl: Path | str, images: Path | str, out: Path | str) -> dict[str, Any]:
    """The `collect import-release JSONL --images DIR --out OUT` command: import, then a JSON-able summary."""
    result = import_paper_release(jsonl, images, out)
    summary = result.summary()
    summary["source"] = str(jsonl)
    summary["missing_images"] = sum(
        1 for d in result.drops if any(str(r).startswith("image missing") for r in d.get("reasons", []))
    )
    summary["notes"] = result.stats.get("import_notes", {})
    return summary


__all__ = [
    "REASONING_SOURCE",
    "convert_row",
    "import_paper_release",
    "parse_image_path",
    "read_release",
    "resolve_country_code",
    "run_import",
    "youtube_video",
]
