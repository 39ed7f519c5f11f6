"""Answer-guided reasoning: rewrite an expert's pre-reveal commentary into concise first-person reasoning.

The NaviClues paper gave GPT-4o the true country and coordinates together with the player's
transcript and asked for a concise first-person reasoning that keeps only the visual clues the
player mentioned. Three backends share one interface, `ReasoningWriter.write(request) -> (text, source)`:

* `openai`       any OpenAI-compatible `/v1/chat/completions` server (requests); retries with
                 backoff on 429/5xx (tenacity); responses cached on disk by (model, hash of server URL + request);
                 the API key is read from the env var named in the config at send time and never
                 logged, cached or returned;
* `transformers` a local causal LM by hub id or path (chat template when the tokenizer has one);
* `extractive`   the offline default (the name is kept for configs; it rewrites, it does not
                 only extract): each visual clue of the pre-reveal talk stated in the first person
                 with what it implies about the true place, wrong turns dropped, ending with the
                 true country and where in it (`annotate.stages.offline_rewrite`).

`source` names backend and model: "extractive", "openai:gpt-4o", "transformers:/path/to/model".
`rewrite(writer, request)` is the per-round entry point: it returns a `ReasoningResult` with an
error message instead of raising.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import requests
from tenacity import RetryCallState, retry, retry_if_exception, stop_after_attempt, wait_exponential

from annotate import gazetteer
from annotate.config import CluesConfig, ReasoningConfig
from annotate.records import Clue
from annotate.stages.offline_rewrite import ReasoningStyle, compose
from annotate.text import strip_asr_tags
from naviclues.api_keys import api_key_for
from naviclues.fsutil import atomic_write_json

if TYPE_CHECKING:
    from annotate.stages.clues import ClueExtractor

log = logging.getLogger(__name__)

SYSTEM_PROMPT = (
    "You are an expert GeoGuessr player who explains, in the first person, how the visual clues in a "
    "Street View image point to its location."
)

USER_TEMPLATE = """Below is the spoken commentary of a GeoGuessr player looking at a Street View location, \
transcribed automatically (it may contain filler words and recognition errors). The true location is \
{country} (latitude {lat:.4f}, longitude {lng:.4f}).

Rewrite the commentary as a concise reasoning in the first person, as if you were looking at the image \
yourself. Use only the visual clues the player mentions (for example: {clue_list}). Reason from those clues \
towards the true location, and do not state anything that could not be derived from the image itself — no \
knowledge of the answer, the score, the map or the player's guess. Correct the player's conclusion where it \
was wrong, using only the clues. Write one paragraph of about 120–160 words.

Commentary:
\"\"\"{transcript}\"\"\""""


@dataclass
class ReasoningRequest:
    transcript: str  # pre-reveal commentary only
    country: str | None
    lat: float
    lng: float
    clues: list[Clue] = field(default_factory=list)
    country_code: str | None = None
    city: str | None = None
    round_id: str = ""  # names the round in error messages


@dataclass
class ReasoningResult:
    round_id: str
    text: str | None
    source: str
    error: str | None = None


class ReasoningWriter(Protocol):
    source: str

    def write(self, request: ReasoningRequest) -> tuple[str, str]: ...


class ReasoningError(RuntimeError):
    pass


def build_messages(request: ReasoningRequest, max_transcript_chars: int = 6000) -> list[dict[str, str]]:
    clue_names = []
    for clue in request.clues:
        name = clue.text.lower()
        if clue.category not in ("country", "demonym", "city", "region") and name not in clue_names:
            clue_names.append(name)
    clue_list = ", ".join(clue_names[:12]) or "road markings, signs, vegetation"
    transcript = strip_asr_tags(request.transcript)[:max_transcript_chars]
    place = request.country or "unknown country"
    if request.city:
        place = f"{request.city}, {place}"
    user = USER_TEMPLATE.format(country=place, lat=request.lat, lng=request.lng, clue_list=clue_list,
                                transcript=transcript)
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def rewrite(writer: ReasoningWriter, request: ReasoningRequest) -> ReasoningResult:
    """One round's reasoning, or the error that prevented it (named with the round id)."""
    try:
        text, source = writer.write(request)
    except Exception as exc:  # per-item: record and go on
        return ReasoningResult(request.round_id, None, writer.source,
                               error=f"round {request.round_id}: {type(exc).__name__}: {exc}")
    if not text.strip():
        return ReasoningResult(request.round_id, None, source, error=f"round {request.round_id}: empty reasoning")
    return ReasoningResult(request.round_id, text.strip(), source)


# --- extractive ---------------------------------------------------------------------------------

