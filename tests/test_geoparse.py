import json
import subprocess
import sys
from pathlib import Path

import pytest

from annotate.stages.geoparse import Geoparser, pre_reveal_text, reveal_offset

ROOT = Path(__file__).resolve().parents[1]
DEV = Path(__file__).resolve().parents[2] / "shared" / "naviclues" / "dev_rounds.jsonl"


@pytest.fixture(scope="module")
def parser() -> Geoparser:
    return Geoparser()


def test_conclusion_beats_earlier_hypotheses(parser):
    text = ("okay so we have yellow plates this could be spain or maybe portugal the road lines look spanish "
            "but these bollards are not spanish they are more like the ones in argentina and the sun is in the north "
            "so southern hemisphere i think this has to be argentina i'm going to guess somewhere near cordoba")
    result = parser.predict(text)
    assert result.country_code == "AR" and result.country == "Argentina"
    assert result.city == "Córdoba"
    assert 0 < result.confidence <= 1 and result.evidence


def test_reveal_names_the_truth_when_the_guess_was_wrong(parser):
    text = ("we have a pretty flat road with these poles and the vegetation feels kind of like indonesia maybe "
            "or thailand i think thailand has these yellow signs so let's go thailand somewhere here let's see "
            "oh it was malaysia okay that makes sense the yellow signs are also in malaysia")
    assert parser.predict(text).country_code == "MY"


def test_negation_demonyms_cities_and_regions(parser):
    assert parser.predict("this is not russia the cyrillic looks ukrainian and we're near kharkiv").country_code == "UA"
    assert parser.predict("these plates look brazilian so i'll go with brazil near curitiba").country_code == "BR"
    assert parser.predict("that red soil and those gum trees feel like queensland to me").country_code == "AU"


def test_ambiguous_names_follow_context(parser):
    us = parser.predict("american flag yellow center line this is the states maybe georgia or alabama i'll go georgia")
    assert us.country_code == "US" and us.region == "Georgia"
    ge = parser.predict("the georgian script is everywhere so this is georgia near tbilisi")
    assert ge.country_code == "GE"
    # a place name that is an ordinary word is not a mention
    assert parser.predict("nice road nice sign we see a man with a van").error == "no place mentioned"


def test_timed_words_use_the_guess_time(parser):
    words = [{"text": w, "start": float(i), "end": float(i) + 0.5} for i, w in enumerate(
        "this feels like canada with these signs i'll guess canada oh it was the united states".split())]
    guess_s = float(words[10]["start"])  # "oh": the reveal starts here
    assert parser.predict(words, guess_s=guess_s).country_code == "US"


def test_empty_inputs_return_error_records(parser):
    assert parser.predict("").error == "empty transcript"
    assert parser.predict("[Music] [Applause]").error == "empty transcript"
    assert parser.predict([]).country_code is None


def test_reveal_detection_cuts_post_reveal_talk():
    text = ("we have yellow plates and chevrons " * 6 + "so i'll guess here let's see oh it was portugal "
            "i got 3000 points anyway")
    cut = reveal_offset(text)
    assert cut is not None and text[cut:].startswith("i'll guess here let's see")
    assert "portugal" not in pre_reveal_text(text) and "chevrons" in pre_reveal_text(text)


REASONING = "we have some poles and a road with lines and the trees are green and the sun is over there " * 3


def test_hindsight_names_the_truth(parser):
    text = (REASONING + "this could be australia these trees feel australian but the baobab says madagascar so "
            "i think madagascar is a good shot let's go i talked myself out of going australia oh damn it")
    assert parser.predict(text).country_code == "AU"
    text = (REASONING + "i think poland maybe or one of the nordic countries i'll go poland let's see oh wow "
            "wrong sea i wasn't thinking romania at all")
    assert parser.predict(text).country_code == "RO"


def test_first_country_after_the_guess_without_a_cue(parser):
    text = (REASONING + "the square poles look like sri lanka though it could be thailand i will go for sri lanka "
            "let's just rip it in and see if we're right and okay yeah walls just really far south thailand")
    assert parser.predict(text).country_code == "TH"


