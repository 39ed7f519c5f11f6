"""Predictions resume only under the settings they were made with (issue 13, item 5), and the paper's
per-benchmark settings reach eval (item 7).

The VLM is an OpenAI-compatible server on 127.0.0.1 answering every prompt with a fixed guess; the
settings record is the real `<out>.settings.json` written by the pipeline.
"""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from navig_fixtures import make_scene_images, navig_cache_dir, openai_server, tiny_models

GUESS = json.dumps({"country": "France", "city": "Paris", "latitude": 48.8566, "longitude": 2.3522})


@pytest.fixture()
def shared_cache(monkeypatch):
    monkeypatch.setenv("NAVIG_CACHE", str(navig_cache_dir()))


def _app():
    from navig.cli import app

    return app


def _said(output: str) -> str:
    """A command's output as one line of words (rich wraps messages inside a bordered panel)."""
    return " ".join(output.replace("│", " ").split())


def _lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def test_locate_refuses_lines_of_another_model_or_adapter_and_restart_sets_them_aside(tmp_path, shared_cache):
    from navig.pipeline import LocateOptions, SettingsMismatch, locate_to_jsonl

    images = make_scene_images(tmp_path / "images", 2, size=(64, 48))
    items = [(p.stem, p) for p in images]
    out = tmp_path / "preds.jsonl"
    with openai_server(lambda body: GUESS) as server:
        base = dict(backend="openai", base_url=server.url + "/v1", use_searcher=False)
        first = locate_to_jsonl(items, out, LocateOptions(model="model-a", adapter="lora-1", **base))
        assert first["done"] == 2
        record = json.loads((tmp_path / "preds.jsonl.settings.json").read_text())
        assert record["settings"]["model"] == "model-a" and record["fingerprint"] == first["settings_fingerprint"]
        n = len(server.requests)

        # the same settings (batch size and concurrency do not change answers): resumed
        same = locate_to_jsonl(items, out, LocateOptions(model="model-a", adapter="lora-1", batch_size=1,
                                                         concurrency=1, **base))
        assert same["skipped"] == 2 and len(server.requests) == n

        # another model or adapter: refused, naming what differs, before any request
        for changed, named in (({"model": "model-b", "adapter": "lora-1"}, "model: 'model-a' -> 'model-b'"),
                               ({"model": "model-a", "adapter": "lora-2"}, "adapter: 'lora-1' -> 'lora-2'"),
                               ({"model": "model-a", "adapter": "lora-1", "guess_temperature": 0.7},
                                "guess_temperature: 0.0 -> 0.7")):
            with pytest.raises(SettingsMismatch) as refused:
                locate_to_jsonl(items, out, LocateOptions(**changed, **base))
            assert named in str(refused.value) and "2 line(s)" in str(refused.value) and "--restart" in str(refused.value)
        assert len(server.requests) == n and len(_lines(out)) == 2

        # on the command line: a usage error (exit 2) naming the setting, nothing written
        args = ["locate", str(tmp_path / "images"), "--out", str(out), "--backend", "openai",
                "--base-url", server.url + "/v1", "--no-searcher", "--model", "model-a", "--adapter", "lora-2"]
        result = CliRunner().invoke(_app(), args)
        assert result.exit_code == 2, result.output
        assert "adapter: 'lora-1' -> 'lora-2'" in _said(result.output)
        assert len(server.requests) == n and len(_lines(out)) == 2

        # --restart: the old lines are kept aside, every image is located again with the new adapter
        result = CliRunner().invoke(_app(), args + ["--restart"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout.strip().splitlines()[-1])["done"] == 2
        assert {r["body"]["model"] for r in server.requests[n:]} == {"lora-2", "model-a"}
    (aside,) = tmp_path.glob("preds.jsonl.*.old")
    assert aside.name == f"preds.jsonl.{record['fingerprint']}.old" and len(_lines(aside)) == 2
    assert json.loads((tmp_path / f"{aside.name}.settings.json").read_text())["settings"]["adapter"] == "lora-1"
    assert json.loads((tmp_path / "preds.jsonl.settings.json").read_text())["settings"]["adapter"] == "lora-2"
    assert len(_lines(out)) == 2


def test_a_local_model_changed_in_place_is_another_model(tmp_path):
    from navig.pipeline import SettingsMismatch, claim_settings, locate_options

    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "llava"}')
    (model / "model.safetensors").write_bytes(bytes(range(256)) * 40000)  # ~10 MB: sampled at both ends
    copy = tmp_path / "copy-of-model"
    copy.mkdir()
    for f in model.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    out = tmp_path / "p.jsonl"
    options = locate_options(model=str(model), detector=None)
    claim_settings(out, options)
    out.write_text('{"id": "x", "prediction": null, "failure": "f", "failure_kind": "unparseable"}\n')
    claim_settings(out, options)  # unchanged: fine

    weights = bytearray((model / "model.safetensors").read_bytes())
    weights[-1] ^= 0xFF  # retrained / replaced in place: same name, same size
    (model / "model.safetensors").write_bytes(bytes(weights))
    with pytest.raises(SettingsMismatch, match="model_content: changed"):
        claim_settings(out, options)
    (model / "model.safetensors").write_bytes((copy / "model.safetensors").read_bytes())
    claim_settings(out, options)  # the original bytes again: the same model

    # a file without a record (an older navig, or by hand) is not silently adopted
    legacy = tmp_path / "legacy.jsonl"
    legacy.write_text('{"id": "x", "prediction": {"latitude": 1, "longitude": 2}, "failure": null}\n')
    with pytest.raises(SettingsMismatch, match="no record of the settings"):
        claim_settings(legacy, options)


