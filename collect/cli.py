"""`collect` — the command layer (thin: every command calls the library).

This is the one place allowed to compose the whole flow: `collect run` runs collect's
stages (collect.runner), then annotate's dataset build (`dataset_step` below, imported
lazily so collect's library never depends on annotate).

Exit codes: 0 all items succeeded; 3 some items failed (recorded in the run store, see
`collect status`); 2 bad usage or configuration; 1 unexpected error.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.console import Console

if TYPE_CHECKING:  # the configuration (pydantic) and the stages load only for the commands that use them:
    from collect.config import CollectConfig  # `collect status` answers without them

DEFAULT_OUT = Path("runs/naviclues")

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Rebuild NaviClues from GeoGuessr play-along videos.")
console = Console(stderr=True)


def _config(config_file: Optional[Path], overrides: list[str]) -> CollectConfig:
    """The collect configuration with its `annotate:` section validated too (fail before any work)."""
    from collect.config import load_config

    try:
        cfg = load_config(config_file, overrides)
        from annotate.config import load_annotate_config

        load_annotate_config(cfg.annotate)
        return cfg
    except Exception as exc:
        console.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2)


def dataset_step(out: Path, cfg: CollectConfig, store, force: bool, con: Console) -> dict:
    """annotate's flow over OUT, skipped when no round input and no annotate setting changed."""
    from annotate.flow import input_fingerprint, run_annotate
    from collect.runner import DATASET_KEY
    from naviclues.secrets import redact, secret_values

    settings = dict(cfg.annotate)
    # the reasoning response cache lives in the run folder unless configured elsewhere
    settings.setdefault("reasoning", {})
    settings["reasoning"] = {"cache_dir": str(out / "cache" / "reasoning"), **settings["reasoning"]}
    try:
        fp = input_fingerprint(out, settings)
        row = store.get(DATASET_KEY, "annotate")
        if not force and row and row.status == "done" and row.fingerprint == fp and (out / "hub" / "README.md").exists():
            return {"status": "cached", **row.outputs}
        store.mark_running(DATASET_KEY, "annotate", fp)
        with con.status("building the dataset (clues, alignment, filters, reasoning, card)"):
            summary = run_annotate(out, settings, console=con)
    except Exception as exc:  # recorded and reported; collect's artifacts stay intact
        message = redact(f"{type(exc).__name__}: {exc}", secret_values(cfg))
        if store.get(DATASET_KEY, "annotate") is not None:
            store.mark_finished(DATASET_KEY, "annotate", "failed", fingerprint="", error_type=type(exc).__name__,
                                error_message=message)
        return {"status": "failed", "error": message}
    failed_rounds = summary.get("failed_rounds") or []
    if failed_rounds:
        # built without them; not cached as done, so the next run asks again (a server back up, a new key)
        first = "; ".join(failed_rounds[0].get("reasons") or [])
        message = redact(f"{len(failed_rounds)} round(s) left out of the dataset because a step failed "
                         f"(the next run retries them); first: {first}", secret_values(cfg))
        store.mark_finished(DATASET_KEY, "annotate", "failed", fingerprint=fp, outputs=summary,
                            error_type="RoundsFailed", error_message=message[:2000])
        return {**summary, "status": "failed", "error": message}
    store.mark_finished(DATASET_KEY, "annotate", "done", fingerprint=fp, outputs=summary)
    return {"status": "done", **summary}


@app.command()
def run(
    sources: list[str] = typer.Argument(None, help="YouTube channel/playlist/video URLs or text files of URLs"),
    out: Path = typer.Option(DEFAULT_OUT, "--out", "-o", help="output folder of this run (run store + artifacts)"),
    demo: bool = typer.Option(False, "--demo", help="generate the embedded demo corpus, serve it on 127.0.0.1 and run on it"),
    config_file: Optional[Path] = typer.Option(None, "--config", "-c", help="TOML or YAML configuration file"),
    overrides: list[str] = typer.Option([], "--set", help="override a setting: section.key=value (repeatable)"),
    workers: Optional[int] = typer.Option(None, "--workers", "-w", help="parallel videos"),
    executor: Optional[str] = typer.Option(None, "--executor", help="local | ray"),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="existing Ray cluster (default: start a local one)"),
    only: Optional[str] = typer.Option(None, "--only", help="run only this stage (its prerequisites must be done)"),
    force: list[str] = typer.Option([], "--force", help="rerun this stage even when its inputs are unchanged (repeatable)"),
    limit: Optional[int] = typer.Option(None, "--limit", help="at most N videos"),
    sample_every: Optional[float] = typer.Option(None, "--sample-every", help="seconds between OCR samples (default 6)"),
    annotate: bool = typer.Option(True, "--annotate/--no-annotate", help="build the dataset after the collect stages"),
) -> None:
    """Run every stage on SOURCES (or --demo), then build the NaviClues dataset."""
    extra: list[str] = list(overrides)
    if workers is not None:
        extra.append(f"run.workers={workers}")
    if executor is not None:
        extra.append(f"run.executor={executor}")
    if ray_address is not None:
        extra.append(f"run.ray_address={ray_address}")
    if limit is not None:
        extra.append(f"discover.limit={limit}")
    if sample_every is not None:
        extra.append(f"segment.sample_every={sample_every}")
    cfg = _config(config_file, extra)
    from collect.pipeline import STAGE_NAMES

    known = ["discover", *STAGE_NAMES, "annotate"]
    for name in ([only] if only else []) + list(force):
        if name not in known:
            console.print(f"[red]unknown stage {name!r}[/red]; stages: {', '.join(known)}")
            raise typer.Exit(2)
    if not sources and not demo:
        console.print("[red]give SOURCES or --demo[/red]")
        raise typer.Exit(2)
    from collect.runner import run_collect

    code = run_collect(out, cfg, sources=list(sources or []), demo=demo, only=only, force=list(force),
                       dataset_step=dataset_step if annotate else None, console=console)
    raise typer.Exit(code)


