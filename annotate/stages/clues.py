"""Clues an expert names while playing, as typed spans with their time in the video.

spaCy runs `en_core_web_sm` when it is installed (configurable), else a blank English pipeline;
either way an EntityRuler is added in front of any statistical NER, built from

* the gazetteer: countries (names and aliases), demonyms, languages, scripts, cities and regions
  — each pattern carries the ISO country code as its entity id;
* a clue taxonomy (licence plates, road lines, bollards, poles, signs, cars and the Google car,
  vegetation, terrain and soil, architecture, sun and hemisphere, driving side, flags, landmarks…)
  as phrase patterns matched on lowercase text.

`ClueExtractor.extract(words)` joins the words into one text, runs the pipeline and maps each
entity's character span back to the words under it, so every clue has start_s/end_s. ASR tags
("[Music]") never enter the text and filler words never start or end a clue.
"""
from __future__ import annotations

import logging
import time
from functools import lru_cache

import spacy

from annotate import gazetteer
from annotate.config import CluesConfig
from annotate.records import Clue
from annotate.text import is_asr_tag, is_filler

log = logging.getLogger(__name__)

# category → phrases (lowercase). Plurals are listed where they are said.
TAXONOMY: dict[str, tuple[str, ...]] = {
    "licence_plate": ("plate", "plates", "license plate", "license plates", "licence plate", "licence plates",
                      "number plate", "number plates", "front plate", "front plates", "rear plate", "yellow plate",
                      "yellow plates", "white plate", "white plates", "black plate", "black plates", "long plate",
                      "long plates", "short plates", "eu strip", "blue strip", "blue band"),
    "road_marking": ("road line", "road lines", "center line", "centre line", "center lines", "middle line",
                     "yellow line", "yellow lines", "white line", "white lines", "dashed line", "dashed lines",
                     "double yellow", "double yellow line", "solid line", "road markings", "markings",
                     "outer lines", "side lines", "zebra crossing", "crosswalk", "pedestrian crossing"),
    "bollard": ("bollard", "bollards", "reflector", "reflectors", "road post", "road posts", "delineator"),
    "utility_pole": ("pole", "poles", "utility pole", "utility poles", "power pole", "power poles",
                     "telephone pole", "telephone poles", "electricity pole", "concrete pole", "concrete poles",
                     "wooden pole", "wooden poles", "power line", "power lines", "transformer", "insulator",
                     "insulators", "street light", "street lights", "lamp post"),
    "sign": ("sign", "signs", "road sign", "road signs", "street sign", "street signs", "stop sign", "stop signs",
             "speed limit", "speed limit sign", "signpost", "chevron", "chevrons", "give way", "yield sign",
             "direction sign", "billboard", "billboards", "shop sign", "street name", "house number"),
    "language_script": ("language", "script", "alphabet", "letters", "writing", "text", "diacritics", "accents",
                        "umlaut", "umlauts", "characters"),
    "car_meta": ("google car", "car", "cars", "antenna", "snorkel", "roof rack", "blur", "blurry", "camera",
                 "generation 3", "generation 4", "gen 3", "gen 4", "gen 2", "generation three", "generation four",
                 "trekker", "coverage", "follow car", "white car", "black car", "truck", "trucks", "bus", "buses",
                 "motorbike", "motorbikes", "scooter", "scooters", "tuk tuk", "pickup"),
    "vegetation": ("tree", "trees", "palm", "palms", "palm tree", "palm trees", "pine", "pines", "pine trees",
                   "birch", "birches", "eucalyptus", "jungle", "forest", "grass", "bush", "bushes", "vegetation",
                   "crops", "field", "fields", "rice", "rice fields", "cactus", "cacti", "baobab", "baobabs",
                   "conifers", "farmland", "corn", "vineyard", "vineyards", "tropical"),
    "terrain_soil": ("mountain", "mountains", "hill", "hills", "hilly", "flat", "soil", "red soil", "red dirt",
                     "dirt", "sand", "sandy", "desert", "river", "lake", "lakes", "coast", "coastal", "beach",
                     "ocean", "sea", "island", "islands", "valley", "snow", "rocks", "rocky", "cliff", "cliffs",
                     "dry", "arid", "volcano", "landscape", "terrain"),
    "architecture": ("house", "houses", "building", "buildings", "roof", "roofs", "architecture", "windows",
                     "fence", "fences", "wall", "walls", "brick", "bricks", "church", "mosque", "temple",
                     "apartment", "apartments", "tiles", "chimney", "balcony", "gate", "gates"),
    "sun_hemisphere": ("sun", "shadow", "shadows", "northern hemisphere", "southern hemisphere", "hemisphere",
                       "compass", "sun position"),
    "driving_side": ("drive on the left", "drive on the right", "driving on the left", "driving on the right",
                     "left side of the road", "right side of the road", "left hand traffic", "right hand traffic",
                     "left-hand traffic", "right-hand traffic", "left hand drive", "right hand drive",
                     "driving side", "left-hand drive", "right-hand drive", "drive on the left side",
                     "drive on the right side"),
    "flag": ("flag", "flags"),
    "landmark": ("landmark", "monument", "stadium", "bridge", "statue", "tower", "castle", "university",
                 "airport", "harbour", "harbor", "port", "national park", "museum", "station"),
    "road": ("road", "roads", "highway", "highways", "motorway", "dirt road", "gravel road", "paved road",
             "roundabout", "road number", "route", "guardrail", "guardrails", "guard rail", "curb", "curbs",
             "kerb", "kerbs", "sidewalk", "pavement", "intersection", "lane", "lanes"),
    "contact_info": ("phone number", "area code", "domain", "website", "postcode", "zip code"),
}

