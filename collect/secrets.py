"""Keep secret values out of everything the run writes (store rows, logs, artifacts)."""
from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, SecretStr

MASK = "***"


def secret_values(model: BaseModel) -> list[str]:
    """Every non-empty SecretStr value inside a (nested) pydantic model."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, SecretStr):
            value = node.get_secret_value()
            if value:
                found.append(value)
        elif isinstance(node, BaseModel):
            for name in type(node).model_fields:
                walk(getattr(node, name))
        elif isinstance(node, dict):
            for v in node.values():
                walk(v)
        elif isinstance(node, (list, tuple)):
            for v in node:
                walk(v)

    walk(model)
    # longest first so a secret containing another is masked whole
    return sorted(set(found), key=len, reverse=True)


def redact(text: str | None, secrets: list[str]) -> str | None:
    if not text:
        return text
    for value in secrets:
        text = text.replace(value, MASK)
    return text


def redact_obj(obj: Any, secrets: list[str]) -> Any:
    if not secrets:
        return obj
    return json.loads(redact(json.dumps(obj, ensure_ascii=False), secrets))
