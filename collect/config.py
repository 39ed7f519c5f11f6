"""Typed configuration for `collect run`: defaults < config file (TOML/YAML) < env < CLI.

Secrets are `SecretStr`: they print as '**********' everywhere (`collect config`, logs,
the run store) and are only unwrapped at the point of use.
"""
from __future__ import annotations

import os
import re
import tomllib
import types
import typing
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator


class _Section(BaseModel):
    # numbers given to string settings become their text (`date_after = 20240101` in TOML/YAML,
    # a numeric cookie); NaN / infinity are never a valid number of seconds, pixels or steps
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True, allow_inf_nan=False)


def check_yyyymmdd(name: str, value: str | None) -> str | None:
    """`value` when it is a real calendar date written YYYYMMDD, else ValueError naming `name`."""
    if value is None:
        return None
    if not isinstance(value, str) or not re.fullmatch(r"\d{8}", value):
        raise ValueError(f"{name}={value!r}: expected YYYYMMDD (e.g. 20240131)")
    try:
        date(int(value[:4]), int(value[4:6]), int(value[6:]))
    except ValueError as exc:
        raise ValueError(f"{name}={value!r}: not a calendar date ({exc})") from None
    return value


def check_regex(name: str, value: str | None) -> str | None:
    """`value` when it compiles as a Python regular expression, else ValueError naming `name`."""
    if value is not None:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"{name}={value!r}: invalid regular expression ({exc})") from None
    return value


class DiscoverConfig(_Section):
    title_regex: str | None = Field(None, description="Python regular expression searched in the title")
    date_after: str | None = Field(None, description="YYYYMMDD, inclusive")
    date_before: str | None = Field(None, description="YYYYMMDD, inclusive")
    limit: int | None = Field(None, ge=1, description="at most this many videos; None = no limit")
    require_challenge_link: bool = True

    @field_validator("title_regex")
    @classmethod
    def _regex_compiles(cls, value: str | None) -> str | None:
        return check_regex("title_regex", value)

    @field_validator("date_after", "date_before")
    @classmethod
    def _is_yyyymmdd(cls, value: str | None, info) -> str | None:
        return check_yyyymmdd(info.field_name, value)

    @model_validator(mode="after")
    def _dates_ordered(self) -> "DiscoverConfig":
        if self.date_after and self.date_before and self.date_after > self.date_before:
            raise ValueError(f"date_after {self.date_after} is later than date_before {self.date_before}: "
                             "no video could match")
        return self


# yt-dlp options whose value is a credential or a file name: always the text the user typed
# (`videopassword=0123` must not become the int 83, `username=on` not True). Word-anchored
# `key`/`pass` so yt-dlp's boolean `geo_bypass` / `force_keyframes_at_cuts` keep their typing.
_RAW_OPTION_KEY = re.compile(r"passw|username|cookie|token|secret|credential|signature|auth|api_?key"
                             r"|(?:^|_)(?:key|pass|user)(?:_|$)", re.I)


def is_raw_option_key(key: str) -> bool:
    return bool(_RAW_OPTION_KEY.search(str(key)))


# yt-dlp options the download stage sets itself: the files must land at media/video.<ext> in the
# video's folder, one video per URL, with info.json written sanitised by the stage (yt-dlp's own
# would carry cookies and headers). A user value would be silently overridden, so it is refused.
PIPELINE_YTDLP_OPTIONS = {
    "outtmpl": "files are named media/video.<ext> inside each video's folder",
    "paths": "files go to the video's own folder under the run's output",
    "skip_download": "the download stage downloads",
    "simulate": "the download stage downloads",
    "extract_flat": "discover lists channels flat on its own; a download resolves one video",
    "noplaylist": "a video URL is downloaded as that one video",
    "writeinfojson": "info.json is written by the stage, without cookies or headers",
}
# the value the stage uses anyway: saying it is harmless
_AS_THE_PIPELINE_SETS = {"noplaylist": True, "writeinfojson": False, "skip_download": False, "simulate": False}
# yt-dlp options the stage has defaults for and a user value replaces (see collect.stages.download)
USER_YTDLP_CHOICES = ("format", "merge_output_format", "subtitleslangs")


