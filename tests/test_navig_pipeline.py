"""`navig locate` end to end offline: tiny random models, generated images, local servers."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from navig import prompts
from navig.cli import app
from navig.pipeline import LocateOptions, locate_to_jsonl, read_done
from navig.searcher.guidebook import build_guidebook
from navig_fixtures import make_scene_images, navig_cache_dir, openai_server, tiny_models, write_jsonl

TRACE_KEYS = {"reasoning", "detections", "crops", "guidebook_hits", "ocr", "geocoder_hits", "comments", "prompts",
              "raw_answer", "parsed", "policy", "tool_usage", "timings", "errors"}


@pytest.fixture()
def shared_cache(monkeypatch):
    monkeypatch.setenv("NAVIG_CACHE", str(navig_cache_dir()))


@pytest.fixture()
def guidebook(tmp_path):
    images = make_scene_images(tmp_path / "gb_images", 1)
    src = write_jsonl(tmp_path / "gb.jsonl", [
        {"country": "Kazakhstan", "clue": "Green road signs with white text.", "image": str(images[0])},
        {"country": "Chile", "clue": "Bollards with a red band."}])
    return build_guidebook(src, tmp_path / "guidebook", clip_model=str(tiny_models()["clip"]))["out"]


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def test_locate_cli_tiny_models_end_to_end(tmp_path, shared_cache, guidebook):
    models = tiny_models()
    images = tmp_path / "images"
    make_scene_images(images, 3)
    (images / "broken.jpg").write_bytes(b"not a jpeg")
    out, report = tmp_path / "preds.jsonl", tmp_path / "report.html"
    args = ["locate", str(images), "--out", str(out), "--model", str(models["vlm"]), "--detector",
            str(models["detector"]), "--guidebook", guidebook, "--box-threshold", "0.05", "--text-threshold", "0.05",
            "--batch-size", "2", "--max-new-tokens", "8", "--crop-max-new-tokens", "8",
            "--guess-max-new-tokens", "24", "--report", str(report)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    rows = _lines(out)
    assert len(rows) == 4 and summary["done"] == 4 and summary["skipped"] == 0
    assert summary["failures"] == sum(1 for r in rows if r["failure"])
    for row in rows:
        assert (row["prediction"] is None) == (row["failure"] is not None)  # a prediction or a recorded failure
        assert set(row["trace"]) >= TRACE_KEYS
    broken = next(r for r in rows if r["id"] == "broken")
    assert broken["failure"].startswith("unreadable image")
    for row in (r for r in rows if r["id"] != "broken"):
        t = row["trace"]
        assert t["reasoning"] is not None and t["detections"] and t["crops"]
        assert all(max(c["size"]) >= 224 for c in t["crops"])
        assert len(t["comments"]) == len(t["crops"]) and len(t["ocr"]) == len(t["crops"])
        assert t["guidebook_hits"] and t["prompts"]["guesser"].startswith(prompts.BASE_QUERY)
        assert t["prompts"]["reasoner"] == prompts.REASONING_PROMPT
        assert t["raw_answer"] is not None and t["errors"] == []
        assert set(t["timings"]) >= {"reasoner", "detector", "guidebook", "crop_vlm", "geocoder", "guesser"}
        # random weights answer garbage: the row says so instead of scoring a constant
        if row["failure"]:
            assert row["policy"] is None and t["parsed"]["latitude"] is None
        else:
            assert row["policy"] in {"answer", "geocoded_city", "geocoded_country"}
        # one detector pass per batch, crop questions in one generate (crop requests fit one batch)
        usage = t["tool_usage"]
        assert usage["batch_vlm_calls"]["generate_calls"] == 3
    assert summary["tool_usage"]["detector_passes"] == 2  # 2 batches

    html = report.read_text("utf-8")
    assert html.count('class="row"') == 4 and "<svg" in html and "<rect" in html and "unreadable image" in html
    assert "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html

    # rerun: nothing left to do, so no model is even loaded (no pipeline, no tool usage)
    rerun = CliRunner().invoke(app, args)
    assert rerun.exit_code == 0, rerun.output
    rerun_summary = json.loads(rerun.stdout.strip().splitlines()[-1])
    assert rerun_summary["skipped"] == 4 and rerun_summary["tool_usage"] == {}
    assert len(_lines(out)) == 4
    # another model on the same file is refused (its lines are not this model's), before it loads
    other = CliRunner().invoke(app, ["locate", str(images), "--out", str(out), "--model", "/nonexistent/model"])
    assert other.exit_code == 2 and "/nonexistent/model" in " ".join(other.output.replace("│", " ").split())
    assert len(_lines(out)) == 4

    # a crash mid-write leaves a torn last line: it is dropped and that image is done again
    text = out.read_text("utf-8")
    last_id = rows[-1]["id"]
    out.write_text(text[: len(text) - 40], "utf-8")
    again = CliRunner().invoke(app, args[:-2])
    assert again.exit_code == 0, again.output
    summary = json.loads(again.stdout.strip().splitlines()[-1])
    assert summary["done"] == 1 and summary["skipped"] == 3
    rows = _lines(out)
    assert len(rows) == 4 and sorted(r["id"] for r in rows) == sorted(["broken", "scene_00", "scene_01", "scene_02"])
    assert rows[-1]["id"] == last_id


def test_locate_openai_backend_parses_answers_and_uses_the_map(tmp_path, shared_cache):
    guesses = []

    def answer(body):
        text = body["messages"][0]["content"][-1]["text"]
        if text.startswith("Suppose you are an expert"):
            guesses.append(text)
            if len(guesses) % 2:
                return 'Here is my guess:\n```json\n{"country": "Kazakhstan", "city": "Almaty", "latitude": 43.25, ' \
                       '"longitude": 76.95,}\n```'
            return "{'country': 'Kazakhstan', 'city': 'Almaty'}"  # no coordinates: the city is geocoded
        if text == prompts.OSM_GEN:
            return "ALMATY"
        if text.startswith("Analyze the"):
            return "Green Kazakh road sign."
        return "Cyrillic text, steppe and Soviet blocks: Kazakhstan."

    images = make_scene_images(tmp_path / "images", 2)
    with openai_server(answer) as server:
        options = LocateOptions(model="served-navig", backend="openai", base_url=server.url + "/v1",
                                detector=str(tiny_models()["detector"]), box_threshold=0.05, text_threshold=0.05,
                                batch_size=2)
        summary = locate_to_jsonl([(p.stem, p) for p in images], tmp_path / "preds.jsonl", options)
    assert summary["done"] == 2 and summary["failures"] == 0
    assert summary["policies"] == {"answer": 1, "geocoded_city": 1}
    rows = list(read_done(tmp_path / "preds.jsonl").values())
    for row in rows:
        assert row["prediction"]["country"] == "Kazakhstan"
        assert abs(row["prediction"]["latitude"] - 43.25) < 0.1 and abs(row["prediction"]["longitude"] - 76.93) < 0.1
        t = row["trace"]
        assert t["tool_usage"]["reasoning"] == t["tool_usage"]["osm"] == t["tool_usage"]["comment"] == 1
        assert all(g["hits"][0]["country_code"] == "KZ" for g in t["geocoder_hits"])
        assert "### MAP SEARCH ###" in t["prompts"]["guesser"] and '"place_name": "Almaty"' in t["prompts"]["guesser"]
        assert "Green Kazakh road sign." in t["prompts"]["guesser"]
    assert {r["policy"] for r in rows} == {"answer", "geocoded_city"}


def test_no_reasoner_no_searcher(tmp_path, shared_cache):
    with openai_server(lambda body: '{"country": "Chile", "city": "Santiago", "latitude": -33.45, '
                                    '"longitude": -70.66}') as server:
        options = LocateOptions(model="m", backend="openai", base_url=server.url + "/v1", use_reasoner=False,
                                use_searcher=False)
        images = make_scene_images(tmp_path / "images", 1)
        summary = locate_to_jsonl([("one", images[0])], tmp_path / "p.jsonl", options)
        assert len(server.requests) == 1  # the Guesser only
    row = _lines(tmp_path / "p.jsonl")[0]
    assert summary["policies"] == {"answer": 1}
    assert row["trace"]["prompts"]["guesser"] == prompts.BASE_QUERY and row["trace"]["detections"] == []


def test_a_failing_guesser_is_a_recorded_failure(tmp_path, shared_cache):
    def answer(body):
        text = body["messages"][0]["content"][-1]["text"]
        return 400 if text.startswith("Suppose you are an expert") else "Some reasoning."

    with openai_server(answer) as server:
        options = LocateOptions(model="m", backend="openai", base_url=server.url + "/v1", use_searcher=False)
        images = make_scene_images(tmp_path / "images", 2)
        summary = locate_to_jsonl([(p.stem, p) for p in images], tmp_path / "p.jsonl", options)
    rows = _lines(tmp_path / "p.jsonl")
    assert summary["failures"] == 2 and len(rows) == 2
    for row in rows:
        assert row["prediction"] is None and row["failure"].startswith("guesser: BadRequestError")
        assert row["trace"]["reasoning"] == "Some reasoning."  # what worked is kept


def _sky_red(body) -> int:
    """Red channel of the first image's sky in a chat request: make_scene_images varies it per image."""
    import base64
    import io

    from PIL import Image

    url = body["messages"][0]["content"][0]["image_url"]["url"]
    image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB")
    return image.getpixel((5, 5))[0]


