"""annotate.build: splits by challenge, features, save_to_disk + hub parquet folder, drops."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from datasets import Image as ImageFeature
from datasets import List, load_dataset, load_from_disk
from PIL import Image

from annotate.build import (
    FEATURES,
    SPLIT_TEST,
    SPLIT_TRAIN,
    assign_splits,
    best_frame_index,
    build_dataset,
    build_messages,
    count_test_groups,
)
from annotate.prompts import REASONING_PROMPT
from annotate.records import Example

COUNTRIES = [
    ("Kazakhstan", "KZ", "Asia", 48.0, 67.0),
    ("Brazil", "BR", "South America", -15.8, -47.9),
    ("Norway", "NO", "Europe", 60.5, 8.4),
    ("Kenya", "KE", "Africa", -1.3, 36.8),
    ("Australia", "AU", "Oceania", -33.9, 151.2),
    ("Canada", "CA", "North America", 49.3, -123.1),
]
CATEGORIES = ["licence_plate", "language", "vegetation", "road_marking"]


def make_image(path: Path, color: tuple[int, int, int], size=(32, 24)) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, format="JPEG" if path.suffix == ".jpg" else "PNG")
    return str(path)


def make_examples(root: Path, n_challenges: int = 6, rounds: int = 3, videos_without_token: int = 2) -> list[Example]:
    """Rounds of `n_challenges` challenges (one video each) + rounds of videos with no token."""
    examples = []
    groups = [(f"vid{c:02d}", f"TOKEN{c:02d}abcdEFGH") for c in range(n_challenges)]
    groups += [(f"notoken{v}", None) for v in range(videos_without_token)]
    for g, (video_id, token) in enumerate(groups):
        for r in range(1, rounds + 1):
            country, code, continent, lat, lng = COUNTRIES[(g + r) % len(COUNTRIES)]
            frame_dir = root / "frames" / video_id / str(r)
            frames = [make_image(frame_dir / f"{i}.jpg", (40 * g % 255, 60 * r % 255, 30 * i)) for i in range(3)]
            panorama = make_image(root / "pano" / video_id / f"{r}.png", (10, 200, 10), size=(64, 32)) if r == 1 else None
            examples.append(
                Example(
                    id=f"{video_id}/{r}", video_id=video_id, channel=f"channel{g % 2}",
                    video_url=f"https://www.youtube.com/watch?v={video_id}", challenge_token=token, round=r,
                    lat=lat + r * 0.1, lng=lng, country=country, country_code=code, continent=continent, city=None,
                    points=1000 * r + g, distance_km=12.5 * r, time_limit_s=None if r == 2 else 120,
                    forbid_moving=True, transcript=f"I think this is {country} because of the bollards",
                    clues=[
                        {"text": f"the plate looks {country}", "category": CATEGORIES[r % 4], "entity": code,
                         "start_s": 10.0 * r, "end_s": 10.0 * r + 2, "frame_index": 2},
                        {"text": "left-hand traffic", "category": CATEGORIES[(r + 1) % 4], "entity": None,
                         "start_s": None, "end_s": None, "frame_index": None},
                    ],
                    frames=frames, frame_times_s=[1.0, 2.0, 3.5], image=panorama,
                    reasoning=f"The signs are in the local script and the bollards fit {country}." + " x" * (g + r),
                    reasoning_source="transcript:rewrite",
                    # round 1 unparsed, round 3 concludes another country than the truth
                    transcript_country_code={1: None, 3: "AQ"}.get(r, code),
                )
            )
    return examples


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("build")
    examples = make_examples(root / "inputs")
    broken = [
        Example(**{**examples[0].__dict__, "id": "bad/notruth", "lat": None}),
        Example(**{**examples[1].__dict__, "id": "bad/notranscript", "transcript": "  "}),
        Example(**{**examples[2].__dict__, "id": "bad/noimage", "frames": [], "frame_times_s": [], "image": None,
                   "clues": []}),
        Example(**{**examples[3].__dict__, "id": "bad/missingframe", "frames": [str(root / "nope.jpg")] * 3}),
    ]
    corrupt = root / "inputs" / "corrupt.jpg"
    corrupt.write_bytes(b"not a jpeg")
    broken.append(Example(**{**examples[4].__dict__, "id": "bad/corrupt", "image": str(corrupt)}))
    upstream = [{"id": "vidX/1", "reasons": ["low clue density: 0.1 clues/min"], "stage": "filter"}]
    result = build_dataset(
        examples + broken, upstream, root / "out", test_challenges=2, max_test_fraction=0.25, val_fraction=0.0,
        seed=0, filters_applied={"min_clues": 1},
    )
    return root, examples, result


def test_assign_splits_is_deterministic_and_keeps_train_and_test():
    groups = [f"challenge:{i}" for i in range(40)]
    first = assign_splits(groups, test_challenges=5, seed=3)
    assert first == assign_splits(list(reversed(groups)), test_challenges=5, seed=3)
    assert sum(v == SPLIT_TEST for v in first.values()) == 5
    assert assign_splits(groups, test_challenges=5, seed=4) != first  # the seed matters
    # fraction mode: a group's split does not move when more groups are added
    frac = assign_splits(groups, test_fraction=0.25, seed=0)
    more = assign_splits(groups + [f"challenge:new{i}" for i in range(20)], test_fraction=0.25, seed=0)
    assert all(more[g] == frac[g] for g in groups)
    # small builds: two groups -> one train, one test, whatever the fraction
    two = assign_splits(["a", "b"], test_fraction=0.01)
    assert sorted(two.values()) == [SPLIT_TEST, SPLIT_TRAIN]
    assert assign_splits(["a", "b"], test_challenges=50) != {"a": SPLIT_TEST, "b": SPLIT_TEST}
    assert assign_splits(["only"]) == {"only": SPLIT_TRAIN}
    three = assign_splits(["a", "b", "c", "d"], test_challenges=1, val_fraction=0.99)
    assert SPLIT_TRAIN in three.values() and SPLIT_TEST in three.values()


def test_test_share_is_capped_for_small_builds():
    groups = [f"challenge:{i}" for i in range(51)]
    default = assign_splits(groups)  # test_challenges=50, max_test_fraction=0.2
    assert sum(v == SPLIT_TEST for v in default.values()) == 10  # floor(0.2 * 51), not 50 test / 1 train
    assert sum(v == SPLIT_TRAIN for v in default.values()) == 41
    # the capped test set is the head of the uncapped one: the same hash order decides
    uncapped = assign_splits(groups, max_test_fraction=None)
    assert sum(v == SPLIT_TEST for v in uncapped.values()) == 50
    assert {g for g, v in default.items() if v == SPLIT_TEST} < {g for g, v in uncapped.items() if v == SPLIT_TEST}
    assert count_test_groups(1000, 50) == 50  # big builds get the full count
    assert count_test_groups(4, 50) == 1 and count_test_groups(2, 50) == 1  # tiny builds keep one test group
    assert count_test_groups(100, 50, max_test_fraction=0.29) == 29
    assert count_test_groups(10, 50, max_test_fraction=1.0) == 9  # train always keeps one
    assert count_test_groups(10, 0) == 0
    with pytest.raises(ValueError, match="max_test_fraction"):
        assign_splits(groups, max_test_fraction=0.0)


def test_split_policy_is_recorded_in_stats_and_card(built):
    root, _, result = built
    policy = result.stats["split_policy"]
    assert policy["test_challenges"] == 2 and policy["max_test_fraction"] == 0.25
    card = (root / "out" / "hub" / "README.md").read_text()
    assert "test_challenges = 2" in card and "max_test_fraction = 0.25" in card


def test_stale_work_folders_of_killed_builds_are_removed(built, tmp_path):
    import os

    _, examples, _ = built
    out = tmp_path / "out"
    dead = 999_999_999  # above Linux's pid_max: never a live process
    stale = [out / f".build-{dead}-abc_123", out / ".build-k2j4h5g6", out / f".dataset.old-{dead}-0a1b2c3d",
             out / f".hub.old-{dead}-deadbeef"]
    live = [out / f".build-{os.getppid()}-runnin9", out / f".hub.old-{os.getppid()}-0a1b2c3d"]
    unrelated = out / ".dataset.old-notes"
    for folder in stale + live + [unrelated]:
        (folder / "data").mkdir(parents=True)
        (folder / "data" / "part.parquet").write_bytes(b"x" * 10)
    build_dataset(examples[:6], [], out, test_challenges=1)
    left = sorted(p.name for p in out.iterdir())
    assert left == sorted(["dataset", "hub", unrelated.name] + [p.name for p in live])


def test_splits_never_share_a_challenge_or_video(built):
    _, examples, result = built
    ds = result.dataset
    assert set(ds) == {"train", "test"}
    assert result.group_counts["test"] == 2
    owners: dict[str, str] = {}
    for split in ds:
        for token, video in zip(ds[split]["challenge_token"], ds[split]["video_id"]):
            key = token or f"video:{video}"
            assert owners.setdefault(key, split) == split, f"{key} in {owners[key]} and {split}"
    assert sum(len(ds[s]) for s in ds) == len(examples)
    assert sorted(ds["train"]["id"]) == ds["train"]["id"]


def test_build_is_deterministic(built, tmp_path):
    root, examples, result = built
    again = build_dataset(list(reversed(examples)), [], tmp_path / "again", test_challenges=2, max_test_fraction=0.25,
                          seed=0)
    for split in result.dataset:
        assert again.dataset[split]["id"] == result.dataset[split]["id"]
    first = sorted((root / "out" / "hub" / "data").glob("*.parquet"))
    second = sorted((tmp_path / "again" / "hub" / "data").glob("*.parquet"))
    assert [p.name for p in first] == [p.name for p in second]


def test_features_and_row_content(built):
    _, examples, result = built
    ds = result.dataset["train"]
    for name in ("id", "video_id", "channel", "video_url", "challenge_token", "round", "lat", "lng", "country",
                 "country_code", "continent", "city", "points", "distance_km", "time_limit_s", "forbid_moving",
                 "transcript", "clues", "frames", "frame_times_s", "image", "images", "reasoning",
                 "reasoning_source", "messages"):
        assert name in ds.features
    assert ds.features == FEATURES
    assert isinstance(ds.features["image"], ImageFeature)
    assert isinstance(ds.features["images"], List) and isinstance(ds.features["images"].feature, ImageFeature)
    by_id = {e.id: e for e in examples}
    row = ds[0]
    source = by_id[row["id"]]
    assert row["lat"] == pytest.approx(source.lat) and row["points"] == source.points
    assert len(row["frames"]) == 3 and row["frames"][0].size == (32, 24)
    assert row["clues"][0]["category"] == source.clues[0]["category"]
    assert row["clues"][0]["frame_index"] == 2 and row["clues"][1]["frame_index"] is None
    # panorama wins when fetched (round 1), else the frame most clues point at
    expected_size = (64, 32) if source.image else (32, 24)
    assert row["image"].size == expected_size
    assert len(row["images"]) == 1 and row["images"][0].size == row["image"].size
    assert row["messages"] == build_messages(source.reasoning)
    # stored image paths are file names, never the builder's local folders
    raw = ds.with_format("arrow")[:1]["image"].to_pylist()[0]
    assert "/" not in raw["path"] and raw["bytes"]


def test_messages_match_trl_vision_collator(built):
    """TRL 1.16's prepare_multimodal_messages fills our placeholder from `images` without complaint."""
    from trl.data_utils import prepare_multimodal_messages

    row = built[2].dataset["train"][0]
    filled = prepare_multimodal_messages(row["messages"], images=row["images"])
    assert filled[0]["content"][0]["type"] == "image" and filled[0]["content"][0]["image"] is row["images"][0]
    assert filled[0]["content"][1] == {"type": "text", "text": REASONING_PROMPT}
    assert filled[1]["content"][0]["text"] == row["reasoning"]


