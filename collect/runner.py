"""`collect run` orchestration: discover → per-video stages on an executor → (optionally)
the dataset step the command layer passes in.

Progress bars are fed by polling the run store, so they work the same for the local pool
and for Ray tasks writing to a shared output folder. One run at a time per output folder
(an exclusive lock on OUT/.lock).
"""
from __future__ import annotations

import fcntl
import os
import threading
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Table

from naviclues.fsutil import atomic_write_json, fingerprint, read_json
from collect.pipeline import STAGE_NAMES, VideoResult, VideoWorker, run_local, run_ray
from collect.records import Video
from collect.store import RunStore

if TYPE_CHECKING:  # `collect status` runs without the configuration (pydantic) loaded
    from collect.config import CollectConfig

EXIT_OK, EXIT_ITEM_FAILURES, EXIT_USAGE = 0, 3, 2
SOURCE_PREFIX = "source:"  # run-store key of a discovery source
ITEM_PREFIX = "item:"  # run-store key of one failed discovery item (a video of a source)
DATASET_KEY = "__dataset__"  # run-store key of the dataset step

# (out, config, store, force, console) -> summary with "status": done | cached | failed
DatasetStep = Callable[[Path, "CollectConfig", RunStore, bool, Console], dict]


class OutputFolderBusy(RuntimeError):
    pass


def lock_output(out: Path, stack: ExitStack) -> None:
    """Hold an exclusive lock on OUT/.lock for the life of `stack` (one writer per output folder)."""
    out.mkdir(parents=True, exist_ok=True)
    fh = stack.enter_context(open(out / ".lock", "w"))
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise OutputFolderBusy(f"another `collect` process is working in {out}") from None


def run_collect(out: Path, cfg: CollectConfig, *, sources: list[str], demo: bool = False, only: str | None = None,
                force: list[str] | None = None, dataset_step: DatasetStep | None = None,
                console: Console | None = None) -> int:
    console = console or Console(stderr=True)
    force = list(force or [])
    out = Path(out)
    started = time.perf_counter()
    with ExitStack() as stack:
        try:
            lock_output(out, stack)
        except OutputFolderBusy as exc:
            console.print(f"[red]{exc}[/red]")
            return EXIT_USAGE
        store = stack.enter_context(RunStore(out))
        refresh = "discover" in force
        if demo:
            try:
                cfg, sources = _start_demo(out, cfg, stack, console)
            except DemoMismatch as exc:
                console.print(f"[red]{exc}[/red]")
                return EXIT_USAGE
            # video URLs name the demo server's port: refresh the listing when it moved
            refresh = refresh or any(not v.url.startswith(cfg.challenge.api_base) for v in store.videos())
        atomic_write_json(out / "config.json", cfg.masked())
        failures = 0
        # a demo server on another port than the listing's is refreshed even under --only STAGE
        if only in (None, "discover") or refresh:
            discover_failures = _discover(store, cfg, sources, force=refresh, console=console)
            if discover_failures:
                console.print(f"[yellow]discover: {discover_failures} item(s) failed (see `collect status`)[/yellow]")
            failures += discover_failures
        videos = _selected_videos(store, cfg, sources)
        results: list[VideoResult] = []
        stages = [only] if only in STAGE_NAMES else ([] if only else STAGE_NAMES)
        if stages and videos:
            results = _execute(out, cfg, videos, stages, force, console)
        annotate_summary = None
        if dataset_step is not None and only in (None, "annotate"):
            annotate_summary = dataset_step(out, cfg, store, "annotate" in force, console)
        elapsed = time.perf_counter() - started
        failures += _print_summary(store, results, annotate_summary, elapsed, console)
    return EXIT_ITEM_FAILURES if failures else EXIT_OK


class DemoMismatch(ValueError):
    """The output folder's demo corpus was generated with other demo settings."""


DEMO_PORT = 47617  # preferred, so a rerun finds its videos at the same URLs


def _start_demo(out: Path, cfg: CollectConfig, stack: ExitStack, console: Console) -> tuple[CollectConfig, list[str]]:
    from collect.config import DEMO_IGNORED_ENV, demo_config
    from collect.demo.server import DemoServer

    corpus = out / "demo-corpus"
    if (corpus / "truth.json").exists():
        made = (read_json(corpus / "truth.json") or {}).get("generator") or {}
        wanted = {"n_videos": cfg.demo.videos, "rounds_per_video": cfg.demo.rounds, "seed": cfg.demo.seed}
        if any(made.get(k) != v for k, v in wanted.items()):
            had = ", ".join(f"{k}={made.get(k)}" for k in wanted)
            raise DemoMismatch(f"{corpus} was generated with {had}; this run asks for "
                               f"{', '.join(f'{k}={v}' for k, v in wanted.items())}. Use another --out "
                               "(or delete the folder) for a different demo.")
    else:
        from collect.demo.generate import generate_corpus

        with console.status("generating the demo corpus"):
            generate_corpus(corpus, n_videos=cfg.demo.videos, rounds_per_video=cfg.demo.rounds, seed=cfg.demo.seed)
    try:
        server = stack.enter_context(DemoServer(corpus, port=DEMO_PORT))
    except OSError:  # taken (another demo running): any free port, the listing gets refreshed
        server = stack.enter_context(DemoServer(corpus))
    # no credential from the environment and no host but the demo server (collect.config.demo_config)
    cfg, notes = demo_config(cfg, server.url)
    hidden = {var: os.environ.pop(var) for var in DEMO_IGNORED_ENV if var in os.environ}
    stack.callback(os.environ.update, hidden)  # back after the run (worker processes start without them)
    for note in notes:
        console.print(f"[yellow]demo: {note}[/yellow]")
    console.print(f"demo corpus served at {server.url}")
    return cfg, [server.feed_url]