@app.command()
def status(out: Path = typer.Option(DEFAULT_OUT, "--out", "-o")) -> None:
    """Per-stage table (done / failed / pending / skipped), top error causes, totals."""
    if not (out / "run.sqlite").exists():
        console.print(f"[red]no run store in {out}[/red]")
        raise typer.Exit(2)
    from collect.runner import status_report

    status_report(out, Console())


@app.command("config")
def show_config(
    config_file: Optional[Path] = typer.Option(None, "--config", "-c"),
    overrides: list[str] = typer.Option([], "--set"),
) -> None:
    """Print the effective configuration (secrets masked)."""
    cfg = _config(config_file, overrides)
    typer.echo(json.dumps(cfg.masked(), indent=2))


@app.command("annotate")
def annotate_only(
    out: Path = typer.Option(DEFAULT_OUT, "--out", "-o"),
    config_file: Optional[Path] = typer.Option(None, "--config", "-c"),
    overrides: list[str] = typer.Option([], "--set"),
    force: bool = typer.Option(False, "--force", help="rebuild even when inputs are unchanged"),
) -> None:
    """Rerun only the annotate stages (clues → dataset → card) on an existing output folder."""
    cfg = _config(config_file, overrides)
    if not (out / "run.sqlite").exists():
        console.print(f"[red]{out} has no run store (run.sqlite): run `collect run … --out {out}` first[/red]")
        raise typer.Exit(2)
    from contextlib import ExitStack

    from collect.runner import EXIT_ITEM_FAILURES, EXIT_OK, OutputFolderBusy, lock_output
    from collect.store import RunStore

    with ExitStack() as stack:
        try:
            lock_output(out, stack)
        except OutputFolderBusy as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2)
        store = stack.enter_context(RunStore(out))
        summary = dataset_step(out, cfg, store, force, console)
    console.print(summary)
    raise typer.Exit(EXIT_ITEM_FAILURES if summary.get("status") == "failed" else EXIT_OK)


@app.command("import-release")
def import_release(
    jsonl: Path = typer.Argument(..., help="the paper's filtered_clues.jsonl"),
    images: Path = typer.Option(..., "--images", help="folder the rows' image_path is relative to"),
    out: Path = typer.Option(..., "--out", "-o"),
) -> None:
    """Convert the paper's released NaviClues files into this project's dataset layout."""
    from annotate.importers import run_import
    from collect.runner import EXIT_ITEM_FAILURES

    if not jsonl.is_file():
        console.print(f"[red]{jsonl}: no such release file (the paper's filtered_clues.jsonl)[/red]")
        raise typer.Exit(2)
    if not images.is_dir():
        console.print(f"[red]--images {images}: no such folder[/red]")
        raise typer.Exit(2)
    summary = run_import(jsonl, images, out)
    typer.echo(json.dumps(summary, indent=2, default=str))
    if not summary.get("rows") and summary.get("missing_images"):
        # every image missing is a wrong --images folder, not a few lost files
        console.print(f"[red]none of the {summary['missing_images']} rows' images is under {images}: --images must be "
                      "the folder the rows' image_path is relative to[/red]")
        raise typer.Exit(EXIT_ITEM_FAILURES)


@app.command("card")
def copy_card(
    out: Path = typer.Option(DEFAULT_OUT, "--out", "-o", help="a built output folder"),
    to: Path = typer.Option(Path("DATASET_CARD.md"), "--to", help="where the card goes"),
    plots_dir: Path = typer.Option(Path("docs/dataset_card_plots"), "--plots-dir", help="where its plots go"),
) -> None:
    """Copy a build's dataset card (and its plots) out of OUT, e.g. the repository's DATASET_CARD.md.

    The repository's card is the demo build's: `collect run --demo --out runs/demo && collect card --out runs/demo`.
    """
    import os
    import shutil

    from annotate.card import relink_plots
    from naviclues.fsutil import atomic_write_text

    card, plots = out / "hub" / "README.md", out / "hub" / "plots"
    if not card.exists():
        console.print(f"[red]{card} does not exist: build the dataset first (`collect run … --out {out}`)[/red]")
        raise typer.Exit(2)
    if plots.is_dir():
        plots_dir.mkdir(parents=True, exist_ok=True)
        for png in sorted(plots.glob("*.png")):
            shutil.copyfile(png, plots_dir / png.name)
    rel = Path(os.path.relpath(plots_dir, to.parent if str(to.parent) else ".")).as_posix()
    atomic_write_text(to, relink_plots(card.read_text("utf-8"), rel))  # the card, renamed into place
    typer.echo(f"wrote {to} (plots in {plots_dir})")


def main() -> None:  # console script
    app()


if __name__ == "__main__":
    main()
