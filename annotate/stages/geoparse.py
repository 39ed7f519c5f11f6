"""Where does the expert say the round is? Country (and city/region) from a round's transcript.

A transcript mentions many places: countries ruled out ("this isn't Spain"), compared ("like in
Norway"), the previous round's reveal at the start, the guess, and, after the guess, the reveal
("oh it was Bangladesh"). `Geoparser` finds every mention of a country, demonym, language, city or
region (longest match over the gazetteer), then scores each country:

    score = Σ kind weight × position weight × cue weight

* kind: a country name counts more than a demonym, a demonym more than a city, a widely spoken
  language ("spanish", "english") hardly at all;
* position: later mentions count more (the conclusion and the reveal come last), and mentions
  in the first stretch count less (the previous round's reveal, the channel intro);
* cues in the few words before a mention: conclusion phrases ("I'm going to guess", "this has
  to be", "we're in", "I'll go"), reveal phrases ("it was", "oh", "that's") after the guess,
  negation ("not", "isn't", "rather than") and comparison ("like in", "similar to").

A country named right behind a reveal phrase after the guess ("… let's see — oh it was
Malaysia") decides the round outright: the reveal is the truth even when the guess was wrong.
The first country (or state/city) named shortly after the guess point gets a reveal bonus even
without a cue ("rip it in … okay yeah was really far south Thailand"), and hindsight phrases
("I talked myself out of X", "I wasn't thinking X at all") vote for X however negated they sound.
The guess point is the guess time when word timestamps are known, else where reveal phrases
(scores, distances, "oh it was") or guess-commit phrases ("let's find out") start
(`reveal_offset`). A window may hold the previous round's tail and the next round's start: it
is cut at round-start markers ("next round", "here we are") and the longest piece is this round;
mentions outside it count little. Given the round's number, a spoken "round three" settles where
this round starts, and a judged one ("good second round") where it ends (`_named_round_bounds`). Result talk that opens an untimed window ("4000 points, good
score") is the previous round's too: the round starts where that stretch ends. But a window may be
cut a round late: it opens with THIS round's result and then holds the whole next round — its
reasoning, guess, a reveal naming another country, and talk about that result. When the window
runs on well past such a later reveal (a window ending at its reveal is that round's own), the
place named in the opening result talk decides (`_opening_result`). With word times and the guess
time the window is known to be this round and neither rule applies.

Widely spoken languages ("it's Portuguese") stay weak whatever cue precedes them unless the word
describes a thing ("french plates"), and ISO subdivisions whose names are English words ("meta",
"delta") are not mentions. A name repeated within a few words ("danan danan danan", read off a
sign) is one mention, a city matched only by a GeoNames alternate name counts half, and a bare
"i guess" is filler, not a commitment.

Ambiguous names ("Georgia", "Victoria", "Columbia") are resolved in a second pass toward the
candidate the unambiguous evidence already favours, else by population prior.

The weights above were set by hand while reading dev rounds. By default the countries are ranked by
a learned ranker instead (`geoparse_ranker`: a conditional logit over the same structure — kind of
name, position, guess point, reveal, cues — plus these rule scores, fitted on dev and measured by
grouped cross-validation); `Geoparser(ranker=None)` keeps the rule scores alone. `GeoParse.candidates`
keeps every candidate's evidence: phrase, token, time, weight.
"""
from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache

from annotate import gazetteer
from annotate.config import GeoparseConfig
from annotate.text import strip_asr_tags

# a country name's prior against a same-named place, on the population scale (Georgia: 10M vs 3.5M)
NAME_PRIOR_POPULATION = 10_000_000.0
# --- evidence weights (one place to read them) -------------------------------------------------
KIND_WEIGHT = {"name": 1.0, "demonym": 0.8, "language": 0.5, "region": 0.75, "city": 0.6, "misspelling": 0.8}


@dataclass(frozen=True)
class CueWeights:
    """Multipliers applied to a mention's kind weight (see the module docstring)."""

    position_floor: float = 0.5  # weight at the very start relative to the end (linear in between)
    early_stretch: float = 0.08  # share of the transcript that is intro / previous round's reveal
    early: float = 0.6
    after_guess: float = 1.5  # known guess time: any mention after it
    after_guess_reveal: float = 2.0  # … introduced by a reveal cue
    reveal_statement: float = 4.0  # "it was X" in the second half (guess time unknown)
    surprise: float = 2.5  # "oh X" in the second half (guess time unknown)
    detect_reveal: bool = True  # guess time unknown: find the reveal from its phrases
    detected_after: float = 1.0  # a mention after the detected reveal
    strong_conclusion: float = 1.8  # "I'm going to guess X"
    conclusion: float = 1.3  # "I think X"
    negation: float = -0.6  # "not X" (a vote against)
    comparison: float = 0.6  # "like in X"
    other_round: float = 0.2  # before an early round-start marker or after a late one
    novel_after_reveal: float = 2.0  # a country first named after the guess/reveal: what the result showed
    first_after_reveal: float = 2.5  # the first country named shortly after the guess/reveal point
    first_after_reveal_tokens: int = 50
    regret: float = 4.0  # "I talked myself out of X", "should have gone X": the truth, named in hindsight
    ambiguity_support: float = 0.3  # pass 2: smoothing toward candidates without support


WEIGHTS = CueWeights()
# demonyms that are also languages spoken in many countries: weak evidence for the eponymous one
WIDESPREAD_LANGUAGES = gazetteer.WIDESPREAD_LANGUAGES
WIDESPREAD_WEIGHT = 0.35
# things a demonym can describe that no language does: "french plates" is France, "french signs" may be Quebec
OBJECT_NOUNS = frozenset({"plate", "plates", "flag", "flags", "bollard", "bollards", "pole", "poles", "car", "cars",
                          "license", "licence", "number", "coverage", "guardrail", "guardrails", "chevron",
                          "chevrons", "architecture", "houses", "style", "police", "registration"})
