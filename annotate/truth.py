"""Which challenge round is this segment? Truth attached by fused evidence, not by one OCR'd number.

A segment's round number is an OCR read of the "ROUND k / 5" box when segmentation saw one, else a
spoken "round three" or a chapter title, else the previous number + 1. Trusting that number alone
means one skipped, misread or edited-out round shifts every later label. So every (segment, API
round) pair is scored on all the evidence there is:

* round counter: the segment's number against the API round's — strong when OCR read the counter,
  weaker from a spoken cue or a chapter, no evidence at all when it is only "previous + 1";
* points: the result screen's points against the API player's points for that round;
* distance: the result screen's distance against the API player's distance;
* talk: the country the round's talk concludes (geoparse) against the truth's country;

and the segments are aligned to the API rounds monotonically (both are in play order), with skips
on both sides: a missing or extra segment costs one skip instead of shifting every later round.
Each match records what agreed, what disagreed and its score; `verdict` and `mismatch_reasons`
say whether the evidence contradicts the chosen truth (`annotate.stages.filter` drops those).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

# evidence weights: what one agreeing (+) or disagreeing (−) piece of evidence is worth
WEIGHT = {"counter": 3.0, "cue": 1.0, "points": 3.0, "distance": 2.0, "talk": 1.5}
LABEL = {"counter": "round counter", "cue": "spoken round", "points": "points", "distance": "distance", "talk": "talk"}
HARD_EVIDENCE = frozenset({"round counter", "points", "distance"})  # read off the screen: a disagreement drops
SKIP_SEGMENT = 1.0  # a segment left without an API round (an extra, a replay, a misdetection)
SKIP_API_ROUND = 0.5  # an API round without a segment (skipped by segmentation, or cut from the video)
POINTS_TOLERANCE = 2  # OCR reads the exact score; a digit misread beyond this is a disagreement
DISTANCE_RELATIVE_TOLERANCE = 0.01  # the screen rounds ("12.3 km", "1,204 km", "850 m")
# the game shows whole units ("12 km" for 12.3 km, "320 miles"): up to half a mile off
DISTANCE_ABSOLUTE_TOLERANCE_KM = 0.81
SAME_PLAYER_MIN_SHARE = 0.5  # this share of on-screen scores must match the API game, else it is another player's


@dataclass(frozen=True)
class SegmentClaim:
    """What one segmented round says about itself."""

    round: int  # the number segmentation gave it
    round_source: str  # "counter" (OCR'd round box) | "cue" (spoken / chapter) | "sequence" (previous + 1)
    points: int | None = None  # result screen
    distance_km: float | None = None  # result screen
    talk_country: str | None = None  # ISO alpha-2 the round's talk concludes (None: unsure or silent)


@dataclass(frozen=True)
class ApiRound:
    """One round of the challenge API's game."""

    round: int
    country_code: str | None = None  # the truth's country (ISO alpha-2, upper case)
    points: int | None = None  # the API player's points for the round
    distance_km: float | None = None  # the API player's distance


@dataclass
class TruthMatch:
    """The API round chosen for one segment and the evidence behind the choice."""

    segment_round: int
    round_source: str
    round: int | None  # the API round chosen; None: no API round fits this segment
    score: float = 0.0
    agreed: list[str] = field(default_factory=list)
    disagreed: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # context: skipped API rounds, points not comparable

    @property
    def verdict(self) -> str:
        """unmatched | disagrees (drop) | flagged (soft evidence against, hard evidence for) | agrees |
        order-only (nothing but play order placed it)."""
        if self.round is None:
            return "unmatched"
        if self.mismatch_reasons():
            return "disagrees"
        if self.disagreed:
            return "flagged"
        return "agrees" if self.agreed else "order-only"

    def mismatch_reasons(self) -> list[str]:
        """Drop reasons: any screen-read evidence against the truth, or talk / a spoken number against
        it with no screen-read evidence for it. Stable keys ("truth mismatch (points)") for the card."""
        hard_for = any(_label(text) in HARD_EVIDENCE for text in self.agreed)
        return [f"truth mismatch ({_label(text)}): {text.split(':', 1)[1].strip()}"
                for text in self.disagreed if _label(text) in HARD_EVIDENCE or not hard_for]

    def to_dict(self) -> dict:
        return {**asdict(self), "verdict": self.verdict, "mismatch_reasons": self.mismatch_reasons()}


def _label(evidence_text: str) -> str:
    return evidence_text.split(":", 1)[0]


def _distance_agrees(screen_km: float, api_km: float) -> bool:
    return abs(screen_km - api_km) <= DISTANCE_ABSOLUTE_TOLERANCE_KM + DISTANCE_RELATIVE_TOLERANCE * api_km


