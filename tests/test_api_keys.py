"""An API key goes only to the host it is configured for (naviclues.api_keys), in annotate's
reasoning writer as in navig's backend (tests/test_navig_backends.py)."""
from __future__ import annotations

from annotate.config import ReasoningConfig
from annotate.stages.reasoning import OpenAIChatWriter, ReasoningRequest
from naviclues.api_keys import api_key_for
from navig_fixtures import openai_server


def test_the_rule():
    env = {"OPENAI_API_KEY": "sk-openai", "MY_SERVER_KEY": "k-mine"}
    assert api_key_for("https://api.openai.com/v1", "OPENAI_API_KEY", env) == "sk-openai"
    assert api_key_for(None, "OPENAI_API_KEY", env) == "sk-openai"  # the SDK default host
    for elsewhere in ("http://127.0.0.1:8000/v1", "https://api.openai.com.evil.example/v1",
                      "http://api.openai.com/v1", "https://my-vllm.lab/v1"):
        assert api_key_for(elsewhere, "OPENAI_API_KEY", env) is None, elsewhere
    assert api_key_for("https://my-vllm.lab/v1", "MY_SERVER_KEY", env) == "k-mine"  # named for that server
    assert api_key_for("https://my-vllm.lab/v1", "UNSET_VAR", env) is None
    assert api_key_for("https://api.openai.com/v1", "", env) is None


def _request() -> ReasoningRequest:
    return ReasoningRequest(transcript="yellow plates and concrete poles, this is Brazil", country="Brazil",
                            lat=-15.8, lng=-47.9, round_id="v/1")


def test_reasoning_writer_keeps_openai_key_from_another_server(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-real-openai-key")
    monkeypatch.setenv("LAB_SERVER_KEY", "lab-key")
    with openai_server(lambda body: "I see yellow plates.") as server:
        default = ReasoningConfig(backend="openai", model="m", base_url=server.url + "/v1", retries=1)
        OpenAIChatWriter(default).write(_request())
        named = default.model_copy(update={"api_key_env": "LAB_SERVER_KEY"})
        OpenAIChatWriter(named).write(_request())
        sent = [r["headers"].get("authorization") for r in server.requests]
    assert sent == [None, "Bearer lab-key"]
