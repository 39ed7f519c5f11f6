import json
from http.server import BaseHTTPRequestHandler

import pytest

from annotate.config import ReasoningConfig
from navig_fixtures import LocalServer
from annotate.records import Clue
from annotate.stages.geoparse import pre_reveal_text
from annotate.stages.reasoning import (ExtractiveWriter, OpenAIChatWriter, ReasoningRequest, TransformersWriter,
                                       build_messages, make_writer, rewrite)

TRANSCRIPT = (
    "[Music] welcome back guys don't forget to subscribe and check the link in the description "
    "okay so um we have yellow plates here and the road lines are white with a yellow center line "
    "i think these concrete poles look really brazilian so we're probably in brazil uh the soil is red "
    "and there are palm trees so i'm going to guess somewhere near curitiba let's see "
    "oh it was actually paraguay i got 3000 points that's fine thanks for watching")


def request(**overrides) -> ReasoningRequest:
    base = dict(round_id="vid/3", transcript=pre_reveal_text(TRANSCRIPT), country="Paraguay", lat=-25.3, lng=-57.6,
                clues=[Clue("yellow plates", "licence_plate"), Clue("concrete poles", "utility_pole"),
                       Clue("brazil", "country", "BR")])
    base.update(overrides)
    return ReasoningRequest(**base)


# --- extractive ----------------------------------------------------------------------------------

def _countries_named(text: str) -> set[str]:
    """ISO codes of every country the text names (by name, demonym, city or region), via the geoparser's index."""
    from annotate.stages.geoparse import Geoparser, _tokens

    parser = Geoparser(ranker=None)
    return {code for m in parser.mentions(_tokens(text)) for code, _ in m.candidates if m.kind != "language"}


def test_offline_rewrite_states_each_clue_with_its_implication():
    text, source = ExtractiveWriter().write(request())
    assert source == "extractive"
    lower = text.lower()
    # the expert's clues, with the words that describe them, as first-person observations
    assert "yellow plates" in lower and "concrete poles" in lower and "palm trees" in lower and "red" in lower
    assert text.startswith("As I look around") and " I notice " in f" {text} "
    # what they imply, from the true place: Paraguay lies at 25°S (subtropical, southern) and speaks Spanish
    assert "subtropical" in lower
    for banned in ("it was actually", "points", "subscribe", "[music]", " um ", " uh ", "thanks for watching"):
        assert banned not in f" {lower} ", banned
    assert text[0].isupper() and len(text) <= ReasoningConfig().target_chars + 40
    assert text.endswith(".") and "Paraguay" in text.split(". ")[-1]


def test_offline_rewrite_never_concludes_another_country():
    """The talk concludes Brazil (and Curitiba), the truth is Paraguay: the wrong turn is dropped, so no
    sentence of the reasoning names a country other than the one its conclusion names (issue 13, item 1)."""
    text, _ = ExtractiveWriter().write(request())
    assert "brazil" not in text.lower() and "curitiba" not in text.lower()
    assert _countries_named(text) == {"PY"}
    # also when the expert says nothing else: no observation, the conclusion alone, naming the truth
    bare, _ = ExtractiveWriter().write(request(transcript="i think this is brazil so i'll guess brazil"))
    assert _countries_named(bare) == {"PY"} and "Paraguay" in bare


def test_offline_rewrite_keeps_nothing_after_the_reveal():
    """Given the whole round (not cut), the writer itself stops at the result talk."""
    talk = ("okay so we have white bollards with a red reflector and the forest is all birch trees "
            "the houses are painted red with white corners and the road has a yellow centre line "
            "the terrain is flat with lakes so i will guess north of stockholm let's see "
            "oh it was actually right there five thousand points and the zeppelin signs are marmalade yellow "
            "which is typical for sweden and the flabbergasted bollards too")
    text, _ = ExtractiveWriter().write(request(transcript=talk, country="Sweden", lat=59.33, lng=18.07))
    lower = text.lower()
    assert "bollards" in lower and "birch trees" in lower
    assert not any(w in lower for w in ("zeppelin", "marmalade", "flabbergasted", "points", "it was"))
    assert "Sweden" in text.split(". ")[-1] and "cool, northern" in lower  # 59°N


