"""The demo HTTP server speaks what yt-dlp, the GeoGuessr client and the Street View stage expect."""
from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import imageio_ffmpeg
import pytest
import requests
import yt_dlp
from PIL import Image

from collect.demo.server import DemoServer, FaultSpec

TOKEN = "AbCdEf123456"


def make_corpus(root: Path) -> Path:
    (root / "media").mkdir(parents=True)
    (root / "api").mkdir()
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error",
                    "-f", "lavfi", "-i", "testsrc=size=160x120:rate=10:duration=2",
                    "-f", "lavfi", "-i", "sine=frequency=440:duration=2",
                    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest",
                    str(root / "media" / "v1.mp4")], check=True)
    (root / "media" / "v1.en.vtt").write_text("WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nhello world\n")
    videos = [{"id": "v1", "title": "Play along <1> & more", "description":
               f"Play: https://www.geoguessr.com/challenge/{TOKEN}", "upload_date": "20240105", "duration": 2,
               "channel": "Demo"}]
    (root / "videos.json").write_text(json.dumps(videos))
    (root / "api" / f"challenge_{TOKEN}.json").write_text(json.dumps({"challenge": {"token": TOKEN, "roundCount": 5}}))
    (root / "api" / f"rounds_{TOKEN}.json").write_text(json.dumps({"items": []}))
    return root


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("corpus"))


def test_feed_flattens_in_ytdlp_with_description_and_date(corpus):
    with DemoServer(corpus) as server, yt_dlp.YoutubeDL({"extract_flat": "in_playlist", "quiet": True}) as ydl:
        info = ydl.extract_info(server.feed_url, download=False)
    entries = list(info["entries"])
    assert info["_type"] == "playlist" and info["title"] == "Demo"
    assert len(entries) == 1
    entry = entries[0]
    assert entry["title"] == "Play along <1> & more"  # XML-escaped in the feed, unescaped by yt-dlp
    assert TOKEN in entry["description"]
    assert entry["url"].split("#")[0].endswith("/watch/v1")
    assert entry["timestamp"] == 1704456000  # 2024-01-05 12:00 UTC from pubDate
    assert entry["duration"] == 2


def test_watch_page_gives_ytdlp_video_and_subtitles(corpus):
    with DemoServer(corpus) as server, yt_dlp.YoutubeDL({"quiet": True, "skip_download": True}) as ydl:
        info = ydl.extract_info(server.watch_url("v1"), download=False)
    assert TOKEN in info["description"]
    assert info["ext"] == "mp4"
    assert info["subtitles"]["en"][0]["url"].endswith("/media/v1.en.vtt")


def test_media_content_types_and_ranges(corpus):
    size = (corpus / "media" / "v1.mp4").stat().st_size
    with DemoServer(corpus) as server:
        full = requests.get(f"{server.url}/media/v1.mp4", timeout=5)
        part = requests.get(f"{server.url}/media/v1.mp4", headers={"Range": "bytes=10-19"}, timeout=5)
        tail = requests.get(f"{server.url}/media/v1.mp4", headers={"Range": "bytes=-5"}, timeout=5)
        bad = requests.get(f"{server.url}/media/v1.mp4", headers={"Range": f"bytes={size + 5}-"}, timeout=5)
        vtt = requests.get(f"{server.url}/media/v1.en.vtt", timeout=5)
        escape = requests.get(f"{server.url}/media/..%2fvideos.json", timeout=5)
    assert full.status_code == 200 and full.headers["Content-Type"] == "video/mp4" and len(full.content) == size
    assert full.headers["Accept-Ranges"] == "bytes"
    assert part.status_code == 206 and part.content == full.content[10:20]
    assert part.headers["Content-Range"] == f"bytes 10-19/{size}"
    assert tail.status_code == 206 and tail.content == full.content[-5:]
    assert bad.status_code == 416
    assert vtt.headers["Content-Type"].startswith("text/vtt") and vtt.text.startswith("WEBVTT")
    assert escape.status_code == 404


def test_geoguessr_endpoints_faults_and_cookie(corpus):
    faults = {TOKEN: {"status": 429, "times": 2, "retry_after": 3, "endpoint": "challenges"}}
    with DemoServer(corpus, faults=faults, require_cookie="sekrit") as server:
        api = f"{server.url}/api/v3/challenges/{TOKEN}"
        assert requests.get(api, timeout=5).status_code == 401  # no cookie
        assert requests.get(api, cookies={"_ncfa": "wrong"}, timeout=5).status_code == 401
        first = requests.get(api, cookies={"_ncfa": "sekrit"}, timeout=5)
        second = requests.get(api, cookies={"_ncfa": "sekrit"}, timeout=5)
        third = requests.get(api, cookies={"_ncfa": "sekrit"}, timeout=5)
        rounds = requests.get(f"{server.url}/api/v3/results/highscores/{TOKEN}?friends=false&limit=1&minRounds=5",
                              cookies={"_ncfa": "sekrit"}, timeout=5)
        missing = requests.get(f"{server.url}/api/v3/challenges/Nope12345", cookies={"_ncfa": "sekrit"}, timeout=5)
        log = list(server.request_log)
    assert [first.status_code, second.status_code, third.status_code] == [429, 429, 200]
    assert first.headers["Retry-After"] == "3"
    assert third.json()["challenge"]["token"] == TOKEN
    assert rounds.status_code == 200 and rounds.json() == {"items": []}
    assert missing.status_code == 404
    assert log.count(f"/api/v3/challenges/{TOKEN}") == 5
    assert not any("sekrit" in entry for entry in log)


def test_malformed_and_always_500(corpus):
    with DemoServer(corpus, faults={TOKEN: "malformed", "Other123": {"status": 500, "times": None}}) as server:
        bad = requests.get(f"{server.url}/api/v3/challenges/{TOKEN}", timeout=5)
        errors = [requests.get(f"{server.url}/api/v3/challenges/Other123", timeout=5).status_code for _ in range(3)]
    assert bad.status_code == 200
    with pytest.raises(ValueError):
        bad.json()
    assert errors == [500, 500, 500]


def test_streetview_endpoint_and_redacted_log(corpus):
    with DemoServer(corpus, streetview_key="KEY-123") as server:
        ok = requests.get(server.streetview_url, params={"size": "64x64", "location": "1,2", "heading": "90",
                                                         "key": "KEY-123"}, timeout=5)
        denied = requests.get(server.streetview_url, params={"location": "1,2", "key": "nope"}, timeout=5)
        log = list(server.request_log)
    assert ok.headers["Content-Type"] == "image/jpeg"
    image = Image.open(io.BytesIO(ok.content))
    assert image.size == (64, 64)
    assert denied.status_code == 403
    assert all("KEY-123" not in entry and "nope" not in entry for entry in log)
    assert "key=REDACTED" in log[0]


def test_fault_spec_parsing():
    assert FaultSpec.parse(404).status == 404 and FaultSpec.parse(404).times is None
    assert FaultSpec.parse("429").retry_after == 0
    assert FaultSpec.parse({"status": 500, "times": 1}).times == 1
    with pytest.raises(ValueError, match="fault spec"):
        FaultSpec.parse({"status": "teapot"})