def test_best_frame_prefers_aligned_clues():
    ex = Example(
        id="v/1", video_id="v", channel="c", video_url="u", challenge_token=None, round=1, lat=0, lng=0,
        country=None, country_code=None, continent=None, city=None, points=None, distance_km=None,
        time_limit_s=None, forbid_moving=None, transcript="t", clues=[{"text": "a", "frame_index": 0}],
        frames=["a", "b", "c", "d"], frame_times_s=[0, 1, 2, 3], image=None, reasoning="r", reasoning_source="s",
    )
    assert best_frame_index(ex) == 0
    ex.clues = []
    assert best_frame_index(ex) == 1  # middle of four frames, earlier on a tie


def test_malformed_rows_become_drops(built):
    root, _, result = built
    reasons = {d["id"]: d["reasons"] for d in result.drops}
    assert reasons["vidX/1"] == ["low clue density: 0.1 clues/min"]
    assert any(r.startswith("no truth") for r in reasons["bad/notruth"])
    assert reasons["bad/notranscript"] == ["empty transcript"]
    assert reasons["bad/noimage"] == ["no image: no frames and no panorama"]
    assert all(r.startswith("frame missing: ") for r in reasons["bad/missingframe"])
    assert any(r.startswith("image unreadable: ") for r in reasons["bad/corrupt"])
    lines = (root / "out" / "dataset" / "drops.jsonl").read_text().splitlines()
    assert {json.loads(line)["id"] for line in lines} == set(reasons)
    stats = json.loads((root / "out" / "dataset" / "stats.json").read_text())
    assert stats["drops"]["total"] == len(reasons)


