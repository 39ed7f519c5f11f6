"""Navig inference: Reasoner → Searcher → Guesser over batches of images, resumable to JSONL.

Per batch of images the models are called a fixed number of times, whatever the number of crops:
one Reasoner `generate`, one detector forward pass (all prompts at once), one CLIP pass for the
guidebook, one `generate` for every crop-level question (sign text + comments), one Guesser
`generate`. Every tool is loaded once per `NavigPipeline`. Each image yields a row with a
prediction or a failure reason and a full trace; a stage that fails is recorded in the trace
(`errors`) and the image goes on with what it has. VLM requests fail one by one
(`VLM.generate_each`): a request that still fails after the backend's retries marks only its own
image.

A failed row says why in `failure` and what kind of failure it was in `failure_kind`:
`image` (unreadable file), `backend` (the Guesser's VLM request failed: server down, HTTP error),
`pipeline` (the Guesser stage itself crashed) or `unparseable` (the model answered, but nothing
placeable could be read). `backend` and `pipeline` failures say nothing about the model, so
`locate_to_jsonl(retry_failed=True)` locates those images again; the new line supersedes the old
one (every reader keeps the LAST line per id).

A prediction file is resumed only under the settings it was made with: `<out>.settings.json`
records them (`run_settings`: model, adapter, backend, prompts, options, guidebook and geocoder,
with the content identity of every local folder). Lines made with other settings are refused
(`SettingsMismatch`, naming what differs) or, with `restart=True`, set aside before starting over.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from PIL import Image

from naviclues.fsutil import atomic_write_json, fingerprint, read_json
from naviclues.secrets import redact_urls
from navig.backends.base import VLM, VLMError, VLMRequest, load_vlm
from navig.guesser import build_guesser_prompt, parse_answer, resolve_prediction
from navig.images import UNREADABLE, load_rgb
from navig.prompts import REASONING_PROMPT
from navig.reasoner import Reasoner
from navig.searcher.comments import CropCommenter
from navig.searcher.detector import DEFAULT_DETECTOR, DEFAULT_PROMPTS, ZeroShotDetector, select_crops
from navig.searcher.ocr import VLMOcr

log = logging.getLogger(__name__)

DEFAULT_MODEL = "Qwen/Qwen2-VL-7B-Instruct"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
# failure_kind is one of image | backend | pipeline | unparseable (see the module docstring);
# infrastructure failures: redoing them can succeed without changing the model or the image
RETRYABLE_FAILURE_KINDS = frozenset({"backend", "pipeline"})


@dataclass
class LocateOptions:
    model: str = DEFAULT_MODEL
    adapter: str | None = None
    backend: str = "transformers"  # "transformers" | "openai"
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    guidebook: Path | None = None
    geocoder: str = "offline"  # "offline" | "nominatim"
    geocoder_url: str | None = None  # self-hosted Nominatim, e.g. http://localhost:8080
    use_reasoner: bool = True
    use_searcher: bool = True
    detector: str | None = DEFAULT_DETECTOR  # None: no crops (guidebook/OCR/comments idle)
    batch_size: int = 4
    box_threshold: float = 0.5  # paper: 0.5/0.5 on GWS5k, 0.8/0.6 on Im2GPS3k
    text_threshold: float = 0.5
    top_k: int = 3
    min_crop_px: int = 224
    device: str = "cpu"
    dtype: str | None = None
    max_new_tokens: int = 512  # Reasoner
    crop_max_new_tokens: int = 96  # sign text and crop comments
    guess_max_new_tokens: int = 128
    guess_temperature: float = 0.0
    detector_prompts: tuple[str, ...] = DEFAULT_PROMPTS
    ocr: str = "vlm"  # "vlm" (the paper's prompt) | "rapidocr" (offline engine)
    ocr_labels: tuple[str, ...] | None = None  # labels whose crops are read; None = all (as released)
    guidebook_k: int = 3
    guidebook_max_distance: float | None = 30.0  # image↔image squared L2 (paper)
    guidebook_max_cross_distance: float | None = 1.5  # crop↔clue text, normalised CLIP
    geocoder_top_k: int = 3
    concurrency: int = 4  # openai backend: parallel requests
    vlm_max_batch: int = 64  # transformers backend: sequences per padded generate
    reasoning_prompt: str = REASONING_PROMPT

    def __post_init__(self) -> None:
        """Refuse a bad setting here, before a model or a detector is loaded (seconds to minutes)."""
        # lists from YAML (`--option detector_prompts=[a, b]`) become tuples: options are cache keys
        self.detector_prompts = tuple(self.detector_prompts)
        if self.ocr_labels is not None:
            self.ocr_labels = tuple(self.ocr_labels)
        choices = {"backend": ("transformers", "openai"), "geocoder": ("offline", "nominatim"),
                   "ocr": ("vlm", "rapidocr")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}={getattr(self, name)!r}: choose one of {', '.join(allowed)}")
        for name in ("batch_size", "top_k", "guidebook_k", "geocoder_top_k", "concurrency", "vlm_max_batch",
                     "max_new_tokens", "crop_max_new_tokens", "guess_max_new_tokens"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)!r}: must be a whole number >= 1")
        for name in ("box_threshold", "text_threshold"):
            if not 0.0 <= float(getattr(self, name)) <= 1.0:
                raise ValueError(f"{name}={getattr(self, name)!r}: must be between 0 and 1")
        if self.min_crop_px < 0 or self.guess_temperature < 0:
            raise ValueError("min_crop_px and guess_temperature must be >= 0")


def locate_options(**values) -> LocateOptions:
    """`LocateOptions(**values)` with an unknown name reported as such (a typo in `--option`)."""
    known = {f.name for f in fields(LocateOptions)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return LocateOptions(**values)


@dataclass
class _Item:
    id: str
    path: Path
    image: Image.Image | None = None
    failure: str | None = None
    failure_kind: str | None = None
    trace: dict = field(default_factory=dict)


def _new_trace() -> dict:
    return {"reasoning": None, "detections": [], "crops": [], "guidebook_hits": [], "ocr": [],
            "geocoder_hits": [], "comments": [], "prompts": {}, "raw_answer": None, "parsed": None,
            "policy": None, "tool_usage": {}, "timings": {}, "errors": []}


class NavigPipeline:
    """Loads the VLM and the Searcher tools once; `locate` runs one batch end to end."""

    def __init__(self, options: LocateOptions, *, vlm: VLM | None = None, detector: ZeroShotDetector | None = None,
                 guidebook=None, geocoder=None) -> None:
        self.options = o = options
        self.vlm = vlm or _build_vlm(o)
        self.reasoner = Reasoner(self.vlm, prompt=o.reasoning_prompt, max_new_tokens=o.max_new_tokens)
        self.detector = detector if detector is not None else _build_detector(o)
        self.guidebook = guidebook if guidebook is not None else _build_guidebook(o)
        self.geocoder = geocoder if geocoder is not None else _build_geocoder(o)
        self.ocr = VLMOcr(o.crop_max_new_tokens)
        self.rapid_ocr = None
        if o.ocr == "rapidocr" and o.use_searcher:
            from navig.searcher.ocr import RapidOcr

            self.rapid_ocr = RapidOcr()
        self.commenter = CropCommenter(o.crop_max_new_tokens)
        self._usage_start = self._usage_totals()

    # ---- stages -------------------------------------------------------------------------
    def _stage(self, items: list[_Item], name: str, fn) -> None:
        """Run a batch-level stage, time it, and record a failure in every trace instead of raising."""
        start = time.perf_counter()
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - per-item records, never a crashed batch
            log.exception("stage %s failed", name)
            for it in items:
                it.trace["errors"].append(f"{name}: {type(exc).__name__}: {exc}")
        share = (time.perf_counter() - start) / max(1, len(items))
        for it in items:
            it.trace["timings"][name] = round(share, 4)

    def locate(self, batch: list[tuple[str, Path]]) -> list[dict]:
        o = self.options
        items = [_Item(id=str(i), path=Path(p), trace=_new_trace()) for i, p in batch]
        for it in items:
            try:
                it.image = load_rgb(it.path)
                it.trace["image_size"] = list(it.image.size)
            except UNREADABLE as exc:
                it.failure = f"unreadable image {it.path}: {exc}"
                it.failure_kind = "image"
        live = [it for it in items if it.image is not None]
        crops: dict[str, list] = {it.id: [] for it in live}
        stats_before = self.vlm.stats.snapshot()

        if o.use_reasoner and live:
            def reason():
                for it, text in zip(live, self.reasoner.reason_each([it.image for it in live])):
                    if isinstance(text, VLMError):  # this image goes on without a reasoning
                        it.trace["errors"].append(f"reasoner: {text}")
                    else:
                        it.trace["reasoning"] = text
            self._stage(live, "reasoner", reason)

        if o.use_searcher and self.detector is not None and live:
            def detect():
                for it, dets in zip(live, self.detector.detect([it.image for it in live])):
                    it.trace["detections"] = [asdict(d) for d in dets]
                    crops[it.id] = select_crops(it.image, dets, top_k=o.top_k, min_crop_px=o.min_crop_px)
                    it.trace["crops"] = [{"index": k, "label": c.label, "box": list(c.box), "score": c.score,
                                          "size": list(c.image.size)} for k, c in enumerate(crops[it.id])]
            self._stage(live, "detector", detect)

            if self.guidebook is not None:
                def retrieve():
                    flat = [(it, k, c) for it in live for k, c in enumerate(crops[it.id])]
                    hits = self.guidebook.search_images([c.image for _, _, c in flat], k=o.guidebook_k,
                                                        max_distance=o.guidebook_max_distance,
                                                        max_cross_distance=o.guidebook_max_cross_distance)
                    for (it, k, c), crop_hits in zip(flat, hits):
                        it.trace["guidebook_hits"].extend(
                            {"crop": k, "label": c.label, **asdict(h)} for h in crop_hits)
                self._stage(live, "guidebook", retrieve)

            self._stage(live, "crop_vlm", lambda: self._crop_questions(live, crops))
            self._stage(live, "geocoder", lambda: self._geocode_text(live))

        if live:
            self._stage(live, "guesser", lambda: self._guess(live))
        stats_after = self.vlm.stats.snapshot()
        batch_vlm = {k: stats_after[k] - stats_before[k] for k in stats_after}
        rows = []
        for it in items:
            t = it.trace
            if it.failure is None and t.get("prediction") is None:
                if t.get("failure"):
                    it.failure, it.failure_kind = t["failure"], t["failure_kind"]
                else:  # the guesser stage crashed before answering this image
                    guesser_errors = [e for e in t["errors"] if e.startswith("guesser")]
                    it.failure = guesser_errors[-1] if guesser_errors else "no answer from the guesser"
                    it.failure_kind = "pipeline"
            t["tool_usage"].update({
                "detections": len(t["detections"]), "crops": len(t["crops"]),
                "guidebook_hits": len(t["guidebook_hits"]),
                "ocr_texts": sum(1 for x in t["ocr"] if x.get("text")),
                "geocoder_queries": len(t["geocoder_hits"]),
                "batch_vlm_calls": batch_vlm, "batch_size": len(items),
            })
            rows.append({"id": it.id, "image": str(it.path), "prediction": t.pop("prediction", None),
                         "failure": it.failure, "failure_kind": it.failure_kind if it.failure else None,
                         "policy": t.get("policy"), "trace": t})
            t.pop("failure", None)
            t.pop("failure_kind", None)
        return rows

    def _crop_questions(self, live: list[_Item], crops: dict[str, list]) -> None:
        """Sign text and comments for every crop of the batch in ONE `generate`."""
        o = self.options
        requests: list[VLMRequest] = []
        slots: list[tuple[_Item, int, str]] = []  # (item, crop index, "ocr"|"comment")
        rapid_targets = []
        for it in live:
            for k, crop in enumerate(crops[it.id]):
                wants_ocr = o.ocr_labels is None or crop.label in o.ocr_labels
                if wants_ocr and self.rapid_ocr is None:
                    requests.append(self.ocr.request(crop.image))
                    slots.append((it, k, "ocr"))
                elif wants_ocr:
                    rapid_targets.append((it, k, crop))
                requests.append(self.commenter.request(crop.image, crop.label))
                slots.append((it, k, "comment"))
        answers = self.vlm.generate_each(requests) if requests else []
        for (it, k, kind), answer in zip(slots, answers):
            label = crops[it.id][k].label
            if isinstance(answer, VLMError):  # only this crop question is lost
                it.trace["errors"].append(f"crop_vlm: crop {k} {kind}: {answer}")
                if kind == "ocr":
                    it.trace["ocr"].append({"crop": k, "label": label, "raw": None, "text": None, "error": str(answer)})
                else:
                    it.trace["comments"].append({"crop": k, "label": label, "text": None, "error": str(answer)})
            elif kind == "ocr":
                it.trace["ocr"].append({"crop": k, "label": label, "raw": answer, "text": VLMOcr.parse(answer)})
            else:
                it.trace["comments"].append({"crop": k, "label": label, "text": answer})
        if rapid_targets:
            texts = self.rapid_ocr.read([c.image for _, _, c in rapid_targets])
            for (it, k, crop), text in zip(rapid_targets, texts):
                it.trace["ocr"].append({"crop": k, "label": crop.label, "raw": text, "text": text})

    def _geocode_text(self, live: list[_Item]) -> None:
        for it in live:
            for entry in it.trace["ocr"]:
                if not entry.get("text"):
                    continue
                record = {"crop": entry["crop"], "query": entry["text"], "hits": [], "error": None}
                try:
                    hits = self.geocoder.search(entry["text"], limit=self.options.geocoder_top_k)
                    record["hits"] = [asdict(h) for h in hits]
                except Exception as exc:  # noqa: BLE001 - one failed lookup must not sink the image
                    record["error"] = f"{type(exc).__name__}: {exc}"
                it.trace["geocoder_hits"].append(record)

    def _guess(self, live: list[_Item]) -> None:
        from navig.searcher.records import GeoHit

        o = self.options
        requests = []
        for it in live:
            t = it.trace
            ocr_by_label: dict[str, list[str]] = {}
            for x in t["ocr"]:
                if x.get("text"):
                    ocr_by_label.setdefault(x["label"], []).append(x["text"])
            map_hits = {g["query"]: [GeoHit(**h) for h in g["hits"]] for g in t["geocoder_hits"] if g["hits"]}
            comments: dict[str, list[str]] = {}
            for x in t["comments"]:
                if x["text"]:
                    comments.setdefault(x["label"], []).append(x["text"])
            clues: dict[str, list[str]] = {}
            for h in t["guidebook_hits"]:
                clues.setdefault(h["label"], []).append(h["clue"])
            prompt, usage = build_guesser_prompt(reasoning=t["reasoning"], ocr_by_label=ocr_by_label,
                                                 map_hits=map_hits, comments_by_label=comments, clues_by_label=clues)
            t["prompts"] = {"reasoner": self.reasoner.prompt if o.use_reasoner else None, "guesser": prompt}
            t["tool_usage"].update(usage)
            requests.append(VLMRequest(images=[it.image], prompt=prompt, max_new_tokens=o.guess_max_new_tokens,
                                       temperature=o.guess_temperature))
        answers = self.vlm.generate_each(requests)
        for it, answer in zip(live, answers):
            if isinstance(answer, VLMError):  # no answer at all: an infrastructure failure, retryable
                it.trace["errors"].append(f"guesser: {answer}")
                it.trace.update(prediction=None, failure=f"guesser: {answer}", failure_kind="backend")
                continue
            resolution = resolve_prediction(parse_answer(answer), self.geocoder)
            it.trace.update(raw_answer=answer, parsed=resolution.parsed, policy=resolution.policy,
                            prediction=resolution.prediction, failure=resolution.failure,
                            failure_kind="unparseable" if resolution.failure else None)

    def _usage_totals(self) -> dict:
        return {"vlm": self.vlm.stats.snapshot(),
                "detector_passes": getattr(self.detector, "forward_passes", 0),
                "geocoder_lookups": getattr(self.geocoder, "lookups", getattr(self.geocoder, "requests", 0))}

    def tool_usage(self) -> dict:
        """What this pipeline used (backends shared with earlier runs count on; their start is subtracted)."""
        now, start = self._usage_totals(), self._usage_start
        return {"vlm": {k: v - start["vlm"].get(k, 0) if isinstance(v, (int, float)) else v
                        for k, v in now["vlm"].items()},
                "detector_passes": now["detector_passes"] - start["detector_passes"],
                "geocoder_lookups": now["geocoder_lookups"] - start["geocoder_lookups"]}


# ---- JSONL driver -----------------------------------------------------------------------
def failure_kind(row: dict) -> str | None:
    """The row's `failure_kind` (None when it has a prediction). Rows written before the field
    existed are classified from their `failure` text the way the pipeline wrote it then."""
    failure = row.get("failure")
    if not failure and row.get("prediction") is not None:
        return None
    kind = row.get("failure_kind")
    if kind:
        return kind
    text = str(failure or "")
    if text.startswith("unreadable image"):
        return "image"
    if text.startswith("guesser:") or text == "no answer from the guesser" or not text:
        return "backend"  # the old pipeline wrote a failed guesser request this way
    return "unparseable"


def needs_retry(row: dict) -> bool:
    """True for a failed row whose cause was infrastructure (see RETRYABLE_FAILURE_KINDS), and for a
    prediction made while a stage failed (`trace.errors`: the Reasoner or a tool was down), which
    is not the configured method's answer."""
    trace = row.get("trace") if isinstance(row.get("trace"), dict) else {}
    return failure_kind(row) in RETRYABLE_FAILURE_KINDS or bool(row.get("prediction") and trace.get("errors"))


