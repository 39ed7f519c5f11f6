"""The per-video worker and the executors that run it.

The video is the unit of work, retry and resume (video2dataset style). `VideoWorker` is a
picklable callable: the local process pool and Ray run the very same object. Each stage
result is recorded in the run store as soon as it is known, so a crash loses at most the
stage in flight, and artifacts are published atomically by the stages themselves.
"""
from __future__ import annotations

import importlib
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

from collect.records import Video
from collect.stages.base import Stage, StageOutcome, VideoContext
from collect.store import RunStore

if TYPE_CHECKING:  # pydantic's import cost stays out of `collect status`
    from collect.config import CollectConfig

# Order matters: a stage runs only when the stages it requires are done or skipped.
STAGE_PATHS: dict[str, str] = {
    "download": "collect.stages.download:DownloadStage",
    "transcript": "collect.stages.transcript:TranscriptStage",
    "challenge": "collect.stages.challenge:ChallengeStage",
    "segment": "collect.stages.segment:SegmentStage",
    "frames": "collect.stages.frames:FramesStage",
    "streetview": "collect.stages.streetview:StreetViewStage",
}
STAGE_NAMES = list(STAGE_PATHS)
SATISFIED = ("done", "skipped")


def load_stage(name: str) -> Stage:
    if name not in STAGE_PATHS:
        raise ValueError(f"unknown stage {name!r}; stages are: {', '.join(STAGE_NAMES)}")
    module, cls = STAGE_PATHS[name].split(":")
    return getattr(importlib.import_module(module), cls)()


@dataclass
class VideoResult:
    video_id: str
    statuses: dict[str, str] = field(default_factory=dict)  # stage -> done|failed|skipped|cached|blocked
    seconds: float = 0.0


class VideoWorker:
    """Runs the selected stages for one video; picklable (holds only paths and config)."""

    def __init__(self, out_dir: Path | str, config: CollectConfig, stages: Iterable[str] = STAGE_NAMES,
                 force: Iterable[str] = ()):
        self.out_dir = Path(out_dir).resolve()
        self.config = config
        self.stages = [s for s in STAGE_NAMES if s in set(stages)]
        self.force = set(force)
        self._secrets: list[str] | None = None  # secret_values(config), worked out once per process

    def __call__(self, video: Video) -> VideoResult:
        from naviclues.secrets import redact, redact_obj, secret_values

        started = time.perf_counter()
        if self._secrets is None:
            self._secrets = secret_values(self.config)
        secrets = self._secrets
        result = VideoResult(video.id)
        ctx = VideoContext(video, self.out_dir, self.config)
        _remove_partial_files(ctx.video_dir)
        with RunStore(self.out_dir) as store:
            rows = store.video_rows(video.id)  # one query; kept current below as stages finish
            for name in self.stages:
                stage = load_stage(name)
                missing = [r for r in stage.requires if not (r in rows and rows[r].status in SATISFIED)]
                if missing:
                    result.statuses[name] = "blocked"
                    continue
                try:
                    fp = stage.fingerprint(ctx)
                except Exception as exc:  # a bad artifact (e.g. a path escaping the folder) fails this stage only
                    store.mark_running(video.id, name, "")
                    store.mark_finished(video.id, name, "failed", fingerprint="", error_type=type(exc).__name__,
                                        error_message=redact(f"{video.id}: cannot read this stage's inputs: {exc}",
                                                             secrets))
                    result.statuses[name] = "failed"
                    rows[name] = store.get(video.id, name)
                    continue
                previous = rows.get(name)
                if (name not in self.force and previous is not None and previous.status in SATISFIED
                        and previous.fingerprint == fp and not stage.missing_outputs(ctx, previous.outputs)):
                    result.statuses[name] = "cached"
                    continue
                store.mark_running(video.id, name, fp)
                outcome: StageOutcome = stage(ctx)
                error = outcome.error
                store.mark_finished(
                    video.id, name, outcome.status, fingerprint=fp,
                    outputs=redact_obj(outcome.outputs, secrets),
                    error_type=error.type if error else None,
                    error_message=redact(_naming(video.id, error.message), secrets) if error else None,
                    note=redact(outcome.note, secrets),
                )
                rows[name] = store.get(video.id, name)
                result.statuses[name] = outcome.status
        result.seconds = time.perf_counter() - started
        return result


