"""Typed configuration of the annotate flow (rounds → dataset).

Defaults follow the NaviClues paper's filters (no moving, time limit ≥ 30 s or none, ≥ 100
pre-reveal words, ≥ 3400 points). The section lives under `annotate:` in the collect config file;
`load_annotate_config` validates that dict. API keys are never stored here: `reasoning.api_key_env`
names the environment variable that holds one, read only when a request is sent.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)  # `--set annotate.reasoning.model=123`


class CluesConfig(_Section):
    spacy_model: str = Field("en_core_web_sm", description="spaCy pipeline name or path; blank English when not installed")
    min_city_population: int = Field(50000, description="cities at least this big become entity patterns")


class GeoparseConfig(_Section):
    min_city_population: int = Field(15000, description="smallest city a mention may resolve to")
    min_single_word_city_population: int = Field(100000, description="one-word city names must be this big (fewer common-word clashes)")


class FilterConfig(_Section):
    min_time_limit_s: int = Field(30, description="rounds with a time limit below this are dropped; 0 = no limit is always fine")
    min_words: int = Field(100, description="pre-reveal transcript words")
    min_points: int = 3400
    allow_moving: bool = Field(False, description="False drops rounds where moving was allowed")
    require_english: bool = True
    truth_must_agree: bool = Field(True, description="drop rounds whose truth the evidence contradicts: the result "
                                   "screen's points/distance or the OCR'd round counter against the API round "
                                   "attached, or the talk's country with no screen evidence for the truth")
    reveal_spill_max_s: float = Field(15.0, ge=0, description="how far into a round the previous round's reveal talk "
                                      "is looked for (and cut from its clues and reasoning); 0 = never cut")
    transcript_must_agree: bool = Field(False, description="stricter: also drop rounds whose talk confidently names "
                                        "another country than the truth even when the screen agrees with it")
    transcript_min_confidence: float = Field(0.6, description="geoparse confidence above which a disagreement drops "
                                             "the round (with transcript_must_agree)")
    min_english_stopword_ratio: float = Field(0.2, description="share of tokens that are English stop words")


class ReasoningConfig(_Section):
    backend: Literal["extractive", "openai", "transformers"] = "extractive"
    model: str | None = Field(None, description="openai: model name; transformers: hub id or local path")
    base_url: str = Field("https://api.openai.com/v1", description="OpenAI-compatible server root (…/v1)")
    api_key_env: str = Field("OPENAI_API_KEY", description="name of the env var holding the API key; OPENAI_API_KEY "
                             "is sent to https://api.openai.com only (naviclues.api_keys), name another for another server")
    cache_dir: Path | None = Field(None, description="response cache (keyed by model + prompt hash)")
    temperature: float = 0.0
    max_tokens: int = 400
    timeout_s: float = 60.0
    retries: int = 5
    backoff_s: float = 1.0
    target_chars: int = Field(840, description="extractive: aim near the paper's mean reasoning length")
    extractive_conclusion: bool = Field(True, description="extractive: end with one sentence naming the true place")
    device: str = "cpu"


class BuildConfig(_Section):
    """Split settings handed to annotate.build.build_dataset (same defaults)."""

    seed: int = 0
    test_fraction: float | None = Field(None, description="share of challenges in test; None = test_challenges")
    max_test_fraction: float | None = Field(0.2, description="cap on the test share when test_challenges is used; None = no cap")
    test_challenges: int = Field(50, description="challenges held out for test when test_fraction is None")
    validation_fraction: float = 0.0


class AnnotateConfig(_Section):
    clues: CluesConfig = Field(default_factory=CluesConfig)
    geoparse: GeoparseConfig = Field(default_factory=GeoparseConfig)
    filter: FilterConfig = Field(default_factory=FilterConfig)
    reasoning: ReasoningConfig = Field(default_factory=ReasoningConfig)
    build: BuildConfig = Field(default_factory=BuildConfig)


def load_annotate_config(data: dict[str, Any] | None = None) -> AnnotateConfig:
    """Validate the `annotate:` section of a collect config (a plain dict)."""
    return AnnotateConfig.model_validate(data or {})
