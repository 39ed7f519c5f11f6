"""Geocoders: the offline SQLite gazetteer on real names, Nominatim against a local /search server."""
from __future__ import annotations

import pytest

from navig.searcher.geocoder import NominatimGeocoder, OfflineGeocoder, make_geocoder
from navig_fixtures import navig_cache_dir, nominatim_server


@pytest.fixture(scope="module")
def offline(tmp_path_factory):
    import os

    os.environ["NAVIG_CACHE"] = str(navig_cache_dir())  # shared with the pipeline tests (built once)
    return OfflineGeocoder()


def test_offline_real_names(offline):
    almaty = offline.search("Almaty")
    assert almaty[0].country_code == "KZ" and almaty[0].kind == "city" and almaty[0].score == 1.0
    assert abs(almaty[0].lat - 43.25) < 0.1 and abs(almaty[0].lng - 76.91) < 0.1
    key_west = offline.search("key west")  # case-insensitive exact name
    assert key_west[0].country_code == "US" and abs(key_west[0].lat - 24.55) < 0.1
    custer = offline.search("Custer", country="United States")
    assert custer and all(h.country_code == "US" for h in custer) and custer[0].name == "Custer"
    assert offline.search("Custer", country="KZ") == []  # the hint filters, never invents
    assert offline.search("Sao Paulo")[0].country_code == "BR"  # accents folded
    assert offline.search("Georgia")[0].kind == "country"  # the country before the US state


def test_offline_full_text_fallback_for_sign_text(offline):
    hits = offline.search("ALMATY 12 km")  # a road sign read by OCR: no exact name
    assert hits and hits[0].country_code == "KZ" and hits[0].score < 1.0


def test_offline_database_is_cached_and_lookups_are_lru_cached(offline):
    assert offline.path.exists() and offline.path.parent == navig_cache_dir()
    again = OfflineGeocoder()  # same file, no rebuild
    assert again.path == offline.path
    before = offline._cached.cache_info().hits
    offline.search("Almaty")
    offline.search("Almaty")
    assert offline._cached.cache_info().hits >= before + 1


def test_nominatim_local_server_rate_limit_and_cache(tmp_path):
    with nominatim_server() as server:
        coder = make_geocoder("nominatim", url=server.url, cache_path=tmp_path / "nominatim.sqlite")
        assert isinstance(coder, NominatimGeocoder)
        first = coder.search("Almaty")
        second = coder.search("Key West", country="US")
        third = coder.search("Atlantis")
        assert first[0].name == "Almaty" and first[0].country_code == "KZ" and first[0].kind == "city"
        assert first[0].display_name == "Almaty, Kazakhstan" and abs(first[0].lat - 43.236) < 1e-3
        assert second[0].country_code == "US" and third == []
        assert len(server.requests) == 3
        times = [r["time"] for r in server.requests]
        assert all(b - a >= 0.95 for a, b in zip(times, times[1:])), times  # ≤ 1 request per second
        req = server.requests[1]
        assert req["path"] == "/search" and req["query"]["q"] == "Key West"
        assert req["query"]["countrycodes"] == "us" and req["query"]["limit"] == "3"
        assert req["query"]["accept-language"] == "en"  # names comparable with what a model writes
        assert "naviclues" in req["headers"]["user-agent"]
        # answered from the disk cache: no new request, even from a fresh client
        again = make_geocoder("nominatim", url=server.url, cache_path=tmp_path / "nominatim.sqlite")
        assert again.search("Almaty")[0].name == "Almaty"
        assert len(server.requests) == 3
        # "nothing found" is trusted for a while (a week by default), then asked again
        assert again.search("Atlantis") == [] and len(server.requests) == 3
        stale = make_geocoder("nominatim", url=server.url, cache_path=tmp_path / "nominatim.sqlite", empty_ttl_s=0,
                              min_delay_s=0)
        assert stale.search("Atlantis") == [] and len(server.requests) == 4
        assert stale.search("Almaty")[0].name == "Almaty" and len(server.requests) == 4  # found answers are kept
