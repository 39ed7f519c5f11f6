"""`collect run --demo` uses no credential from the environment and talks to no host but its own
127.0.0.1 server, even with real-looking credentials set and a config that names remote servers."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from collect.config import demo_config, load_config

SECRETS = {"GEOGUESSR_NCFA": "real-ncfa-cookie-1234", "GOOGLE_MAPS_API_KEY": "AIzaRealMapsKey5678",
           "HF_TOKEN": "hf_realtoken9012", "OPENAI_API_KEY": "sk-real-openai-3456"}
LOCAL = {"127.0.0.1", "localhost", "::1"}

# Inside one process that records every name looked up and every address connected to: the
# demo's stages that could reach out (discover and download through yt-dlp with the configured
# proxy, the GeoGuessr API with the env cookie, Street View with the env key) one by one, so the
# slow OCR stages are not needed to prove it.
DEMO_STAGES = """
import json, os, sys
log = open(sys.argv[1], "a")
def hook(event, args):
    if event == "socket.getaddrinfo":
        log.write(json.dumps(str(args[0])) + "\\n"); log.flush()
    elif event == "socket.connect" and isinstance(args[1], tuple):
        log.write(json.dumps(str(args[1][0])) + "\\n"); log.flush()
sys.addaudithook(hook)
from pathlib import Path
from rich.console import Console
from collect.config import load_config
from collect.runner import run_collect
cfg = load_config(sys.argv[3], ["demo.videos=1", "demo.rounds=1", "run.workers=1"])  # env credentials read as usual
console = Console(stderr=True, width=250)
for stage in ("discover", "download", "challenge", "streetview"):
    code = run_collect(Path(sys.argv[2]), cfg, sources=[], demo=True, only=stage, console=console)
    print(stage, code, flush=True)
"""

REMOTE_CONFIG = """
[download.ytdlp_options]
proxy = "http://someone:pw@proxy.example.org:3128"
sleep_interval_requests = 0

[annotate.reasoning]
backend = "openai"
model = "gpt-4o"
"""


def test_demo_run_ignores_real_credentials_and_calls_only_its_server(tmp_path):
    config = tmp_path / "remote.toml"
    config.write_text(REMOTE_CONFIG)
    script = tmp_path / "demo_stages.py"
    script.write_text(DEMO_STAGES)
    hosts_log = tmp_path / "hosts.jsonl"
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(script), str(hosts_log), str(out), str(config)],
                          capture_output=True, text=True, env={**os.environ, **SECRETS}, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.split() == ["discover", "0", "download", "0", "challenge", "0", "streetview", "0"], proc.stderr
    hosts = {json.loads(line) for line in hosts_log.read_text().splitlines()}
    assert hosts and hosts <= LOCAL, hosts  # no maps.googleapis.com, proxy.example.org, api.openai.com …
    assert "demo: download.ytdlp_options proxy ignored" in proc.stderr
    assert "demo: annotate.reasoning backend openai ignored" in proc.stderr
    used = json.loads((out / "config.json").read_text())
    assert used["challenge"]["ncfa_cookie"] is None and used["streetview"]["api_key"] is None
    assert "proxy" not in used["download"]["ytdlp_options"]
    assert used["annotate"]["reasoning"]["backend"] == "extractive"
    written = "\n".join(p.read_text("utf-8", errors="replace") for p in out.rglob("*")
                        if p.is_file() and p.suffix in (".json", ".jsonl", ".md", ".txt", ".csv", ".log", ".vtt"))
    assert "challenge.json" in {p.name for p in out.rglob("*.json")}  # the stages really ran
    for value in SECRETS.values():
        assert value not in written


def test_demo_config_falls_back_to_offline_settings(tmp_path):
    cfg = load_config(overrides={"transcript": {"whisper_model": "small"},
                                 "annotate": {"reasoning": {"backend": "transformers", "model": "Qwen/Qwen2-0.5B"}},
                                 "download": {"ytdlp_options": {"cookiefile": "/home/me/cookies.txt", "ratelimit": 5e6}}},
                      env={"GEOGUESSR_NCFA": "c", "GOOGLE_MAPS_API_KEY": "k"})
    demo, notes = demo_config(cfg, "http://127.0.0.1:47617")
    assert demo.challenge.api_base == "http://127.0.0.1:47617" and demo.challenge.ncfa_cookie is None
    assert demo.streetview.api_key is None and demo.transcript.whisper_model is None
    assert demo.annotate["reasoning"]["backend"] == "extractive"
    assert demo.download.ytdlp_options == {"ratelimit": 5e6}
    assert len(notes) == 3
    local_model = tmp_path / "model"
    local_model.mkdir()
    cfg = load_config(overrides={"annotate": {"reasoning": {"backend": "openai", "model": "m",
                                                            "base_url": "http://127.0.0.1:8000/v1"}},
                                 "transcript": {"whisper_model": str(local_model)}}, env={})
    demo, notes = demo_config(cfg, "http://127.0.0.1:1")
    assert notes == [] and demo.annotate["reasoning"]["backend"] == "openai"  # local servers and models stay
    assert demo.transcript.whisper_model == str(local_model)
    assert Path(demo.transcript.whisper_model).exists()


def test_demo_rerun_of_one_stage_after_the_server_moved_port(tmp_path):
    """The demo's video URLs name its server's port: when a rerun's server has to take another port
    (the old one is busy), `--only download` still refreshes the listing instead of fetching dead URLs."""
    import socket
    from urllib.parse import urlparse

    from rich.console import Console

    from collect.runner import run_collect
    from collect.store import RunStore

    out = tmp_path / "out"
    cfg = load_config(None, ["demo.videos=1", "demo.rounds=1", "run.workers=1"])
    quiet = Console(file=open(os.devnull, "w"))
    assert run_collect(out, cfg, sources=[], demo=True, only="discover", console=quiet) == 0
    with RunStore(out) as store:
        first_port = urlparse(store.videos()[0].url).port
    with socket.socket() as holder:  # the port the listing names is now someone else's
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", first_port))
        holder.listen()
        assert run_collect(out, cfg, sources=[], demo=True, only="download", console=quiet) == 0
    with RunStore(out) as store:
        video = store.videos()[0]
        assert urlparse(video.url).port != first_port
        assert {(r.stage, r.status) for r in store.rows() if r.video_id == video.id} >= {("download", "done")}