def test_caption_spellings_and_spoken_names(parser):
    assert parser.predict(REASONING + "the plates look like checkia i'll go checkia").country_code == "CZ"
    us = parser.predict(REASONING + "maybe canada i'll guess canada let's see oh it was just the us")
    assert us.country_code == "US"
    drc = parser.predict(REASONING + "i'll go mozambique here we go 865 miles away oh that is the democratic republic "
                                   "of congo")
    assert drc.country_code == "CD"
    assert parser.predict(REASONING + "let us guess in like saotome here").country_code == "ST"


def test_window_is_cut_to_the_longest_round(parser):
    previous = "and it was chile okay 4000 points not bad at all "
    this_round = REASONING + "the bollards and the yellow plates say netherlands so i'll guess the netherlands "
    following = "next round okay this looks like japan maybe with these poles " * 2
    assert parser.predict(previous + "round three " + this_round + following).country_code == "NL"


def test_a_spoken_round_number_marks_this_round(parser):
    previous_tail = "it was super south "
    this_round = ("round three let's keep it going we got taiwan with the yellow and black poles " + REASONING
                  + "that equals taiwan i'll go here ")
    following = "next round here " + REASONING * 2 + "these tuk tuks say philippines i'll go near manila philippines "
    window = previous_tail + this_round + following
    # the longest piece is the next round; the spoken round number says which piece this row is
    assert parser.predict(window).country_code == "PH"
    assert parser.predict(window, round_number=3).country_code == "TW"
    # named with a verdict ("good second round") the round ends there: what follows is the next round
    judged = (REASONING + "wait a minute it says myanmar here i think myanmar okay not bad good second round "
              + REASONING + "the poles look brazilian brazil brazil maybe trinidad and tobago trinidad and tobago")
    assert parser.predict(judged, round_number=2).country_code == "MM"
    assert parser.predict(judged, round_number=4).country_code != "MM"


def test_filler_repeats_and_attributive_demonyms(parser):
    # "i guess" is filler, not a commitment like "i'll guess"
    text = REASONING + "i guess in italy they have these too but the plates are croatian i think croatia " + REASONING
    assert parser.predict(text).country_code == "HR"
    # a name read off a sign again and again is one mention, and a demonym describing a thing is no language
    text = (REASONING + "we have french plates the road name is danan danan danan " + REASONING)
    assert parser.predict(text).country_code == "FR"


def test_surprise_after_the_guess(parser):
    text = REASONING * 3 + "i think it's portugal somewhere here ah sardinia okay well the sun was right"
    assert parser.predict(text).country_code == "IT"


def test_word_like_subdivisions_and_languages_stay_weak(parser):
    # "meta" is a Colombian department and "delta" a Nigerian state: in speech they are words
    assert parser.predict("you can play this without any meta knowledge the delta is small").error == \
        "no place mentioned"
    # a language named behind a reveal-like cue is still only a language
    text = REASONING + "i think uruguay the signs are spanish so i'll guess uruguay it is actually spanish yes"
    assert parser.predict(text).country_code == "UY"


def test_opening_result_talk_is_the_previous_rounds(parser):
    previous = "oh it was chile 4000 points that's a good score chile is a great country chile chile "
    this_round = REASONING + "these look like argentinian bollards i think argentina"
    assert parser.predict(previous + this_round).country_code == "AR"


OPENING = "oh it was mexico city i got the country right not too far away okay now "
NEXT_ROUND = REASONING + "these plates look american so i'll guess the united states let's see oh it was canada "
AFTER_NEXT_REVEAL = ("so yeah the plates fooled me there the canadian ones are white too i should have checked the "
                     "signs more carefully and the poles ")


def test_window_cut_a_round_late_opens_with_this_rounds_result(parser):
    # reveal → a whole other round (reasoning, guess, reveal, talk about it): the opening reveal is this round's
    late = parser.predict(OPENING + NEXT_ROUND + AFTER_NEXT_REVEAL)
    assert late.country_code == "MX" and late.evidence[0].startswith("this round's result opens the window")
    # a window that ends at its reveal is that round's; its opening reveal is the previous round's
    assert parser.predict(OPENING + NEXT_ROUND).country_code == "CA"


