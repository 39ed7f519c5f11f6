import pytest

from annotate.config import AnnotateConfig, FilterConfig, load_annotate_config
from annotate.records import Clue, RoundInput
from annotate.stages.align import align_clues, nearest_frame
from annotate.stages.filter import apply_filters, english_stopword_ratio, transcript_disagreement

ENGLISH = ("okay so we have yellow plates here and the road lines are white i think this could be somewhere in "
           "the north of the country because the trees look like they are from a colder place and there is a "
           "sign that is in a language i can read so it is not too far from where we started ")


def test_nearest_frame_inside_round_window():
    frame_times = [100.0, 103.0, 106.0, 109.0, 130.0]  # the 130 s frame is after the guess
    assert nearest_frame(frame_times, 104.0, 100.0, 120.0) == 1
    assert nearest_frame(frame_times, 104.5, 100.0, 120.0) == 1  # tie → earlier frame
    assert nearest_frame(frame_times, 125.0, 100.0, 120.0) == 3  # never a frame past the guess
    assert nearest_frame([], 104.0, 100.0, 120.0) is None


def test_align_drops_reveal_and_untimed_clues():
    clues = [Clue("yellow plates", "licence_plate", start_s=101.0, end_s=102.0),
             Clue("bollard", "bollard", start_s=108.4, end_s=108.8),
             Clue("Spain", "country", "ES", start_s=119.5, end_s=120.5),  # midpoint at the guess
             Clue("Key West", "city", "US", start_s=125.0, end_s=126.0),  # after the reveal
             Clue("sign", "sign"),  # no time: cannot be placed before the reveal
             Clue("intro", "sign", start_s=50.0, end_s=51.0)]  # before the round
    aligned = align_clues(clues, [100.0, 103.0, 106.0, 109.0], start_s=100.0, guess_s=120.0)
    assert [(c.text, c.frame_index) for c in aligned] == [("yellow plates", 0), ("bollard", 3)]
    assert clues[0].frame_index is None  # inputs are not mutated


def make_round(**overrides) -> RoundInput:
    words = [{"text": w, "start": 10.0 + i * 0.3, "end": 10.2 + i * 0.3} for i, w in enumerate((ENGLISH * 3).split())]
    words.append({"text": "revealed", "start": 500.0, "end": 500.5})
    base = dict(id="vid/1", video_id="vid", channel="ch", video_url="https://youtu.be/vid", challenge_token="tok",
                round=1, start_s=10.0, guess_s=200.0, end_s=520.0, words=words, lat=10.0, lng=20.0, points=4500,
                time_limit_s=0, forbid_moving=True, frames=["/f/0.jpg"], frame_times_s=[12.0])
    base.update(overrides)
    return RoundInput(**base)


def test_a_good_round_passes():
    assert apply_filters(make_round(), AnnotateConfig()) == []
    assert apply_filters(make_round(time_limit_s=60), FilterConfig()) == []
    assert apply_filters(make_round(time_limit_s=None)) == []


@pytest.mark.parametrize("overrides, reason", [
    (dict(lat=None), "no truth"),
    (dict(words=[]), "empty transcript"),
    (dict(frames=[]), "no frames"),
    (dict(forbid_moving=False), "moving allowed"),
    (dict(time_limit_s=20), "time limit < 30 s"),
    (dict(points=3399), "points < 3400"),
    (dict(points=None), "points unknown"),
    (dict(guess_s=20.0), "pre-reveal words < 100"),
])
def test_each_filter_reason(overrides, reason):
    reasons = apply_filters(make_round(**overrides))
    assert any(reason in r for r in reasons), reasons


def test_transcript_disagreement_is_a_configurable_drop():
    from annotate.stages.geoparse import Geoparser

    talk = make_round().words[:-1] + [{"text": w, "start": 100.0 + i * 0.3, "end": 100.2 + i * 0.3} for i, w in
                                      enumerate("the plates are yellow so this has to be the netherlands".split())]
    parse = Geoparser().predict(talk, guess_s=200.0, round_number=1)
    assert parse.country_code == "NL"
    strict = load_annotate_config({"filter": {"transcript_must_agree": True}})
    reasons = transcript_disagreement(parse.country_code, parse.confidence, "BE", strict)
    assert reasons and reasons[0].startswith("transcript names another country: NL") and "truth BE" in reasons[0]
    assert transcript_disagreement(parse.country_code, parse.confidence, "NL", strict) == []
    assert transcript_disagreement(parse.country_code, parse.confidence, "BE", AnnotateConfig()) == []  # off by default
    unsure = load_annotate_config({"filter": {"transcript_must_agree": True, "transcript_min_confidence": 1.01}})
    assert transcript_disagreement(parse.country_code, parse.confidence, "BE", unsure) == []


def test_language_check_and_configurable_thresholds():
    german = ("wir haben hier gelbe kennzeichen und die strassen linien sind weiss ich denke das koennte im "
              "norden des landes sein weil die baeume aussehen als ob sie aus einem kaelteren ort kommen ") * 3
    words = [{"text": w, "start": 10.0 + i * 0.3, "end": 10.2 + i * 0.3} for i, w in enumerate(german.split())]
    reasons = apply_filters(make_round(words=words))
    assert any(r.startswith("not English") for r in reasons)
    assert english_stopword_ratio(ENGLISH) > 0.4 and english_stopword_ratio(german) < 0.1
    lenient = load_annotate_config({"filter": {"min_points": 0, "min_words": 50, "allow_moving": True, "require_english": False}})
    assert apply_filters(make_round(words=words, points=100, forbid_moving=False), lenient) == []
    with pytest.raises(Exception):
        load_annotate_config({"filter": {"no_such_option": 1}})
