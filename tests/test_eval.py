"""navig eval: benchmark loaders, the resumable runner over the real pipeline, ablations, ROUGE.

The VLM is an OpenAI-compatible server on 127.0.0.1 (tests/navig_fixtures.openai_server) that
answers every prompt with a fixed JSON guess (Paris), so the expected metrics are known exactly.
"""
from __future__ import annotations

import json
import math

import pytest

from navig_fixtures import make_scene_images, openai_server

PARIS = (48.8566, 2.3522)
LYON = (45.7640, 4.8357)
TOKYO = (35.6895, 139.6917)
GUESS = json.dumps({"country": "France", "city": "Paris", "latitude": PARIS[0], "longitude": PARIS[1]})


def _cli_app():
    from navig.cli import app

    return app


@pytest.fixture
def bench_dir(tmp_path):
    root = tmp_path / "gws"
    images = make_scene_images(root / "images", 3, size=(64, 48))
    (root / "images" / "broken.jpg").write_bytes(b"not a jpeg at all")
    (root / "metadata.csv").write_text(
        "id,file_name,lat,lng\n"
        f"paris,images/{images[0].name},{PARIS[0]},{PARIS[1]}\n"
        f"lyon,images/{images[1].name},{LYON[0]},{LYON[1]}\n"
        f"tokyo,images/{images[2].name},{TOKYO[0]},{TOKYO[1]}\n"
        "broken,images/broken.jpg,10,10\n"
        "ghost,images/missing.jpg,0,0\n"  # no such file: a benchmark problem, reported
        "far,images/x.jpg,95,0\n",  # bad latitude
        encoding="utf-8")
    return root


def test_folder_loader_reports_unusable_rows(bench_dir, tmp_path):
    from navig.eval.benchmarks import load_benchmark, parse_spec

    assert parse_spec(str(bench_dir))[0] == "folder"
    bench = load_benchmark(str(bench_dir), tmp_path / "cache")
    assert [s.id for s in bench.samples] == ["paris", "lyon", "tokyo", "broken"]
    assert len(bench.problems) == 2
    assert "ghost" in bench.problems[0] and "image not found" in bench.problems[0]
    assert "far" in bench.problems[1] and "bad coordinates" in bench.problems[1]


def test_im2gps3k_yfcc4k_and_hf_loaders(tmp_path):
    from datasets import Dataset, DatasetDict
    from PIL import Image

    from navig.eval.benchmarks import load_benchmark

    im2 = tmp_path / "im2gps3k"
    (im2 / "im2gps3ktest").mkdir(parents=True)
    for name in ("1000_123.jpg", "2000_456.jpg"):
        Image.new("RGB", (8, 8)).save(im2 / "im2gps3ktest" / name)
    (im2 / "im2gps3k_places365.csv").write_text(
        "IMG_ID,AUTHOR,LAT,LON,S3_Label,S16_Label,S365_Label,Prob_indoor,Prob_natural,Prob_urban\n"
        "1000_123.jpg,a@N00,51.5,-0.12,1,5,100,0.1,0.2,0.7\n"
        "2000_456.jpg,b@N00,-33.86,151.2,1,5,100,0.1,0.2,0.7\n", encoding="utf-8")
    bench = load_benchmark(f"im2gps3k:{im2}", tmp_path / "cache")
    assert [(s.id, s.lat, s.lng) for s in bench.samples] == [("1000_123.jpg", 51.5, -0.12), ("2000_456.jpg", -33.86, 151.2)]
    assert bench.samples[0].image == im2 / "im2gps3ktest" / "1000_123.jpg"

    yf = tmp_path / "yfcc"
    yf.mkdir()
    Image.new("RGB", (8, 8)).save(yf / "777.jpg")
    (yf / "yfcc4k_places365.csv").write_text("IMG_ID,LAT,LON\n777.jpg,40.7,-74.0\n", encoding="utf-8")
    assert [s.id for s in load_benchmark(str(yf), tmp_path / "cache").samples] == ["777.jpg"]

    rows = [{"id": "r/1", "lat": 1.0, "lng": 2.0, "country": "Kenya", "reasoning": "red soil",
             "images": [Image.new("RGB", (8, 8), "red")]}]
    DatasetDict({"train": Dataset.from_list(rows), "test": Dataset.from_list(rows)}).save_to_disk(str(tmp_path / "nc"))
    nav = load_benchmark(f"naviclues:{tmp_path / 'nc'}", tmp_path / "cache")
    (sample,) = nav.samples
    assert (sample.id, sample.country, sample.reasoning) == ("r/1", "Kenya", "red soil")
    assert sample.image.parent == tmp_path / "cache" / "naviclues" and sample.image.is_file()


