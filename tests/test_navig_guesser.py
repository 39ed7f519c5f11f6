"""Guesser: JSON extraction over realistic malformed answers, the failure policy, the prompt."""
from __future__ import annotations

import pytest

from navig import prompts
from navig.guesser import build_guesser_prompt, parse_answer, parse_coordinate, resolve_prediction
from navig.searcher.records import GeoHit

MALFORMED = [
    # (answer as models write it, expected (country, city, lat, lng), expected method)
    ('```json\n{"country": "Kazakhstan", "city": "Almaty", "latitude": 43.25, "longitude": 76.91,}\n```',
     ("Kazakhstan", "Almaty", 43.25, 76.91), "json_repaired"),
    ("Sure! Based on the signs: {'country': 'Chile', 'city': 'Santiago', 'lat': '-33.45', 'lon': '-70.66'} "
     "I hope this helps.", ("Chile", "Santiago", -33.45, -70.66), "json_repaired"),
    ('{"country":"Brazil","city":"São Paulo","latitude":"23.55 S","longitude":"46.63 W"}',
     ("Brazil", "São Paulo", -23.55, -46.63), "json"),
    ('{country: "Japan", city: "Tokyo", latitude: 35.68, longitude: 139.69}',
     ("Japan", "Tokyo", 35.68, 139.69), "json_repaired"),
    ('{"Country": "France", "City": "Lyon", "Latitude": "45.76", "Longitude": "4.84"}',
     ("France", "Lyon", 45.76, 4.84), "json"),
    ('{"country": "Peru", "city": "Lima", "latitude": -12.04, "longitude": -77.03', ("Peru", "Lima", -12.04, -77.03),
     "json_repaired"),
    ('The image shows Norway.\n{"answer": {"country": "Norway", "city": "Bergen", "lat": 60.39, "lng": 5.32}}',
     ("Norway", "Bergen", 60.39, 5.32), "json"),
    ("country: Portugal, city: Porto, latitude: 41.15, longitude: -8.61", (None, None, 41.15, -8.61), "key_values"),
    ('{"country": "Finland", "city": "Oulu", "latitude": "65°0′N", "longitude": "25°28′E"}',
     ("Finland", "Oulu", 65.0, 25.0 + 28 / 60), "json"),
]


@pytest.mark.parametrize("answer,expected,method", MALFORMED)
def test_parse_answer_reads_malformed_json(answer, expected, method):
    parsed = parse_answer(answer)
    assert (parsed.country, parsed.city) == expected[:2]
    assert parsed.latitude == pytest.approx(expected[2])
    assert parsed.longitude == pytest.approx(expected[3])
    assert parsed.method == method


def test_parse_answer_without_coordinates_and_garbage():
    placeholder = parse_answer('{"country": "France", "city": "Paris", "latitude": <Latitude Coordinate>, '
                               '"longitude": <Longitude Coordinate>}')
    assert (placeholder.country, placeholder.city, placeholder.has_coordinates) == ("France", "Paris", False)
    out_of_range = parse_answer('{"country": "X", "latitude": 123.0, "longitude": 500}')
    assert not out_of_range.has_coordinates
    garbage = parse_answer("almaty none type none visible")
    assert garbage.method is None and garbage.error
    assert parse_answer("").error == "empty answer"


def test_parse_coordinate_hemispheres():
    assert parse_coordinate("12.5 S", "lat") == -12.5
    assert parse_coordinate("12.5", "lat") == 12.5
    assert parse_coordinate("77 W", "lng") == -77
    assert parse_coordinate("12 E", "lat") is None  # E/W on a latitude is a mistake, not a number
    assert parse_coordinate(True, "lat") is None


class _FixedGeocoder:
    """A geocoder answering only the cities it was given (stands in for the search, not the policy)."""

    name = "fixed"

    def __init__(self, known):
        self.known = known

    def search(self, query, country=None, limit=3):
        return self.known.get(query, [])[:limit]


def test_failure_policy_is_explicit():
    geocoder = _FixedGeocoder({"Bergen": [GeoHit("Bergen", "NO", 60.39, 5.32, "city", 1.0)]})
    direct = resolve_prediction(parse_answer('{"country":"Norway","city":"Oslo","latitude":59.9,"longitude":10.7}'),
                                geocoder)
    assert direct.policy == "answer" and direct.prediction["latitude"] == 59.9 and direct.failure is None

    by_city = resolve_prediction(parse_answer('{"country": "Norway", "city": "Bergen", "latitude": "unknown"}'),
                                 geocoder)
    assert by_city.policy == "geocoded_city"
    assert (by_city.prediction["latitude"], by_city.prediction["longitude"]) == (60.39, 5.32)

    by_country = resolve_prediction(parse_answer('{"country": "Kazakhstan", "city": "Nowhereville"}'), geocoder)
    assert by_country.policy == "geocoded_country"
    assert 40 < by_country.prediction["latitude"] < 56 and 46 < by_country.prediction["longitude"] < 88

    failed = resolve_prediction(parse_answer("I cannot determine the location."), geocoder)
    assert failed.prediction is None and failed.policy is None
    assert "no JSON" in failed.failure


