"""The previous round's reveal talk running on into a round's window ("oh it was Brazil I said Peru",
3–8 s after the next round started) is cut before clues and reasoning are made from the round."""
from __future__ import annotations

import pytest

from annotate.config import ReasoningConfig
from annotate.records import RoundInput
from annotate.stages.clues import ClueExtractor
from annotate.stages.reasoning import ReasoningRequest, make_writer, rewrite
from annotate.stages.reveal_spill import cut_reveal_spill
from collect_folder import PLACES, WORD_S

BRAZIL, JAPAN = PLACES[0], PLACES[1]
SPILLS = {  # seconds of reveal talk at the start of the next round's window
    3: "oh it was Brazil I said Peru damn",
    5: "oh wow it was Brazil I said Peru that's like two thousand kilometers off",
    8: "oh it was Brazil I said Peru that's two thousand kilometers off I should have gone with the red soil damn",
}


def _words(text: str, start_s: float) -> list[dict]:
    return [{"text": w, "start": round(start_s + i * WORD_S, 3), "end": round(start_s + (i + 0.8) * WORD_S, 3)}
            for i, w in enumerate(text.split())]


def _round(number: int, place, words: list[dict], start_s: float, guess_s: float, known_truth: bool = True):
    return RoundInput(id=f"v/{number}", video_id="v", channel="c", video_url="u", challenge_token="t", round=number,
                      start_s=start_s, guess_s=guess_s, end_s=guess_s + 10, words=words,
                      lat=place.lat if known_truth else None, lng=place.lng if known_truth else None,
                      country_code=place.country_code if known_truth else None)


def _two_rounds(opening: str, known_truth: bool = True) -> tuple[RoundInput, RoundInput]:
    first = _round(1, BRAZIL, _words(BRAZIL.talk, 1.0) + _words("oh it was Brazil nice", 40.0), 0.0, 39.0,
                   known_truth)
    words = _words(opening, 60.5) if opening else []
    talk_start = (words[-1]["end"] + 0.2) if words else 60.5
    words += _words(JAPAN.talk, talk_start)
    second = _round(2, JAPAN, words, 60.0, talk_start + len(JAPAN.talk.split()) * WORD_S + 2, known_truth)
    return first, second


@pytest.fixture(scope="module")
def extractor():
    return ClueExtractor()


@pytest.mark.parametrize("seconds", sorted(SPILLS))
def test_reveal_talk_spilling_into_the_next_round_reaches_neither_clues_nor_reasoning(seconds, extractor):
    spill = SPILLS[seconds]
    first, second = _two_rounds(spill)
    assert second.words[len(spill.split()) - 1]["end"] - second.start_s >= seconds  # it really runs that long

    kept_first, cut = cut_reveal_spill([first, second], max_s=15.0)

    assert kept_first == first  # nothing before round 1 to spill
    assert " ".join(w["text"] for w in cut.words) == " ".join(w["text"] for w in second.words[len(spill.split()):])
    assert cut.reveal_spill["text"] == spill and cut.reveal_spill["markers"]
    pre_reveal = [w for w in cut.words if w["start"] < cut.guess_s]
    clues = extractor.extract(pre_reveal)
    assert {c.entity for c in clues if c.entity} == {"JP"}, [(c.text, c.entity) for c in clues]
    assert not any(c.start_s < cut.words[0]["start"] for c in clues)
    writer = make_writer(ReasoningConfig(), clue_extractor=extractor)
    written = rewrite(writer, ReasoningRequest(country="Japan", country_code="JP", city=None, lat=JAPAN.lat,
                                               lng=JAPAN.lng, transcript=cut.pre_reveal_text(), clues=clues,
                                               round_id=cut.id))
    assert written.error is None and written.text
    for leaked in ("brazil", "peru", "kilometers", "soil"):
        assert leaked not in written.text.lower() and leaked not in cut.pre_reveal_text().lower()


def test_spill_is_found_without_the_previous_truth():
    # the previous round has no truth (a malformed API entry): the result talk alone marks the spill
    first, second = _two_rounds(SPILLS[5], known_truth=False)
    _, cut = cut_reveal_spill([first, second], max_s=15.0)
    assert cut.reveal_spill["text"] == SPILLS[5]


@pytest.mark.parametrize("opening", [
    "",  # the round's own talk from its first word
    "this is not Brazil and not Peru",  # countries ruled out are this round's reasoning
    "okay round two",  # a round-start phrase alone is no spill of the previous round
])
def test_a_rounds_own_opening_talk_is_kept(opening):
    first, second = _two_rounds(opening)
    first = _round(1, PLACES[2], first.words, first.start_s, first.guess_s)  # previous truth: Kenya
    _, cut = cut_reveal_spill([first, second], max_s=15.0)
    assert cut == second  # nothing cut, nothing recorded


def test_spill_ends_at_a_round_start_phrase():
    first, second = _two_rounds("it was Brazil I said Peru anyway next round")
    _, cut = cut_reveal_spill([first, second], max_s=15.0)
    assert cut.reveal_spill["text"] == "it was Brazil I said Peru anyway next round"
    assert " ".join(w["text"] for w in cut.words) == JAPAN.talk


def test_spill_cut_can_be_switched_off():
    first, second = _two_rounds(SPILLS[3])
    assert cut_reveal_spill([first, second], max_s=0.0) == [first, second]
