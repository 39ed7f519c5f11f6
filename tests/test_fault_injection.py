"""benchmarks/fault_injection.py in its reduced CI form, and the fixes the full run led to.

The full suite (20 kill trials, every bad input, hostile names, planted secrets) runs by the
benchmark's flags (README "Reliability"); CI runs the parts that fit in seconds.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from rich.console import Console

from collect.config import load_config
from collect.pipeline import VideoWorker
from collect.records import Video
from collect.runner import status_report
from collect.store import RunStore
from naviclues.ratelimit import SharedPace
from navig.testing import LocalServer

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "fault_injection.py"


def test_reduced_suite_load_and_politeness(tmp_path):
    """A 1,000-video store answers `collect status` and a rerun skips every stage of the timed videos;
    Nominatim is paced across processes; the GeoGuessr client backs off exponentially on 429."""
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--parts", "load,polite", "--load-videos", "1000", "--load-sample", "30",
         "--nominatim-processes", "2", "--nominatim-queries", "2", "--ytdlp-sleep", "0",
         "--workdir", str(tmp_path / "work")],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    assert figures["status_exit"] == 0 and figures["status_lists_all"]
    assert figures["skip_check_all_cached"]  # every stage of every timed video was recognised as done
    assert figures["nominatim_requests"] == 4 and figures["nominatim_min_gap_s"] >= 1.0, figures
    assert figures["backoff_429_exponential"], figures["backoff_429_waits_s"]
    journal = [json.loads(line) for line in (tmp_path / "work" / "fault_injection.jsonl").read_text().splitlines()]
    assert {r["part"] for r in journal} == {"load", "polite"}


def test_shared_pace_spaces_calls_of_separate_processes(tmp_path):
    """Two processes calling through one pace file arrive at least the interval apart."""
    arrivals: list[float] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            arrivals.append(time.monotonic())
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    child = ("import sys, urllib.request\nfrom naviclues.ratelimit import SharedPace\n"
             "pace = SharedPace(sys.argv[1], 0.5)\n"
             "for _ in range(3):\n    with pace.turn():\n        urllib.request.urlopen(sys.argv[2]).read()\n")
    with LocalServer(Handler) as server:
        procs = [subprocess.Popen([sys.executable, "-c", child, str(tmp_path / "pace"), server.url]) for _ in range(2)]
        assert [p.wait(timeout=120) for p in procs] == [0, 0]
    arrivals.sort()
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    assert len(arrivals) == 6 and min(gaps) >= 0.5, gaps


def test_shared_pace_in_threads_and_a_torn_file(tmp_path):
    path = tmp_path / "pace"
    path.write_text("not a time")  # a torn file does not stop the pace
    pace = SharedPace(path, 0.2)
    stamps: list[float] = []

    def call():
        with pace.turn():
            stamps.append(time.monotonic())

    threads = [threading.Thread(target=call) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stamps.sort()
    assert min(b - a for a, b in zip(stamps, stamps[1:])) >= 0.2
    assert float(path.read_text()) > 0


def test_a_stage_error_names_its_video(tmp_path):
    """A stage whose message only says the cause gets the video's id in front (the run store and
    `collect status` then say which item failed and why)."""
    out = tmp_path / "out"
    video = Video(id="vidNoLink01", url="http://127.0.0.1:9/watch/vidNoLink01", description="no link here")
    with RunStore(out) as store:
        store.upsert_videos([video])
    result = VideoWorker(out, load_config(), stages=["challenge"])(video)
    assert result.statuses == {"challenge": "failed"}
    with RunStore(out) as store:
        row = store.get(video.id, "challenge")
    assert row.error_type == "NoChallengeLink"
    assert row.error_message.startswith("vidNoLink01: ") and "challenge link" in row.error_message


def test_status_counts_from_the_store_and_groups_one_cause_across_videos(tmp_path):
    out = tmp_path / "out"
    videos = [Video(id=f"v{i}", url=f"u{i}", duration_s=1800.0) for i in range(3)]
    with RunStore(out) as store:
        store.upsert_videos(videos)
        for v in videos:
            store.mark_running(v.id, "download", "fp")
            store.mark_finished(v.id, "download", "done", fingerprint="fp")
            store.mark_running(v.id, "segment", "fp")
        for v in videos[:2]:
            store.mark_running(v.id, "challenge", "fp")
            store.mark_finished(v.id, "challenge", "failed", fingerprint="fp", error_type="HTTPError",
                                error_message=f"{v.id}: HTTP 500 server error")
        store.mark_finished(videos[2].id, "segment", "done", fingerprint="fp", outputs={"rounds": 4})
        store.mark_running("ghost", "download", "fp")  # a row of a video the store does not list
        store.mark_finished("ghost", "download", "done", fingerprint="fp")
    console = Console(record=True, width=200, file=open(os.devnull, "w"))
    status_report(out, console)
    text = console.export_text()
    lines = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]]
             for line in text.splitlines() if line.startswith("│")}
    assert lines["download"] == ["3", "0", "0", "0"]  # the ghost row is not counted
    assert lines["challenge"] == ["0", "2", "1", "0"]
    assert lines["segment"] == ["1", "0", "2", "0"]  # two still running count as pending
    assert "challenge: HTTPError: <video>: HTTP 500 server error" in text
    assert any(cells == ["challenge: HTTPError: <video>: HTTP 500 server error"] and key == "2"
               for key, cells in lines.items())
    assert "videos: 3" in text and "hours of video: 1.50" in text and "rounds: 4" in text


def test_collect_status_does_not_load_the_configuration(tmp_path):
    """`collect status` answers without importing pydantic models of the configuration or the stages."""
    out = tmp_path / "out"
    with RunStore(out) as store:
        store.upsert_videos([Video(id="v1", url="u1")])
    code = ("import sys\nfrom collect.cli import app\nsys.argv = ['collect', 'status', '--out', sys.argv[1]]\n"
            "try:\n    app()\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith(('collect.config', 'collect.stages.download', "
            "'yt_dlp'))))")
    proc = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"
    assert "videos: 1" in proc.stdout


def test_rounds_left_out_by_a_failing_reasoning_server_are_item_failures_retried_next_run(tmp_path):
    """A reasoning server answering 500 (or a cut-off body) leaves rounds out of the build: the build is
    recorded failed with the round and the cause (exit 3), not cached, and the next run asks again."""
    from collect.cli import dataset_step
    from collect.runner import DATASET_KEY
    from collect_folder import PLACES, PlayedRound, write_video
    from navig.testing import openai_server

    out = tmp_path / "out"
    write_video(out, "vidR1", "tokR1", PLACES[:2], [PlayedRound(p, k, screen_points=p.points)
                                                    for k, p in enumerate(PLACES[:2], start=1)])
    up = {"on": False}
    quiet = Console(file=open(os.devnull, "w"))
    with openai_server(lambda body: "Reasoning: yellow lines and the language point here." if up["on"] else 500) as server:
        cfg = load_config(overrides=["annotate.reasoning.backend=openai", "annotate.reasoning.model=m",
                                     f"annotate.reasoning.base_url={server.url}/v1", "annotate.reasoning.retries=1",
                                     "annotate.reasoning.backoff_s=0", "annotate.filter.min_words=20",
                                     "annotate.filter.min_points=0", "annotate.build.test_challenges=0"])
        with RunStore(out) as store:
            first = dataset_step(out, cfg, store, False, quiet)
            row = store.get(DATASET_KEY, "annotate")
        assert first["status"] == "failed" and first["rows"] == 0, first
        assert row.status == "failed" and row.error_type == "RoundsFailed"
        assert "2 round(s) left out" in row.error_message and "round vidR1/1" in row.error_message
        assert "500" in row.error_message
        assert (out / "hub" / "README.md").exists()  # the build itself was published
        asked = len(server.requests)
        up["on"] = True
        with RunStore(out) as store:
            second = dataset_step(out, cfg, store, False, quiet)  # same settings: not a cached answer
            assert store.get(DATASET_KEY, "annotate").status == "done"
    assert len(server.requests) > asked and second["status"] == "done" and second["rows"] == 2, second