def test_layout_loads_with_datasets(built, tmp_path, monkeypatch):
    root, _, result = built
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    from_disk = load_from_disk(str(root / "out" / "dataset"))
    assert {s: len(d) for s, d in from_disk.items()} == result.split_counts
    hub = root / "out" / "hub"
    files = sorted(p.relative_to(hub).as_posix() for p in hub.rglob("*") if p.is_file())
    assert "README.md" in files and "data/train-00000-of-00001.parquet" in files
    assert "data/test-00000-of-00001.parquet" in files
    parquet = load_dataset("parquet", data_files={"train": str(hub / "data" / "train-*.parquet")},
                           cache_dir=str(tmp_path / "c1"))
    image = parquet["train"][0]["image"]
    assert isinstance(image, Image.Image) and image.size in {(64, 32), (32, 24)}
    folder = load_dataset(str(hub), cache_dir=str(tmp_path / "c2"))
    assert {s: len(d) for s, d in folder.items()} == result.split_counts
    assert folder["test"].features == FEATURES
    frame = folder["test"][0]["frames"][1]
    buf = io.BytesIO()
    frame.save(buf, format="PNG")
    assert frame.size == (32, 24) and buf.tell() > 0


def test_rebuild_replaces_the_old_folders(built, tmp_path):
    _, examples, _ = built
    out = tmp_path / "out"
    build_dataset(examples, [], out, test_challenges=1)
    build_dataset(examples[:6], [], out, test_challenges=1)
    assert sum(len(d) for d in load_from_disk(str(out / "dataset")).values()) == 6
    assert sorted(p.name for p in out.iterdir()) == ["dataset", "hub"]  # no temp or old folders left
