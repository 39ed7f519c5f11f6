"""Fault injection: what `collect run` (and the commands around it) survives, as figures.

Parts (`--parts`, comma separated; default all):
  kills    N seeded trials that SIGKILL the whole `collect run --demo` process group at a random
           moment (some inside the dataset build, some inside a Ray task with `--executor ray`),
           rerun to completion and compare with an uninterrupted run: same artifacts, same dataset
           rows and content hash, no duplicates, no temp files, no process left behind.
  bad      bad inputs beside good videos in one run (broken media, missing captions, API faults,
           a full disk, an OpenAI-compatible server answering garbage, an unreadable image for
           `navig locate`): the run goes on, the item's error names the item and the cause, exit 3,
           nothing already produced is lost, the next run retries it.
  names    hostile video ids / titles / channels / challenge tokens: files written outside the
           output folder (escapes) and distinct items sharing a folder (collisions).
  secrets  distinct planted credentials, every command (failing runs and --dry-run included), then
           every file, stdout/stderr, the run store and the parquet files grepped for them.
  polite   measured request rates on local servers: Nominatim across processes, yt-dlp's sleep
           setting, exponential backoff on 429.
  load     a run store of 10,000 videos x 7 stages: `collect status` time, a rerun's skip check.

Per-trial / per-item details go to WORKDIR/fault_injection.jsonl as they happen; the last stdout
line is one JSON object with the figures.

    python benchmarks/fault_injection.py --kill-trials 20 --seed 0
"""
from __future__ import annotations

import argparse
import errno
import hashlib
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PARTS = ("kills", "bad", "names", "secrets", "polite", "load")
TINY = dict(rounds_per_video=1, round_seconds=14.0, result_seconds=5.0, intro_seconds=3.0)
# leftovers of an interrupted write: our atomic temp files, a swapped-out folder, sqlite's journal
TEMP_NAME = re.compile(r"\.part(\.|$)|\.old-|\.tmp|-journal$|^tmp")
ENV_QUIET = {"RAY_USAGE_STATS_ENABLED": "0", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
             "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}


# ---- shared helpers ------------------------------------------------------------------------------
def collect_cmd() -> list[str]:
    return [sys.executable, "-m", "collect.cli"]


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, **ENV_QUIET, **(extra or {})}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def run_cmd(cmd: list[str], *, env: dict[str, str] | None = None, timeout: float = 1800) -> subprocess.CompletedProcess:
    """A command in its own process group (so a timeout kills everything it started)."""
    p = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=_env(env), cwd=ROOT, start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        err += f"\n[fault_injection] killed after {timeout} s"
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


class Journal:
    """Per-trial / per-item records, appended as they happen (a stopped run keeps what it measured)."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, part: str, **record: Any) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"part": part, **record}, ensure_ascii=False, default=str) + "\n")
        print(f"[{part}] " + json.dumps(record, ensure_ascii=False, default=str)[:400], file=sys.stderr, flush=True)


def stage_rows(out: Path) -> dict[tuple[str, str], dict]:
    if not (out / "run.sqlite").exists():
        return {}
    with sqlite3.connect(out / "run.sqlite", timeout=30) as conn:
        conn.row_factory = sqlite3.Row
        return {(r["video_id"], r["stage"]): dict(r) for r in conn.execute("SELECT * FROM stage_runs")}


def running_stages(out: Path) -> list[str]:
    try:
        with sqlite3.connect(f"file:{out / 'run.sqlite'}?mode=ro", uri=True, timeout=1) as conn:
            return [r[0] for r in conn.execute("SELECT stage FROM stage_runs WHERE status='running'")]
    except sqlite3.Error:
        return []


def artifact_hashes(out: Path) -> dict[str, str]:
    """Every published artifact under videos/ (info.json holds the server URL and the extraction time)."""
    return {p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((out / "videos").rglob("*")) if p.is_file() and p.name != "info.json"}


def dataset_rows(out: Path) -> list[dict]:
    """The built dataset's rows, images replaced by the SHA-256 of their pixels+size."""
    import datasets
    from PIL import Image

    if not (out / "dataset").is_dir():
        return []
    dd = datasets.load_from_disk(str(out / "dataset"))
    rows = []
    for split in sorted(dd):
        for row in dd[split]:
            flat = {"split": split}
            for key, value in row.items():
                values = value if isinstance(value, list) else [value]
                if values and all(isinstance(v, Image.Image) for v in values):
                    value = [hashlib.sha256(v.tobytes() + repr(v.size).encode()).hexdigest() for v in values]
                flat[key] = value
            rows.append(flat)
    return sorted(rows, key=lambda r: json.dumps(r, sort_keys=True, default=str))


# the demo server's address is whichever port was free (47617 when another demo holds none): rows
# of a demo build carry it in video_url, so comparisons between runs read it as one placeholder
LOCAL_ADDRESS = re.compile(r"http://127\.0\.0\.1:\d+")


def content_hash(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(LOCAL_ADDRESS.sub("http://127.0.0.1:PORT", text).encode()).hexdigest()


def parquet_content(out: Path) -> dict[str, str]:
    """{file: content hash} of the Hub parquet files, read back by pyarrow (bytes hashed as hex)."""
    import pyarrow.parquet as pq

    def plain(value: Any) -> Any:
        if isinstance(value, bytes):
            return hashlib.sha256(value).hexdigest()
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value

    folder = out / "hub" / "data"
    return {p.name: content_hash(plain(pq.read_table(p).to_pylist())) for p in sorted(folder.glob("*.parquet"))} \
        if folder.is_dir() else {}


def temp_leftovers(out: Path) -> list[str]:
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if TEMP_NAME.search(p.name)
                  and "demo-corpus" not in p.parts)


def run_state(out: Path) -> dict:
    rows = dataset_rows(out)
    ids = [r.get("id") for r in rows]
    with sqlite3.connect(out / "run.sqlite", timeout=30) as conn:
        dup_rows = conn.execute("SELECT COUNT(*) FROM (SELECT video_id, stage, COUNT(*) c FROM stage_runs "
                                "GROUP BY 1, 2 HAVING c > 1)").fetchone()[0]
        running = conn.execute("SELECT COUNT(*) FROM stage_runs WHERE status='running'").fetchone()[0]
    return {"artifacts": artifact_hashes(out), "rows": len(rows), "dataset_hash": content_hash(rows),
            "duplicate_ids": len(ids) - len(set(ids)), "duplicate_store_rows": dup_rows, "running_rows": running,
            "temp_files": temp_leftovers(out), "parquet": parquet_content(out)}