def test_guesser_prompt_sections_follow_the_paper():
    hits = {"ALMATY": [GeoHit("Almaty", "KZ", 43.25, 76.91, "city", 1.0)]}
    prompt, usage = build_guesser_prompt(
        reasoning="Cyrillic signs and steppe.", ocr_by_label={"road sign": ["ALMATY"]}, map_hits=hits,
        comments_by_label={"house": ["Soviet-era block."]}, clues_by_label={"road sign": ["Kazakh signs are blue."]})
    assert usage == {"reasoning": 1, "osm": 1, "comment": 1, "rag": 1}
    order = [prompt.index(s) for s in ("Suppose you are an expert", "Here are some analyses", "### REASON ###",
                                       "### MAP SEARCH ###", "### DETAILS REASONING ###",
                                       "### GUIDEBOOK KNOWLEDGE ###", "Using the provided information")]
    assert order == sorted(order)
    assert '"place_name": "Almaty"' in prompt and "house: Soviet-era block." in prompt

    bare, usage = build_guesser_prompt(reasoning=None, ocr_by_label={}, map_hits={}, comments_by_label={},
                                       clues_by_label={})
    assert bare == prompts.BASE_QUERY and not any(usage.values())


def test_junk_city_names_never_become_confident_predictions(monkeypatch):
    """Template echoes, "unknown" and loose full-text matches fall through to the country or a failure,
    with the offline geocoder a user really gets."""
    from navig.searcher.geocoder import OfflineGeocoder

    from navig_fixtures import navig_cache_dir

    monkeypatch.setenv("NAVIG_CACHE", str(navig_cache_dir()))  # shared with the geocoder tests (built once)
    geocoder = OfflineGeocoder()
    echo = resolve_prediction(parse_answer('{"country": "<country_name>", "city": "<city_name>", '
                                           '"latitude": "<latitude>", "longitude": "<longitude>"}'), geocoder)
    assert echo.prediction is None and echo.failure
    unknown = resolve_prediction(parse_answer('{"country": "Belgium", "city": "Unknown City"}'), geocoder)
    assert unknown.policy == "geocoded_country" and unknown.parsed["city"] is None
    loose = resolve_prediction(parse_answer('{"country": "United Kingdom", "city": "the road"}'), geocoder)
    assert loose.policy == "geocoded_country"  # not the village of Rode, whose alternate name is "Road"
    nowhere = resolve_prediction(parse_answer('{"city": "the road"}'), geocoder)  # "Abu Road" is no answer
    assert nowhere.prediction is None and "matched only loosely" in nowhere.failure
    exact = resolve_prediction(parse_answer('{"country": "Kazakhstan", "city": "Almaty"}'), geocoder)
    assert exact.policy == "geocoded_city" and abs(exact.prediction["latitude"] - 43.25) < 0.3


def test_the_answer_object_wins_over_a_restated_format():
    restated = parse_answer('Format: {"latitude": 0, "longitude": 0}. My answer: {"country": "France", '
                            '"city": "Paris", "latitude": 48.86, "longitude": 2.35}')
    assert (restated.city, restated.latitude, restated.longitude) == ("Paris", 48.86, 2.35)
    later = parse_answer('First guess {"latitude": 10.5, "longitude": 20.5} but final {"latitude": 41.9, '
                         '"longitude": 12.5}')
    assert (later.latitude, later.longitude) == (41.9, 12.5)
    fenced = parse_answer('```json\n{"latitude": 1.5, "longitude": 2.5}\n``` then notes {"latitude": 9, "longitude": 9}')
    assert (fenced.latitude, fenced.longitude) == (1.5, 2.5)
    echoed = parse_answer('Answer as {"country": "<country>", "city": "<city>", "latitude": 0, "longitude": 0}: '
                          '{"country": "Peru", "city": "Lima"}')
    assert (echoed.country, echoed.city, echoed.has_coordinates) == ("Peru", "Lima", False)
    origin = parse_answer('{"country": "Chile", "latitude": 0, "longitude": 0}')
    assert not origin.has_coordinates and "(0, 0)" in origin.error
    resolved = resolve_prediction(origin)
    assert resolved.policy == "geocoded_country" and resolved.prediction["latitude"] < -15  # Chile, not (0, 0)
