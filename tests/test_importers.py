"""annotate.importers: the paper's release format becomes the same dataset layout as our builds."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from datasets import load_dataset
from PIL import Image

from annotate.build import FEATURES
from annotate.importers import (
    REASONING_SOURCE,
    import_paper_release,
    parse_image_path,
    resolve_country_code,
    run_import,
    youtube_video,
)

SHARED_RELEASE = Path(__file__).resolve().parents[2] / "shared" / "naviclues" / "release_sample_filtered_clues.jsonl"


def write_image(root: Path, rel: str, color=(200, 120, 40)) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (48, 16), color).save(path, format="JPEG")


def release_row(channel: str, token: str, rnd: int, **over) -> dict:
    row = {
        "youtube_url": "XXXX", "challenge_url": "XXXX", "points": "4321", "distance": 123.4,
        "image_path": f"images/images_{channel}/{token}/{rnd}/combined.jpg",
        "location": {"round": rnd, "lat": 59.3 + rnd, "lng": 18.1, "continent": "Europe", "country": "Sweden"},
        "clues": f"Yellow-bordered signs and pine forest suggest Sweden (round {rnd}).",
    }
    row.update(over)
    return row


def test_field_parsers():
    assert parse_image_path("images/images_geogasm/6Xv9zhYR8q517DJU/3/combined.jpg") == ("geogasm", "6Xv9zhYR8q517DJU", 3)
    with pytest.raises(ValueError):
        parse_image_path("images/combined.jpg")
    with pytest.raises(ValueError, match="not a number"):
        parse_image_path("images/images_x/TOKEN/three/combined.jpg")
    assert youtube_video("XXXX") == (None, None)
    assert youtube_video("XXXXoZeV6_ijpkp2tMWgQHav&index=2") == (None, None)
    assert youtube_video("https://youtube.com/watch?v=aI-3jGAdrhw&list=PL8&index=4") == (
        "aI-3jGAdrhw", "https://www.youtube.com/watch?v=aI-3jGAdrhw")
    assert youtube_video("https://youtu.be/aI-3jGAdrhw") == ("aI-3jGAdrhw", "https://www.youtube.com/watch?v=aI-3jGAdrhw")
    assert resolve_country_code("Isle of Man") == "IM" and resolve_country_code("Russia") == "RU"
    assert resolve_country_code("Atlantis of the North") is None


def test_handwritten_release(tmp_path):
    images = tmp_path / "release"
    rows = [release_row("geopeter", "TOKENaaaa", r) for r in (1, 2)]
    rows += [release_row("geopeter", "TOKENbbbb", r, youtube_url="https://youtube.com/watch?v=abcdefghijk") for r in (1, 2)]
    rows.append(release_row("geopeter", "TOKENcccc", 1))  # image never written
    rows.append(release_row("geopeter", "TOKENdddd", 1, points="lots"))
    rows.append(release_row("geopeter", "TOKENeeee", 1, image_path="images/images_geopeter/../../../../etc/passwd"))
    for row in rows[:4] + rows[5:6]:
        write_image(images, row["image_path"])
    jsonl = tmp_path / "release.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in rows) + "\n{not json\n")

    summary = run_import(jsonl, images, tmp_path / "out")
    assert summary["rows"] == 4 and summary["missing_images"] == 1
    reasons = {d["id"]: d["reasons"] for d in json.loads("[" + ",".join(
        (tmp_path / "out" / "dataset" / "drops.jsonl").read_text().splitlines()) + "]")}
    assert reasons["release.jsonl:5"] == ["image missing: images/images_geopeter/TOKENcccc/1/combined.jpg"]
    assert reasons["release.jsonl:6"] == ["malformed points: 'lots'"]
    assert reasons["release.jsonl:7"][0].startswith("malformed image_path")
    assert reasons["release.jsonl:8"][0].startswith("malformed JSON")

    ds = load_dataset(str(tmp_path / "out" / "hub"), cache_dir=str(tmp_path / "cache"))
    assert set(ds) == {"train", "test"}  # two challenges -> one each
    assert {len(set(ds[s]["challenge_token"])) for s in ds} == {1}
    row = next(r for s in ds for r in ds[s] if r["id"] == "geopeter/TOKENbbbb/2")
    assert row["channel"] == "geopeter" and row["challenge_token"] == "TOKENbbbb" and row["round"] == 2
    assert row["points"] == 4321 and row["distance_km"] == pytest.approx(123.4)
    assert row["country_code"] == "SE" and row["continent"] == "Europe"
    assert row["video_id"] == "abcdefghijk" and row["video_url"] == "https://www.youtube.com/watch?v=abcdefghijk"
    assert row["reasoning_source"] == REASONING_SOURCE and row["transcript"] == "" and row["frames"] == []
    assert row["image"].size == (48, 16) and row["messages"][1]["content"][0]["text"] == row["reasoning"]
    masked = next(r for s in ds for r in ds[s] if r["id"] == "geopeter/TOKENaaaa/1")
    assert masked["video_id"] is None and masked["video_url"] is None
    card = (tmp_path / "out" / "hub" / "README.md").read_text()
    assert "| image missing | 1 |" in card and "| malformed points | 1 |" in card
    assert "paper:gpt-4o" in card


def test_images_dir_may_be_the_images_folder_itself(tmp_path):
    write_image(tmp_path / "rel", "images/images_c/TOK1/1/combined.jpg")
    write_image(tmp_path / "rel", "images/images_c/TOK2/1/combined.jpg")
    jsonl = tmp_path / "r.jsonl"
    jsonl.write_text("\n".join(json.dumps(release_row("c", t, 1)) for t in ("TOK1", "TOK2")))
    result = import_paper_release(jsonl, tmp_path / "rel" / "images", tmp_path / "out")
    assert sum(result.split_counts.values()) == 2 and result.drops == []


@pytest.mark.skipif(not SHARED_RELEASE.exists(), reason="../shared reference data is absent")
def test_real_release_sample_with_some_images(tmp_path):
    raw = [json.loads(line) for line in SHARED_RELEASE.read_text().splitlines() if line.strip()]
    images = tmp_path / "release"
    with_image = raw[::2]  # images for every other row; the rest are reported missing
    for i, row in enumerate(with_image):
        write_image(images, row["image_path"], color=(i * 7 % 255, 90, 160))
    result = import_paper_release(SHARED_RELEASE, images, tmp_path / "out", test_challenges=3, max_test_fraction=None)
    assert sum(result.split_counts.values()) == len(with_image)
    missing = [d for d in result.drops if d["reasons"][0].startswith("image missing: ")]
    assert len(missing) == len(raw) - len(with_image) and len(result.drops) == len(missing)
    ds = result.dataset
    assert ds["train"].features == FEATURES
    owners = {}
    for split in ds:
        for token in ds[split]["challenge_token"]:
            assert owners.setdefault(token, split) == split
    assert result.group_counts["test"] == 3
    by_id = {r["id"]: r for s in ds for r in ds[s].select_columns(["id", "points", "country_code", "reasoning", "channel"])}
    first = with_image[0]
    channel, token, rnd = parse_image_path(first["image_path"])
    got = by_id[f"{channel}/{token}/{rnd}"]
    assert got["points"] == int(first["points"]) and got["reasoning"] == first["clues"].strip()
    assert all(r["country_code"] for r in by_id.values())
    assert {r["channel"] for r in by_id.values()} <= {"geogasm", "geopeter"}
