"""The Searcher's guidebook: clue texts (optionally with example images) in FAISS indexes.

Built once with `navig guidebook build SRC --out DIR`, then loaded once per process (the
released code reloaded CLIP and the index for every crop). A folder holds:

- `entries.jsonl`  one clue per line: clue, country, source, image (absolute path or null)
- `image.faiss`    CLIP image features of entries with an image (raw, as the paper: L2 ≤ 30)
- `clip_text.faiss` CLIP text features of every clue (L2-normalised): lets crops query a
                   text-only guidebook across modalities, and text queries without an encoder
- `text.faiss`     optional sentence-transformers features (normalised) for text queries
- `meta.json`      models, counts and the row ids of each index; written last (complete marker)

The whole folder is built beside the target and swapped in, so a crash never leaves half an index.
"""
from __future__ import annotations

import json
import logging
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from naviclues.fsutil import atomic_write_json, swap_in_dir
from navig.images import UNREADABLE, load_rgb
from navig.searcher.embedders import DEFAULT_CLIP, ClipEmbedder, TextEmbedder, normalize_rows
from navig.searcher.records import GuidebookHit

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
_TEXT_KEYS = ("clue", "text", "description", "caption")
_IMAGE_KEYS = ("image", "image_path", "image_name", "file", "path")


@dataclass
class GuidebookEntry:
    clue: str
    country: str | None = None
    source: str | None = None
    image: str | None = None


@dataclass
class SourceReport:
    entries: list[GuidebookEntry]
    missing_images: int = 0  # rows naming an image that is not on disk (kept as text-only)
    errors: list[str] | None = None  # "file:line: cause" for rows that could not be read