def test_known_guess_time_keeps_the_window(parser):
    # our own rounds are segmented by OCR: with word times and guess_s the reveal after guess_s decides
    words = [{"text": w, "start": float(i)} for i, w in enumerate((OPENING + NEXT_ROUND + AFTER_NEXT_REVEAL).split())]
    guess_s = float((OPENING + NEXT_ROUND).split().index("oh", 20))
    assert parser.predict(words, guess_s=guess_s).country_code == "CA"


@pytest.mark.skipif(not DEV.exists(), reason="../shared reference data is absent")
def test_dev_rounds_accuracy_floor(tmp_path):
    """Plain (in-sample: the shipped ranker was fitted on these rows) and grouped 5-fold figures, where
    every fold's ranker is fitted on the other folds. Floors sit a little under today's measured values
    (plain 0.839; CV by challenge 0.797, by channel 0.762; structure alone 0.727 / 0.706)."""
    out = tmp_path / "preds.jsonl"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "geoparse.py"), "--rounds", str(DEV),
                           "--out", str(out), "--cv", "5"], capture_output=True, text=True, timeout=300, check=True)
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["rows"] >= 140
    assert summary["country_accuracy"] >= 0.81
    cv = summary["cv"]
    assert cv["challenge"]["folds"] == 5 and cv["channel"]["groups"] == 5
    assert summary["cv_country_accuracy"] == cv["challenge"]["country_accuracy"] >= 0.76
    assert cv["channel"]["country_accuracy"] >= 0.75
    assert cv["challenge_structure_only"]["country_accuracy"] >= 0.70
    assert cv["challenge"]["country_accuracy"] > cv["last_named_baseline"]
    preds = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(preds) == 144 and {"id", "truth", "pred", "evidence", "candidates"} <= set(preds[0])


def test_geoparse_benchmark_figures_on_a_small_file(tmp_path):
    """The benchmark as a command, offline: accuracy, the named-at-all ceiling and the diagnostics."""
    talk = "we have some poles and a road with lines and the trees are green and the sun is over there " * 2
    rows = [
        {"id": "a/1", "round": 1, "country": "Argentina", "points": 4800,
         "transcript": talk + "these bollards say argentina so i'll guess argentina let's see oh it was argentina"},
        {"id": "b/1", "round": 1, "country": "Chile", "points": 1200,
         "transcript": talk + "i think this is peru so i'll guess peru let's see oh no"},  # Chile never said
        {"id": "c/2", "round": 2, "country": "Japan", "points": 3900,
         "transcript": talk + "maybe japan but i'll go with south korea let's see"},  # named, not chosen
        {"id": "d/1", "round": 1, "country": "N/A", "transcript": talk},  # no truth country: not scored
    ]
    src = tmp_path / "rounds.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "geoparse.py"), "--rounds", str(src),
                           "--out", str(tmp_path / "p.jsonl")], capture_output=True, text=True, timeout=120, check=True)
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (summary["rows"], summary["correct"], summary["skipped"]) == (3, 1, 1)
    assert summary["country_accuracy"] == pytest.approx(1 / 3, abs=1e-4)
    assert summary["truth_named"] == pytest.approx(2 / 3, abs=1e-4)  # Argentina and Japan were said
    assert summary["accuracy_when_named"] == 0.5
    assert (summary["kept_rows"], summary["kept_accuracy"]) == (2, 0.5)  # points ≥ 3400: a/1 and c/2
    preds = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert [p["pred"] for p in preds[:3]] == ["AR", "PE", "KR"] and preds[3]["correct"] is None


