"""Model calls and wall time per image: our batched pipeline vs the released call pattern.

Both sides use the same tiny random models (built offline) on the same generated images, the same
thresholds, top-k and token budgets, and the same tool classes; only the call pattern differs.
The released pattern (github.com/SparrowZheyuan18/Navig, evaluation.py + utils.py) is re-created:

- Reasoner: one VLM call per image;
- grounding: one detector pass per object prompt per image;
- guidebook: CLIP model + FAISS index + clue texts reloaded from disk for every retrieval (first
  crop of each label, as released);
- comments and sign text: one VLM call per crop (comments: at most 3 house crops, as released);
- map search for every sign text; Guesser: one VLM call per image.

Random tiny VLMs never write a placeable answer, so their rows are failures on both sides. To
compare OUTPUTS, both call patterns then run once more against one local OpenAI-compatible server
(navig.testing.openai_server, the real protocol over HTTP on 127.0.0.1), with the same tiny
detector and guidebook. The server answers from the request alone: a Guesser prompt gets an answer
chosen by the image it carries (JSON with coordinates, a city to geocode, a country only, or an
unusable sentence), a sign-text prompt gets a place name or "None" chosen by the crop, other
prompts a fixed text. Both sides must then give every image the same prediction (or the same kind
of failure): a batching slip that hands one image's answer to another shows up as a difference.

Last stdout line: one JSON object with `calls_ratio` (original generate calls ÷ ours), `speedup`
(original time per image ÷ ours), both from the tiny models, `same_predictions` (the served
comparison) and the raw figures.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def original_locate(items, options, vlm, detectors, guidebook_dir, geocoder) -> list[dict]:
    """The released per-image, per-prompt, per-crop call pattern, one image at a time."""
    import faiss
    from PIL import Image

    from navig.backends.base import VLMRequest
    from navig.guesser import build_guesser_prompt, parse_answer, resolve_prediction
    from navig.prompts import COMMENT_TEMPLATE, OSM_GEN, REASONING_PROMPT
    from navig.searcher.detector import select_crops
    from navig.searcher.embedders import ClipEmbedder
    from navig.searcher.ocr import VLMOcr

    rows = []
    clip_loads = 0
    for ident, path in items:
        image = Image.open(path).convert("RGB")
        reasoning = vlm.generate([VLMRequest([image], REASONING_PROMPT, options.max_new_tokens, use_adapter=True)])[0]
        crops_by_label = {}
        for prompt, detector in detectors.items():  # one pass per prompt
            dets = detector.detect([image])[0]
            crops_by_label[prompt] = select_crops(image, dets, top_k=options.top_k, min_crop_px=options.min_crop_px)
        clues = {}
        for label, crops in crops_by_label.items():  # reload CLIP + index per retrieval
            if not crops:
                continue
            clip = ClipEmbedder(json.loads((guidebook_dir / "meta.json").read_text())["clip_model"])
            clip_loads += 1
            index = faiss.read_index(str(guidebook_dir / "image.faiss"))
            meta = json.loads((guidebook_dir / "meta.json").read_text())
            entries = [json.loads(x) for x in (guidebook_dir / "entries.jsonl").read_text().splitlines()]
            d, i = index.search(clip.images([crops[0].image]), min(options.guidebook_k, index.ntotal))
            clues[label] = [entries[meta["image_ids"][j]]["clue"] for dist, j in zip(d[0], i[0])
                            if j >= 0 and (options.guidebook_max_distance is None or dist <= options.guidebook_max_distance)]
        comments = {}
        for label, crops in crops_by_label.items():  # one call per crop
            k = 3 if label == "house" else len(crops)
            comments[label] = [vlm.generate([VLMRequest([c.image], COMMENT_TEMPLATE.format(item=label),
                                                        options.crop_max_new_tokens)])[0] for c in crops[:k]]
        ocr, map_hits = {}, {}
        for label, crops in crops_by_label.items():
            for c in crops:
                text = VLMOcr.parse(vlm.generate([VLMRequest([c.image], OSM_GEN, options.crop_max_new_tokens)])[0])
                if text:
                    ocr.setdefault(label, []).append(text)
                    map_hits[text] = geocoder.search(text, limit=options.geocoder_top_k)
        prompt, _ = build_guesser_prompt(reasoning=reasoning, ocr_by_label=ocr, map_hits=map_hits,
                                         comments_by_label=comments, clues_by_label=clues)
        answer = vlm.generate([VLMRequest([image], prompt, options.guess_max_new_tokens)])[0]
        res = resolve_prediction(parse_answer(answer), geocoder)
        rows.append({"id": ident, "prediction": res.prediction, "failure": res.failure})
    return rows, clip_loads


def served_answer(body: dict) -> str:
    """What the local server answers: a function of the prompt kind and the image sent (see above)."""
    import hashlib

    from navig.prompts import BASE_QUERY, OSM_GEN, REASONING_PROMPT

    content = body["messages"][0]["content"]
    text = content[-1]["text"]
    image_url = next((c["image_url"]["url"] for c in content if c["type"] == "image_url"), "")
    pick = int(hashlib.sha256(image_url.encode()).hexdigest(), 16)
    if text.startswith(BASE_QUERY):
        return [
            '{"country": "Kazakhstan", "city": "Almaty", "latitude": 43.24, "longitude": 76.95}',
            "Probably Chile: ```json\n{'country': 'Chile', 'city': 'Santiago', 'latitude': '33.45 S', "
            "'longitude': '70.66 W'}\n```",
            '{"country": "France", "city": "Paris"}',  # no coordinates: the city is geocoded
            '{"country": "Japan", "city": "unknown"}',  # the country centre
            "I cannot tell where this is.",  # a real answer with nothing placeable: a failure
        ][pick % 5]
    if text == OSM_GEN:
        return "ALMATY" if pick % 2 else "None"
    if text == REASONING_PROMPT:
        return "Cyrillic road signs and steppe: Central Asia."
    return "A green sign with white letters."


def compare_served(items, options, detector, guidebook, detectors, guidebook_dir, geocoder) -> dict:
    """Both call patterns against one local OpenAI-compatible server; predictions compared per image.

    `detector`/`guidebook`: our pipeline's loaded tools; `detectors`/`guidebook_dir`: the released
    pattern's (one detector per prompt, the guidebook reloaded from disk per retrieval)."""
    import dataclasses

    from navig.testing import openai_server

    from navig.backends.openai_backend import OpenAIVLM
    from navig.pipeline import NavigPipeline

    with openai_server(served_answer) as server:
        vlm = OpenAIVLM("served", base_url=server.url + "/v1", concurrency=8)
        served = dataclasses.replace(options, backend="openai", base_url=server.url + "/v1")
        ours_pipe = NavigPipeline(served, vlm=vlm, detector=detector, guidebook=guidebook, geocoder=geocoder)
        start = time.perf_counter()
        ours_rows = []
        for b in range(0, len(items), options.batch_size):
            ours_rows += ours_pipe.locate(items[b : b + options.batch_size])
        ours_s = time.perf_counter() - start
        ours_calls = vlm.stats.snapshot()
        vlm.stats.reset()
        start = time.perf_counter()
        orig_rows, _ = original_locate(items, options, vlm, detectors, guidebook_dir, geocoder)
        orig_s = time.perf_counter() - start
        orig_calls = vlm.stats.snapshot()
    ours_by_id = {r["id"]: r for r in ours_rows}
    differences = [r["id"] for r in orig_rows
                   if r["prediction"] != ours_by_id[r["id"]]["prediction"]
                   or bool(r["failure"]) != bool(ours_by_id[r["id"]]["failure"])]
    count = lambda rows: {"predictions": sum(1 for r in rows if r["prediction"]),  # noqa: E731
                          "failures": sum(1 for r in rows if r["failure"])}
    policies: dict[str, int] = {}
    for r in ours_rows:
        key = r["policy"] or f"failure:{r['failure_kind']}"
        policies[key] = policies.get(key, 0) + 1
    return {"ours": {**count(ours_rows), **ours_calls, "seconds": round(ours_s, 3)},
            "original": {**count(orig_rows), **orig_calls, "seconds": round(orig_s, 3)},
            "ours_outcomes": policies, "differences": differences,
            "calls_ratio": round(orig_calls["generate_calls"] / max(1, ours_calls["generate_calls"]), 2),
            "same_predictions": not differences}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=8, help="generated images")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--box-threshold", type=float, default=0.05, help="low: tiny random detectors must box")
    ap.add_argument("--text-threshold", type=float, default=0.05)
    ap.add_argument("--top-k", type=int, default=3)
    ap.add_argument("--reason-tokens", type=int, default=32)
    ap.add_argument("--crop-tokens", type=int, default=16)
    ap.add_argument("--guess-tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3, help="interleaved runs; the best time of each side counts")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads for both sides (1: stable timings on a shared machine)")
    ap.add_argument("--workdir", type=Path, default=None, help="where models/images go (default: a temp dir)")
    args = ap.parse_args()

    import os

    import torch

    torch.set_num_threads(args.threads)
    from navig.testing import make_scene_images, make_tiny_clip, make_tiny_grounding_dino, make_tiny_vlm, write_jsonl

    from navig.pipeline import LocateOptions, NavigPipeline
    from navig.searcher.detector import ZeroShotDetector
    from navig.searcher.geocoder import OfflineGeocoder
    from navig.searcher.guidebook import build_guidebook

    work = args.workdir or Path(tempfile.mkdtemp(prefix="navig-bench-"))
    os.environ.setdefault("NAVIG_CACHE", str(work / "cache"))
    vlm_dir, det_dir, clip_dir = make_tiny_vlm(work / "vlm"), make_tiny_grounding_dino(work / "det"), make_tiny_clip(work / "clip")
    images = make_scene_images(work / "images", args.images)
    gb_src = write_jsonl(work / "gb.jsonl", [{"country": "Kazakhstan", "clue": f"clue {i}", "image": str(p)}
                                             for i, p in enumerate(images[:4])])
    build_guidebook(gb_src, work / "guidebook", clip_model=str(clip_dir))
    items = [(p.stem, p) for p in images]
    options = LocateOptions(model=str(vlm_dir), detector=str(det_dir), guidebook=work / "guidebook",
                            box_threshold=args.box_threshold, text_threshold=args.text_threshold, top_k=args.top_k,
                            batch_size=args.batch_size, max_new_tokens=args.reason_tokens,
                            crop_max_new_tokens=args.crop_tokens, guess_max_new_tokens=args.guess_tokens)
    geocoder = OfflineGeocoder()
    pipeline = NavigPipeline(options, geocoder=geocoder)  # loads once (not timed, as for the original)
    pipeline.locate(items[:1])  # warm-up (first-call kernels / lazy imports)

    detectors = {p: ZeroShotDetector(str(det_dir), prompts=(p,), box_threshold=args.box_threshold,
                                     text_threshold=args.text_threshold) for p in options.detector_prompts}
    vlm = pipeline.vlm  # same weights for both; only the call pattern differs
    # interleaved repeats, best time of each side: a shared machine's noise hits both alike
    ours_times, orig_times = [], []
    for _ in range(args.repeats):
        vlm.stats.reset()
        pipeline.detector.forward_passes = 0
        start = time.perf_counter()
        ours_rows = []
        for b in range(0, len(items), args.batch_size):
            ours_rows += pipeline.locate(items[b : b + args.batch_size])
        ours_times.append(time.perf_counter() - start)
        ours = {**vlm.stats.snapshot(), "detector_passes": pipeline.detector.forward_passes, "clip_loads": 0,
                "crops": sum(len(r["trace"]["crops"]) for r in ours_rows)}

        vlm.stats.reset()
        for d in detectors.values():
            d.forward_passes = 0
        start = time.perf_counter()
        orig_rows, clip_loads = original_locate(items, options, vlm, detectors, work / "guidebook", geocoder)
        orig_times.append(time.perf_counter() - start)
        orig = {**vlm.stats.snapshot(), "detector_passes": sum(d.forward_passes for d in detectors.values()),
                "clip_loads": clip_loads}
    ours_s, orig_s = min(ours_times), min(orig_times)

    served = compare_served(items, options, pipeline.detector, pipeline.guidebook, detectors, work / "guidebook",
                            geocoder)

    n = len(items)
    per_image = lambda d: {k: round(v / n, 3) for k, v in d.items()}  # noqa: E731
    print(f"images: {n}, batch size {args.batch_size}, crops (ours): {ours['crops']}")
    print(f"ours     per image: {per_image(ours)}  {ours_s / n:.3f} s")
    print(f"original per image: {per_image(orig)}  {orig_s / n:.3f} s")
    print(f"served (local OpenAI-compatible server): ours {served['ours']}, original {served['original']}; "
          f"outcomes {served['ours_outcomes']}; same predictions: {served['same_predictions']}"
          + (f" (differ: {served['differences']})" if served["differences"] else ""))
    result = {
        "images": n,
        "batch_size": args.batch_size,
        "ours": {**per_image(ours), "seconds_per_image": round(ours_s / n, 4)},
        "original": {**per_image(orig), "seconds_per_image": round(orig_s / n, 4)},
        "calls_ratio": round(orig["generate_calls"] / max(1, ours["generate_calls"]), 2),
        "forward_ratio": round(orig["forward_passes"] / max(1, ours["forward_passes"]), 2),
        "detector_ratio": round(orig["detector_passes"] / max(1, ours["detector_passes"]), 2),
        "speedup": round(orig_s / ours_s, 2),
        "seconds_all_runs": {"ours": [round(t, 3) for t in ours_times], "original": [round(t, 3) for t in orig_times]},
        "failures": {"ours": sum(1 for r in ours_rows if r["failure"]),
                     "original": sum(1 for r in orig_rows if r["failure"])},
        "served": served,
        "same_predictions": served["same_predictions"],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
