"""A local HTTP server that stands in for YouTube, GeoGuessr and Street View.

It serves a demo corpus (written by `collect.demo.generate`) so that `collect run` can be
exercised end to end offline, through the real clients (yt-dlp's generic extractor,
`GeoGuessrClient`, the Street View stage):

    /feed.xml                              RSS 2.0 channel feed; yt-dlp flattens it into a playlist
                                           whose entries carry title, description and pubDate
    /watch/<id>                            video page: og:title/og:description and an HTML5
                                           <video><source …mp4><track kind="captions" …vtt>
    /media/<file>                          the corpus media (Range requests supported)
    /api/v3/challenges/<token>             GeoGuessr challenge payload   (corpus api/challenge_<token>.json)
    /api/v3/results/highscores/<token>     GeoGuessr highscores payload  (corpus api/rounds_<token>.json)
    /maps/api/streetview?…                 Street View Static-like JPEG (colour encodes the heading)

Fault injection per challenge token (`faults={token: spec}`), spec being one of
  401 / 404 / 500 / 429                      that status on every request
  "malformed"                                a 200 with a body that is not JSON
  {"status": 429, "times": 2, "retry_after": 0}   the status N times, then the real answer
  {"status": 500, "times": None}                  always (times None)
  {..., "endpoint": "challenges" | "highscores"}  only on one endpoint (default both)
A key that is a video id applies the same spec to its `/watch/<id>` page (download retries).

`require_cookie` makes the GeoGuessr endpoints answer 401 unless the `_ncfa` cookie equals it.
`request_log` records every request path with secrets (`key=` query values) redacted, so tests
can assert retries, backoff and cache hits.

Manual use:  python -m collect.demo.server CORPUS_DIR [--port 8000] [--require-cookie VALUE]
"""
from __future__ import annotations

import argparse
import email.utils
import io
import json
import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit
from xml.sax.saxutils import escape

from naviclues.fsutil import inside

_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_CONTENT_TYPES = {
    ".mp4": "video/mp4",
    ".m4a": "audio/mp4",
    ".webm": "video/webm",
    ".vtt": "text/vtt; charset=utf-8",
    ".json": "application/json",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
}
_SECRET_PARAMS = {"key", "signature", "token", "access_token"}
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")  # not allowed in XML 1.0


def _xml_text(text: str) -> str:
    return escape(_XML_INVALID.sub("", text))


@dataclass
class FaultSpec:
    status: int | str  # HTTP status, or "malformed"
    times: int | None = None  # None = every request
    retry_after: float | None = None  # seconds, sent with 429
    endpoint: str | None = None  # "challenges" | "highscores" | "watch" | None (all)

    @classmethod
    def parse(cls, spec: Any) -> "FaultSpec":
        if isinstance(spec, FaultSpec):
            return spec
        if isinstance(spec, int) or (isinstance(spec, str) and spec.isdigit()):
            return cls(status=int(spec), retry_after=0 if int(spec) == 429 else None)
        if spec == "malformed":
            return cls(status="malformed")
        if isinstance(spec, dict):
            status = spec.get("status")
            status = int(status) if isinstance(status, int) or str(status).isdigit() else status
            if status != "malformed" and not isinstance(status, int):
                raise ValueError(f"fault spec {spec!r}: status must be an HTTP status or 'malformed'")
            endpoint = spec.get("endpoint")
            if endpoint not in (None, "challenges", "highscores", "watch"):
                raise ValueError(f"fault spec {spec!r}: endpoint must be 'challenges', 'highscores' or 'watch'")
            return cls(status=status, times=spec.get("times"), retry_after=spec.get("retry_after"), endpoint=endpoint)
        raise ValueError(f"fault spec {spec!r}: use a status code, 'malformed' or a dict")


def _redact(path: str) -> str:
    parts = urlsplit(path)
    if not parts.query:
        return parts.path
    query = [(k, "REDACTED" if k.lower() in _SECRET_PARAMS else v)
             for k, vs in parse_qs(parts.query, keep_blank_values=True).items() for v in vs]
    return f"{parts.path}?{urlencode(query)}"


def _rfc822(upload_date: str | None) -> str | None:
    if not upload_date:
        return None
    try:
        day = datetime.strptime(upload_date, "%Y%m%d").replace(hour=12, tzinfo=timezone.utc)
    except ValueError:
        return None
    return email.utils.format_datetime(day)