def image_digest(path: Path | str) -> str | None:
    """Hash of an image file's bytes (None when it cannot be read): a line is this image's answer only
    while the file still holds the bytes it was made from."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    except OSError:
        return None


def pending(items: list[tuple[str, Path]], done: dict[str, dict], *,
            retry_failed: bool = False) -> tuple[list[tuple[str, Path]], set[str], set[str]]:
    """(todo, retried ids, changed ids) for (id, image) items against the lines already written:
    an id is done unless `retry_failed` and its line `needs_retry`, or its image file no longer holds
    the bytes its line was made from (`image_sha256`: a benchmark edited under the same ids)."""
    unique: dict[str, Path] = {}
    for ident, path in items:
        unique.setdefault(str(ident), Path(path))
    retry = {i for i in unique if i in done and retry_failed and needs_retry(done[i])}
    changed = {i for i in unique if i in done and i not in retry and done[i].get("image_sha256")
               and done[i]["image_sha256"] != image_digest(unique[i])}
    todo = [(i, p) for i, p in unique.items() if i not in done or i in retry or i in changed]
    return todo, retry, changed


def read_done(out: Path | str, *, repair: bool = True) -> dict[str, dict]:
    """Rows already written, by id; the LAST line of an id wins (a retried row supersedes the
    failure before it), as in `navig.eval.metrics.load_predictions`.

    A truncated last line (a crash mid-write) is ignored; with `repair` (the default) it is also
    cut off so the file stays valid JSONL for the appends that follow (`repair=False`: read-only,
    e.g. for a dry run). A corrupt line elsewhere is an error naming the file and byte offset.
    """
    out = Path(out)
    done: dict[str, dict] = {}
    if not out.exists():
        return done
    good_end = 0
    with open(out, "rb") as fh:
        data = fh.read()
    offset = 0
    for raw in data.splitlines(keepends=True):
        offset += len(raw)
        try:
            row = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            if offset == len(data):
                break  # torn last line: dropped below
            raise ValueError(f"{out}: corrupt line at byte {offset - len(raw)} (not the last line)")
        if isinstance(row, dict) and "id" in row:
            done[str(row["id"])] = row
        good_end = offset
    if not repair:
        return done
    if good_end < len(data):
        log.warning("%s: dropping a truncated last line (%d bytes)", out, len(data) - good_end)
        with open(out, "rb+") as fh:
            fh.truncate(good_end)
    elif data and not data.endswith(b"\n"):
        with open(out, "ab") as fh:
            fh.write(b"\n")
    return done


# ---- the settings a prediction file was made with -----------------------------------------
SETTINGS_SUFFIX = ".settings.json"
# how fast or where a run goes, never what it answers: a resume may change these
RESULT_NEUTRAL_OPTIONS = frozenset({"batch_size", "device", "concurrency", "vlm_max_batch", "api_key_env"})
# settings only the Searcher reads (idle without it or without a detector) and only the Reasoner reads
# (the adapter answers the Reasoner's requests only): they do not tell apart runs that never used them
SEARCHER_OPTIONS = frozenset({"guidebook", "detector", "box_threshold", "text_threshold", "top_k", "min_crop_px",
                              "crop_max_new_tokens", "detector_prompts", "ocr", "ocr_labels", "guidebook_k",
                              "guidebook_max_distance", "guidebook_max_cross_distance", "geocoder_top_k"})
REASONER_OPTIONS = frozenset({"adapter", "reasoning_prompt", "max_new_tokens"})
LOCAL_PATH_OPTIONS = ("model", "adapter", "guidebook", "detector")
_SAMPLED_FILE_BYTES = 8 << 20  # larger files are identified by their size and first and last MiB
_SAMPLE = 1 << 20


class SettingsMismatch(ValueError):
    """A prediction file holds lines made with other settings than this run's."""


