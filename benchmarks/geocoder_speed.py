"""Offline geocoder throughput: lookups per second on real place names.

Queries are GeoNames names from the gazetteer itself (exact hits), lower-cased / accent-stripped
variants, OCR-like sign strings ("ALMATY 12 km", full-text path) and misses, drawn with a skewed
(Zipf-like) repetition as a pipeline sees them (the same towns recur across images). Reports the
mixed workload (`lookups_per_s`, LRU cache on) and the cold rate with every query distinct and
the cache off (`cold_lookups_per_s`). Last stdout line: one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lookups", type=int, default=50_000, help="lookups in the mixed workload")
    ap.add_argument("--distinct", type=int, default=3_000, help="distinct queries in the mixed workload")
    ap.add_argument("--cold", type=int, default=3_000, help="distinct uncached lookups for the cold rate")
    ap.add_argument("--cache-dir", type=Path, default=None, help="NAVIG_CACHE (default: a temp dir; builds once)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    os.environ["NAVIG_CACHE"] = str(args.cache_dir or Path(tempfile.mkdtemp(prefix="navig-geo-")))

    from annotate import gazetteer
    from navig.searcher.geocoder import OfflineGeocoder

    start = time.perf_counter()
    coder = OfflineGeocoder()
    build_s = time.perf_counter() - start
    rng = random.Random(args.seed)
    places = gazetteer.places(coder.min_population)
    names = [p.name for p in rng.sample(places, min(len(places), args.distinct + args.cold))]

    def variant(name: str) -> str:
        r = rng.random()
        if r < 0.55:
            return name
        if r < 0.75:
            return gazetteer.normalize(name)
        if r < 0.95:
            return f"{name.upper()} {rng.randint(1, 99)} km"  # sign text: full-text path
        return f"{name}zzq"  # a miss

    pool = [variant(n) for n in names[: args.distinct]]
    weights = [1.0 / (rank + 1) for rank in range(len(pool))]
    workload = rng.choices(pool, weights=weights, k=args.lookups)

    start = time.perf_counter()
    found = sum(1 for q in workload if coder.search(q))
    mixed_s = time.perf_counter() - start

    cold_queries = [variant(n) for n in names[args.distinct :]]
    cold_coder = OfflineGeocoder(coder.path, cache_size=0)
    start = time.perf_counter()
    cold_found = sum(1 for q in cold_queries if cold_coder.search(q))
    cold_s = time.perf_counter() - start

    info = coder._cached.cache_info()
    print(f"gazetteer: {coder.path} ({len(places)} places), open/build {build_s:.2f} s")
    print(f"mixed: {len(workload)} lookups over {len(pool)} distinct in {mixed_s:.3f} s, "
          f"{found / len(workload):.1%} with hits, LRU hits {info.hits}")
    print(f"cold: {len(cold_queries)} distinct uncached lookups in {cold_s:.3f} s, "
          f"{cold_found / max(1, len(cold_queries)):.1%} with hits")
    print(json.dumps({
        "lookups_per_s": round(len(workload) / mixed_s, 1),
        "cold_lookups_per_s": round(len(cold_queries) / cold_s, 1),
        "lookups": len(workload),
        "distinct": len(pool),
        "hit_rate": round(found / len(workload), 3),
        "lru_hits": info.hits,
        "places": len(places),
        "build_or_open_s": round(build_s, 2),
    }))


if __name__ == "__main__":
    main()