class ExtractiveWriter:
    """Offline answer-guided reasoning from the transcript and the true place (no model)."""

    source = "extractive"

    def __init__(self, config: ReasoningConfig | None = None, clue_extractor: ClueExtractor | None = None, *,
                 clues_config: CluesConfig | None = None, style: ReasoningStyle | None = None):
        """`clue_extractor`: reuse the flow's extractor (one spaCy pipeline, the configured clue settings);
        without one, a `ClueExtractor(clues_config)` is built on first use. `style`: length and clue
        order (`offline_rewrite.fit_style`); default: the paper's shape at `config.target_chars`."""
        self.config = config or ReasoningConfig()
        self.style = style
        self.clues_config = clues_config
        self._clue_extractor = clue_extractor

    @property
    def clue_extractor(self) -> ClueExtractor:
        if self._clue_extractor is None:
            from annotate.stages.clues import ClueExtractor  # lazy: spaCy loads once, when first needed
            self._clue_extractor = ClueExtractor(self.clues_config)
        return self._clue_extractor

    def _extract(self, text: str) -> list[Clue]:
        return self.clue_extractor.extract_text(text)

    def write(self, request: ReasoningRequest) -> tuple[str, str]:
        code = request.country_code
        if not code and request.country:
            resolved = gazetteer.resolve_country(request.country)
            code = resolved.code if resolved else None
        city, setting = true_surroundings(request.lat, request.lng, code)
        if request.city is not None:
            city = request.city
        style = self.style or ReasoningStyle(target_chars=self.config.target_chars)
        country = request.country if self.config.extractive_conclusion else None
        text = compose(request.transcript, self._extract, country, code, request.lat, request.lng, city, style,
                       setting=setting)
        return text, self.source


NEARBY_CITY_KM = 60.0  # a city this close names where the round is ("near Cuenca")
URBAN_KM, URBAN_POPULATION = 8.0, 300_000  # inside a big city: an urban scene


def true_surroundings(lat: float | None, lng: float | None, code: str | None) -> tuple[str | None, str | None]:
    """(nearest sizeable city when close and in the true country, "urban" | "rural" | None) of the true point."""
    if lat is None or lng is None or (lat == 0.0 and lng == 0.0):
        return None, None
    from annotate.reverse import default_geocoder

    geocoder = default_geocoder()
    dist, idx = geocoder.search([lat], [lng], k=1)
    place, km = geocoder.places[int(idx[0, 0])], float(dist[0, 0])
    if code is not None and place.country_code != code:
        return None, None
    setting = "urban" if km <= URBAN_KM and place.population >= URBAN_POPULATION else "rural"
    return (place.name if km <= NEARBY_CITY_KM else None), setting


# --- OpenAI-compatible server -------------------------------------------------------------------


class HTTPStatusError(RuntimeError):
    def __init__(self, status: int, body: str):
        super().__init__(f"HTTP {status}: {body[:200]}")
        self.status = status


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, HTTPStatusError):
        return exc.status == 429 or exc.status >= 500
    return isinstance(exc, (requests.ConnectionError, requests.Timeout))


class OpenAIChatWriter:
    """Any server speaking OpenAI's `POST {base_url}/chat/completions`."""

    def __init__(self, config: ReasoningConfig, session: requests.Session | None = None):
        if not config.model:
            raise ValueError("reasoning.model is required for the openai backend")
        self.config = config
        self.session = session or requests.Session()
        self.source = f"openai:{config.model}"
        self.cache_dir = Path(config.cache_dir) if config.cache_dir else None
        self.requests_sent = 0

    def payload(self, request: ReasoningRequest) -> dict[str, Any]:
        return {"model": self.config.model, "messages": build_messages(request),
                "temperature": self.config.temperature, "max_tokens": self.config.max_tokens}

    def cache_key(self, payload: dict[str, Any]) -> str:
        # the server is part of the key (two servers may serve different models under one name); the API
        # key is not: it is a secret and does not change the answer
        keyed = {"base_url": self.config.base_url.rstrip("/"), "payload": payload}
        blob = json.dumps(keyed, sort_keys=True, ensure_ascii=False).encode("utf-8")
        return hashlib.sha256(blob).hexdigest()

    def _cache_path(self, payload: dict[str, Any]) -> Path | None:
        if self.cache_dir is None:
            return None
        from naviclues.fsutil import safe_name
        return self.cache_dir / safe_name(str(self.config.model)) / f"{self.cache_key(payload)}.json"

    def write(self, request: ReasoningRequest) -> tuple[str, str]:
        payload = self.payload(request)
        cache_path = self._cache_path(payload)
        if cache_path is not None and cache_path.exists():
            try:
                cached = json.loads(cache_path.read_text("utf-8"))
                return cached["text"], self.source
            except (OSError, ValueError, KeyError) as exc:
                log.warning("round %s: unreadable cache entry %s (%s); asking the server again",
                            request.round_id, cache_path.name, exc)
        text = self._post(payload)
        if cache_path is not None:
            # only the model name, the cache key and the answer: never the API key, headers or server URL
            atomic_write_json(cache_path, {"model": self.config.model, "cache_key": self.cache_key(payload),
                                           "text": text})
        return text, self.source

    def _post(self, payload: dict[str, Any]) -> str:
        url = self.config.base_url.rstrip("/") + "/chat/completions"
        api_key = api_key_for(self.config.base_url, self.config.api_key_env)  # OPENAI_API_KEY: api.openai.com only

        def log_retry(state: RetryCallState) -> None:
            log.warning("chat completion attempt %d failed (%s); retrying", state.attempt_number,
                        state.outcome.exception() if state.outcome else "?")

        @retry(retry=retry_if_exception(_retryable), stop=stop_after_attempt(max(1, self.config.retries)),
               wait=wait_exponential(multiplier=self.config.backoff_s, max=30), before_sleep=log_retry, reraise=True)
        def send() -> str:
            headers = {"Content-Type": "application/json"}
            if api_key:
                headers["Authorization"] = f"Bearer {api_key}"
            self.requests_sent += 1
            response = self.session.post(url, json=payload, headers=headers, timeout=self.config.timeout_s)
            if response.status_code != 200:
                raise HTTPStatusError(response.status_code, response.text)
            try:
                body = response.json()
                return body["choices"][0]["message"]["content"] or ""
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                raise ReasoningError(f"malformed chat completion response: {response.text[:200]!r}") from exc

        return send()