def content_identity(path: Path | str) -> str:
    """What a local model / adapter / guidebook folder holds: every file's relative path, size and
    bytes. Files over 8 MiB (weights, indexes) count by their first and last MiB: retrained weights
    differ there too, and reading a 15 GB checkpoint at every start would take minutes. A copy of
    the folder is the same; a file changed in place is not."""
    root = Path(path)
    files = [root] if root.is_file() else sorted(
        p for p in root.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts))
    digest = hashlib.sha256()
    for file in files:
        size = file.stat().st_size
        digest.update(f"{file.relative_to(root).as_posix() if file != root else file.name}\0{size}\0".encode())
        with open(file, "rb") as fh:
            if size <= _SAMPLED_FILE_BYTES:
                digest.update(fh.read())
            else:
                digest.update(fh.read(_SAMPLE))
                fh.seek(-_SAMPLE, os.SEEK_END)
                digest.update(fh.read())
    return digest.hexdigest()[:16]


def _geocoder_identity(o: LocateOptions) -> str:
    if o.geocoder == "nominatim":
        return (o.geocoder_url or "https://nominatim.openstreetmap.org").rstrip("/")
    try:  # the offline gazetteer's file name carries the version of its data and builder
        from navig.searcher.geocoder import OfflineGeocoder

        return OfflineGeocoder.default_path().name
    except Exception as exc:  # noqa: BLE001 - the geocoder itself reports this when it is built
        return f"offline (unknown data: {type(exc).__name__})"