ALTERNATE_NAME_WEIGHT = 0.5  # a city matched by one of its GeoNames alternate names, not its own
REPEAT_TOKENS = 4  # a name said again within this many words is one mention
# phrases that are not a country even though a country word is in them
NOT_COUNTRY = gazetteer.WORLD_REGION_PHRASES + gazetteer.NOT_PLACE_PHRASES
# common misspellings in auto-captions, for names the gazetteer spells right
MISSPELLINGS = {"columbia": "CO", "columbian": "CO", "phillipines": "PH", "philipines": "PH", "phillippines": "PH",
                "philippine islands": "PH", "argentinia": "AR", "kazakstan": "KZ", "kyrgystan": "KG",
                "khazakstan": "KZ", "kirgizstan": "KG", "kyrgyzstan": "KG", "portugese": "PT", "brasil": "BR",
                "brazillian": "BR", "equador": "EC", "lesoto": "LS", "botswanna": "BW", "tailand": "TH",
                "ukranian": "UA", "ukraina": "UA", "checkia": "CZ", "czechya": "CZ", "chechia": "CZ",
                "check republic": "CZ", "lichtenstein": "LI", "azerbijan": "AZ",
                "azerbaidjan": "AZ", "tunesia": "TN", "morroco": "MA", "marocco": "MA", "srilanka": "LK",
                "shri lanka": "LK", "saotome": "ST", "sao tome": "ST", "malasia": "MY", "guatamala": "GT",
                "tiawan": "TW", "isreal": "IL",
                "new zeland": "NZ", "newzealand": "NZ", "kenia": "KE", "rumania": "RO", "roumania": "RO",
                "hungray": "HU", "slovakian": "SK", "macedonian": "MK", "bangladeshi": "BD", "bengali": "BD",
                "cambodja": "KH", "indonesian": "ID", "urugay": "UY", "uraguay": "UY", "paraguayan": "PY",
                "venezuala": "VE", "nicaraugua": "NI", "columbians": "CO", "estonian": "EE", "lithuanian": "LT",
                "latvian": "LV", "faroe": "FO", "faroes": "FO", "swaziland": "SZ",
                "mongolian": "MN", "kirghizia": "KG", "moldavia": "MD", "burma": "MM", "siam": "TH",
                "greenlandic": "GL"}
# how captions spell names that the gazetteer can't key on ("us" alone is a pronoun; "the us" is not)
SPOKEN_NAMES = {"the us": "US", "the u s": "US", "u s a": "US", "the usa": "US", "u k": "GB", "the uk": "GB"}
# words that only locate within a country ("far north", "southern region"): never a region mention
GENERIC_REGION_WORDS = frozenset({"far", "region", "province", "district", "oriental", "occidental", "centro",
                                  "norte", "sur", "sud", "nord", "est", "ouest", "sul", "coastal"})
# first-level subdivisions whose ISO name is an everyday English word (transcripts are lowercase)
ENGLISH_WORD_SUBDIVISIONS = frozenset({"bloke", "delta", "store", "unity", "plateau", "cascade", "glacis", "pool",
                                       "rivers", "gulf", "lacs", "isla", "valle", "colon", "savanne", "sahel",
                                       "marche", "nelson", "hanover", "isabel", "montana", "sucre", "lagunes",
                                       "dennery", "moulins", "redonda", "flores", "orange", "central", "eastern",
                                       "western", "northern", "southern", "upper", "lower", "north", "south"})
# single words that name places but are ordinary English first (never a mention on their own)
COMMON_WORDS = gazetteer.COMMON_WORD_PLACE_NAMES | {"delta", "meta", "mono", "bloke", "grad", "moss", "vista"}
# names that are countries (or big places) but also words/people: they need a cue or support
WEAK_NAMES = {"jordan": 0.5, "chad": 0.3, "turkey": 0.7, "guinea": 0.5, "georgia": 0.8, "jersey": 0.4,
              "china": 0.8, "victoria": 0.6, "florence": 0.5, "austin": 0.5, "phoenix": 0.5, "israel": 0.8,
              "niger": 0.6, "mali": 0.7, "chile": 0.9, "cuba": 0.9, "dallas": 0.5}

CONCLUSION_CUES = ("guess", "going to go", "gonna go", "i'll go", "i will go", "go with", "going with", "go for",
                   "has to be", "must be", "should be", "have to be", "definitely", "we're in", "we are in",
                   "this is", "it's", "i think", "probably", "pretty sure", "confident", "i'd say", "click",
                   "put it in", "somewhere in", "let's go", "i'm thinking", "feels like", "looks like",
                   "makes me think", "i want to go", "we are", "we're")
# "guess" commits only as a verb of deciding ("i'll guess", "my guess is"): a bare "i guess" is filler
STRONG_CONCLUSION = ("should be", "this is definitely", "going to guess", "gonna guess", "i'll guess", "let's guess",
                     "will guess", "my guess", "guess is", "guessing", "to guess", "go with", "going with", "gonna go",
                     "going to go",
                     "i'll go", "go for", "has to be", "must be", "we're in", "we are in", "i want to go",
                     "put it in", "click")
REVEAL_CUES = ("it was", "it's in", "was in", "it is", "oh it's", "that's", "this was", "we were in",
               "actually", "right country", "wrong country", "correct", "was it", "oh")
