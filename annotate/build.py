"""Assemble annotate `Example` rows into the published NaviClues dataset.

`build_dataset` turns the rows (plus the drop records of the earlier stages) into

    OUT/dataset/   DatasetDict.save_to_disk (load_from_disk), drops.jsonl, stats.json, DATASET_CARD.md
    OUT/hub/       exactly what a release uploads: README.md (the card), plots/*.png and
                   data/<split>-0000i-of-0000N.parquet with the image bytes embedded

Splits are by challenge: every round of a challenge token (or of a video, when the token is
unknown) lands in one split, so the test set never shows a place a training row showed. The split
of a group depends only on a hash of (seed, group), never on input order or an RNG stream, and rows
are sorted by id, so two builds of the same rows are identical.

A malformed row (no truth, empty transcript, no image, unreadable image, ...) becomes a drop
record `{"id", "reasons": [...], "stage": "build"}` next to the upstream drops; it never stops the
build.

Work happens in `OUT/.build-<pid>-*` and the previous release is moved aside as
`OUT/.dataset.old-<pid>-*` / `OUT/.hub.old-<pid>-*` before it is deleted; a build killed midway
leaves those behind, so the next build removes every one whose process is gone.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from datasets import Dataset, DatasetDict, Features, Image, List, Value, load_from_disk

from annotate.prompts import REASONING_PROMPT
from annotate.records import Example
from naviclues.fsutil import atomic_write_json, atomic_write_text, safe_name, swap_in_dir

SPLIT_TRAIN = "train"
SPLIT_VALIDATION = "validation"
SPLIT_TEST = "test"
SPLIT_ORDER = (SPLIT_TRAIN, SPLIT_VALIDATION, SPLIT_TEST)

DEFAULT_MAX_SHARD_BYTES = 500 * 1024 * 1024
DEFAULT_MAX_TEST_FRACTION = 0.2
BUILD_STAGE = "build"

CLUE_FEATURE = {
    "text": Value("string"),
    "category": Value("string"),
    "entity": Value("string"),
    "start_s": Value("float64"),
    "end_s": Value("float64"),
    "frame_index": Value("int32"),
}
# TRL's conversational VLM format: content blocks are {"type", "text"}; an image block is a
# {"type": "image"} placeholder that the collator fills from the `images` column. The struct must
# not carry an "image" field, or TRL would count the block as already filled.
MESSAGE_FEATURE = {
    "role": Value("string"),
    "content": List({"type": Value("string"), "text": Value("string")}),
}

FEATURES = Features(
    {
        "id": Value("string"),
        "video_id": Value("string"),
        "channel": Value("string"),
        "video_url": Value("string"),
        "challenge_token": Value("string"),
        "round": Value("int32"),
        "lat": Value("float64"),
        "lng": Value("float64"),
        "country": Value("string"),
        "country_code": Value("string"),
        "continent": Value("string"),
        "city": Value("string"),
        "points": Value("int32"),
        "distance_km": Value("float64"),
        "time_limit_s": Value("int32"),
        "forbid_moving": Value("bool"),
        "transcript": Value("string"),
        "clues": List(CLUE_FEATURE),
        "frames": List(Image()),
        "frame_times_s": List(Value("float64")),
        "image": Image(),
        "images": List(Image()),
        "reasoning": Value("string"),
        "reasoning_source": Value("string"),
        "transcript_country_code": Value("string"),
        "messages": List(MESSAGE_FEATURE),
    }
)
IMAGE_COLUMNS = ("frames", "image", "images")


@dataclass
class BuildResult:
    out_dir: Path
    dataset_dir: Path
    hub_dir: Path
    card_path: Path
    split_counts: dict[str, int]
    group_counts: dict[str, int]
    drops: list[dict[str, Any]]
    stats: dict[str, Any]
    dataset: DatasetDict | None = field(default=None, repr=False)

    def summary(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir),
            "dataset_dir": str(self.dataset_dir),
            "hub_dir": str(self.hub_dir),
            "card": str(self.card_path),
            "splits": dict(self.split_counts),
            "groups": dict(self.group_counts),
            "rows": sum(self.split_counts.values()),
            "drops": len(self.drops),
            "drop_reasons": dict(self.stats.get("drops", {}).get("by_reason", {})),
            # rounds left out because a step failed (not because a filter judged them): item failures
            "failed_rounds": [{"id": d.get("id"), "reasons": d.get("reasons")} for d in self.drops
                              if d.get("stage") == "reasoning"],
        }


# ---------------------------------------------------------------- split assignment


def split_group(example: Example) -> str:
    """The unit that must not straddle splits: the challenge, else the video."""
    if example.challenge_token:
        return f"challenge:{example.challenge_token}"
    return f"video:{example.video_id}"


def _unit_hash(seed: int, purpose: str, group: str) -> float:
    digest = hashlib.sha256(f"{seed}\x00{purpose}\x00{group}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def count_test_groups(n_groups: int, test_challenges: int, max_test_fraction: float | None = DEFAULT_MAX_TEST_FRACTION) -> int:
    """How many groups the count policy puts in test: `test_challenges`, capped at
    max(1, floor(max_test_fraction * n_groups)) so a small build keeps most of its groups for
    training (51 challenges -> 10 test, not 50), and always leaving train one group."""
    if test_challenges < 0:
        raise ValueError(f"test_challenges must be >= 0, got {test_challenges}")
    if max_test_fraction is not None and not 0.0 < max_test_fraction <= 1.0:
        raise ValueError(f"max_test_fraction must be in (0, 1], got {max_test_fraction}")
    if n_groups < 2 or test_challenges == 0:
        return 0
    wanted = test_challenges
    if max_test_fraction is not None:
        # the epsilon keeps e.g. 0.29 * 100 at 29 (it computes to 28.999...)
        wanted = min(wanted, max(1, math.floor(max_test_fraction * n_groups + 1e-9)))
    return min(wanted, n_groups - 1)


def assign_splits(
    groups: Iterable[str],
    *,
    test_fraction: float | None = None,
    test_challenges: int = 50,
    max_test_fraction: float | None = DEFAULT_MAX_TEST_FRACTION,
    val_fraction: float = 0.0,
    seed: int = 0,
) -> dict[str, str]:
    """Map each group to train/validation/test from a hash of (seed, group).

    With `test_fraction` a group is test when its hash falls under the fraction, so its split stays
    put when later releases add groups. Without it, the groups with the smallest hashes are test:
    `test_challenges` of them, capped at max(1, floor(max_test_fraction * groups)) (see
    `count_test_groups`; `max_test_fraction=None` lifts the cap; it does not apply to
    `test_fraction`, which is itself the share). Whenever a test set is asked for and there are
    >= 2 groups, test gets at least one group and train keeps at least one.
    """
    unique = sorted(set(groups))
    if not unique:
        return {}
    if len(unique) == 1:
        return {unique[0]: SPLIT_TRAIN}
    test_hash = {g: _unit_hash(seed, "test", g) for g in unique}
    by_test_hash = sorted(unique, key=lambda g: (test_hash[g], g))
    if test_fraction is not None:
        if not 0.0 <= test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
        test = {g for g in unique if test_hash[g] < test_fraction}
        wants_test = test_fraction > 0
    else:
        test = set(by_test_hash[: count_test_groups(len(unique), test_challenges, max_test_fraction)])
        wants_test = test_challenges > 0
    if wants_test and not test:
        test.add(by_test_hash[0])
    if len(test) == len(unique):
        test.discard(by_test_hash[-1])

    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    rest = [g for g in unique if g not in test]
    val_hash = {g: _unit_hash(seed, "validation", g) for g in rest}
    val = {g for g in rest if val_hash[g] < val_fraction}
    if len(val) == len(rest):  # keep train non-empty
        val.discard(max(rest, key=lambda g: (val_hash[g], g)))
    return {g: SPLIT_TEST if g in test else SPLIT_VALIDATION if g in val else SPLIT_TRAIN for g in unique}


# ---------------------------------------------------------------- row validation


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_image(path: str | None, what: str) -> str | None:
    """None when `path` is a decodable image, else the drop reason."""
    from PIL import Image as PILImage, UnidentifiedImageError

    if not path:
        return f"{what} missing: empty path"
    p = Path(path)
    if not p.is_file():
        return f"{what} missing: {path}"
    try:
        with PILImage.open(p) as img:
            img.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        return f"{what} unreadable: {path}: {exc}"
    return None


def _coerce_clue(raw: Any, n_frames: int) -> tuple[dict[str, Any] | None, str | None]:
    if is_dataclass(raw):
        raw = asdict(raw)
    if not isinstance(raw, dict):
        return None, f"malformed clue: expected a mapping, got {type(raw).__name__}"
    text = raw.get("text")
    if not isinstance(text, str) or not text.strip():
        return None, "malformed clue: empty text"
    frame_index = raw.get("frame_index")
    if frame_index is not None and not (isinstance(frame_index, int) and 0 <= frame_index < n_frames):
        return None, f"malformed clue: frame_index {frame_index!r} outside the {n_frames} frames"
    for key in ("start_s", "end_s"):
        if raw.get(key) is not None and not _is_number(raw[key]):
            return None, f"malformed clue: {key} {raw[key]!r} is not a number"
    return {
        "text": text,
        "category": None if raw.get("category") is None else str(raw["category"]),
        "entity": None if raw.get("entity") is None else str(raw["entity"]),
        "start_s": None if raw.get("start_s") is None else float(raw["start_s"]),
        "end_s": None if raw.get("end_s") is None else float(raw["end_s"]),
        "frame_index": frame_index,
    }, None


def example_problems(example: Example, *, require_transcript: bool = True) -> list[str]:
    """Every reason this row cannot be published (empty list: it can)."""
    problems: list[str] = []
    if not isinstance(example.id, str) or not example.id:
        problems.append("no id")
    if not (_is_number(example.lat) and _is_number(example.lng) and -90 <= example.lat <= 90 and -180 <= example.lng <= 180):
        problems.append(f"no truth: lat/lng {example.lat!r}, {example.lng!r}")
    if require_transcript and not (isinstance(example.transcript, str) and example.transcript.strip()):
        problems.append("empty transcript")
    if not (isinstance(example.reasoning, str) and example.reasoning.strip()):
        problems.append("empty reasoning")
    frames = list(example.frames or [])
    if not frames and not example.image:
        problems.append("no image: no frames and no panorama")
    if len(example.frame_times_s or []) != len(frames):
        problems.append(f"frame_times_s has {len(example.frame_times_s or [])} entries for {len(frames)} frames")
    for frame in frames:
        if (reason := _check_image(frame, "frame")) is not None:
            problems.append(reason)
    if example.image and (reason := _check_image(example.image, "image")) is not None:
        problems.append(reason)
    for raw in example.clues or []:
        if (reason := _coerce_clue(raw, len(frames))[1]) is not None:
            problems.append(reason)
    for name in ("points", "time_limit_s", "round"):
        value = getattr(example, name)
        if value is not None and not (isinstance(value, int) and not isinstance(value, bool)):
            problems.append(f"malformed {name}: {value!r}")
    if example.distance_km is not None and not _is_number(example.distance_km):
        problems.append(f"malformed distance_km: {example.distance_km!r}")
    return problems


def best_frame_index(example: Example) -> int:
    """The frame most clues were aligned to; ties go to the frame nearest the middle of the round."""
    n = len(example.frames)
    votes = Counter(c.get("frame_index") for c in (example.clues or []) if isinstance(c, dict))
    middle = (n - 1) / 2
    return max(range(n), key=lambda i: (votes.get(i, 0), -abs(i - middle), -i))


# ---------------------------------------------------------------- rows


def build_messages(reasoning: str, prompt: str = REASONING_PROMPT) -> list[dict[str, Any]]:
    """The TRL conversational VLM record: an image placeholder + prompt, then the reasoning."""
    return [
        {"role": "user", "content": [{"type": "image", "text": None}, {"type": "text", "text": prompt}]},
        {"role": "assistant", "content": [{"type": "text", "text": reasoning}]},
    ]


def _image_value(path: str, name: str) -> dict[str, Any]:
    # Bytes go in the row itself so the parquet shards are self-contained; the stored "path" is a
    # plain file name, never the builder's local path.
    return {"bytes": Path(path).read_bytes(), "path": name}


def example_to_row(example: Example) -> dict[str, Any]:
    frames = list(example.frames or [])
    stem = safe_name(example.id)
    frame_values = [_image_value(p, f"{stem}_frame{i:02d}{Path(p).suffix.lower()}") for i, p in enumerate(frames)]
    if example.image:
        image_value = _image_value(example.image, f"{stem}_image{Path(example.image).suffix.lower()}")
    else:
        image_value = frame_values[best_frame_index(example)]
    clues = [_coerce_clue(c, len(frames))[0] for c in example.clues or []]
    return {
        "id": example.id,
        "video_id": example.video_id,
        "channel": example.channel,
        "video_url": example.video_url,
        "challenge_token": example.challenge_token,
        "round": example.round,
        "lat": float(example.lat),
        "lng": float(example.lng),
        "country": example.country,
        "country_code": example.country_code,
        "continent": example.continent,
        "city": example.city,
        "points": example.points,
        "distance_km": None if example.distance_km is None else float(example.distance_km),
        "time_limit_s": example.time_limit_s,
        "forbid_moving": example.forbid_moving,
        "transcript": example.transcript or "",
        "clues": clues,
        "frames": frame_values,
        "frame_times_s": [float(t) for t in example.frame_times_s or []],
        "image": image_value,
        "images": [image_value],
        "reasoning": example.reasoning,
        "reasoning_source": example.reasoning_source,
        "transcript_country_code": example.transcript_country_code,
        "messages": build_messages(example.reasoning),
    }


def _rows(examples: list[Example]) -> Iterator[dict[str, Any]]:
    for example in examples:
        yield example_to_row(example)


# ---------------------------------------------------------------- build


def _drop(example_id: Any, reasons: list[str], **extra: Any) -> dict[str, Any]:
    return {"id": str(example_id), "reasons": reasons, "stage": BUILD_STAGE, **extra}


def _normalise_upstream_drop(raw: Any, index: int) -> dict[str, Any]:
    if is_dataclass(raw):
        raw = asdict(raw)
    if not isinstance(raw, dict):
        return _drop(f"upstream#{index}", [f"malformed drop record: {raw!r}"[:300]])
    record = dict(raw)
    reasons = record.get("reasons")
    if isinstance(reasons, str):
        reasons = [reasons]
    if not isinstance(reasons, list) or not reasons:
        reasons = ["unspecified reason (upstream drop record had no reasons)"]
    record["reasons"] = [str(r) for r in reasons]
    record["id"] = str(record.get("id", f"upstream#{index}"))
    return record


def write_parquet_shards(ds: Dataset, data_dir: Path, split: str, max_shard_bytes: int) -> list[Path]:
    """data/<split>-0000i-of-0000N.parquet, the layout `push_to_hub` uses and the card's configs name."""
    data_dir.mkdir(parents=True, exist_ok=True)
    num_shards = max(1, math.ceil(ds.data.nbytes / max_shard_bytes))
    num_shards = min(num_shards, max(1, len(ds)))
    paths = []
    for index in range(num_shards):
        path = data_dir / f"{split}-{index:05d}-of-{num_shards:05d}.parquet"
        ds.shard(num_shards=num_shards, index=index, contiguous=True).to_parquet(str(path))
        paths.append(path)
    return paths


