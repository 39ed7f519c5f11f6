"""VLM backends: transformers (tiny Llava, batching, LoRA routing) and openai (local server)."""
from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from navig.backends import VLMRequest, load_vlm
from navig_fixtures import make_scene_images, openai_server, scratch_dir, tiny_models


@pytest.fixture(scope="module")
def images():
    return [Image.open(p).convert("RGB") for p in make_scene_images(scratch_dir() / "backend_images", 3)]


@pytest.fixture(scope="module")
def tiny_vlm():
    return load_vlm("transformers", str(tiny_models()["vlm"]), max_batch=8)


def test_transformers_batched_equals_one_by_one(tiny_vlm, images):
    requests = [VLMRequest([images[0]], "guess the country", max_new_tokens=6),
                VLMRequest([images[1]], "road sign text map search guidebook details", max_new_tokens=6),
                VLMRequest([images[2]], "city", max_new_tokens=3)]
    tiny_vlm.stats.reset()
    batched = tiny_vlm.generate(requests)
    assert tiny_vlm.stats.snapshot()["generate_calls"] == 1  # one padded batch
    assert tiny_vlm.stats.snapshot()["requests"] == 3
    forward_one_batch = tiny_vlm.stats.snapshot()["forward_passes"]
    assert 1 <= forward_one_batch <= 6
    single = [tiny_vlm.generate([r])[0] for r in requests]
    assert batched == single  # left padding: prompts of different lengths decode the same
    assert len(batched[2].split()) <= 3  # each request keeps its own token budget
    assert tiny_vlm.stats.snapshot()["generate_calls"] == 4


def test_transformers_lora_adapter_routes_reasoner_requests(tmp_path, images):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    base = AutoModelForImageTextToText.from_pretrained(tiny_models()["vlm"])
    # init_lora_weights=False: a random (non-identity) adapter, so its answers differ from the base
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=32, target_modules=["q_proj", "v_proj"],
                                                  init_lora_weights=False))
    peft_model.save_pretrained(tmp_path / "adapter")
    vlm = load_vlm("transformers", str(tiny_models()["vlm"]), adapter=str(tmp_path / "adapter"))
    plain = load_vlm("transformers", str(tiny_models()["vlm"]))
    assert vlm.has_adapter and not plain.has_adapter
    prompt = "guess the country of this image"
    reqs = [VLMRequest([images[0]], prompt, max_new_tokens=8, use_adapter=True),
            VLMRequest([images[0]], prompt, max_new_tokens=8, use_adapter=False)]
    with_adapter, without = vlm.generate(reqs)
    assert without == plain.generate([reqs[1]])[0]  # adapter disabled = the base model
    assert with_adapter != without


def test_openai_backend_against_local_server(images, monkeypatch):
    monkeypatch.setenv("NAVIG_TEST_KEY", "sk-test-secret")
    with openai_server(lambda body: f"answer for {body['model']}", fail_first=1) as server:
        vlm = load_vlm("openai", "served-base", adapter="navig-lora", base_url=server.url + "/v1",
                       api_key_env="NAVIG_TEST_KEY", concurrency=2)
        out = vlm.generate([VLMRequest([images[0]], "first", max_new_tokens=7, temperature=0.0, use_adapter=True),
                            VLMRequest([images[1], images[2]], "second", max_new_tokens=9)])
        assert out == ["answer for navig-lora", "answer for served-base"]
        assert len(server.requests) == 3  # one 503 retried
        ok = [r for r in server.requests[1:]]
        by_prompt = {r["body"]["messages"][0]["content"][-1]["text"]: r for r in ok}
        second = by_prompt["second"]
        assert second["path"] == "/v1/chat/completions"
        assert second["headers"]["authorization"] == "Bearer sk-test-secret"
        assert second["body"]["max_tokens"] == 9 and second["body"]["temperature"] == 0.0
        content = second["body"]["messages"][0]["content"]
        assert [c["type"] for c in content] == ["image_url", "image_url", "text"]
        url = content[0]["image_url"]["url"]
        assert url.startswith("data:image/jpeg;base64,")
        decoded = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
        assert decoded.size == images[1].size
        # JPEG round trip: the pixels are the image's, not another one's
        small = [np.asarray(im.convert("L").resize((32, 24)), dtype=float) for im in (decoded, images[1])]
        assert np.abs(small[0] - small[1]).mean() < 4
        assert vlm.stats.snapshot()["requests"] == 2 and vlm.stats.snapshot()["generate_calls"] == 3