# "it was X" late in a round is the reveal (the truth), not a hypothesis
REVEAL_STATEMENTS = ("it was", "oh it's", "this was", "we were in", "it was in", "was actually", "it is",
                     "it's actually", "is actually", "we were")
# a surprised "oh X" / "oh okay X" right after the guess names the revealed country
SURPRISE_CUES = ("oh", "oh okay", "oh wow", "oh so", "oh no", "oh it", "oh to", "oh in", "ah", "ah okay", "aha")
# hindsight after a wrong guess names the truth even when worded as a negation ("wasn't thinking X at all")
REGRET_CUES = ("talked myself out of", "talk myself out of", "should have gone", "should've gone", "should have went",
               "should have stuck with", "should have guessed", "should have said", "should have clicked",
               "should have trusted", "should have known", "i knew it was", "wasn't thinking", "didn't think of",
               "didn't even think", "never thought", "forgot about", "didn't consider", "should have gone with")
# a window cut a round late opens with this round's result, then holds the next round (`_opening_result`)
OPENING_SHARE = 0.12  # the opening reveal lies in this share of the window …
OPENING_MAX_TOKENS = 60  # … and within this many tokens
POST_REVEAL_SHARE = 0.10  # talk after the later reveal: that round is complete, not this round's ending
MIN_POST_REVEAL_TOKENS = 25
MAX_OPENING_REVEAL_SHARE = 0.4  # the previous round's result talk takes at most this share of a window
REVEAL_CHAIN_GAP = 40  # result phrases closer than this belong to one stretch of result talk
REVEAL_TAIL_TOKENS = 8
EARLY_HINDSIGHT = 1 / 3  # reveal talk before this share of the window is the previous round's
MIN_ROUND_TOKENS = 60  # a round's talk is longer than this: closer round-start markers are one boundary
# where a round starts: text before one (early) is the previous round, after one (late) the next
ROUND_START_MARKERS = ("next round", "round two", "round three", "round four", "round five", "round 2", "round 3",
                       "round 4", "round 5", "second round", "third round", "fourth round", "fifth round",
                       "final round", "last round", "next one", "this one is going to be", "let's begin",
                       "here we are", "keep it going", "moving on", "let's start", "first round", "round one",
                       "round 1", "off we go")
ROUND_NUMBER_WORDS = {1: ("one", "first"), 2: ("two", "second"), 3: ("three", "third"), 4: ("four", "fourth"),
                      5: ("five", "fifth")}
# a round named right after one of these is being judged ("good second round"): its result, so its end
ROUND_VERDICT_WORDS = frozenset({"good", "great", "nice", "bad", "decent", "solid", "terrible", "awful", "perfect",
                                 "strong", "rough", "that", "tough", "brilliant", "amazing", "poor"})
NEGATION_CUES = ("over", "not", "n't", "no", "never", "rather than", "instead of", "than", "except", "wasn't", "isn't",
                 "doesn't", "don't", "ruled out", "rule out", "eliminate", "other than", "nothing like", "unlike")
COMPARISON_CUES = ("like in", "similar to", "as in", "same as", "compared to", "for example", "such as", "also in",
                   "just like", "reminds me of", "as well as", "like", "or")
_TOKEN = re.compile(r"[a-z0-9][a-z0-9'\-]*")


@dataclass
class Mention:
    text: str
    key: str
    candidates: list[tuple[str, float]]  # (ISO code, prior) — one unless the name is ambiguous
    kind: str  # name | demonym | language | city | region | misspelling
    token_index: int
    place: gazetteer.Place | None = None
    weight: float = 0.0  # filled by scoring
    code: str | None = None  # resolved country
    options: list[tuple] = field(default_factory=list)  # (code, kind, population prior, place) per candidate
    describes_object: bool = False  # "french plates": a demonym naming a thing's country, not a language


@dataclass
class GeoParse:
    country_code: str | None
    country: str | None
    city: str | None
    region: str | None
    confidence: float
    evidence: list[str] = field(default_factory=list)
    error: str | None = None  # set when nothing could be parsed (empty transcript, no mention)
    ranked: list[tuple[str, float]] = field(default_factory=list)  # every country named, best score first
    # per candidate country: its evidence, each {"phrase", "mention", "kind", "token", "time_s", "weight"}
    candidates: dict[str, list[dict]] = field(default_factory=dict)


@dataclass
class RoundTalk:
    """One round's talk as the parser reads it: mentions (with resolved country and rule weight) and
    the structure around them. Both the rule scores and the learned ranker's features come from here."""

    tokens: list[str]
    token_times: list[float] | None = None
    mentions: list[Mention] = field(default_factory=list)
    guess_index: int | None = None  # guess/reveal point (from guess_s, else detected); None = not found
    guess_known: bool = False  # guess_index comes from a known guess time
    bounds: tuple[int, int] = (0, 0)  # this round's token range inside the window
    revealed: Mention | None = None  # named behind a reveal phrase after the guess (or the opening result)
    opening: Mention | None = None  # the window opens with this round's result (`_opening_result`)
    first_after_reveal: Mention | None = None
    rule_scores: dict[str, float] = field(default_factory=dict)
    error: str | None = None


_NAME_KINDS = frozenset({"name", "demonym", "language", "misspelling"})
REVEAL_KINDS = frozenset({"name", "misspelling", "demonym", "region", "city"})  # what a reveal may name


