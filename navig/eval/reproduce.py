"""Reproduce the paper's tables: run models x benchmarks x ablations, then print ours beside theirs.

Each run lives in `<out>/<model>/<benchmark>/<ablation>/` (see `navig.eval.runner`), so the
matrix is resumable: finished samples are never located twice and a finished run is only
re-scored. `dry_run` prints the plan (and each run's progress) and the published tables without
loading a model or writing anything; without models it plans the paper's default one
(`placeholder_model_specs`) so the matrix can be seen before anything is trained.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import yaml

from navig.eval.ablations import ABLATION_LABELS, ABLATIONS, apply_ablation
from navig.eval.metrics import PAPER_FAILURE_KM, THRESHOLDS_KM

PAPER_RESULTS = Path(__file__).resolve().parent / "paper_results.yaml"
GEO_METRICS = [f"acc_{t}km" for t in THRESHOLDS_KM] + ["mean_km", "geoscore"]
GEO_HEADERS = [f"{t} km" for t in THRESHOLDS_KM] + ["mean km", "GeoScore"]
ROUGE_KEYS = ("rouge1", "rouge2", "rougeL")


PAPER_MODEL_NAME = "qwen2-vl"  # the paper-row key of Navig's base model
PAPER_MODEL = "Qwen/Qwen2-VL-7B-Instruct"
ADAPTER_TO_BE_GIVEN = "(to be given)"


@dataclass
class ModelSpec:
    name: str  # the paper-row key, e.g. "qwen2-vl"
    model: str
    adapter: str | None = None
    placeholder: bool = False  # planned for a dry run only: the model was not given


def placeholder_model_specs() -> list[ModelSpec]:
    """The paper's model, for a dry run without --model: the adapter is yet to be trained/given."""
    return [ModelSpec(PAPER_MODEL_NAME, PAPER_MODEL, None, placeholder=True)]


@dataclass
class PlannedRun:
    model: ModelSpec
    benchmark: str  # spec as given
    benchmark_name: str
    ablation: str
    run_dir: Path
    done: int = 0  # predictions already on disk
    retryable: int = 0  # of those, infrastructure failures that --retry-failed would redo


@dataclass
class Plan:
    runs: list[PlannedRun] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def load_paper_results(path: Path | str = PAPER_RESULTS) -> dict[str, Any]:
    """The published numbers; an ablation row printed as `change_from_full` (points off the model's
    full row, Tables 6 and 14) gets `results` = full + change where it has none of its own."""
    paper = yaml.safe_load(Path(path).read_text("utf-8"))
    rows = paper.get("geolocation") or []
    full = {row["model"]: row.get("results") or {} for row in rows if row["ablation"] == "full"}
    for row in rows:
        results = dict(row.get("results") or {})
        for bench, change in (row.get("change_from_full") or {}).items():
            base = full.get(row["model"], {}).get(bench) or {}
            if results.get(bench) is None and base:
                results[bench] = {key: round(base[key] + change[key], 1) if key in change and base.get(key) is not None
                                  else None for key in paper.get("metrics") or base}
        row["results"] = results
    return paper


def parse_model_specs(models: list[str], adapters: list[str] | None = None) -> list[ModelSpec]:
    """`NAME=ID_OR_PATH` models and `NAME=ADAPTER_DIR` adapters (a bare value names the model itself)."""
    specs: dict[str, ModelSpec] = {}
    for raw in models:
        name, sep, value = raw.partition("=")
        if not sep:
            name, value = Path(raw).name or raw, raw
        specs[name] = ModelSpec(name, value)
    for raw in adapters or []:
        name, sep, value = raw.partition("=")
        if not sep:
            if len(specs) != 1:
                raise ValueError(f"adapter {raw!r}: say which model it belongs to (NAME=PATH)")
            name, value = next(iter(specs)), raw
        if name not in specs:
            raise ValueError(f"adapter {raw!r}: no model named {name!r} (models: {sorted(specs)})")
        specs[name].adapter = value
    return list(specs.values())