def run_settings(o: LocateOptions) -> dict[str, Any]:
    """Everything that decides this run's answers, as plain JSON values: the options (less the
    result-neutral ones and those of a stage that does not run), the content of each local model /
    adapter / guidebook / detector folder, the pipeline's prompt texts and the geocoder's data."""
    from navig import prompts

    values = {f.name: getattr(o, f.name) for f in fields(o) if f.name not in RESULT_NEUTRAL_OPTIONS}
    if not (o.use_searcher and o.detector):
        values = {k: v for k, v in values.items() if k not in SEARCHER_OPTIONS}
    if not o.use_reasoner:
        values = {k: v for k, v in values.items() if k not in REASONER_OPTIONS}
    for name in LOCAL_PATH_OPTIONS:
        if values.get(name) and Path(str(values[name])).exists():
            values[f"{name}_content"] = content_identity(values[name])
    for name in ("base_url", "geocoder_url"):  # the record is a file: no user:password@ or ?key= in it
        if values.get(name):
            values[name] = redact_urls(str(values[name]).rstrip("/"))
    values["geocoder_data"] = redact_urls(_geocoder_identity(o))
    values["prompts"] = fingerprint({name: getattr(prompts, name) for name in prompts.__all__})
    return json.loads(json.dumps(values, default=str))  # tuples → lists, paths → text: as read back