def test_a_failed_stage_is_counted_and_retried_not_passed_off_as_the_full_method(tmp_path, shared_cache):
    from navig.eval.metrics import score_files

    images = make_scene_images(tmp_path / "images", 2)  # sky red: 120, 160
    outage = {"on": True}
    guess = '{"country": "Chile", "city": "Santiago", "latitude": -33.45, "longitude": -70.66}'

    def answer(body):
        if body["messages"][0]["content"][-1]["text"].startswith("Suppose you are an expert"):
            return guess
        if outage["on"] and abs(_sky_red(body) - 160) < 15:
            return 500  # the Reasoner's server is down for scene_01
        return "Andes, Spanish signs."

    out = tmp_path / "preds.jsonl"
    items = [(p.stem, p) for p in images]
    with openai_server(answer) as server:
        options = LocateOptions(model="m", backend="openai", base_url=server.url + "/v1", use_searcher=False)
        summary = locate_to_jsonl(items, out, options)
        assert summary["failures"] == 0 and summary["stage_errors"] == 1
        truth = write_jsonl(tmp_path / "truth.jsonl", [{"id": p.stem, "lat": -33.45, "lng": -70.66} for p in images])
        metrics = score_files(out, truth)
        assert metrics["n_failed"] == 0 and metrics["n_stage_errors"] == 1 and metrics["stage_error_rate"] == 0.5
        assert metrics["policies"] == {"answer": 2} and metrics["n_unparseable"] == 0
        outage["on"] = False
        retried = locate_to_jsonl(items, out, options, retry_failed=True)
        assert retried["retried"] == 1 and retried["stage_errors"] == 0
    assert score_files(out, truth)["n_stage_errors"] == 0
    assert read_done(out)["scene_01"]["trace"]["reasoning"] == "Andes, Spanish signs."


