"""Which API key goes to which server (navig's OpenAI backend, annotate's reasoning writer).

`OPENAI_API_KEY` is OpenAI's: it is sent to api.openai.com over https and to no other host, so
pointing `base_url` at a vLLM box, a proxy or a typo never hands it over. A key for any other
server lives in an environment variable the user names for that server (`api_key_env`), and
that one is sent to the configured `base_url`.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from urllib.parse import urlparse

log = logging.getLogger("naviclues.api_keys")

OPENAI_KEY_ENV = "OPENAI_API_KEY"
OPENAI_BASE_URL = "https://api.openai.com/v1"
OPENAI_HOSTS = frozenset({"api.openai.com"})


def is_openai_host(base_url: str) -> bool:
    parsed = urlparse(base_url)
    return parsed.scheme == "https" and (parsed.hostname or "").lower() in OPENAI_HOSTS


def api_key_for(base_url: str | None, key_env: str | None, env: Mapping[str, str] | None = None) -> str | None:
    """The key to send to `base_url` (None: send none).

    The default variable `OPENAI_API_KEY` only for https://api.openai.com; a variable the user
    named (anything else) for the server it was configured with."""
    env = os.environ if env is None else env
    if not key_env:
        return None
    key = env.get(key_env) or None
    if key is None:
        return None
    url = base_url or OPENAI_BASE_URL
    if key_env == OPENAI_KEY_ENV and not is_openai_host(url):
        host = urlparse(url).hostname or url
        log.info("%s is not sent to %s (it is OpenAI's key, for api.openai.com); name the variable holding this "
                 "server's key with api_key_env", OPENAI_KEY_ENV, host)
        return None
    return key