def test_openai_backend_a_failing_request_costs_only_itself(images):
    from navig.backends import VLMError, VLMRequestError
    from navig.backends.openai_backend import OpenAIVLM

    # the server fails every request about "broken" (HTTP 500, retried, then given up)
    def answer(body):
        text = body["messages"][0]["content"][-1]["text"]
        return 500 if text == "broken" else f"ok {text}"

    with openai_server(answer) as server:
        vlm = OpenAIVLM("served-base", base_url=server.url + "/v1", concurrency=3, max_attempts=2)
        requests = [VLMRequest([im], prompt, max_new_tokens=4) for im, prompt in
                    zip(images, ["first", "broken", "third"])]
        results = vlm.generate_each(requests)
        assert results[0] == "ok first" and results[2] == "ok third"
        assert isinstance(results[1], VLMError) and results[1].kind == "InternalServerError"
        assert str(results[1]).startswith("InternalServerError: ")
        prompts = [r["body"]["messages"][0]["content"][-1]["text"] for r in server.requests]
        assert prompts.count("broken") == 2 and prompts.count("first") == 1  # retried once, then recorded
        assert vlm.stats.snapshot()["requests"] == 2  # answered requests only
        # the strict form still refuses a partial answer, and says which request failed
        with pytest.raises(VLMRequestError, match=r"1 of 3 VLM request\(s\) failed; request 1: InternalServerError"):
            vlm.generate(requests)


def test_default_generate_each_isolates_a_failing_request(tiny_vlm, images):
    # transformers batches: a batch that raises is retried one request at a time
    bad = VLMRequest(["not an image"], "city", max_new_tokens=3)  # the processor raises on this one only
    good = VLMRequest([images[2]], "city", max_new_tokens=3)
    results = tiny_vlm.generate_each([good, bad, good])
    assert results[0] == results[2] == tiny_vlm.generate([good])[0]
    from navig.backends import VLMError

    assert isinstance(results[1], VLMError) and results[1].kind == "AttributeError"


def test_unknown_backend_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown VLM backend"):
        load_vlm("tgi", "x")


def test_a_processor_that_needs_torchvision_says_how_to_get_it(tmp_path):
    """Qwen2-VL's processors import torchvision; without it the backend names the fix, not a bare ImportError."""
    import importlib.util
    import json
    import shutil

    if importlib.util.find_spec("torchvision") is not None:
        pytest.skip("torchvision is installed here")
    folder = tmp_path / "qwen-like"
    shutil.copytree(tiny_models()["vlm"], folder)
    config = json.loads((folder / "processor_config.json").read_text())
    config.update(processor_class="Qwen2VLProcessor",
                  image_processor={"image_processor_type": "Qwen2VLImageProcessor", "patch_size": 14,
                                   "temporal_patch_size": 2, "merge_size": 2},
                  video_processor={"video_processor_type": "Qwen2VLVideoProcessor"})
    (folder / "processor_config.json").write_text(json.dumps(config))
    with pytest.raises(ImportError, match=r"naviclues\[qwen\]") as err:
        load_vlm("transformers", str(folder))
    assert str(folder) in str(err.value) and "torchvision" in str(err.value).lower()


def test_openai_backend_sends_openai_api_key_only_to_openai(images, monkeypatch):
    """OPENAI_API_KEY in the environment never reaches another host; a key named for the server does."""
    from navig.backends.openai_backend import OpenAIVLM

    monkeypatch.setenv("OPENAI_API_KEY", "sk-real-openai-key")
    monkeypatch.setenv("LOCAL_VLLM_KEY", "local-server-key")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with openai_server(lambda body: "ok") as server:
        OpenAIVLM("m", base_url=server.url + "/v1", max_attempts=1).generate([VLMRequest([images[0]], "a")])
        OpenAIVLM("m", base_url=server.url + "/v1", api_key_env="LOCAL_VLLM_KEY",
                  max_attempts=1).generate([VLMRequest([images[0]], "b")])
        sent = [r["headers"].get("authorization") for r in server.requests]
    assert sent == ["Bearer EMPTY", "Bearer local-server-key"]
    # with no base_url at all (nor OPENAI_BASE_URL) the client talks to OpenAI and carries its key
    default = OpenAIVLM("m", max_attempts=1).client
    assert str(default.base_url).startswith("https://api.openai.com/") and default.api_key == "sk-real-openai-key"