def descendants(pid: int) -> list[int]:
    import psutil

    try:
        return [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


def reap_survivors(pids: list[int], grace_s: float = 3.0) -> int:
    """Processes of a killed run still alive after `grace_s` (a worker racing the rerun): counted,
    then ended by pid."""
    import psutil

    deadline = time.time() + grace_s
    alive = []
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            proc.wait(timeout=max(0.0, deadline - time.time()))
        except psutil.TimeoutExpired:
            alive.append(proc)
        except psutil.Error:
            pass
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            pass
    return len(alive)


# ---- 1. kills ------------------------------------------------------------------------------------
def part_kills(work: Path, journal: Journal, *, trials: int, seed: int, videos: int, rounds: int, demo_seed: int,
               ray_every: int, dataset_every: int) -> dict:
    demo = ["--set", f"demo.videos={videos}", "--set", f"demo.rounds={rounds}", "--set", f"demo.seed={demo_seed}"]
    ref = work / "kill-reference"
    t0 = time.perf_counter()
    proc = run_cmd([*collect_cmd(), "run", "--demo", "--out", ref, *demo])
    ref_s = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"the uninterrupted reference run failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
    reference = run_state(ref)
    if not reference["rows"]:
        raise RuntimeError("the reference dataset has no rows: choose --kill-demo-seed / --kill-rounds that keep some")
    build = stage_rows(ref).get(("__dataset__", "annotate")) or {}
    build_s = max(0.5, (build.get("finished_at") or 0) - (build.get("started_at") or 0))
    journal.write("kills", trial="reference", seconds=round(ref_s, 1), dataset_build_s=round(build_s, 1),
                  rows=reference["rows"], dataset_hash=reference["dataset_hash"])
    identical = 0
    modes: dict[str, int] = {}
    survivors_total = 0
    for trial in range(trials):
        rng = random.Random(seed * 100_003 + trial)
        if ray_every and trial % ray_every == ray_every - 1:
            mode = "ray"
        elif dataset_every and trial % dataset_every == 1:
            mode = "dataset"
        else:
            mode = "anytime"
        out = work / f"kill-{trial:03d}"
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(ref / "demo-corpus", out / "demo-corpus")  # same corpus, no second render
        args = [*collect_cmd(), "run", "--demo", "--out", str(out), *demo]
        if mode == "ray":
            args += ["--executor", "ray"]
        p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(), cwd=ROOT,
                             start_new_session=True)
        killed_in, delay = _kill_at_random(p, out, mode, rng, ref_s, build_s)
        family = descendants(p.pid)
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        survivors = reap_survivors(family)
        survivors_total += survivors
        rerun = run_cmd(args)
        state = run_state(out) if (out / "run.sqlite").exists() else {}
        checks = {
            "rerun_exit_0": rerun.returncode == 0,
            "same_artifacts": state.get("artifacts") == reference["artifacts"],
            "same_rows": state.get("rows") == reference["rows"],
            "same_content_hash": state.get("dataset_hash") == reference["dataset_hash"],
            "same_parquet": state.get("parquet") == reference["parquet"],
            "no_duplicates": state.get("duplicate_ids") == 0 and state.get("duplicate_store_rows") == 0,
            "no_running_rows": state.get("running_rows") == 0,
            "no_temp_files": state.get("temp_files") == [],
            "no_survivors": survivors == 0,
        }
        ok = all(checks.values())
        identical += ok
        modes[mode] = modes.get(mode, 0) + 1
        journal.write("kills", trial=trial, mode=mode, killed_in=killed_in, after_s=round(delay, 2), identical=ok,
                      failed_checks=[k for k, v in checks.items() if not v], temp_files=state.get("temp_files"),
                      stderr_tail=None if rerun.returncode == 0 else rerun.stderr[-1500:])
        if ok:
            shutil.rmtree(out, ignore_errors=True)
    return {"kill_trials": trials, "kill_identical": identical, "kill_modes": modes,
            "kill_survivor_processes": survivors_total, "kill_reference_run_s": round(ref_s, 1)}


def _kill_at_random(p: subprocess.Popen, out: Path, mode: str, rng: random.Random, ref_s: float,
                    build_s: float) -> tuple[str, float]:
    """Wait for the moment this trial's mode asks for, then return (what was running, delay)."""
    started = time.perf_counter()
    if mode == "anytime":
        delay = rng.uniform(0.05, 0.95) * ref_s
        while p.poll() is None and time.perf_counter() - started < delay:
            time.sleep(0.02)
        return ",".join(sorted(set(running_stages(out)))) or "outside a stage", time.perf_counter() - started
    wanted = "annotate" if mode == "dataset" else None  # ray: any stage, i.e. inside a Ray task
    limit = started + 3 * ref_s + 120
    while p.poll() is None and time.perf_counter() < limit:
        now = running_stages(out)
        if (wanted in now) if wanted else any(s != "annotate" and s != "discover" for s in now):
            break
        time.sleep(0.02)
    time.sleep(rng.uniform(0.0, build_s if mode == "dataset" else 1.5))
    return ",".join(sorted(set(running_stages(out)))) or "outside a stage", time.perf_counter() - started


# ---- local servers with the faults the demo server lacks ------------------------------------------
def fault_server_class():
    """`DemoServer` plus a challenge API that hangs (`hang={token: seconds}`) and a timed request log."""
    from collect.demo.server import DemoServer, _Handler, _QuietServer

    class HangingHandler(_Handler):
        def _geoguessr(self, token: str, endpoint: str, prefix: str) -> None:
            delay = self.server_state.hang.get(token)
            if delay:
                time.sleep(delay)  # longer than the client's timeout: it gives up first
            return super()._geoguessr(token, endpoint, prefix)

    class FaultServer(DemoServer):
        def __init__(self, *args: Any, hang: dict[str, float] | None = None, **kwargs: Any):
            super().__init__(*args, **kwargs)
            self.hang = dict(hang or {})
            self.timed_log: list[tuple[float, str]] = []

        def log(self, path: str) -> None:
            super().log(path)
            with self._lock:
                self.timed_log.append((time.monotonic(), self.request_log[-1]))

        def start(self) -> "FaultServer":
            handler = type("_BoundHangingHandler", (HangingHandler,), {"server_state": self})
            self._httpd = _QuietServer((self._host, self._port), handler)
            self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                            daemon=True)
            self._thread.start()
            return self

        @property
        def port(self) -> int:
            return int(self.url.rsplit(":", 1)[1])

    return FaultServer


def chat_server(reply: Callable[[dict, dict], tuple[int, bytes]]):
    """An OpenAI-compatible `/v1/chat/completions` whose raw answer `reply(body, headers)` chooses
    (status, bytes): invalid JSON and 5xx included."""
    from navig.testing import LocalServer

    class Handler(BaseHTTPRequestHandler):
        owner: Any

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                body = json.loads(raw)
            except ValueError:
                body = {}
            self.owner.requests.append({"time": time.monotonic(), "headers": headers, "body": body})
            status, data = reply(body, headers)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return LocalServer(Handler)


