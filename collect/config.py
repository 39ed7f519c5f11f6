"""Typed configuration for `collect run`: defaults < config file (TOML/YAML) < env < CLI.

Secrets are `SecretStr`: they print as '**********' everywhere (`collect config`, logs,
the run store) and are only unwrapped at the point of use.
"""
from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DiscoverConfig(_Section):
    title_regex: str | None = None
    date_after: str | None = Field(None, description="YYYYMMDD, inclusive")
    date_before: str | None = Field(None, description="YYYYMMDD, inclusive")
    limit: int | None = None
    require_challenge_link: bool = True


class DownloadConfig(_Section):
    max_height: int = 720
    retries: int = 3
    backoff_s: float = 2.0
    requests_per_s: float = 2.0  # global rate limit across one process
    # passed straight to yt_dlp.YoutubeDL(params): cookiefile, sleep_interval, proxy, ratelimit…
    ytdlp_options: dict[str, Any] = Field(default_factory=dict)


class TranscriptConfig(_Section):
    backend: Literal["auto", "captions", "whisper", "faster-whisper"] = "auto"
    whisper_model: str | None = Field(None, description="model name (e.g. 'small') or checkpoint path; None = no ASR")
    language: str | None = "en"
    device: str = "cpu"


class ChallengeConfig(_Section):
    api_base: str = "https://www.geoguessr.com"
    ncfa_cookie: SecretStr | None = Field(None, description="GeoGuessr `_ncfa` session cookie; env GEOGUESSR_NCFA")
    offline_dir: Path | None = Field(None, description="folder of <token>.json challenge payloads used instead of the API")
    retries: int = 4
    backoff_s: float = 1.0
    timeout_s: float = 20.0


class SegmentConfig(_Section):
    sample_every: float = 6.0
    refine_step: float = 1.0  # denser sampling near a detected change
    ocr_max_side: int = 960


class FramesConfig(_Section):
    every_s: float = 3.0
    timestamps: list[float] = Field(default_factory=list, description="extra timestamps (s from round start)")
    at_speech: bool = Field(True, description="also take a frame at the start of every transcript segment")
    dedupe_hamming: int = 6
    crop_ui: bool = True
    jpeg_quality: int = 90


class StreetViewConfig(_Section):
    api_key: SecretStr | None = Field(None, description="Street View Static API key; env GOOGLE_MAPS_API_KEY")
    base_url: str = "https://maps.googleapis.com/maps/api/streetview"
    size: int = 640
    fov: int = 90
    headings: list[int] = Field(default_factory=lambda: [0, 90, 180, 270])


class RunConfig(_Section):
    workers: int = 2
    executor: Literal["local", "ray"] = "local"
    ray_address: str | None = None


class DemoConfig(_Section):
    videos: int = 2
    rounds: int = 5
    seed: int = 0


class CollectConfig(_Section):
    discover: DiscoverConfig = Field(default_factory=DiscoverConfig)
    download: DownloadConfig = Field(default_factory=DownloadConfig)
    transcript: TranscriptConfig = Field(default_factory=TranscriptConfig)
    challenge: ChallengeConfig = Field(default_factory=ChallengeConfig)
    segment: SegmentConfig = Field(default_factory=SegmentConfig)
    frames: FramesConfig = Field(default_factory=FramesConfig)
    streetview: StreetViewConfig = Field(default_factory=StreetViewConfig)
    run: RunConfig = Field(default_factory=RunConfig)
    demo: DemoConfig = Field(default_factory=DemoConfig)
    # annotate's own settings; validated by annotate's model in the command layer
    annotate: dict[str, Any] = Field(default_factory=dict)

    def masked(self) -> dict:
        """JSON-able dict with every secret shown as '**********' (yt-dlp credentials included)."""
        from collect.secrets import mask_options

        data = self.model_dump(mode="json")
        data["download"]["ytdlp_options"] = mask_options(data["download"]["ytdlp_options"])
        return data


ENV_SECRETS = {
    ("challenge", "ncfa_cookie"): "GEOGUESSR_NCFA",
    ("streetview", "api_key"): "GOOGLE_MAPS_API_KEY",
}


def _deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def read_config_file(path: Path | str) -> dict:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"config file {path} does not exist")
    text = path.read_text("utf-8")
    if path.suffix == ".toml":
        return tomllib.loads(text)
    if path.suffix in (".yaml", ".yml"):
        return yaml.safe_load(text) or {}
    raise ValueError(f"config file {path}: use .toml, .yaml or .yml")


def parse_override(item: str) -> dict:
    """'download.max_height=480' → {'download': {'max_height': 480}} (value parsed as YAML)."""
    if "=" not in item:
        raise ValueError(f"override {item!r}: expected section.key=value")
    dotted, raw = item.split("=", 1)
    value = yaml.safe_load(raw) if raw else None
    node: dict = {}
    keys = dotted.strip().split(".")
    cursor = node
    for key in keys[:-1]:
        cursor = cursor.setdefault(key, {})
    cursor[keys[-1]] = value
    return node


def load_config(path: Path | str | None = None, overrides: list[str] | dict | None = None,
                env: dict[str, str] | None = None) -> CollectConfig:
    data: dict = {}
    if path:
        data = read_config_file(path)
    env = os.environ if env is None else env
    for (section, key), var in ENV_SECRETS.items():
        if env.get(var) and not data.get(section, {}).get(key):
            data = _deep_merge(data, {section: {key: env[var]}})
    if isinstance(overrides, dict):
        data = _deep_merge(data, overrides)
    else:
        for item in overrides or []:
            data = _deep_merge(data, parse_override(item))
    return CollectConfig.model_validate(data)
