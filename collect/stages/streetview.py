"""Street View: per challenge round, four Street View Static API views (headings 0/90/180/270)
stitched side by side into one panorama, `streetview/round_<k>.jpg`, plus `streetview/index.json`.

Runs only with an API key (`streetview.api_key`, env GOOGLE_MAPS_API_KEY). The key is added
to the request at the last moment and never appears in files, logs or error messages (URLs
in messages are redacted).
"""
from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import requests
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from collect import layout
from naviclues.fsutil import atomic_path, atomic_write_json, fingerprint, read_json
from collect.records import Challenge, ChallengeRound, from_dict
from naviclues.secrets import redact, redact_urls
from collect.stages.base import Stage, StageOutcome, VideoContext

log = logging.getLogger("collect.streetview")


class _RedactKeyFilter(logging.Filter):
    """urllib3 logs each request line (with `?key=…`) at DEBUG: redact it before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.msg = record.getMessage()
            record.args = None
        record.msg = redact_urls(str(record.msg))
        return True


logging.getLogger("urllib3.connectionpool").addFilter(_RedactKeyFilter())
NO_KEY_NOTE = "no Street View API key (streetview.api_key / GOOGLE_MAPS_API_KEY)"


class StreetViewError(Exception):
    pass


class _Transient(Exception):
    pass


class StreetViewUnavailable(StreetViewError):
    """The view could not be fetched for a passing reason (network, 429, 5xx) after its retries."""


def view_params(rnd: ChallengeRound, heading: float, size: int, fov: int) -> dict[str, str]:
    params = {"size": f"{size}x{size}", "fov": str(fov), "heading": f"{heading:g}", "pitch": "0",
              "return_error_code": "true"}  # a 404 instead of a grey "no imagery" picture
    if rnd.pano_id:
        params["pano"] = rnd.pano_id
    else:
        params["location"] = f"{rnd.lat:.6f},{rnd.lng:.6f}"
    return params


def fetch_view(session: requests.Session, base_url: str, params: dict[str, str], key: str, *,
               retries: int = 2, backoff_s: float = 0.5, timeout_s: float = 20.0) -> bytes:
    """One Street View Static image; transient errors retried; messages never carry the key."""
    def once() -> bytes:
        try:
            resp = session.get(base_url, params={**params, "key": key}, timeout=timeout_s)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise _Transient(f"network error {type(exc).__name__}") from None
        if resp.status_code == 429 or resp.status_code >= 500:
            raise _Transient(f"HTTP {resp.status_code}")
        if resp.status_code != 200:
            raise StreetViewError(f"HTTP {resp.status_code}: {redact(resp.text[:200], [key]).strip()}")
        if not resp.headers.get("Content-Type", "").startswith("image/"):
            raise StreetViewError(f"expected an image, got {resp.headers.get('Content-Type')!r}")
        return resp.content

    where = params.get("pano") or params.get("location")
    try:
        for attempt in Retrying(stop=stop_after_attempt(retries + 1),
                                wait=wait_exponential(multiplier=backoff_s, max=30),
                                retry=retry_if_exception(lambda e: isinstance(e, _Transient)), reraise=True):
            with attempt:
                return once()
    except _Transient as exc:
        raise StreetViewUnavailable(f"Street View view at {where} heading {params['heading']}: {exc} after "
                                    f"{retries + 1} attempts") from None
    except StreetViewError as exc:
        raise StreetViewError(f"Street View view at {where} heading {params['heading']}: {exc}") from None
    raise AssertionError("unreachable")  # pragma: no cover


def stitch(images: list[bytes], size: int):
    """Views side by side, left to right in heading order, each resized to size×size."""
    from PIL import Image

    panorama = Image.new("RGB", (size * len(images), size))
    for i, blob in enumerate(images):
        with Image.open(io.BytesIO(blob)) as view:
            panorama.paste(view.convert("RGB").resize((size, size)), (i * size, 0))
    return panorama


class StreetViewStage(Stage):
    name = "streetview"
    output_keys = ("index",)
    requires = ("challenge",)

    def config_slice(self, ctx: VideoContext) -> Any:
        cfg = ctx.config.streetview
        # the key itself never enters a fingerprint; only whether there is one
        return {"base_url": cfg.base_url, "size": cfg.size, "fov": cfg.fov, "headings": list(cfg.headings),
                "has_key": cfg.api_key is not None}

    def input_files(self, ctx: VideoContext) -> list[Path]:
        return [ctx.path(layout.CHALLENGE_JSON)]

    def missing_outputs(self, ctx: VideoContext, outputs: dict) -> list[str]:
        # rounds whose views failed for a passing reason (a timeout, a quota, a 5xx) are tried again on the
        # next run; a permanent answer (404: no imagery there) is not asked again and again
        failed = int((outputs or {}).get("retryable_rounds") or 0)
        return super().missing_outputs(ctx, outputs) + ([f"{failed} round(s) without panorama"] if failed else [])

    @staticmethod
    def _fetched_before(ctx: VideoContext, settings: str) -> dict[int, dict]:
        """Panoramas of an earlier run with the same view settings whose file is still there."""
        try:
            entries = read_json(ctx.path(layout.STREETVIEW_INDEX)) or []
        except (OSError, ValueError):
            return {}
        return {int(e["round"]): e for e in entries if isinstance(e, dict) and e.get("path")
                and e.get("settings") == settings and ctx.path(e["path"]).is_file()}

    def run(self, ctx: VideoContext) -> StageOutcome:
        cfg = ctx.config.streetview
        if cfg.api_key is None or not cfg.api_key.get_secret_value():
            return StageOutcome.skipped(NO_KEY_NOTE)
        key = cfg.api_key.get_secret_value()
        challenge_path = ctx.path(layout.CHALLENGE_JSON)
        if not challenge_path.is_file():
            return StageOutcome.failed(self.name, f"{ctx.video.id}: {layout.CHALLENGE_JSON} missing", "MissingInput")
        challenge = from_dict(Challenge, read_json(challenge_path))
        size = min(int(cfg.size), 640)  # the Static API's maximum side
        settings = fingerprint(self.config_slice(ctx))
        kept = self._fetched_before(ctx, settings)
        index: list[dict] = []
        errors: list[str] = []
        retryable = 0  # rounds that failed for a passing reason: worth another run
        with requests.Session() as session:
            for rnd in challenge.rounds:
                previous = kept.get(rnd.round)
                if previous is not None and (previous.get("lat"), previous.get("lng")) == (rnd.lat, rnd.lng):
                    index.append(previous)  # a rerun for the rounds that failed keeps the panoramas it has
                    continue
                try:
                    views = [fetch_view(session, cfg.base_url, view_params(rnd, h, size, cfg.fov), key)
                             for h in cfg.headings]
                    rel = f"{layout.STREETVIEW_DIR}/round_{int(rnd.round)}.jpg"
                    with atomic_path(ctx.path(rel)) as tmp:
                        stitch(views, size).save(tmp, "JPEG", quality=90)
                    index.append({"round": rnd.round, "path": rel, "headings": list(cfg.headings),
                                  "pano_id": rnd.pano_id, "lat": rnd.lat, "lng": rnd.lng,
                                  "width": size * len(views), "height": size, "settings": settings})
                except Exception as exc:
                    retryable += isinstance(exc, StreetViewUnavailable)
                    message = redact(f"round {rnd.round}: {exc}", [key])
                    log.warning("%s: %s", ctx.video.id, message)
                    errors.append(message)
                    index.append({"round": rnd.round, "path": None, "error": message})
        atomic_write_json(ctx.path(layout.STREETVIEW_INDEX), index)
        done = [e for e in index if e.get("path")]
        if not done and errors:
            return StageOutcome.failed(self.name, f"{ctx.video.id}: no Street View panorama: " + "; ".join(errors),
                                       "StreetViewError")
        outcome = StageOutcome.done(index=layout.STREETVIEW_INDEX, panoramas=len(done), failed_rounds=len(errors),
                                    retryable_rounds=retryable)
        if errors:
            outcome.note = f"{len(errors)} round(s) without panorama: " + "; ".join(errors)
        return outcome
