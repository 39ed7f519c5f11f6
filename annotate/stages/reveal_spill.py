"""Cut the previous round's reveal talk that runs on into a round's window.

Players keep talking about a result after clicking "next round" ("oh it was Brazil, I said Peru,
two thousand kilometres"), so the first seconds of a round's window can hold the previous round's
reveal. Left in, it becomes this round's clues ("Brazil", "Peru") and reasoning. The spill is found
from what it talks about, not from a fixed guard that would also cut a round's real opening clues:

* markers: the previous round's true country (its name, demonym) or nearest city; result talk
  ("it was", "I said", "I guessed", "should have", "points", "kilometres"); any country named right
  after such a phrase ("I said Peru"); a round-start phrase ("next round", "round three");
* the spill is the stretch from the window's start to the last marker of a chain: the first marker
  within `LEAD_S` of the start, each next one within `CHAIN_GAP_S` of the previous, all inside
  `max_s` and before the guess, then on to the end of that sentence (a pause or the next opener:
  "okay", "alright", "let's" …) unless the chain ended at a round-start phrase. Those words are
  cut from the round; the cut is recorded on it (`reveal_spill`).
"""
from __future__ import annotations

import re
from dataclasses import replace
from functools import lru_cache

from annotate import gazetteer
from annotate.records import RoundInput
from annotate.text import SENTENCE_STARTERS, strip_asr_tags

LEAD_S = 4.0  # the spill starts at the window's start: its first marker comes this soon
CHAIN_GAP_S = 3.5  # markers further apart than this are not one stretch of reveal talk
PAUSE_S = 0.7  # silence this long ends a sentence of reveal talk
# talk about a result: past tense, the guess, the score
RESULT_PHRASES = ("it was", "it's actually", "was actually", "it was in", "i said", "i guessed", "i went",
                  "i clicked", "i picked", "i put", "i chose", "i thought it was", "i was thinking", "i knew it",
                  "knew it", "should have", "should've", "could have", "we were in", "that was close", "so close",
                  "not bad", "points", "kilometers", "kilometres", "km", "miles", "meters", "metres")
ROUND_START_PHRASES = ("next round", "next one", "new round", "first round", "second round", "third round",
                       "fourth round", "fifth round", "last round", "final round", "round one", "round two",
                       "round three", "round four", "round five", "round 1", "round 2", "round 3", "round 4",
                       "round 5", "moving on")
NAMED_AFTER = 3  # a country within this many tokens after a result phrase is the guess or the answer
_TOKEN = re.compile(r"[a-z0-9][a-z0-9']*")


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(gazetteer.normalize(strip_asr_tags(text)))


@lru_cache(maxsize=1)
def _country_names() -> dict[str, str]:
    """normalised country name or demonym → ISO code (languages left out: "spanish" is many countries)."""
    return {key: code for key, (code, how) in gazetteer.country_index().items() if how in ("name", "demonym")}


def _phrase_ends(tokens: list[str], phrases: tuple[str, ...]) -> list[int]:
    """Token indices where one of `phrases` ends."""
    found = []
    for phrase in phrases:
        parts = phrase.split()
        for i in range(len(tokens) - len(parts) + 1):
            if tokens[i:i + len(parts)] == parts:
                found.append(i + len(parts) - 1)
    return found


def _previous_names(previous: RoundInput | None) -> set[str]:
    """Normalised names that point at the previous round's truth: its country's names, its city."""
    from annotate.flow import truth_place  # the one definition of a round's true country and city

    if previous is None:
        return set()
    code, city = truth_place(previous)
    names = {key for key, c in _country_names().items() if c == code}
    if city:
        names.add(gazetteer.normalize(city))
    return names