def test_hf_image_cache_is_keyed_by_content_not_by_id(tmp_path):
    """A new version of a dataset (same id, another picture) must not get the old cached image."""
    from datasets import Dataset, DatasetDict
    from PIL import Image

    from navig.eval.benchmarks import load_benchmark

    def save(colour):
        rows = [{"id": "r1", "lat": 1.0, "lng": 2.0, "image": Image.new("RGB", (8, 8), colour)}]
        DatasetDict({"test": Dataset.from_list(rows)}).save_to_disk(str(tmp_path / "ds"))

    save("red")
    (first,) = load_benchmark(f"hf:{tmp_path / 'ds'}", tmp_path / "cache").samples
    assert Image.open(first.image).convert("RGB").getpixel((4, 4))[0] > 200
    (again,) = load_benchmark(f"hf:{tmp_path / 'ds'}", tmp_path / "cache").samples
    assert again.image == first.image  # unchanged bytes: the cached file is reused

    save("blue")  # the dataset behind the same id and name changed
    (changed,) = load_benchmark(f"hf:{tmp_path / 'ds'}", tmp_path / "cache").samples
    assert changed.id == "r1" and changed.image != first.image
    red, green, blue = Image.open(changed.image).convert("RGB").getpixel((4, 4))
    assert blue > 200 and red < 50


def test_navig_eval_end_to_end_resumes_and_counts_failures(bench_dir, tmp_path):
    from typer.testing import CliRunner

    from navig.eval.metrics import haversine_km

    out = tmp_path / "out"
    with openai_server(lambda body: GUESS) as server:
        args = ["eval", "--benchmark", f"gws5k:{bench_dir}", "--model", "served-base", "--adapter", "navig-lora",
                "--backend", "openai", "--base-url", server.url + "/v1", "--option", "detector=null",
                "--ablation", "full", "--ablation", "plain", "--out", str(out)]
        result = CliRunner().invoke(_cli_app(), args)
        assert result.exit_code == 0, result.output
        first_requests = len(server.requests)
        models_used = {r["body"]["model"] for r in server.requests}

        full = json.loads((out / "gws5k" / "full" / "metrics.json").read_text())
        plain = json.loads((out / "gws5k" / "plain" / "metrics.json").read_text())
        d_lyon = float(haversine_km(*PARIS, *LYON))
        d_tokyo = float(haversine_km(*PARIS, *TOKYO))
        for m in (full, plain):
            assert m["n"] == 4 and m["n_failed"] == 1 and m["failure_rate"] == 0.25
            assert (m["acc_1km"], m["acc_25km"], m["acc_200km"]) == (0.25, 0.25, 0.25)
            assert (m["acc_750km"], m["acc_2500km"]) == (0.5, 0.5)
            assert m["mean_km"] == pytest.approx((0 + d_lyon + d_tokyo) / 3)
            assert m["geoscore"] == pytest.approx((5000 + 5000 * math.exp(-d_lyon / 1492.7)
                                                   + 5000 * math.exp(-d_tokyo / 1492.7)) / 4)
            assert m["country_acc"] == 0.5 and m["city_acc"] == 0.25
            assert m["benchmark_problems"] == 2
        # the failed sample is in the predictions with its reason, not hidden
        lines = [json.loads(x) for x in (out / "gws5k" / "full" / "predictions.jsonl").read_text().splitlines()]
        broken = next(r for r in lines if r["id"] == "broken")
        assert broken["prediction"] is None and broken["failure"]
        assert full["failure_reasons"] and sum(full["failure_reasons"].values()) == 1
        # ablations reach the pipeline: the plain model never reasons, the full one uses the adapter
        assert all(r["trace"]["reasoning"] for r in lines if r["id"] != "broken")
        plain_lines = [json.loads(x) for x in (out / "gws5k" / "plain" / "predictions.jsonl").read_text().splitlines()]
        assert all(r["trace"]["reasoning"] is None for r in plain_lines)
        assert "navig-lora" in models_used and full["adapter"] == "navig-lora" and plain["adapter"] is None
        assert full["tool_usage_samples"].get("reasoning") == 3 and plain["tool_usage_samples"].get("reasoning", 0) == 0
        for name in ("metrics.md", "truth.jsonl"):
            assert (out / "gws5k" / "full" / name).is_file()
        table = (out / "results.md").read_text()
        assert "| gws5k | Navig | 25.0 | 25.0 | 25.0 | 50.0 | 50.0 |" in table
        assert "| gws5k | plain model |" in table

        # rerun: nothing is located again, metrics are the same
        again = CliRunner().invoke(_cli_app(), args)
        assert again.exit_code == 0, again.output
        assert len(server.requests) == first_requests
        rerun = json.loads((out / "gws5k" / "full" / "metrics.json").read_text())
        assert rerun["located_now"] == 0 and rerun["resumed_lines"] == 4
        assert rerun["acc_750km"] == full["acc_750km"] and rerun["n_failed"] == 1