SCRIPTS = ("cyrillic", "latin", "latin script", "arabic script", "thai script", "greek alphabet", "hebrew", "hangul",
           "kanji", "hiragana", "katakana", "devanagari", "bengali script", "georgian script", "armenian script",
           "khmer script", "lao script", "sinhala", "tamil script", "amharic", "ge'ez", "mongolian script")

_ENTITY_CATEGORY = {"name": "country", "demonym": "demonym", "language": "language"}
NOT_A_CLUE = "not_a_clue"  # matched only so that the country word inside ("guinea pig") is not a clue


def _country_patterns() -> list[dict]:
    patterns = []
    for key, (code, how) in gazetteer.country_index().items():
        if (len(key) < 3 and key != "uk") or key in gazetteer.COMMON_WORD_DEMONYMS or key in SCRIPTS:
            continue  # "us" is the pronoun in lowercase captions (matched by ORTH below); "pole" is a pole
        if key in gazetteer.WIDESPREAD_LANGUAGES:
            # "the signs are in Portuguese": a language clue, no single country
            patterns.append({"label": "language", "pattern": key})
            continue
        patterns.append({"label": _ENTITY_CATEGORY[how], "pattern": key, "id": code})
    # longer phrases win over the country word inside them: "South America" is no US mention
    patterns += [{"label": "world_region", "pattern": p} for p in gazetteer.WORLD_REGION_PHRASES]
    patterns += [{"label": NOT_A_CLUE, "pattern": p} for p in gazetteer.NOT_PLACE_PHRASES]
    for c in gazetteer.countries():
        for lang in c.languages:
            key = gazetteer.normalize(lang)
            if key not in gazetteer.country_index():  # shared languages: a language clue, no country
                patterns.append({"label": "language", "pattern": key})
    for script in SCRIPTS:
        patterns.append({"label": "script", "pattern": script})
    for orth in ("US", "U.S.", "USA", "U.S.A."):
        patterns.append({"label": "country", "pattern": [{"ORTH": orth}], "id": "US"})
    return patterns