def _discover(store: RunStore, cfg: CollectConfig, sources: list[str], *, force: bool, console: Console) -> int:
    """Discover each source once (cached by source + filters; `--force discover` refreshes).

    A source's videos are kept even when some of its items failed; each failed item is its own
    run-store row (and the source is retried on the next run). Returns the number of failures.
    """
    from collect.stages.discover import discover

    failures = 0
    filters = cfg.discover.model_dump(mode="json")
    for source in sources:
        key = SOURCE_PREFIX + _source_identity(source)
        fp = fingerprint("discover", filters, _source_identity(source), _list_content(source))
        row = store.get(key, "discover")
        if not force and row and row.status == "done" and row.fingerprint == fp:
            continue
        store.mark_running(key, "discover", fp)
        with console.status(f"discovering {source}"):
            result = discover([source], cfg.discover, cfg.download.ytdlp_options, retries=cfg.download.retries,
                              backoff_s=cfg.download.backoff_s, requests_per_s=cfg.download.requests_per_s)
        store.upsert_videos(result.videos)
        store.record_discover_skips(result.skipped)
        item_errors = [e for e in result.errors if e.source != source]
        source_errors = [e for e in result.errors if e.source == source]
        for err in item_errors:
            item = ITEM_PREFIX + err.source
            store.mark_running(item, "discover", fp)
            store.mark_finished(item, "discover", "failed", fingerprint=fp, error_type=err.type,
                                error_message=err.message)
        failures += len(result.errors)
        outputs = {"videos": [v.id for v in result.videos], "skipped": len(result.skipped),
                   "failed_items": len(item_errors)}
        if result.errors:
            first = (source_errors or item_errors)[0]
            store.mark_finished(key, "discover", "failed", fingerprint=fp, outputs=outputs, error_type=first.type,
                                error_message=f"{len(result.errors)} error(s); first: {first.message}")
        else:
            store.mark_finished(key, "discover", "done", fingerprint=fp, outputs=outputs)
    return failures


def _list_content(source: str) -> str | None:
    """A text file of URLs is its lines: an edited list is a new source, not a cached one."""
    path = Path(source)
    try:
        return fingerprint(path.read_text("utf-8")) if path.is_file() else None
    except (OSError, UnicodeDecodeError):
        return None  # discover reports the unreadable file


def _is_local(source: str) -> bool:
    return "127.0.0.1" in source or "localhost" in source


def _source_identity(source: str) -> str:
    # the demo server's port changes between runs; its identity is the path
    if _is_local(source):
        from urllib.parse import urlparse

        return "local:" + urlparse(source).path
    return source


def _selected_videos(store: RunStore, cfg: CollectConfig, sources: list[str]) -> list[Video]:
    keys = {SOURCE_PREFIX + _source_identity(s) for s in sources}
    wanted: list[str] = []
    for row in store.rows("discover"):
        if row.video_id in keys:
            wanted += [v for v in row.outputs.get("videos", []) if v not in wanted]
    by_id = {v.id: v for v in store.videos()}
    videos = [by_id[v] for v in wanted if v in by_id]
    if cfg.discover.limit is not None:
        videos = videos[: cfg.discover.limit]
    return videos


