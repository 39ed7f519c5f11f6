"""The segment stage on a generated demo video: real ffmpeg, real RapidOCR, real captions."""
from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from collect import layout
from collect.config import CollectConfig
from collect.demo.generate import generate_corpus
from collect.demo.staging import stage_demo_video
from naviclues.fsutil import atomic_write_json, read_json
from collect.records import RoundSpan, Segment, Transcript, Word, from_dict
from collect.stages.base import VideoContext
from collect.stages.segment import (
    COUNTER_REGION,
    SegmentStage,
    chapter_cues,
    parse_counter,
    parse_distance_km,
    parse_points,
    transcript_cues,
)
from collect.video import ffmpeg_exe

TOLERANCE_S = 3.0


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("segment-corpus")
    truth = generate_corpus(root, n_videos=1, rounds_per_video=4, seed=5)
    return root, truth["videos"][0]


def _run(corpus_dir: Path, video_id: str, out: Path, run: bool = True, **stage_kwargs):
    video = stage_demo_video(corpus_dir, video_id, out, **stage_kwargs)
    ctx = VideoContext(video, out, CollectConfig())
    if not run:
        return ctx, None, 0.0
    started = time.perf_counter()
    outcome = SegmentStage()(ctx)
    return ctx, outcome, time.perf_counter() - started


def _replace_video(ctx: VideoContext, data_or_path) -> None:
    target = ctx.path("media", "video.mp4")
    target.unlink()
    if isinstance(data_or_path, bytes):
        target.write_bytes(data_or_path)
    else:
        shutil.copyfile(data_or_path, target)


@pytest.fixture(scope="module")
def segmented(corpus, tmp_path_factory):
    root, tv = corpus
    ctx, outcome, seconds = _run(root, tv["id"], tmp_path_factory.mktemp("seg-run"))
    return ctx, outcome, seconds


def _assert_matches_truth(spans: list[RoundSpan], truth_rounds: list[dict], check_numbers: bool = True) -> None:
    assert [s.round for s in spans] == [r["round"] for r in truth_rounds]
    for span, r in zip(spans, truth_rounds):
        for key in ("start_s", "guess_s", "end_s"):
            assert abs(getattr(span, key) - r[key]) <= TOLERANCE_S, (span.round, key, getattr(span, key), r[key])
    if check_numbers:
        read = sum(s.points == r["points"] and s.distance_km == pytest.approx(r["distance_km"])
                   for s, r in zip(spans, truth_rounds))
        assert read / len(truth_rounds) >= 0.95


def test_recovers_every_round_within_tolerance(corpus, segmented):
    _, tv = corpus
    ctx, outcome, seconds = segmented
    assert outcome.status == "done", outcome.error
    spans = [from_dict(RoundSpan, r) for r in read_json(ctx.path(layout.ROUNDS_JSON))]
    _assert_matches_truth(spans, tv["rounds"])
    assert outcome.outputs["rounds"] == len(tv["rounds"])
    # the cache keeps OCR to a few reads per round
    assert outcome.outputs["ocr_calls"] <= 6 * len(tv["rounds"]) + 4
    ocr_per_call = outcome.outputs["ocr_seconds"] / max(1, outcome.outputs["ocr_calls"])
    print(f"\nsegment: {seconds:.2f}s for {tv['duration']:.0f}s of video ({tv['duration'] / seconds:.0f}x real time), "
          f"{outcome.outputs['ocr_calls']} OCR calls, {ocr_per_call * 1000:.0f} ms each, "
          f"{outcome.outputs['samples']} samples")


def test_evidence_names_ocr_and_caption_cues(segmented):
    ctx, _, _ = segmented
    spans = [from_dict(RoundSpan, r) for r in read_json(ctx.path(layout.ROUNDS_JSON))]
    second = spans[1]
    assert any(e.startswith("ocr:result@") for e in second.evidence)
    assert any(e.startswith("ocr:round-counter 2/4@") for e in second.evidence)
    assert any(e.startswith("transcript:'") for e in second.evidence)
    assert any(e.startswith("ocr:points ") for e in second.evidence)