def chat_answer(text: str) -> bytes:
    return json.dumps({"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "m",
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                    "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()


GUESS = json.dumps({"country": "Kazakhstan", "city": "Almaty", "latitude": 43.24, "longitude": 76.95})


# ---- injected full disk (a child process: `fault_injection.py --inject-enospc NAME FILE... -- ARGS`) ---
def inject_enospc(folder: str, names: set[str]) -> None:
    """Every atomic write of `names` inside a folder called `folder` fails with ENOSPC, as on a full disk."""
    from contextlib import contextmanager

    import naviclues.fsutil as fsutil

    real = fsutil.atomic_path

    @contextmanager
    def full_disk(target):
        target_path = Path(target)
        if folder in target_path.parts and target_path.name in names:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target_path))
        with real(target) as tmp:
            yield tmp

    fsutil.atomic_path = full_disk


def enospc_child(argv: list[str]) -> None:
    split = argv.index("--")
    folder, names, rest = argv[0], set(argv[1:split]), argv[split + 1:]
    inject_enospc(folder, names)
    from collect.cli import app

    sys.argv = ["collect", *rest]
    app()


# ---- 2. bad inputs -------------------------------------------------------------------------------
# name -> what a correct pipeline gives: "fail" (an item error, retried by the next run),
# "ok" (nothing wrong to report), "either" (processed or a named item error)
VIDEO_INPUTS = {
    "truncated_mp4": "fail", "garbage_mp4": "fail", "no_audio": "ok", "no_captions_no_whisper": "fail",
    "foreign_captions": "either", "no_challenge_link": "fail", "non_geoguessr": "fail", "zero_second": "fail",
    "ten_hour_listing": "ok", "challenge_404": "fail", "api_401": "fail", "api_403": "fail",
    "api_429_retry_after": "ok", "api_500": "fail", "api_timeout": "fail", "api_truncated_json": "fail",
    "full_disk_enospc": "fail",
}
RUN_INPUTS = ("openai_invalid_json", "openai_500", "navig_unreadable_image")
BAD_INPUTS = (*VIDEO_INPUTS, *RUN_INPUTS)
GOOD_VIDEOS = 2


def _ffmpeg(*args: str) -> None:
    from collect.video import ffmpeg_exe

    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", *args], check=True)