def _heading_colour(heading: float) -> tuple[int, int, int]:
    """A distinct, stable colour per heading so a stitched panorama can be checked by pixel."""
    h = int(heading) % 360
    return (h * 255 // 359, 255 - h * 255 // 359, 128)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return  # a client that hangs up early (yt-dlp probing a range) is not a server error
        super().handle_error(request, client_address)


class DemoServer:
    """Serve a demo corpus on 127.0.0.1 (port 0 = any free port). Use as a context manager."""

    def __init__(self, corpus_dir: Path | str, *, faults: dict[str, Any] | None = None,
                 require_cookie: str | None = None, streetview_key: str | None = None,
                 host: str = "127.0.0.1", port: int = 0):
        self.corpus_dir = Path(corpus_dir).resolve()
        self.faults = {token: FaultSpec.parse(spec) for token, spec in (faults or {}).items()}
        self.require_cookie = require_cookie
        self.streetview_key = streetview_key
        self._host, self._port = host, port
        self._lock = threading.Lock()
        self._fault_hits: dict[tuple[str, str], int] = {}
        self.request_log: list[str] = []
        self.media_ranges: list[tuple[str, str | None]] = []  # (file, Range header) per media request
        self._httpd: _QuietServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self) -> "DemoServer":
        handler = type("_BoundHandler", (_Handler,), {"server_state": self})
        self._httpd = _QuietServer((self._host, self._port), handler)
        # a short poll interval keeps shutdown (and so every test using the server) fast
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="demo-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "DemoServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("DemoServer is not running")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def feed_url(self) -> str:
        return f"{self.url}/feed.xml"

    @property
    def streetview_url(self) -> str:
        return f"{self.url}/maps/api/streetview"

    def watch_url(self, video_id: str) -> str:
        return f"{self.url}/watch/{video_id}"

    # ---- bookkeeping -----------------------------------------------------------------------
    def log(self, path: str) -> None:
        with self._lock:
            self.request_log.append(_redact(path))

    def requests_matching(self, prefix: str) -> list[str]:
        with self._lock:
            return [p for p in self.request_log if p.startswith(prefix)]

    def fault_for(self, token: str, endpoint: str) -> FaultSpec | None:
        spec = self.faults.get(token)
        if spec is None or (spec.endpoint and spec.endpoint != endpoint):
            return None
        with self._lock:
            hits = self._fault_hits.get((token, endpoint), 0)
            if spec.times is not None and hits >= spec.times:
                return None
            self._fault_hits[(token, endpoint)] = hits + 1
        return spec

    def videos(self) -> list[dict]:
        path = self.corpus_dir / "videos.json"
        return json.loads(path.read_text("utf-8")) if path.exists() else []

    def video(self, video_id: str) -> dict | None:
        return next((v for v in self.videos() if str(v.get("id")) == video_id), None)

    # ---- content ---------------------------------------------------------------------------
    def feed_xml(self) -> str:
        items = []
        for v in self.videos():
            vid = str(v["id"])
            fields = [f"<title>{_xml_text(v.get('title') or vid)}</title>",
                      f"<link>{_xml_text(self.watch_url(vid))}</link>",
                      f'<guid isPermaLink="false">{_xml_text(vid)}</guid>',
                      f"<description>{_xml_text(v.get('description') or '')}</description>"]
            if (pub := _rfc822(v.get("upload_date"))):
                fields.append(f"<pubDate>{pub}</pubDate>")
            if v.get("duration") is not None:
                fields.append(f"<itunes:duration>{int(float(v['duration']))}</itunes:duration>")
            items.append("<item>" + "".join(fields) + "</item>")
        channel = _xml_text(next((v.get("channel") for v in self.videos() if v.get("channel")), "Demo channel"))
        return ('<?xml version="1.0" encoding="UTF-8"?>\n'
                '<rss version="2.0" xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd"><channel>'
                f"<title>{channel}</title><link>{_xml_text(self.url)}/</link>"
                f"<description>GeoGuessr play-along demo channel</description>{''.join(items)}"
                "</channel></rss>\n")

    def watch_html(self, video: dict) -> str:
        vid = str(video["id"])
        title = escape(video.get("title") or vid, {'"': "&quot;"})
        desc = escape(video.get("description") or "", {'"': "&quot;"})
        media = self.corpus_dir / "media"
        track = ""
        for vtt in sorted(media.glob(f"{glob_escape(vid)}.*.vtt")):
            lang = vtt.name[len(vid) + 1:-len(".vtt")]
            track += f'<track kind="captions" srclang="{escape(lang)}" label="{escape(lang)}" src="/media/{escape(vtt.name)}">'
        return ("<!DOCTYPE html><html><head><meta charset=\"utf-8\">"
                f"<title>{title}</title>"
                f'<meta property="og:title" content="{title}">'
                f'<meta property="og:description" content="{desc}">'
                f'<meta name="description" content="{desc}">'
                f'<meta itemprop="uploadDate" content="{escape(video.get("upload_date") or "")}">'
                "</head><body>"
                f'<video controls><source src="/media/{escape(vid)}.mp4" type="video/mp4">{track}</video>'
                f"<p>{desc}</p></body></html>")


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