def test_an_oversized_image_fails_alone(tmp_path, shared_cache, monkeypatch):
    from PIL import Image

    images = make_scene_images(tmp_path / "images", 2, size=(64, 48))
    Image.new("RGB", (300, 300), (10, 20, 30)).save(tmp_path / "images" / "huge.png")
    # Pillow refuses images over 2 × MAX_IMAGE_PIXELS as decompression bombs; a low limit makes a small file one
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 64 * 48)
    with openai_server(lambda body: '{"country": "Chile", "city": "Santiago", "latitude": -33.45, '
                                    '"longitude": -70.66}') as server:
        options = LocateOptions(model="m", backend="openai", base_url=server.url + "/v1", use_reasoner=False,
                                use_searcher=False, batch_size=4)
        items = [(p.stem, p) for p in [*images, tmp_path / "images" / "huge.png"]]
        summary = locate_to_jsonl(items, tmp_path / "p.jsonl", options)
    rows = {r["id"]: r for r in _lines(tmp_path / "p.jsonl")}
    assert summary["done"] == 3 and summary["failures"] == 1
    assert rows["huge"]["failure_kind"] == "image" and "huge.png" in rows["huge"]["failure"]
    assert "decompression bomb" in rows["huge"]["failure"]
    assert all(rows[p.stem]["prediction"]["city"] == "Santiago" for p in images)