class DownloadConfig(_Section):
    max_height: int = Field(720, ge=1, description="pixels; the best video at most this tall (unless "
                            "ytdlp_options.format chooses the format itself)")
    retries: int = Field(3, ge=0, description="retries after the first attempt")
    backoff_s: float = Field(2.0, ge=0)
    requests_per_s: float = Field(2.0, ge=0, description="global rate limit across one run; 0 = unlimited")
    # passed straight to yt_dlp.YoutubeDL(params): cookiefile, sleep_interval, proxy, ratelimit…; `format`,
    # `merge_output_format` and `subtitleslangs` replace the stage's own choice; PIPELINE_YTDLP_OPTIONS are refused
    ytdlp_options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("ytdlp_options")
    @classmethod
    def _no_pipeline_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        owned = [k for k, v in options.items() if k in PIPELINE_YTDLP_OPTIONS
                 and not (k in _AS_THE_PIPELINE_SETS and v is _AS_THE_PIPELINE_SETS[k])]
        if owned:
            raise ValueError("; ".join(f"ytdlp_options.{k} cannot be set: {PIPELINE_YTDLP_OPTIONS[k]}" for k in owned))
        out = dict(options)
        for key in ("format", "merge_output_format"):
            if key in out and (not isinstance(out[key], str) or not out[key].strip()):
                raise ValueError(f"ytdlp_options.{key} is {out[key]!r}: expected yt-dlp's text form (e.g. "
                                 f"{'bv*+ba/b' if key == 'format' else 'mkv'})")
        if "subtitleslangs" in out:
            langs = out["subtitleslangs"]
            if isinstance(langs, str):  # the CLI's comma-separated form
                langs = [part.strip() for part in langs.split(",") if part.strip()]
            if not isinstance(langs, list) or not langs or not all(isinstance(x, str) and x for x in langs):
                raise ValueError(f"ytdlp_options.subtitleslangs is {out['subtitleslangs']!r}: expected a list of "
                                 "language codes or regexes (e.g. [en, de])")
            out["subtitleslangs"] = langs
        return out

    @field_validator("ytdlp_options")
    @classmethod
    def _credentials_are_text(cls, options: dict[str, Any]) -> dict[str, Any]:
        # a YAML/TOML number under a credential key (`password: 12345`) is its text for yt-dlp;
        # a boolean there is YAML's reading of an unquoted yes/no/on/off: its text is lost
        out = dict(options)
        for key, value in options.items():
            if not is_raw_option_key(key):
                continue
            if isinstance(value, bool):
                raise ValueError(f"ytdlp_options.{key} is the boolean {value}: quote the value in the config file")
            if isinstance(value, (int, float)):
                out[key] = str(value)
        return out


class TranscriptConfig(_Section):
    backend: Literal["auto", "captions", "whisper", "faster-whisper"] = "auto"
    whisper_model: str | None = Field(None, description="model name (e.g. 'small') or checkpoint path; None = no ASR")
    language: str | None = "en"
    device: str = "cpu"


class ChallengeConfig(_Section):
    api_base: str = "https://www.geoguessr.com"
    ncfa_cookie: SecretStr | None = Field(None, description="GeoGuessr `_ncfa` session cookie; env GEOGUESSR_NCFA")
    offline_dir: Path | None = Field(None, description="folder of <token>.json challenge payloads used instead of the API")
    retries: int = Field(4, ge=0, description="retries after the first attempt")
    backoff_s: float = Field(1.0, ge=0)
    timeout_s: float = Field(20.0, gt=0)
    max_wait_s: float = Field(120.0, ge=0, description="longest Retry-After (429/5xx) honoured per retry")
    player: str | None = Field(None, description="GeoGuessr nick or user id of the video's player, whose guesses "
                               "(points, distance) are recorded; None = the video's channel name, else the "
                               "challenge's creator (compared without case or spaces)")
    page_size: int = Field(26, ge=1, le=100, description="games per highscores page")
    max_pages: int = Field(20, ge=1, description="highscores pages read while looking for the player's game")


class SegmentConfig(_Section):
    sample_every: float = Field(6.0, gt=0, description="seconds between OCR samples")
    refine_step: float = Field(0.25, gt=0, description="seconds; a detected change is located to within this")
    ocr_max_side: int = Field(960, ge=0, description="pixels; OCR frames scaled down to this longer side, 0 = full size")