def _break_corpus(corpus: Path, roles: dict[str, str], tokens: dict[str, str], rng: random.Random) -> tuple[dict, dict]:
    """Damage the corpus for each role; return (faults, hang) for the server. Originals are kept in
    corpus/originals/ so `_repair_corpus` can put them back."""
    media, keep = corpus / "media", corpus / "originals"
    keep.mkdir(exist_ok=True)
    for path in media.iterdir():
        shutil.copy2(path, keep / path.name)
    videos = json.loads((corpus / "videos.json").read_text("utf-8"))
    (keep / "videos.json").write_text(json.dumps(videos), "utf-8")
    by_id = {v["id"]: v for v in videos}
    for role, vid in roles.items():
        mp4, vtt = media / f"{vid}.mp4", media / f"{vid}.en.vtt"
        if role == "truncated_mp4":
            mp4.write_bytes(mp4.read_bytes()[: mp4.stat().st_size // 3])
        elif role == "garbage_mp4":
            mp4.write_bytes(rng.randbytes(mp4.stat().st_size))
        elif role == "no_audio":
            _ffmpeg("-i", str(keep / mp4.name), "-an", "-c:v", "copy", "-f", "mp4", str(mp4))
        elif role == "no_captions_no_whisper":
            vtt.unlink()
        elif role == "foreign_captions":
            vtt.rename(media / f"{vid}.de.vtt")
        elif role == "no_challenge_link":
            by_id[vid]["description"] = "Playing a challenge today, no link this time"
        elif role == "non_geoguessr":
            by_id[vid].update(title="Pasta carbonara in 10 minutes", description="A cooking video.")
            vtt.unlink()
            _ffmpeg("-f", "lavfi", "-i", "testsrc=size=640x360:rate=2:duration=12", "-f", "lavfi",
                    "-i", "sine=frequency=440:duration=12", "-shortest", "-c:v", "libx264", "-preset", "ultrafast",
                    "-pix_fmt", "yuv420p", "-c:a", "aac", "-f", "mp4", str(mp4))
        elif role == "zero_second":
            by_id[vid]["duration"] = 0
            _ffmpeg("-f", "lavfi", "-i", "color=size=640x360:rate=2", "-frames:v", "0", "-c:v", "libx264",
                    "-f", "mp4", str(mp4))
        elif role == "ten_hour_listing":
            by_id[vid]["duration"] = 36_000
    (corpus / "videos.json").write_text(json.dumps(videos), "utf-8")
    faults = {tokens[roles["challenge_404"]]: 404, tokens[roles["api_401"]]: 401, tokens[roles["api_403"]]: 403,
              tokens[roles["api_429_retry_after"]]: {"status": 429, "times": 2, "retry_after": 1},
              tokens[roles["api_500"]]: {"status": 500, "times": None},
              tokens[roles["api_truncated_json"]]: "malformed"}
    return faults, {tokens[roles["api_timeout"]]: 4.0}


def _repair_corpus(corpus: Path) -> None:
    keep, media = corpus / "originals", corpus / "media"
    for path in list(media.iterdir()):
        path.unlink()
    for path in keep.iterdir():
        shutil.copy2(path, corpus / "videos.json" if path.name == "videos.json" else media / path.name)


def part_bad_inputs(work: Path, journal: Journal, *, seed: int, only: str = "all") -> dict:
    wanted = list(BAD_INPUTS) if only == "all" else [n.strip() for n in only.split(",") if n.strip()]
    unknown = sorted(set(wanted) - set(BAD_INPUTS))
    if unknown:
        raise SystemExit(f"unknown bad input(s) {unknown}; known: {', '.join(BAD_INPUTS)}")
    video_roles = [n for n in wanted if n in VIDEO_INPUTS]
    shutil.rmtree(work, ignore_errors=True)
    results: dict[str, dict] = _video_inputs(work, journal, seed, video_roles) if video_roles else {}
    run_level = [n for n in wanted if n in RUN_INPUTS]
    if any(n.startswith("openai_") for n in run_level):
        # rounds long enough to pass the filters, so the reasoning writer really asks the server
        build = work / "reasoning"
        made = run_cmd([*collect_cmd(), "run", "--demo", "--out", str(build), "--no-annotate",
                        "--set", "demo.videos=1", "--set", "demo.rounds=2", "--set", "demo.seed=2"])
        journal.write("bad", run="reasoning build", exit=made.returncode)
    for name in run_level:
        results[name] = _run_level_input(name, work, work / "reasoning")
        journal.write("bad", input=name, **results[name])
    handled = sum(r["handled"] for r in results.values())
    return {"bad_inputs": len(results), "bad_inputs_handled": handled,
            "bad_inputs_not_handled": sorted(k for k, r in results.items() if not r["handled"])}


def _video_inputs(work: Path, journal: Journal, seed: int, video_roles: list[str]) -> dict[str, dict]:
    """Every video-level bad input beside GOOD_VIDEOS good ones, in one run; then a repaired rerun."""
    from collect.demo.generate import generate_corpus

    corpus, out = work / "corpus", work / "out"
    truth = generate_corpus(corpus, n_videos=GOOD_VIDEOS + len(VIDEO_INPUTS), seed=seed + 31, **TINY)
    ids = [v["id"] for v in truth["videos"]]
    tokens = {v["id"]: v["challenge_token"] for v in truth["videos"]}
    good = ids[:GOOD_VIDEOS]
    roles = dict(zip(VIDEO_INPUTS, ids[GOOD_VIDEOS:]))
    faults, hang = _break_corpus(corpus, roles, tokens, random.Random(seed))
    unused = [vid for role, vid in roles.items() if role not in video_roles]
    if unused:  # inputs not asked for: their videos leave the corpus
        videos = [v for v in json.loads((corpus / "videos.json").read_text("utf-8")) if v["id"] not in unused]
        (corpus / "videos.json").write_text(json.dumps(videos), "utf-8")
        (corpus / "originals" / "videos.json").write_text(
            json.dumps([v for v in json.loads((corpus / "originals" / "videos.json").read_text("utf-8"))
                        if v["id"] not in unused]), "utf-8")
    roles = {r: v for r, v in roles.items() if r in video_roles}
    FaultServer = fault_server_class()
    settings = ["--set", "discover.require_challenge_link=false", "--set", "challenge.retries=2",
                "--set", "challenge.backoff_s=0.05", "--set", "challenge.timeout_s=1", "--set", "run.workers=1"]
    results: dict[str, dict] = {}
    with FaultServer(corpus, faults=faults, hang=hang) as server:
        base = ["run", server.feed_url, "--out", str(out), "--set", f"challenge.api_base={server.url}", *settings]
        if "full_disk_enospc" in roles:
            cmd = [sys.executable, str(Path(__file__).resolve()), "--inject-enospc", roles["full_disk_enospc"],
                   "transcript.json", "--", *base]
        else:
            cmd = [*collect_cmd(), *base]
        first = run_cmd(cmd)
        port = server.port
        throttled = [t for t, p in server.timed_log
                     if "api_429_retry_after" in roles and tokens[roles["api_429_retry_after"]] in p
                     and "/challenges/" in p]
    rows1 = stage_rows(out)
    produced = artifact_hashes(out)
    journal.write("bad", run="first", exit=first.returncode, traceback="Traceback" in first.stderr,
                  stderr_tail=first.stderr[-800:] if first.returncode not in (0, 3) else None)
    good_ok = all(rows1.get((v, s), {}).get("status") in ("done", "skipped") for v in good
                  for s in ("download", "transcript", "challenge", "segment", "frames"))
    run_level = {"run_continues": good_ok, "exit_3": first.returncode == 3,
                 "no_traceback": "Traceback" not in first.stderr}
    # the next run, with every input repaired and the faults gone, on the same address
    _repair_corpus(corpus)
    with FaultServer(corpus, port=port) as server:
        base = ["run", server.feed_url, "--out", str(out), "--set", f"challenge.api_base={server.url}", *settings]
        second = run_cmd([*collect_cmd(), *base])
    rows2 = stage_rows(out)
    after = artifact_hashes(out)
    journal.write("bad", run="repaired", exit=second.returncode, stderr_tail=second.stderr[-800:] if second.returncode not in (0, 3) else None)
    for role, vid in roles.items():
        mine = {stage: row for (v, stage), row in rows1.items() if v == vid}
        failed = {s: r for s, r in mine.items() if r["status"] == "failed"}
        named = all(vid in (r["error_message"] or "") and r["error_type"]
                    and len((r["error_message"] or "").replace(vid, "").strip(" :")) >= 8 for r in failed.values())
        expected = VIDEO_INPUTS[role]
        outcome_ok = {"fail": bool(failed), "ok": not failed and mine.get("segment", {}).get("status") == "done",
                      "either": True}[expected]
        if role == "api_429_retry_after":
            gaps = [b - a for a, b in zip(throttled, throttled[1:])]
            outcome_ok = outcome_ok and len(throttled) >= 3 and min(gaps, default=0) >= 0.9  # Retry-After: 1 honoured
        # nothing produced before is lost: every artifact of run 1 is still there, unchanged unless its stage reran
        lost = [p for p in produced if p.split("/")[1] == _folder(out, vid) and p not in after]
        retried = all(rows2.get((vid, s), {}).get("attempts", 0) > r["attempts"] for s, r in failed.items())
        checks = {"outcome_as_expected": outcome_ok, "error_names_item_and_cause": named, "nothing_lost": not lost,
                  "next_run_retries": retried, "no_running_rows": all(r["status"] != "running" for r in mine.values()),
                  **run_level}
        results[role] = {"handled": all(checks.values()), "failed_checks": [k for k, v in checks.items() if not v],
                         "first": {s: r["status"] for s, r in mine.items()},
                         "errors": {s: f"{r['error_type']}: {(r['error_message'] or '')[:160]}" for s, r in failed.items()},
                         "after_repair": {s: r["status"] for (v, s), r in rows2.items() if v == vid}}
        journal.write("bad", input=role, video=vid, **results[role])
    good_lost = [p for p in produced if p.split("/")[1] in {_folder(out, v) for v in good} and produced[p] != after.get(p)]
    journal.write("bad", good_videos_artifacts_changed=len(good_lost))
    if good_lost:
        for result in results.values():
            result["handled"] = False
            result["failed_checks"].append("good_videos_artifacts_kept")
    return results


def _folder(out: Path, video_id: str) -> str:
    from naviclues.fsutil import safe_name

    return safe_name(video_id)


def _run_level_input(name: str, work: Path, out: Path) -> dict:
    if name.startswith("openai_"):
        return _reasoning_server_fault(name, out)
    return _unreadable_image(work / "locate")


def _reasoning_server_fault(name: str, out: Path) -> dict:
    """The dataset build's reasoning writer against a server answering garbage / 500, then a sound one."""
    broken = (lambda body, headers: (200, b'{"id": "chatcmpl-1", "choices": [{"message": {"content": "cut'))
    if name == "openai_500":
        broken = (lambda body, headers: (500, b'{"error": {"message": "internal error", "type": "server_error"}}'))
    before = artifact_hashes(out)
    settings = ["--set", "annotate.reasoning.backend=openai", "--set", "annotate.reasoning.model=m",
                "--set", "annotate.reasoning.retries=2"]
    with chat_server(broken) as server:
        args = ["annotate", "--out", str(out), "--force", "--set", f"annotate.reasoning.base_url={server.url}/v1",
                *settings]
        proc = run_cmd([*collect_cmd(), *args])
        hits = len(server.requests)
    card = (out / "hub" / "README.md").read_text("utf-8") if (out / "hub" / "README.md").exists() else ""
    drops = (out / "dataset" / "drops.jsonl").read_text("utf-8") if (out / "dataset" / "drops.jsonl").exists() else ""
    said = proc.stdout + proc.stderr + drops
    named = bool(re.search(r"round demo\d+/\d+: \w+", said)) and bool(re.search(r"json|malformed|500", said, re.I))
    with chat_server(lambda body, headers: (200, chat_answer("Reasoning: the signs and the flag point here."))) as server:
        again = run_cmd([*collect_cmd(), "annotate", "--out", str(out), "--set",
                         f"annotate.reasoning.base_url={server.url}/v1", *settings])
        retried_hits = len(server.requests)
    checks = {"server_was_asked": hits > 0, "exit_3": proc.returncode == 3, "error_names_item_and_cause": named,
              "no_traceback": "Traceback" not in proc.stderr, "collect_artifacts_kept": artifact_hashes(out) == before,
              "next_run_retries": retried_hits > 0 and again.returncode == 0}
    return {"handled": all(checks.values()), "failed_checks": [k for k, v in checks.items() if not v],
            "exit": proc.returncode, "said": said[-600:], "card_present": bool(card)}


def _unreadable_image(work: Path) -> dict:
    """`navig locate` on a folder with one unreadable image beside good ones (OpenAI-compatible backend)."""
    from PIL import Image

    shutil.rmtree(work, ignore_errors=True)
    images = work / "images"
    images.mkdir(parents=True)
    for i in range(2):
        Image.new("RGB", (96, 64), (40 * i, 120, 200)).save(images / f"good{i}.jpg")
    (images / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    preds = work / "preds.jsonl"
    with chat_server(lambda body, headers: (200, chat_answer(GUESS))) as server:
        cmd = [sys.executable, "-m", "navig.cli", "locate", str(images), "--out", str(preds), "--backend", "openai",
               "--base-url", f"{server.url}/v1", "--model", "m", "--no-searcher", "--geocoder", "offline"]
        proc = run_cmd(cmd)
        lines = [json.loads(line) for line in preds.read_text("utf-8").splitlines()] if preds.exists() else []
        broken = [r for r in lines if r.get("id") == "broken"]
        Image.new("RGB", (96, 64), (200, 10, 10)).save(images / "broken.jpg")  # the file is readable now
        again = run_cmd(cmd + ["--retry-failed"])
        lines2 = [json.loads(line) for line in preds.read_text("utf-8").splitlines()] if preds.exists() else []
    good = [r for r in lines if str(r.get("id", "")).startswith("good") and r.get("prediction")]
    text = json.dumps(broken)
    checks = {"run_continues": len(good) == 2, "exit_3": proc.returncode == 3,
              "error_names_item_and_cause": bool(broken) and all("broken.jpg" in (r.get("failure") or "")
                                                                 and r.get("failure_kind") == "image" for r in broken),
              "no_traceback": "Traceback" not in proc.stderr,
              "next_run_retries": any(r.get("id") == "broken" and r.get("prediction") for r in lines2[len(lines):])}
    return {"handled": all(checks.values()), "failed_checks": [k for k, v in checks.items() if not v],
            "exit": proc.returncode, "broken_line": text[:400], "stderr_tail": proc.stderr[-400:],
            "retry_exit": again.returncode}


# ---- 3. hostile names ---------------------------------------------------------------------------
def hostile_ids(probe: Path) -> list[str]:
    return ["../../escape-probe/dotdot", str(probe / "absolute"), "nul\x00byte/../x", "rtl\u202egnp.exe",
            "x" * 400, "CaseTwin", "casetwin", "..", "."]


HOSTILE_TEXT = "../../escape-probe/title\x00 \u202eevil\u202c /etc/passwd " + "y" * 400
HOSTILE_TOKENS = ["../../escape-probe/token", "/tmp/escape-probe-token", "tok\x00en", "T" * 400]


def _tree(root: Path, skip: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if skip not in p.parents and p != skip}


def part_hostile_names(work: Path, journal: Journal, *, seed: int) -> dict:
    """Hostile ids (through the run store, as a listing would give them), titles, channels and
    challenge tokens; every artifact must stay inside OUT, distinct items in distinct folders."""
    from collect.demo.generate import generate_corpus
    from collect.records import Video
    from collect.store import RunStore
    from naviclues.fsutil import safe_name

    shutil.rmtree(work, ignore_errors=True)
    corpus, out, probe = work / "corpus", work / "out", work / "escape-probe"
    truth = generate_corpus(corpus, n_videos=1, seed=seed + 57, **TINY)
    real = truth["videos"][0]
    videos = json.loads((corpus / "videos.json").read_text("utf-8"))
    videos[0]["title"] = HOSTILE_TEXT
    videos[0]["channel"] = HOSTILE_TEXT[::-1]
    (corpus / "videos.json").write_text(json.dumps(videos), "utf-8")
    FaultServer = fault_server_class()
    with FaultServer(corpus) as server:
        base = ["run", server.feed_url, "--out", str(out), "--set", f"challenge.api_base={server.url}",
                "--set", "challenge.retries=0", "--set", "run.workers=1"]
        first = run_cmd([*collect_cmd(), *base, "--only", "discover"])
        ids = hostile_ids(probe)
        with RunStore(out) as store:
            hostile = [Video(id=vid, url=server.watch_url(real["id"]), title=HOSTILE_TEXT, channel=HOSTILE_TEXT[::-1],
                             description=f"https://www.geoguessr.com/challenge/{real['challenge_token']}",
                             duration_s=real.get("duration_s"),
                             challenge_tokens=[HOSTILE_TOKENS[i % len(HOSTILE_TOKENS)]] if i % 2 else [])
                       for i, vid in enumerate(ids)]
            store.upsert_videos(hostile)
            row = next(r for r in store.rows("discover") if r.video_id.startswith("source:"))
            outputs = {**row.outputs, "videos": [*row.outputs.get("videos", []), *ids]}
            store.mark_finished(row.video_id, "discover", row.status, fingerprint=row.fingerprint, outputs=outputs)
        before = _tree(work, out)
        proc = run_cmd([*collect_cmd(), *base])
    after = _tree(work, out)
    outside = sorted(after - before)
    links_out = [p for p in out.rglob("*") if p.is_symlink() and out.resolve() not in p.resolve().parents]
    long_names = [p.name for p in out.rglob("*") if len(p.name.encode()) > 255]
    folders = [safe_name(v) for v in ids]
    exact = len(folders) - len(set(folders))
    folded = len(folders) - len({f.casefold() for f in folders})
    rows = stage_rows(out)
    per_video = {vid: {s: r["status"] for (v, s), r in rows.items() if v == vid} for vid in ids}
    dataset = dataset_rows(out)
    row_ids = [r.get("id") for r in dataset]
    figures = {"escapes": len(outside) + len(links_out) + int(probe.exists()), "collisions": exact,
               "case_insensitive_collisions": folded, "hostile_items": len(ids) + 2 + len(HOSTILE_TOKENS),
               "hostile_run_exit": proc.returncode, "hostile_run_traceback": "Traceback" in proc.stderr,
               "hostile_videos_processed": sum(st.get("segment") == "done" for st in per_video.values()),
               "dataset_row_id_collisions": len(row_ids) - len(set(row_ids))}
    journal.write("names", discover_exit=first.returncode, outside=outside[:20], long_names=long_names[:5],
                  per_video={repr(k)[:60]: v for k, v in per_video.items()}, **figures,
                  stderr_tail=proc.stderr[-1200:] if proc.returncode not in (0, 3) else None)
    return figures


# ---- 4. secrets ------------------------------------------------------------------------------------
def recorder_server(status: int = 500):
    """Answers every request with `status` and records its headers (a Hub that is down)."""
    from navig.testing import LocalServer

    class Handler(BaseHTTPRequestHandler):
        owner: Any

        def log_message(self, *args: Any) -> None:
            pass

        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            self.owner.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}})
            data = b'{"error": "down for maintenance"}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _any

    return LocalServer(Handler)