def settings_path(out: Path | str) -> Path:
    out = Path(out)
    return out.with_name(out.name + SETTINGS_SUFFIX)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def settings_conflict(out: Path | str, options: LocateOptions,
                      settings: dict[str, Any] | None = None) -> str | None:
    """Why the lines already in `out` cannot be resumed by a run with `options` (None: they can, or
    there are none). Reads only."""
    out = Path(out)
    n_lines = len(read_done(out, repair=False))
    if not n_lines:
        return None
    settings = settings if settings is not None else run_settings(options)
    record = settings_path(out)
    if not record.is_file():
        return (f"{out}: {n_lines} line(s) but no record of the settings they were made with ({record.name} is "
                f"missing: written by an older navig, or by hand), so they cannot be resumed as this run")
    recorded = (read_json(record) or {}).get("settings") or {}
    if recorded == settings:
        return None
    changes = []
    for key in sorted(set(recorded) | set(settings)):
        old, new = recorded.get(key, "(not used)"), settings.get(key, "(not used)")
        if old != new:
            changes.append(f"{key}: changed" if key.endswith("_content") or key == "prompts"
                           else f"{key}: {_shown(old)} -> {_shown(new)}")
    return f"{out}: {n_lines} line(s) were made with other settings ({'; '.join(changes)})"