def _naming(video_id: str, message: str) -> str:
    """An item's error names the item (a stage's message may only say the cause)."""
    return message if video_id in message else f"{video_id}: {message}"


def _remove_partial_files(folder: Path) -> None:
    """Our temp files of an attempt killed mid-write (`.name.*.part.ext`: never published, so never
    reused). yt-dlp's own `*.part` / `*.ytdl` stay: it resumes them (`continuedl`)."""
    for path in folder.rglob(".*"):
        if path.is_file() and ".part" in path.name:
            path.unlink(missing_ok=True)


def _die_with_parent() -> None:
    """Pool workers must not outlive a killed `collect run` and race its rerun."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:  # not Linux: best effort
        pass


def run_local(worker: Callable[[Video], VideoResult], videos: list[Video], workers: int,
              on_result: Callable[[VideoResult], None]) -> list[VideoResult]:
    """Process pool over videos (inline when one worker: easier to debug, no spawn cost)."""
    results: list[VideoResult] = []
    if workers <= 1 or len(videos) <= 1:
        for video in videos:
            res = worker(video)
            on_result(res)
            results.append(res)
        return results
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_die_with_parent) as pool:
        futures = {pool.submit(worker, v): v for v in videos}
        for fut in as_completed(futures):
            try:
                res = fut.result()
            except Exception as exc:  # a worker process died (OOM, segfault): record, keep going
                video = futures[fut]
                res = VideoResult(video.id, {"worker": f"crashed: {type(exc).__name__}: {exc}"})
            on_result(res)
            results.append(res)
    return results


RAY_START_ATTEMPTS = 3


def run_ray(worker: Callable[[Video], VideoResult], videos: list[Video], workers: int,
            on_result: Callable[[VideoResult], None], address: str | None = None) -> list[VideoResult]:
    """The same worker callable as Ray tasks, on an existing cluster or a local one."""
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - depends on extras
        raise RuntimeError("the ray executor needs the 'ray' extra: pip install 'naviclues[ray]'") from exc
    started_here = False
    if not ray.is_initialized():
        kwargs = {"address": address} if address else {"num_cpus": max(1, workers)}
        env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]),
                                                           os.environ.get("PYTHONPATH")]))}
        # Ray gives a local node a fixed 30 s to start; on a loaded machine (fault-injection trials on
        # 2 shared cores) that can pass: start it again rather than lose the run
        for attempt in range(1, RAY_START_ATTEMPTS + 1):
            try:
                ray.init(include_dashboard=False, ignore_reinit_error=True, log_to_driver=False,
                         runtime_env={"env_vars": env}, **kwargs)
                break
            except Exception as exc:  # Ray raises a bare Exception for a node that did not come up
                ray.shutdown()
                if attempt == RAY_START_ATTEMPTS or address or "timed out during startup" not in str(exc):
                    raise RuntimeError(f"the ray executor could not start: {exc}") from exc
        started_here = True
    try:
        task = ray.remote(num_cpus=1, max_retries=2)(lambda w, v: w(v))
        worker_ref = ray.put(worker)
        pending = {task.remote(worker_ref, v): v for v in videos}
        results: list[VideoResult] = []
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                video = pending.pop(ref)
                try:
                    res = ray.get(ref)
                except Exception as exc:
                    res = VideoResult(video.id, {"worker": f"crashed: {type(exc).__name__}: {exc}"})
                on_result(res)
                results.append(res)
        return results
    finally:
        if started_here:
            ray.shutdown()
