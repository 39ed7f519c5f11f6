"""The dataset commands of the `collect` CLI on real output folders: `annotate` (rerun alone, with
changed settings and on malformed collect artifacts), `card` and `import-release`."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import yaml
from PIL import Image

from annotate.card import drop_reason_key
from conftest import card_drop_table, collect_cmd

# a small demo (2 videos x 2 rounds = 2 challenges) whose rounds all pass the filters below
DEMO = ["--set", "demo.videos=2", "--set", "demo.rounds=2"]
KEEP_ALL = ["--set", "annotate.filter.min_points=0", "--set", "annotate.filter.min_words=20"]


def run_cli(args: list[str], cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(collect_cmd() + args, capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})


# ---------------------------------------------------------------- card / dataset readers


def front_matter(card: str) -> dict:
    match = re.match(r"\A---\n(.*?)\n---\n", card, re.S)
    assert match, card[:300]
    return yaml.safe_load(match.group(1))


def image_links(card: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", card)


def card_total_rows(card: str) -> int:
    match = re.search(r"^Total: (\d+) rows", card, re.M)
    assert match, "no 'Total: N rows' line"
    return int(match.group(1))


def card_dropped_total(card: str) -> int:
    match = re.search(r"^(\d+) rounds were dropped", card, re.M)
    assert match, "no 'N rounds were dropped' line"
    return int(match.group(1))


def drop_records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "dataset" / "drops.jsonl").read_text().splitlines() if line.strip()]


def reason_counts(drops: list[dict]) -> dict[str, int]:
    return dict(Counter(drop_reason_key(r) for d in drops for r in d["reasons"]))


def dataset_table(out: Path) -> dict[str, dict]:
    """{id: non-image columns + split} of OUT/dataset."""
    import datasets

    dd = datasets.load_from_disk(str(out / "dataset"))
    rows = {}
    for split in dd:
        ds = dd[split].remove_columns([c for c in ("image", "images", "frames") if c in dd[split].column_names])
        for row in ds:
            rows[row["id"]] = {"split": split, **row}
    return rows


def assert_card_matches_dataset(out: Path) -> str:
    """OUT/hub/README.md describes exactly OUT/dataset and OUT/hub/data; returns the card."""
    card = (out / "hub" / "README.md").read_text("utf-8")
    rows = dataset_table(out)
    splits = Counter(r["split"] for r in rows.values())
    meta = front_matter(card)
    info_splits = {s["name"]: s["num_examples"] for s in meta["dataset_info"]["splits"]}
    assert {k: v for k, v in info_splits.items() if v} == {k: v for k, v in splits.items() if v}
    assert card_total_rows(card) == len(rows)
    for entry in meta["configs"][0]["data_files"]:  # every configured split has its parquet shards
        assert list((out / "hub").glob(entry["path"] + ".parquet")), entry
    assert {p.name.split("-")[0] for p in (out / "hub" / "data").glob("*.parquet")} == \
        {e["split"] for e in meta["configs"][0]["data_files"]}  # and no stale shard of another split
    for link in image_links(card):
        assert (out / "hub" / link).is_file(), link
    drops = drop_records(out)
    assert card_dropped_total(card) == len(drops)
    assert card_drop_table(card) == reason_counts(drops)
    return card


# ---------------------------------------------------------------- the demo folder


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("annotate-demo") / "out"
    proc = run_cli(["run", "--demo", "--out", str(out), *DEMO, *KEEP_ALL])
    assert proc.returncode == 0, proc.stderr[-4000:]
    rows = dataset_table(out)
    assert len(rows) == 4 and drop_records(out) == [], (sorted(rows), drop_records(out))
    assert len({r["challenge_token"] for r in rows.values()}) == 2
    return out


def copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".lock", "demo-corpus"))
    return dst


def test_annotate_rerun_alone_follows_its_settings(demo_out, tmp_path):
    out = copy_run(demo_out, tmp_path / "out")
    original = dataset_table(out)
    assert set(Counter(r["split"] for r in original.values())) == {"train", "test"}  # one challenge each

    # a split setting: no test challenges -> every row in train, the test shards gone from the hub
    proc = run_cli(["annotate", "--out", str(out), *KEEP_ALL, "--set", "annotate.build.test_challenges=0"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = dataset_table(out)
    assert set(rows) == set(original) and {r["split"] for r in rows.values()} == {"train"}
    card = assert_card_matches_dataset(out)
    assert [e["split"] for e in front_matter(card)["configs"][0]["data_files"]] == ["train"]
    assert not list((out / "hub" / "data").glob("test-*"))
    assert "| test |" not in card

    # a filter setting: every round now fails the word count
    strict = [*KEEP_ALL, "--set", "annotate.filter.min_words=100000"]
    proc = run_cli(["annotate", "--out", str(out), *strict])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert dataset_table(out) == {}
    drops = drop_records(out)
    assert sorted(d["id"] for d in drops) == sorted(original)
    assert all("pre-reveal words < 100000" in d["reasons"] for d in drops)
    card = assert_card_matches_dataset(out)
    assert card_drop_table(card) == {"pre-reveal words < 100000": 4}
    assert "| min_words | 100000 |" in card

    # the same settings again: nothing to do, nothing rewritten
    before = {p: p.stat().st_mtime_ns for p in (out / "hub").rglob("*") if p.is_file()}
    proc = run_cli(["annotate", "--out", str(out), *strict])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "cached" in proc.stderr
    assert {p: p.stat().st_mtime_ns for p in (out / "hub").rglob("*") if p.is_file()} == before

    # back to the original settings: the original dataset, row for row
    proc = run_cli(["annotate", "--out", str(out), *KEEP_ALL])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert dataset_table(out) == original
    assert drop_records(out) == []
    assert_card_matches_dataset(out)
    assert (out / "hub" / "README.md").read_text() == (demo_out / "hub" / "README.md").read_text()


def test_annotate_on_malformed_rounds_keeps_the_rest(demo_out, tmp_path):
    out = copy_run(demo_out, tmp_path / "out")
    original = dataset_table(out)
    videos = sorted({r["video_id"] for r in original.values()})
    no_truth_video, no_frames_video = videos
    # one round of the first video has no truth coordinates: its entry lacks "lat" and has a null "lng"
    # (a malformed round entry costs that round only, not the video's other rounds)
    challenge_path = out / "videos" / no_truth_video / "challenge.json"
    challenge = json.loads(challenge_path.read_text())
    del challenge["rounds"][1]["lat"]
    challenge["rounds"][1]["lng"] = None
    no_truth_round = challenge["rounds"][1]["round"]
    challenge_path.write_text(json.dumps(challenge))
    # the second video lost its frames
    shutil.rmtree(out / "videos" / no_frames_video / "frames")

    proc = run_cli(["annotate", "--out", str(out), *KEEP_ALL])
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = dataset_table(out)
    gone = {f"{no_truth_video}/{no_truth_round}"} | {i for i in original if i.startswith(no_frames_video + "/")}
    assert set(rows) == set(original) - gone and rows
    for row_id, row in rows.items():
        assert {k: v for k, v in row.items() if k != "split"} == {k: v for k, v in original[row_id].items() if k != "split"}

    drops = {d["id"]: d for d in drop_records(out)}
    assert set(drops) == gone
    assert drops[f"{no_truth_video}/{no_truth_round}"]["reasons"] == ["no truth: lat/lng missing"]
    for row_id in gone - {f"{no_truth_video}/{no_truth_round}"}:
        assert drops[row_id]["reasons"] == ["no frames"]
    card = assert_card_matches_dataset(out)
    assert card_drop_table(card) == {"no truth": 1, "no frames": len(gone) - 1}
    assert "| no truth | 1 | no truth: lat/lng missing |" in card
    assert card_dropped_total(card) == len(gone)


def test_annotate_without_a_run_store_is_a_usage_error(tmp_path):
    proc = run_cli(["annotate", "--out", str(tmp_path / "nothing-here")])
    assert proc.returncode == 2 and "no run store" in proc.stderr
    assert not (tmp_path / "nothing-here" / "dataset").exists()


# ---------------------------------------------------------------- collect card


def test_card_command_copies_the_card_with_working_plot_links(demo_out, tmp_path):
    hub_card = assert_card_matches_dataset(demo_out)
    rows = dataset_table(demo_out)
    to, plots = tmp_path / "docs" / "CARD.md", tmp_path / "assets" / "plots"
    proc = run_cli(["card", "--out", str(demo_out), "--to", str(to), "--plots-dir", str(plots)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    card = to.read_text("utf-8")
    assert card.startswith("---\n")
    assert front_matter(card) == front_matter(hub_card)
    assert card_total_rows(card) == len(rows) == 4
    for country, n in Counter(r["country"] for r in rows.values()).items():
        assert f"| {country} | {n} |" in card
    links = image_links(card)
    assert len(links) == len(image_links(hub_card)) >= 3
    for link in links:
        assert link.startswith("../assets/plots/"), link
        target = (to.parent / link).resolve()
        assert target.is_file() and target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", link
        assert target.read_bytes() == (demo_out / "hub" / "plots" / target.name).read_bytes()

    # relative paths resolve from the working directory; the default plots folder is docs/dataset_card_plots
    proc = run_cli(["card", "--out", str(demo_out), "--to", "CARD.md"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    card = (tmp_path / "CARD.md").read_text("utf-8")
    assert image_links(card) and all(link.startswith("docs/dataset_card_plots/") for link in image_links(card))
    assert all((tmp_path / link).is_file() for link in image_links(card))

    proc = run_cli(["card", "--out", str(tmp_path / "unbuilt"), "--to", str(tmp_path / "x.md")])
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    assert not (tmp_path / "x.md").exists()


# ---------------------------------------------------------------- collect import-release


def _release_row(channel: str, token: str, rnd: int, country: str, continent: str, lat: float, lng: float,
                 image_ext: str = "png") -> dict:
    return {
        "youtube_url": "XXXX", "challenge_url": "XXXX", "points": "4500", "distance": 12.5,
        "image_path": f"images/images_{channel}/{token}/{rnd}/combined.{image_ext}",
        "location": {"round": rnd, "lat": lat, "lng": lng, "continent": continent, "country": country},
        "clues": f"The signs and the vegetation point to {country} (round {rnd}).",
    }


def test_import_release_command(tmp_path):
    rows = [
        _release_row("geogasm", "TOKENjapan", 1, "Japan", "Asia", 35.68, 139.69, "png"),
        _release_row("geogasm", "TOKENjapan", 2, "Japan", "Asia", 34.69, 135.5, "jpg"),
        _release_row("geopeter", "TOKENbrazil", 1, "Brazil", "South America", -23.55, -46.63, "png"),
        _release_row("geopeter", "TOKENbrazil", 2, "Brazil", "South America", -22.9, -43.2, "png"),  # no image
    ]
    images = tmp_path / "release"
    colors = {}
    for i, row in enumerate(rows[:3]):
        path = images / row["image_path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        colors[row["image_path"]] = (40 * i, 200, 90)
        Image.new("RGB", (32 + 8 * i, 24), colors[row["image_path"]]).save(path)  # PNG or JPEG by suffix
    (tmp_path / "release.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    proc = run_cli(["import-release", "release.jsonl", "--images", "release", "--out", "out"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["rows"] == 3 and summary["missing_images"] == 1 and summary["drops"] == 1
    assert summary["drop_reasons"] == {"image missing": 1}
    assert summary["source"] == "release.jsonl"
    assert sum(summary["splits"].values()) == 3

    out = tmp_path / "out"
    assert (out / "dataset" / "dataset_dict.json").is_file() and (out / "hub" / "README.md").is_file()
    assert list((out / "hub" / "plots").glob("*.png"))
    assert drop_records(out) == [{"id": "release.jsonl:4", "line": 4, "stage": "import",
                                  "reasons": [f"image missing: {rows[3]['image_path']}"]}]
    card = assert_card_matches_dataset(out)
    assert "| Japan | 2 |" in card and "| Brazil | 1 |" in card and "paper:gpt-4o" in card

    import datasets

    by_split = datasets.load_from_disk(str(out / "dataset"))
    hub = datasets.load_dataset(str(out / "hub"), cache_dir=str(tmp_path / "hf-cache"))
    assert {s: len(by_split[s]) for s in by_split} == {s: len(hub[s]) for s in hub} == summary["splits"]
    for split in hub:  # a challenge never straddles splits
        for token in set(hub[split]["challenge_token"]):
            assert all(token not in hub[other]["challenge_token"] for other in hub if other != split)
    got = {r["id"]: r for s in hub for r in hub[s]}
    assert set(got) == {"geogasm/TOKENjapan/1", "geogasm/TOKENjapan/2", "geopeter/TOKENbrazil/1"}
    for row in rows[:3]:
        channel, token, rnd = row["image_path"].split("/")[1][len("images_"):], *row["image_path"].split("/")[2:4]
        record = got[f"{channel}/{token}/{rnd}"]
        assert record["country_code"] == {"Japan": "JP", "Brazil": "BR"}[row["location"]["country"]]
        assert record["points"] == 4500 and record["reasoning"] == row["clues"]
        image = record["image"]
        assert image.format == ("PNG" if row["image_path"].endswith(".png") else "JPEG")
        with Image.open(images / row["image_path"]) as original:
            assert image.size == original.size
        pixel = image.convert("RGB").getpixel((1, 1))
        assert all(abs(a - b) <= 4 for a, b in zip(pixel, colors[row["image_path"]]))



def test_import_release_command_bad_paths(tmp_path):
    rows = [_release_row("geogasm", "TOKENjapan", 1, "Japan", "Asia", 35.68, 139.69, "png")]
    (tmp_path / "release.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "empty").mkdir()
    missing_file = run_cli(["import-release", "nope.jsonl", "--images", "empty", "--out", "out"], cwd=tmp_path)
    assert missing_file.returncode == 2 and "nope.jsonl: no such release file" in missing_file.stderr
    assert "Traceback" not in missing_file.stderr
    missing_dir = run_cli(["import-release", "release.jsonl", "--images", "nope", "--out", "out"], cwd=tmp_path)
    assert missing_dir.returncode == 2 and "--images nope: no such folder" in missing_dir.stderr
    # a folder where no row's image is: the wrong --images, said as such (not an empty dataset and exit 0)
    wrong = run_cli(["import-release", "release.jsonl", "--images", "empty", "--out", "out"], cwd=tmp_path)
    said = " ".join(wrong.stderr.split())  # rich wraps long lines
    assert wrong.returncode == 3 and "--images must be the folder the rows' image_path is relative to" in said