RESTART_HINT = ("rerun with --restart (restart=True) to set those lines aside and locate again, "
                "or write to another output")


def claim_settings(out: Path | str, options: LocateOptions, *, restart: bool = False) -> dict[str, Any]:
    """Make sure the lines in `out` were made with this run's settings, then record them next to it
    (`<out>.settings.json`). On a mismatch: `SettingsMismatch`, or with `restart` the old lines and
    their record are renamed to `<out>.<fingerprint>.old` (kept, not deleted) and `out` starts over."""
    out = Path(out)
    settings = run_settings(options)
    conflict = settings_conflict(out, options, settings)
    record = settings_path(out)
    if conflict and not restart:
        raise SettingsMismatch(f"{conflict}; {RESTART_HINT}")
    if conflict:
        old = read_json(record).get("fingerprint", "unrecorded") if record.is_file() else "unrecorded"
        aside, n = out.with_name(f"{out.name}.{old}.old"), 2
        while aside.exists():
            aside, n = out.with_name(f"{out.name}.{old}.{n}.old"), n + 1
        os.replace(out, aside)
        if record.is_file():
            os.replace(record, settings_path(aside))
        log.warning("%s: %s; set aside as %s", out, conflict, aside.name)
    recorded = read_json(record) if record.is_file() else {}
    if recorded.get("settings") != settings:  # new, set aside, or a record left by a run that wrote no line
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(record, {"fingerprint": fingerprint(settings), "settings": settings})
    return settings