def test_settings_of_a_stage_that_does_not_run_do_not_count(tmp_path):
    from navig.pipeline import locate_options, run_settings

    a = run_settings(locate_options(model="m", use_searcher=False, guidebook=tmp_path, box_threshold=0.9))
    b = run_settings(locate_options(model="m", use_searcher=False, device="cuda", batch_size=16))
    assert a == b and "box_threshold" not in a and "guidebook" not in a
    assert run_settings(locate_options(model="m", use_reasoner=False, adapter="x")) == run_settings(
        locate_options(model="m", use_reasoner=False))
    full = run_settings(locate_options(model="m", adapter="x"))
    assert full["adapter"] == "x" and full["box_threshold"] == 0.5 and full["prompts"] and full["geocoder_data"]


def _im2gps3k(root, n=2):
    images = make_scene_images(root / "im2gps3ktest", n, size=(64, 48))
    rows = "".join(f"{p.name},a@N00,48.8566,2.3522,1,5,100,0.1,0.2,0.7\n" for p in images)
    (root / "im2gps3k_places365.csv").write_text(
        "IMG_ID,AUTHOR,LAT,LON,S3_Label,S16_Label,S365_Label,Prob_indoor,Prob_natural,Prob_urban\n" + rows)
    return root


def test_eval_applies_the_papers_im2gps3k_thresholds_and_refuses_a_changed_model(tmp_path, shared_cache):
    bench = _im2gps3k(tmp_path / "im2gps3k")
    detector = str(tiny_models()["detector"])
    out = tmp_path / "out"
    with openai_server(lambda body: GUESS) as server:
        base = ["eval", "--benchmark", f"im2gps3k:{bench}", "--backend", "openai", "--base-url", server.url + "/v1",
                "--option", f"detector={detector}", "--ablation", "no_reasoner", "--out", str(out)]
        result = CliRunner().invoke(_app(), base + ["--model", "model-a"])
        assert result.exit_code == 0, result.output
        run = out / "im2gps3k" / "no_reasoner"
        metrics = json.loads((run / "metrics.json").read_text())
        # Appendix A.2: Box-Threshold 0.8 and Text-Threshold 0.6 for Im2GPS3k
        assert metrics["paper_benchmark_settings"] == {"box_threshold": 0.8, "text_threshold": 0.6}
        recorded = json.loads((run / "predictions.jsonl.settings.json").read_text())["settings"]
        assert (recorded["box_threshold"], recorded["text_threshold"]) == (0.8, 0.6)
        assert all(d["score"] >= 0.8 for r in _lines(run / "predictions.jsonl") for d in r["trace"]["detections"])
        n = len(server.requests)

        # another model on the same folder: a usage error naming it, before any request
        refused = CliRunner().invoke(_app(), base + ["--model", "model-b"])
        assert refused.exit_code == 2, refused.output
        assert "model: 'model-a' -> 'model-b'" in _said(refused.output)
        assert len(server.requests) == n

        # an explicit --option wins over the paper's setting (and is another setting: --restart)
        again = CliRunner().invoke(_app(), base + ["--model", "model-a", "--option", "box_threshold=0.3", "--restart"])
        assert again.exit_code == 0, again.output
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["paper_benchmark_settings"] == {"text_threshold": 0.6} and metrics["located_now"] == 2
    recorded = json.loads((run / "predictions.jsonl.settings.json").read_text())["settings"]
    assert (recorded["box_threshold"], recorded["text_threshold"]) == (0.3, 0.6)