_STALE_BUILD = re.compile(r"^\.build-(?:(\d+)-)?[A-Za-z0-9_]+$")  # ours, or an older build's mkdtemp name
_STALE_OLD = re.compile(r"^\.(?:dataset|hub)\.old-(\d+)-[0-9a-f]+$")  # naviclues.fsutil.swap_in_dir's name


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except (OverflowError, OSError):
        return False
    return True


def remove_stale_work(out_dir: Path) -> list[Path]:
    """Delete the work and moved-aside folders that killed builds left in `out_dir`.

    A folder whose name carries the pid of a live process is left alone (its build may still be
    running); one without a pid comes from an older builder and is removed. Returns what was removed.
    """
    removed = []
    for entry in out_dir.iterdir() if out_dir.is_dir() else ():
        match = _STALE_BUILD.match(entry.name) or _STALE_OLD.match(entry.name)
        if match is None or not entry.is_dir() or entry.is_symlink():
            continue
        if match.group(1) is not None and _pid_alive(int(match.group(1))):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed


def build_dataset(
    examples: list[Example],
    drops: list[dict] | None,
    out_dir: Path | str,
    *,
    test_fraction: float | None = None,
    test_challenges: int = 50,
    max_test_fraction: float | None = DEFAULT_MAX_TEST_FRACTION,
    val_fraction: float = 0.0,
    seed: int = 0,
    filters_applied: dict | None = None,
    require_transcript: bool = True,
    title: str = "NaviClues",
    provenance: dict | None = None,
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
) -> BuildResult:
    """Validate, split, write OUT/dataset and OUT/hub (with the card), and return what was built.

    Split policy (see `assign_splits`): by challenge token, else video. `test_fraction` puts each
    group in test by hash; otherwise `test_challenges` groups go to test, capped at
    max(1, floor(max_test_fraction * groups)) (default 0.2; None lifts the cap). `val_fraction`
    of the remaining groups go to validation. The policy is recorded in stats.json and the card.
    Work folders left by an earlier, killed build are removed first (`remove_stale_work`).
    """
    from annotate.card import compute_stats, write_card

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_work(out_dir)
    all_drops = [_normalise_upstream_drop(d, i) for i, d in enumerate(drops or [])]

    kept: list[Example] = []
    seen: set[str] = set()
    for example in examples:
        problems = example_problems(example, require_transcript=require_transcript)
        if not problems and example.id in seen:
            problems = [f"duplicate id: {example.id}"]
        if problems:
            all_drops.append(_drop(getattr(example, "id", "?"), problems, video_id=getattr(example, "video_id", None)))
            continue
        seen.add(example.id)
        kept.append(example)
    kept.sort(key=lambda e: e.id)

    groups = {e.id: split_group(e) for e in kept}
    split_of_group = assign_splits(
        groups.values(), test_fraction=test_fraction, test_challenges=test_challenges,
        max_test_fraction=max_test_fraction, val_fraction=val_fraction, seed=seed,
    )
    by_split: dict[str, list[Example]] = {s: [] for s in SPLIT_ORDER}
    for example in kept:
        by_split[split_of_group[groups[example.id]]].append(example)
    # train always exists (possibly empty) so loaders find the split they expect
    present = [s for s in SPLIT_ORDER if by_split[s] or s == SPLIT_TRAIN]

    work = Path(tempfile.mkdtemp(prefix=f".build-{os.getpid()}-", dir=out_dir))  # the pid marks it as ours
    try:
        cache_dir = work / "cache"
        splits: dict[str, Dataset] = {}
        for split in present:
            rows = by_split[split]
            fingerprint = hashlib.sha256(f"{split}\x00{seed}\x00".encode() + "\x00".join(e.id for e in rows).encode()).hexdigest()[:32]
            if rows:
                splits[split] = Dataset.from_generator(
                    _rows, features=FEATURES, gen_kwargs={"examples": rows}, cache_dir=str(cache_dir),
                    split=split, fingerprint=fingerprint,
                )
            else:
                splits[split] = Dataset.from_dict({k: [] for k in FEATURES}, features=FEATURES, split=split)
        dataset_dict = DatasetDict(splits)

        new_dataset = work / "dataset"
        new_hub = work / "hub"
        # one shard per split even when empty: datasets cannot reload a zero-shard split
        dataset_dict.save_to_disk(str(new_dataset), num_shards={s: 1 for s in dataset_dict})
        for split, ds in dataset_dict.items():
            write_parquet_shards(ds, new_hub / "data", split, max_shard_bytes)

        split_counts = {s: len(ds) for s, ds in dataset_dict.items()}
        group_counts = {s: len({groups[e.id] for e in by_split[s]}) for s in present}
        stats = compute_stats(dataset_dict, all_drops, filters_applied=filters_applied)
        stats["groups"] = group_counts
        stats["split_policy"] = {
            "unit": "challenge token, else video id",
            "test_fraction": test_fraction,
            "test_challenges": None if test_fraction is not None else test_challenges,
            "max_test_fraction": None if test_fraction is not None else max_test_fraction,
            "val_fraction": val_fraction,
            "seed": seed,
        }
        with (new_dataset / "drops.jsonl").open("w", encoding="utf-8") as fh:
            for record in all_drops:
                fh.write(json.dumps(record, ensure_ascii=False, sort_keys=True, default=str) + "\n")
        atomic_write_json(new_dataset / "stats.json", stats)

        card_text = write_card(
            dataset_dict, all_drops, new_hub / "README.md", new_hub / "plots",
            filters_applied=filters_applied, title=title, provenance=provenance, stats=stats,
            hub_data_dir=new_hub / "data",
        )
        atomic_write_text(new_dataset / "DATASET_CARD.md", card_text)
        shutil.copytree(new_hub / "plots", new_dataset / "plots")
        del dataset_dict, splits  # release the memory-mapped cache before the folder goes away

        swap_in_dir(new_dataset, out_dir / "dataset")
        swap_in_dir(new_hub, out_dir / "hub")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    built = load_from_disk(str(out_dir / "dataset"))
    return BuildResult(
        out_dir=out_dir,
        dataset_dir=out_dir / "dataset",
        hub_dir=out_dir / "hub",
        card_path=out_dir / "hub" / "README.md",
        split_counts=split_counts,
        group_counts=group_counts,
        drops=all_drops,
        stats=stats,
        dataset=built,
    )


__all__ = [
    "BuildResult",
    "FEATURES",
    "IMAGE_COLUMNS",
    "assign_splits",
    "best_frame_index",
    "build_dataset",
    "build_messages",
    "example_problems",
    "example_to_row",
    "remove_stale_work",
    "split_group",
    "count_test_groups",
]
