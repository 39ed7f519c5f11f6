"""Answer-guided offline rewrite: an expert's pre-reveal talk → concise first-person reasoning.

What the paper asked GPT-4o for (given the true country and coordinates), done without a model:

1. the talk is split into sentences, cleaned of ASR tags and filler; talk after the reveal ("it was",
   scores, distances) is cut;
2. every visual clue the expert names (typed spans from `annotate.stages.clues`) becomes an
   observation: the clue with the words that describe it ("white road lines with a yellow centre",
   "concrete poles") — never the other countries the expert weighed, so wrong turns are dropped
   rather than contradicted;
3. each observation is stated in the first person with what it implies, the implication answer-guided:
   the climate and hemisphere from the true latitude, the sign language from the true country, the
   style "typical of" the true country or its region of the world;
4. the conclusion names the true country and where in it (compass part from the country's centre,
   the nearest sizeable city when close).

The shape — which clue kinds come first and how long the text runs — is a `ReasoningStyle`; its
defaults follow the paper's references (landscape and climate first, then roads, signs and
buildings; ≈ 840 characters) and `fit_style` learns both from reference texts (the benchmark fits it
on training folds only). Phrasing comes from the small template table below, never from references.
"""
from __future__ import annotations

import math
import re
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from annotate import gazetteer
from annotate.records import Clue
from annotate.text import clean, split_sentences, tidy_spoken, to_sentence_case

# clue kinds the image itself shows (meta about the camera, coverage or the map is no visual clue)
VISUAL_CATEGORIES = ("terrain_soil", "vegetation", "sun_hemisphere", "road", "road_marking", "driving_side",
                     "bollard", "utility_pole", "licence_plate", "car_meta", "sign", "language_script",
                     "architecture", "flag", "landmark")
PLACE_CATEGORIES = frozenset({"country", "demonym", "city", "region", "language", "script", "world_region"})
# car_meta words that are about the recording, not the scene
META_WORDS = frozenset({"camera", "generation", "gen", "blur", "blurry", "coverage", "trekker", "antenna", "snorkel",
                        "google", "follow"})

# talk that only comes once the answer shows: a sentence holding one is after the reveal
REVEAL_PHRASES = re.compile(
    r"\b(?:it was|it's actually|\d[\d,]* points|(?:thousand|hundred) points|kilometers away|"
    r"kilometres away|km away|miles away|i got \d|five k|5k|right country|wrong country|got the country|"
    r"missed the country|let's see how|how did i do|how far)\b", re.IGNORECASE)
# channel chatter and game mechanics: never a clue sentence
CHATTER = re.compile(
    r"\b(?:subscribe|like button|comment|description|link|video|channel|patreon|discord|thanks for watching|"
    r"welcome|play along|score|seconds|time left|power ?up|challenge|clicked|my map|the map|zoom|round|"
    r"pro|free version|spoil|google|meta|coverage|geoguessr|playing)\b", re.IGNORECASE)
# words that open a describing phrase before a clue noun ("yellow", "concrete", "tall") are kept; these end it
_PHRASE_STOP = frozenset("""a an the this that these those we i you it they he she there here is are was were be
been have has had do does did so and but or if then than to of in on at for from by with as like just really very
also maybe probably some any lot lots of kind sort well okay ok oh yeah yes no not see saw look looks looking
looked think thought guess going gonna get got can could would should will might must which what where who why how
because since about again even still only all every each other another more most much many few little big""".split())
_COPULA = frozenset({"is", "are", "was", "were", "look", "looks", "seem", "seems"})
_PREDICATE_STOP = _PHRASE_STOP - {"very", "really", "all", "more", "big", "little"}
MAX_MODIFIERS = 3
MAX_PREDICATE = 3
MAX_PER_CATEGORY = 3

DEFAULT_ORDER = VISUAL_CATEGORIES


