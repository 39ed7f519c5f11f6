"""ROUGE of the offline (extractive) reasoning against reference reasoning.

    python benchmarks/rewrite_rouge.py --rounds ../shared/naviclues/dev_rounds.jsonl [--out preds.jsonl]

Rows with a `reference_reasoning` are scored. The input transcript is cut to its pre-reveal part:
by `guess_s` when the row has timed `words`, else by the reveal-phrase detector of
annotate.stages.geoparse (dev rows carry untimed captions that run past the reveal). ROUGE-1/2/L
F-measures (rouge-score, Porter stemmer, as the Navig repository scores) are averaged over rows.
The last stdout line is one JSON object: rouge1, rouge2, rougeL (0–1), rows, mean_chars.
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
from annotate.stages.geoparse import pre_reveal_text  # noqa: E402
from benchmarks.geoparse import round_number  # noqa: E402
from annotate.stages.reasoning import ExtractiveWriter, ReasoningRequest, rewrite  # noqa: E402
from naviclues.fsutil import atomic_write_text  # noqa: E402


def row_transcript(row: dict) -> str:
    words = row.get("words") or []
    if words and row.get("guess_s") is not None:
        return " ".join(str(w["text"]) for w in words if w.get("start", 0.0) < row["guess_s"])
    return pre_reveal_text(row.get("transcript") or "", round_number=round_number(row))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", required=True, type=Path)
    ap.add_argument("--out", type=Path, help="write per-row reasoning and scores (JSONL)")
    ap.add_argument("--target-chars", type=int, default=ReasoningConfig().target_chars)
    args = ap.parse_args(argv)

    rows = [json.loads(line) for line in args.rounds.read_text("utf-8").splitlines() if line.strip()]
    rows = [r for r in rows if (r.get("reference_reasoning") or "").strip()]
    writer = ExtractiveWriter(ReasoningConfig(target_chars=args.target_chars))
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    totals = {"rouge1": [], "rouge2": [], "rougeL": []}
    out_rows, errors, lengths = [], [], []
    t0 = time.perf_counter()
    for row in rows:
        request = ReasoningRequest(round_id=str(row.get("id")), transcript=row_transcript(row),
                                   country=row.get("country"), lat=row.get("lat") or 0.0, lng=row.get("lng") or 0.0)
        result = rewrite(writer, request)
        if result.error:
            errors.append(result.error)
            text = ""
        else:
            text = result.text
        scores = scorer.score(row["reference_reasoning"], text)
        for key in totals:
            totals[key].append(scores[key].fmeasure)
        lengths.append(len(text))
        out_rows.append({"id": row.get("id"), "reasoning": text, "source": result.source, "error": result.error,
                         **{k: round(scores[k].fmeasure, 4) for k in totals}})
    elapsed = time.perf_counter() - t0
    if args.out:
        atomic_write_text(args.out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in out_rows))
    means = {k: (statistics.mean(v) if v else 0.0) for k, v in totals.items()}
    print(f"rows with reference reasoning: {len(rows)}; errors: {len(errors)}")
    for e in errors[:5]:
        print("  error:", e)
    print(f"ROUGE-1 {means['rouge1']:.4f}  ROUGE-2 {means['rouge2']:.4f}  ROUGE-L {means['rougeL']:.4f}")
    print(f"mean reasoning length {statistics.mean(lengths) if lengths else 0:.0f} chars; {elapsed:.1f}s")
    summary = {**{k: round(v, 4) for k, v in means.items()}, "rows": len(rows), "errors": len(errors),
               "mean_chars": round(statistics.mean(lengths), 1) if lengths else 0.0, "backend": writer.source}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