class FramesConfig(_Section):
    every_s: float = Field(3.0, ge=0, description="seconds between grid frames; 0 = no grid")
    timestamps: list[Annotated[float, Field(ge=0)]] = Field(default_factory=list,
                                                           description="extra timestamps (s from round start)")
    at_speech: bool = Field(True, description="also take a frame at the start of every transcript segment")
    dedupe_hamming: int = Field(6, ge=-1, le=64, description="bits of the 64-bit perceptual hash; "
                                "0 = exact repeats only, -1 = keep every frame")
    crop_ui: bool = True
    jpeg_quality: int = Field(90, ge=1, le=100)
    max_side: int = Field(1280, ge=0, description="pixels; frames scaled down in ffmpeg to this longer side "
                          "(a 1080p download costs about what a 720p one does), 0 = full size")


class StreetViewConfig(_Section):
    api_key: SecretStr | None = Field(None, description="Street View Static API key; env GOOGLE_MAPS_API_KEY")
    base_url: str = "https://maps.googleapis.com/maps/api/streetview"
    size: int = Field(640, ge=1, description="pixels per view side (the Static API serves at most 640)")
    fov: int = Field(90, gt=0, le=120, description="degrees (the Static API allows at most 120)")
    headings: list[Annotated[int, Field(ge=0, le=360)]] = Field(default_factory=lambda: [0, 90, 180, 270],
                                                                min_length=1)


class RunConfig(_Section):
    workers: int = Field(2, ge=1, description="videos processed in parallel")
    executor: Literal["local", "ray"] = "local"
    ray_address: str | None = None


class DemoConfig(_Section):
    videos: int = Field(2, ge=1)
    rounds: int = Field(5, ge=1)
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
        from naviclues.secrets import mask_options

        data = self.model_dump(mode="json")
        data["download"]["ytdlp_options"] = mask_options(data["download"]["ytdlp_options"])
        return data


# credentials a `--demo` run never uses, whatever the environment holds
DEMO_IGNORED_ENV = ("GEOGUESSR_NCFA", "GOOGLE_MAPS_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "OPENAI_API_KEY",
                    "OPENAI_BASE_URL")
_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def is_local_url(url: str | None) -> bool:
    from urllib.parse import urlparse

    return bool(url) and (urlparse(str(url)).hostname or "") in _LOCAL_HOSTS


def demo_config(cfg: "CollectConfig", server_url: str) -> tuple["CollectConfig", list[str]]:
    """The configuration a `--demo` run uses: no credential and no host but the local demo server.

    The GeoGuessr cookie and Street View key are dropped (the demo server needs neither; without
    a key the Street View stage asks nothing), the GeoGuessr API is the demo server, yt-dlp
    credential/proxy options are dropped, and settings that
    would fetch from the internet (a Whisper model by name, a reasoning server or hub model that
    is not local) fall back to the offline default. Returns the config and one note per change."""
    from naviclues.secrets import is_secret_key

    notes: list[str] = []
    options = dict(cfg.download.ytdlp_options)
    dropped = sorted(k for k in options if is_secret_key(k))
    if dropped:
        notes.append(f"download.ytdlp_options {', '.join(dropped)} ignored (credentials or proxies)")
    transcript = cfg.transcript
    if transcript.whisper_model and not Path(transcript.whisper_model).exists():
        notes.append(f"transcript.whisper_model {transcript.whisper_model!r} ignored (not a local checkpoint)")
        transcript = transcript.model_copy(update={"whisper_model": None})
    annotate = dict(cfg.annotate)
    reasoning = dict(annotate.get("reasoning") or {})
    backend = reasoning.get("backend", "extractive")
    if backend == "openai" and not is_local_url(reasoning.get("base_url", "https://api.openai.com/v1")):
        notes.append("annotate.reasoning backend openai ignored (its server is not local): extractive")
        reasoning["backend"] = "extractive"
    elif backend == "transformers" and not (reasoning.get("model") and Path(str(reasoning["model"])).exists()):
        notes.append("annotate.reasoning backend transformers ignored (the model is not a local folder): extractive")
        reasoning["backend"] = "extractive"
    if reasoning:
        annotate["reasoning"] = reasoning
    demo = cfg.model_copy(update={
        "challenge": cfg.challenge.model_copy(update={"api_base": server_url, "ncfa_cookie": None}),
        "streetview": cfg.streetview.model_copy(update={"api_key": None}),
        "download": cfg.download.model_copy(update={"ytdlp_options": {k: v for k, v in options.items()
                                                                       if k not in dropped}}),
        "transcript": transcript,
        "annotate": annotate,
    })
    return demo, notes


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


