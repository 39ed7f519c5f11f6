"""The annotate flow over a collect output folder: rounds (truth attached by fused evidence, the
previous round's spilled reveal talk cut) → clues → align → filter → reasoning → dataset + card.

`collect run` calls `run_annotate` after its stages (the command layer composes the flow);
`collect annotate --out DIR` reruns it alone. One model (spaCy, the reasoning LM) is loaded
at a time.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

from annotate import gazetteer
from annotate.config import AnnotateConfig, load_annotate_config
from annotate.records import Example, RoundInput
from annotate.reverse import reverse
from annotate.rounds import assemble_rounds, inputs_fingerprint
from naviclues.fsutil import atomic_write_text

CITY_RADIUS_KM = 50.0  # a truth point this close to a gazetteer city is "in" it
TRUTH_EVIDENCE_FILE = "truth_evidence.jsonl"


def input_fingerprint(out_dir: Path, settings: dict[str, Any] | None) -> str:
    return inputs_fingerprint(Path(out_dir), load_annotate_config(settings).model_dump(mode="json"))


def truth_place(round_: RoundInput) -> tuple[str | None, str | None]:
    """(country code, city) of the true location: the challenge's code, else the nearest city."""
    if round_.lat is None or round_.lng is None:
        return None, None
    nearest = reverse(round_.lat, round_.lng)
    code = (round_.country_code or nearest.country_code or "").upper() or None
    city = nearest.city if nearest.distance_km <= CITY_RADIUS_KM and nearest.country_code == code else None
    return code, city


def write_truth_evidence(out_dir: Path, rounds: list[RoundInput]) -> Path:
    """OUT/truth_evidence.jsonl: per segmented round, how its truth was attached (what agreed, what
    disagreed, the API round chosen and its score, the verdict) and any reveal spill cut from it."""
    lines = [json.dumps({"id": r.id, "video_id": r.video_id, "round": r.round, **(r.truth_evidence or {}),
                         "reveal_spill": r.reveal_spill}, sort_keys=True) for r in rounds]
    path = Path(out_dir) / TRUTH_EVIDENCE_FILE
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return path


def run_annotate(out_dir: Path, settings: dict[str, Any] | None = None, console: Any = None) -> dict:
    from annotate.build import build_dataset
    from annotate.card import relink_plots
    from annotate.stages.align import align_clues
    from annotate.stages.clues import ClueExtractor
    from annotate.stages.filter import apply_filters, transcript_disagreement
    from annotate.stages.geoparse import Geoparser
    from annotate.stages.reveal_spill import cut_reveal_spill
    from annotate.stages.reasoning import ReasoningRequest, make_writer, rewrite

    import datasets

    datasets.disable_progress_bars()  # the command layer shows its own status
    out_dir = Path(out_dir)
    cfg: AnnotateConfig = load_annotate_config(settings)
    geoparser = Geoparser(cfg.geoparse)

    def talk_country(words: list[dict], guess_s: float, round_number: int) -> str | None:
        parse = geoparser.predict(words, guess_s=guess_s, round_number=round_number)
        return parse.country_code if parse.confidence >= cfg.filter.transcript_min_confidence else None

    rounds, drops = assemble_rounds(out_dir, talk_country=talk_country)
    rounds = cut_reveal_spill(rounds, cfg.filter.reveal_spill_max_s)
    write_truth_evidence(out_dir, rounds)

    kept: list[RoundInput] = []
    concluded: dict[str, str] = {}  # round id → the country its talk concludes
    agreement = Counter()
    for r in rounds:
        reasons = apply_filters(r, cfg)
        parse = geoparser.predict(r.words, guess_s=r.guess_s, round_number=r.round) if r.words else None
        code, _ = truth_place(r)
        if parse is not None and parse.country_code:
            concluded[r.id] = parse.country_code
            if code:
                agreement["agree" if parse.country_code == code else "disagree"] += 1
                reasons += transcript_disagreement(parse.country_code, parse.confidence, code, cfg)
        if reasons:
            drop = {"id": r.id, "video_id": r.video_id, "challenge_token": r.challenge_token, "reasons": reasons,
                    "stage": "filter", "truth_evidence": r.truth_evidence}
            if code is None and parse is not None and parse.country_code:
                drop["weak_label"] = {"country_code": parse.country_code, "confidence": parse.confidence}
            drops.append(drop)
        else:
            kept.append(r)

    extractor = ClueExtractor(cfg.clues)
    clues_by_round = {}
    for r in kept:
        pre_reveal = [w for w in r.words if w["start"] < r.guess_s]
        clues_by_round[r.id] = align_clues(extractor.extract(pre_reveal), r.frame_times_s, r.start_s, r.guess_s)
    # the extractive writer reuses the configured extractor; a model-backed writer does not need it
    writer = make_writer(cfg.reasoning, clue_extractor=extractor)
    examples: list[Example] = []
    for r in kept:
        code, city = truth_place(r)
        country = gazetteer.country_by_code(code) if code else None
        clues = clues_by_round[r.id]
        request = ReasoningRequest(
            country=country.name if country else None, country_code=code, city=city, lat=r.lat, lng=r.lng,
            transcript=r.pre_reveal_text(), clues=clues, round_id=r.id)
        written = rewrite(writer, request)
        if written.error:
            drops.append({"id": r.id, "video_id": r.video_id, "challenge_token": r.challenge_token,
                          "reasons": [f"reasoning failed: {written.error}"], "stage": "reasoning"})
            continue
        text, source = written.text, written.source
        examples.append(Example(
            id=r.id, video_id=r.video_id, channel=r.channel, video_url=r.video_url,
            challenge_token=r.challenge_token, round=r.round, lat=r.lat, lng=r.lng,
            country=country.name if country else None, country_code=code,
            continent=gazetteer.continent_name(gazetteer.continent_of(code) or "") if code else None, city=city, points=r.points,
            distance_km=r.distance_km, time_limit_s=r.time_limit_s, forbid_moving=r.forbid_moving,
            transcript=r.pre_reveal_text(), clues=[asdict(c) for c in clues], frames=r.frames,
            frame_times_s=r.frame_times_s, image=r.panorama, reasoning=text, reasoning_source=source,
            transcript_country_code=concluded.get(r.id)))
    filters_applied = cfg.filter.model_dump(mode="json")
    result = build_dataset(examples, drops, out_dir, test_fraction=cfg.build.test_fraction,
                           test_challenges=cfg.build.test_challenges,
                           max_test_fraction=cfg.build.max_test_fraction, val_fraction=cfg.build.validation_fraction,
                           seed=cfg.build.seed, filters_applied=filters_applied)
    # OUT/DATASET_CARD.md sits beside hub/, so its plot links go through hub/plots
    card_text = Path(result.card_path).read_text("utf-8")
    atomic_write_text(out_dir / "DATASET_CARD.md", relink_plots(card_text, f"{Path(result.hub_dir).name}/plots"))
    summary = result.summary()
    summary["rounds"] = len(rounds)
    summary["kept_after_filters"] = len(kept)
    summary["truth"] = dict(sorted(Counter((r.truth_evidence or {}).get("verdict", "none") for r in rounds).items()))
    if sum(agreement.values()):
        summary["geoparse_agreement"] = round(agreement["agree"] / sum(agreement.values()), 4)
    return summary