def test_every_candidate_keeps_its_evidence(parser):
    """Per candidate country: each mention with the words before it, its time and its weight."""
    said = ("looks like spain but these bollards are not spanish and the poles are concrete so i think this is "
            "portugal the signs and the white road lines fit too so i'll guess portugal let's see oh it was portugal")
    words = [{"text": w, "start": float(i), "end": float(i) + 0.5} for i, w in enumerate(said.split())]
    guess_s = float(said.split().index("let's"))
    result = parser.predict(words, guess_s=guess_s)
    assert result.country_code == "PT"
    assert set(result.candidates) == {code for code, _ in result.ranked} >= {"PT", "ES"}
    portugal = result.candidates["PT"]
    assert [e["time_s"] for e in portugal] == [float(i) for i, w in enumerate(said.split()) if w == "portugal"]
    assert all(e["mention"] == "portugal" and "portugal" in e["phrase"] for e in portugal)
    assert portugal[-1]["phrase"] == "see oh it was portugal"
    # the negated, compared Spain weighs less than Portugal's committed guess and reveal (the first,
    # tentative "i think this is portugal" may weigh little on its own)
    spain = [e["weight"] for e in result.candidates["ES"]]
    assert max(spain) < min(e["weight"] for e in portugal[-2:])
    assert sum(spain) < sum(e["weight"] for e in portugal)


def test_negations_and_comparisons_vote_against(parser):
    assert parser.predict("this is not brazil the poles look like argentina but the plates say uruguay "
                          "so i'll go uruguay").country_code == "UY"
    assert parser.predict("it looks like spain but the signs are portuguese so this has to be portugal "
                          "i'll guess lisbon").country_code == "PT"


def test_ranker_fits_weights_from_rounds_and_round_trips(tmp_path):
    """The conditional logit learns what decides rounds: here the revealed country, not the most said one."""
    from annotate.stages import geoparse_ranker as gr

    rules_only = Geoparser(ranker=None)
    talks = [("i think {a} maybe {a} yes {a} i'll guess {a} let's see oh it was {b}", "{b}"),
             ("{a} {a} this is {a} so i'll go {a} let's see how wrong oh it was {b}", "{b}")]
    pairs = [("chile", "peru"), ("kenya", "uganda"), ("norway", "sweden"), ("poland", "czechia"),
             ("ghana", "nigeria"), ("japan", "taiwan"), ("mexico", "guatemala"), ("spain", "portugal")]
    codes = {"peru": "PE", "uganda": "UG", "sweden": "SE", "czechia": "CZ", "nigeria": "NG", "taiwan": "TW",
             "guatemala": "GT", "portugal": "PT"}
    examples, groups = [], []
    for n, (a, b) in enumerate(pairs):
        for template, _ in talks:
            talk = rules_only.analyse(template.format(a=a, b=b))
            examples.append((gr.round_features(talk), codes[b]))
            groups.append(f"game{n}")
    ranker = gr.fit_ranker(examples, groups)
    assert ranker.fitted_on == len(examples) and ranker.l2 in gr.L2_GRID
    assert all(max(ranker.scores(f), key=ranker.scores(f).get) == truth for f, truth in examples)
    path = tmp_path / "weights.json"
    path.write_text(json.dumps(ranker.to_json()))
    again = gr.load_ranker(path)
    assert again.scores(examples[0][0]) == pytest.approx(ranker.scores(examples[0][0]), abs=1e-4)
    assert Geoparser(ranker=again).predict("i'll guess chile let's see oh it was peru").country_code == "PE"
    path.write_text(json.dumps({"weights": {"no_such_feature": 1.0}}))
    with pytest.raises(ValueError, match="unknown features"):
        gr.load_ranker(path)
    with pytest.raises(ValueError, match="nothing to fit"):
        gr.fit_ranker([(examples[0][0], "ZZ")])


def test_grouped_folds_keep_groups_whole():
    from annotate.folds import grouped_folds, row_group

    groups = ["a"] * 5 + ["b"] * 3 + ["c"] * 3 + ["d"] * 2 + ["e"]
    folds = grouped_folds(groups, 3)
    for g in set(groups):
        assert len({f for f, gg in zip(folds, groups) if gg == g}) == 1
    sizes = sorted(folds.count(f) for f in set(folds))
    assert sizes == [4, 5, 5]
    assert grouped_folds(["x", "y"], 5) in ([0, 1], [1, 0])  # K capped at the number of groups
    with pytest.raises(ValueError, match="2 groups"):
        grouped_folds(["x", "x"], 5)
    assert row_group({"id": "geopeter/TOK/3"}, "challenge") == "geopeter/TOK"
    assert row_group({"id": "geopeter/TOK/3", "channel": "zi8gzag"}, "channel") == "zi8gzag"