class _Loader(yaml.SafeLoader):
    """YAML as usual, except that an integer written with a leading zero, in octal, hex,
    binary or base 60 (`0123`, `0x1F`, `1:30`) and a date (`2024-01-01`) stay the text that
    was written: for a setting that is text (a password, a date) the characters are what
    count, and a numeric setting still reads `0123` as 123 (never octal 83)."""


def _int_or_text(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int | str:
    text = loader.construct_scalar(node)
    if re.fullmatch(r"[-+]?(?:0|[1-9][0-9_]*)", text):
        return loader.construct_yaml_int(node)
    return text


def _float_or_text(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> float | str:
    text = loader.construct_scalar(node)
    return text if ":" in text else loader.construct_yaml_float(node)


_Loader.add_constructor("tag:yaml.org,2002:int", _int_or_text)
_Loader.add_constructor("tag:yaml.org,2002:float", _float_or_text)
_Loader.add_constructor("tag:yaml.org,2002:timestamp", lambda loader, node: loader.construct_scalar(node))


def _load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


def read_config_file(path: Path | str) -> dict:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"config file {path} does not exist")
    text = path.read_text("utf-8")
    if path.suffix == ".toml":
        return tomllib.loads(text)
    if path.suffix in (".yaml", ".yml"):
        return _load_yaml(text) or {}
    raise ValueError(f"config file {path}: use .toml, .yaml or .yml")


_TEXT_TYPES = (str, SecretStr, Path)
_NONE_WORDS = ("", "null", "~")


def _setting_type(keys: list[str]) -> tuple[str, bool]:
    """How `--set` reads a value for the setting at `keys`: ("text", accepts None) for a string
    setting, ("free", _) inside a free-form dict (ytdlp_options, annotate), else ("yaml", _)."""
    node: Any = CollectConfig
    for i, key in enumerate(keys):
        if not (isinstance(node, type) and issubclass(node, BaseModel)):
            return ("free", True) if i > 0 else ("yaml", True)
        field = node.model_fields.get(key)
        if field is None:
            return "yaml", True  # not a setting: validation names it
        node = field.annotation
        members = typing.get_args(node) if typing.get_origin(node) in (typing.Union, types.UnionType) else (node,)
        optional = type(None) in members
        members = tuple(m for m in members if m is not type(None))
        if typing.get_origin(node) is dict or node is dict:
            if i == len(keys) - 1:
                return "yaml", optional
            return "free", True
        if len(members) == 1:
            node = members[0]
        if i == len(keys) - 1:
            text = all((isinstance(m, type) and issubclass(m, _TEXT_TYPES))
                       or (typing.get_origin(m) is Literal and all(isinstance(a, str) for a in typing.get_args(m)))
                       for m in members)
            return ("text" if text and members else "yaml"), optional
    return "yaml", True


def override_value(keys: list[str], raw: str) -> Any:
    """The value of `--set a.b.c=RAW`, typed by the setting it targets.

    String settings (paths, secrets, regexes, dates) get RAW exactly as typed (`date_after=20240101`,
    a cookie `0123`); `null`, `~` or nothing is None where the setting allows None. Inside the
    free-form `download.ytdlp_options` (and `annotate`), credential keys (password, username,
    cookie…, see `is_raw_option_key`) keep RAW too; other values are read as YAML (true/false,
    numbers, [lists]) except that leading-zero numbers and dates stay text. Every other setting
    is read as YAML and then validated by its declared type.
    """
    kind, optional = _setting_type(keys)
    if kind == "text":
        return None if optional and raw.strip() in _NONE_WORDS else raw
    if kind == "free" and is_raw_option_key(keys[-1]):
        # a credential scalar is its text ("0123", "on"); a list stays a list (cookiesfrombrowser=[firefox])
        try:
            parsed = _load_yaml(raw)
        except yaml.YAMLError:
            return raw
        return parsed if isinstance(parsed, (list, dict)) else raw
    return _load_yaml(raw) if raw.strip() else None


def parse_override(item: str) -> dict:
    """'download.max_height=480' → {'download': {'max_height': 480}} (value typed by `override_value`)."""
    if "=" not in item:
        raise ValueError(f"override {item!r}: expected section.key=value")
    dotted, raw = item.split("=", 1)
    keys = dotted.strip().split(".")
    if not all(k.strip() for k in keys):
        raise ValueError(f"override {item!r}: expected section.key=value")
    keys = [k.strip() for k in keys]
    value = override_value(keys, raw)
    node: dict = {}
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
