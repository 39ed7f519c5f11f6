"""Filesystem helpers: atomic writes and safe path components.

Everything a stage publishes goes through `atomic_write_*` so a crash never leaves a
half-written artifact where a later stage (or a rerun) would read it.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import unicodedata
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

_UMASK = os.umask(0)
os.umask(_UMASK)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(raw: str, max_len: int = 80) -> str:
    """A filesystem-safe, deterministic name for an id or title from the internet.

    Non-ASCII is transliterated or dropped, separators and dots-only names cannot escape
    the parent folder, and long names are cut with a short hash so distinct inputs stay
    distinct.
    """
    text = unicodedata.normalize("NFKD", raw or "").encode("ascii", "ignore").decode()
    text = _UNSAFE.sub("_", text).strip("._-")
    digest = hashlib.sha1((raw or "").encode("utf-8", "surrogatepass")).hexdigest()[:10]
    if not text:
        return f"item_{digest}"
    if len(text) > max_len or text != raw:
        text = f"{text[: max_len - 11]}_{digest}"
    return text


def inside(root: Path, *parts: str) -> Path:
    """Join `parts` under `root` and refuse any result outside it."""
    root = Path(root).resolve()
    path = root.joinpath(*parts).resolve()
    if path != root and root not in path.parents:
        raise ValueError(f"path {path} escapes {root}")
    return path


@contextmanager
def atomic_path(target: Path | str) -> Iterator[Path]:
    """Yield a temp path next to `target`; rename it over `target` only on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part" + target.suffix, dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600; published files get normal modes
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(target: Path | str, data: bytes) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def atomic_write_text(target: Path | str, text: str) -> Path:
    return atomic_write_bytes(target, text.encode("utf-8"))


def atomic_write_json(target: Path | str, obj: Any) -> Path:
    return atomic_write_text(target, json.dumps(obj, ensure_ascii=False, indent=1, sort_keys=True) + "\n")


def swap_in_dir(new: Path | str, target: Path | str) -> None:
    """Publish folder `new` as `target` with renames only; the old copy is moved aside, then removed."""
    import shutil
    import uuid

    new, target = Path(new), Path(target)
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        os.replace(target, old)
    os.replace(new, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def read_json(path: Path | str) -> Any:
    return json.loads(Path(path).read_text("utf-8"))


def file_sha256(path: Path | str, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def fingerprint(*parts: Any) -> str:
    """Stable hash of JSON-serialisable parts (config slices, input hashes)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
