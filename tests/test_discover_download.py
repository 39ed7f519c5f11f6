"""discover + download through yt-dlp against the local demo server (real extractor, real HTTP)."""
from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import imageio_ffmpeg
import pytest

from collect import layout
from collect.clients.youtube import RateLimiter, YouTubeClient, is_transient, sanitize_info
from collect.config import DiscoverConfig, load_config
from collect.demo.server import DemoServer
from naviclues.fsutil import read_json
from collect.records import Video
from collect.stages.base import VideoContext
from collect.stages.discover import discover, expand_sources
from collect.stages.download import CorruptMediaError, DownloadStage, probe_media

HOSTILE_TITLE = "../../etc/passwd\x00 ñ 🎉" * 20
TOKEN = "ChAlLeNgE0001"


def _mp4(path: Path, seconds: float = 2.0) -> None:
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error",
                    "-f", "lavfi", "-i", f"testsrc=size=160x120:rate=10:duration={seconds}",
                    "-f", "lavfi", "-i", f"sine=frequency=300:duration={seconds}",
                    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest",
                    str(path)], check=True)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    media = root / "media"
    media.mkdir()
    _mp4(media / "good.mp4")
    (media / "good.en.vtt").write_text("WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nthis is Peru\n")
    (media / "hostile.mp4").write_bytes((media / "good.mp4").read_bytes())
    good = (media / "good.mp4").read_bytes()
    (media / "broken.mp4").write_bytes(good[: len(good) // 2])  # truncated: the moov atom is gone
    link = f"Play along: https://www.geoguessr.com/challenge/{TOKEN}"
    videos = [
        {"id": "good", "title": "GeoGuessr play along #12", "description": link + "\nsecond https://geoguessr.com/challenge/Zz99Yy88",
         "upload_date": "20240301", "duration": 2, "channel": "Demo Plays"},
        {"id": "vlog", "title": "GeoGuessr behind the scenes", "description": "no link here", "upload_date": "20240302",
         "duration": 2, "channel": "Demo Plays"},
        {"id": "hostile", "title": HOSTILE_TITLE, "description": link, "upload_date": "20240303", "duration": 2,
         "channel": "Demo Plays"},
        {"id": "old", "title": "GeoGuessr play along #1", "description": link, "upload_date": "20190101",
         "duration": 2, "channel": "Demo Plays"},
        {"id": "broken", "title": "GeoGuessr play along #13", "description": link, "upload_date": "20240304",
         "duration": 2, "channel": "Demo Plays"},
    ]
    (root / "videos.json").write_text(json.dumps(videos))
    return root


def _ctx(tmp_path: Path, video: Video, **download_cfg) -> VideoContext:
    cfg = load_config(overrides={"download": {"retries": 2, "backoff_s": 0.05, "requests_per_s": 50, **download_cfg}},
                      env={})
    return VideoContext(video=video, out_dir=tmp_path / "out", config=cfg)


def _fast_client() -> YouTubeClient:
    return YouTubeClient({}, retries=1, backoff_s=0.01, requests_per_s=100)


def test_discover_feed_keeps_linked_videos_and_records_skips(corpus):
    with DemoServer(corpus) as server:
        result = discover([server.feed_url], DiscoverConfig(), {}, client=_fast_client())
        requests_made = list(server.request_log)
        base = server.url
    kept = {v.id: v for v in result.videos}
    assert set(kept) == {"good", "hostile", "old", "broken"}
    assert dict(result.skipped)["vlog"].startswith("no challenge link")
    assert result.errors == []
    good = kept["good"]
    assert good.challenge_tokens == [TOKEN, "Zz99Yy88"]
    assert good.upload_date == "20240301" and good.duration_s == 2.0 and good.channel == "Demo Plays"
    assert good.url == f"{base}/watch/good"
    # kept as data (the feed cannot carry NUL, XML forbids it); paths never use it
    assert kept["hostile"].title == HOSTILE_TITLE.replace("\x00", "")
    assert requests_made == ["/feed.xml"]  # the feed carries descriptions: no per-video request


def test_discover_filters_limit_sources_file_and_errors(corpus, tmp_path):
    with DemoServer(corpus) as server:
        by_title = discover([server.feed_url], DiscoverConfig(title_regex=r"play along #1\d"), {}, client=_fast_client())
        by_date = discover([server.feed_url], DiscoverConfig(date_after="20240101", date_before="20240302"), {},
                           client=_fast_client())
        limited = discover([server.feed_url], DiscoverConfig(limit=1), {}, client=_fast_client())
        sources = tmp_path / "sources.txt"
        sources.write_text(f"# my channels\n\n{server.url}/watch/nonexistent\n{server.watch_url('good')}  # one video\n")
        mixed = discover([str(sources), "not a url or file"], DiscoverConfig(), {}, client=_fast_client())
        good_url = server.watch_url("good")
    assert [v.id for v in by_title.videos] == ["good", "broken"]
    assert dict(by_title.skipped)["old"] == "title does not match 'play along #1\\\\d'"
    assert [v.id for v in by_date.videos] == ["good"]
    assert dict(by_date.skipped)["old"] == "uploaded 20190101, before date_after 20240101"
    assert dict(by_date.skipped)["broken"] == "uploaded 20240304, after date_before 20240302"
    assert [v.id for v in limited.videos] == ["good"]
    # a failing source is an error record; the others continue
    assert [v.challenge_tokens for v in mixed.videos] == [[TOKEN, "Zz99Yy88"]]
    assert mixed.videos[0].url == good_url
    assert len(mixed.errors) == 2
    assert "nonexistent" in mixed.errors[1].message and "404" in mixed.errors[1].message
    assert mixed.errors[0].type == "InvalidSource"


def test_expand_sources(tmp_path):
    path = tmp_path / "list.txt"
    path.write_text("https://a/x#frag\n  # comment\nhttps://b/y   # trailing\n\n")
    urls, errors = expand_sources([str(path), "https://c/z"])
    assert urls == ["https://a/x#frag", "https://b/y", "https://c/z"] and errors == []
    with pytest.raises(ValueError, match="YYYYMMDD"):
        discover([], DiscoverConfig(date_after="2024-01-01"), {})


def test_download_writes_media_captions_and_clean_info(corpus, tmp_path):
    cookie_file = tmp_path / "cookies.txt"
    cookie_file.write_text("# Netscape HTTP Cookie File\n")
    with DemoServer(corpus) as server:
        ctx = _ctx(tmp_path, Video(id="good", url=server.watch_url("good"), title="x"),
                   ytdlp_options={"cookiefile": str(cookie_file), "sleep_interval_requests": 0})
        outcome = DownloadStage()(ctx)
    assert outcome.status == "done", outcome.error
    media = read_json(ctx.path(layout.MEDIA_JSON))
    assert media["video"] == "media/video.mp4" and media["audio"] == "media/video.mp4"
    assert media["captions"] == {"manual": "media/video.en.vtt", "auto": None}
    assert ctx.path(media["captions"]["manual"]).read_text().startswith("WEBVTT")
    assert media["duration_s"] == pytest.approx(2.0, abs=0.2)
    info_text = ctx.path(layout.INFO_JSON).read_text()
    info = json.loads(info_text)
    assert info["id"] and "description" in info
    assert "http_headers" not in info_text and "cookies.txt" not in info_text
    assert "cookiefile" not in json.dumps(DownloadStage().config_slice(ctx))
    assert not list(ctx.video_dir.rglob("*.part"))


def test_hostile_title_stays_inside_the_output_folder(corpus, tmp_path):
    with DemoServer(corpus) as server:
        videos = discover([server.feed_url], DiscoverConfig(), {}, client=_fast_client()).videos
        hostile = next(v for v in videos if "passwd" in v.title)
        hostile.id = "../../" + hostile.id + "\x00🎉"  # even a hostile id only names a safe folder
        hostile.url = server.watch_url("hostile")
        ctx = _ctx(tmp_path, hostile)
        outcome = DownloadStage()(ctx)
    assert outcome.status == "done", outcome.error
    out = (tmp_path / "out").resolve()
    files = [p.resolve() for p in (tmp_path).rglob("*") if p.is_file()]
    assert files and all(out in p.parents for p in files)
    assert {p.name for p in ctx.path("media").iterdir()} == {"video.mp4"}


def test_truncated_mp4_is_reported(corpus, tmp_path):
    with pytest.raises(CorruptMediaError, match="broken.mp4"):
        probe_media(corpus / "media" / "broken.mp4")
    assert probe_media(corpus / "media" / "good.mp4").has_audio
    with DemoServer(corpus) as server:
        ctx = _ctx(tmp_path, Video(id="broken", url=server.watch_url("broken")))
        outcome = DownloadStage()(ctx)
    assert outcome.status == "failed" and outcome.error.type == "CorruptMedia"
    assert "video.mp4" in outcome.error.message and "broken" in outcome.error.message
    assert not ctx.path(layout.MEDIA_JSON).exists()


def test_download_retries_transient_errors_but_not_permanent_ones(corpus, tmp_path):
    faults = {"good": {"status": 503, "times": 1}, "vlog": 404}
    with DemoServer(corpus, faults=faults) as server:
        recovered = DownloadStage()(_ctx(tmp_path / "a", Video(id="good", url=server.watch_url("good"))))
        gone = DownloadStage()(_ctx(tmp_path / "b", Video(id="vlog", url=server.watch_url("vlog"))))
        log = list(server.request_log)
    assert recovered.status == "done", recovered.error
    assert log.count("/watch/good") == 2  # one 503, one success
    assert gone.status == "failed" and "404" in gone.error.message and "vlog" in gone.error.message
    assert log.count("/watch/vlog") == 1  # permanent: no retry


def test_rate_limit_is_shared_across_processes(tmp_path):
    import os
    import sys

    state = tmp_path / "rate.state"
    go = time.time() + 2.0  # both processes start acquiring at the same moment
    code = ("import time; from collect.clients.youtube import global_rate_limiter as g; l = g(20.0); "
            f"time.sleep(max(0.0, {go} - time.time())); "
            "[(l.acquire(), print(time.time(), flush=True)) for _ in range(4)]")
    env = {**os.environ, "COLLECT_RATE_STATE": str(state)}
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    stamps = sorted(float(line) for p in procs for line in p.communicate(timeout=60)[0].split())
    assert len(stamps) == 8
    # 20/s across both processes: 8 starts span ≥ 7 × 50 ms (unshared limits would finish in ~150 ms);
    # the span, unlike single gaps, is robust to print jitter on a loaded machine
    assert stamps[-1] - stamps[0] >= 0.30, stamps


def test_rate_limiter_and_error_classes():
    limiter = RateLimiter(20.0)
    start = time.monotonic()
    for _ in range(5):
        limiter.acquire()
    assert time.monotonic() - start >= 0.18  # 5 requests at 20/s: 4 intervals of 50 ms
    from yt_dlp.utils import DownloadError, ExtractorError

    assert is_transient(DownloadError("ERROR: Unable to download webpage: HTTP Error 503: Service Unavailable"))
    assert not is_transient(DownloadError("ERROR: [youtube] abc: Private video. Sign in if you've been granted access"))
    assert not is_transient(ExtractorError("Video unavailable", expected=True))


def test_sanitize_info_drops_secrets():
    info = {"id": "x", "title": "t", "http_headers": {"Cookie": "a=b"}, "cookies": "SID=1",
            "formats": [{"url": "https://h/v?sig=abc&x=1", "http_headers": {}, "format_id": "18"}],
            "author": "someone", "_private": 1}
    clean = sanitize_info(info)
    text = json.dumps(clean)
    assert "SID=1" not in text and "Cookie" not in text and "abc" not in text and "_private" not in text
    assert clean["author"] == "someone" and clean["formats"][0]["format_id"] == "18"


def test_truncated_faststart_mp4_is_reported(tmp_path):
    # moov atom up front (as YouTube serves it): the header parses, the packets run out
    path = tmp_path / "fast.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error", "-f", "lavfi",
                    "-i", "testsrc=size=160x120:rate=10:duration=6", "-f", "lavfi", "-i", "sine=duration=6",
                    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest",
                    "-movflags", "+faststart", str(path)], check=True)
    assert probe_media(path).duration_s == pytest.approx(6.0, abs=0.2)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(CorruptMediaError, match="fast.mp4 is truncated or corrupt: "):
        probe_media(path)


