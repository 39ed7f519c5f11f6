"""One bad video never stops a run; secrets never leak; Ray gives the local executor's results."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from rich.console import Console

from collect.cli import dataset_step
from collect.config import load_config
from collect.demo.generate import generate_corpus
from collect.demo.server import DemoServer
from collect.video import ffmpeg_exe
from collect.runner import EXIT_ITEM_FAILURES, run_collect
from collect.store import RunStore
from conftest import collect_cmd

TINY = dict(rounds_per_video=1, round_seconds=14.0, result_seconds=5.0, intro_seconds=3.0)
HOSTILE_TITLE = "../../etc/passwd\x00 ñandú 🎉 " * 20


def _videos(corpus: Path) -> list[dict]:
    return json.loads((corpus / "videos.json").read_text("utf-8"))


def _rewrite_videos(corpus: Path, videos: list[dict]) -> None:
    (corpus / "videos.json").write_text(json.dumps(videos), "utf-8")


@pytest.fixture(scope="module")
def bad_corpus(tmp_path_factory):
    corpus = tmp_path_factory.mktemp("bad") / "corpus"
    truth = generate_corpus(corpus, n_videos=10, seed=3, **TINY)
    ids = [v["id"] for v in truth["videos"]]
    token = {v["id"]: v["challenge_token"] for v in truth["videos"]}
    roles = dict(zip(["good", "corrupt", "nocaptions", "api401", "api404", "api429", "api500", "malformed",
                      "hostile", "nolink"], ids))
    media = corpus / "media"
    mp4 = media / f"{roles['corrupt']}.mp4"
    (corpus / "good-copy.mp4").write_bytes(mp4.read_bytes())
    mp4.write_bytes(mp4.read_bytes()[: mp4.stat().st_size // 3])  # truncated download
    # no audio, no captions and (by default) no ASR model
    (media / f"{roles['nocaptions']}.en.vtt").unlink()
    silent = media / f"{roles['nocaptions']}.mp4"
    muted = media / "muted.mp4"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-i", str(silent), "-an", "-c:v", "copy", str(muted)], check=True)
    muted.replace(silent)
    videos = _videos(corpus)
    for v in videos:
        if v["id"] == roles["hostile"]:
            v["title"] = HOSTILE_TITLE
        if v["id"] == roles["nolink"]:
            v["description"] = "no challenge link in this one"
    _rewrite_videos(corpus, videos)
    faults = {token[roles["api401"]]: 401, token[roles["api404"]]: 404,
              token[roles["api429"]]: {"status": 429, "times": 2, "retry_after": 0},
              token[roles["api500"]]: {"status": 500, "times": None}, token[roles["malformed"]]: "malformed"}
    return corpus, roles, faults, token


def test_bad_inputs_are_item_errors_and_the_rest_completes(bad_corpus, tmp_path):
    corpus, roles, faults, token = bad_corpus
    out = tmp_path / "out"
    cfg = load_config(overrides=["run.workers=2", "discover.require_challenge_link=false",
                                 "challenge.retries=3", "challenge.backoff_s=0.01"])
    with DemoServer(corpus, faults=faults) as server:
        cfg = cfg.model_copy(update={"challenge": cfg.challenge.model_copy(update={"api_base": server.url})})
        code = run_collect(out, cfg, sources=[server.feed_url], dataset_step=dataset_step,
                           console=Console(file=open(os.devnull, "w")))
        throttled_hits = server.requests_matching("/api/v3/challenges/" + token[roles["api429"]])
        port = int(server.url.rsplit(":", 1)[1])
    assert code == EXIT_ITEM_FAILURES
    with RunStore(out) as store:
        status = {(r.video_id, r.stage): r for r in store.rows()}

    def failed(role: str, stage: str, *needles: str) -> None:
        row = status[(roles[role], stage)]
        assert row.status == "failed", (role, stage, row)
        text = f"{row.error_type}: {row.error_message}"
        for needle in needles:
            assert needle.lower() in text.lower(), (role, text)

    for role in ("good", "api429", "hostile"):
        for stage in ("download", "transcript", "challenge", "segment", "frames"):
            assert status[(roles[role], stage)].status == "done", (role, stage, status[(roles[role], stage)])
    assert len(throttled_hits) >= 3  # two 429s, then the answer
    failed("corrupt", "download", "truncated or corrupt", "the next run downloads it again")
    corrupt_media = out / "videos" / roles["corrupt"] / "media"
    assert not (corrupt_media / "video.mp4").exists() and (corrupt_media / "video.mp4.corrupt").exists()
    failed("nocaptions", "transcript", "no captions")
    failed("api401", "challenge", "401")
    failed("api404", "challenge", "not found")
    failed("api500", "challenge", "500")
    failed("malformed", "challenge", "json")
    failed("nolink", "challenge", "no geoguessr.com/challenge link")
    # segment/frames of the caption-less video still ran: only its transcript is missing
    assert status[(roles["nocaptions"], "segment")].status == "done"
    # the hostile title never chose a path: everything stays inside the output folder
    for path in out.rglob("*"):
        assert out.resolve() in path.resolve().parents
        assert len(path.name) <= 255
    assert (out / "hub" / "README.md").exists()

    # the server now has the whole file: the next run downloads it (the corrupt copy is never reused)
    (corpus / "good-copy.mp4").replace(corpus / "media" / f"{roles['corrupt']}.mp4")
    with DemoServer(corpus, faults=faults, port=port) as server:  # the same address the videos were listed at
        run_collect(out, cfg, sources=[server.feed_url], console=Console(file=open(os.devnull, "w")))
    with RunStore(out) as store:
        assert store.get(roles["corrupt"], "download").status == "done"
        assert store.get(roles["corrupt"], "segment").status == "done"


def _cli(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(collect_cmd() + args, capture_output=True, text=True, timeout=300)


def test_deleted_or_damaged_artifacts_are_rebuilt_not_reported_cached(tmp_path):
    out = tmp_path / "out"
    small = ["run", "--demo", "--out", str(out), "--set", "demo.videos=1", "--set", "demo.rounds=2"]
    assert _cli(small).returncode == 0
    video = next((out / "videos").iterdir())
    rounds = (video / "rounds.json").read_bytes()
    frames = json.loads((video / "frames" / "index.json").read_text())

    (video / "rounds.json").unlink()  # a stage's own output deleted by hand
    (video / frames[0]["path"]).unlink()  # one frame of the frames stage's output
    proc = _cli(small)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (video / "rounds.json").read_bytes() == rounds and (video / frames[0]["path"]).is_file()

    media = video / "media" / "video.mp4"
    good = media.read_bytes()
    media.write_bytes(good[: len(good) // 2])  # damaged on disk: a forced download fetches it again
    proc = _cli([*small, "--force", "download"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert media.read_bytes() == good
    with RunStore(out) as store:
        assert {r.stage: r.status for r in store.rows()}["download"] == "done"

    # a transport option (how to fetch, not what) reruns the stage but keeps the media file
    kept = media.stat().st_mtime_ns
    assert _cli([*small, "--set", "download.ytdlp_options.sleep_interval=0"]).returncode == 0
    assert media.stat().st_mtime_ns == kept
    # another max_height is another file: fetched again, and media.json records the new settings
    before = json.loads((video / "media.json").read_text())["downloaded_with"]
    assert _cli([*small, "--set", "download.max_height=360"]).returncode == 0
    assert media.stat().st_mtime_ns != kept and media.read_bytes() == good
    assert json.loads((video / "media.json").read_text())["downloaded_with"] != before


@pytest.mark.parametrize("executor", ["ray"])
def test_ray_executor_matches_local(tmp_path, executor):
    pytest.importorskip("ray")
    corpus = tmp_path / "corpus"
    generate_corpus(corpus, n_videos=2, seed=5, **TINY)
    outputs = {}
    with DemoServer(corpus) as server:
        for name in ("local", executor):
            cfg = load_config(overrides=[f"run.executor={name}", "run.workers=2"])
            cfg = cfg.model_copy(update={"challenge": cfg.challenge.model_copy(update={"api_base": server.url})})
            out = tmp_path / name
            code = run_collect(out, cfg, sources=[server.feed_url], console=Console(file=open(os.devnull, "w")))
            assert code == 0
            outputs[name] = {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted((out / "videos").rglob("*"))
                             if p.is_file() and p.name != "info.json"}
    assert outputs["local"].keys() == outputs[executor].keys()
    assert outputs["local"] == outputs[executor]


def test_one_bad_url_in_a_source_keeps_the_others(tmp_path):
    corpus = tmp_path / "corpus"
    generate_corpus(corpus, n_videos=1, seed=11, **TINY)
    out = tmp_path / "out"
    with DemoServer(corpus) as server:
        urls = tmp_path / "urls.txt"
        urls.write_text(f"# a list with one dead link\n{server.feed_url}\nhttp://127.0.0.1:9/gone\n")
        cfg = load_config(overrides=["download.retries=1", "download.backoff_s=0.01"])
        cfg = cfg.model_copy(update={"challenge": cfg.challenge.model_copy(update={"api_base": server.url})})
        code = run_collect(out, cfg, sources=[str(urls)], console=Console(file=open(os.devnull, "w")))
    assert code == EXIT_ITEM_FAILURES
    with RunStore(out) as store:
        rows = store.rows()
        videos = store.videos()
    assert len(videos) == 1
    assert {(r.stage, r.status) for r in rows if r.video_id == videos[0].id} >= {("frames", "done"), ("challenge", "done")}
    failed_items = [r for r in rows if r.stage == "discover" and r.video_id.startswith("item:")]
    assert len(failed_items) == 1 and "9/gone" in failed_items[0].video_id and failed_items[0].error_message
    status = subprocess.run(collect_cmd() + ["status", "--out", str(out)], capture_output=True, text=True)
    assert "discover" in status.stdout and "top error causes" in status.stdout


def test_secrets_never_reach_logs_store_or_artifacts(tmp_path):
    cookie, key = "ncfa-S3CRET-cookie-value-123", "AIzaS3CRET-maps-key-456"
    ytdlp_password = "yt-S3CRET-password-789"
    corpus = tmp_path / "corpus"
    truth = generate_corpus(corpus, n_videos=2, seed=7, **TINY)
    bad_token = truth["videos"][1]["challenge_token"]
    out = tmp_path / "out"
    with DemoServer(corpus, require_cookie=cookie, streetview_key=key,
                    faults={bad_token: {"status": 500, "times": None}}) as server:
        env = {**os.environ, "GEOGUESSR_NCFA": cookie, "GOOGLE_MAPS_API_KEY": key}
        proc = subprocess.run(
            collect_cmd() + ["run", server.feed_url, "--out", str(out), "--set", f"challenge.api_base={server.url}",
                             "--set", f"streetview.base_url={server.streetview_url}", "--set", "challenge.retries=1",
                             "--set", f"download.ytdlp_options.videopassword={ytdlp_password}",
                             "--set", "challenge.backoff_s=0.01"],
            capture_output=True, text=True, env=env, timeout=300)
        config_proc = subprocess.run(collect_cmd() + ["config", "--set", f"download.ytdlp_options.password={ytdlp_password}"],
                                     capture_output=True, text=True, env=env)
    assert proc.returncode == EXIT_ITEM_FAILURES, proc.stderr[-3000:]  # the 500 video failed
    with RunStore(out) as store:
        rows = {(r.video_id, r.stage): r.status for r in store.rows()}
    good = truth["videos"][0]["id"]
    assert rows[(good, "challenge")] == "done" and rows[(good, "streetview")] == "done"  # secrets were used
    assert json.loads(config_proc.stdout)["download"]["ytdlp_options"]["password"] == "**********"
    for text in (proc.stdout, proc.stderr, config_proc.stdout, config_proc.stderr):
        assert cookie not in text and key not in text and ytdlp_password not in text
    for path in out.rglob("*"):
        if path.is_file():
            blob = path.read_bytes()
            for secret in (cookie, key, ytdlp_password):
                assert secret.encode() not in blob, (path, secret)


def test_an_unreadable_artifact_fails_its_stage_not_the_run(tmp_path):
    out = tmp_path / "out"
    args = ["run", "--demo", "--out", str(out), "--set", "demo.videos=2", "--set", "demo.rounds=2",
            "--set", "run.workers=1"]
    assert _cli(args).returncode == 0
    first, second = sorted((out / "videos").iterdir())
    media = json.loads((first / "media.json").read_text())
    media["audio"] = "../../../outside.m4a"  # a path escaping the video folder
    (first / "media.json").write_text(json.dumps(media))
    proc = _cli([*args, "--force", "transcript"])  # one worker: inline, no process pool to absorb a crash
    assert proc.returncode == EXIT_ITEM_FAILURES, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    with RunStore(out) as store:
        bad = store.get(first.name, "transcript")
        assert bad.status == "failed" and "cannot read this stage's inputs" in bad.error_message
        assert store.get(second.name, "transcript").status == "done"


def test_an_edited_list_of_urls_is_discovered_again(tmp_path):
    corpus = tmp_path / "corpus"
    truth = generate_corpus(corpus, n_videos=2, seed=5, **TINY)
    first, second = [v["id"] for v in truth["videos"]]
    out, urls = tmp_path / "out", tmp_path / "urls.txt"
    quiet = Console(file=open(os.devnull, "w"))
    with DemoServer(corpus) as server:
        cfg = load_config()
        cfg = cfg.model_copy(update={"challenge": cfg.challenge.model_copy(update={"api_base": server.url})})
        urls.write_text(server.watch_url(first) + "\n")
        run_collect(out, cfg, sources=[str(urls)], only="discover", console=quiet)
        with RunStore(out) as store:
            assert len(store.videos()) == 1
        urls.write_text(server.watch_url(first) + "\n" + server.watch_url(second) + "\n")
        run_collect(out, cfg, sources=[str(urls)], only="discover", console=quiet)
        with RunStore(out) as store:
            assert len(store.videos()) == 2  # the added URL was listed, not a cached answer reused


def test_other_demo_settings_on_an_existing_demo_folder_are_refused(tmp_path):
    out = tmp_path / "out"
    base = ["run", "--demo", "--out", str(out), "--set", "demo.videos=1", "--set", "demo.rounds=2"]
    assert _cli([*base, "--only", "discover"]).returncode == 0
    proc = _cli([*base, "--set", "demo.seed=7", "--only", "discover"])
    said = " ".join(proc.stderr.split())
    assert proc.returncode == 2 and "was generated with n_videos=1, rounds_per_video=2, seed=0" in said
    assert "Traceback" not in proc.stderr


def test_a_download_cut_off_by_a_kill_resumes_from_its_part_file(tmp_path):
    corpus = tmp_path / "corpus"
    truth = generate_corpus(corpus, n_videos=1, seed=2, **TINY)
    video_id = truth["videos"][0]["id"]
    whole = (corpus / "media" / f"{video_id}.mp4").read_bytes()
    out = tmp_path / "out"
    media = out / "videos" / video_id / "media"
    media.mkdir(parents=True)
    (media / "video.mp4.part").write_bytes(whole[: len(whole) // 2])  # what a killed yt-dlp leaves behind
    with DemoServer(corpus) as server:
        cfg = load_config()
        cfg = cfg.model_copy(update={"challenge": cfg.challenge.model_copy(update={"api_base": server.url})})
        run_collect(out, cfg, sources=[server.feed_url], console=Console(file=open(os.devnull, "w")))
        ranges = [rng for name, rng in server.media_ranges if name.endswith(".mp4")]
    assert (media / "video.mp4").read_bytes() == whole and not (media / "video.mp4.part").exists()
    assert f"bytes={len(whole) // 2}-" in ranges  # only the missing half was fetched