def test_fit_style_learns_length_and_clue_order_from_references():
    from annotate.stages.clues import ClueExtractor
    from annotate.stages.offline_rewrite import fit_style

    extractor = ClueExtractor()
    refs = ["I see dense palm trees and jungle, the tropics, then the white road lines, and at last a bollard.",
            "The vegetation is lush with tall trees and then a yellow line appears, and finally a white bollard."
            + " The scene goes on." * 3]
    style = fit_style(refs, extractor.extract_text)
    assert style.target_chars == int(sorted(len(r) for r in refs)[0] / 2 + sorted(len(r) for r in refs)[1] / 2)
    order = style.category_order
    assert order.index("vegetation") < order.index("road_marking") < order.index("bollard")
    assert set(order) >= {"sign", "architecture"}  # kinds the references never show keep a place at the end
    # the style changes the text: a short target keeps fewer observations
    long_text, _ = ExtractiveWriter(style=type(style)(840, order)).write(request())
    short_text, _ = ExtractiveWriter(style=type(style)(200, order)).write(request())
    assert len(short_text) < len(long_text) and "Paraguay" in short_text


def test_extractive_reuses_the_given_clue_extractor_and_its_settings():
    from annotate.config import CluesConfig
    from annotate.stages.clues import ClueExtractor

    extractor = ClueExtractor(CluesConfig())
    writer = make_writer(ReasoningConfig(), clue_extractor=extractor)
    assert isinstance(writer, ExtractiveWriter) and writer.clue_extractor is extractor
    assert writer.write(request()) == ExtractiveWriter().write(request())
    # without one, the extractor is built lazily from the configured clue settings
    settings = CluesConfig(min_city_population=5_000_000)  # few city patterns: quick to build
    lazy = make_writer(ReasoningConfig(), clues_config=settings)
    assert lazy._clue_extractor is None
    assert lazy.clue_extractor.config is settings


def test_rewrite_records_errors_instead_of_raising():
    class Broken:
        source = "broken"

        def write(self, req):
            raise ValueError("boom")

    result = rewrite(Broken(), request())
    assert result.text is None and "vid/3" in result.error and "boom" in result.error
    empty = rewrite(ExtractiveWriter(ReasoningConfig(extractive_conclusion=False)), request(transcript="[Music]"))
    assert empty.error == "round vid/3: empty reasoning"


def test_prompt_is_answer_guided():
    messages = build_messages(request())
    assert [m["role"] for m in messages] == ["system", "user"]
    user = messages[1]["content"]
    assert "Paraguay" in user and "-25.3000" in user and "first person" in user
    assert "yellow plates" in user and "concrete poles" in user
    assert "it was actually paraguay" not in user  # the transcript given is pre-reveal


# --- OpenAI-compatible server on 127.0.0.1 ---------------------------------------------------------

class ChatServer:
    """A tiny `/v1/chat/completions` server that answers with scripted status codes."""

    def __init__(self, statuses):
        self.statuses = list(statuses)
        self.requests = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                status = server.statuses.pop(0) if server.statuses else 200
                if status == 200:
                    payload = {"id": "cmpl-1", "object": "chat.completion", "model": body["model"],
                               "choices": [{"index": 0, "finish_reason": "stop", "message": {
                                   "role": "assistant", "content": "I see yellow plates and concrete poles."}}]}
                else:
                    payload = {"error": {"message": "try later", "code": status}}
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = LocalServer(Handler)
        self.url = self.server.url + "/v1"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.server.close()