def _first(row: dict, keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = row.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _read_jsonl(path: Path, report: SourceReport) -> None:
    base = path.parent
    for lineno, line in enumerate(path.read_text("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            report.errors.append(f"{path.name}:{lineno}: invalid JSON ({exc.msg})")
            continue
        clue = _first(row, _TEXT_KEYS) if isinstance(row, dict) else None
        if not clue:
            report.errors.append(f"{path.name}:{lineno}: no clue text (keys {', '.join(_TEXT_KEYS)})")
            continue
        image = None
        name = _first(row, _IMAGE_KEYS)
        if name:
            for candidate in (base / name, base / "images" / name):
                if candidate.is_file():
                    image = str(candidate.resolve())
                    break
            else:
                report.missing_images += 1
        report.entries.append(GuidebookEntry(clue=clue, country=row.get("country"), source=row.get("source"),
                                             image=image))


def read_source(src: Path | str) -> SourceReport:
    """Entries from a JSONL file, a folder of JSONL files, or a folder of images with same-stem
    `.txt` clue files (an image without a text file is an error; a text file alone is text-only)."""
    src = Path(src)
    report = SourceReport(entries=[], errors=[])
    if src.is_file():
        _read_jsonl(src, report)
        return report
    if not src.is_dir():
        raise FileNotFoundError(f"guidebook source {src} does not exist")
    jsonls = sorted(src.glob("*.jsonl"))
    if jsonls:
        for path in jsonls:
            _read_jsonl(path, report)
        return report
    for path in sorted(src.iterdir()):
        if path.suffix.lower() in IMAGE_SUFFIXES:
            text = path.with_suffix(".txt")
            if not text.is_file():
                report.errors.append(f"{path.name}: no clue text file {text.name}")
                continue
            report.entries.append(GuidebookEntry(clue=text.read_text("utf-8").strip(), country=None,
                                                 source=src.name, image=str(path.resolve())))
        elif path.suffix == ".txt" and not any(path.with_suffix(s).exists() for s in IMAGE_SUFFIXES):
            report.entries.append(GuidebookEntry(clue=path.read_text("utf-8").strip(), source=src.name))
    return report


def _write_index(vectors: np.ndarray, path: Path) -> None:
    import faiss

    index = faiss.IndexFlatL2(vectors.shape[1])
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype="float32"))
    faiss.write_index(index, str(path))


def build_guidebook(src: Path | str, out: Path | str, *, clip_model: str = DEFAULT_CLIP,
                    text_encoder: str | None = None, device: str = "cpu",
                    clip: ClipEmbedder | None = None) -> dict:
    """Embed every entry of `src` and publish the guidebook folder `out` atomically."""
    out = Path(out)
    report = read_source(src)
    if not report.entries:
        shown = "; ".join(report.errors[:3]) + (" …" if len(report.errors) > 3 else "")
        raise ValueError(f"guidebook source {src} has no usable clues"
                         + (f" ({len(report.errors)} bad line(s): {shown})" if report.errors else " (it is empty)"))
    clip = clip or ClipEmbedder(clip_model, device=device)
    with_image = [i for i, e in enumerate(report.entries) if e.image]
    images, image_ids = [], []
    for i in with_image:
        try:
            images.append(load_rgb(report.entries[i].image))
            image_ids.append(i)
        except UNREADABLE as exc:
            report.errors.append(f"{report.entries[i].image}: unreadable image ({exc})")
            report.entries[i].image = None
    clues = [e.clue for e in report.entries]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent))
    try:
        _write_index(clip.images(images) if images else np.zeros((0, clip.dim), "float32"), tmp / "image.faiss")
        _write_index(normalize_rows(clip.texts(clues)), tmp / "clip_text.faiss")
        text_dim = None
        if text_encoder:
            encoder = TextEmbedder(text_encoder, device=device)
            vectors = encoder.texts(clues)
            text_dim = int(vectors.shape[1])
            _write_index(vectors, tmp / "text.faiss")
        (tmp / "entries.jsonl").write_text(
            "".join(json.dumps(asdict(e), ensure_ascii=False) + "\n" for e in report.entries), "utf-8")
        meta = {
            "format_version": FORMAT_VERSION,
            "clip_model": clip.name,
            "text_encoder": text_encoder,
            "entries": len(report.entries),
            "image_entries": len(image_ids),
            "image_ids": image_ids,
            "text_dim": text_dim,
            "missing_images": report.missing_images,
            "errors": report.errors[:100],
            "error_count": len(report.errors),
        }
        atomic_write_json(tmp / "meta.json", meta)
        swap_in_dir(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return {k: v for k, v in meta.items() if k != "image_ids"} | {"out": str(out)}


class Guidebook:
    """A built guidebook, loaded once: CLIP, indexes and entries stay in memory."""

    def __init__(self, folder: Path | str, *, device: str = "cpu", clip: ClipEmbedder | None = None,
                 clip_model: str | None = None) -> None:
        import faiss

        folder = Path(folder)
        meta_path = folder / "meta.json"
        if not meta_path.is_file():
            raise FileNotFoundError(f"{folder} is not a built guidebook (no meta.json); run `navig guidebook build`")
        self.folder = folder
        self.meta = json.loads(meta_path.read_text("utf-8"))
        self.entries = [GuidebookEntry(**json.loads(line))
                        for line in (folder / "entries.jsonl").read_text("utf-8").splitlines() if line.strip()]
        self.image_index = faiss.read_index(str(folder / "image.faiss"))
        self.image_ids = list(self.meta.get("image_ids", []))
        self.clip_text_index = faiss.read_index(str(folder / "clip_text.faiss"))
        self.text_index = faiss.read_index(str(folder / "text.faiss")) if (folder / "text.faiss").exists() else None
        self.clip = clip or ClipEmbedder(clip_model or self.meta["clip_model"], device=device)
        self._device = device
        self._text_encoder: TextEmbedder | None = None  # loaded on the first text query (crops never need it)

    @property
    def text_encoder(self) -> TextEmbedder | None:
        if self._text_encoder is None and self.text_index is not None:
            self._text_encoder = TextEmbedder(self.meta["text_encoder"], device=self._device)
        return self._text_encoder

    def __len__(self) -> int:
        return len(self.entries)

    def _hits(self, distances, indices, ids_map, max_distance, via) -> list[list[GuidebookHit]]:
        out = []
        for row_d, row_i in zip(distances, indices):
            hits = []
            for d, i in zip(row_d, row_i):
                if i < 0 or (max_distance is not None and d > max_distance):
                    continue
                entry = self.entries[ids_map[i] if ids_map is not None else i]
                hits.append(GuidebookHit(clue=entry.clue, country=entry.country, distance=round(float(d), 4),
                                         image=entry.image, source=entry.source, via=via))
            out.append(hits)
        return out

    def search_images(self, images: list[Image.Image], *, k: int = 3, max_distance: float | None = 30.0,
                      max_cross_distance: float | None = 1.5) -> list[list[GuidebookHit]]:
        """Clues for each crop: nearest guidebook images (paper: k=3, L2 ≤ 30); a text-only
        guidebook is searched across modalities (normalised CLIP, squared L2 ≤ `max_cross_distance`)."""
        if not images:
            return []
        features = self.clip.images(images)
        if self.image_index.ntotal > 0:
            d, i = self.image_index.search(features, min(k, self.image_index.ntotal))
            return self._hits(d, i, self.image_ids, max_distance, "image")
        d, i = self.clip_text_index.search(normalize_rows(features), min(k, self.clip_text_index.ntotal))
        return self._hits(d, i, None, max_cross_distance, "clip_text")

    def search_texts(self, queries: list[str], *, k: int = 5,
                     max_distance: float | None = None) -> list[list[GuidebookHit]]:
        """Clues for text queries: the text encoder when the guidebook has one, else CLIP text."""
        if not queries:
            return []
        if self.text_index is not None:
            d, i = self.text_index.search(self.text_encoder.texts(queries), min(k, self.text_index.ntotal))
            return self._hits(d, i, None, max_distance, "text")
        d, i = self.clip_text_index.search(normalize_rows(self.clip.texts(queries)), min(k, self.clip_text_index.ntotal))
        return self._hits(d, i, None, max_distance, "clip_text")