def build_plan(models: list[ModelSpec], benchmarks: list[str], ablations: list[str], out: Path) -> Plan:
    from navig.eval.benchmarks import benchmark_name
    from navig.eval.runner import PREDICTIONS
    from navig.pipeline import needs_retry, read_done

    plan = Plan()
    for ablation in ablations:
        if ablation not in ABLATIONS:
            raise ValueError(f"unknown ablation {ablation!r}; choose from {sorted(ABLATIONS)}")
    for spec in models:
        for bench in benchmarks:
            name = benchmark_name(bench)
            for ablation in ablations:
                if ablation == "no_training" and spec.adapter is None and not spec.placeholder:
                    plan.notes.append(f"{spec.name}: no adapter given, so 'full' already is 'w/o training'")
                run_dir = Path(out) / spec.name / name / ablation
                try:
                    done = read_done(run_dir / PREDICTIONS, repair=False)  # read-only: a plan writes nothing
                except ValueError as exc:  # a corrupt line: the plan says so, the run itself will refuse
                    done = {}
                    plan.notes.append(str(exc))
                plan.runs.append(PlannedRun(spec, bench, name, ablation, run_dir, len(done),
                                            sum(1 for row in done.values() if needs_retry(row))))
    from navig.eval.runner import paper_benchmark_settings

    for name in dict.fromkeys(benchmark_name(b) for b in benchmarks):
        if paper_benchmark_settings(name):
            shown = ", ".join(f"{k}={v}" for k, v in paper_benchmark_settings(name).items())
            plan.notes.append(f"{name}: the paper's settings {shown} (paper_results.yaml benchmark_settings; "
                              "an --option of the same name wins)")
    if any(spec.placeholder for spec in models):
        plan.notes.append(f"no --model given: planned with the paper's {PAPER_MODEL} and its Reasoner adapter "
                          f"{ADAPTER_TO_BE_GIVEN}; a real run needs --model (and --adapter)")
    return plan


def format_plan(plan: Plan) -> str:
    lines = [f"{len(plan.runs)} run(s):"]
    for r in plan.runs:
        if r.ablation in ("no_training", "plain"):
            adapter = "-"
        elif r.model.placeholder:
            adapter = ADAPTER_TO_BE_GIVEN
        else:
            adapter = r.model.adapter or "-"
        retry = f", {r.retryable} infrastructure failure(s) to --retry-failed" if r.retryable else ""
        lines.append(f"  {r.model.name:<12} {r.benchmark_name:<12} {ABLATION_LABELS[r.ablation]:<13} "
                     f"model={r.model.model} adapter={adapter} -> {r.run_dir} ({r.done} done{retry})")
    lines.extend(f"  note: {n}" for n in dict.fromkeys(plan.notes))
    return "\n".join(lines)


def _fmt(value: Any, key: str) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.0f}" if key in ("mean_km", "geoscore") else f"{value:.1f}"


def _ours(metrics: dict[str, Any] | None) -> dict[str, float | None] | None:
    """Our metrics in the paper's units (accuracy in %)."""
    if metrics is None:
        return None
    out: dict[str, float | None] = {}
    for key in GEO_METRICS:
        v = metrics.get(key)
        out[key] = None if v is None else (v if key in ("mean_km", "geoscore") else 100 * v)
    return out


PAPER_CONVENTION = "paper"  # how ours are scored beside the paper's: its rule, a failed parse = 10,000 km


def paper_scored(run_dir: Path | str, metrics: dict[str, Any], *, cache: bool = True) -> dict[str, Any]:
    """A run's metrics under the paper's convention, re-scored from the run's predictions and truth
    when it was scored under another, so each Δ against the paper is like for like. `cache`: False
    writes nothing (a dry run)."""
    from navig.eval.metrics import score_files
    from navig.eval.runner import PREDICTIONS

    predictions, truth = Path(run_dir) / PREDICTIONS, Path(run_dir) / "truth.jsonl"
    if metrics.get("convention") == PAPER_CONVENTION or not (predictions.is_file() and truth.is_file()):
        return metrics  # the table names the policy these were scored under
    return {**metrics, **score_files(predictions, truth, convention=PAPER_CONVENTION, truth_cache=cache)}


def _policy_line(ours: dict[tuple[str, str, str], dict], bench: str) -> str:
    used = sorted({(m.get("convention", "default"), m.get("failure_policy", "not recorded"))
                   for (_, b, _), m in ours.items() if b == bench})
    mine = "; ".join(f"convention '{c}', failure policy {p}" for c, p in used) if used else "not run"
    return (f"Failure policy. paper rows: as published (the paper counts a failed parse as "
            f"{PAPER_FAILURE_KM:,.0f} km); ours: {mine}.\n")


