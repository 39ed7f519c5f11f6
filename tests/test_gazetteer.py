import time

from annotate import gazetteer


def test_countries_have_codes_continents_and_centres():
    countries = gazetteer.countries()
    assert len(countries) > 240
    kz = gazetteer.country_by_code("kz")
    assert kz.name == "Kazakhstan" and kz.continent == "AS" and kz.street_view
    assert "Kazakh" in kz.demonyms and "Kazakh" in kz.languages
    assert 40 < kz.lat < 55 and 50 < kz.lng < 90  # population-weighted centre lies inside the country
    assert gazetteer.continent_of("BR") == "SA" and gazetteer.continent_of("XX") is None
    assert gazetteer.continent_name("OC") == "Oceania"


def test_resolve_country_names_aliases_demonyms_languages():
    cases = {"Kazakh": "KZ", "Brazilian": "BR", "usa": "US", "the States": "US", "Czech Republic": "CZ",
             "Czechia": "CZ", "UK": "GB", "Holland": "NL", "Thai": "TH", "Hungarian": "HU", "Curaçao": "CW",
             "Russia": "RU", "South Korea": "KR", "Ivory Coast": "CI"}
    for text, code in cases.items():
        country = gazetteer.resolve_country(text)
        assert country is not None and country.code == code, text
    assert gazetteer.resolve_country("Georgia").code == "GE"  # the country wins on a bare name
    assert gazetteer.resolve_country("Almaty") is None  # a city is not a country name…
    assert gazetteer.resolve_country("Almaty", include_places=True).code == "KZ"  # …unless asked
    assert gazetteer.resolve_country("Key West", include_places=True).code == "US"
    assert gazetteer.resolve_country("not a place at all") is None


def test_places_cities_and_regions():
    almaty = gazetteer.resolve_place("Almaty")
    assert almaty.country_code == "KZ" and almaty.kind == "city" and almaty.population > 1_000_000
    key_west = gazetteer.resolve_place("key west")
    assert key_west.country_code == "US" and key_west.admin1 == "FL"
    texas = gazetteer.resolve_place("Texas")
    assert texas.kind == "admin1" and texas.country_code == "US" and 25 < texas.lat < 37
    assert gazetteer.resolve_place("Queensland").country_code == "AU"
    assert gazetteer.resolve_place("Victoria").country_code == "AU"  # the state outranks smaller namesakes
    # GeoNames alternate names that are other words never shadow a main name
    assert gazetteer.resolve_place("Kazakh") is None


def test_warm_calls_are_cached():
    gazetteer.places()
    t0 = time.perf_counter()
    for _ in range(100):
        gazetteer.countries()
        gazetteer.places()
        gazetteer.resolve_country("Brazilian")
    assert time.perf_counter() - t0 < 1.0
