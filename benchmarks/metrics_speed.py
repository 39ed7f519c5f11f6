"""Time `navig score` end to end on N predictions (default 1,000,000; targets: < 3 s cold, < 1 s with
the truth cache warm, peak RSS < 2 GiB), with the metric kernel's own time beside it.

Headline, `score_files_seconds`: `navig.eval.metrics.score_files` (what `navig score` runs: read
the prediction JSONL and the truth file, join by id, distances, thresholds, GeoScore, country and
city names, reverse geocoding, failure accounting) in a fresh Python process with an empty truth
cache, after its imports (the reverse geocoder's place table, built once per gazetteer version, is
in place; the very first run, which builds it too, is `first_run_seconds`). `score_files_warm_seconds`:
the same in another fresh process once the truth cache holds this truth file. `*_cpu_seconds`: the
CPU time of those processes (all threads), steadier than wall time on a shared machine.
`peak_rss_mib`: the largest resident size of those processes.
`cli_seconds`: the `navig score` command itself (interpreter start and imports included, cache
warm), writing M.json. Each figure is the best of `--repeats` runs; the median is given beside it.

The files are synthetic and written before any clock starts: locate-style predictions (country and
city stated, as Navig writes them; 1 % failures, 0.5 % ids without a line) against a truth JSONL of
coordinates only, so every truth row is reverse-geocoded. `--truth-points cities` puts the truth
on the coordinates of 5,000 gazetteer cities (benchmarks repeat points); `jittered` moves each row
up to ~10 km off its city, so almost every truth point is distinct.

The kernel figure (`seconds`): `score_arrays` alone on already-parsed arrays.

    python benchmarks/metrics_speed.py [--n 1000000] [--repeats 3] [--truth-points jittered]

Last stdout line: one JSON object with every figure.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from navig.eval.metrics import score_arrays  # noqa: E402

CHILD = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
from navig.eval.metrics import score_files
start, cpu = time.perf_counter(), time.process_time()
m = score_files({preds!r}, {truth!r})
seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
print(json.dumps({{"seconds": seconds, "cpu_seconds": cpu,
                  "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "truth_cache": m["truth_cache"], "n": m["n"], "acc_25km": m["acc_25km"],
                  "country_acc": m["country_acc"], "city_acc": m["city_acc"]}}))
"""


def kernel_seconds(n: int, repeats: int, rng) -> tuple[list[float], dict]:
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
    for _ in range(repeats):
        start = time.perf_counter()
        metrics = score_arrays(pred_lat, pred_lng, true_lat, true_lng, failed,
                               country_hit=pred_country == true_country, city_hit=pred_city == true_city)
        times.append(time.perf_counter() - start)
    return times, metrics


def write_files(n: int, folder: Path, truth_points: str, rng) -> tuple[Path, Path]:
    """A truth JSONL of coordinates and a locate-style prediction JSONL for it."""
    from annotate import gazetteer

    places = [p for p in gazetteer.places() if p.kind == "city"][:5000]
    lat = np.array([p.lat for p in places])
    lng = np.array([p.lng for p in places])
    code = np.array([p.country_code for p in places], dtype=object)
    name = np.array([json.dumps(p.name) for p in places], dtype=object)
    picks = rng.integers(0, len(places), n)
    true_lat, true_lng = lat[picks], lng[picks]
    if truth_points == "jittered":
        true_lat = np.clip(true_lat + rng.uniform(-0.09, 0.09, n), -90, 90)
        true_lng = (true_lng + rng.uniform(-0.09, 0.09, n) + 180) % 360 - 180
    guess = np.where(rng.random(n) < 0.5, picks, rng.integers(0, len(places), n))
    failed = rng.random(n) < 0.01
    missing = rng.random(n) < 0.005
    truth, preds = folder / "truth.jsonl", folder / "preds.jsonl"
    with open(truth, "w") as fh:
        fh.writelines(f'{{"id": "{i}", "lat": {a!r}, "lng": {b!r}}}\n'
                      for i, a, b in zip(range(n), true_lat.tolist(), true_lng.tolist()))
    g_lat, g_lng = (lat[guess] + 0.1).tolist(), lng[guess].tolist()
    g_code, g_name = code[guess].tolist(), name[guess].tolist()
    with open(preds, "w") as fh:
        for i in range(n):
            if missing[i]:
                continue
            if failed[i]:
                fh.write(f'{{"id": "{i}", "prediction": null, "failure": "parse_error: no JSON in answer"}}\n')
            else:
                fh.write(f'{{"id": "{i}", "prediction": {{"country": "{g_code[i]}", "city": {g_name[i]}, '
                         f'"latitude": {g_lat[i]!r}, "longitude": {g_lng[i]!r}}}, "failure": null}}\n')
    return preds, truth


