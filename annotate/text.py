"""Transcript cleaning for auto-captions: ASR tags, filler, stutters, sentences without punctuation.

YouTube auto-captions arrive lowercase or sentence-less, with tags like "[Music]" and "[ __ ]"
(a bleeped word) and plenty of "um", "uh", "you know". Nothing here invents words: cleaning only
removes tags, filler and immediate repetitions, and splitting only chooses where sentences end.
"""
from __future__ import annotations

import re

ASR_TAG = re.compile(r"\[[^\]]*\]|\([^)]*(?:music|applause|laughter|inaudible)[^)]*\)|>>", re.IGNORECASE)

# Always filler, wherever they appear.
FILLER_WORDS = frozenset({"um", "uh", "uhm", "umm", "uhh", "erm", "er", "ehm", "hmm", "hm", "mm", "mhm", "mmm", "ah", "eh"})
# Filler phrases (removed as a whole; "like" alone is kept because "looks like Spain" is content).
FILLER_PHRASES = ("you know what i mean", "you know", "i mean", "sort of", "kind of", "kinda", "you see")
_FILLER_PHRASE_RE = re.compile(r"\b(?:" + "|".join(re.escape(p) for p in FILLER_PHRASES) + r")\b,?\s*", re.IGNORECASE)
_FILLER_WORD_RE = re.compile(r"\b(?:" + "|".join(sorted(FILLER_WORDS, key=len, reverse=True)) + r")\b[,.]?\s*", re.IGNORECASE)
# "like" as filler: doubled, or right after a filler/comma, or between two function words
_FILLER_LIKE_RE = re.compile(r"\b(?:like\s+){2,}|(?<=,)\s*like\b,?|\blike,\s*", re.IGNORECASE)
_REPEAT_RE = re.compile(r"\b(\w+(?:\s+\w+){0,2})(?:\s+\1\b)+", re.IGNORECASE)
_SPACES = re.compile(r"\s+")

# Where an unpunctuated spoken sentence usually starts.
SENTENCE_STARTERS = ("okay", "ok", "alright", "all right", "so", "but", "and then", "now", "oh", "well", "also",
                     "i think", "i'm going", "i'm gonna", "let's", "maybe", "actually")
_STARTER_RE = re.compile(r"^(?:" + "|".join(re.escape(s) for s in SENTENCE_STARTERS) + r")\b", re.IGNORECASE)
_PUNCT_SENT = re.compile(r"(?<=[.!?])\s+(?=\S)")


def strip_asr_tags(text: str) -> str:
    """'[Music] okay so [ __ ] this' → 'okay so this'."""
    return _SPACES.sub(" ", ASR_TAG.sub(" ", text or "")).strip()


def is_asr_tag(token: str) -> bool:
    token = (token or "").strip()
    return bool(token) and (bool(ASR_TAG.fullmatch(token)) or token in {"[", "]", "__", "[__]"})


def is_filler(token: str) -> bool:
    return re.sub(r"[^\w']", "", (token or "").lower()) in FILLER_WORDS


def remove_fillers(text: str) -> str:
    """Drop filler words and phrases and immediate repetitions ('the the', 'i think i think')."""
    text = _FILLER_PHRASE_RE.sub("", text)
    text = _FILLER_WORD_RE.sub("", text)
    text = _FILLER_LIKE_RE.sub(" ", text)
    previous = None
    while previous != text:
        previous = text
        text = _REPEAT_RE.sub(r"\1", text)
    return _SPACES.sub(" ", text).strip(" ,")


def clean(text: str) -> str:
    return remove_fillers(strip_asr_tags(text))


def has_punctuation(text: str) -> bool:
    """True when the text carries sentence punctuation worth trusting (≥ 1 end mark per 40 words)."""
    words = len(text.split())
    marks = len(re.findall(r"[.!?](?:\s|$)", text))
    return words > 0 and marks * 40 >= words


def split_sentences(text: str, max_words: int = 28, min_words: int = 5) -> list[str]:
    """Sentences of a transcript; punctuation when present, else discourse markers and a length cap.

    Auto-captions have no full stops, so a new sentence starts at a typical spoken opener
    ("okay", "so", "but", "i think", …) once the current one has `min_words`, and is cut at
    `max_words` regardless.
    """
    text = strip_asr_tags(text)
    if not text:
        return []
    if has_punctuation(text):
        return [s.strip() for s in _PUNCT_SENT.split(text) if s.strip()]
    words = text.split()
    sentences: list[list[str]] = [[]]
    for i, word in enumerate(words):
        current = sentences[-1]
        rest = " ".join(words[i:i + 3])
        if current and ((len(current) >= min_words and _STARTER_RE.match(rest)) or _long_enough(current, word, max_words)):
            sentences.append([])
        sentences[-1].append(word)
    return [" ".join(s) for s in sentences if s]


# words a phrase goes on through: a length cut never leaves one at the end of a sentence or the start of the next
_BINDING_WORDS = frozenset("a an the of in on at to for from with by and or but is are was were be this that these "
                           "those my our your its their very really so like every each some any many no all lots "
                           "more most".split())


def _long_enough(current: list[str], next_word: str, max_words: int) -> bool:
    """Cut at `max_words`, but between two content words ("the sun is in the | south" would lose its
    phrase); twice the cap cuts anyway."""
    if len(current) >= 2 * max_words:
        return True
    return (len(current) >= max_words and current[-1].lower() not in _BINDING_WORDS
            and next_word.lower() not in _BINDING_WORDS)


_LEADING_MARKER = re.compile(r"^(?:(?:okay|ok|so|but|and|oh|well|yeah|alright|all right|now|right|wait)\b[\s,]*)+",
                             re.IGNORECASE)
_DANGLING_END = re.compile(r"(?:[\s,]+\b(?:and|but|so|or|the|a|an|of|to|like|because|which|that|is|with|in|on)\b)+$",
                           re.IGNORECASE)


def tidy_spoken(sentence: str) -> str:
    """Drop leading discourse markers ("okay so but …") and a dangling last word ("… and")."""
    s = _LEADING_MARKER.sub("", sentence.strip(" ,"))
    return _DANGLING_END.sub("", s).strip(" ,")


def to_sentence_case(sentence: str) -> str:
    """Capitalise the first letter and the pronoun 'i', end with a full stop."""
    s = sentence.strip(" ,")
    if not s:
        return s
    s = re.sub(r"\bi\b", "I", s)
    s = re.sub(r"\bi'(m|ll|d|ve)\b", lambda m: "I'" + m.group(1), s)
    s = s[0].upper() + s[1:]
    return s if s[-1] in ".!?" else s + "."
