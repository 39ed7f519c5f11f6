"""Keep secret values out of everything the run writes (store rows, logs, artifacts).

Secrets are of two kinds: `SecretStr` settings (GeoGuessr cookie, API keys) and credentials
inside free-form yt-dlp options (cookie files, passwords, proxies with user:password@,
HTTP headers). Both are masked in `collect config` / OUT/config.json and redacted from every
message the run records.
"""
from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, SecretStr

MASK = "***"
MASKED_VALUE = "**********"  # how pydantic prints a SecretStr

# yt-dlp option keys that can carry credentials: never in fingerprints, info.json or logs
SECRET_OPTION_KEYS = frozenset({
    "cookiefile", "cookiesfrombrowser", "username", "password", "videopassword", "ap_username",
    "ap_password", "usenetrc", "netrc_location", "netrc_cmd", "proxy", "geo_verification_proxy",
    "http_headers", "client_certificate", "client_certificate_key", "client_certificate_password",
})
_SECRET_KEY_PATTERN = re.compile(r"cookie|token|passw|secret|authoriz|^auth$|api[_-]?key|signature|session|credential", re.I)
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s:]+:[^/@\s]+@", re.I)
_SECRET_QUERY = re.compile(r"(?P<k>[?&](?:key|token|signature|sig|access_token|api_key)=)[^&\s#\"']+", re.I)


def is_secret_key(key: str) -> bool:
    return key in SECRET_OPTION_KEYS or bool(_SECRET_KEY_PATTERN.search(key))


def redact_urls(text: str) -> str:
    """Remove URL credentials (proxy user:password@) and secret query values from a message."""
    text = _URL_CREDENTIALS.sub(r"\g<scheme>***@", text)
    return _SECRET_QUERY.sub(r"\g<k>REDACTED", text)


def mask_options(options: dict[str, Any]) -> dict[str, Any]:
    """Free-form options (yt-dlp params) with every credential-bearing value masked."""
    return {k: (MASKED_VALUE if is_secret_key(k) else v) for k, v in options.items()}


def _option_secrets(options: dict[str, Any]) -> list[str]:
    found: list[str] = []
    for key, value in options.items():
        if not is_secret_key(key):
            continue
        values = value.values() if isinstance(value, dict) else (value if isinstance(value, (list, tuple)) else [value])
        found += [str(v) for v in values if isinstance(v, (str, int)) and len(str(v)) >= 4]
    return found


def secret_values(model: BaseModel) -> list[str]:
    """Every non-empty SecretStr value inside a (nested) pydantic model, plus credential values
    of free-form option dicts (e.g. `download.ytdlp_options`)."""
    found: list[str] = []

    def walk(node: Any, key: str = "") -> None:
        if isinstance(node, SecretStr):
            value = node.get_secret_value()
            if value:
                found.append(value)
        elif isinstance(node, BaseModel):
            for name in type(node).model_fields:
                walk(getattr(node, name), name)
        elif isinstance(node, dict):
            if key.endswith("options"):
                found.extend(_option_secrets(node))
            for k, v in node.items():
                walk(v, str(k))
        elif isinstance(node, (list, tuple)):
            for v in node:
                walk(v, key)

    walk(model)
    # longest first so a secret containing another is masked whole
    return sorted(set(found), key=len, reverse=True)


def redact(text: str | None, secrets: list[str]) -> str | None:
    """`text` without any of `secrets` and without URL credentials."""
    if not text:
        return text
    for value in secrets:
        text = text.replace(value, MASK)
    return redact_urls(text)


def redact_obj(obj: Any, secrets: list[str]) -> Any:
    return json.loads(redact(json.dumps(obj, ensure_ascii=False), secrets))