@lru_cache(maxsize=4)
def _mention_index(min_city_population: int, min_single_word_city_population: int) -> dict[str, list[tuple]]:
    """normalised phrase → [(code, kind, prior, place)] for every phrase a mention can be."""
    index: dict[str, list[tuple]] = defaultdict(list)
    for key, (code, how) in gazetteer.country_index().items():
        if (len(key) < 3 and key not in {"uk", "nz"}) or key in gazetteer.COMMON_WORD_DEMONYMS:
            continue
        index[key].append((code, how, NAME_PRIOR_POPULATION, None))
    for key, code in MISSPELLINGS.items():
        if key not in index:
            index[key].append((code, "misspelling", NAME_PRIOR_POPULATION, None))
    for key, code in SPOKEN_NAMES.items():
        index[key] = [(code, "name", NAME_PRIOR_POPULATION, None)]
    for key, places in gazetteer.place_index(min_city_population).items():
        if len(key) < 3 or key in COMMON_WORDS:
            continue
        names_country = key in index
        single = " " not in key
        for place in places:
            if place.kind == "country":
                continue
            if names_country and not _rivals_country_name(place, index[key]):
                continue
            if place.kind == "city":
                main_name = gazetteer.normalize(place.name) == key
                if single and place.population < min_single_word_city_population:
                    continue
                if not main_name and place.population < 500_000:
                    continue  # GeoNames alternate names are noisy; trust them only for big cities
            if place.kind == "admin1" and (all(w in COMMON_WORDS or w in GENERIC_REGION_WORDS for w in key.split())
                                           or _word_like_subdivision(key, place)):
                continue
            kind = "region" if place.kind == "admin1" else "city"
            index[key].append((place.country_code, kind, float(place.population), place))
    # one entry per country and key: a name beats a place; among places the most populous wins
    out: dict[str, list[tuple]] = {}
    for key, entries in index.items():
        best: dict[str, tuple] = {}
        for entry in entries:
            current = best.get(entry[0])
            if (current is None or (entry[1] in _NAME_KINDS and current[1] not in _NAME_KINDS)
                    or (current[1] not in _NAME_KINDS and entry[1] not in _NAME_KINDS and entry[2] > current[2])):
                best[entry[0]] = entry
        out[key] = list(best.values())
    for key in NOT_COUNTRY:
        out[key] = []
    return out


def _word_like_subdivision(key: str, place: gazetteer.Place) -> bool:
    """ISO subdivision names that read as English words or syllables in speech ("meta", "mono",
    "delta", "bloke"): GeoNames can't place them (coords_approx) and players rarely say them."""
    if not place.coords_approx or place.admin1 is None:  # admin1 None: the gazetteer's curated exonyms
        return False
    return key in ENGLISH_WORD_SUBDIVISIONS or (" " not in key and len(key) <= 4)


def _rivals_country_name(place: gazetteer.Place, entries: list[tuple]) -> bool:
    """A place sharing a country's name is a candidate only if it is big and elsewhere (US Georgia)."""
    if any(e[0] == place.country_code for e in entries):
        return False
    exact_region = place.kind == "admin1" and not place.coords_approx
    return exact_region or (place.kind == "city" and place.population >= 1_000_000)


_KEEP_S = frozenset({"it's", "let's", "that's", "there's", "what's", "here's", "he's", "she's", "who's", "where's"})


def _tokens(text: str) -> list[str]:
    """Lowercase word tokens; a possessive 's is cut ("brazil's" → "brazil"), "it's"/"let's" stay."""
    return [t[:-2] if t.endswith("'s") and t not in _KEEP_S else t
            for t in _TOKEN.findall(gazetteer.normalize(strip_asr_tags(text)))]


def _phrase_before(tokens: list[str], index: int, width: int) -> str:
    return " " + " ".join(tokens[max(0, index - width):index]) + " "


def _has_cue(context: str, cues: tuple[str, ...]) -> bool:
    return any(f" {cue} " in context for cue in cues)


