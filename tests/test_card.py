"""annotate.card: the card's front matter and statistics agree with the built rows."""
from __future__ import annotations

import re
import statistics
from collections import Counter
from pathlib import Path

import pytest
import yaml
from huggingface_hub import DatasetCard

from annotate.build import build_dataset
from annotate.card import drop_reason_key, size_category
from test_build import make_examples

UPSTREAM_DROPS = [
    {"id": "v9/1", "reasons": ["low clue density: 0.2 clues per minute"], "stage": "filter"},
    {"id": "v9/2", "reasons": ["reveal leaked into pre-guess transcript", "too few words: 4"], "stage": "filter"},
    {"id": "v9/3", "reasons": ["no reasoning: LLM refused"], "stage": "reasoning"},
    {"id": "v8", "video_id": "v8", "reasons": ["bad collect artifact: rounds.json is unreadable"], "stage": "collect"},
]


@pytest.fixture(scope="module")
def card(tmp_path_factory):
    root = tmp_path_factory.mktemp("card")
    examples = make_examples(root / "in", n_challenges=5, rounds=3, videos_without_token=1)
    broken = Example_with(examples[0], id="bad/1", lat=float("nan"))
    result = build_dataset(
        examples + [broken], UPSTREAM_DROPS, root / "out", test_challenges=2,
        filters_applied={"min_clues_per_minute": 0.5, "min_words": 20},
    )
    text = (root / "out" / "hub" / "README.md").read_text()
    return root, examples, result, text


def Example_with(example, **changes):
    from annotate.records import Example

    return Example(**{**example.__dict__, **changes})


def front_matter(text: str) -> dict:
    match = re.match(r"^---\n(.*?)\n---\n", text, re.S)
    assert match, "card has no YAML front matter"
    return yaml.safe_load(match.group(1))


def test_front_matter_is_valid_hub_metadata(card):
    root, examples, result, text = card
    meta = front_matter(text)
    assert meta["license"] == "other" and meta["language"] == ["en"]
    assert "image-text-to-text" in meta["task_categories"]
    assert meta["size_categories"] == [size_category(len(examples))] == ["n<1K"]
    configs = meta["configs"]
    assert configs == [{"config_name": "default", "data_files": [
        {"split": split, "path": f"data/{split}-*"} for split in result.split_counts]}]
    splits = {s["name"]: s["num_examples"] for s in meta["dataset_info"]["splits"]}
    assert splits == result.split_counts
    feature_names = [f["name"] for f in meta["dataset_info"]["features"]]
    assert feature_names[:3] == ["id", "video_id", "channel"] and "messages" in feature_names
    parsed = DatasetCard(text)  # huggingface_hub's own parser
    assert parsed.data.pretty_name == "NaviClues"
    assert (root / "out" / "dataset" / "DATASET_CARD.md").read_text() == text


def test_statistics_match_the_rows(card):
    _, examples, result, text = card
    parsed = [e for e in examples if e.transcript_country_code]
    agree = sum(e.transcript_country_code == e.country_code for e in parsed)
    assert 0 < agree < len(parsed)
    assert f"conclude the true country in {agree} of {len(parsed)} rows" in text
    countries = Counter(e.country for e in examples)
    assert f"{len(countries)} countries." in text
    for country, n in countries.items():
        assert f"| {country} | {n} |" in text
    for continent, n in Counter(e.continent for e in examples).items():
        assert f"| {continent} | {n} |" in text
    categories = Counter(c["category"] for e in examples for c in e.clues)
    assert f"{sum(categories.values())} clues in total." in text
    for category, n in categories.items():
        assert f"| {category} | {n} |" in text
    lengths = [len(e.reasoning) for e in examples]
    assert f"mean {round(statistics.fmean(lengths), 3)}, median {round(statistics.median(lengths), 3)}" in text
    assert result.stats["reasoning_chars"]["median"] == statistics.median(lengths)
    points = [e.points for e in examples]
    assert f"max {float(max(points))}" in text
    assert result.stats["points"]["mean"] == round(statistics.fmean(points), 3)
    in_bin = sum(1 for p in points if 1000 <= p < 2000)
    assert f"| 1000-1999 | {in_bin} |" in text
    distances = [e.distance_km for e in examples]
    assert f"| [10, 100) | {sum(1 for d in distances if 10 <= d < 100)} |" in text
    for channel, n in Counter(e.channel for e in examples).items():
        assert f"| {channel} | {n} |" in text
    for split, n in result.split_counts.items():
        assert f"| {split} | {n} | {result.group_counts[split]} |" in text


def test_every_drop_reason_is_listed_with_its_count(card):
    _, _, result, text = card
    expected = Counter(drop_reason_key(r) for d in result.drops for r in d["reasons"])
    assert "no truth" in expected and "low clue density" in expected
    for key, n in expected.items():
        assert re.search(rf"\| {re.escape(key)} \| {n} \|", text), key
    # three upstream round drops + the broken example; the whole-video record is counted as a video
    assert f"{len(UPSTREAM_DROPS)} rounds were dropped, and 1 whole video(s) with no readable rounds." in text
    assert "| min_clues_per_minute | 0.5 |" in text and "| min_words | 20 |" in text


def test_plots_exist_and_links_resolve(card):
    root, _, _, text = card
    hub = root / "out" / "hub"
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert {Path(link).name for link in links} == {"clue_categories.png", "continents.png", "world_scatter.png"}
    for link in links:
        path = hub / link
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", link
        assert (root / "out" / "dataset" / link).is_file()  # the copy next to DATASET_CARD.md


def test_provenance_and_terms(card):
    text = card[3]
    assert "belong to the video creators" in text
    assert "Street View" in text and "Google" in text and "terms" in text.lower()
    assert "YouTube captions" in text
    assert "2502.14638" in text