def _sky_red(body) -> int:
    """Red channel of the request's image sky (make_scene_images: 120, 160, 200 for images 0, 1, 2)."""
    import base64
    import io

    from PIL import Image

    url = body["messages"][0]["content"][0]["image_url"]["url"]
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB").getpixel((3, 3))[0]


def test_eval_retry_failed_redoes_only_infrastructure_failures(bench_dir, tmp_path):
    from typer.testing import CliRunner

    from navig.pipeline import read_done

    outage = {"on": True}

    def answer(body):  # the server rejects every request about lyon's image while the outage lasts
        return 400 if outage["on"] and abs(_sky_red(body) - 160) < 15 else GUESS

    out = tmp_path / "out"
    with openai_server(answer) as server:
        args = ["eval", "--benchmark", f"gws5k:{bench_dir}", "--model", "served-base", "--backend", "openai",
                "--base-url", server.url + "/v1", "--option", "detector=null", "--ablation", "no_searcher",
                "--out", str(out)]
        assert CliRunner().invoke(_cli_app(), args).exit_code == 0
        run = out / "gws5k" / "no_searcher"
        first = json.loads((run / "metrics.json").read_text())
        assert first["n_failed"] == 2  # broken (unreadable) and lyon (rejected requests)
        rows = read_done(run / "predictions.jsonl")
        assert rows["lyon"]["failure_kind"] == "backend" and rows["broken"]["failure_kind"] == "image"
        assert rows["paris"]["prediction"] and rows["tokyo"]["prediction"]  # same batch, answered

        outage["on"] = False
        n = len(server.requests)
        result = CliRunner().invoke(_cli_app(), args + ["--retry-failed"])
        assert result.exit_code == 0, result.output
        redone = server.requests[n:]
        assert len(redone) == 2 and all(abs(_sky_red(r["body"]) - 160) < 15 for r in redone)  # lyon only
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["retried"] == 1 and metrics["located_now"] == 1 and metrics["resumed_lines"] == 4
    assert metrics["n_failed"] == 1 and metrics["acc_750km"] == 0.5  # lyon now counts (Paris guess, 392 km)
    assert metrics["n_duplicate_ids"] == 1  # the superseded failure line is kept, the last line counts
    assert read_done(run / "predictions.jsonl")["lyon"]["failure"] is None