class Geoparser:
    def __init__(self, config: GeoparseConfig | None = None, weights: CueWeights = WEIGHTS, ranker="default"):
        """`ranker`: a fitted `geoparse_ranker.CandidateRanker`, "default" (the shipped weights) or None
        (the hand-set rule scores alone)."""
        self.config = config or GeoparseConfig()
        self.weights = weights
        if ranker == "default":
            from annotate.stages.geoparse_ranker import default_ranker
            ranker = default_ranker()
        self.ranker = ranker
        self.index = _mention_index(self.config.min_city_population, self.config.min_single_word_city_population)
        self.max_len = max((len(k.split()) for k in self.index), default=1)

    # --- mentions -------------------------------------------------------------------------
    def mentions(self, tokens: list[str], raw_tokens: list[str] | None = None) -> list[Mention]:
        found: list[Mention] = []
        i = 0
        while i < len(tokens):
            for n in range(min(self.max_len, len(tokens) - i), 0, -1):
                key = " ".join(tokens[i:i + n])
                entries = self.index.get(key)
                if entries is None:
                    continue
                if entries:
                    if key == "us" and raw_tokens is not None and raw_tokens[i] != "US":
                        break
                    total = sum(e[2] for e in entries) or 1.0
                    kind = entries[0][1] if len(entries) == 1 else _dominant_kind(entries)
                    found.append(Mention(text=key, key=key, candidates=[(e[0], e[2] / total) for e in entries],
                                         kind=kind, token_index=i, place=next((e[3] for e in entries if e[3]), None),
                                         options=list(entries),
                                         describes_object=i + n < len(tokens) and tokens[i + n] in OBJECT_NOUNS))
                i += n - 1
                break
            i += 1
        return found

    # --- scoring --------------------------------------------------------------------------
    def analyse(self, transcript: str | list[dict], guess_s: float | None = None,
                round_number: int | None = None) -> RoundTalk:
        """Every mention of one round with its resolved country, rule weight and the talk's structure
        (round bounds, guess point, the reveal). `transcript`: text, or word records with start
        times; `guess_s`: when the guess was made (word times only); `round_number`: the round's
        number in its game (1–5), which lets a spoken "round three" mark where this round starts."""
        if isinstance(transcript, list):
            words = [w for w in transcript if str(w.get("text", "")).strip()]
            tokens, token_times = [], []
            for w in words:
                for t in _tokens(str(w["text"])):
                    tokens.append(t)
                    token_times.append(float(w.get("start", 0.0)))
        else:
            tokens, token_times = _tokens(transcript or ""), None
        talk = RoundTalk(tokens=tokens, token_times=token_times)
        if not tokens:
            talk.error = "empty transcript"
            return talk
        mentions = _without_repeats(self.mentions(tokens))
        talk.mentions = mentions
        if not mentions:
            talk.error = "no place mentioned"
            return talk
        guess_index = self._guess_index(tokens, token_times, guess_s)
        guess_known = guess_index is not None
        bounds = _round_bounds(tokens, round_number)
        if guess_index is None and self.weights.detect_reveal:
            # this round's reveal lies inside this round's piece of the window
            start, end = bounds
            within = _reveal_token_index(tokens[start:end])
            guess_index = None if within is None else start + within
        if not guess_known:
            bounds = (max(bounds[0], _opening_reveal_end(tokens, guess_index)), bounds[1])
        scores: dict[str, float] = defaultdict(float)
        for m in mentions:
            m.weight = self._weight(m, tokens, guess_index, guess_known, bounds)
        # pass 1: unambiguous mentions; pass 2: ambiguous ones lean toward what pass 1 favours
        for m in mentions:
            if len(m.candidates) == 1:
                m.code = m.candidates[0][0]
                scores[m.code] += m.weight
        for m in mentions:
            if len(m.candidates) > 1:
                m.code = max(m.candidates, key=lambda c: self._ambiguity_score(c, scores))[0]
                chosen = next(o for o in m.options if o[0] == m.code)
                m.kind, m.place = chosen[1], chosen[3]
                m.weight = self._weight(m, tokens, guess_index, guess_known, bounds)
                scores[m.code] += m.weight
        talk.guess_index, talk.guess_known, talk.bounds = guess_index, guess_known, bounds
        if guess_index is not None:
            talk.first_after_reveal = self._boost_first_after_reveal(mentions, scores, guess_index, bounds)
        revealed = self._revealed(mentions, tokens, guess_index, bounds)
        opening = None if guess_known else self._opening_result(mentions, tokens, guess_index, revealed)
        talk.revealed, talk.opening = revealed, opening
        if opening is not None:
            # the window opens with this round's result and then holds the whole next round
            scores[opening.code] = max(scores.values()) + 1.0
            talk.revealed = opening
        elif revealed is not None:
            # the answer said out loud after the guess ("oh it was Malaysia") settles it
            scores[revealed.code] = max(scores.values()) + abs(revealed.weight) + 1.0
        talk.rule_scores = dict(scores)
        return talk

    def predict(self, transcript: str | list[dict], guess_s: float | None = None,
                round_number: int | None = None) -> GeoParse:
        """Country (and city/region) of one round (see `analyse` for the arguments). Countries are
        ranked by the learned ranker when the parser has one (`ranker`), else by the rule scores."""
        talk = self.analyse(transcript, guess_s, round_number)
        if talk.error:
            return GeoParse(None, None, None, None, 0.0, [], error=talk.error)
        mentions, tokens = talk.mentions, talk.tokens
        if self.ranker is not None:
            from annotate.stages.geoparse_ranker import round_features
            features = round_features(talk)
            scores = self.ranker.scores(features)
            contributions = self.ranker.mention_contributions(features)
        else:
            scores, contributions = talk.rule_scores, {id(m): m.weight for m in mentions}
        ranked = sorted(scores.items(), key=lambda kv: -kv[1])
        best_code, best_score = ranked[0]
        if self.ranker is None and best_score <= 0:
            return GeoParse(None, None, None, None, 0.0, [m.text for m in mentions], error="only negated mentions")
        if self.ranker is not None:
            confidence = self.ranker.probabilities(scores)[best_code]
        else:
            positive = sum(max(s, 0.0) for _, s in ranked)
            confidence = best_score / positive if positive else 0.0
        country = gazetteer.country_by_code(best_code)
        support = [m for m in mentions if m.code == best_code and m.weight > 0]
        city = _most_weighted(m for m in support if m.kind == "city")
        region = _most_weighted(m for m in support if m.kind == "region")
        evidence = [f"{m.text} ({m.kind}, w={contributions.get(id(m), m.weight):.2f})"
                    for m in sorted(support, key=lambda m: -contributions.get(id(m), m.weight))[:6]]
        opening, revealed = talk.opening, talk.revealed
        if opening is not None and opening.code == best_code:
            said = " ".join(tokens[:opening.token_index + 1][-12:])
            evidence.insert(0, f"this round's result opens the window: {said}")
        elif revealed is not None and revealed.code == best_code:
            said = " ".join(tokens[max(0, revealed.token_index - 3):revealed.token_index + 1])
            evidence.insert(0, f"revealed after the guess: {said}")
        by_candidate: dict[str, list[dict]] = defaultdict(list)
        for m in mentions:
            if m.code is None:
                continue
            by_candidate[m.code].append({
                "phrase": " ".join(tokens[max(0, m.token_index - 4):m.token_index + len(m.key.split())]),
                "mention": m.text, "kind": m.kind, "token": m.token_index,
                "time_s": talk.token_times[m.token_index] if talk.token_times else None,
                "weight": round(contributions.get(id(m), m.weight), 3)})
        return GeoParse(best_code, country.name if country else best_code, city, region,
                        round(confidence, 3), evidence,
                        ranked=[(code, round(score, 3)) for code, score in ranked],
                        candidates={code: by_candidate.get(code, []) for code, _ in ranked})

    def _boost_first_after_reveal(self, mentions: list[Mention], scores: dict[str, float], guess_index: int,
                                  bounds: tuple[int, int]) -> Mention | None:
        """The first country named shortly after the guess/reveal point is usually what the result
        screen showed (the expert reads it out, cue or not: "okay yeah was really far south Thailand")."""
        _, end = bounds
        cw = self.weights
        horizon = min(end, guess_index + cw.first_after_reveal_tokens)
        first = next((m for m in mentions if guess_index <= m.token_index < horizon and m.kind in REVEAL_KINDS
                      and not _widespread(m) and m.weight > 0), None)
        if first is not None:
            boosted = first.weight * cw.first_after_reveal
            scores[first.code] += boosted - first.weight
            first.weight = boosted
        return first

    def _opening_result(self, mentions: list[Mention], tokens: list[str], guess_index: int | None,
                        revealed: Mention | None) -> Mention | None:
        """The place named in an opening reveal ("the zoo of Mexico City okay I got the country right")
        when the window then holds a whole other round: reasoning, a guess, a reveal naming another
        country, and talk about that result. A window that ends at (or shortly after) its reveal is
        this round's, and its opening reveal is the previous round's; one that runs on well past a
        later reveal was cut a round late, so its opening reveal is this round's result."""
        if guess_index is None or revealed is None:
            return None
        n = len(tokens)
        if n - revealed.token_index < max(MIN_POST_REVEAL_TOKENS, POST_REVEAL_SHARE * n):
            return None
        opening_end = min(OPENING_MAX_TOKENS, int(OPENING_SHARE * n))
        if guess_index - opening_end < MIN_ROUND_TOKENS:
            return None  # no room for a whole round between the opening and the later guess
        if not _phrase_positions(tokens[:opening_end], OPENING_REVEAL_WORDS):
            return None
        reasoned = {m.code for m in mentions if opening_end <= m.token_index < guess_index and m.weight > 0}
        for m in mentions:
            if m.token_index >= opening_end:
                break
            if (len(m.candidates) == 1 and m.kind in REVEAL_KINDS and not _widespread(m) and m.code != revealed.code
                    and m.code not in reasoned and not _is_negated(tokens, m.token_index)):
                return m
        return None

    def _ambiguity_score(self, candidate: tuple[str, float], scores: dict[str, float]) -> float:
        """Support already gathered for the candidate's country × its prior (× Street View coverage)."""
        code, prior = candidate
        support = max(scores.get(code, 0.0), 0.0) + self.weights.ambiguity_support
        return support * (prior + 0.05) * (1.0 if _street_view(code) else 0.5)

    def _revealed(self, mentions: list[Mention], tokens: list[str], guess_index: int | None,
                  bounds: tuple[int, int]) -> Mention | None:
        """First country named after the guess right behind a reveal phrase ("it was", "oh …")."""
        if guess_index is None:
            return None
        _, end = bounds
        for m in mentions:
            if not (guess_index <= m.token_index < end) or len(m.candidates) != 1:
                continue
            # the reveal often names the state or city ("oh it was New York state"): places count too
            if m.kind not in REVEAL_KINDS or _widespread(m) or _is_negated(tokens, m.token_index):
                continue
            if _has_cue(_phrase_before(tokens, m.token_index, 4), REVEAL_STATEMENTS + SURPRISE_CUES):
                return m
        return None

    def _guess_index(self, tokens: list[str], token_times: list[float] | None, guess_s: float | None) -> int | None:
        if guess_s is not None and token_times:
            for i, t in enumerate(token_times):
                if t >= guess_s:
                    return i
            return len(tokens)
        return None

    def _weight(self, m: Mention, tokens: list[str], guess_index: int | None, guess_known: bool,
                bounds: tuple[int, int]) -> float:
        pos = m.token_index / max(len(tokens) - 1, 1)
        w = KIND_WEIGHT.get(m.kind, 0.5)
        if _widespread(m):
            w = WIDESPREAD_WEIGHT
        if m.key in WEAK_NAMES:
            w *= WEAK_NAMES[m.key]
        if m.kind == "city" and m.place is not None:
            # bigger cities are likelier meant; a 15k town named like a word is a weak vote
            w *= min(1.0, 0.4 + 0.1 * math.log10(max(m.place.population, 10)))
            if gazetteer.normalize(m.place.name) != m.key:
                w *= ALTERNATE_NAME_WEIGHT  # "danan" for Da Nang: captions make such spellings out of other words
        before = _phrase_before(tokens, m.token_index, 4)
        near = _phrase_before(tokens, m.token_index, 8)
        # position: later counts more; the first stretch is intro / previous round's reveal
        cw = self.weights
        w *= cw.position_floor + (1 - cw.position_floor) * pos
        if pos < cw.early_stretch:
            w *= cw.early
        if _widespread(m):
            # "it's Portuguese" names a language, not where the round is: no cue lifts it
            return w * cw.negation if _is_negated(tokens, m.token_index) else w
        after_guess = guess_index is not None and m.token_index >= guess_index
        if after_guess and guess_known:
            w *= cw.after_guess_reveal if _has_cue(near, REVEAL_CUES) else cw.after_guess
        elif pos > 0.5 and _states_reveal(near):
            w *= cw.reveal_statement
        elif pos > 0.5 and len(m.candidates) == 1 and _has_cue(_phrase_before(tokens, m.token_index, 2), SURPRISE_CUES):
            w *= cw.surprise
        elif after_guess:
            w *= cw.detected_after
        start, end = bounds
        if m.token_index < start or m.token_index >= end:
            w *= cw.other_round
        if _has_cue(near, REGRET_CUES):
            # hindsight early in the window is about the previous round's result
            return abs(w) * (cw.regret if pos > EARLY_HINDSIGHT else cw.other_round)
        if _has_cue(near, STRONG_CONCLUSION):
            w *= cw.strong_conclusion
        elif _has_cue(before, CONCLUSION_CUES):
            w *= cw.conclusion
        if _is_negated(tokens, m.token_index):
            w *= cw.negation
        elif _has_cue(_phrase_before(tokens, m.token_index, 3), COMPARISON_CUES):
            w *= cw.comparison
        return w