def test_one_failing_image_fails_alone_and_retry_failed_redoes_it(tmp_path, shared_cache):
    from navig.backends.openai_backend import OpenAIVLM
    from navig.eval.metrics import load_predictions
    from navig.pipeline import NavigPipeline, failure_kind

    make_scene_images(tmp_path / "images", 3)  # sky red: 120, 160, 200
    (tmp_path / "images" / "broken.jpg").write_bytes(b"not a jpeg")
    outage = {"on": True}
    guess = '{"country": "Chile", "city": "Santiago", "latitude": -33.45, "longitude": -70.66}'

    def answer(body):
        red = _sky_red(body)
        if outage["on"] and abs(red - 160) < 15:
            return 500  # every request about scene_01 fails, even after retries
        if body["messages"][0]["content"][-1]["text"].startswith("Suppose you are an expert"):
            return "I really cannot tell." if abs(red - 200) < 15 else guess  # scene_02: a real, unusable answer
        return "Andes, Spanish signs."

    items = [(p.stem, p) for p in sorted((tmp_path / "images").iterdir())]
    out = tmp_path / "preds.jsonl"
    with openai_server(answer) as server:
        options = LocateOptions(model="m", backend="openai", base_url=server.url + "/v1", use_searcher=False,
                                batch_size=4)
        vlm = OpenAIVLM("m", base_url=server.url + "/v1", max_attempts=2)  # 2 tries keep the test fast
        summary = locate_to_jsonl(items, out, options, pipeline=NavigPipeline(options, vlm=vlm))
        rows = {r["id"]: r for r in _lines(out)}
        assert len(rows) == 4 and summary["done"] == 4 and summary["failures"] == 3
        for row in rows.values():  # a prediction or a recorded failure, with its kind
            assert (row["prediction"] is None) == (row["failure"] is not None) == (row["failure_kind"] is not None)
        # scene_01's requests failed; the other images of the same batch were answered
        assert rows["scene_00"]["prediction"]["city"] == "Santiago" and rows["scene_00"]["trace"]["errors"] == []
        failed = rows["scene_01"]
        assert failed["failure_kind"] == "backend" and failed["failure"].startswith("guesser: InternalServerError")
        assert failed["trace"]["reasoning"] is None
        assert [e.split(":")[0] for e in failed["trace"]["errors"]] == ["reasoner", "guesser"]
        assert rows["scene_02"]["failure_kind"] == "unparseable" and rows["scene_02"]["trace"]["raw_answer"]
        assert rows["broken"]["failure_kind"] == "image"
        assert summary["failure_kinds"] == {"backend": 1, "unparseable": 1, "image": 1}

        # the server is back: a plain rerun keeps every line, --retry-failed redoes the outage only
        outage["on"] = False
        n = len(server.requests)
        assert locate_to_jsonl(items, out, options)["skipped"] == 4 and len(server.requests) == n
        args = ["locate", str(tmp_path / "images"), "--out", str(out), "--model", "m", "--backend", "openai",
                "--base-url", server.url + "/v1", "--no-searcher", "--retry-failed"]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        retried = json.loads(result.stdout.strip().splitlines()[-1])
        assert retried["retried"] == 1 and retried["done"] == 1 and retried["skipped"] == 3
        redone = server.requests[n:]  # the Reasoner and the Guesser, for scene_01 only
        assert len(redone) == 2 and all(abs(_sky_red(r["body"]) - 160) < 15 for r in redone)
    lines = _lines(out)
    assert len(lines) == 5 and lines[-1]["id"] == "scene_01"  # appended; the old line stays, superseded
    # both readers keep the LAST line per id
    done = read_done(out)
    table = load_predictions(out)
    assert done["scene_01"]["prediction"]["city"] == "Santiago" and done["scene_01"]["failure"] is None
    assert table.by_id["scene_01"] == done["scene_01"] and table.duplicates == 1
    assert {k: v["failure_kind"] for k, v in done.items()} == {"broken": "image", "scene_00": None, "scene_01": None,
                                                                "scene_02": "unparseable"}
    # rows written before `failure_kind` existed are classified from their failure text
    assert failure_kind({"failure": "guesser: APIConnectionError: Connection error."}) == "backend"
    assert failure_kind({"failure": "unreadable image x.jpg: cannot identify"}) == "image"
    assert failure_kind({"failure": "no JSON object or key/value pairs in the answer"}) == "unparseable"
    assert failure_kind({"prediction": {"latitude": 1, "longitude": 2}, "failure": None}) is None