def collect_images(inputs: list[Path | str]) -> list[tuple[str, Path]]:
    """(id, path) for image files and folders (recursively); ids are stems or folder-relative paths."""
    items: list[tuple[str, Path]] = []
    seen: set[str] = set()
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            found = [(p.relative_to(path).with_suffix("").as_posix(), p) for p in sorted(path.rglob("*"))
                     if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
        elif path.is_file():
            found = [(path.stem, path)]
        else:
            raise FileNotFoundError(f"no such image or folder: {path}")
        for ident, p in found:
            unique, n = ident, 2
            while unique in seen:
                unique, n = f"{ident}#{n}", n + 1
            seen.add(unique)
            items.append((unique, p))
    return items


# ---- what a pipeline is built from (NavigPipeline builds them; SharedModels keeps them across runs)
def _build_vlm(o: LocateOptions) -> VLM:
    return load_vlm(o.backend, o.model, adapter=o.adapter, base_url=o.base_url, api_key_env=o.api_key_env,
                    device=o.device, dtype=o.dtype, max_batch=o.vlm_max_batch, concurrency=o.concurrency)


def _build_detector(o: LocateOptions) -> ZeroShotDetector | None:
    if not (o.use_searcher and o.detector):
        return None
    return ZeroShotDetector(o.detector, prompts=o.detector_prompts, box_threshold=o.box_threshold,
                            text_threshold=o.text_threshold, device=o.device)


def _build_guidebook(o: LocateOptions):
    if not (o.use_searcher and o.guidebook):
        return None
    from navig.searcher.guidebook import Guidebook

    return Guidebook(o.guidebook, device=o.device)


def _build_geocoder(o: LocateOptions):
    from navig.searcher.geocoder import make_geocoder

    return make_geocoder(o.geocoder, url=o.geocoder_url)


class SharedModels:
    """Backends and tools kept across runs of one process (eval/reproduce: benchmarks × ablations),
    so a 7B model or a detector is loaded once per model, not once per run. One VLM is held at a
    time: moving on to another model releases the previous one first."""

    def __init__(self) -> None:
        self._vlm: tuple[tuple, VLM] | None = None
        self._tools: dict[tuple, Any] = {}
        self.loads = 0  # VLM loads, for the curious and the tests

    def vlm(self, o: LocateOptions) -> VLM:
        key = (o.backend, o.model, o.adapter, o.base_url, o.api_key_env, o.device, o.dtype, o.vlm_max_batch,
               o.concurrency)
        if self._vlm is None or self._vlm[0] != key:
            self._vlm = None  # release the previous model before loading the next
            _free_accelerator_memory()
            self._vlm = (key, _build_vlm(o))
            self.loads += 1
        return self._vlm[1]

    def _tool(self, key: tuple, build, o: LocateOptions):
        if key not in self._tools:
            self._tools[key] = build(o)
        return self._tools[key]

    def pipeline(self, o: LocateOptions) -> "NavigPipeline":
        detector = guidebook = None  # the Searcher's tools only where it runs (not in the no-searcher ablations)
        if o.use_searcher:
            detector = self._tool(("detector", o.detector, o.detector_prompts, o.box_threshold, o.text_threshold,
                                   o.device), _build_detector, o)
            guidebook = self._tool(("guidebook", str(o.guidebook), o.device), _build_guidebook, o)
        geocoder = self._tool(("geocoder", o.geocoder, o.geocoder_url), _build_geocoder, o)
        return NavigPipeline(o, vlm=self.vlm(o), detector=detector, guidebook=guidebook, geocoder=geocoder)

    def locate(self, items: list[tuple[str, Path]], out: Path, options: LocateOptions, **kwargs) -> dict:
        """`locate_to_jsonl` with this cache's models (the `locate` hook of `navig.eval.runner.run_eval`)."""
        return locate_to_jsonl(items, out, options, pipeline=self.pipeline(options), **kwargs)


def _free_accelerator_memory() -> None:
    import gc

    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass


def locate_to_jsonl(items: list[tuple[str, Path]], out: Path, options: LocateOptions,
                    report: Path | None = None, pipeline: NavigPipeline | None = None, *,
                    retry_failed: bool = False, restart: bool = False) -> dict:
    """Locate every (id, image) not yet in `out`, appending one flushed line per image.

    Lines already in `out` are resumed only if they were made with these settings (see
    `claim_settings`): otherwise `SettingsMismatch` before anything loads, or with `restart` they
    are set aside and every image is located again.

    `retry_failed`: also locate again the ids whose last line is an infrastructure failure
    (`failure_kind` backend/pipeline, e.g. the server was down); the new line supersedes the old
    one. Unreadable images and unparseable answers are final either way. An id whose image file
    changed since its line was written (`image_sha256`) is located again too (see `pending`).

    Models load only when there is work left. Returns a summary: done (this run), skipped
    (already in `out`), retried (ids redone by `retry_failed`), changed_images (ids redone because
    their image changed), failures (this run) with their
    reasons and kinds, stage_errors (rows of this run with a prediction but a failed tool/stage in
    `trace.errors`), policies, tool_usage, seconds.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    settings = claim_settings(out, options, restart=restart)
    done = read_done(out)
    todo, retry, changed = pending(items, done, retry_failed=retry_failed)
    n_items = len({str(ident) for ident, _ in items})
    summary = {"done": 0, "skipped": n_items - len(todo), "retried": len(retry), "changed_images": len(changed),
               "failures": 0,
               "failure_reasons": {}, "failure_kinds": {}, "stage_errors": 0, "policies": {}, "tool_usage": {},
               "out": str(out), "settings_fingerprint": fingerprint(settings), "seconds": 0.0}
    start = time.perf_counter()
    policies, reasons, kinds = Counter(), Counter(), Counter()
    if todo:
        pipeline = pipeline or NavigPipeline(options)
        with open(out, "a", encoding="utf-8") as fh:
            for b in range(0, len(todo), max(1, options.batch_size)):
                batch = todo[b : b + options.batch_size]
                digests = {ident: image_digest(path) for ident, path in batch}
                for row in pipeline.locate(batch):
                    row["image_sha256"] = digests.get(row["id"])
                    fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                    fh.flush()
                    os.fsync(fh.fileno())
                    summary["done"] += 1
                    if row["failure"]:
                        summary["failures"] += 1
                        reasons[row["failure"].split(":")[0]] += 1
                        kinds[row["failure_kind"]] += 1
                    else:
                        policies[row["policy"]] += 1
                        summary["stage_errors"] += bool(row["trace"]["errors"])
        summary["tool_usage"] = pipeline.tool_usage()
    summary["policies"] = dict(policies)
    summary["failure_reasons"] = dict(reasons)
    summary["failure_kinds"] = dict(kinds)
    summary["seconds"] = round(time.perf_counter() - start, 3)
    if report is not None:
        from navig.report import render_report

        render_report(list(read_done(out).values()), Path(report))
        summary["report"] = str(report)
    return summary