# --- local transformers model -------------------------------------------------------------------


class TransformersWriter:
    """A local causal LM (hub id or path); greedy decoding unless temperature > 0."""

    def __init__(self, config: ReasoningConfig):
        if not config.model:
            raise ValueError("reasoning.model is required for the transformers backend")
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.config = config
        self.source = f"transformers:{config.model}"
        self.tokenizer = AutoTokenizer.from_pretrained(config.model)
        self.model = AutoModelForCausalLM.from_pretrained(config.model)
        self.model.to(config.device)
        self.model.eval()

    def prompt_ids(self, request: ReasoningRequest):
        messages = build_messages(request)
        if getattr(self.tokenizer, "chat_template", None):
            encoded = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                                         return_dict=True)
            return encoded["input_ids"], encoded.get("attention_mask")
        text = "\n\n".join(m["content"] for m in messages) + "\n\nReasoning:"
        encoded = self.tokenizer(text, return_tensors="pt")
        return encoded["input_ids"], encoded.get("attention_mask")

    def fitted_prompt_ids(self, request: ReasoningRequest):
        """Prompt ids that leave room for `max_tokens` in the model's context. A long round gives up the
        start of its transcript (the end, nearest the guess, holds the conclusion); the instructions and
        the answer are never cut."""
        input_ids, attention_mask = self.prompt_ids(request)
        limit = getattr(self.model.config, "max_position_embeddings", None)
        if not limit:
            return input_ids, attention_mask
        for _ in range(8):  # token counts of a re-tokenised text shift a little: a few rounds converge
            over = input_ids.shape[1] + self.config.max_tokens - limit
            if over <= 0:
                return input_ids, attention_mask
            transcript_ids = self.tokenizer(request.transcript, add_special_tokens=False)["input_ids"]
            if len(transcript_ids) <= over:
                break
            shorter = self.tokenizer.decode(transcript_ids[over + 8:], skip_special_tokens=True)
            request = replace(request, transcript=shorter)
            input_ids, attention_mask = self.prompt_ids(request)
        raise ValueError(f"prompt of {input_ids.shape[1]} tokens + max_tokens {self.config.max_tokens} does not fit "
                         f"the model's {limit}-token context even without the transcript; lower reasoning.max_tokens")

    def write(self, request: ReasoningRequest) -> tuple[str, str]:
        import torch

        input_ids, attention_mask = self.fitted_prompt_ids(request)
        kwargs: dict[str, Any] = {"max_new_tokens": self.config.max_tokens}
        if self.config.temperature > 0:
            kwargs.update(do_sample=True, temperature=self.config.temperature)
        else:
            kwargs.update(do_sample=False)
        if self.tokenizer.pad_token_id is None and self.tokenizer.eos_token_id is not None:
            kwargs["pad_token_id"] = self.tokenizer.eos_token_id
        with torch.no_grad():
            output = self.model.generate(input_ids=input_ids.to(self.model.device),
                                         attention_mask=None if attention_mask is None else attention_mask.to(self.model.device),
                                         **kwargs)
        text = self.tokenizer.decode(output[0, input_ids.shape[1]:], skip_special_tokens=True)
        return text.strip(), self.source


def make_writer(config: ReasoningConfig | None = None, *, clue_extractor: ClueExtractor | None = None,
                clues_config: CluesConfig | None = None) -> ReasoningWriter:
    """The configured backend. The extractive one reuses `clue_extractor` when given (else builds one lazily
    from `clues_config`); the model backends ignore both."""
    config = config or ReasoningConfig()
    if config.backend == "openai":
        return OpenAIChatWriter(config)
    if config.backend == "transformers":
        return TransformersWriter(config)
    return ExtractiveWriter(config, clue_extractor, clues_config=clues_config)
