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


def _admin1(name: str, code: str):
    hits = [p for p in gazetteer.place_index().get(gazetteer.normalize(name), ()) if p.kind == "admin1"]
    return next(p for p in hits if p.country_code == code)


def test_regions_outside_the_us_sit_at_their_own_centre_not_their_countrys():
    from navig.eval.metrics import haversine_km

    cases = {  # region: (country, a point inside it), each far from its country's centre
        ("Ontario", "CA"): (44.0, -79.5), ("Almaty oblysy", "KZ"): (44.5, 78.0), ("Lombardia", "IT"): (45.6, 9.6),
        ("Hokkaido", "JP"): (43.2, 142.5), ("Western Australia", "AU"): (-31.9, 116.0),
    }
    for (name, code), (lat, lng) in cases.items():
        region, country = _admin1(name, code), gazetteer.country_by_code(code)
        assert not region.coords_approx, name
        assert haversine_km(region.lat, region.lng, lat, lng) < 400, (name, region.lat, region.lng)
        assert haversine_km(region.lat, region.lng, country.lat, country.lng) > 150, name
    # an exonym covering several GeoNames regions: West, Central, East Java...
    java = _admin1("Java", "ID")
    assert -8.5 < java.lat < -6.0 and 105.0 < java.lng < 115.0 and not java.coords_approx


def test_a_region_across_the_antimeridian_averages_longitudes_as_angles():
    # Chukotka's places lie from 166°E to 171°W: a plain mean of degrees would fall near 60°E
    chukotka = _admin1("Chukotskiy avtonomnyy okrug", "RU")
    assert not chukotka.coords_approx
    assert abs(chukotka.lng) > 165 and 62 < chukotka.lat < 70


def test_regions_geonames_cannot_place_stay_out_of_the_offline_geocoder(tmp_path):
    from navig.searcher.geocoder import OfflineGeocoder

    unplaced = [p for p in gazetteer.places() if p.kind == "admin1" and p.coords_approx]
    assert unplaced and all((p.lat, p.lng) == (gazetteer.country_by_code(p.country_code).lat,
                                               gazetteer.country_by_code(p.country_code).lng) for p in unplaced)
    geocoder = OfflineGeocoder(tmp_path / "gazetteer.sqlite", min_population=15000)
    siberia = geocoder.search("Siberia", country="RU")  # an exonym GeoNames has no region for
    assert all(hit.kind != "admin1" for hit in siberia)
    ontario = geocoder.search("Ontario", country="CA")
    assert ontario[0].kind == "admin1" and 42 < ontario[0].lat < 47
