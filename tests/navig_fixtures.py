"""Shared fixtures of the navig tests: per-process caches of the tiny models, local servers.

The builders and the OpenAI-compatible server live in `navig.testing` (benchmarks use them too and
import nothing from tests/); this module adds what only the tests need.
"""
from __future__ import annotations

import atexit
import json
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from navig.testing import (  # noqa: F401  (re-exported for the test modules)
    JsonHandler, LocalServer, make_scene_images, make_tiny_clip, make_tiny_grounding_dino, make_tiny_owlv2, make_tiny_vlm,
    openai_server, write_jsonl,
)


# ---- process-wide caches (several test modules share one build) -----------------------------
@lru_cache(maxsize=1)
def scratch_dir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="navig-tests-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


@lru_cache(maxsize=1)
def tiny_models() -> dict[str, Path]:
    """{"vlm", "detector", "clip"} folders, built once per process."""
    root = scratch_dir() / "models"
    return {"vlm": make_tiny_vlm(root / "vlm"), "detector": make_tiny_grounding_dino(root / "detector"),
            "clip": make_tiny_clip(root / "clip")}


def navig_cache_dir() -> Path:
    """A NAVIG_CACHE folder shared by the tests of one process (the gazetteer builds once)."""
    path = scratch_dir() / "cache"
    path.mkdir(exist_ok=True)
    return path


# ---- local servers speaking real protocols (LocalServer and openai_server: navig.testing) -----
NOMINATIM_PLACES = {
    "almaty": {"place_id": 1, "lat": "43.2363924", "lon": "76.9457275", "category": "boundary",
               "type": "administrative", "place_rank": 12, "importance": 0.71, "addresstype": "city",
               "name": "Almaty", "display_name": "Almaty, Kazakhstan",
               "address": {"city": "Almaty", "country": "Kazakhstan", "country_code": "kz"},
               "boundingbox": ["43.0", "43.4", "76.7", "77.2"]},
    "key west": {"place_id": 2, "lat": "24.5548262", "lon": "-81.8020722", "category": "boundary",
                 "type": "administrative", "place_rank": 16, "importance": 0.63, "addresstype": "city",
                 "name": "Key West", "display_name": "Key West, Monroe County, Florida, United States",
                 "address": {"city": "Key West", "state": "Florida", "country": "United States",
                             "country_code": "us"},
                 "boundingbox": ["24.5", "24.6", "-81.9", "-81.7"]},
}


def nominatim_server() -> LocalServer:
    """Nominatim `/search` answering jsonv2-style records for NOMINATIM_PLACES."""

    class Handler(JsonHandler):
        def do_GET(self):
            url = urlparse(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            self.record(path=url.path, query=query)
            if url.path.rstrip("/") != "/search":
                return self.reply(404)
            hit = NOMINATIM_PLACES.get(query.get("q", "").strip().lower())
            rows = [hit] if hit else []
            codes = query.get("countrycodes")
            if codes:
                rows = [r for r in rows if r["address"]["country_code"] in codes.split(",")]
            self.reply(200, rows[: int(query.get("limit", 10))])

    return LocalServer(Handler)