def geolocation_tables(paper: dict[str, Any], ours: dict[tuple[str, str, str], dict] | None = None,
                       benchmarks: list[str] | None = None) -> str:
    """One markdown table per benchmark in the paper's layout: per row the paper, ours and Δ; each
    table says which failure policy its numbers use."""
    ours = ours or {}
    rows = paper.get("geolocation", [])
    names = benchmarks or sorted({b for row in rows for b in (row.get("results") or {})})
    out = []
    for bench in names:
        out.append(f"### {bench}\n")
        out.append(_policy_line(ours, bench))
        out.append("| method | source | " + " | ".join(GEO_HEADERS) + " |")
        out.append("|" + "---|" * (len(GEO_HEADERS) + 2))
        seen = set()
        for row in rows:
            key = (row["model"], bench, row["ablation"])
            seen.add(key)
            published = (row.get("results") or {}).get(bench)
            mine = _ours(ours.get(key))
            out.append(f"| {row['label']} | paper | " + " | ".join(
                _fmt((published or {}).get(k), k) for k in GEO_METRICS) + " |")
            if mine is not None:
                out.append("| | ours | " + " | ".join(_fmt(mine.get(k), k) for k in GEO_METRICS) + " |")
                out.append("| | Δ | " + " | ".join(
                    _delta(mine.get(k), (published or {}).get(k), k) for k in GEO_METRICS) + " |")
        for (model, b, ablation), metrics in sorted(ours.items()):
            if b == bench and (model, b, ablation) not in seen:
                mine = _ours(metrics)
                out.append(f"| {model} {ABLATION_LABELS.get(ablation, ablation)} | ours | "
                           + " | ".join(_fmt(mine.get(k), k) for k in GEO_METRICS) + " |")
        out.append("")
    return "\n".join(out)


def _delta(mine: Any, published: Any, key: str) -> str:
    if mine is None or published is None:
        return "n/a"
    d = mine - published
    return f"{d:+,.0f}" if key in ("mean_km", "geoscore") else f"{d:+.1f}"


def rouge_table(paper: dict[str, Any], ours: dict[str, dict] | None = None) -> str:
    ours = ours or {}
    lines = ["| Reasoner | source | ROUGE-1 | ROUGE-2 | ROUGE-L |", "|---|---|---|---|---|"]
    for row in paper.get("reasoning_rouge", []):
        lines.append(f"| {row['label']} | paper | " + " | ".join(_fmt(row.get(k), k) for k in ROUGE_KEYS) + " |")
        mine = ours.get(row["model"])
        if mine:
            vals = {k: 100 * mine[k] for k in ROUGE_KEYS if mine.get(k) is not None}
            lines.append("| | ours | " + " | ".join(_fmt(vals.get(k), k) for k in ROUGE_KEYS) + " |")
            lines.append("| | Δ | " + " | ".join(_delta(vals.get(k), row.get(k), k) for k in ROUGE_KEYS) + " |")
    return "\n".join(lines) + "\n"


def tool_usage_table(paper: dict[str, Any], ours: dict[tuple[str, str, str], dict] | None = None) -> str:
    ours = ours or {}
    lines = ["| model | benchmark | source | tool calls |", "|---|---|---|---|"]
    for row in paper.get("tool_usage", []):
        counts = row.get("counts")
        lines.append(f"| {row['model']} | {row['benchmark']} | paper | "
                     + (", ".join(f"{k}: {v}" for k, v in counts.items()) if counts else "n/a") + " |")
    for (model, bench, ablation), metrics in sorted(ours.items()):
        if ablation == "full":
            usage = metrics.get("tool_usage") or {}
            lines.append(f"| {model} | {bench} | ours | " + (", ".join(f"{k}: {v}" for k, v in usage.items()) or "none")
                         + " |")
    return "\n".join(lines) + "\n"


def paper_report(paper: dict[str, Any], ours: dict | None = None, rouge: dict | None = None,
                 benchmarks: list[str] | None = None) -> str:
    return "\n".join([
        f"Published numbers: {paper.get('source', '')}",
        "Accuracy (%) within each distance, mean error (km), GeoScore; n/a = not transcribed / not run.\n",
        "## Geolocation (main table and ablations)\n",
        geolocation_tables(paper, ours, benchmarks),
        "## Tool usage\n",
        "Tool calls per run: no distances, so no failure policy applies.\n",
        tool_usage_table(paper, ours),
        "## Reasoning quality (ROUGE F x100, NaviClues test)\n",
        "ROUGE of the reasoning text: no distances, so no failure policy applies.\n",
        rouge_table(paper, rouge),
    ])


