"""Benchmark registry: turn a benchmark's public files into (id, image path, truth) samples.

`--benchmark` accepts `NAME:PATH`, a bare `PATH` (its format is detected), or a bare `NAME`
(looked up as `<data root>/<NAME>`, the root being `$NAVIG_BENCHMARK_ROOT` or `data/benchmarks`).
Formats:

- `im2gps3k`: a folder with `im2gps3k_places365.csv` (IMG_ID, AUTHOR, LAT, LON, S3_Label, …; the
  CSV the GeoEstimation / GeoCLIP / Img2Loc line of work distributes) and the images, found by file
  name anywhere below the folder (e.g. `im2gps3ktest/`).
- `yfcc4k`: the same layout with `yfcc4k_places365.csv` (IMG_ID, LAT, LON, …).
- `folder` (GWS-style and any custom set): images + `metadata.csv` or `metadata.jsonl` with `id`,
  `lat`, `lng` (lon / longitude / latitude accepted) and optionally `file_name` (the Hugging Face
  imagefolder column) / `image`, `country`, `city`; without a file column an image whose stem is
  the id is used.
- `hf`: a `save_to_disk` folder or a Hub id with an `image` (or `images`) column and lat/lng; the
  `test` split when there are several. Images are written once to a cache folder, keyed by id and
  the hash of the image's bytes (a changed image is written anew, never reused by id).
- `naviclues`: the NaviClues dataset (folder or Hub id), `test` split, which also carries the human
  `reasoning` used for ROUGE.

Rows that cannot be used (no image file, bad coordinates) are kept in `Benchmark.problems` with
the cause, never dropped silently.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from naviclues.fsutil import atomic_path, atomic_write_text, safe_name

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
DEFAULT_DATA_ROOT = Path("data/benchmarks")


@dataclass
class Sample:
    id: str
    image: Path
    lat: float
    lng: float
    country: str | None = None
    city: str | None = None
    reasoning: str | None = None  # human reasoning (NaviClues), for ROUGE


@dataclass
class Benchmark:
    name: str
    source: str
    samples: list[Sample] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def items(self) -> list[tuple[str, Path]]:
        return [(s.id, s.image) for s in self.samples]

    def write_truth(self, path: Path | str) -> Path:
        """The truth JSONL `navig score` reads (id, lat, lng, country, city)."""
        lines = [json.dumps({"id": s.id, "lat": s.lat, "lng": s.lng, "country": s.country, "city": s.city},
                            ensure_ascii=False) for s in self.samples]
        return atomic_write_text(path, "".join(line + "\n" for line in lines))

    def limit(self, n: int | None) -> "Benchmark":
        return self if n is None else Benchmark(self.name, self.source, self.samples[:n], self.problems)


def _float(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if f == f else None  # NaN → None


def _pick(row: dict, *keys: str) -> Any:
    for key in keys:
        if key in row and row[key] not in (None, ""):
            return row[key]
    return None


def _image_files(root: Path) -> dict[str, Path]:
    """file name → path, and stem → path, for every image below `root`."""
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
            found.setdefault(path.name, path)
            found.setdefault(path.stem, path)
    return found


def _add(bench: Benchmark, where: str, row_id: Any, image: Path | None, lat: Any, lng: Any,
         **extra: Any) -> None:
    lat_f, lng_f = _float(lat), _float(lng)
    if row_id in (None, ""):
        bench.problems.append(f"{where}: no id")
    elif lat_f is None or lng_f is None or abs(lat_f) > 90 or abs(lng_f) > 180:
        bench.problems.append(f"{where}: id {row_id!r}: bad coordinates ({lat!r}, {lng!r})")
    elif image is None or not image.is_file():
        bench.problems.append(f"{where}: id {row_id!r}: image not found")
    else:
        bench.samples.append(Sample(str(row_id), image, lat_f, lng_f, **extra))


def _places365_csv(name: str, csv_name: str) -> Callable[[Path], Benchmark]:
    def load(root: Path) -> Benchmark:
        root = Path(root)
        meta = root / csv_name if (root / csv_name).is_file() else next(root.rglob(csv_name), None)
        if meta is None:
            raise FileNotFoundError(f"{name}: no {csv_name} under {root}")
        images = _image_files(root)
        bench = Benchmark(name, str(root))
        with open(meta, encoding="utf-8", newline="") as fh:
            for lineno, row in enumerate(csv.DictReader(fh), 2):
                img_id = _pick(row, "IMG_ID", "img_id", "id")
                image = images.get(str(img_id)) or images.get(Path(str(img_id)).stem) if img_id else None
                _add(bench, f"{meta.name}:{lineno}", img_id, image, _pick(row, "LAT", "lat"), _pick(row, "LON", "lon", "lng"))
        return bench

    return load


load_im2gps3k = _places365_csv("im2gps3k", "im2gps3k_places365.csv")
load_yfcc4k = _places365_csv("yfcc4k", "yfcc4k_places365.csv")


def _metadata_rows(meta: Path) -> Iterable[tuple[int, dict]]:
    with open(meta, encoding="utf-8", newline="") as fh:
        if meta.suffix == ".jsonl":
            for lineno, line in enumerate(fh, 1):
                if line.strip():
                    yield lineno, json.loads(line)
        else:
            yield from enumerate(csv.DictReader(fh), 2)


def load_folder(root: Path, name: str = "folder") -> Benchmark:
    """Images + metadata.csv / metadata.jsonl (id, lat, lng[, file_name, country, city])."""
    root = Path(root)
    meta = next((root / n for n in ("metadata.jsonl", "metadata.csv") if (root / n).is_file()), None)
    if meta is None:
        raise FileNotFoundError(f"{name}: no metadata.csv or metadata.jsonl in {root}")
    images = _image_files(root)
    bench = Benchmark(name, str(root))
    for lineno, row in _metadata_rows(meta):
        file_name = _pick(row, "file_name", "image", "path", "filename")
        row_id = _pick(row, "id", "ID", "IMG_ID")
        if row_id is None and file_name:
            row_id = Path(str(file_name)).stem
        if file_name:
            candidate = (root / str(file_name)).resolve()
            image = candidate if candidate.is_file() and root.resolve() in candidate.parents else None
        else:
            image = images.get(str(row_id)) if row_id is not None else None
        _add(bench, f"{meta.name}:{lineno}", row_id, image,
             _pick(row, "lat", "latitude", "LAT"), _pick(row, "lng", "lon", "longitude", "LON"),
             country=_pick(row, "country"), city=_pick(row, "city"), reasoning=_pick(row, "reasoning"))
    return bench


def _load_hf_dataset(source: str | Path, split: str | None):
    from datasets import load_dataset, load_from_disk

    path = Path(source)
    if path.exists():
        saved = any((path / n).exists() for n in ("dataset_dict.json", "dataset_info.json", "state.json"))
        data = load_from_disk(str(path)) if saved else load_dataset(str(path))
    else:
        data = load_dataset(str(source))
    if hasattr(data, "keys"):
        splits = list(data.keys())
        chosen = split if split else ("test" if "test" in splits else (splits[0] if len(splits) == 1 else None))
        if chosen not in splits:
            raise ValueError(f"{source}: choose a split with NAME:PATH@SPLIT (splits: {splits})")
        data = data[chosen]
    return data


def _undecoded(feature: Any) -> Any:
    """The same image feature (or list of images) with decoding off: rows then carry the encoded
    bytes, which key the image cache and are decoded only when an image is written."""
    import copy

    feature = copy.deepcopy(feature)
    target = feature.feature if hasattr(feature, "feature") else feature
    if hasattr(target, "decode"):
        target.decode = False
    return feature


def _encoded_image(value: Any) -> bytes | None:
    if isinstance(value, list):
        value = value[0] if value else None
    if not value:
        return None
    if value.get("bytes"):
        return value["bytes"]
    return Path(value["path"]).read_bytes() if value.get("path") else None


def load_hf(source: str | Path, cache_dir: Path, name: str = "hf", split: str | None = None) -> Benchmark:
    """A datasets folder / Hub id; images are written to `cache_dir/<name>/` once (JPEG), each under
    its id and the hash of its encoded bytes, so a dataset whose image changed under the same id
    (a new version, another dataset of the same name) never reuses the old picture."""
    from io import BytesIO

    from PIL import Image

    data = _load_hf_dataset(source, split)
    cols = set(data.column_names)
    image_col = "images" if "images" in cols else "image" if "image" in cols else None
    if image_col is None:
        raise ValueError(f"{source}: no image/images column (columns: {sorted(cols)})")
    data = data.cast_column(image_col, _undecoded(data.features[image_col]))
    folder = Path(cache_dir) / safe_name(name)
    folder.mkdir(parents=True, exist_ok=True)
    bench = Benchmark(name, str(source))
    for index in range(len(data)):
        row = data[index]
        row_id = str(row["id"]) if row.get("id") not in (None, "") else f"{index:06d}"
        encoded = _encoded_image(row[image_col])
        if encoded is None:
            bench.problems.append(f"{source}[{index}]: id {row_id!r}: no image")
            continue
        target = folder / f"{safe_name(row_id)}-{hashlib.sha256(encoded).hexdigest()[:16]}.jpg"
        if not target.is_file():
            try:
                picture = Image.open(BytesIO(encoded)).convert("RGB")
            except (OSError, ValueError) as exc:  # undecodable bytes: this row is unusable, the rest go on
                bench.problems.append(f"{source}[{index}]: id {row_id!r}: unreadable image ({exc})")
                continue
            with atomic_path(target) as tmp:
                picture.save(tmp, format="JPEG", quality=95)
        _add(bench, f"{source}[{index}]", row_id, target,
             _pick(row, "lat", "latitude", "LAT"), _pick(row, "lng", "lon", "longitude", "LON"),
             country=_pick(row, "country", "country_code"), city=_pick(row, "city"),
             reasoning=_pick(row, "reasoning"))
    return bench


def load_naviclues(source: str | Path, cache_dir: Path, split: str | None = None) -> Benchmark:
    return load_hf(source, cache_dir, name="naviclues", split=split or "test")


REGISTRY: dict[str, str] = {
    "im2gps3k": "Im2GPS3k: im2gps3k_places365.csv + images",
    "yfcc4k": "YFCC4k: yfcc4k_places365.csv + images",
    "folder": "images + metadata.csv/jsonl (id, lat, lng[, file_name, country, city]); GWS-style sets",
    "gws5k": "GWS5k in the folder format (metadata.csv/jsonl + images)",
    "hf": "a datasets save_to_disk folder or Hub id with image + lat/lng (test split)",
    "naviclues": "the NaviClues dataset (folder or Hub id), test split, with human reasoning",
}


def detect_format(path: Path) -> str:
    if (path / "im2gps3k_places365.csv").is_file():
        return "im2gps3k"
    if (path / "yfcc4k_places365.csv").is_file():
        return "yfcc4k"
    if (path / "metadata.csv").is_file() or (path / "metadata.jsonl").is_file():
        return "folder"
    if any((path / n).exists() for n in ("dataset_dict.json", "dataset_info.json", "state.json")):
        return "hf"
    if any(path.glob("*.parquet")) or any(path.glob("data/*.parquet")):
        return "hf"
    raise ValueError(f"cannot tell the benchmark format of {path}; prefix it with one of {sorted(REGISTRY)}:")


def parse_spec(spec: str, data_root: Path | None = None) -> tuple[str, str, str | None]:
    """`NAME:PATH[@SPLIT]` / `PATH` / `NAME` / Hub id → (format, source, split)."""
    data_root = Path(data_root or os.environ.get("NAVIG_BENCHMARK_ROOT") or DEFAULT_DATA_ROOT)
    name, sep, rest = spec.partition(":")
    if sep and name in REGISTRY:
        fmt, source = name, rest
    elif spec in REGISTRY:
        fmt, source = spec, str(data_root / spec)
    else:
        fmt, source = "", spec
    split = None
    if "@" in source and not Path(source).exists():
        source, _, split = source.rpartition("@")
    if not fmt:
        fmt = detect_format(Path(source)) if Path(source).exists() else "hf"
    return fmt, source, split


def load_benchmark(spec: str, cache_dir: Path | str, data_root: Path | None = None) -> Benchmark:
    """Load a benchmark from its spec (see the module docstring)."""
    fmt, source, split = parse_spec(spec, data_root)
    cache_dir = Path(cache_dir)
    if fmt == "im2gps3k":
        return load_im2gps3k(Path(source))
    if fmt == "yfcc4k":
        return load_yfcc4k(Path(source))
    if fmt in ("folder", "gws5k"):
        return load_folder(Path(source), name=fmt if fmt != "folder" else Path(source).name or "folder")
    if fmt == "naviclues":
        return load_naviclues(source, cache_dir, split)
    return load_hf(source, cache_dir, name=safe_name(Path(source).name or source), split=split)


def benchmark_name(spec: str) -> str:
    """A short, path-safe label for a spec (used for output folders and table rows)."""
    name, sep, rest = spec.partition(":")
    if sep and name in REGISTRY and name not in ("folder", "hf"):
        return name
    if spec in REGISTRY:
        return spec
    return safe_name(Path(rest if sep else spec).name or spec)