@pytest.fixture(scope="module")
def masked_video(corpus, tmp_path_factory) -> Path:
    """The demo video with its round-counter box painted over (an unreadable status bar)."""
    root, tv = corpus
    w, h = 640, 360
    x0 = int(COUNTER_REGION[0] * w)
    masked = tmp_path_factory.mktemp("masked") / "masked.mp4"
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-y", "-i", str(root / tv["media"]), "-vf",
                    f"drawbox=x={x0}:y=0:w={w - x0}:h={int(COUNTER_REGION[3] * h)}:color=black:t=fill",
                    "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "copy", str(masked)], check=True)
    return masked


def test_without_round_counter_uses_result_screens_and_captions(corpus, masked_video, tmp_path):
    root, tv = corpus
    ctx, _, _ = _run(root, tv["id"], tmp_path, run=False)
    _replace_video(ctx, masked_video)
    outcome = SegmentStage()(ctx)
    assert outcome.status == "done", outcome.error
    spans = [from_dict(RoundSpan, r) for r in read_json(ctx.path(layout.ROUNDS_JSON))]
    _assert_matches_truth(spans, tv["rounds"])
    assert not any("round-counter" in e for s in spans for e in s.evidence)
    assert any(e.startswith("ocr:result-ended@") for e in spans[1].evidence)
    assert any(e.startswith("transcript:'round one'") for e in spans[0].evidence)


def test_without_round_counter_chapters_give_round_starts(corpus, masked_video, tmp_path):
    root, tv = corpus
    chapters = [{"start_time": 0.0, "end_time": tv["rounds"][0]["start_s"], "title": "Intro"}] + [
        {"start_time": r["start_s"], "end_time": r["end_s"], "title": f"Round {r['round']}: {r['country']}"}
        for r in tv["rounds"]]
    ctx, _, _ = _run(root, tv["id"], tmp_path, run=False, with_transcript=False, chapters=chapters)
    _replace_video(ctx, masked_video)
    outcome = SegmentStage()(ctx)
    assert outcome.status == "done", outcome.error
    assert "no transcript" in outcome.note
    spans = [from_dict(RoundSpan, r) for r in read_json(ctx.path(layout.ROUNDS_JSON))]
    _assert_matches_truth(spans, tv["rounds"])
    assert [s.start_s for s in spans] == [r["start_s"] for r in tv["rounds"]]
    assert all(any(e.startswith(f"chapter:Round {s.round}") for e in s.evidence) for s in spans)


def test_counter_left_on_result_screens(tmp_path):
    """A layout where the status bar stays visible on the result screen."""
    truth = generate_corpus(tmp_path / "corpus", n_videos=1, rounds_per_video=3, seed=2, counter_on_results=True)
    tv = truth["videos"][0]
    ctx, outcome, _ = _run(tmp_path / "corpus", tv["id"], tmp_path / "out")
    assert outcome.status == "done", outcome.error
    spans = [from_dict(RoundSpan, r) for r in read_json(ctx.path(layout.ROUNDS_JSON))]
    _assert_matches_truth(spans, tv["rounds"])


def test_sparse_keyframes_fall_back_to_decoding_every_frame(corpus, segmented, tmp_path):
    root, tv = corpus
    assert segmented[1].outputs["sampling"] == "keyframes"  # the demo's 5 s GOP ≤ the 6 s sample interval
    ctx, _, _ = _run(root, tv["id"], tmp_path, run=False)
    sparse = tmp_path / "sparse_keyframes.mp4"  # one keyframe every 20 s (2 fps): too sparse to sample
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-y", "-i", str(root / tv["media"]), "-c:v", "libx264",
                    "-preset", "ultrafast", "-g", "40", "-keyint_min", "40", "-sc_threshold", "0", "-c:a", "copy",
                    str(sparse)], check=True)
    _replace_video(ctx, sparse)
    outcome = SegmentStage()(ctx)
    assert outcome.status == "done", outcome.error
    assert outcome.outputs["sampling"] == "every-frame"
    _assert_matches_truth([from_dict(RoundSpan, r) for r in read_json(ctx.path(layout.ROUNDS_JSON))], tv["rounds"])