def _execute(out: Path, cfg: CollectConfig, videos: list[Video], stages: list[str], force: list[str],
             console: Console) -> list[VideoResult]:
    worker = VideoWorker(out, cfg, stages=stages, force=[f for f in force if f in STAGE_NAMES])
    ids = {v.id for v in videos}
    results: list[VideoResult] = []
    columns = (TextColumn("{task.description:<11}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
               TextColumn("{task.fields[rate]}"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        tasks = {s: progress.add_task(s, total=len(videos), rate="") for s in stages}
        stop = threading.Event()
        t0 = time.perf_counter()

        def poll() -> None:
            with RunStore(out) as reader:
                while True:
                    finished = Counter(r.stage for r in reader.rows() if r.video_id in ids
                                       and r.status in ("done", "failed", "skipped") and r.stage in tasks)
                    blocked = Counter()
                    for res in list(results):
                        for s, st in res.statuses.items():
                            if st in ("blocked", "cached") and s in tasks:
                                blocked[s] += 1
                    for s, task in tasks.items():
                        n = min(len(videos), finished[s] if not blocked[s] else max(finished[s], blocked[s]))
                        rate = n / max(time.perf_counter() - t0, 1e-6)
                        progress.update(task, completed=n, rate=f"{rate:.2f} videos/s")
                    if stop.wait(0.5):
                        return

        thread = threading.Thread(target=poll, daemon=True)
        thread.start()
        try:
            if cfg.run.executor == "ray":
                run_ray(worker, videos, cfg.run.workers, results.append, cfg.run.ray_address)
            else:
                run_local(worker, videos, cfg.run.workers, results.append)
        finally:
            stop.set()
            thread.join()
        for s, task in tasks.items():
            progress.update(task, completed=len(videos))
    return results


def _print_summary(store: RunStore, results: list[VideoResult], annotate_summary: dict | None, elapsed: float,
                   console: Console) -> int:
    counts: dict[str, Counter] = {s: Counter() for s in STAGE_NAMES}
    for res in results:
        for stage, status in res.statuses.items():
            counts.setdefault(stage, Counter())[status] += 1
    table = Table(title=f"collect run — {len(results)} videos in {elapsed:.1f} s")
    for col in ("stage", "done", "cached (skipped)", "skipped (note)", "failed", "blocked"):
        table.add_column(col)
    for stage, c in counts.items():
        if sum(c.values()):
            table.add_row(stage, str(c["done"]), str(c["cached"]), str(c["skipped"]), str(c["failed"]), str(c["blocked"]))
    if annotate_summary is not None:
        st = annotate_summary.get("status")
        table.add_row("annotate", "1" if st == "done" else "0", "1" if st == "cached" else "0", "0",
                      "1" if st == "failed" else "0", "0")
    console.print(table)
    work = sum(c["done"] + c["failed"] + c["skipped"] for c in counts.values())
    if annotate_summary and annotate_summary.get("status") in ("done", "failed"):
        work += 1
    if work == 0:
        console.print("[green]nothing to do: all stages skipped (already done with unchanged inputs)[/green]")
    failed = sum(c["failed"] for c in counts.values()) + sum(1 for r in results if "worker" in r.statuses)
    if annotate_summary:
        if annotate_summary.get("status") == "failed":
            failed += 1
            # a build that left rounds out still wrote the dataset (it says how many rows)
            label = "dataset built with failures" if "rows" in annotate_summary else "dataset build failed"
            console.print(f"[red]{label}:[/red] {annotate_summary.get('error')}")
        else:
            console.print({k: v for k, v in annotate_summary.items() if not isinstance(v, (dict, list))})
    if failed:
        console.print(f"[yellow]{failed} item(s) failed — see `collect status --out {store.out_dir}`[/yellow]")
    return failed


def status_report(out: Path, console: Console) -> None:
    """Counts come from SQLite aggregates, not from loading every row: a 10,000-video store answers fast."""
    with RunStore(out) as store:
        n_videos, seconds = store.video_totals()
        counts = store.status_counts()
        failures = store.failures()
        discover_rows = store.rows_with_prefix("discover", SOURCE_PREFIX, ITEM_PREFIX)
        dataset = store.get(DATASET_KEY, "annotate")
        rounds = store.output_total("segment", "rounds")
        skips = store.discover_skips()
    table = Table(title=f"run store {out}")
    for col in ("stage", "done", "failed", "pending", "skipped"):
        table.add_column(col, justify="right" if col != "stage" else "left")
    errors: Counter = Counter()
    sources = [r for r in discover_rows if r.video_id.startswith(SOURCE_PREFIX)]
    table.add_row("discover (sources)", str(sum(r.status == "done" for r in sources)),
                  str(sum(r.status == "failed" for r in sources)), str(sum(r.status == "running" for r in sources)),
                  str(len(skips)))
    for r in discover_rows:
        if r.video_id.startswith(ITEM_PREFIX):
            errors[f"discover: {r.error_type}: {(r.error_message or '')[:120]}"] += 1
    for stage in STAGE_NAMES:
        done, failed, skipped = (counts.get((stage, s), 0) for s in ("done", "failed", "skipped"))
        table.add_row(stage, str(done), str(failed), str(n_videos - done - failed - skipped), str(skipped))
    for video_id, stage, error_type, message in failures:
        if stage in STAGE_NAMES:
            # messages name their video: grouped with the id left out, so one cause counts once per video
            cause = (message or "").replace(video_id, "<video>")
            errors[f"{stage}: {error_type}: {cause[:120]}"] += 1
    if dataset:
        table.add_row("annotate", *(("1", "0", "0", "0") if dataset.status == "done" else ("0", "1", "0", "0")))
    console.print(table)
    if errors:
        err_table = Table(title="top error causes")
        err_table.add_column("count", justify="right")
        err_table.add_column("stage: type: message")
        for msg, n in errors.most_common(10):
            err_table.add_row(str(n), msg)
        console.print(err_table)
    console.print(f"videos: {n_videos}  ·  hours of video: {seconds / 3600:.2f}  ·  rounds: {rounds}  ·  "
                  f"skipped at discovery: {len(skips)}")
