"""Country accuracy of the transcript geoparser on rounds with a known country.

    python benchmarks/geoparse.py --rounds ../shared/naviclues/dev_rounds.jsonl [--out preds.jsonl] [--half even|odd]

Each input row needs `transcript` (or `words`) and the true `country` (name) or `country_code`.
Rows whose truth names no country (e.g. "N/A" for Antarctica) are reported and not scored.
The last stdout line is one JSON object: country_accuracy (0–1), rows (scored), skipped, and two
diagnostics: accuracy on the rounds the paper's score filter keeps (points ≥ 3400, when rows carry
points — points only group the rows, the parser never sees them) and accuracy/coverage of the
predictions with confidence ≥ 0.5 (how the parser serves as a weak label).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from annotate import gazetteer  # noqa: E402
from annotate.stages.geoparse import Geoparser  # noqa: E402
from naviclues.fsutil import atomic_write_text  # noqa: E402


def truth_code(row: dict) -> str | None:
    if row.get("country_code"):
        return str(row["country_code"]).upper()
    country = gazetteer.resolve_country(str(row.get("country") or ""))
    return country.code if country else None


KEPT_POINTS = 3400
CONFIDENT = 0.5


def _share(flags: list[bool]) -> float | None:
    return round(sum(flags) / len(flags), 4) if flags else None


def round_number(row: dict) -> int | None:
    try:
        return int(row["round"])
    except (KeyError, TypeError, ValueError):
        return None


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", required=True, type=Path, help="JSONL of rounds with transcript + truth")
    ap.add_argument("--out", type=Path, help="write per-row predictions (JSONL)")
    ap.add_argument("--half", choices=["all", "even", "odd"], default="all", help="score only even/odd rows (held-out check)")
    ap.add_argument("--show-errors", action="store_true")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    parser = Geoparser()
    load_s = time.perf_counter() - t0
    rows = [json.loads(line) for line in args.rounds.read_text("utf-8").splitlines() if line.strip()]
    preds, correct, scored, skipped = [], 0, 0, []
    kept = []  # correctness of rounds the paper's score filter keeps
    confident = []  # correctness of predictions with confidence ≥ CONFIDENT
    named = 0  # rounds whose true country is named at all (by name, demonym, language, city or region)
    when_named = []  # correctness on those rounds: how well the parser picks among what was said
    t1 = time.perf_counter()
    for i, row in enumerate(rows):
        if (args.half == "even" and i % 2) or (args.half == "odd" and not i % 2):
            continue
        truth = truth_code(row)
        words = row.get("words")
        result = parser.predict(words if words else row.get("transcript") or "", guess_s=row.get("guess_s"),
                                round_number=round_number(row))
        ok = truth is not None and result.country_code == truth
        if truth is None:
            skipped.append(row.get("id"))
        else:
            scored += 1
            correct += ok
            if isinstance(row.get("points"), (int, float)) and row["points"] >= KEPT_POINTS:
                kept.append(ok)
            was_named = any(code == truth for code, _ in result.ranked)
            named += was_named
            if was_named:
                when_named.append(ok)
            if result.confidence >= CONFIDENT:
                confident.append(ok)
        if args.show_errors and truth is not None and not ok:
            print(f"MISS {row.get('id')}: truth={truth} pred={result.country_code} ev={result.evidence[:4]}")
        preds.append({"id": row.get("id"), "truth": truth, "pred": result.country_code, "country": result.country,
                      "city": result.city, "region": result.region, "confidence": result.confidence,
                      "evidence": result.evidence, "ranked": result.ranked[:5], "error": result.error,
                      "correct": ok if truth else None})
    predict_s = time.perf_counter() - t1
    if args.out:
        atomic_write_text(args.out, "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in preds))
    accuracy = correct / scored if scored else 0.0
    print(f"rounds file: {args.rounds} ({args.half})")
    print(f"country accuracy: {accuracy:.3f} ({correct}/{scored}); unscored (no truth country): {len(skipped)}")
    print(f"true country named at all (the ceiling of a text parser): {named}/{scored}; "
          f"accuracy on those: {_share(when_named)}")
    print(f"rounds with points >= {KEPT_POINTS} (kept by the paper's filter): {_share(kept)} of {len(kept)}")
    print(f"confidence >= {CONFIDENT}: accuracy {_share(confident)} on {len(confident)} rows")
    print(f"load {load_s:.2f}s, predict {predict_s:.2f}s")
    summary = {"country_accuracy": round(accuracy, 4), "rows": scored, "correct": correct, "skipped": len(skipped),
               "half": args.half, "load_s": round(load_s, 2), "predict_s": round(predict_s, 2),
               "truth_named": round(named / scored, 4) if scored else 0.0,
               "accuracy_when_named": _share(when_named),
               "kept_rows": len(kept), "kept_accuracy": _share(kept),
               "confident_coverage": round(len(confident) / scored, 4) if scored else 0.0,
               "confident_accuracy": _share(confident)}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