def test_an_image_changed_under_the_same_id_is_located_again(tmp_path, shared_cache):
    from PIL import Image

    from navig.eval.benchmarks import load_benchmark
    from navig.eval.runner import run_eval
    from navig.pipeline import LocateOptions, image_digest, locate_to_jsonl, read_done

    images = make_scene_images(tmp_path / "bench" / "images", 2, size=(64, 48))
    (tmp_path / "bench" / "metadata.csv").write_text(
        "id,file_name,lat,lng\n" + "".join(f"{p.stem},images/{p.name},48.8566,2.3522\n" for p in images))
    items = [(p.stem, p) for p in images]
    with openai_server(lambda body: GUESS) as server:
        options = LocateOptions(model="m", backend="openai", base_url=server.url + "/v1", use_searcher=False)
        locate_to_jsonl(items, tmp_path / "p.jsonl", options)
        bench = load_benchmark(f"folder:{tmp_path / 'bench'}", tmp_path / "cache")
        assert run_eval(bench, options, tmp_path / "run", ablation="no_searcher")["located_now"] == 2
        n = len(server.requests)
        assert locate_to_jsonl(items, tmp_path / "p.jsonl", options)["skipped"] == 2 and len(server.requests) == n

        Image.new("RGB", (64, 48), "purple").save(images[1])  # the benchmark's image replaced, same id and path
        summary = locate_to_jsonl(items, tmp_path / "p.jsonl", options)
        assert (summary["changed_images"], summary["done"], summary["skipped"]) == (1, 1, 1)
        metrics = run_eval(bench, options, tmp_path / "run", ablation="no_searcher")
        assert (metrics["changed_images"], metrics["located_now"]) == (1, 1)
    for out in (tmp_path / "p.jsonl", tmp_path / "run" / "predictions.jsonl"):  # the last line is the new image's
        assert read_done(out)[images[1].stem]["image_sha256"] == image_digest(images[1])


def test_settings_record_carries_no_url_credentials(tmp_path):
    """`<out>.settings.json` and the mismatch message are files and logs: a base_url or Nominatim URL
    with user:password@ or ?key= must not put the secret there."""
    from navig.pipeline import SettingsMismatch, claim_settings, locate_options

    out = tmp_path / "p.jsonl"
    options = locate_options(model="m", backend="openai", base_url="https://bob:hunter2pw@vllm.lab:8000/v1/",
                             geocoder="nominatim", geocoder_url="https://geo.lab/?key=nominatimsecret9", detector=None)
    claim_settings(out, options)
    record = (tmp_path / "p.jsonl.settings.json").read_text()
    assert "hunter2pw" not in record and "nominatimsecret9" not in record
    assert "vllm.lab:8000/v1" in record and "geo.lab" in record  # the servers themselves still count
    out.write_text('{"id": "x", "prediction": null, "failure": "f", "failure_kind": "unparseable"}\n')
    other = locate_options(model="m2", backend="openai", base_url="https://bob:hunter2pw@vllm.lab:8000/v1/",
                           geocoder="nominatim", geocoder_url="https://geo.lab/?key=nominatimsecret9", detector=None)
    with pytest.raises(SettingsMismatch) as refused:
        claim_settings(out, other)
    assert "hunter2pw" not in str(refused.value) and "nominatimsecret9" not in str(refused.value)
