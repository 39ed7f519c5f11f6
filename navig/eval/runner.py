"""Run the locate pipeline over a benchmark, resumably, then score it.

Layout of one run folder (`<out>/<benchmark>/<ablation>/`):

- `truth.jsonl`: the benchmark's truth (what `navig score` reads).
- `predictions.jsonl`: one `navig locate` line per sample, written by
  `navig.pipeline.locate_to_jsonl`, which appends one flushed line per image and skips ids already
  present (a torn last line from a crash is dropped and that sample runs again). A rerun therefore
  only locates what is missing, and a finished run is only re-scored; a sample whose image file no
  longer holds the bytes its line was made from (`image_sha256`) is located again. With `retry_failed`, samples
  whose last line is an infrastructure failure (server down: `failure_kind` backend/pipeline) are
  located again and their new line supersedes the old one (the last line per id counts).
- `predictions.jsonl.settings.json`: the settings the predictions were made with
  (`navig.pipeline.claim_settings`). A rerun with other settings (another model, adapter, prompt,
  option, guidebook, geocoder, or the benchmark's paper settings) is refused before anything is
  located (`SettingsMismatch`), or with `restart` the old lines are set aside and the run starts over.
- `metrics.json`: `navig.eval.metrics.score_files` + tool usage + run settings.
- `metrics.md`: the same as a markdown table row.

The paper's per-benchmark settings (`benchmark_settings` in `paper_results.yaml`, e.g. its
GroundingDINO thresholds on Im2GPS3k) are applied to the benchmarks the paper used, except the
options the caller names in `keep_options` (set on the command line); `metrics.json` records them.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterable

from naviclues.fsutil import atomic_write_json, atomic_write_text, fingerprint, read_json
from navig.eval.ablations import ABLATION_LABELS, apply_ablation
from navig.eval.benchmarks import Benchmark
from navig.eval.metrics import THRESHOLDS_KM, score_files, tool_usage_file

PREDICTIONS = "predictions.jsonl"


def paper_benchmark_settings(benchmark_name: str) -> dict[str, Any]:
    """The paper's settings for one of its benchmarks (`benchmark_settings` in paper_results.yaml;
    {} for a benchmark it did not use)."""
    from navig.eval.reproduce import load_paper_results

    return dict((load_paper_results().get("benchmark_settings") or {}).get(benchmark_name) or {})


def run_options(benchmark: Benchmark, options: Any, ablation: str = "full",
                keep_options: Iterable[str] = ()) -> tuple[Any, dict[str, Any]]:
    """The options one run uses: the ablation's switches, then the paper's settings for this
    benchmark except those in `keep_options`. Returns (options, the paper settings applied)."""
    import dataclasses

    options = apply_ablation(options, ablation)
    keep = set(keep_options)
    applied = {k: v for k, v in paper_benchmark_settings(benchmark.name).items() if k not in keep}
    if applied:
        options = dataclasses.replace(options, **applied)
    return options, applied


def settings_conflicts(runs: Iterable[tuple[Benchmark, Any, Path | str, str]],
                       keep_options: Iterable[str] = ()) -> list[str]:
    """For (benchmark, options, run folder, ablation) runs: why each one's existing predictions
    cannot be resumed with these settings (empty: all can). Reads only; no model loads."""
    from navig.pipeline import settings_conflict

    keep = tuple(keep_options)
    problems = []
    for benchmark, options, run_dir, ablation in runs:
        effective, _ = run_options(benchmark, options, ablation, keep)
        problem = settings_conflict(Path(run_dir) / PREDICTIONS, effective)
        if problem:
            problems.append(problem)
    return problems


def _default_locate() -> Callable:
    from navig.pipeline import locate_to_jsonl

    return locate_to_jsonl


def run_eval(
    benchmark: Benchmark,
    options: Any,
    out_dir: Path | str,
    *,
    ablation: str = "full",
    report: Path | None = None,
    policy: str = "miss",
    locate: Callable | None = None,
    retry_failed: bool = False,
    restart: bool = False,
    keep_options: Iterable[str] = (),
) -> dict[str, Any]:
    """Locate every sample of `benchmark` not yet in `out_dir`, score, write metrics; return them.

    `report`: an HTML report path handed to the pipeline; `locate`: the locate function
    (`navig.pipeline.locate_to_jsonl` by default); `retry_failed`: also redo samples whose last
    line is an infrastructure failure (see `navig.pipeline.needs_retry`); `restart`: predictions
    made with other settings are set aside instead of refused (`navig.pipeline.claim_settings`);
    `keep_options`: option names the paper's per-benchmark settings must not override.
    """
    from navig.pipeline import claim_settings, pending, read_done

    run_dir = Path(out_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    options, paper_settings = run_options(benchmark, options, ablation, keep_options)
    settings = claim_settings(run_dir / PREDICTIONS, options, restart=restart)  # before any line is reused
    truth_path = benchmark.write_truth(run_dir / "truth.jsonl")
    have = read_done(run_dir / PREDICTIONS)
    todo, retry, changed = pending(benchmark.items(), have, retry_failed=retry_failed)
    located: dict[str, Any] = {}
    if todo:  # models load only when something is left to locate
        locate = locate or _default_locate()
        extra = {"retry_failed": True} if retry else {}
        located = locate(todo, run_dir / PREDICTIONS, options, report=report, **extra) or {}

    metrics = score_files(run_dir / PREDICTIONS, truth_path, policy=policy)
    sample_ids = {s.id for s in benchmark.samples}
    usage = tool_usage_file(run_dir / PREDICTIONS, sample_ids)  # columnar, like the scoring
    metrics.update({
        "benchmark": benchmark.name,
        "benchmark_source": benchmark.source,
        "benchmark_problems": len(benchmark.problems),
        "ablation": ablation,
        "ablation_label": ABLATION_LABELS.get(ablation, ablation),
        "model": str(getattr(options, "model", "")),
        "adapter": (str(options.adapter) if getattr(options, "adapter", None) else None),
        "use_reasoner": getattr(options, "use_reasoner", None),
        "use_searcher": getattr(options, "use_searcher", None),
        "paper_benchmark_settings": paper_settings,
        "settings_fingerprint": fingerprint(settings),
        "tool_usage": usage["calls"],
        "tool_usage_samples": usage["samples"],
        "resumed_lines": len(have),
        "retried": len(retry),
        "changed_images": len(changed),
        "located_now": len(todo),
        "locate_summary": _jsonable(located),
    })
    if benchmark.problems:
        atomic_write_text(run_dir / "benchmark_problems.txt", "\n".join(benchmark.problems) + "\n")
    atomic_write_json(run_dir / "metrics.json", metrics)
    atomic_write_text(run_dir / "metrics.md", markdown_table([metrics]))
    return metrics


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except TypeError:
        return json.loads(json.dumps(value, default=str))


def _pct(x: Any) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def _num(x: Any) -> str:
    return "–" if x is None else f"{x:,.0f}"


COLUMNS = ([f"{t} km" for t in THRESHOLDS_KM] + ["mean km", "median km", "GeoScore", "country", "city",
                                                  "failed", "stage errors", "n"])


def table_row(m: dict[str, Any]) -> list[str]:
    return ([_pct(m.get(f"acc_{t}km")) for t in THRESHOLDS_KM]
            + [_num(m.get("mean_km")), _num(m.get("median_km")), _num(m.get("geoscore")),
               _pct(m.get("country_acc")), _pct(m.get("city_acc")), _pct(m.get("failure_rate")),
               _pct(m.get("stage_error_rate")), str(m.get("n", ""))])


def markdown_table(runs: Iterable[dict[str, Any]]) -> str:
    """Accuracies in %, distances in km: one row per (benchmark, ablation) run."""
    header = ["benchmark", "ablation", *COLUMNS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for m in runs:
        lines.append("| " + " | ".join([str(m.get("benchmark", "")), str(m.get("ablation_label", m.get("ablation", "")))]
                                       + table_row(m)) + " |")
    return "\n".join(lines) + "\n"


def rich_table(runs: Iterable[dict[str, Any]], title: str = "navig eval"):
    from rich.table import Table

    table = Table(title=title)
    for col in ["benchmark", "ablation", *COLUMNS]:
        table.add_column(col, justify="left" if col in ("benchmark", "ablation") else "right")
    for m in runs:
        table.add_row(str(m.get("benchmark", "")), str(m.get("ablation_label", m.get("ablation", ""))), *table_row(m))
    return table


def load_run_metrics(run_dir: Path | str) -> dict[str, Any] | None:
    path = Path(run_dir) / "metrics.json"
    return read_json(path) if path.is_file() else None


def tool_usage_markdown(runs: Iterable[dict[str, Any]]) -> str:
    runs = list(runs)
    tools = sorted({t for m in runs for t in (m.get("tool_usage") or {})})
    if not tools:
        return ""
    lines = ["| benchmark | ablation | " + " | ".join(tools) + " |", "|" + "---|" * (len(tools) + 2)]
    for m in runs:
        usage = m.get("tool_usage") or {}
        lines.append(f"| {m.get('benchmark')} | {m.get('ablation_label', m.get('ablation'))} | "
                     + " | ".join(str(usage.get(t, 0)) for t in tools) + " |")
    return "\n".join(lines) + "\n"


__all__ = ["run_eval", "run_options", "settings_conflicts", "paper_benchmark_settings", "markdown_table", "rich_table", "tool_usage_markdown", "load_run_metrics",
           "PREDICTIONS"]