def test_rouge_hand_computed(tmp_path):
    from datasets import Dataset, DatasetDict
    from PIL import Image

    from navig.eval.rouge import evaluate_reasoning, rouge_scores

    s = rouge_scores(["a b x y"], ["a b c d"])
    assert (s["rouge1"], s["rouge2"], s["rougeL"]) == pytest.approx((0.5, 1 / 3, 0.5))
    assert rouge_scores([""], ["a b"])["rouge1"] == 0.0

    generated = "the road sign is in france"
    refs = ["the road sign is in france", "the road sign is in japan"]
    rows = [{"id": f"t{i}", "reasoning": ref, "images": [Image.new("RGB", (16, 16), "blue")],
             "messages": [{"role": "user", "content": [{"type": "image", "text": None},
                                                       {"type": "text", "text": "where is this?"}]},
                          {"role": "assistant", "content": [{"type": "text", "text": ref}]}]}
            for i, ref in enumerate(refs)]
    DatasetDict({"test": Dataset.from_list(rows)}).save_to_disk(str(tmp_path / "nc"))
    with openai_server(lambda body: generated) as server:
        result = evaluate_reasoning(tmp_path / "nc", "served-base", tmp_path / "out", adapter="navig-lora",
                                    backend="openai", base_url=server.url + "/v1")
        prompts = [r["body"]["messages"][0]["content"][-1]["text"] for r in server.requests]
        assert prompts == ["where is this?"] * 2  # the training prompt, asked of the adapter
        assert {r["body"]["model"] for r in server.requests} == {"navig-lora"}
    assert result["n"] == 2
    assert result["rouge1"] == pytest.approx((1 + 5 / 6) / 2)
    assert result["rouge2"] == pytest.approx((1 + 4 / 5) / 2)
    assert result["rougeL"] == pytest.approx((1 + 5 / 6) / 2)
    assert len((tmp_path / "out" / "reasoning.jsonl").read_text().splitlines()) == 2


def test_eval_on_naviclues_test_split_with_rouge(tmp_path):
    from datasets import Dataset, DatasetDict
    from PIL import Image
    from typer.testing import CliRunner

    reference = "the road sign is in france"
    rows = [{"id": "vid/1", "lat": PARIS[0], "lng": PARIS[1], "country": "France", "city": "Paris",
             "reasoning": reference, "images": [Image.new("RGB", (16, 16), "green")],
             "messages": [{"role": "user", "content": [{"type": "image", "text": None},
                                                       {"type": "text", "text": "where is this?"}]},
                          {"role": "assistant", "content": [{"type": "text", "text": reference}]}]}]
    DatasetDict({"train": Dataset.from_list(rows * 2), "test": Dataset.from_list(rows)}).save_to_disk(str(tmp_path / "nc"))
    out = tmp_path / "out"
    with openai_server(lambda body: GUESS) as server:
        result = CliRunner().invoke(_cli_app(), [
            "eval", "--benchmark", f"naviclues:{tmp_path / 'nc'}", "--model", "served-base", "--backend", "openai",
            "--base-url", server.url + "/v1", "--option", "detector=null", "--rouge", "--out", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "naviclues" / "full" / "metrics.json").read_text())
    assert metrics["n"] == 1 and metrics["acc_1km"] == 1.0 and metrics["country_acc"] == 1.0 and metrics["city_acc"] == 1.0
    assert (out / "_images" / "naviclues").is_dir()  # dataset images were written to the cache first
    rouge = json.loads((out / "naviclues" / "rouge" / "rouge.json").read_text())
    assert rouge["n"] == 1 and 0 < rouge["rouge1"] < 1  # the JSON guess shares "france" with the reference


