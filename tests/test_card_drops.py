"""The dataset card's drop examples carry no local paths, server URLs or server response bodies."""
from __future__ import annotations

from annotate.build import build_dataset
from annotate.card import public_drop_example
from test_build import make_examples

LEAKY_DROPS = [
    {"id": "v9/1", "reasons": ["image missing: /home/alice/private-runs/out/videos/v9/frames/r1_0003.jpg"],
     "stage": "filter"},
    {"id": "v9/2", "reasons": ['reasoning failed: HTTP 500: {"error": "Traceback in /srv/llm/app.py, '
                               'prompt was: the answer is Brazil"}'], "stage": "reasoning"},
    {"id": "v9/3", "reasons": ["reasoning bad: malformed chat completion response: '<html>internal proxy "
                               "10.1.2.3 says no</html>'"], "stage": "reasoning"},
    {"id": "v8", "video_id": "v8", "reasons": ["collect unreachable: http://10.1.2.3:8000/v1/chat?key=k-123 refused"],
     "stage": "collect"},
]
LEAKS = ("/home/alice", "private-runs", "/srv/llm", "Traceback", "the answer is Brazil", "<html>", "10.1.2.3",
         "k-123")


def test_card_drop_examples_are_sanitized(tmp_path):
    examples = make_examples(tmp_path / "in", n_challenges=3, rounds=2)
    build_dataset(examples, LEAKY_DROPS, tmp_path / "out", test_challenges=1)
    card = (tmp_path / "out" / "hub" / "README.md").read_text()
    for leak in LEAKS:
        assert leak not in card, leak
    # the examples still say what went wrong
    assert "image missing: …/r1_0003.jpg" in card
    assert "reasoning failed: HTTP 500 (server's text withheld)" in card
    assert "collect unreachable: <url> refused" in card


def test_public_drop_example_keeps_plain_reasons():
    assert public_drop_example("points 3100 < 3400 (min_points)") == "points 3100 < 3400 (min_points)"
    assert public_drop_example("video failed: C:\\Users\\bob\\clips\\video.mp4 unreadable") == \
        "video failed: …/video.mp4 unreadable"
    assert len(public_drop_example("too few words: " + "x" * 500)) == 160


def test_a_connection_error_names_no_host_on_the_card():
    """A reasoning server that refused the connection: requests' own message names the host and port
    without a URL (HTTPConnectionPool(host='…', port=…)); the card keeps what happened, not where."""
    import socket

    import requests

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    try:
        requests.post(f"http://127.0.0.1:{port}/v1/chat/completions", json={}, timeout=5)
    except requests.ConnectionError as exc:
        reason = f"reasoning failed: {exc}"
    assert "host='127.0.0.1'" in reason  # the form this test is about
    shown = public_drop_example(reason)
    assert "127.0.0.1" not in shown and str(port) not in shown
    assert shown.startswith("reasoning failed: HTTPConnectionPool(host=<host>): Max retries exceeded")