class _Handler(BaseHTTPRequestHandler):
    server_state: DemoServer  # set on the per-server subclass
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: Any) -> None:  # keep test output quiet, no secrets on stderr
        return

    # ---- helpers ---------------------------------------------------------------------------
    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json; charset=utf-8", headers)

    def _not_found(self, what: str) -> None:
        self._json(404, {"message": f"{what} not found"})

    def _file(self, path: Path) -> None:
        if not path.is_file():
            return self._not_found(path.name)
        size = path.stat().st_size
        ctype = _CONTENT_TYPES.get(path.suffix.lower(), "application/octet-stream")
        start, end, status = 0, size - 1, 200
        rng = self.headers.get("Range")
        with self.server_state._lock:
            self.server_state.media_ranges.append((path.name, rng))
        if rng:
            m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip())
            if not m or (not m.group(1) and not m.group(2)):
                return self._send(416, b"", "text/plain", {"Content-Range": f"bytes */{size}"})
            if m.group(1):
                start = int(m.group(1))
                end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
            else:  # suffix range: last N bytes
                start = max(size - int(m.group(2)), 0)
            if start >= size or start > end:
                return self._send(416, b"", "text/plain", {"Content-Range": f"bytes */{size}"})
            status = 206
        with open(path, "rb") as fh:
            fh.seek(start)
            body = fh.read(end - start + 1)
        headers = {"Accept-Ranges": "bytes"}
        if status == 206:
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        self._send(status, body, ctype, headers)

    def _cookie_ok(self) -> bool:
        wanted = self.server_state.require_cookie
        if wanted is None:
            return True
        try:
            jar = SimpleCookie(self.headers.get("Cookie") or "")
        except CookieError:
            return False
        return "_ncfa" in jar and jar["_ncfa"].value == wanted

    # ---- routes ----------------------------------------------------------------------------
    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        state = self.server_state
        state.log(self.path)
        parts = urlsplit(self.path)
        path = parts.path
        if path in ("/feed.xml", "/feed", "/channel"):
            return self._send(200, state.feed_xml().encode(), "application/rss+xml; charset=utf-8")
        if m := re.fullmatch(r"/watch/([^/]+)", path):
            video = state.video(m.group(1))
            fault = state.fault_for(m.group(1), "watch") if video is not None else None
            if fault is not None:  # faults keyed by a video id exercise the download retries
                return self._json(500 if fault.status == "malformed" else int(fault.status),
                                  {"message": f"injected {fault.status}"},
                                  {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else None)
            if video is None:
                return self._not_found(f"video {m.group(1)}")
            return self._send(200, state.watch_html(video).encode(), "text/html; charset=utf-8")
        if m := re.fullmatch(r"/media/([^/]+)", path):
            try:
                target = inside(state.corpus_dir / "media", m.group(1))
            except ValueError:
                return self._not_found("file")
            return self._file(target)
        if m := re.fullmatch(r"/api/v3/challenges/([^/]+)", path):
            return self._geoguessr(m.group(1), "challenges", "challenge")
        if m := re.fullmatch(r"/api/v3/results/highscores/([^/]+)", path):
            return self._geoguessr(m.group(1), "highscores", "rounds")
        if path == "/maps/api/streetview":
            return self._streetview(parse_qs(parts.query))
        return self._not_found(path)

    def _geoguessr(self, token: str, endpoint: str, prefix: str) -> None:
        state = self.server_state
        if not _TOKEN.match(token):
            return self._not_found(f"challenge {token}")
        if not self._cookie_ok():
            return self._json(401, {"message": "Unauthorized"})
        fault = state.fault_for(token, endpoint)
        if fault is not None:
            if fault.status == "malformed":
                return self._send(200, b'{"challenge": {"token": "' + token.encode() + b'", <truncated',
                                  "application/json; charset=utf-8")
            headers = {}
            if fault.status == 429:
                headers["Retry-After"] = str(fault.retry_after if fault.retry_after is not None else 0)
            return self._json(int(fault.status), {"message": f"injected {fault.status}"}, headers)
        path = state.corpus_dir / "api" / f"{prefix}_{token}.json"
        if not path.is_file():
            return self._not_found(f"challenge {token}")
        self._send(200, path.read_bytes(), "application/json; charset=utf-8")

    def _streetview(self, query: dict[str, list[str]]) -> None:
        from PIL import Image  # only this endpoint needs Pillow

        state = self.server_state
        key = (query.get("key") or [None])[0]
        if state.streetview_key is not None and key != state.streetview_key:
            return self._send(403, b"The provided API key is invalid.", "text/plain")
        if not (query.get("location") or query.get("pano")):
            return self._send(400, b"location or pano is required", "text/plain")
        size = (query.get("size") or ["640x640"])[0]
        m = re.fullmatch(r"(\d{1,4})x(\d{1,4})", size)
        if not m:
            return self._send(400, b"bad size", "text/plain")
        width, height = min(int(m.group(1)), 640), min(int(m.group(2)), 640)
        heading = float((query.get("heading") or ["0"])[0])
        buf = io.BytesIO()
        Image.new("RGB", (width, height), _heading_colour(heading)).save(buf, "JPEG", quality=95)
        self._send(200, buf.getvalue(), "image/jpeg")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a collect demo corpus over HTTP.")
    parser.add_argument("corpus_dir", type=Path)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--require-cookie", default=None, help="_ncfa value the GeoGuessr endpoints demand")
    args = parser.parse_args(argv)
    with DemoServer(args.corpus_dir, require_cookie=args.require_cookie, port=args.port) as server:
        print(f"serving {args.corpus_dir} at {server.url}  (feed: {server.feed_url})", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
