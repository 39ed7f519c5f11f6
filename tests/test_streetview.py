"""Street View stage against the demo server's Street View Static-like endpoint."""
from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from PIL import Image

from collect import layout
from collect.config import load_config
from collect.demo.server import DemoServer, _heading_colour
from naviclues.fsutil import atomic_write_json, read_json
from collect.records import Challenge, ChallengeRound, Video, to_dict
from collect.stages.base import VideoContext
from collect.stages.streetview import NO_KEY_NOTE, StreetViewStage
from navig_fixtures import LocalServer

KEY = "AIzaSyFAKE-test-key-0123456789"


def _ctx(tmp_path: Path, base_url: str, key: str | None) -> VideoContext:
    section = {"base_url": base_url}
    if key:
        section["api_key"] = key
    cfg = load_config(overrides={"streetview": section}, env={})
    ctx = VideoContext(video=Video(id="v1", url="http://x"), out_dir=tmp_path / "out", config=cfg)
    challenge = Challenge(token="T0k3n", rounds=[
        ChallengeRound(round=1, lat=48.8584, lng=2.2945, pano_id="CAoSLEFGMVFpcE5f"),
        ChallengeRound(round=2, lat=-33.8568, lng=151.2153),
    ])
    atomic_write_json(ctx.path(layout.CHALLENGE_JSON), to_dict(challenge))
    return ctx


def _everything(root: Path) -> str:
    return "\n".join(p.read_bytes().decode("latin-1") for p in root.rglob("*") if p.is_file())


def test_skipped_without_key(tmp_path):
    outcome = StreetViewStage()(_ctx(tmp_path, "http://127.0.0.1:9/maps/api/streetview", None))
    assert outcome.status == "skipped" and outcome.note == NO_KEY_NOTE


def test_stitches_four_headings_per_round(tmp_path):
    with DemoServer(tmp_path, streetview_key=KEY) as server:
        ctx = _ctx(tmp_path, server.streetview_url, KEY)
        outcome = StreetViewStage()(ctx)
        log = list(server.request_log)
    assert outcome.status == "done", outcome.error
    assert outcome.outputs["panoramas"] == 2
    index = read_json(ctx.path(layout.STREETVIEW_INDEX))
    assert [e["path"] for e in index] == ["streetview/round_1.jpg", "streetview/round_2.jpg"]
    with Image.open(ctx.path("streetview/round_1.jpg")) as pano:
        assert pano.size == (2560, 640)
        for i, heading in enumerate((0, 90, 180, 270)):  # each quarter is the view for its heading
            pixel = pano.getpixel((i * 640 + 320, 320))
            assert all(abs(a - b) <= 6 for a, b in zip(pixel, _heading_colour(heading)))
    assert len(log) == 8
    assert "pano=CAoSLEFGMVFpcE5f" in log[0] and "location=-33.856800%2C151.215300" in log[4]
    assert all("key=REDACTED" in entry for entry in log)
    assert KEY not in _everything(ctx.out_dir)
    assert KEY not in json.dumps(StreetViewStage().config_slice(ctx))


def test_rejected_key_is_an_error_without_the_key(tmp_path):
    with DemoServer(tmp_path, streetview_key="the-real-key") as server:
        ctx = _ctx(tmp_path, server.streetview_url, KEY)
        outcome = StreetViewStage()(ctx)
    assert outcome.status == "failed"
    assert "HTTP 403" in outcome.error.message and "round 1" in outcome.error.message
    assert KEY not in outcome.error.message
    assert KEY not in _everything(ctx.out_dir)
    assert read_json(ctx.path(layout.STREETVIEW_INDEX))[0]["path"] is None


def _streetview_server(answer) -> LocalServer:
    """A Street View endpoint on 127.0.0.1 whose every GET is `answer(path) -> (status, body)`;
    a non-empty body is served as a JPEG unless the status is an error."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.owner.requests.append(self.path)
            status, body = answer(self.path)
            self.send_response(status)
            self.send_header("Content-Type", "image/jpeg" if status == 200 else "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    return LocalServer(Handler)


def test_key_echoed_by_a_server_is_redacted(tmp_path):
    # a misbehaving endpoint that echoes the request (with the key) in its error body
    with _streetview_server(lambda path: (400, f"bad request {path}".encode())) as server:
        ctx = _ctx(tmp_path, server.url + "/sv", KEY)
        outcome = StreetViewStage()(ctx)
    assert outcome.status == "failed" and "HTTP 400" in outcome.error.message
    assert "key=REDACTED" in outcome.error.message and KEY not in outcome.error.message
    assert KEY not in _everything(ctx.out_dir)


def test_debug_request_logs_do_not_show_the_key(tmp_path, caplog, monkeypatch):
    import logging

    for name in ("urllib3", "urllib3.connectionpool"):  # other libraries' logging configs may have muted them
        monkeypatch.setattr(logging.getLogger(name), "disabled", False)
        monkeypatch.setattr(logging.getLogger(name), "propagate", True)
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="urllib3")  # yt-dlp, once imported, turns urllib3 down to ERROR
    with DemoServer(tmp_path) as server:
        outcome = StreetViewStage()(_ctx(tmp_path, server.streetview_url, KEY))
    assert outcome.status == "done"
    assert any("streetview" in r.getMessage() for r in caplog.records)  # urllib3 did log the requests
    assert all(KEY not in r.getMessage() for r in caplog.records)


def test_rounds_that_failed_are_fetched_on_the_next_run_and_the_others_kept(tmp_path):
    import io

    outage = {"on": True}
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 120, 30)).save(buf, "JPEG")
    jpeg = buf.getvalue()

    def answer(path):  # round 2 (no pano id, so located by coordinates) hits a server outage
        return (503, b"") if outage["on"] and "location=" in path else (200, jpeg)

    with _streetview_server(answer) as server:
        ctx = _ctx(tmp_path, server.url + "/sv", KEY)
        stage = StreetViewStage()
        first = stage(ctx)
        assert first.status == "done" and first.outputs == {"index": layout.STREETVIEW_INDEX, "panoramas": 1,
                                                              "failed_rounds": 1, "retryable_rounds": 1}
        assert stage.missing_outputs(ctx, first.outputs) == ["1 round(s) without panorama"]  # not trusted as cached
        round_1 = ctx.path("streetview/round_1.jpg").read_bytes()
        outage["on"] = False
        before = len(server.requests)
        second = stage(ctx)
        refetched = server.requests[before:]
    assert second.outputs["panoramas"] == 2 and second.outputs["failed_rounds"] == 0
    assert stage.missing_outputs(ctx, second.outputs) == []
    assert refetched and all("location=" in p for p in refetched)  # only round 2 was fetched again
    assert ctx.path("streetview/round_1.jpg").read_bytes() == round_1


def test_a_round_without_imagery_is_not_asked_again_and_again(tmp_path):
    # the Static API's return_error_code answer where there is no Street View
    with _streetview_server(lambda path: (404, b"")) as server:
        ctx = _ctx(tmp_path, server.url + "/sv", KEY)
        outcome = StreetViewStage()(ctx)
    assert outcome.status == "failed" and "HTTP 404" in outcome.error.message
    partial = {"index": layout.STREETVIEW_INDEX, "panoramas": 1, "failed_rounds": 1, "retryable_rounds": 0}
    assert StreetViewStage().missing_outputs(ctx, partial) == []  # a permanent gap leaves the row cached