def part_secrets(work: Path, journal: Journal, *, seed: int) -> dict:
    from collect.demo.generate import generate_corpus
    from PIL import Image

    shutil.rmtree(work, ignore_errors=True)
    rng = random.Random(seed + 4242)
    planted = {name: f"{prefix}{rng.getrandbits(96):024x}" for name, prefix in
               (("geoguessr_cookie", "ncfa-FI-"), ("google_key", "AIzaFI"), ("hf_token", "hf_FI"),
                ("openai_key", "sk-FI-"))}
    env = {"GEOGUESSR_NCFA": planted["geoguessr_cookie"], "GOOGLE_MAPS_API_KEY": planted["google_key"],
           "HF_TOKEN": planted["hf_token"], "OPENAI_API_KEY": planted["openai_key"],
           "FI_REASONING_KEY": planted["openai_key"], "NAVIG_CACHE": str(work / "navig-cache")}
    corpus = work / "corpus"
    # full-length rounds (seed 2: the first video's round passes the filters) so the reasoning
    # writer really sends the OpenAI-compatible key; the second video's API answers 500
    truth = generate_corpus(corpus, n_videos=2, rounds_per_video=1, seed=2)
    failing_token = truth["videos"][1]["challenge_token"]
    out, demo_out, preds = work / "out", work / "demo", work / "locate" / "preds.jsonl"
    images = work / "locate" / "images"
    images.mkdir(parents=True)
    Image.new("RGB", (96, 64), (10, 120, 200)).save(images / "street.jpg")
    (images / "broken.jpg").write_bytes(b"not an image")
    outputs: list[tuple[str, subprocess.CompletedProcess]] = []
    used: dict[str, bool] = {}
    bearer = f"Bearer {planted['openai_key']}"

    def chat(body: dict, headers: dict) -> tuple[int, bytes]:
        if headers.get("authorization") != bearer:
            return 401, b'{"error": {"message": "bad key"}}'
        return 200, chat_answer("Reasoning: the road lines and the signs point to this country.")

    FaultServer = fault_server_class()
    with FaultServer(corpus, require_cookie=planted["geoguessr_cookie"], streetview_key=planted["google_key"],
                     faults={failing_token: {"status": 500, "times": None}}) as server, \
            chat_server(chat) as llm, recorder_server(500) as hub:
        reasoning = ["--set", "annotate.reasoning.backend=openai", "--set", "annotate.reasoning.model=m",
                     "--set", f"annotate.reasoning.base_url={llm.url}/v1",
                     "--set", "annotate.reasoning.api_key_env=FI_REASONING_KEY", "--set", "annotate.reasoning.retries=1"]
        run = ["run", server.feed_url, "--out", str(out), "--set", f"challenge.api_base={server.url}",
               "--set", f"streetview.base_url={server.streetview_url}", "--set", "challenge.retries=1",
               "--set", "challenge.backoff_s=0.01", *reasoning]
        commands = {
            "run (one video's API answers 500)": [*collect_cmd(), *run],
            "status": [*collect_cmd(), "status", "--out", str(out)],
            "config": [*collect_cmd(), "config"],
            "config --set cookie": [*collect_cmd(), "config", "--set", f"challenge.ncfa_cookie={planted['geoguessr_cookie']}"],
            "annotate --force": [*collect_cmd(), "annotate", "--out", str(out), "--force", *reasoning],
            "run with a bad setting": [*collect_cmd(), *run, "--set", "challenge.retries=-1"],
            "run --demo": [*collect_cmd(), "run", "--demo", "--out", str(demo_out), "--set", "demo.videos=1",
                           "--set", "demo.rounds=1", "--no-annotate"],
            "hf-push --dry-run": [sys.executable, "-m", "annotate.push", str(out), "--repo-id", "fi/naviclues", "--dry-run"],
            "hf-push (Hub answers 500)": [sys.executable, "-m", "annotate.push", str(out), "--repo-id", "fi/naviclues"],
            "navig locate": [sys.executable, "-m", "navig.cli", "locate", str(images), "--out", str(preds),
                             "--backend", "openai", "--base-url", f"{llm.url}/v1", "--api-key-env", "FI_REASONING_KEY",
                             "--model", "m", "--no-searcher", "--geocoder", "offline"],
        }
        for name, cmd in commands.items():
            # the push really talks to the (failing) local Hub: offline mode off for it
            extra = {"HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0"} if name.startswith("hf-push") else {}
            proc = run_cmd(cmd, env={**env, **extra})
            outputs.append((name, proc))
            journal.write("secrets", command=name, exit=proc.returncode)
        rows = stage_rows(out)
        good = truth["videos"][0]["id"]
        used = {"geoguessr_cookie": rows.get((good, "challenge"), {}).get("status") == "done",
                "google_key": rows.get((good, "streetview"), {}).get("status") == "done",
                "openai_key": any(r["headers"].get("authorization") == bearer for r in llm.requests),
                "hf_token": any(r["headers"].get("authorization") == f"Bearer {planted['hf_token']}" for r in hub.requests)}
    leaks: list[str] = []
    secrets = {k: v.encode() for k, v in planted.items()}
    for name, proc in outputs:
        for key, value in planted.items():
            for stream, text in (("stdout", proc.stdout), ("stderr", proc.stderr)):
                if value in (text or ""):
                    leaks.append(f"{key} in {stream} of `{name}`")
    files = [p for p in work.rglob("*") if p.is_file() and corpus not in p.parents]
    for path in files:
        try:
            blob = path.read_bytes()
        except FileNotFoundError:  # SQLite's -shm/-wal go when the last connection closes
            continue
        for key, value in secrets.items():
            if value in blob:
                leaks.append(f"{key} in {path.relative_to(work)}")
    figures = {"secret_leaks": len(leaks), "secrets_planted": len(planted), "secrets_used": sorted(k for k, v in used.items() if v),
               "secret_files_scanned": len(files), "secret_commands": len(outputs),
               "secret_parquet_files": sum(p.suffix == ".parquet" for p in files)}
    journal.write("secrets", leaks=leaks, used=used, exits={n: p.returncode for n, p in outputs}, **figures)
    return figures