def test_openai_backend_request_retries_and_cache(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("TEST_CHAT_KEY", "sk-secret-123")
    config = ReasoningConfig(backend="openai", model="gpt-4o", api_key_env="TEST_CHAT_KEY", cache_dir=tmp_path / "cache",
                             backoff_s=0.01, retries=4)
    with ChatServer([429, 500, 200]) as server:
        config = config.model_copy(update={"base_url": server.url})
        writer = make_writer(config)
        assert isinstance(writer, OpenAIChatWriter)
        text, source = writer.write(request())
        assert text == "I see yellow plates and concrete poles." and source == "openai:gpt-4o"
        assert len(server.requests) == 3  # 429 and 500 were retried
        first = server.requests[-1]
        assert first["path"] == "/v1/chat/completions"
        assert first["headers"]["Authorization"] == "Bearer sk-secret-123"
        assert first["body"]["model"] == "gpt-4o"
        assert [m["role"] for m in first["body"]["messages"]] == ["system", "user"]
        # a rerun with a fresh writer is served from the cache: no new request
        text2, _ = OpenAIChatWriter(config).write(request())
        assert text2 == text and len(server.requests) == 3
    cached = list((tmp_path / "cache").rglob("*.json"))
    assert len(cached) == 1 and "sk-secret-123" not in cached[0].read_text()
    assert "sk-secret-123" not in caplog.text


def test_openai_cache_is_keyed_by_server_not_by_api_key(tmp_path, monkeypatch):
    config = ReasoningConfig(backend="openai", model="gpt-4o", cache_dir=tmp_path / "cache", api_key_env="TEST_CHAT_KEY",
                             backoff_s=0.01, retries=1)
    with ChatServer([]) as first, ChatServer([]) as second:
        monkeypatch.setenv("TEST_CHAT_KEY", "sk-one")
        OpenAIChatWriter(config.model_copy(update={"base_url": first.url})).write(request())
        monkeypatch.setenv("TEST_CHAT_KEY", "sk-two")  # another key, same server: still a cache hit
        OpenAIChatWriter(config.model_copy(update={"base_url": first.url + "/"})).write(request())
        assert len(first.requests) == 1
        OpenAIChatWriter(config.model_copy(update={"base_url": second.url})).write(request())
        assert len(second.requests) == 1  # another server is asked, not answered from the first one's cache
    entries = list((tmp_path / "cache").rglob("*.json"))
    assert len(entries) == 2
    for entry in entries:
        text = entry.read_text()
        assert "sk-one" not in text and "sk-two" not in text and "127.0.0.1" not in text


def test_openai_backend_gives_up_as_an_error_record(tmp_path):
    config = ReasoningConfig(backend="openai", model="m", backoff_s=0.01, retries=2, api_key_env="NO_SUCH_KEY_VAR")
    with ChatServer([503, 503, 503]) as server:
        writer = OpenAIChatWriter(config.model_copy(update={"base_url": server.url}))
        result = rewrite(writer, request())
        assert len(server.requests) == 2 and "Authorization" not in server.requests[0]["headers"]
    assert result.text is None and "HTTP 503" in result.error and result.source == "openai:m"
    with ChatServer([400]) as server:  # a client error is not retried
        writer = OpenAIChatWriter(config.model_copy(update={"base_url": server.url}))
        assert "HTTP 400" in rewrite(writer, request()).error and len(server.requests) == 1


# --- local transformers model ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    torch.manual_seed(0)

    words = ("<unk> <pad> <s> </s> system user assistant : i see yellow plates poles brazil paraguay the a road "
             "sign trees soil red so this is in of and").split()
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", pad_token="<pad>",
                                        bos_token="<s>", eos_token="</s>")
    tokenizer.chat_template = ("{% for m in messages %}{{ m['role'] }} : {{ m['content'] }} {% endfor %}"
                               "{% if add_generation_prompt %}assistant : {% endif %}")
    config = LlamaConfig(vocab_size=len(words), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=4096,
                         pad_token_id=1, bos_token_id=2, eos_token_id=3)
    path = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_transformers_backend_generates_with_chat_template(tiny_llama):
    config = ReasoningConfig(backend="transformers", model=str(tiny_llama), max_tokens=8)
    writer = make_writer(config)
    assert isinstance(writer, TransformersWriter)
    ids, _ = writer.prompt_ids(request())
    prompt = writer.tokenizer.decode(ids[0])
    assert prompt.startswith("system :") and prompt.rstrip().endswith("assistant :")
    text, source = writer.write(request())
    assert source == f"transformers:{tiny_llama}"
    assert isinstance(text, str) and 0 < len(text.split()) <= 8
    assert writer.write(request()) == (text, source)  # greedy decoding is deterministic


