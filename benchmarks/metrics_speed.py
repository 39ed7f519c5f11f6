"""Time `navig.eval.metrics.score_arrays` on N synthetic predictions (default 1,000,000; target < 1 s).

The timed part is the vectorised scoring itself (haversine distances, the five threshold
accuracies, mean/median km, GeoScore, country and city hit rates) over already-parsed arrays,
with 1 % failures; parsing JSONL (`score_files`) is I/O and reported separately for a smaller N.

    python benchmarks/metrics_speed.py [--n 1000000] [--repeats 3]

Last stdout line: {"seconds": best time of the repeats, "n": N, ...}.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from navig.eval.metrics import score_arrays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
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
    print(json.dumps({"seconds": round(best, 4), "n": n, "repeats": args.repeats,
                      "per_million_s": round(best * 1e6 / n, 4), "under_1s": best < 1.0}))


if __name__ == "__main__":
    main()
