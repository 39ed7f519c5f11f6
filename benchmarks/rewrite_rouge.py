"""ROUGE of the offline answer-guided reasoning against reference reasoning.

    python benchmarks/rewrite_rouge.py --rounds ../shared/naviclues/dev_rounds.jsonl [--out preds.jsonl] [--cv 5]

Rows with a `reference_reasoning` are scored. The input transcript is cut to its pre-reveal part:
by `guess_s` when the row has timed `words`, else by the reveal-phrase detector of
annotate.stages.geoparse (dev rows carry untimed captions that run past the reveal). ROUGE-1/2/L
F-measures (rouge-score, Porter stemmer, as the Navig repository scores) are averaged over rows.
The last stdout line is one JSON object: rouge1, rouge2, rougeL (0–1), rows, mean_chars,
country_named (share of texts naming the true country) and reveal_sentences (sentences of result
talk in the outputs: scores, distances, "it was").

The plain figure uses the default style (the paper's ≈840 characters, the default clue order).
`--cv K` adds grouped K-fold figures (rows grouped by challenge, and by channel): the style — the
target length (median reference length) and the order of clue kinds (their mean position in the
references) — is fitted on the training folds' references only and the held-out fold is scored.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rouge_score import rouge_scorer  # noqa: E402

from annotate.config import ReasoningConfig  # noqa: E402
from annotate.folds import GROUPINGS, grouped_folds, row_group  # noqa: E402
from annotate.stages.geoparse import pre_reveal_text  # noqa: E402
from annotate.stages.offline_rewrite import REVEAL_PHRASES, ReasoningStyle, fit_style  # noqa: E402
from annotate.stages.reasoning import ExtractiveWriter, ReasoningRequest, rewrite  # noqa: E402
from annotate.text import split_sentences  # noqa: E402
from benchmarks.geoparse import load_rows, round_number  # noqa: E402
from naviclues.fsutil import atomic_write_text  # noqa: E402


def row_transcript(row: dict) -> str:
    words = row.get("words") or []
    if words and row.get("guess_s") is not None:
        return " ".join(str(w["text"]) for w in words if w.get("start", 0.0) < row["guess_s"])
    return pre_reveal_text(row.get("transcript") or "", round_number=round_number(row))


KEYS = ("rouge1", "rouge2", "rougeL")


def score_rows(rows: list[dict], writer: ExtractiveWriter, scorer) -> list[dict]:
    """Per row: the reasoning, its ROUGE F-measures, whether it names the true country, its result talk."""
    out = []
    for row in rows:
        request = ReasoningRequest(round_id=str(row.get("id")), transcript=row_transcript(row),
                                   country=row.get("country"), lat=row.get("lat") or 0.0, lng=row.get("lng") or 0.0)
        result = rewrite(writer, request)
        text = result.text or ""
        scores = scorer.score(row["reference_reasoning"], text)
        country = (row.get("country") or "").lower()
        out.append({"id": row.get("id"), "reasoning": text, "source": result.source, "error": result.error,
                    "country_named": bool(country) and country in text.lower(),
                    "reveal_sentences": sum(bool(REVEAL_PHRASES.search(s)) for s in split_sentences(text)),
                    **{k: round(scores[k].fmeasure, 4) for k in KEYS}})
    return out


def means(scored: list[dict]) -> dict:
    return {k: round(statistics.mean(r[k] for r in scored), 4) if scored else 0.0 for k in KEYS}


def cross_validated(rows: list[dict], k: int, grouping: str, writer: ExtractiveWriter, scorer) -> dict:
    """Each fold written with a style fitted on the other folds' references only."""
    try:
        folds = grouped_folds([row_group(r, grouping) for r in rows], k)
    except ValueError as exc:  # e.g. every row from one channel: no fold to hold out
        return {"error": str(exc), **{key: None for key in KEYS}}
    scored, lengths = [], []
    for fold in sorted(set(folds)):
        train = [r["reference_reasoning"] for r, f in zip(rows, folds) if f != fold]
        style = fit_style(train, writer._extract)
        lengths.append(style.target_chars)
        fold_writer = ExtractiveWriter(writer.config, writer.clue_extractor, style=style)
        scored += score_rows([r for r, f in zip(rows, folds) if f == fold], fold_writer, scorer)
    return {**means(scored), "folds": len(set(folds)), "fitted_target_chars": lengths,
            "country_named": round(sum(r["country_named"] for r in scored) / len(scored), 4),
            "reveal_sentences": sum(r["reveal_sentences"] for r in scored)}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", required=True, type=Path)
    ap.add_argument("--out", type=Path, help="write per-row reasoning and scores (JSONL)")
    ap.add_argument("--target-chars", type=int, default=ReasoningConfig().target_chars)
    ap.add_argument("--cv", type=int, default=0, metavar="K", help="add grouped K-fold cross-validated figures")
    args = ap.parse_args(argv)

    rows = [r for r in load_rows(args.rounds) if (r.get("reference_reasoning") or "").strip()]
    writer = ExtractiveWriter(ReasoningConfig(target_chars=args.target_chars), style=ReasoningStyle(args.target_chars))
    scorer = rouge_scorer.RougeScorer(list(KEYS), use_stemmer=True)
    t0 = time.perf_counter()
    out_rows = score_rows(rows, writer, scorer)
    errors = [r["error"] for r in out_rows if r["error"]]
    cv = {}
    if args.cv:
        cv = {"k": args.cv, **{g: cross_validated(rows, args.cv, g, writer, scorer) for g in GROUPINGS}}
    elapsed = time.perf_counter() - t0
    if args.out:
        atomic_write_text(args.out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in out_rows))
    plain = means(out_rows)
    lengths = [len(r["reasoning"]) for r in out_rows]
    print(f"rows with reference reasoning: {len(rows)}; errors: {len(errors)}")
    for e in errors[:5]:
        print("  error:", e)
    print(f"ROUGE-1 {plain['rouge1']:.4f}  ROUGE-2 {plain['rouge2']:.4f}  ROUGE-L {plain['rougeL']:.4f}")
    for grouping in GROUPINGS if cv else ():
        if cv[grouping].get("error"):
            print(f"cv {args.cv} by {grouping}: not measured ({cv[grouping]['error']})")
            continue
        print(f"cv {args.cv} by {grouping}: ROUGE-1 {cv[grouping]['rouge1']:.4f}  ROUGE-L {cv[grouping]['rougeL']:.4f} "
              f"(fitted lengths {cv[grouping]['fitted_target_chars']})")
    print(f"mean reasoning length {statistics.mean(lengths) if lengths else 0:.0f} chars; {elapsed:.1f}s")
    summary = {**plain, "rows": len(rows), "errors": len(errors),
               "mean_chars": round(statistics.mean(lengths), 1) if lengths else 0.0, "backend": writer.source,
               "country_named": round(sum(r["country_named"] for r in out_rows) / len(out_rows), 4) if out_rows else 0.0,
               "reveal_sentences": sum(r["reveal_sentences"] for r in out_rows)}
    if cv:
        # headline: grouped by challenge (held-out rounds come from other games of the same channels)
        summary.update({f"cv_{k}": cv["challenge"][k] for k in KEYS}, cv=cv)
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