def _without_repeats(mentions: list[Mention]) -> list[Mention]:
    """One vote for a name said again within a few words ("danan danan danan", "french french"):
    a speaker repeating a word while reading a sign has not found more evidence."""
    kept: list[Mention] = []
    last_seen: dict[str, int] = {}
    for m in mentions:
        previous = last_seen.get(m.key)
        last_seen[m.key] = m.token_index
        if previous is None or m.token_index - previous > REPEAT_TOKENS:
            kept.append(m)
    return kept


def _widespread(m: Mention) -> bool:
    return m.kind in ("demonym", "language") and m.key in WIDESPREAD_LANGUAGES and not m.describes_object


def _states_reveal(context: str) -> bool:
    """"it was X", "we were in X" — but not the speaker's own state ("i was actually kind of thinking of X")."""
    return _has_cue(context.replace(" i was actually ", " "), REVEAL_STATEMENTS)


def _is_negated(tokens: list[str], index: int) -> bool:
    """A negation in the three words before, not counting exclamations ("oh no it was X")."""
    window = " " + " ".join(tokens[max(0, index - 3):index]) + " "
    for exclamation in (" oh no ", " no no ", " no way "):
        window = window.replace(exclamation, " ")
    return any(f" {cue} " in window for cue in NEGATION_CUES) or any(w.endswith("n't") for w in window.split())