def test_transformers_backend_shortens_the_transcript_not_the_instructions(tiny_llama):
    config = ReasoningConfig(backend="transformers", model=str(tiny_llama), max_tokens=8)
    writer = make_writer(config)
    long_round = request(transcript="so i see trees and a road " * 60 + "red soil so this is paraguay")
    full, _ = writer.prompt_ids(long_round)
    writer.model.config.max_position_embeddings = full.shape[1] - 100  # a context too small for the whole round
    ids, mask = writer.fitted_prompt_ids(long_round)
    assert ids.shape[1] + config.max_tokens <= writer.model.config.max_position_embeddings
    assert mask is None or mask.shape == ids.shape
    prompt = writer.tokenizer.decode(ids[0])
    assert prompt.startswith("system :")  # the instructions and the answer survive …
    assert "red soil so this is paraguay" in prompt  # … and so does the end of the talk
    text, _ = writer.write(long_round)
    assert text is not None
    writer.model.config.max_position_embeddings = 10  # not even the instructions fit: a clear error, no silent cut
    result = rewrite(writer, long_round)
    assert result.text is None and "does not fit" in result.error and "vid/3" in result.error


# --- transcript cleaning helpers (annotate.text) --------------------------------------------------

def test_length_cuts_fall_between_content_words():
    from annotate.text import split_sentences

    # 30 words with no spoken sentence opener: the cap (28) must not split "in the south" or "lots of wires"
    talk = ("look we have white road lines here with a yellow sign the poles are concrete with many holes we "
            "cannot read the plates the sun is in the south with lots of wires on every pole here")
    assert talk.split()[27:29] == ["the", "south"]  # where a plain 28-word cut would fall
    pieces = split_sentences(talk, max_words=28)
    assert " ".join(pieces) == talk
    for piece in pieces:
        first, last = piece.split()[0], piece.split()[-1]
        assert first not in {"of", "in", "the", "south", "wires", "pole"}
        assert last not in {"the", "in", "of", "lots", "every"}
    assert all(len(p.split()) <= 56 for p in split_sentences("word " * 200))  # twice the cap cuts anyway


def test_text_cleaning_and_unpunctuated_sentence_splitting():
    from annotate.text import clean, is_filler, split_sentences, strip_asr_tags, to_sentence_case

    assert strip_asr_tags("[Music] okay so [ __ ] this [Applause]") == "okay so this"
    assert clean("um so uh the the poles look you know like brazilian") == "so the poles look like brazilian"
    assert is_filler("Um,") and not is_filler("like")
    caption = ("okay so we have yellow plates here and white road lines but the poles look concrete "
               "i think this is brazil so i'm going to guess curitiba")
    sentences = split_sentences(caption)
    assert len(sentences) >= 3 and " ".join(sentences) == caption
    assert all(len(s.split()) <= 28 for s in split_sentences("word " * 100))
    assert split_sentences("We have plates. The poles are concrete! Is it Brazil?") == [
        "We have plates.", "The poles are concrete!", "Is it Brazil?"]
    assert to_sentence_case("i think i'm in brazil") == "I think I'm in brazil."