@pytest.fixture(scope="module")
def two_language_corpus(tmp_path_factory, corpus) -> Path:
    root = tmp_path_factory.mktemp("two_languages")
    (root / "media").mkdir()
    (root / "media" / "dubbed.mp4").write_bytes((corpus / "media" / "good.mp4").read_bytes())
    (root / "media" / "dubbed.en.vtt").write_text("WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nthis is Peru\n")
    (root / "media" / "dubbed.de.vtt").write_text("WEBVTT\n\n00:00:00.000 --> 00:00:01.000\ndas ist Peru\n")
    (root / "videos.json").write_text(json.dumps([{"id": "dubbed", "title": "GeoGuessr play along", "duration": 2,
                                                   "description": f"https://www.geoguessr.com/challenge/{TOKEN}"}]))
    return root


def test_user_subtitle_languages_and_format_are_honoured(two_language_corpus, tmp_path):
    with DemoServer(two_language_corpus) as server:
        video = Video(id="dubbed", url=server.watch_url("dubbed"))
        default = DownloadStage()(_ctx(tmp_path / "a", video))
        german = _ctx(tmp_path / "b", video, ytdlp_options={"subtitleslangs": ["de"]})
        chosen = DownloadStage()(german)
        impossible = DownloadStage()(_ctx(tmp_path / "c", video, ytdlp_options={"format": "bv*[height>=5000]"}))
    assert default.status == "done" and default.outputs["captions"] == ["manual"]
    assert read_json(tmp_path / "a" / "out" / "videos" / "dubbed" / layout.MEDIA_JSON)["caption_languages"] == \
        {"manual": "en"}
    assert chosen.status == "done", chosen.error
    media = read_json(german.path(layout.MEDIA_JSON))
    assert media["caption_languages"] == {"manual": "de"} and media["captions"]["manual"] == "media/video.de.vtt"
    assert not german.path("media", "video.en.vtt").exists()
    # the user's format selector is the one yt-dlp applies (nothing is that tall), not max_height's
    assert impossible.status == "failed" and "requested format is not available" in impossible.error.message.lower()


