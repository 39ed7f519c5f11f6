"""Time `navig.eval.metrics.score_arrays` on N synthetic predictions (default 1,000,000; target < 1 s).

The timed part is the vectorised scoring itself (haversine distances, the five threshold
accuracies, mean/median km, GeoScore, country and city hit rates) over already-parsed arrays,
with 1 % failures. What `navig score` does end to end (`score_files`: read the prediction JSONL
and the truth file, resolve country names, reverse-geocode the truth to name its cities) is timed
separately on `--files-n` rows and reported as `score_files_seconds` / `score_files_per_million_s`.

    python benchmarks/metrics_speed.py [--n 1000000] [--repeats 3] [--files-n 20000]

Last stdout line: {"seconds": best kernel time of the repeats, "n": N, ..., "score_files_seconds": ...}.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from navig.eval.metrics import score_arrays, score_files  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--files-n", type=int, default=20000, help="rows for the end-to-end score_files timing")
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    n = args.n
    true_lat = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))  # uniform on the sphere
    true_lng = rng.uniform(-180, 180, n)
    pred_lat = np.clip(true_lat + rng.normal(0, 5, n), -90, 90)
    pred_lng = (true_lng + rng.normal(0, 5, n) + 180) % 360 - 180
    failed = rng.random(n) < 0.01
    pred_lat[failed] = np.nan
    true_country = rng.integers(0, 200, n)
    pred_country = np.where(rng.random(n) < 0.7, true_country, rng.integers(0, 200, n))
    true_city = rng.integers(0, 20000, n)
    pred_city = np.where(rng.random(n) < 0.2, true_city, rng.integers(0, 20000, n))

    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        metrics = score_arrays(pred_lat, pred_lng, true_lat, true_lng, failed,
                               country_hit=pred_country == true_country, city_hit=pred_city == true_city)
        times.append(time.perf_counter() - start)
    best = min(times)
    print(f"scored {n:,} predictions: best {best:.3f} s of {args.repeats} (all: {', '.join(f'{t:.3f}' for t in times)})")
    print(f"acc@25km {metrics['acc_25km']:.3f}  acc@750km {metrics['acc_750km']:.3f}  "
          f"mean {metrics['mean_km']:.0f} km  GeoScore {metrics['geoscore']:.0f}  failed {metrics['failure_rate']:.3f}")
    files_s = time_score_files(args.files_n, rng) if args.files_n > 0 else None
    if files_s is not None:
        print(f"score_files end to end on {args.files_n:,} rows: {files_s:.2f} s "
              f"({files_s * 1e6 / args.files_n:.0f} s per million)")
    print(json.dumps({"seconds": round(best, 4), "n": n, "repeats": args.repeats,
                      "per_million_s": round(best * 1e6 / n, 4), "under_1s": best < 1.0,
                      "score_files_n": args.files_n, "score_files_seconds": None if files_s is None else round(files_s, 3),
                      "score_files_per_million_s": None if files_s is None else round(files_s * 1e6 / args.files_n, 1)}))


def time_score_files(n: int, rng) -> float:
    """`score_files` on `n` locate-style predictions (country and city stated, as Navig writes them)
    against a truth JSONL of coordinates only (its cities are reverse-geocoded, as for a benchmark)."""
    from annotate import gazetteer

    places = [p for p in gazetteer.places() if p.kind == "city"][:5000]
    picks = rng.integers(0, len(places), n)
    with tempfile.TemporaryDirectory() as tmp:
        truth, preds = Path(tmp) / "truth.jsonl", Path(tmp) / "preds.jsonl"
        with open(truth, "w") as t, open(preds, "w") as p:
            for i, k in enumerate(picks):
                place = places[int(k)]
                t.write(json.dumps({"id": str(i), "lat": place.lat, "lng": place.lng}) + "\n")
                guess = places[int(k) if rng.random() < 0.5 else int(rng.integers(0, len(places)))]
                p.write(json.dumps({"id": str(i), "prediction": {
                    "country": guess.country_code, "city": guess.name, "latitude": guess.lat + 0.1,
                    "longitude": guess.lng}, "failure": None}) + "\n")
        start = time.perf_counter()
        score_files(preds, truth)
        return time.perf_counter() - start


if __name__ == "__main__":
    main()
