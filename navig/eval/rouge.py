"""Reasoning quality: ROUGE-1/2/L (F-measure, `rouge-score`) of the Reasoner's generated reasoning
against the human reasoning of the NaviClues test split (the paper's reasoning table reports these
×100, e.g. Qwen2-VL Reasoner 51.4 / 14.6 / 24.3).

The Reasoner is asked exactly what it was trained on: the user turn of each row's `messages`
(falling back to `annotate.prompts.REASONING_PROMPT`) with the row's image; generations go
through `navig.backends.load_vlm`, so a local transformers model (+ LoRA adapter) or an
OpenAI-compatible server can be scored the same way.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

from naviclues.fsutil import atomic_write_json, atomic_write_text

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


def rouge_scores(predictions: Sequence[str], references: Sequence[str], *, use_stemmer: bool = True) -> dict[str, Any]:
    """Mean ROUGE-1/2/L F-measures (0–1) over aligned pairs; an empty prediction scores 0."""
    from rouge_score import rouge_scorer

    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions vs {len(references)} references")
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=use_stemmer)
    totals = {k: 0.0 for k in ROUGE_TYPES}
    per_item = []
    for pred, ref in zip(predictions, references):
        scores = scorer.score(ref or "", pred or "")
        item = {k: scores[k].fmeasure for k in ROUGE_TYPES}
        per_item.append(item)
        for k in ROUGE_TYPES:
            totals[k] += item[k]
    n = len(per_item)
    return {**{k: (totals[k] / n if n else math.nan) for k in ROUGE_TYPES}, "n": n, "per_item": per_item}


def _user_prompt(messages: list[dict] | None) -> str | None:
    for message in messages or []:
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        texts = [part.get("text") for part in content or [] if part.get("type") == "text" and part.get("text")]
        if texts:
            return "\n".join(texts)
    return None


def _reference(row: dict) -> str | None:
    if row.get("reasoning"):
        return row["reasoning"]
    for message in row.get("messages") or []:
        if message.get("role") == "assistant":
            content = message.get("content")
            if isinstance(content, str):
                return content
            return "\n".join(p.get("text") or "" for p in content or [] if p.get("type") == "text") or None
    return None


def evaluate_reasoning(
    dataset: str | Path,
    model: str,
    out: Path | str,
    *,
    adapter: str | None = None,
    split: str = "test",
    backend: str = "transformers",
    base_url: str | None = None,
    device: str = "cpu",
    max_new_tokens: int = 512,
    batch_size: int = 4,
    limit: int | None = None,
) -> dict[str, Any]:
    """Generate reasoning for `split` of a NaviClues-style dataset and score it with ROUGE.

    Writes `reasoning.jsonl` (id, generated, reference) and `rouge.json` under `out`; rows without a
    reference or image are recorded as skipped, not scored.
    """
    from annotate.prompts import REASONING_PROMPT
    from navig.backends.base import VLMRequest, load_vlm
    from navig.eval.benchmarks import _load_hf_dataset

    out = Path(out)
    data = _load_hf_dataset(dataset, split)
    if limit is not None:
        data = data.select(range(min(limit, len(data))))
    vlm = load_vlm(backend, model, adapter=adapter, base_url=base_url, device=device, max_batch=batch_size)
    use_adapter = vlm.has_adapter
    ids, requests, references, skipped = [], [], [], []
    for index in range(len(data)):
        row = data[index]
        row_id = str(row.get("id") or index)
        images = row.get("images") if "images" in row else ([row["image"]] if row.get("image") is not None else [])
        reference = _reference(row)
        if not images or not reference:
            skipped.append({"id": row_id, "reason": "no image" if not images else "no reference reasoning"})
            continue
        prompt = _user_prompt(row.get("messages")) or REASONING_PROMPT
        ids.append(row_id)
        references.append(reference)
        requests.append(VLMRequest(images=[im.convert("RGB") for im in images], prompt=prompt,
                                   max_new_tokens=max_new_tokens, use_adapter=use_adapter))
    answers = []
    for start in range(0, len(requests), batch_size):
        answers.extend(vlm.generate_each(requests[start:start + batch_size]))
    # a request that failed (after the backend's retries) is recorded, not scored as an empty text
    failed = [{"id": i, "reason": f"generation failed: {a}"} for i, a in zip(ids, answers) if not isinstance(a, str)]
    kept = [(i, a, r) for i, a, r in zip(ids, answers, references) if isinstance(a, str)]
    ids, generated, references = [k[0] for k in kept], [k[1] for k in kept], [k[2] for k in kept]
    skipped.extend(failed)
    scores = rouge_scores(generated, references)
    per_item = scores.pop("per_item")
    atomic_write_text(out / "reasoning.jsonl", "".join(
        json.dumps({"id": i, "generated": g, "reference": r, **s}, ensure_ascii=False) + "\n"
        for i, g, r, s in zip(ids, generated, references, per_item)))
    result = {**scores, "n_skipped": len(skipped), "n_failed": len(failed), "skipped": skipped[:50], "model": model, "adapter": adapter,
              "dataset": str(dataset), "split": split}
    atomic_write_json(out / "rouge.json", result)
    return result