def reproduce(
    models: list[ModelSpec],
    benchmarks: list[str],
    out: Path | str,
    *,
    ablations: list[str] | None = None,
    dry_run: bool = False,
    make_options: Callable[[ModelSpec], Any] | None = None,
    naviclues: str | None = None,
    cache_dir: Path | None = None,
    limit: int | None = None,
    rouge_kwargs: dict[str, Any] | None = None,
    echo: Callable[[str], None] = print,
    retry_failed: bool = False,
    restart: bool = False,
    keep_options: Iterable[str] = (),
) -> dict[str, Any]:
    """Run (or, with `dry_run`, only plan) the matrix; print and return the comparison tables.

    `retry_failed`: redo samples whose line is an infrastructure failure (see `run_eval`). Every
    run folder whose predictions were made with other settings is named in one `SettingsMismatch`
    before the first run starts, unless `restart` (set them aside, see `run_eval`). The paper's
    per-benchmark settings apply except for the options named in `keep_options`."""
    out = Path(out)
    ablations = ablations or list(ABLATIONS)
    paper = load_paper_results()
    plan = build_plan(models, benchmarks, ablations, out)
    if dry_run and make_options is not None:  # say which finished runs a real run would refuse
        from navig.eval.benchmarks import Benchmark
        from navig.eval.runner import settings_conflicts

        resumed = [r for r in plan.runs if r.done and not r.model.placeholder]
        plan.notes.extend(f"{problem}: " + ("--restart sets it aside" if restart else "a real run refuses it without --restart")
                          for problem in settings_conflicts([(Benchmark(r.benchmark_name, r.benchmark),
                                                              make_options(r.model), r.run_dir, r.ablation)
                                                             for r in resumed], keep_options))
    echo(format_plan(plan))
    ours: dict[tuple[str, str, str], dict] = {}
    rouge: dict[str, dict] = {}
    if not dry_run:
        from navig.eval.benchmarks import load_benchmark
        from navig.eval.rouge import evaluate_reasoning
        from navig.eval.runner import run_eval

        if make_options is None:
            raise ValueError("reproduce needs make_options(model_spec) -> LocateOptions to run")
        placeholders = [spec.name for spec in models if spec.placeholder]
        if placeholders:
            raise ValueError(f"model(s) {placeholders} are dry-run placeholders: give the real model to run")
        from navig.pipeline import SharedModels

        models_cache = SharedModels()  # one load per model across its benchmarks and ablations
        loaded: dict[str, Any] = {}
        # runs that need the same backend (a model with its adapter, or without it for the untrained
        # ablations) run back to back, so the one-model-at-a-time cache loads each once
        order = {spec.name: i for i, spec in enumerate(models)}

        def backend_group(run) -> tuple:
            return order.get(run.model.name, 0), apply_ablation(make_options(run.model), run.ablation).adapter is None

        for run in plan.runs:
            if run.benchmark not in loaded:
                loaded[run.benchmark] = load_benchmark(run.benchmark, cache_dir or out / "_images").limit(limit)
        if not restart:  # every stale run folder named at once, before the first model loads
            from navig.eval.runner import settings_conflicts
            from navig.pipeline import RESTART_HINT, SettingsMismatch

            problems = settings_conflicts([(loaded[r.benchmark], make_options(r.model), r.run_dir, r.ablation)
                                           for r in plan.runs], keep_options)
            if problems:
                raise SettingsMismatch("\n".join(problems) + f"\n{RESTART_HINT}")
        for run in sorted(plan.runs, key=backend_group):
            echo(f"running {run.model.name} / {run.benchmark_name} / {ABLATION_LABELS[run.ablation]}")
            metrics = run_eval(loaded[run.benchmark], make_options(run.model), run.run_dir, ablation=run.ablation,
                               retry_failed=retry_failed, locate=models_cache.locate, restart=restart,
                               keep_options=keep_options)
            ours[(run.model.name, run.benchmark_name, run.ablation)] = paper_scored(run.run_dir, metrics)
        if naviclues:
            for spec in models:
                rouge[spec.name] = evaluate_reasoning(naviclues, spec.model, out / spec.name / "rouge",
                                                      adapter=spec.adapter, limit=limit, **(rouge_kwargs or {}))
    else:
        from navig.eval.runner import load_run_metrics

        for run in plan.runs:  # show whatever earlier runs already finished
            metrics = load_run_metrics(run.run_dir)
            if metrics is not None:
                ours[(run.model.name, run.benchmark_name, run.ablation)] = paper_scored(run.run_dir, metrics,
                                                                                        cache=False)
    names = list(dict.fromkeys([r.benchmark_name for r in plan.runs]))
    published = sorted({b for row in paper.get("geolocation", []) for b in (row.get("results") or {})})
    report = paper_report(paper, ours, rouge, list(dict.fromkeys(published + names)))
    echo(report)
    return {"plan": [{"model": r.model.name, "benchmark": r.benchmark_name, "ablation": r.ablation,
                      "run_dir": str(r.run_dir), "done": r.done, "retryable": r.retryable} for r in plan.runs],
            "report": report, "ours": {"/".join(k): v for k, v in ours.items()}, "rouge": rouge}
