"""`navig train | eval | score | reproduce`: thin typer commands over navig.train and navig.eval.

`register(app)` adds them to the `navig` typer app (navig/cli.py).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, List, Optional

import typer

from navig.eval.ablations import ABLATIONS

RESTART_HELP = ("a run folder whose predictions were made with other settings (model, adapter, prompts, options, "
                "guidebook, geocoder, the benchmark's paper settings) is set aside and started over; without "
                "--restart such a folder is refused")


def _parse_options(pairs: list[str] | None) -> dict[str, Any]:
    import yaml

    extra: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"--option expects KEY=VALUE, got {pair!r}")
        extra[key.strip().replace("-", "_")] = yaml.safe_load(value)
    return extra


def make_locate_options(model: str, adapter: str | None = None, *, backend: str | None = None,
                        base_url: str | None = None, guidebook: str | None = None, geocoder: str | None = None,
                        batch_size: int | None = None, extra: dict[str, Any] | None = None):
    """`navig.pipeline.LocateOptions` from CLI values; unset values keep the pipeline's defaults. A bad
    or unknown setting is a usage error before anything is loaded."""
    from navig.pipeline import locate_options

    kwargs = {"model": model, "adapter": adapter, "backend": backend, "base_url": base_url,
              "guidebook": Path(guidebook) if guidebook else None, "geocoder": geocoder, "batch_size": batch_size}
    kwargs = {k: v for k, v in kwargs.items() if v is not None or k == "adapter"}
    kwargs.update(extra or {})
    try:
        return locate_options(**kwargs)
    except (TypeError, ValueError) as exc:
        raise typer.BadParameter(str(exc)) from None


def _check_ablations(ablations: list[str]) -> list[str]:
    for a in ablations:
        if a not in ABLATIONS:
            raise typer.BadParameter(f"unknown ablation {a!r}; choose from {', '.join(ABLATIONS)}")
    return ablations


def score_command(
    predictions: Path = typer.Option(..., exists=True, dir_okay=False,
                                     help="navig locate JSONL, or CSV/parquet with id, lat, lng[, country, city, failure]"),
    truth: Path = typer.Option(..., exists=True, dir_okay=False,
                               help="CSV/JSONL/parquet with id, lat, lng[, country, city]"),
    out: Path = typer.Option(..., help="metrics JSON to write"),
    convention: str = typer.Option("default", help="metric convention: default | paper | g3 | osv5m "
                                                   "(see 'Metric conventions' in the README)"),
    policy: Optional[str] = typer.Option(None, help="failure policy: miss | antipode | paper "
                                                    "(default: the convention's)"),
    only_predicted: bool = typer.Option(False, help="score only truth ids that have a prediction line"),
    truth_cache: bool = typer.Option(True, "--truth-cache/--no-truth-cache",
                                     help="cache the truth file's reverse-geocoded names under NAVIG_CACHE"),
) -> None:
    """Score predictions against truth: accuracy at 1/25/200/750/2500 km, km error, GeoScore, country/city."""
    from naviclues.fsutil import atomic_write_json
    from navig.eval.metrics import CONVENTIONS, FAILURE_POLICIES, METRIC_KEYS, score_files
    from navig.eval.runner import rich_table
    from rich.console import Console

    if convention not in CONVENTIONS:
        raise typer.BadParameter(f"--convention must be one of {', '.join(CONVENTIONS)}")
    if policy is not None and policy not in FAILURE_POLICIES:
        raise typer.BadParameter(f"--policy must be one of {', '.join(FAILURE_POLICIES)}")
    try:
        metrics = score_files(predictions, truth, policy=policy, convention=convention, only_predicted=only_predicted,
                              truth_cache=truth_cache)
    except ValueError as exc:  # a bad truth row or an unreadable file: named, not a traceback
        raise typer.BadParameter(str(exc)) from None
    atomic_write_json(out, metrics)
    console = Console()
    console.print(rich_table([{**metrics, "benchmark": truth.name, "ablation": "-"}], title="navig score"))
    console.print(f"convention {metrics['convention']}: {metrics['convention_rules']}")
    console.print(f"failure policy {metrics['failure_policy']}")
    typer.echo(json.dumps({k: metrics.get(k) for k in METRIC_KEYS}))


def eval_command(
    benchmark: List[str] = typer.Option(..., help="NAME:PATH, PATH or NAME (im2gps3k, yfcc4k, folder, gws5k, hf, naviclues); repeatable"),
    model: str = typer.Option(..., help="VLM hub id or path (or the served name with --backend openai)"),
    out: Path = typer.Option(..., help="output folder"),
    adapter: Optional[str] = typer.Option(None, help="Reasoner LoRA adapter folder"),
    ablation: List[str] = typer.Option(["full"], help=f"one of {', '.join(ABLATIONS)}; repeatable"),
    backend: Optional[str] = typer.Option(None, help="transformers | openai"),
    base_url: Optional[str] = typer.Option(None, help="OpenAI-compatible server URL"),
    guidebook: Optional[str] = typer.Option(None, help="guidebook folder built by `navig guidebook build` (Searcher)"),
    geocoder: Optional[str] = typer.Option(None, help="offline | nominatim"),
    batch_size: Optional[int] = typer.Option(None, help="images per pipeline batch"),
    option: Optional[List[str]] = typer.Option(None, help="extra LocateOptions field KEY=VALUE; repeatable"),
    limit: Optional[int] = typer.Option(None, help="first N samples of each benchmark"),
    cache_dir: Optional[Path] = typer.Option(None, help="where images of HF datasets are written (default OUT/_images)"),
    policy: str = typer.Option("miss", help="failure policy: miss | antipode"),
    rouge: bool = typer.Option(False, help="also score the Reasoner's reasoning with ROUGE (naviclues benchmarks)"),
    retry_failed: bool = typer.Option(False, "--retry-failed",
                                      help="redo samples whose earlier line is an infrastructure failure "
                                           "(VLM server/request error), not an unparseable answer"),
    restart: bool = typer.Option(False, "--restart", help=RESTART_HELP),
) -> None:
    """Run the locate pipeline over benchmarks (resumable), score, write predictions/metrics/tables."""
    from naviclues.fsutil import atomic_write_text
    from navig.eval.benchmarks import benchmark_name, load_benchmark, parse_spec
    from navig.eval.runner import markdown_table, rich_table, run_eval, tool_usage_markdown
    from rich.console import Console

    _check_ablations(ablation)
    console = Console()
    extra = _parse_options(option)
    options = make_locate_options(model, adapter, backend=backend, base_url=base_url, guidebook=guidebook,
                                  geocoder=geocoder, batch_size=batch_size, extra=extra)
    from navig.pipeline import SharedModels

    from navig.eval.ablations import apply_ablation

    models_cache = SharedModels()  # the model loads once for every benchmark and ablation
    benches = {}
    for spec in benchmark:
        try:
            benches[spec] = load_benchmark(spec, cache_dir or out / "_images").limit(limit)
        except (FileNotFoundError, ValueError) as exc:
            raise typer.BadParameter(f"benchmark {spec!r}: {exc}") from None
        if benches[spec].problems:
            console.print(f"[yellow]{benches[spec].name}: {len(benches[spec].problems)} unusable row(s), "
                          f"first: {benches[spec].problems[0]}")
    # ablations with the adapter first, then those without it: each backend loads once
    pairs = sorted(((spec, abl) for spec in benchmark for abl in ablation),
                   key=lambda pair: apply_ablation(options, pair[1]).adapter is None)
    if not restart:  # predictions made with other settings: refused before any model loads
        from navig.eval.runner import settings_conflicts
        from navig.pipeline import RESTART_HINT

        problems = settings_conflicts([(benches[s], options, out / benchmark_name(s) / a, a) for s, a in pairs],
                                      keep_options=extra)
        if problems:
            raise typer.BadParameter("\n".join(problems) + "\n" + RESTART_HINT, param_hint="--out")
    done = {pair: run_eval(benches[pair[0]], options, out / benchmark_name(pair[0]) / pair[1], ablation=pair[1],
                           policy=policy, retry_failed=retry_failed, locate=models_cache.locate, restart=restart,
                           keep_options=extra) for pair in pairs}
    runs = [done[(spec, abl)] for spec in benchmark for abl in ablation]  # tables in the order asked
    for spec in benchmark:
        if rouge and parse_spec(spec)[0] == "naviclues":
            from navig.eval.rouge import evaluate_reasoning

            _, source, split = parse_spec(spec)
            result = evaluate_reasoning(source, model, out / benchmark_name(spec) / "rouge", adapter=adapter,
                                        split=split or "test", backend=backend or "transformers",
                                        base_url=base_url, limit=limit)
            console.print(f"ROUGE-1/2/L: {result['rouge1']:.3f} / {result['rouge2']:.3f} / {result['rougeL']:.3f} "
                          f"(n={result['n']})")
    atomic_write_text(out / "results.md", markdown_table(runs) + "\n" + tool_usage_markdown(runs))
    console.print(rich_table(runs))
    typer.echo(json.dumps({"runs": len(runs), "out": str(out)}))


def reproduce_command(
    model: Optional[List[str]] = typer.Option(
        None, help="NAME=ID_OR_PATH (NAME matches the paper rows, e.g. qwen2-vl); repeatable; "
                   "required unless --dry-run (which then plans the paper's Qwen/Qwen2-VL-7B-Instruct)"),
    out: Path = typer.Option(Path("runs/reproduce"), help="output folder"),
    adapter: Optional[List[str]] = typer.Option(None, help="NAME=ADAPTER_DIR; repeatable"),
    benchmark: Optional[List[str]] = typer.Option(None, help="benchmark specs (default: gws5k, im2gps3k under the data root)"),
    ablation: Optional[List[str]] = typer.Option(None, help=f"subset of {', '.join(ABLATIONS)} (default: all)"),
    naviclues: Optional[str] = typer.Option(None, help="NaviClues dataset (folder or Hub id) for the ROUGE table"),
    dry_run: bool = typer.Option(False, help="print the plan and the published tables; run nothing"),
    limit: Optional[int] = typer.Option(None, help="first N samples of each benchmark"),
    backend: Optional[str] = typer.Option(None, help="transformers | openai"),
    base_url: Optional[str] = typer.Option(None, help="OpenAI-compatible server URL"),
    guidebook: Optional[str] = typer.Option(None, help="guidebook folder built by `navig guidebook build` (Searcher)"),
    geocoder: Optional[str] = typer.Option(None, help="offline | nominatim"),
    batch_size: Optional[int] = typer.Option(None),
    option: Optional[List[str]] = typer.Option(None, help="extra LocateOptions field KEY=VALUE; repeatable"),
    retry_failed: bool = typer.Option(False, "--retry-failed",
                                      help="redo samples whose earlier line is an infrastructure failure"),
    restart: bool = typer.Option(False, "--restart", help=RESTART_HELP),
) -> None:
    """Run models x benchmarks x ablations (resumable) and print the paper's tables beside ours."""
    from naviclues.fsutil import atomic_write_text
    from navig.eval.reproduce import parse_model_specs, placeholder_model_specs, reproduce

    if model:
        try:
            specs = parse_model_specs(model, adapter)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--adapter") from None
    elif dry_run:
        if adapter:
            raise typer.BadParameter("--adapter needs the --model it belongs to", param_hint="--adapter")
        specs = placeholder_model_specs()
    else:
        raise typer.BadParameter("a real run needs at least one model, e.g. --model qwen2-vl=Qwen/Qwen2-VL-7B-Instruct "
                                 "(with --adapter qwen2-vl=ADAPTER_DIR); only --dry-run plans without one",
                                 param_hint="--model")
    extra = _parse_options(option)
    def options_for(s):
        return make_locate_options(s.model, s.adapter, backend=backend, base_url=base_url, guidebook=guidebook,
                                   geocoder=geocoder, batch_size=batch_size, extra=extra)

    for spec in specs:  # every model's settings are checked before the first model loads
        options_for(spec)
    from navig.pipeline import SettingsMismatch

    try:
        result = reproduce(
            specs, benchmark or ["gws5k", "im2gps3k"], out, ablations=_check_ablations(ablation or list(ABLATIONS)),
            dry_run=dry_run, naviclues=naviclues, limit=limit,
            make_options=options_for,
            rouge_kwargs={"backend": backend or "transformers", "base_url": base_url},
            echo=typer.echo, retry_failed=retry_failed, restart=restart, keep_options=extra,
        )
    except SettingsMismatch as exc:
        raise typer.BadParameter(str(exc), param_hint="--out") from None
    if not dry_run:
        atomic_write_text(out / "report.md", result["report"])
    typer.echo(json.dumps({"runs": len(result["plan"]), "dry_run": dry_run,
                           "samples_done": sum(r["done"] for r in result["plan"]), "out": str(out)}))


def register(app: typer.Typer) -> None:
    """Add `train`, `eval`, `score` and `reproduce` to the navig CLI."""
    from navig.train import command as train_command

    app.command("train")(train_command)
    app.command("eval")(eval_command)
    app.command("score")(score_command)
    app.command("reproduce")(reproduce_command)