def compare(claim: SegmentClaim, api: ApiRound, use_player: bool = True) -> list[tuple[str, float, str]]:
    """(kind, signed weight, description) of every piece of evidence on this pairing."""
    found: list[tuple[str, float, str]] = []
    if claim.round_source in ("counter", "cue"):
        kind = claim.round_source
        agree = claim.round == api.round
        found.append((kind, WEIGHT[kind] if agree else -WEIGHT[kind],
                      f"{LABEL[kind]}: segment says round {claim.round}, API round {api.round}"))
    if use_player and claim.points is not None and api.points is not None:
        agree = abs(claim.points - api.points) <= POINTS_TOLERANCE
        found.append(("points", WEIGHT["points"] if agree else -WEIGHT["points"],
                      f"points: screen {claim.points}, API {api.points}"))
    if use_player and claim.distance_km is not None and api.distance_km is not None:
        agree = _distance_agrees(claim.distance_km, api.distance_km)
        found.append(("distance", WEIGHT["distance"] if agree else -WEIGHT["distance"],
                      f"distance: screen {claim.distance_km:g} km, API {api.distance_km:g} km"))
    if claim.talk_country and api.country_code:
        agree = claim.talk_country.upper() == api.country_code.upper()
        found.append(("talk", WEIGHT["talk"] if agree else -WEIGHT["talk"],
                      f"talk: concludes {claim.talk_country.upper()}, truth {api.country_code.upper()}"))
    return found


def same_player(claims: list[SegmentClaim], api_rounds: list[ApiRound]) -> tuple[bool, str | None]:
    """Whether the API game's scores are this video's player's: highscores may return another player's
    game, whose points would contradict every round. Judged by how many on-screen scores appear in it."""
    api_points = [a.points for a in api_rounds if a.points is not None]
    screen = [c.points for c in claims if c.points is not None]
    if not api_points or not screen:
        return True, None
    matched = sum(any(abs(p - q) <= POINTS_TOLERANCE for q in api_points) for p in screen)
    if matched >= SAME_PLAYER_MIN_SHARE * len(screen):
        return True, None
    return False, (f"points/distance not compared: only {matched} of {len(screen)} on-screen scores appear in the "
                   "API's game (another player's)")


def align(claims: list[SegmentClaim], api_rounds: list[ApiRound]) -> list[TruthMatch]:
    """One `TruthMatch` per claim (in the claims' order): the order-preserving assignment of segments to
    API rounds with the highest total evidence score (a segment or an API round may be left out)."""
    use_player, player_note = same_player(claims, api_rounds)
    n, m = len(claims), len(api_rounds)
    evidence = [[compare(c, a, use_player) for a in api_rounds] for c in claims]
    gain = np.array([[sum(w for _, w, _ in pair) for pair in row] for row in evidence]).reshape(n, m)
    # best[i, j]: best score aligning the first i segments with the first j API rounds
    best = np.full((n + 1, m + 1), -np.inf)
    move = np.zeros((n + 1, m + 1), dtype=np.int8)  # 0 match, 1 segment left out, 2 API round left out
    best[0, :] = -SKIP_API_ROUND * np.arange(m + 1)
    best[:, 0] = -SKIP_SEGMENT * np.arange(n + 1)
    move[1:, 0], move[0, 1:] = 1, 2
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            options = (best[i - 1, j - 1] + gain[i - 1, j - 1], best[i - 1, j] - SKIP_SEGMENT,
                       best[i, j - 1] - SKIP_API_ROUND)
            move[i, j] = int(np.argmax(options))  # ties prefer a match, then leaving a segment out
            best[i, j] = options[move[i, j]]
    chosen: dict[int, int] = {}
    skipped_api: list[int] = []
    i, j = n, m
    while i > 0 or j > 0:
        step = move[i, j]
        if step == 0:
            chosen[i - 1] = j - 1
            i, j = i - 1, j - 1
        elif step == 1:
            i -= 1
        else:
            skipped_api.append(j - 1)
            j -= 1
    matches = []
    for k, claim in enumerate(claims):
        match = TruthMatch(segment_round=claim.round, round_source=claim.round_source, round=None)
        if player_note:
            match.notes.append(player_note)
        if k in chosen:
            j = chosen[k]
            match.round = api_rounds[j].round
            match.score = round(float(gain[k, j]), 3)
            match.agreed = [text for _, w, text in evidence[k][j] if w > 0]
            match.disagreed = [text for _, w, text in evidence[k][j] if w < 0]
            previous = max((chosen[q] for q in range(k) if q in chosen), default=-1)
            earlier = [api_rounds[s].round for s in skipped_api if previous < s < j]
            if earlier:
                match.notes.append("order: no segment for API round(s) " + ", ".join(map(str, sorted(earlier)))
                                   + " before this one (skipped or cut)")
        matches.append(match)
    return matches
