"""Truth attached by fused evidence (annotate.truth via annotate.rounds.assemble_rounds): a round cut
from the video or skipped by segmentation must not shift the labels of the rounds after it, and a
round whose result screen contradicts its API round is dropped with its evidence."""
from __future__ import annotations

import pytest

from annotate.config import load_annotate_config
from annotate.rounds import assemble_rounds
from annotate.stages.filter import apply_filters
from annotate.stages.geoparse import Geoparser
from annotate.truth import ApiRound, SegmentClaim, align
from collect_folder import PLACES, PlayedRound, write_video

PERMISSIVE = {"filter": {"min_words": 0, "min_points": 0}}  # only the truth check can drop a round here


@pytest.fixture(scope="module")
def geoparser():
    return Geoparser()


def _talk(geoparser):
    def talk_country(words, guess_s, round_number):
        parse = geoparser.predict(words, guess_s=guess_s, round_number=round_number)
        return parse.country_code if parse.confidence >= 0.6 else None
    return talk_country


@pytest.mark.parametrize("evidence", ["points", "talk", "distance"])
def test_a_round_cut_from_the_video_does_not_shift_later_labels(tmp_path, geoparser, evidence):
    # the video skips round 2; segmentation saw no round counter and numbered the rest previous + 1
    played = [PlayedRound(p, segment_round=k, evidence=("fallback:previous-guess",),
                          screen_points=p.points if evidence == "points" else None,
                          screen_distance_km=p.distance_km if evidence == "distance" else None)
              for k, p in enumerate([PLACES[0], PLACES[2], PLACES[3], PLACES[4]], start=1)]
    write_video(tmp_path, "vid", "TOKEN123", PLACES, played)

    rounds, drops = assemble_rounds(tmp_path, talk_country=_talk(geoparser) if evidence == "talk" else None)

    assert drops == []
    assert [(r.id, r.round, r.country_code) for r in rounds] == [
        ("vid/1", 1, "br"), ("vid/3", 3, "ke"), ("vid/4", 4, "no"), ("vid/5", 5, "ar")]
    assert [(r.lat, r.lng) for r in rounds] == [(p.lat, p.lng) for p in (PLACES[0], PLACES[2], PLACES[3], PLACES[4])]
    second = rounds[1].truth_evidence
    assert second["segment_round"] == 2 and second["round"] == 3 and second["verdict"] == "agrees"
    assert second["agreed"] and second["agreed"][0].startswith(evidence) and second["disagreed"] == []
    assert any("no segment for API round(s) 2" in note for note in second["notes"])
    cfg = load_annotate_config(PERMISSIVE)
    assert all(apply_filters(r, cfg) == [] for r in rounds)


def test_an_extra_segment_is_left_without_truth_not_given_a_neighbours(tmp_path):
    # segmentation found a sixth "round" (a replay of round 3's result) between rounds 3 and 4
    replay = PlayedRound(PLACES[2], segment_round=4, evidence=("fallback:previous-guess",), screen_points=1234,
                         disagreements=("result screen read as [1234, 1284] points (kept 1234)",))
    played = [PlayedRound(p, segment_round=k, screen_points=p.points) for k, p in enumerate(PLACES[:3], start=1)]
    played += [replay] + [PlayedRound(p, segment_round=k, screen_points=p.points)
                          for k, p in enumerate(PLACES[3:], start=5)]
    write_video(tmp_path, "vid", "TOKEN123", PLACES, played)

    rounds, _ = assemble_rounds(tmp_path)

    assert [(r.id, r.country_code) for r in rounds] == [
        ("vid/1", "br"), ("vid/2", "jp"), ("vid/3", "ke"), ("vid/segment4", None), ("vid/4", "no"), ("vid/5", "ar")]
    extra = rounds[3]
    assert extra.truth_evidence["verdict"] == "unmatched" and extra.lat is None
    assert "segmentation: result screen read as [1234, 1284] points (kept 1234)" in extra.truth_evidence["notes"]
    assert apply_filters(extra, load_annotate_config(PERMISSIVE)) == ["no truth: no challenge round matches this segment"]


def test_a_round_whose_points_disagree_is_dropped_with_its_evidence(tmp_path):
    # every round's counter was read; round 3's result screen shows another game's score
    played = [PlayedRound(p, segment_round=k, evidence=(f"ocr:round-counter {k}/5@{k * 80.0:.1f}",),
                          screen_points=1200 if k == 3 else p.points)
              for k, p in enumerate(PLACES, start=1)]
    write_video(tmp_path, "vid", "TOKEN123", PLACES, played)

    rounds, _ = assemble_rounds(tmp_path)
    cfg = load_annotate_config(PERMISSIVE)
    reasons = {r.id: apply_filters(r, cfg) for r in rounds}

    assert reasons == {"vid/1": [], "vid/2": [], "vid/3": ["truth mismatch (points): screen 1200, API 4500"],
                       "vid/4": [], "vid/5": []}
    evidence = rounds[2].truth_evidence
    assert evidence["round"] == 3 and evidence["verdict"] == "disagrees"
    assert evidence["agreed"] == ["round counter: segment says round 3, API round 3"]
    assert evidence["disagreed"] == ["points: screen 1200, API 4500"]
    assert evidence["score"] == 0.0  # +3 counter, −3 points
    # the check is on by default and can be switched off
    assert apply_filters(rounds[2], load_annotate_config({"filter": {**PERMISSIVE["filter"]}})) != []
    off = load_annotate_config({"filter": {**PERMISSIVE["filter"], "truth_must_agree": False}})
    assert apply_filters(rounds[2], off) == []


def test_talk_against_the_truth_drops_only_without_screen_evidence_for_it():
    api = [ApiRound(1, "BR", 4100, 350.0), ApiRound(2, "JP", 3900, 420.0)]
    # the screen agrees with round 2, the talk names Brazil: kept, flagged
    flagged = align([SegmentClaim(1, "counter", 4100, talk_country="BR"),
                     SegmentClaim(2, "counter", 3900, talk_country="BR")], api)[1]
    assert flagged.verdict == "flagged" and flagged.mismatch_reasons() == []
    assert flagged.disagreed == ["talk: concludes BR, truth JP"]
    # nothing on screen: the talk alone contradicts round 2's truth
    alone = align([SegmentClaim(1, "sequence", talk_country="BR"), SegmentClaim(2, "sequence", talk_country="KE")],
                  api)[1]
    assert alone.round == 2 and alone.mismatch_reasons() == ["truth mismatch (talk): concludes KE, truth JP"]


def test_another_players_game_is_not_held_against_the_screen():
    # highscores returned someone else's game: none of the on-screen scores appear in it
    api = [ApiRound(k, code, points) for k, code, points in ((1, "BR", 5000), (2, "JP", 4999), (3, "KE", 4998))]
    matches = align([SegmentClaim(k, "counter", points) for k, points in ((1, 3100), (2, 2500), (3, 4100))], api)
    assert [(m.round, m.verdict) for m in matches] == [(1, "agrees"), (2, "agrees"), (3, "agrees")]
    assert all("another player's" in m.notes[0] for m in matches)