# ---- 5. politeness ---------------------------------------------------------------------------------
def nominatim_server():
    """Nominatim `/search` (jsonv2) that records when each request came; every answer is empty."""
    from navig.testing import LocalServer

    class Handler(BaseHTTPRequestHandler):
        owner: Any

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self.owner.requests.append({"time": time.monotonic(), "path": self.path})
            data = b"[]"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return LocalServer(Handler)


NOMINATIM_CHILD = """
import sys
from navig.searcher.geocoder import NominatimGeocoder
domain, cache, tag, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
geo = NominatimGeocoder(domain=domain, scheme="http", cache_path=cache)
for i in range(n):
    geo.search(f"place {tag} {i}")
"""


def part_politeness(work: Path, journal: Journal, *, processes: int, queries: int, ytdlp_sleep_s: float) -> dict:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    figures: dict[str, Any] = {}
    # a) Nominatim: several processes sharing one cache folder, distinct queries (no cache hit)
    with nominatim_server() as server:
        domain = server.url.split("://", 1)[1]
        env = {"NAVIG_CACHE": str(work / "navig-cache")}
        procs = [subprocess.Popen([sys.executable, "-c", NOMINATIM_CHILD, domain, str(work / f"cache-{i}.sqlite"),
                                   str(i), str(queries)], env=_env(env), cwd=ROOT, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for i in range(processes)]
        errs = [p.communicate(timeout=600)[1] for p in procs]
        times = sorted(r["time"] for r in server.requests)
    gaps = [b - a for a, b in zip(times, times[1:])]
    per_window = max((sum(1 for u in times if t <= u < t + 1.0) for t in times), default=0)
    figures.update(nominatim_requests=len(times), nominatim_processes=processes,
                   nominatim_min_gap_s=round(min(gaps), 3) if gaps else None, nominatim_max_per_1s=per_window,
                   nominatim_polite=bool(gaps) and len(times) == processes * queries and min(gaps) >= 1.0)
    journal.write("polite", nominatim_gaps=[round(g, 3) for g in gaps],
                  errors=[e[-300:] for e in errs if e.strip()])
    # b) yt-dlp's sleep_interval between a video's page and its download
    figures.update(_ytdlp_sleep(work, journal, ytdlp_sleep_s) if ytdlp_sleep_s > 0 else {"ytdlp_sleep_honoured": None})
    figures.update(_backoff_429(work, journal))
    figures["politeness_held"] = bool(figures["nominatim_polite"] and figures["ytdlp_sleep_honoured"] is not False
                                      and figures["backoff_429_exponential"])
    journal.write("polite", **{k: v for k, v in figures.items() if k.startswith(("backoff", "politeness", "ytdlp"))})
    return figures


def _ytdlp_sleep(work: Path, journal: Journal, sleep_s: float) -> dict:
    from collect.demo.generate import generate_corpus

    corpus, out = work / "corpus", work / "out"
    truth = generate_corpus(corpus, n_videos=2, seed=91, **TINY)
    FaultServer = fault_server_class()
    with FaultServer(corpus) as server:
        base = ["run", server.feed_url, "--out", str(out), "--set", f"challenge.api_base={server.url}",
                "--set", "run.workers=1", "--no-annotate"]
        run_cmd([*collect_cmd(), *base, "--only", "discover"])
        t_start = time.monotonic()
        proc = run_cmd([*collect_cmd(), *base, "--only", "download",
                        "--set", f"download.ytdlp_options.sleep_interval={sleep_s}"])
        log = [(t, p) for t, p in server.timed_log if t >= t_start]
    waits = []
    for video in truth["videos"]:
        vid = video["id"]
        media = [t for t, p in log if p.startswith(f"/media/{vid}.mp4")]
        pages = [t for t, p in log if p.startswith(f"/watch/{vid}") and (not media or t < media[0])]
        if media and pages:
            waits.append(media[0] - pages[-1])
    journal.write("polite", ytdlp_waits=[round(w, 3) for w in waits], download_exit=proc.returncode)
    return {"ytdlp_sleep_interval_s": sleep_s, "ytdlp_min_wait_s": round(min(waits), 3) if waits else None,
            "ytdlp_sleep_honoured": len(waits) == len(truth["videos"]) and min(waits) >= sleep_s * 0.95}


def _backoff_429(work: Path, journal: Journal) -> dict:
    """Exponential backoff on 429 without Retry-After (the client's own schedule)."""
    from collect.clients.geoguessr import GeoGuessrClient

    token = "FaultInjection42"
    payload = json.dumps({"token": token, "map": {"name": "A Demo World"}, "challenge": {"roundCount": 1}}).encode()
    hits: list[float] = []

    class Throttle(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            hits.append(time.monotonic())
            if len(hits) <= 4:
                self.send_response(429)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    from navig.testing import LocalServer

    backoff = 0.25
    with LocalServer(Throttle) as api, GeoGuessrClient(api.url, retries=5, backoff_s=backoff) as client:
        client.get_challenge_raw(token)
    gaps = [b - a for a, b in zip(hits, hits[1:])][:4]
    ratios = [b / a for a, b in zip(gaps, gaps[1:]) if a > 0]
    return {"backoff_429_waits_s": [round(g, 3) for g in gaps],
            "backoff_429_exponential": len(gaps) == 4 and all(r >= 1.6 for r in ratios) and gaps[0] >= backoff * 0.9}


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# ---- 6. load -----------------------------------------------------------------------------------------
def part_load(work: Path, journal: Journal, *, videos: int, sample: int) -> dict:
    """A synthetic run store: `videos` x 7 stage rows (discover + the six per-video stages)."""
    import statistics

    from rich.console import Console

    from collect.config import load_config
    from collect.layout import FRAMES_INDEX, STREETVIEW_INDEX
    from collect.pipeline import STAGE_NAMES, VideoWorker, load_stage
    from collect.records import Video, to_dict
    from collect.runner import status_report
    from collect.stages.base import VideoContext
    from collect.store import RunStore

    shutil.rmtree(work, ignore_errors=True)
    out = work / "out"
    cfg = load_config()
    records = [Video(id=f"v{i:06d}x", url=f"https://www.youtube.com/watch?v=v{i:06d}x", title=f"Round-up {i}",
                     channel=f"channel {i % 37}", duration_s=900.0 + i % 600) for i in range(videos)]
    timed = records[:: max(1, videos // sample)][:sample]
    t0 = time.perf_counter()
    with RunStore(out) as store:
        store.upsert_videos(records)
    stages = [load_stage(s) for s in STAGE_NAMES]
    now = time.time()
    real_fp = {}
    for video in timed:  # rows the rerun must recognise carry the stage's real fingerprint and outputs
        ctx = VideoContext(video, out.resolve(), cfg)
        for index in (FRAMES_INDEX, STREETVIEW_INDEX):
            ctx.path(index).parent.mkdir(parents=True, exist_ok=True)
            ctx.path(index).write_text("[]", "utf-8")
        for stage in stages:
            real_fp[(video.id, stage.name)] = stage.fingerprint(ctx)
    with sqlite3.connect(out / "run.sqlite") as conn:
        conn.executemany(
            "INSERT INTO stage_runs(video_id, stage, status, attempts, fingerprint, outputs, started_at, finished_at) "
            "VALUES (?,?,?,?,?,?,?,?)",
            [(v.id, s, "done", 1, real_fp.get((v.id, s), hashlib.sha1(f"{v.id}{s}".encode()).hexdigest()[:16]),
              "{}", now, now) for v in records for s in ["discover", *STAGE_NAMES]])
    build_s = time.perf_counter() - t0
    # wall time on a shared machine includes waiting for a core; CPU time is the work itself
    cli, cli_cpu = [], []
    for _ in range(3):
        t, c = time.perf_counter(), _children_cpu()
        proc = run_cmd([*collect_cmd(), "status", "--out", str(out)])
        cli.append(time.perf_counter() - t)
        cli_cpu.append(_children_cpu() - c)
    t, c = time.perf_counter(), _children_cpu()
    run_cmd([*collect_cmd(), "--help"])  # the floor: Python, typer (which imports pydantic) and rich
    floor, floor_cpu = time.perf_counter() - t, _children_cpu() - c
    inproc, inproc_cpu = [], []
    for _ in range(3):
        t, c = time.perf_counter(), time.process_time()
        status_report(out, Console(file=open(os.devnull, "w")))
        inproc.append(time.perf_counter() - t)
        inproc_cpu.append(time.process_time() - c)
    worker = VideoWorker(out, cfg)
    worker(timed[0])  # imports every stage module once, as the first video of a real rerun does
    per_video, per_video_cpu, cached = [], [], 0
    for video in timed[1:]:
        t, c = time.perf_counter(), time.process_time()
        res = worker(video)
        per_video.append(time.perf_counter() - t)
        per_video_cpu.append(time.process_time() - c)
        cached += all(st == "cached" for st in res.statuses.values()) and len(res.statuses) == len(STAGE_NAMES)
    figures = {"load_videos": videos, "load_stage_rows": videos * 7, "load_build_s": round(build_s, 1),
               "status_cli_s": round(statistics.median(cli), 3), "status_cli_cpu_s": round(statistics.median(cli_cpu), 3),
               "status_cli_floor_s": round(floor, 3), "status_cli_floor_cpu_s": round(floor_cpu, 3),
               "status_report_s": round(statistics.median(inproc), 3),
               "status_report_cpu_s": round(statistics.median(inproc_cpu), 3),
               "status_exit": proc.returncode, "status_lists_all": f"videos: {videos}" in proc.stdout,
               "skip_check_ms_per_video": round(1000 * statistics.median(per_video), 2),
               "skip_check_cpu_ms_per_video": round(1000 * statistics.median(per_video_cpu), 2),
               "skip_check_ms_p95": round(1000 * sorted(per_video)[int(0.95 * (len(per_video) - 1))], 2),
               "skip_check_all_cached": cached == len(per_video), "load_average_1m": round(os.getloadavg()[0], 1),
               "cpu_cores": os.cpu_count()}
    journal.write("load", **figures)
    return figures


# ---- main ----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a temp dir, removed)")
    ap.add_argument("--kill-trials", type=int, default=20)
    ap.add_argument("--kill-videos", type=int, default=1, help="demo videos per kill trial")
    ap.add_argument("--kill-rounds", type=int, default=2, help="rounds per demo video in the kill trials")
    ap.add_argument("--kill-demo-seed", type=int, default=2,
                    help="demo corpus seed of the kill trials (2: its first round passes the filters, so rows exist)")
    ap.add_argument("--ray-every", type=int, default=5, help="every Nth kill trial runs --executor ray (0: never)")
    ap.add_argument("--dataset-every", type=int, default=3,
                    help="every Nth kill trial dies inside the dataset build (0: never)")
    ap.add_argument("--bad-inputs", default="all", help="comma-separated subset of the bad inputs (see BAD_INPUTS)")
    ap.add_argument("--load-videos", type=int, default=10_000)
    ap.add_argument("--load-sample", type=int, default=300, help="videos whose rerun skip check is timed")
    ap.add_argument("--nominatim-processes", type=int, default=3)
    ap.add_argument("--nominatim-queries", type=int, default=3, help="distinct queries per process")
    ap.add_argument("--ytdlp-sleep", type=float, default=2.0,
                    help="download.ytdlp_options.sleep_interval measured between page and download (0: skip)")
    args = ap.parse_args(argv)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        ap.error(f"unknown part(s) {unknown}; parts are {', '.join(PARTS)}")
    keep = args.workdir is not None
    work = (args.workdir or Path(tempfile.mkdtemp(prefix="fault-injection-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    journal = Journal(work / "fault_injection.jsonl")
    figures: dict[str, Any] = {"seed": args.seed, "parts": parts}
    started = time.perf_counter()
    try:
        for part in parts:
            t0 = time.perf_counter()
            if part == "kills":
                figures.update(part_kills(work, journal, trials=args.kill_trials, seed=args.seed,
                                          videos=args.kill_videos, rounds=args.kill_rounds,
                                          demo_seed=args.kill_demo_seed,
                                          ray_every=args.ray_every, dataset_every=args.dataset_every))
            elif part == "bad":
                figures.update(part_bad_inputs(work / "bad", journal, seed=args.seed, only=args.bad_inputs))
            elif part == "names":
                figures.update(part_hostile_names(work / "names", journal, seed=args.seed))
            elif part == "secrets":
                figures.update(part_secrets(work / "secrets", journal, seed=args.seed))
            elif part == "polite":
                figures.update(part_politeness(work / "polite", journal, processes=args.nominatim_processes,
                                               queries=args.nominatim_queries, ytdlp_sleep_s=args.ytdlp_sleep))
            elif part == "load":
                figures.update(part_load(work / "load", journal, videos=args.load_videos, sample=args.load_sample))
            figures[f"{part}_s"] = round(time.perf_counter() - t0, 1)
    finally:
        figures["seconds"] = round(time.perf_counter() - started, 1)
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(figures, sort_keys=True))
    return figures


if __name__ == "__main__":
    if sys.argv[1:2] == ["--inject-enospc"]:
        enospc_child(sys.argv[2:])
    else:
        main()