def test_truncated_video_fails_with_cause(corpus, tmp_path):
    root, tv = corpus
    ctx, _, _ = _run(root, tv["id"], tmp_path, run=False)
    atomic_write_json(ctx.path(layout.ROUNDS_JSON), [])  # as left by an earlier run
    data = (root / tv["media"]).read_bytes()
    _replace_video(ctx, data[: len(data) * 2 // 5])
    outcome = SegmentStage()(ctx)
    assert outcome.status == "failed"
    assert outcome.error.type == "VideoError"
    assert tv["id"] in outcome.error.message
    assert "truncated" in outcome.error.message or "Invalid data" in outcome.error.message
    assert not ctx.path(layout.ROUNDS_JSON).exists()  # no stale rounds from the earlier run


def test_garbage_file_fails_with_ffmpegs_message(corpus, tmp_path):
    root, tv = corpus
    ctx, _, _ = _run(root, tv["id"], tmp_path, run=False, with_transcript=False)
    _replace_video(ctx, b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 500)
    outcome = SegmentStage()(ctx)
    assert outcome.status == "failed" and outcome.error.type == "VideoError"
    assert "Invalid data" in outcome.error.message or "moov atom not found" in outcome.error.message


def test_no_result_screen_is_an_honest_failure(corpus, tmp_path):
    root, tv = corpus
    ctx, _, _ = _run(root, tv["id"], tmp_path, run=False)
    clip = tmp_path / "clip.mp4"  # intro + gameplay of round 1, cut before its result screen
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-y", "-i", str(root / tv["media"]), "-t",
                    str(tv["rounds"][0]["guess_s"] - 2), "-c", "copy", str(clip)], check=True)
    _replace_video(ctx, clip)
    outcome = SegmentStage()(ctx)
    assert outcome.status == "failed" and outcome.error.type == "NoRounds"
    assert "no result screens detected" in outcome.error.message


def test_missing_media_json_fails(tmp_path):
    from collect.records import Video

    ctx = VideoContext(Video(id="nothing", url=""), tmp_path, CollectConfig())
    outcome = SegmentStage()(ctx)
    assert outcome.status == "failed" and "media.json" in outcome.error.message


def test_unreadable_transcript_is_noted_not_fatal(corpus, tmp_path):
    root, tv = corpus
    ctx, _, _ = _run(root, tv["id"], tmp_path, run=False)
    atomic_write_json(ctx.path(layout.TRANSCRIPT_JSON), ["not", "a", "transcript"])
    outcome = SegmentStage()(ctx)
    assert outcome.status == "done"
    assert "transcript unreadable" in outcome.note


@pytest.mark.parametrize("text,points", [("4,873 points", 4873), ("4.873points", 4873), ("5,000 points", 5000),
                                         ("0 points", 0), ("12 pts", 12), ("4,873pointsNEXT", 4873), ("ROUND 2/5", None), ("9,999 points", None)])
def test_parse_points(text, points):
    assert parse_points(text) == points


@pytest.mark.parametrize("text,km", [("12.3 km", 12.3), ("1,204 km", 1204.0), ("850 m", 0.85),
                                     ("12.3kmfromthecorrectlocation", 12.3), ("1 204 km", 1204.0),
                                     ("3.5 mi", 5.633), ("4,873 points", None)])
def test_parse_distance(text, km):
    assert parse_distance_km(text) == km


@pytest.mark.parametrize("text,counter", [("ROUND 2 / 5", (2, 5)), ("ROUND2/5", (2, 5)), ("Round 3 of 5", (3, 5)),
                                          ("ROUND 2 / 5 SCORE 4,873", (2, 5)), ("ROUND 7/5", None), ("NEXT", None)])
def test_parse_counter(text, counter):
    assert parse_counter(text) == counter


def test_cues_from_captions_and_chapters():
    words = [Word(t, i * 0.4, i * 0.4 + 0.3) for i, t in enumerate("okay Round Two here we go next round".split())]
    transcript = Transcript("v", "captions:auto", "en", [Segment(0, 4, "", words)])
    cues = transcript_cues(transcript)
    assert [(c.round, c.text.lower()) for c in cues] == [(2, "round two"), (None, "next round")]
    assert cues[0].time == pytest.approx(0.4)
    chapters = chapter_cues([{"start_time": 10.0, "end_time": 50.0, "title": "Round 3 - Peru"},
                             {"start_time": 0.0, "end_time": 10.0, "title": "Intro"}])
    assert [(c.round, c.time) for c in chapters] == [(3, 10.0)]