def _place_patterns(min_population: int) -> list[dict]:
    patterns = []
    for key, places in gazetteer.place_index().items():
        if key in gazetteer.country_index() or len(key) < 3 or key in gazetteer.COMMON_WORD_PLACE_NAMES:
            continue
        top = places[0]
        if top.kind == "country":
            continue
        if top.kind == "city" and (top.population < min_population or gazetteer.normalize(top.name) != key):
            continue
        if top.kind == "admin1" and all(w in gazetteer.COMMON_WORD_PLACE_NAMES for w in key.split()):
            continue
        patterns.append({"label": "city" if top.kind == "city" else "region", "pattern": key, "id": top.country_code})
    return patterns


@lru_cache(maxsize=4)
def load_pipeline(model: str, min_city_population: int) -> spacy.language.Language:
    """The spaCy pipeline with the clue EntityRuler; loaded once per process and setting."""
    t0 = time.perf_counter()
    try:
        nlp = spacy.load(model, exclude=["lemmatizer"])
        source = model
    except (OSError, ImportError, ValueError) as exc:  # not installed / incompatible: the ruler alone still works
        log.info("spaCy pipeline %r unavailable (%s); using blank English + EntityRuler", model, exc)
        nlp = spacy.blank("en")
        source = "blank:en"
    before = "ner" if "ner" in nlp.pipe_names else None
    ruler = nlp.add_pipe("entity_ruler", before=before,
                         config={"phrase_matcher_attr": "LOWER", "overwrite_ents": True})
    patterns = [{"label": category, "pattern": phrase} for category, phrases in TAXONOMY.items() for phrase in phrases]
    patterns += _country_patterns() + _place_patterns(min_city_population)
    with nlp.select_pipes(enable=[]):  # phrase patterns only need the tokenizer
        ruler.add_patterns(patterns)
    nlp.meta["clue_source"] = source
    log.info("clue pipeline %s with %d patterns in %.2fs", source, len(patterns), time.perf_counter() - t0)
    return nlp


class ClueExtractor:
    def __init__(self, config: CluesConfig | None = None):
        self.config = config or CluesConfig()
        self.nlp = load_pipeline(self.config.spacy_model, self.config.min_city_population)
        self.labels = set(TAXONOMY) | {"country", "demonym", "language", "script", "city", "region", "world_region"}

    @property
    def pipeline_name(self) -> str:
        return self.nlp.meta.get("clue_source", "blank:en")

    def extract(self, words: list[dict]) -> list[Clue]:
        """Clues in `words` ({"text","start","end"}), in order, each with its time span."""
        pieces: list[str] = []
        spans: list[tuple[int, int, dict]] = []  # char start, char end, word
        cursor = 0
        for word in words:
            text = str(word.get("text", "")).strip()
            if not text or is_asr_tag(text):
                continue
            if pieces:
                cursor += 1
            spans.append((cursor, cursor + len(text), word))
            pieces.append(text)
            cursor += len(text)
        text = " ".join(pieces)
        if not text:
            return []
        doc = self.nlp(text)
        clues: list[Clue] = []
        for ent in doc.ents:
            if ent.label_ not in self.labels:
                continue
            covered = [w for (a, b, w) in spans if a < ent.end_char and b > ent.start_char]
            covered = _trim_fillers(covered)
            if not covered:
                continue
            clues.append(Clue(text=ent.text, category=ent.label_, entity=ent.ent_id_ or None,
                              start_s=_as_float(covered[0].get("start")), end_s=_as_float(covered[-1].get("end"))))
        return clues

    def extract_text(self, text: str) -> list[Clue]:
        """Clues of a text without word times (start_s/end_s stay None)."""
        return self.extract([{"text": t} for t in text.split()])


def _trim_fillers(words: list[dict]) -> list[dict]:
    while words and is_filler(str(words[0].get("text", ""))):
        words = words[1:]
    while words and is_filler(str(words[-1].get("text", ""))):
        words = words[:-1]
    return words


def _as_float(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None