def _round_cuts(tokens: list[str]) -> list[int]:
    """Token indices where a round starts (round-start markers); cuts closer than `MIN_ROUND_TOKENS`
    merge into the later one, and none sits in the window's first few words."""
    cuts = _phrase_positions(tokens, tuple(re.escape(m) for m in ROUND_START_MARKERS))
    merged: list[int] = []
    for cut in cuts:
        if cut < MIN_ROUND_TOKENS // 2:
            continue
        if merged and cut - merged[-1] < MIN_ROUND_TOKENS:
            merged[-1] = cut
        else:
            merged.append(cut)
    return merged


def _round_bounds(tokens: list[str], round_number: int | None = None) -> tuple[int, int]:
    """Token range of this round inside a window that may also hold the previous round's tail and
    the next round's start. When the speaker names this round ("round three let's keep it going",
    "good second round") that settles where it starts or ends (`_named_round_bounds`); otherwise
    the window is cut at every round-start marker ("next round", "here we are"…) and the longest
    piece is taken as this round (a window is cut around one round, so it holds most of it)."""
    cuts = _round_cuts(tokens)
    n = len(tokens)
    named = _named_round_bounds(tokens, round_number, cuts) if round_number else None
    if named is not None:
        return named
    edges = [0, *cuts, n]
    pieces = [(edges[i], edges[i + 1]) for i in range(len(edges) - 1) if edges[i + 1] > edges[i]]
    return max(pieces, key=lambda p: p[1] - p[0]) if pieces else (0, n)


def _named_round_bounds(tokens: list[str], round_number: int, cuts: list[int]) -> tuple[int, int] | None:
    """This round's range when the speaker names it. Named with a verdict ("good second round",
    "that final round") it is this round's result, so the round ends there; named plainly ("round
    three here we go") it starts there. The other end is the nearest round-start marker at least a
    round's length away, else the window's edge. None when the round isn't named (or only judged in
    the opening words, where the window may start at this round's end)."""
    names = _round_names(round_number)
    if not names:
        return None
    n = len(tokens)
    for pos in _phrase_positions(tokens, names):
        if pos and tokens[pos - 1] in ROUND_VERDICT_WORDS:
            if pos < MIN_ROUND_TOKENS:
                continue  # judged in the opening words: the window may start at this round's end
            start = max((c for c in cuts if c <= pos - MIN_ROUND_TOKENS), default=0)
            return start, min(n, pos + 2)
        end = min((c for c in cuts if c >= pos + MIN_ROUND_TOKENS), default=n)
        return pos, end
    return None


def _round_names(round_number: int) -> tuple[str, ...]:
    spoken = ROUND_NUMBER_WORDS.get(round_number)
    if spoken is None:
        return ()
    cardinal, ordinal = spoken
    names = [f"round {cardinal}", f"round {round_number}", f"{ordinal} round"]
    if round_number == 5:
        names += ["final round", "last round"]
    return tuple(names)


def _opening_reveal_end(tokens: list[str], guess_index: int | None) -> int:
    """Where the result talk that opens a window (the previous round's reveal) ends: a chain of
    result phrases starting in the first `OPENING_MAX_TOKENS`, each within `REVEAL_CHAIN_GAP` tokens of
    the last, plus a few words; 0 when the window doesn't open with one. Kept short of the guess."""
    n = len(tokens)
    limit = min(int(MAX_OPENING_REVEAL_SHARE * n), (guess_index if guess_index is not None else n) - MIN_ROUND_TOKENS)
    end = None
    for i in _phrase_positions(tokens, RESULT_WORDS):
        if i >= limit:
            break
        if (end is None and i < OPENING_MAX_TOKENS) or (end is not None and i - end <= REVEAL_CHAIN_GAP):
            end = i
        elif end is None:
            break
    return 0 if end is None else min(end + REVEAL_TAIL_TOKENS, max(limit, 0))