def run_child(preds: Path, truth: Path, cache: Path) -> dict:
    """score_files in a fresh process with NAVIG_CACHE=cache."""
    env = {**os.environ, "NAVIG_CACHE": str(cache)}
    code = CHILD.format(root=str(ROOT), preds=str(preds), truth=str(truth))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_cli(preds: Path, truth: Path, cache: Path, out: Path) -> float:
    env = {**os.environ, "NAVIG_CACHE": str(cache)}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "navig.cli", "score", "--predictions", str(preds), "--truth", str(truth),
                    "--out", str(out)], capture_output=True, text=True, env=env, check=True, cwd=ROOT)
    return time.perf_counter() - start


def summary(values: list[float]) -> tuple[float, float]:
    return round(min(values), 3), round(statistics.median(values), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="rows of the prediction and truth files")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each timing (best and median reported)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--truth-points", choices=("jittered", "cities"), default="jittered",
                        help="truth rows each their own point near a city, or on 5,000 city coordinates")
    parser.add_argument("--kernel-n", type=int, default=1_000_000, help="samples for the score_arrays kernel timing")
    parser.add_argument("--no-cli", action="store_true", help="skip timing the navig score command itself")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)

    kernel_times, kernel_metrics = kernel_seconds(args.kernel_n, args.repeats, rng)
    print(f"kernel: score_arrays on {args.kernel_n:,}: best {min(kernel_times):.3f} s of {args.repeats}")

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        preds, truth = write_files(args.n, folder, args.truth_points, rng)
        print(f"wrote {args.n:,} rows ({preds.stat().st_size / 2**20:.0f} MiB predictions, "
              f"{truth.stat().st_size / 2**20:.0f} MiB truth) in {time.perf_counter() - start:.1f} s")
        # the first run ever also builds the reverse geocoder's place table (once per gazetteer
        # version, kept under NAVIG_CACHE like the searcher's gazetteer); later cold runs map it
        first = run_child(preds, truth, folder / "cache-first")
        places = sorted((folder / "cache-first").glob("reverse-places-*.arrow"))
        cold, warm = [], []
        for r in range(args.repeats):
            cache = folder / f"cache-{r}"  # no truth cache: only the place table is there
            cache.mkdir()
            for table in places:
                shutil.copy(table, cache / table.name)
            cold.append(run_child(preds, truth, cache))
            assert cold[-1]["truth_cache"] == "miss"
            warm.append(run_child(preds, truth, folder / "cache-0"))
            assert warm[-1]["truth_cache"] == "hit"
            print(f"run {r + 1}: cold {cold[-1]['seconds']:.2f} s (CPU {cold[-1]['cpu_seconds']:.2f} s), "
                  f"warm {warm[-1]['seconds']:.2f} s (CPU {warm[-1]['cpu_seconds']:.2f} s), "
                  f"peak RSS {max(cold[-1]['rss_mib'], warm[-1]['rss_mib']):.0f} MiB")
        cli = [] if args.no_cli else [run_cli(preds, truth, folder / "cache-0", folder / "m.json")
                                      for _ in range(args.repeats)]
    cold_best, cold_median = summary([c["seconds"] for c in cold])
    warm_best, warm_median = summary([w["seconds"] for w in warm])
    peak = max(max(c["rss_mib"] for c in cold), max(w["rss_mib"] for w in warm), first["rss_mib"])
    figures = {
        "score_files_seconds": cold_best, "score_files_median_seconds": cold_median,
        "score_files_warm_seconds": warm_best, "score_files_warm_median_seconds": warm_median,
        "score_files_cpu_seconds": summary([c["cpu_seconds"] for c in cold])[0],
        "score_files_warm_cpu_seconds": summary([w["cpu_seconds"] for w in warm])[0],
        "first_run_seconds": round(first["seconds"], 3), "first_run_cpu_seconds": round(first["cpu_seconds"], 3),
        "peak_rss_mib": round(peak, 1), "n": args.n, "truth_points": args.truth_points, "repeats": args.repeats,
        "under_3s_cold": cold_best < 3.0, "under_1s_warm": warm_best < 1.0, "under_2gib": peak < 2048,
        "cli_seconds": summary(cli)[0] if cli else None,
        "acc_25km": round(cold[0]["acc_25km"], 4), "country_acc": round(cold[0]["country_acc"], 4),
        "city_acc": round(cold[0]["city_acc"], 4),
        "seconds": round(min(kernel_times), 4), "kernel_n": args.kernel_n,
        "per_million_s": round(min(kernel_times) * 1e6 / args.kernel_n, 4),
        "kernel_geoscore": round(kernel_metrics["geoscore"], 1), "cpus": os.cpu_count(),
    }
    print(f"navig score on {args.n:,} rows: cold best {cold_best:.2f} s (median {cold_median:.2f}), "
          f"warm best {warm_best:.2f} s (median {warm_median:.2f}), peak RSS {peak:.0f} MiB")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
