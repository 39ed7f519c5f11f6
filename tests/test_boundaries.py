"""Country of a coordinate: point-in-polygon over countryinfo's outlines (annotate.boundaries),
with the fallbacks recorded, through the reverse geocoder that `navig score` and annotate use."""
from __future__ import annotations

import json

import numpy as np
import pytest

from annotate import boundaries
from annotate.reverse import ReverseGeocoder, reverse


@pytest.fixture(scope="module")
def geocoder():
    return ReverseGeocoder()


def _countries(geocoder, points):
    found = geocoder.lookup([p[0] for p in points], [p[1] for p in points])
    return found.country_code.to_pylist(), list(found.country_rule)


def test_a_point_inside_an_outline_takes_that_country_not_its_nearest_citys(geocoder):
    # the Greenland ice sheet: the nearest city of >= 15k people is Akureyri, Iceland
    lat, lng = 74.6, -38.6
    assert geocoder.places[int(geocoder.search([lat], [lng])[1][0, 0])].country_code == "IS"
    assert _countries(geocoder, [(lat, lng)]) == (["GL"], ["polygon"])
    assert reverse(lat, lng).country_code == "GL"


def test_countries_across_the_antimeridian(geocoder):
    # Fiji's Vanua Levu and Taveuni lie on both sides of 180°, so do Russia's Chukotka and Wrangel
    points = [(-16.5, -179.95), (-16.6, 179.3), (-17.8, 178.0), (65.0, 178.0), (71.2, -179.5), (65.5, -171.0)]
    codes, rules = _countries(geocoder, points)
    assert codes == ["FJ", "FJ", "FJ", "RU", "RU", "RU"]
    assert set(rules) <= {"polygon", "near-polygon"}


def test_an_outline_drawn_across_the_antimeridian_is_cut_there(tmp_path):
    # one ring from 170°E to 170°W written as 170 -> -170: its naive extent is the other 340°
    ring = [[170, -5], [-170, -5], [-170, 5], [170, 5], [170, -5]]
    record = {"ISO": {"alpha2": "XA"}, "geoJSON": {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]}}]}}
    (tmp_path / "xa.json").write_text(json.dumps(record), encoding="utf-8")
    outlines = boundaries.CountryBoundaries(data_dir=tmp_path)
    assert len(outlines.geoms) == 2  # one part either side of the line
    found, rule = outlines.locate([0.0, 0.0, 0.0, 0.0], [175.0, -175.0, 0.0, 160.0])
    assert list(found) == [0, 0, -1, -1]
    assert list(rule) == [boundaries.POLYGON, boundaries.POLYGON, boundaries.CITY, boundaries.CITY]


def test_countries_without_an_outline_fall_back_to_the_nearest_city(geocoder):
    outlines = boundaries.default_boundaries()
    missing = outlines.missing(["HU", "RS", "MC", "SG", "FR", "FJ"])
    assert missing == ["HU", "MC", "RS", "SG"]  # what the low-resolution data lacks, stated by the module
    # rural Hungary lies in the gap its missing outline leaves; Monaco inside France's coarse coast
    codes, rules = _countries(geocoder, [(47.0, 19.5), (43.7384, 7.4246), (48.85, 2.35)])
    assert codes == ["HU", "MC", "FR"]
    assert rules[:2] == ["city", "city"]


def test_a_point_just_off_a_generalised_coast_is_near_polygon(geocoder):
    outlines = boundaries.default_boundaries()
    fr = outlines.index_of(["FR"])
    # 10 km off Marseille's coast, in the sea of the coarse outline
    lat, lng = 43.18, 5.35
    inside, _ = outlines.locate([lat], [lng])
    assert inside[0] == -1
    found, rule = outlines.locate([lat], [lng], hint=fr)
    assert found[0] == fr[0] and rule[0] == boundaries.NEAR_POLYGON


def test_outlines_cached_under_the_cache_dir_answer_the_same(tmp_path):
    first = boundaries.CountryBoundaries(cache_dir=tmp_path)
    assert list(tmp_path.glob("country-outlines-*.npz"))
    again = boundaries.CountryBoundaries(cache_dir=tmp_path)
    rng = np.random.default_rng(3)
    lat, lng = rng.uniform(-60, 75, 2000), rng.uniform(-180, 180, 2000)
    assert again.codes == first.codes
    assert np.array_equal(again.locate(lat, lng)[0], first.locate(lat, lng)[0])


def test_a_folder_without_outlines_is_refused(tmp_path):
    (tmp_path / "empty.json").write_text(json.dumps({"ISO": {"alpha2": "HU"}, "geoJSON": {}}), encoding="utf-8")
    with pytest.raises(ValueError, match="no country outlines"):
        boundaries.CountryBoundaries(data_dir=tmp_path)


def test_remote_islands_without_an_outline_take_the_nearest_small_place(geocoder):
    # Adak (Aleutians, US) and Kiritimati (Kiribati): the nearest cities of >= 15k are Anadyr and Hilo
    points = [(51.88, -176.65), (1.87, -157.4), (-43.95, -176.56)]
    cities = [geocoder.places[int(i)].country_code for i in geocoder.search(*zip(*points))[1][:, 0]]
    assert cities[:2] == ["RU", "US"]
    assert _countries(geocoder, points) == (["US", "KI", "NZ"], ["place", "place", "place"])