@dataclass(frozen=True)
class ReasoningStyle:
    """The shape of a reasoning: its length and the order in which clue kinds are discussed."""

    target_chars: int = 840
    category_order: tuple[str, ...] = DEFAULT_ORDER


def fit_style(references: Sequence[str], extract: Callable[[str], list[Clue]],
              default: ReasoningStyle = ReasoningStyle()) -> ReasoningStyle:
    """Length (median) and clue-kind order (mean relative position of each kind's clues) of `references`."""
    texts = [r for r in references if r and r.strip()]
    if not texts:
        return default
    positions: dict[str, list[float]] = {}
    for text in texts:
        lower = text.lower()
        for clue in extract(text):
            if clue.category in VISUAL_CATEGORIES:
                at = lower.find(clue.text.lower())
                positions.setdefault(clue.category, []).append(max(at, 0) / max(len(text), 1))
    mean = {c: statistics.mean(v) for c, v in positions.items()}
    unseen = [c for c in default.category_order if c not in mean]
    order = tuple(sorted(mean, key=mean.get)) + tuple(unseen)
    return ReasoningStyle(int(statistics.median(len(t) for t in texts)), order)


@dataclass
class Observation:
    category: str
    phrase: str  # the clue with the words that describe it, lowercase
    index: int  # sentence index in the talk (order of discovery)


def pre_reveal_sentences(transcript: str) -> list[str]:
    """Cleaned sentences of the talk up to the reveal: from the first sentence that talks about the
    result in the latter part of the talk on, nothing is kept, and a result sentence earlier (the
    previous round's) is dropped alone."""
    sentences = [tidy_spoken(clean(s)) for s in split_sentences(transcript)]
    sentences = [s for s in sentences if s]
    kept: list[str] = []
    for i, sentence in enumerate(sentences):
        if REVEAL_PHRASES.search(sentence):
            if i >= 0.4 * len(sentences):
                break
            continue
        kept.append(sentence)
    return kept


def _words(text: str) -> list[str]:
    return [w for w in re.findall(r"[a-z0-9][a-z0-9'\-]*", text.lower())]


def _phrase_for(words: list[str], start: int, length: int, foreign: set[str]) -> str:
    """The clue words[start:start+length] with the describing words before it and a short predicate
    after a copula ("the road lines are white"); foreign place words end the phrase."""
    begin = start
    while (begin > 0 and start - begin < MAX_MODIFIERS and words[begin - 1] not in _PHRASE_STOP
           and "'" not in words[begin - 1] and words[begin - 1] not in foreign and not words[begin - 1].isdigit()):
        begin -= 1
    end = start + length
    phrase = words[begin:end]
    if end < len(words) and words[end] in _COPULA:
        predicate = []
        for w in words[end + 1:end + 1 + MAX_PREDICATE]:
            if w in _PREDICATE_STOP or w in foreign or "'" in w:
                break
            predicate.append(w)
        if predicate:
            phrase = phrase + [words[end]] + predicate
    return " ".join(phrase)


def observations(sentences: Sequence[str], extract: Callable[[str], list[Clue]], true_code: str | None) -> list[Observation]:
    """Visual clues of the talk with their describing words, at most `MAX_PER_CATEGORY` per kind
    (the most descriptive first seen), none touching another country's name."""
    found: dict[str, list[Observation]] = {}
    seen: set[str] = set()
    for index, sentence in enumerate(sentences):
        if CHATTER.search(sentence):
            continue
        clues = extract(sentence)
        words = _words(sentence)
        foreign = {w for c in clues if _foreign(c, true_code) for w in _words(c.text)}
        for clue in clues:
            if clue.category not in VISUAL_CATEGORIES:
                continue
            clue_words = _words(clue.text)
            if not clue_words or (clue.category == "car_meta" and META_WORDS & set(clue_words)):
                continue
            start = next((i for i in range(len(words)) if words[i:i + len(clue_words)] == clue_words), None)
            if start is None:
                continue
            phrase = _phrase_for(words, start, len(clue_words), foreign)
            head = clue_words[-1].rstrip("s")
            if head in seen:
                continue
            seen.add(head)
            found.setdefault(clue.category, []).append(Observation(clue.category, phrase, index))
    out: list[Observation] = []
    for category, items in found.items():
        # the more words describe a clue, the more it says: keep the richest, in the order said
        richest = sorted(items, key=lambda o: -len(o.phrase.split()))[:MAX_PER_CATEGORY]
        out.extend(sorted(richest, key=lambda o: o.index))
    return out