def _dominant_kind(entries: list[tuple]) -> str:
    for kind in ("name", "demonym", "misspelling", "language", "region", "city"):
        if any(e[1] == kind for e in entries):
            return kind
    return entries[0][1]


def _street_view(code: str) -> bool:
    country = gazetteer.country_by_code(code)
    return bool(country and country.street_view)


def _most_weighted(mentions) -> str | None:
    totals: dict[str, float] = defaultdict(float)
    names: dict[str, str] = {}
    for m in mentions:
        totals[m.key] += m.weight
        names[m.key] = m.place.name if m.place else m.text
    if not totals:
        return None
    return names[max(totals, key=totals.get)]


# --- reveal detection (when the guess time is unknown) -----------------------------------------

# phrases that commit to the guess / open the result; "let's see" only when nothing follows that
# makes it part of the reasoning ("let's see where the sun is")
GUESS_COMMIT = (r"let's see(?! (?:where|what|which|the|if we can|if i can|if there|any|some|a |on |in ))",
                r"let's have a look(?! around| at)", r"let's take a look(?! around| at)", "let's check(?! the)",
                "how wrong", "let's find out", "this is my guess", "this will be my guess", "be my guess",
                "lock it in", "let's go with", "let's click", "let's guess", "i'll guess", "going to guess",
                "gonna guess", "let's lock", "rip it in", "see if we're right", "see if i'm right", "see how we did",
                "see how i did", "send it", "fingers crossed")
# phrases said once the result shows (scores, distances, surprise, "it was X")
REVEAL_WORDS = (r"(?:oh|okay|ok|so|no|yes|yeah|wow|and|ah) it was", "it was actually", "it was just",
                r"\d[\d,]* points", r"(?:thousand|hundred|[\dk]) points",
                r"(?:\d[\d,.]*|a) (?:kilometers|kilometres|km|miles|meters) away", r"(?:i|we) got \d[\d,]*",
                "well done", "oh no", "5k", "five k", "not bad", "how did i", "oh wow", "oh it's", "oh okay",
                "right country", "wrong country", "got the country", "missed the country")

# how a result is talked about at the start of a window (besides `REVEAL_WORDS`)
OPENING_REVEAL_WORDS = REVEAL_WORDS + ("good guess", "great guess", "bad guess", "good result", "good score",
                                       "not too far", "not far", "so close", "pretty close", "too far", "far away",
                                       "got it right")

# result talk proper (no bare exclamations, which reasoning is full of: "oh okay we can see the ocean")
RESULT_WORDS = tuple(w for w in OPENING_REVEAL_WORDS if w not in ("oh no", "oh wow", "oh it's", "oh okay", "how did i"))


def _spoken(text: str) -> tuple[list[str], list[int]]:
    """Lowercase word tokens of `text` (apostrophes kept) and their character offsets."""
    tokens, offsets = [], []
    for m in re.finditer(r"\S+", text):
        word = re.sub(r"[^\w']", "", m.group(0).lower())
        if word:
            tokens.append(word)
            offsets.append(m.start())
    return tokens, offsets


def _phrase_positions(tokens: list[str], patterns: tuple[str, ...]) -> list[int]:
    """Token indices where any of the regex `patterns` starts (whole words)."""
    joined = " " + " ".join(tokens) + " "
    found = []
    for pattern in patterns:
        for match in re.finditer(f" {pattern}(?= )", joined):
            found.append(joined[: match.start() + 1].count(" ") - 1)
    return sorted(found)


def reveal_offset(text: str, earliest: float = 0.45) -> int | None:
    """Character offset where the guess is made / the answer revealed in an untimed transcript.

    The first reveal phrase ("it was", "points", "km away", "oh no"…) after `earliest` of the
    text; if a guess-commit phrase ("let's see", "how wrong"…) comes shortly before it, the cut
    moves back there. None when no reveal phrase is found.
    """
    tokens, offsets = _spoken(text)
    n = len(tokens)
    if n < 20:
        return None
    reveal = [i for i in _phrase_positions(tokens, REVEAL_WORDS) if i >= earliest * n]
    commits = [i for i in _phrase_positions(tokens, GUESS_COMMIT) if i >= earliest * n]
    if not reveal and not commits:
        return None
    cut = min(reveal) if reveal else min(commits)
    before = [c for c in commits if cut - 40 <= c <= cut]
    if before:
        cut = min(before)
    return offsets[min(cut, n - 1)]


def _reveal_token_index(tokens: list[str]) -> int | None:
    text = " ".join(tokens)
    offset = reveal_offset(text)
    return None if offset is None else text[:offset].count(" ")


def round_start_offset(text: str, round_number: int | None = None) -> int:
    """Character offset after the previous round's tail (an early round-start marker), else 0."""
    tokens, offsets = _spoken(text)
    if not tokens:
        return 0
    start, _ = _round_bounds(tokens, round_number)
    return offsets[start] if 0 < start < len(offsets) else 0


def pre_reveal_text(text: str, round_number: int | None = None) -> str:
    """The part of an untimed round transcript between the round start and the guess/reveal
    (`round_number`, when known, lets a spoken "round three" bound the round)."""
    text = strip_asr_tags(text or "")
    start = round_start_offset(text, round_number)
    end = reveal_offset(text)
    if end is None or end <= start:
        end = len(text)
    return text[start:end].strip()