def spill_markers(words: list[dict], previous: RoundInput | None) -> list[tuple[int, str]]:
    """(word index, why) of every word that belongs to talk about the previous round's result."""
    tokens, owner = [], []
    for k, w in enumerate(words):
        for t in _tokens(str(w.get("text", ""))):
            tokens.append(t)
            owner.append(k)
    markers: list[tuple[int, str]] = []
    names = _previous_names(previous)
    countries = _country_names()
    result_ends = _phrase_ends(tokens, RESULT_PHRASES)
    for end in result_ends:
        markers.append((owner[end], f"result talk '{tokens[end]}'"))
    for end in _phrase_ends(tokens, ROUND_START_PHRASES):
        markers.append((owner[end], "round start"))
    for i in range(len(tokens)):
        for n in (3, 2, 1):
            key = " ".join(tokens[i:i + n])
            if len(tokens[i:i + n]) < n:
                continue
            if key in names:
                markers.append((owner[i + n - 1], f"previous truth '{key}'"))
                break
            if key in countries and any(0 < i - e <= NAMED_AFTER for e in result_ends):
                markers.append((owner[i + n - 1], f"named after result talk '{key}'"))
                break
    return sorted(markers)


def find_reveal_spill(round_: RoundInput, previous: RoundInput | None, max_s: float) -> tuple[int, list[str]]:
    """(how many of the round's leading words are the previous round's reveal talk, the markers found)."""
    limit = min(round_.start_s + max_s, round_.guess_s)
    window = [w for w in round_.words if w["start"] < limit]
    if not window or max_s <= 0:
        return 0, []
    chain_end, last_time, last_reason, why = -1, round_.start_s, "", []
    for index, reason in spill_markers(window, previous):
        t = float(window[index]["start"])
        if t - last_time > (LEAD_S if chain_end < 0 else CHAIN_GAP_S):
            break
        if index >= chain_end:
            last_reason = reason
        chain_end, last_time = max(chain_end, index), max(last_time, float(window[index].get("end", t)))
        why.append(f"{reason}@{t:.1f}")
    if all(w.startswith("round start") for w in why):  # only "next round": nothing of the previous round
        return 0, []
    if last_reason == "round start":  # a round-start phrase is where the spill ends
        return chain_end + 1, why
    return _utterance_end(window, chain_end) + 1, why


def _utterance_end(window: list[dict], index: int) -> int:
    """The last word of the sentence holding word `index`: up to a pause or the next sentence opener
    ("okay", "alright", "let's" …), when one comes within `CHAIN_GAP_S`; else `index` itself."""
    marker_end = float(window[index].get("end", window[index]["start"]))
    for k in range(index + 1, len(window)):
        previous_end = float(window[k - 1].get("end", window[k - 1]["start"]))
        if float(window[k]["start"]) - marker_end > CHAIN_GAP_S:
            break
        pause = float(window[k]["start"]) - previous_end >= PAUSE_S
        if pause or _opens_sentence(window, k):
            return k - 1
    return index


def _opens_sentence(window: list[dict], k: int) -> bool:
    said = " ".join(str(w.get("text", "")) for w in window[k:k + 2]).lower()
    return any(said == s or said.startswith(s + " ") for s in SENTENCE_STARTERS)


def cut_reveal_spill(rounds: list[RoundInput], max_s: float) -> list[RoundInput]:
    """The rounds with each one's leading spill of the previous round's reveal talk removed from `words`
    (recorded in `reveal_spill`). A round's previous round is the one before it in its video."""
    by_video: dict[str, list[RoundInput]] = {}
    for r in rounds:
        by_video.setdefault(r.video_id, []).append(r)
    cut: dict[str, RoundInput] = {}
    for video_rounds in by_video.values():
        ordered = sorted(video_rounds, key=lambda r: r.start_s)
        for previous, current in zip([None, *ordered[:-1]], ordered):
            words = sorted(current.words, key=lambda w: w["start"])
            count, why = find_reveal_spill(replace(current, words=words), previous, max_s)
            if count:
                spill = words[:count]
                cut[current.id] = replace(current, words=words[count:], reveal_spill={
                    "until_s": float(spill[-1].get("end", spill[-1]["start"])),
                    "text": " ".join(str(w["text"]) for w in spill), "markers": why})
    return [cut.get(r.id, r) for r in rounds]