# --- what the true place implies (answer-guided, like the paper's rewrite) ------------------------

def climate(lat: float) -> str:
    a = abs(lat)
    if a < 23.5:
        return "tropical"
    if a < 35:
        return "warm, subtropical"
    if a < 50:
        return "temperate"
    if a < 60:
        return "cool, northern" if lat > 0 else "cool, southern"
    return "cold, " + ("northern" if lat > 0 else "far southern")


def hemisphere(lat: float) -> str:
    return "northern" if lat >= 0 else "southern"


_COMPASS = ("north", "northeast", "east", "southeast", "south", "southwest", "west", "northwest")
CENTRAL_KM = 150.0  # closer than this to the country's centre is its central part


def part_of_country(code: str | None, lat: float, lng: float) -> str | None:
    """"the northeast", "the centre" … of the country, from its population-weighted centre."""
    country = gazetteer.country_by_code(code) if code else None
    if country is None or country.lat is None:
        return None
    dy = (lat - country.lat) * 111.0
    dx = (lng - country.lng) * 111.0 * math.cos(math.radians((lat + country.lat) / 2))
    if math.hypot(dx, dy) < CENTRAL_KM:
        return "the centre"
    bearing = (math.degrees(math.atan2(dx, dy)) + 360) % 360
    return "the " + _COMPASS[int((bearing + 22.5) // 45) % 8]


def languages_of(code: str | None) -> str | None:
    country = gazetteer.country_by_code(code) if code else None
    if country is None or not country.languages:
        return None
    first = list(dict.fromkeys(country.languages))[:2]
    return " and ".join(first) if len(country.languages) <= 3 else first[0]


def world_region(code: str | None) -> str | None:
    continent = gazetteer.continent_of(code) if code else None
    return gazetteer.continent_name(continent) if continent else None


# category → (opening, implication). {p}: the observation; {country}, {climate}, {hemisphere},
# {language}, {continent}: what the true place implies. An implication that needs a missing value is left out.
# category → (observation, implication). {p}: the clue phrases of that kind ("white poles and a
# transformer"); {country}, {climate}, {hemisphere}, {language}, {continent}, {side}: what the true place
# (or the talk) implies. The implication carries its own joint; one that needs a missing value is left out.
TEMPLATES: dict[str, tuple[str, str]] = {
    "terrain_soil": ("I notice {p} in the landscape", ", which fits the terrain of this region of {country}"),
    "vegetation": ("the vegetation includes {p}", ", suggesting a {climate} climate"),
    "sun_hemisphere": ("the position of the sun", " indicates that I am in the {hemisphere} hemisphere"),
    "road": ("I see {p}", ", typical of the roads in this part of {country}"),
    "road_marking": ("the road has {p}", ", a style of road marking common in {country}"),
    "driving_side": ("the cars drive on the {side} side of the road", ", which is consistent with {country}"),
    "bollard": ("there are {p} along the road", ", similar to the bollards used in {country}"),
    "utility_pole": ("I notice {p}", ", indicating the kind of utility poles common in {country}"),
    "licence_plate": ("the cars have {p}", ", a plate style used in {country}"),
    "car_meta": ("I see {p}", ", the kind of vehicles common in {continent}"),
    "sign": ("I see {p}", ", and the signs are written in {language}"),
    "language_script": ("I notice {p} on the signs", ", which suggests a {language}-speaking country"),
    "architecture": ("the architecture, with {p},", " is typical of {country}"),
    "flag": ("I notice {p}", ", which matches the flag of {country}"),
    "landmark": ("I spot {p} in the area", ", which helps narrow the location down"),
}
SINGLE = frozenset({"sun_hemisphere", "driving_side"})  # said once, whatever the talk repeats
OPENERS = ("I see", "I notice", "I spot", "I can see")


def _article(phrase: str) -> str:
    words = phrase.split()
    if not words or words[-1].endswith("s"):
        return phrase
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _listing(phrases: Sequence[str]) -> str:
    items = [_article(p) for p in phrases]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _render(category: str, group: Sequence[Observation], values: dict[str, str | None],
            used_openers: list[str]) -> str:
    opening, implication = TEMPLATES[category]
    side = "left" if any("left" in o.phrase for o in group) else "right"
    text = opening.format(p=_listing([o.phrase for o in group]), side=side)
    for plain in ("I see", "I notice", "I spot"):
        if text.startswith(plain + " "):  # vary the plain openers so the text does not read as a list
            opener = OPENERS[len(used_openers) % len(OPENERS)]
            used_openers.append(opener)
            text = opener + text[len(plain):]
            break
    fields = set(re.findall(r"{(\w+)}", implication))
    if all(values.get(f) for f in fields):
        text += implication.format(**{f: values[f] for f in fields})
    return text.rstrip(",")


def opening(values: dict[str, str | None]) -> str:
    """The scene as a whole: the climate of the true latitude and the region of the world."""
    where = f" somewhere in {values['continent']}" if values.get("continent") else ""
    area = f"{values['setting']} area" if values.get("setting") else "location"
    return f"As I look around, the climate feels {values['climate']}, suggesting a {area}{where}."


def synthesis(groups: dict[str, list[Observation]], values: dict[str, str | None]) -> str:
    """One sentence tying the kinds of clue seen to the region of the world and the country."""
    kinds = [KIND_NOUNS[c] for c in groups if c in KIND_NOUNS][:3]
    if not kinds or not values.get("country"):
        return ""
    region = f"{values['continent']}, and more precisely " if values.get("continent") else ""
    return (f"The {_plain_listing(kinds)} all fit {region}{values['country']}, a country known for its "
            f"{values['climate']} climate.")


KIND_NOUNS = {"terrain_soil": "landscape", "vegetation": "vegetation", "road": "roads", "road_marking": "road markings",
              "bollard": "bollards", "utility_pole": "poles", "licence_plate": "licence plates", "sign": "signs",
              "language_script": "language", "architecture": "architecture", "flag": "flags", "driving_side":
              "driving side", "sun_hemisphere": "sun position", "car_meta": "vehicles", "landmark": "landmarks"}


def _plain_listing(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


# country names said with an article ("the United States", "the Philippines")
_ARTICLE_NAME = re.compile(r"^(?:united|republic|democratic|central african|czech|dominican|netherlands|philippines|"
                           r"bahamas|gambia|maldives|solomon|marshall|faroe|falkland|virgin|cayman|comoros|"
                           r"seychelles)\b", re.IGNORECASE)


def with_article(country: str) -> str:
    return f"the {country}" if _ARTICLE_NAME.match(country) else country


def conclusion(country: str, code: str | None, lat: float, lng: float, city: str | None) -> str:
    part = part_of_country(code, lat, lng)
    named = with_article(country)
    where = f"{part} of {named}" if part else named
    near = f", near {city}" if city else ""
    return f"Considering all these clues, I conclude that this location is in {where}{near}."


# the expert thinking aloud about the search, not about the scene: no reasoning to keep
PROCESS_TALK = re.compile(
    r"\b(?:don't know|no idea|can't find|don't find|couldn't find|not sure|let me|let's|i have to|i need to|"
    r"why|what is|where is|is that|is this|could it be|hmm|wait|i'm gonna|i'm going to|gonna|wanna|"
    r"click|guess|search|find it|look for|looking for|i don't|i can't|i didn't|mistaken)\b", re.IGNORECASE)
# spoken second/plural person → the first person of the reasoning
FIRST_PERSON = ((re.compile(r"\b(?:we have|we've got|we got|we see|you see|you have|you got)\b", re.I), "I see"),
                (re.compile(r"\b(?:you can see|we can see)\b", re.I), "I can see"),
                (re.compile(r"\b(?:we are|we're)\b", re.I), "I am"),
                (re.compile(r"\bthere's\b", re.I), "there is"),
                (re.compile(r"\bit's\b", re.I), "it is"))


def first_person(sentence: str) -> str:
    for pattern, replacement in FIRST_PERSON:
        sentence = pattern.sub(replacement, sentence)
    return sentence


def _foreign(clue: Clue, true_code: str | None) -> bool:
    """A clue naming another place than the true country: a country, demonym, city or region of another,
    or a language the true country does not speak ("this is not Russian")."""
    if clue.category not in PLACE_CATEGORIES or clue.category in ("world_region", "script"):
        return False
    if clue.entity:
        return clue.entity != true_code
    country = gazetteer.country_by_code(true_code) if true_code else None
    spoken = {gazetteer.normalize(lang) for lang in country.languages} if country else set()
    return gazetteer.normalize(clue.text) not in spoken


def talk_sentences(sentences: Sequence[str], extract: Callable[[str], list[Clue]], true_code: str | None,
                   used: set[int]) -> list[tuple[int, str]]:
    """The expert's own clue-bearing sentences (first person as said), none naming another country,
    none already rendered: material when the observations leave room."""
    out = []
    for index, sentence in enumerate(sentences):
        if index in used or CHATTER.search(sentence) or PROCESS_TALK.search(sentence) or len(sentence.split()) < 5:
            continue
        clues = extract(sentence)
        if any(_foreign(c, true_code) for c in clues):
            continue
        if sum(c.category in VISUAL_CATEGORIES for c in clues) >= 1:
            out.append((index, first_person(sentence)))
    return out


def compose(transcript: str, extract: Callable[[str], list[Clue]], country: str | None, code: str | None,
            lat: float, lng: float, city: str | None = None, style: ReasoningStyle = ReasoningStyle(),
            setting: str | None = None) -> str:
    """The reasoning for one round (see the module docstring); '' when nothing can be said."""
    sentences = pre_reveal_sentences(transcript)
    found = observations(sentences, extract, code)
    order = {c: i for i, c in enumerate(style.category_order)}
    groups: dict[str, list[Observation]] = {}
    for obs in sorted(found, key=lambda o: (order.get(o.category, len(order)), o.index)):
        group = groups.setdefault(obs.category, [])
        if not (obs.category in SINGLE and group):
            group.append(obs)
    values = {"country": with_article(country) if country else None, "climate": climate(lat),
              "hemisphere": hemisphere(lat), "language": languages_of(code), "continent": world_region(code),
              "setting": setting}
    ending = conclusion(country, code, lat, lng, city) if country else ""
    tie = synthesis(groups, values)
    budget = style.target_chars - len(ending) - len(tie)
    clauses: list[str] = []
    used: list[str] = []
    for category, group in groups.items():
        clause = _render(category, group, values, used)
        if sum(len(c) + 2 for c in clauses) + len(clause) > budget and clauses:
            continue
        clauses.append(clause)
    parts = [opening(values)]
    if clauses:
        body = ", ".join(clauses)
        parts.append(body[0].upper() + body[1:] + ".")
    room = budget - sum(len(p) + 1 for p in parts)
    for _, sentence in talk_sentences(sentences, extract, code, {o.index for o in found}):
        if len(sentence) + 1 > room:
            continue
        parts.append(to_sentence_case(sentence))
        room -= len(sentence) + 1
    if len(parts) == 1 and not ending:
        return ""  # no clue and no place to conclude on: nothing to reason about
    parts += [tie, ending]
    return " ".join(p for p in parts if p).strip()