def test_failed_crop_questions_are_recorded_and_the_image_still_gets_a_prediction(tmp_path, shared_cache):
    from navig.backends.openai_backend import OpenAIVLM
    from navig.pipeline import NavigPipeline

    def answer(body):
        text = body["messages"][0]["content"][-1]["text"]
        if text == prompts.OSM_GEN:
            return "None"
        if text.startswith("Analyze the"):
            return 502  # every crop comment fails (after one retry)
        return '{"country": "Chile", "city": "Santiago", "latitude": -33.45, "longitude": -70.66}'

    images = make_scene_images(tmp_path / "images", 2)
    with openai_server(answer) as server:
        options = LocateOptions(model="m", backend="openai", base_url=server.url + "/v1", use_reasoner=False,
                                detector=str(tiny_models()["detector"]), box_threshold=0.05, text_threshold=0.05,
                                top_k=1, batch_size=2)
        pipeline = NavigPipeline(options, vlm=OpenAIVLM("m", base_url=server.url + "/v1", max_attempts=2))
        summary = locate_to_jsonl([(p.stem, p) for p in images], tmp_path / "p.jsonl", options, pipeline=pipeline)
    assert summary["failures"] == 0 and summary["stage_errors"] == 2
    for row in _lines(tmp_path / "p.jsonl"):
        t = row["trace"]
        assert row["prediction"]["city"] == "Santiago" and t["crops"]
        assert len(t["comments"]) == len(t["crops"]) and all(c["text"] is None and "502" in c["error"]
                                                             for c in t["comments"])
        assert all(e.startswith("crop_vlm: crop ") and " comment: InternalServerError" in e for e in t["errors"])
        assert t["tool_usage"]["comment"] == 0 and [x["text"] for x in t["ocr"]] == [None] * len(t["crops"])


def test_benchmark_served_comparison_gives_the_same_predictions(tmp_path, shared_cache, guidebook):
    """benchmarks/navig_calls.py: batched and released call patterns, one server, same predictions."""
    import importlib.util

    from navig.searcher.detector import ZeroShotDetector
    from navig.searcher.geocoder import OfflineGeocoder
    from navig.searcher.guidebook import Guidebook

    spec = importlib.util.spec_from_file_location("navig_calls", Path(__file__).resolve().parents[1]
                                                  / "benchmarks" / "navig_calls.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    models = tiny_models()
    images = make_scene_images(tmp_path / "images", 4)
    options = LocateOptions(model=str(models["vlm"]), detector=str(models["detector"]), guidebook=Path(guidebook),
                            box_threshold=0.05, text_threshold=0.05, batch_size=3, top_k=1)
    detector = ZeroShotDetector(str(models["detector"]), box_threshold=0.05, text_threshold=0.05)
    detectors = {p: ZeroShotDetector(str(models["detector"]), prompts=(p,), box_threshold=0.05, text_threshold=0.05)
                 for p in options.detector_prompts}
    result = bench.compare_served([(p.stem, p) for p in images], options, detector, Guidebook(guidebook), detectors,
                                  Path(guidebook), OfflineGeocoder())
    assert result["same_predictions"] and result["differences"] == []
    assert result["ours"]["predictions"] == result["original"]["predictions"] >= 1  # real predictions compared
    assert result["ours"]["predictions"] + result["ours"]["failures"] == 4
    assert result["ours"]["generate_calls"] > 0 and result["original"]["generate_calls"] > 0


def test_navig_imports_without_the_video_stack():
    code = ("import sys, navig, navig.cli, navig.pipeline, navig.report, navig.searcher.ocr, navig.searcher.guidebook;"
            "bad = [m for m in ('yt_dlp', 'whisper', 'rapidocr_onnxruntime', 'webvtt') if m in sys.modules];"
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_bad_settings_are_usage_errors_before_any_model_loads(tmp_path):
    from typer.testing import CliRunner

    from navig.cli import app

    images = make_scene_images(tmp_path / "images", 1)
    runner = CliRunner()
    cases = [
        (["locate", str(images[0].parent), "--out", str(tmp_path / "p.jsonl"), "--geocoder", "foo"], "geocoder='foo'"),
        (["locate", str(images[0].parent), "--out", str(tmp_path / "p.jsonl"), "--ocr", "tesseract"], "ocr='tesseract'"),
        (["eval", "--benchmark", f"folder:{images[0].parent}", "--out", str(tmp_path / "e"), "--model", "m",
          "--option", "detectr=x"], "unknown option(s) detectr"),
        (["eval", "--benchmark", f"folder:{images[0].parent}", "--out", str(tmp_path / "e"), "--model", "m",
          "--option", "box_threshold=3"], "box_threshold=3"),
    ]
    for args, needle in cases:
        result = runner.invoke(app, args)
        said = " ".join(result.output.split())
        assert result.exit_code == 2 and needle in said, (args, result.output)
        assert not (tmp_path / "p.jsonl").exists() and not (tmp_path / "e").exists()