def test_options_the_stage_owns_are_refused():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=r"ytdlp_options.outtmpl cannot be set: files are named media/video"):
        load_config(overrides={"download": {"ytdlp_options": {"outtmpl": "%(title)s.%(ext)s"}}}, env={})
    with pytest.raises(ValidationError, match=r"ytdlp_options.writeinfojson cannot be set"):
        load_config(overrides={"download": {"ytdlp_options": {"writeinfojson": True}}}, env={})
    with pytest.raises(ValidationError, match=r"ytdlp_options.subtitleslangs is 5"):
        load_config(overrides={"download": {"ytdlp_options": {"subtitleslangs": 5}}}, env={})
    cfg = load_config(overrides={"download": {"ytdlp_options": {"subtitleslangs": "en, de"}}}, env={})
    assert cfg.download.ytdlp_options["subtitleslangs"] == ["en", "de"]  # the CLI's comma form


class _TimedDemoServer(DemoServer):
    """The demo server, noting when each request arrived."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.arrivals: list[tuple[float, str]] = []

    def log(self, path: str) -> None:
        super().log(path)
        self.arrivals.append((time.time(), path))


def test_rate_limit_holds_per_http_request(corpus, tmp_path):
    with _TimedDemoServer(corpus) as server:
        ctx = _ctx(tmp_path, Video(id="good", url=server.watch_url("good")), requests_per_s=2)
        outcome = DownloadStage()(ctx)
        arrivals = sorted(server.arrivals)
    assert outcome.status == "done", outcome.error
    paths = [p for _, p in arrivals]
    assert "/watch/good" in paths and "/media/good.mp4" in paths and "/media/good.en.vtt" in paths
    gaps = [b - a for (a, _), (b, _) in zip(arrivals, arrivals[1:])]
    # one yt-dlp call, several HTTP requests: each waits its 500 ms slot (half a slot of slack for a
    # loaded machine; without a per-request limit they arrive milliseconds apart)
    assert gaps and min(gaps) >= 0.25, list(zip(paths, gaps))
    assert arrivals[-1][0] - arrivals[0][0] >= 0.5 * len(gaps) - 0.15


def test_rate_limit_is_shared_by_workers_that_share_only_the_output_folder(corpus, tmp_path):
    """Ray tasks on an existing cluster inherit nothing from the driver's environment: the budget
    must come from the output folder they all write to."""
    import os
    import sys

    out = tmp_path / "out"
    code = ("import sys; from pathlib import Path; from collect.config import load_config; "
            "from collect.records import Video; from collect.stages.base import VideoContext; "
            "from collect.stages.download import DownloadStage; "
            "cfg = load_config(overrides={'download': {'requests_per_s': 2, 'retries': 0}}, env={}); "
            "print('ready', flush=True); sys.stdin.readline(); "
            "o = DownloadStage()(VideoContext(Video(id=sys.argv[2], url=sys.argv[1]), Path(sys.argv[3]), cfg)); "
            "print(o.status, o.error, flush=True)")
    env = {k: v for k, v in os.environ.items() if k != "COLLECT_RATE_STATE"}  # nothing shared by inheritance
    with _TimedDemoServer(corpus) as server:
        procs = [subprocess.Popen([sys.executable, "-c", code, server.watch_url("good"), name, str(out)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env=env) for name in ("worker-a", "worker-b")]
        for p in procs:  # both imported and configured …
            assert p.stdout.readline().strip() == "ready"
        for p in procs:  # … then both start at once
            p.stdin.write("go\n")
            p.stdin.flush()
        results = [p.communicate(timeout=120) for p in procs]
        arrivals = sorted(t for t, _ in server.arrivals)
    assert all(r[0].startswith("done") for r in results), results
    assert len(arrivals) >= 6
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    # 2 requests/s across both workers: one 500 ms slot per request of either worker (separate budgets
    # would let the two workers' requests arrive in pairs, a few ms apart)
    assert min(gaps) >= 0.25, gaps
    assert arrivals[-1] - arrivals[0] >= 0.5 * len(gaps) - 0.15
