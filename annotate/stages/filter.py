"""The NaviClues paper's round filters, plus checks for malformed rounds.

`apply_filters(round, config)` returns the reasons a round is dropped (empty list = keep):

* malformed: no truth coordinates, empty transcript, no frames;
* truth: the evidence the truth was attached by (`annotate.truth`) contradicts it — the result
  screen's points or distance, or the OCR'd round counter, against the API round; or the talk's
  country with nothing on screen for the truth (`truth_must_agree`, on by default);
* paper filters (defaults in `FilterConfig`): moving allowed, a time limit under 30 s (0 or
  None means no limit, which is fine), fewer than 100 pre-reveal words, fewer than 3400 points;
* language: the pre-reveal transcript must read as English. The check is a stop-word ratio:
  the share of tokens that are among spaCy's English stop words ("the", "is", "we", …).
  Running English speech sits around 0.45–0.6; other languages written in Latin script fall
  well below 0.2 (they share few of these words), and non-Latin scripts score ~0.
"""
from __future__ import annotations

import re

from spacy.lang.en.stop_words import STOP_WORDS

from annotate.config import AnnotateConfig, FilterConfig
from annotate.records import RoundInput
from annotate.text import is_asr_tag, strip_asr_tags

_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?", re.UNICODE)


def english_stopword_ratio(text: str) -> float:
    tokens = _WORD.findall(strip_asr_tags(text).lower())
    if not tokens:
        return 0.0
    return sum(t in STOP_WORDS for t in tokens) / len(tokens)


def pre_reveal_words(round_: RoundInput) -> list[str]:
    return [str(w.get("text", "")) for w in round_.words
            if w.get("start") is not None and w["start"] < round_.guess_s and str(w.get("text", "")).strip()
            and not is_asr_tag(str(w.get("text", "")))]


def apply_filters(round_: RoundInput, config: AnnotateConfig | FilterConfig | None = None) -> list[str]:
    """Drop reasons of a round (empty = keep). Reasons are stable categories so the card can count them."""
    cfg = config.filter if isinstance(config, AnnotateConfig) else (config or FilterConfig())
    reasons: list[str] = []
    evidence = round_.truth_evidence or {}
    if round_.lat is None or round_.lng is None:
        reasons.append("no truth: no challenge round matches this segment" if evidence.get("verdict") == "unmatched"
                       else "no truth: lat/lng missing")
    elif cfg.truth_must_agree and evidence.get("verdict") == "disagrees":
        reasons += list(evidence.get("mismatch_reasons") or [])
    words = pre_reveal_words(round_)
    if not any(str(w.get("text", "")).strip() for w in round_.words):
        reasons.append("empty transcript")
    if not round_.frames:
        reasons.append("no frames")
    if round_.forbid_moving is False and not cfg.allow_moving:
        reasons.append("moving allowed")
    if round_.time_limit_s and round_.time_limit_s < cfg.min_time_limit_s:
        reasons.append(f"time limit < {cfg.min_time_limit_s} s")
    if len(words) < cfg.min_words:
        reasons.append(f"pre-reveal words < {cfg.min_words}")
    if cfg.min_points and (round_.points is None or round_.points < cfg.min_points):
        reasons.append(f"points < {cfg.min_points}" if round_.points is not None else "points unknown")
    if cfg.require_english and words:
        ratio = english_stopword_ratio(" ".join(words))
        if ratio < cfg.min_english_stopword_ratio:
            reasons.append(f"not English (stop-word ratio < {cfg.min_english_stopword_ratio})")
    return reasons


def transcript_disagreement(concluded: str | None, confidence: float, truth_code: str | None,
                            config: AnnotateConfig | FilterConfig | None = None) -> list[str]:
    """Drop reason when a round's talk confidently concludes another country than its truth (with
    `filter.transcript_must_agree`): the segment may hold another round's talk."""
    cfg = config.filter if isinstance(config, AnnotateConfig) else (config or FilterConfig())
    if (not cfg.transcript_must_agree or not concluded or not truth_code or concluded == truth_code
            or confidence < cfg.transcript_min_confidence):
        return []
    return [f"transcript names another country: {concluded} (confidence {confidence:.2f}), truth {truth_code}"]
