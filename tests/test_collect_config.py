"""Configuration validation: bounds, `--set` typing, discover filters — all fail as configuration errors (exit 2)."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from collect.config import CollectConfig, DiscoverConfig, load_config, parse_override
from collect.stages.discover import discover
from conftest import collect_cmd


def run_cli(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    # wide console: rich must not wrap a setting's name across lines
    env = {**os.environ, "COLUMNS": "250", "GEOGUESSR_NCFA": "", "GOOGLE_MAPS_API_KEY": ""}
    return subprocess.run(collect_cmd() + args, capture_output=True, text=True, env=env, timeout=60, cwd=cwd)


# ---- bounds -----------------------------------------------------------------------------------
INVALID = [
    "segment.sample_every=0", "segment.sample_every=-5", "segment.sample_every=.nan", "segment.sample_every=.inf",
    "segment.refine_step=0", "segment.ocr_max_side=-1",
    "run.workers=-3", "run.workers=0",
    "download.max_height=0", "download.retries=-1", "download.backoff_s=-1", "download.requests_per_s=-2",
    "frames.jpeg_quality=500", "frames.jpeg_quality=0", "frames.every_s=-1", "frames.dedupe_hamming=-2",
    "frames.dedupe_hamming=65", "frames.timestamps=[1, -2]",
    "challenge.retries=-1", "challenge.timeout_s=0", "challenge.backoff_s=-0.5",
    "streetview.size=0", "streetview.fov=0", "streetview.fov=121", "streetview.headings=[]", "streetview.headings=[0, 400]",
    "discover.limit=0", "discover.limit=-1", "demo.videos=0", "demo.rounds=0",
]


@pytest.mark.parametrize("item", INVALID)
def test_out_of_bounds_values_are_rejected_naming_the_setting(item):
    setting = item.split("=", 1)[0]
    with pytest.raises(ValidationError) as info:
        load_config(overrides=[item], env={})
    assert setting in str(info.value)


def test_boundary_values_that_mean_something_are_accepted():
    cfg = load_config(overrides=["frames.every_s=0", "download.requests_per_s=0", "download.retries=0",
                                 "challenge.retries=0", "segment.ocr_max_side=0", "frames.jpeg_quality=100",
                                 "frames.jpeg_quality=1", "frames.dedupe_hamming=-1", "run.workers=1",
                                 "segment.sample_every=0.5", "streetview.fov=120", "discover.limit=1"], env={})
    assert cfg.frames.every_s == 0 and cfg.download.requests_per_s == 0 and cfg.frames.jpeg_quality == 1
    assert CollectConfig().segment.sample_every == 6.0  # the defaults themselves are valid


@pytest.mark.parametrize("args, setting", [
    (["--set", "segment.sample_every=0"], "segment.sample_every"),
    (["--set", "run.workers=-3"], "run.workers"),
    (["--set", "frames.jpeg_quality=500"], "frames.jpeg_quality"),
])
def test_collect_config_exits_2_on_bounds(args, setting):
    proc = run_cli(["config", *args])
    assert proc.returncode == 2, proc.stderr
    assert "configuration error" in proc.stderr and setting in proc.stderr
    assert proc.stdout == ""


def test_collect_run_bounds_fail_before_any_work(tmp_path):
    out = tmp_path / "out"
    proc = run_cli(["run", "--demo", "--out", str(out), "--sample-every", "0", "--workers", "-3"])
    assert proc.returncode == 2, proc.stderr
    assert "configuration error" in proc.stderr and "segment.sample_every" in proc.stderr
    assert "run.workers" in proc.stderr
    assert not out.exists()  # no run store, no demo corpus


# ---- --set typing -----------------------------------------------------------------------------
def test_set_keeps_the_text_of_credentials_and_string_settings():
    cfg = load_config(overrides=["download.ytdlp_options.videopassword=0123", "download.ytdlp_options.username=on",
                                 "download.ytdlp_options.password=true", "download.ytdlp_options.cookiefile=007.txt",
                                 "discover.date_after=20240101", "discover.date_before=20241231",
                                 "challenge.ncfa_cookie=0123", "transcript.device=0", "transcript.whisper_model=1",
                                 "run.ray_address=10:30"], env={})
    assert cfg.download.ytdlp_options == {"videopassword": "0123", "username": "on", "password": "true",
                                          "cookiefile": "007.txt"}
    # a credential option that is a list stays one (yt-dlp wants a sequence for cookiesfrombrowser)
    browsers = load_config(overrides=["download.ytdlp_options.cookiesfrombrowser=[firefox]"], env={})
    assert browsers.download.ytdlp_options == {"cookiesfrombrowser": ["firefox"]}
    assert cfg.discover.date_after == "20240101" and cfg.discover.date_before == "20241231"
    assert cfg.challenge.ncfa_cookie.get_secret_value() == "0123"
    assert cfg.transcript.device == "0" and cfg.transcript.whisper_model == "1"
    assert cfg.run.ray_address == "10:30"  # never YAML 1.1 base 60 (630)


def test_set_keeps_real_types_where_they_are_declared():
    cfg = load_config(overrides=["download.ytdlp_options.geo_bypass=false", "download.ytdlp_options.noplaylist=true",
                                 "download.ytdlp_options.sleep_interval=5", "download.ytdlp_options.playlist_items=007",
                                 "download.ytdlp_options.force_keyframes_at_cuts=true",
                                 "download.max_height=0480", "discover.require_challenge_link=off",
                                 "frames.timestamps=[1, 2.5]", "streetview.headings=[0, 180]", "segment.sample_every=2",
                                 "discover.title_regex=", "transcript.language=null", "discover.limit="], env={})
    assert cfg.download.ytdlp_options == {"geo_bypass": False, "noplaylist": True, "sleep_interval": 5,
                                          "playlist_items": "007", "force_keyframes_at_cuts": True}
    assert cfg.download.max_height == 480  # decimal, never octal
    assert cfg.discover.require_challenge_link is False
    assert cfg.frames.timestamps == [1.0, 2.5] and cfg.streetview.headings == [0, 180]
    assert cfg.discover.title_regex is None and cfg.transcript.language is None and cfg.discover.limit is None
    assert parse_override("download.ytdlp_options.x=2024-01-01") == {"download": {"ytdlp_options": {"x": "2024-01-01"}}}
    with pytest.raises(ValueError, match="expected section.key=value"):
        parse_override("download.max_height")


def test_collect_config_prints_string_settings_as_typed():
    proc = run_cli(["config", "--set", "discover.date_after=20240101", "--set", "transcript.whisper_model=0123",
                    "--set", "download.ytdlp_options.username=on"])
    assert proc.returncode == 0, proc.stderr
    cfg = json.loads(proc.stdout)
    assert cfg["discover"]["date_after"] == "20240101"
    assert cfg["transcript"]["whisper_model"] == "0123"
    assert cfg["download"]["ytdlp_options"]["username"] == "**********"  # still masked


def test_config_files_accept_unquoted_numbers_for_string_settings(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('[discover]\ndate_after = 20240101\n[challenge]\nncfa_cookie = 12345\n'
                    '[download.ytdlp_options]\npassword = 4321\n')
    cfg = load_config(toml, env={})
    assert cfg.discover.date_after == "20240101" and cfg.challenge.ncfa_cookie.get_secret_value() == "12345"
    assert cfg.download.ytdlp_options == {"password": "4321"}
    yml = tmp_path / "c.yaml"
    yml.write_text("discover:\n  date_before: 20240301\ndownload:\n  max_height: 0480\n"
                   "  ytdlp_options:\n    videopassword: 0123\n    noplaylist: yes\n")
    cfg = load_config(yml, env={})
    assert cfg.discover.date_before == "20240301" and cfg.download.max_height == 480
    assert cfg.download.ytdlp_options == {"videopassword": "0123", "noplaylist": True}
    bad = tmp_path / "bad.yaml"
    bad.write_text("download:\n  ytdlp_options:\n    username: on\n")  # YAML 1.1 turns it into True
    with pytest.raises(ValidationError, match="quote the value"):
        load_config(bad, env={})
    proc = run_cli(["config", "--config", str(yml)])
    assert proc.returncode == 0 and json.loads(proc.stdout)["discover"]["date_before"] == "20240301"


# ---- discover filters -------------------------------------------------------------------------
@pytest.mark.parametrize("item, words", [
    ("discover.title_regex=(", "invalid regular expression"),
    ("discover.date_after=2024-01-01", "YYYYMMDD"),
    ("discover.date_before=20240231", "not a calendar date"),
    ("discover.date_after=2024010", "YYYYMMDD"),
])
def test_bad_discover_filters_are_configuration_errors(item, words):
    with pytest.raises(ValidationError, match=words):
        load_config(overrides=[item], env={})


def test_dates_in_the_wrong_order_are_rejected():
    with pytest.raises(ValidationError, match="later than date_before"):
        DiscoverConfig(date_after="20240301", date_before="20240101")


@pytest.mark.parametrize("item, setting", [
    ("discover.title_regex=(", "discover.title_regex"),
    ("discover.date_after=2024-01-01", "discover.date_after"),
])
def test_collect_run_bad_discover_filter_exits_2_before_any_work(tmp_path, item, setting):
    out = tmp_path / "out"
    proc = run_cli(["run", "https://www.youtube.com/@nobody", "--out", str(out), "--set", item])
    assert proc.returncode == 2, proc.stderr
    assert "configuration error" in proc.stderr and setting in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()


def test_discover_still_guards_unvalidated_configs():
    with pytest.raises(ValueError, match="YYYYMMDD"):
        discover([], DiscoverConfig.model_construct(date_after="2024-01-01"), {})
    with pytest.raises(ValueError, match="invalid regular expression"):
        discover([], DiscoverConfig.model_construct(title_regex="("), {})


def test_an_overridden_ytdlp_option_is_a_configuration_error():
    proc = run_cli(["config", "--set", "download.ytdlp_options.outtmpl=clip.mp4"])
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "configuration error" in proc.stderr and "ytdlp_options.outtmpl cannot be set" in proc.stderr