def test_navig_eval_with_tiny_models_writes_everything_and_resumes(bench_dir, tmp_path, monkeypatch):
    """The full pipeline (tiny random VLM + GroundingDINO + CLIP guidebook), not a served model."""
    from typer.testing import CliRunner

    from navig.searcher.guidebook import build_guidebook
    from navig_fixtures import navig_cache_dir, tiny_models, write_jsonl

    monkeypatch.setenv("NAVIG_CACHE", str(navig_cache_dir()))
    models = tiny_models()
    src = write_jsonl(tmp_path / "gb.jsonl", [{"country": "Chile", "clue": "Bollards with a red band."}])
    guidebook = build_guidebook(src, tmp_path / "guidebook", clip_model=str(models["clip"]))["out"]
    out = tmp_path / "out"
    args = ["eval", "--benchmark", f"gws5k:{bench_dir}", "--model", str(models["vlm"]), "--guidebook", guidebook,
            "--option", f"detector={models['detector']}", "--option", "box_threshold=0.05",
            "--option", "text_threshold=0.05", "--option", "max_new_tokens=8", "--option", "crop_max_new_tokens=8",
            "--option", "guess_max_new_tokens=16", "--batch-size", "2", "--out", str(out)]
    result = CliRunner().invoke(_cli_app(), args)
    assert result.exit_code == 0, result.output
    run = out / "gws5k" / "full"
    metrics = json.loads((run / "metrics.json").read_text())
    lines = [json.loads(x) for x in (run / "predictions.jsonl").read_text().splitlines()]
    assert metrics["n"] == 4 and len(lines) == 4 and (run / "metrics.md").is_file() and (out / "results.md").is_file()
    # random weights: every sample has a prediction or a counted failure, never a silent constant
    assert metrics["n_failed"] == sum(1 for r in lines if r["failure"]) >= 1  # the broken image at least
    assert all((r["prediction"] is None) == (r["failure"] is not None) for r in lines)
    assert any(r["trace"]["detections"] for r in lines if r["id"] != "broken")  # the Searcher ran
    again = CliRunner().invoke(_cli_app(), args)
    assert again.exit_code == 0, again.output
    assert json.loads((run / "metrics.json").read_text())["located_now"] == 0


def test_benchmarks_and_ablations_share_one_model_load(bench_dir, tmp_path, monkeypatch):
    """eval/reproduce hand `SharedModels.locate` to every run: one VLM load per model, one detector."""
    from navig.eval.benchmarks import load_benchmark
    from navig.eval.runner import run_eval
    from navig.pipeline import SharedModels, locate_options
    from navig_fixtures import navig_cache_dir, tiny_models

    monkeypatch.setenv("NAVIG_CACHE", str(navig_cache_dir()))
    models = tiny_models()
    bench = load_benchmark(f"gws5k:{bench_dir}", tmp_path / "cache").limit(2)
    options = locate_options(model=str(models["vlm"]), detector=str(models["detector"]), box_threshold=0.05,
                             text_threshold=0.05, max_new_tokens=4, crop_max_new_tokens=4, guess_max_new_tokens=8)
    cache = SharedModels()
    usage = {}
    for ablation in ("full", "no_searcher", "no_reasoner"):
        metrics = run_eval(bench, options, tmp_path / "out" / ablation, ablation=ablation, locate=cache.locate)
        assert metrics["located_now"] == 2
        usage[ablation] = metrics["locate_summary"]["tool_usage"]
    assert cache.loads == 1
    # each run reports its own use of the shared backends, not a running total
    assert usage["full"]["detector_passes"] > 0 and usage["no_searcher"]["detector_passes"] == 0
    assert usage["no_searcher"]["vlm"]["requests"] <= usage["full"]["vlm"]["requests"]  # a total would exceed it
    assert usage["no_reasoner"]["vlm"]["requests"] < usage["full"]["vlm"]["requests"]
    detectors = [k for k in cache._tools if k[0] == "detector"]
    assert len(detectors) == 1
    # another model: the first is released before the second loads
    first = cache.vlm(options)
    other = locate_options(model=str(models["vlm"]), adapter=None, dtype="float32", detector=None,
                           detector_prompts=["road sign", "house"])  # a YAML list from --option
    assert other.detector_prompts == ("road sign", "house") and hash(other.detector_prompts)
    assert cache.vlm(other) is not first and cache.loads == 2
