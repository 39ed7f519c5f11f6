"""Country accuracy of the transcript geoparser on rounds with a known country.

    python benchmarks/geoparse.py --rounds ../shared/naviclues/dev_rounds.jsonl [--out preds.jsonl] [--half even|odd]
        [--cv 5] [--fit-weights annotate/stages/geoparse_ranker.json] [--ranker shipped|rules|PATH]

Each input row needs `transcript` (or `words`) and the true `country` (name) or `country_code`.
Rows whose truth names no country (e.g. "N/A" for Antarctica) are reported and not scored.
The last stdout line is one JSON object: country_accuracy (0–1), rows (scored), skipped, and two
diagnostics: accuracy on the rounds the paper's score filter keeps (points ≥ 3400, when rows carry
points — points only group the rows, the parser never sees them) and accuracy/coverage of the
predictions with confidence ≥ 0.5 (how the parser serves as a weak label).

The plain figure is the shipped parser on the given rows (its ranker weights were fitted on the dev
rows, so on dev it is an in-sample figure). `--cv K` adds the figure that counts: grouped K-fold
cross-validation, once with rows grouped by challenge and once by channel (a challenge nests in its
channel; K is capped at the number of groups, so 5 channels give leave-one-channel-out). In each
fold the ranker — its weights and its L2 strength (inner grouped folds) — is fitted on the training
folds only and scores the held-out fold. Reported twice: with the full feature set the parser
ships, and with the talk's structure alone (no hand-set rule score, whose weights earlier work set
by reading dev rows — so only the structure-only figure is free of dev knowledge).
`--fit-weights PATH` fits the ranker on all given rows and writes its weights (how the shipped
file is made).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from annotate import gazetteer  # noqa: E402
from annotate.folds import GROUPINGS, grouped_folds, row_group  # noqa: E402
from annotate.stages import geoparse_ranker  # noqa: E402
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


def cross_validated(examples: list[tuple], rows: list[dict], k: int, grouping: str,
                    feature_names: tuple[str, ...]) -> dict:
    """Grouped K-fold figures: each fold scored by a ranker fitted on the other folds only."""
    groups = [row_group(row, grouping) for row in rows]
    try:
        folds = grouped_folds(groups, k)
    except ValueError as exc:  # e.g. every row from one channel: no fold to hold out
        return {"error": str(exc), "country_accuracy": None, "accuracy_when_named": None}
    correct, when_named = [], []
    for fold in sorted(set(folds)):
        train = [i for i, f in enumerate(folds) if f != fold]
        ranker = geoparse_ranker.fit_ranker([examples[i] for i in train], [groups[i] for i in train],
                                            feature_names=feature_names)
        for i, f in enumerate(folds):
            if f != fold:
                continue
            features, truth = examples[i]
            scores = ranker.scores(features)
            ok = bool(scores) and max(scores, key=scores.get) == truth
            correct.append(ok)
            if truth in features.codes:
                when_named.append(ok)
    return {"country_accuracy": _share(correct), "accuracy_when_named": _share(when_named),
            "folds": len(set(folds)), "groups": len(set(groups))}


def load_rows(path: Path) -> list[dict]:
    rows = []
    for n, line in enumerate(path.read_text("utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except ValueError as exc:
                raise SystemExit(f"{path}:{n}: not a JSON object ({exc})") from exc
    return rows


def make_parser(choice: str) -> Geoparser:
    if choice == "shipped":
        return Geoparser()
    if choice == "rules":
        return Geoparser(ranker=None)
    try:
        return Geoparser(ranker=geoparse_ranker.load_ranker(Path(choice)))
    except ValueError as exc:
        raise SystemExit(f"--ranker: {exc}") from exc


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", required=True, type=Path, help="JSONL of rounds with transcript + truth")
    ap.add_argument("--out", type=Path, help="write per-row predictions (JSONL)")
    ap.add_argument("--half", choices=["all", "even", "odd"], default="all", help="score only even/odd rows (held-out check)")
    ap.add_argument("--show-errors", action="store_true")
    ap.add_argument("--cv", type=int, default=0, metavar="K", help="add grouped K-fold cross-validated figures")
    ap.add_argument("--ranker", default="shipped", help="shipped | rules (hand-set scores) | PATH to weights JSON")
    ap.add_argument("--fit-weights", type=Path, help="fit the ranker on all scored rows and write its weights here")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    parser = make_parser(args.ranker)
    load_s = time.perf_counter() - t0
    rows = load_rows(args.rounds)
    preds, correct, scored, skipped = [], 0, 0, []
    examples, example_rows = [], []  # (ranker features, truth) of the scored rows, for --cv / --fit-weights
    last_named = []  # the naive baseline: the last country named
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
            if args.cv or args.fit_weights:
                talk = parser.analyse(words if words else row.get("transcript") or "", guess_s=row.get("guess_s"),
                                      round_number=round_number(row))
                examples.append((geoparse_ranker.round_features(talk), truth))
                example_rows.append(row)
                named_codes = [m.code for m in talk.mentions if m.code]
                last_named.append(bool(named_codes) and named_codes[-1] == truth)
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
                      "candidates": {c: result.candidates.get(c, []) for c, _ in result.ranked[:3]},
                      "correct": ok if truth else None})
    predict_s = time.perf_counter() - t1
    cv = {}
    if args.cv:
        cv = {"k": args.cv, "last_named_baseline": _share(last_named)}
        for grouping in GROUPINGS:
            cv[grouping] = cross_validated(examples, example_rows, args.cv, grouping, geoparse_ranker.ALL_FEATURES)
            cv[f"{grouping}_structure_only"] = cross_validated(examples, example_rows, args.cv, grouping,
                                                               geoparse_ranker.STRUCTURE_FEATURES)
    if args.fit_weights:
        fitted = geoparse_ranker.fit_ranker(examples, [row_group(r, "challenge") for r in example_rows])
        atomic_write_text(args.fit_weights, json.dumps(fitted.to_json(), indent=1) + "\n")
        print(f"ranker weights fitted on {fitted.fitted_on} rounds (l2={fitted.l2}) -> {args.fit_weights}")
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
    if cv:
        for grouping in GROUPINGS:
            for key in (grouping, f"{grouping}_structure_only"):
                if cv[key].get("error"):
                    print(f"cv {args.cv} by {key}: not measured ({cv[key]['error']})")
                    continue
                print(f"cv {args.cv} by {key}: accuracy {cv[key]['country_accuracy']}, "
                      f"when named {cv[key]['accuracy_when_named']} ({cv[key]['folds']} folds)")
    summary = {"country_accuracy": round(accuracy, 4), "rows": scored, "correct": correct, "skipped": len(skipped),
               "half": args.half, "load_s": round(load_s, 2), "predict_s": round(predict_s, 2),
               "truth_named": round(named / scored, 4) if scored else 0.0,
               "accuracy_when_named": _share(when_named),
               "kept_rows": len(kept), "kept_accuracy": _share(kept),
               "confident_coverage": round(len(confident) / scored, 4) if scored else 0.0,
               "confident_accuracy": _share(confident), "ranker": args.ranker}
    if cv:
        # the headline CV figure groups by challenge: held-out rounds come from the same channels' other games
        summary.update(cv_country_accuracy=cv["challenge"]["country_accuracy"],
                       cv_accuracy_when_named=cv["challenge"]["accuracy_when_named"], cv=cv)
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
