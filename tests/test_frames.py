"""The frames stage on a generated demo video (rounds.json from the corpus truth)."""
from __future__ import annotations

import re
import time
from pathlib import Path

import imagehash
import numpy as np
import pytest
from PIL import Image

from collect import layout
from collect.config import CollectConfig
from collect.demo.generate import generate_corpus
from collect.demo.staging import stage_demo_video
from naviclues.fsutil import atomic_write_json, read_json
from collect.records import Frame, RoundSpan, from_dict, to_dict
from collect.stages.base import VideoContext
from collect.stages.frames import UI_REGIONS, FramesStage


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("frames-corpus")
    truth = generate_corpus(root, n_videos=1, rounds_per_video=3, seed=9)
    return root, truth["videos"][0]


def _staged(corpus, out: Path, **frames_cfg) -> VideoContext:
    root, tv = corpus
    video = stage_demo_video(root, tv["id"], out, with_transcript=False)
    spans = [RoundSpan(r["round"], r["start_s"], r["guess_s"], r["end_s"], r["points"], r["distance_km"])
             for r in tv["rounds"]]
    ctx = VideoContext(video, out, CollectConfig.model_validate({"frames": frames_cfg}))
    atomic_write_json(ctx.path(layout.ROUNDS_JSON), [to_dict(s) for s in spans])  # as segment writes it
    return ctx


def _index(ctx) -> list[Frame]:
    return [from_dict(Frame, f) for f in read_json(ctx.path(layout.FRAMES_INDEX))]


@pytest.fixture(scope="module")
def extracted(corpus, tmp_path_factory):
    ctx = _staged(corpus, tmp_path_factory.mktemp("frames-run"))
    started = time.perf_counter()
    outcome = FramesStage()(ctx)
    return ctx, outcome, time.perf_counter() - started


def test_every_round_gets_gameplay_frames(corpus, extracted):
    _, tv = corpus
    ctx, outcome, seconds = extracted
    assert outcome.status == "done", outcome.error
    frames = _index(ctx)
    for r in tv["rounds"]:
        mine = [f for f in frames if f.round == r["round"]]
        assert len(mine) >= 1
        assert all(r["start_s"] <= f.time_s < r["guess_s"] for f in mine)  # never the result screen
    for f in frames:
        assert re.fullmatch(rf"frames/r{f.round}_\d{{9}}\.jpg", f.path)
        assert int(f.path[-13:-4]) == round(f.time_s * 1000)
        with Image.open(ctx.path(f.path)) as im:
            assert im.format == "JPEG" and im.size == (640, 360)
        assert re.fullmatch(r"[0-9a-f]{16}", f.phash)
    print(f"\nframes: {len(frames)} frames in {seconds:.2f}s for {tv['duration']:.0f}s of video "
          f"({outcome.outputs['duplicates_dropped']} near-duplicates dropped)")


def test_ui_overlays_are_masked(extracted):
    ctx, _, _ = extracted
    for f in _index(ctx)[:4]:
        img = np.asarray(Image.open(ctx.path(f.path)).convert("L")).astype(float)
        h, w = img.shape
        for x0, y0, x1, y1 in UI_REGIONS:
            region = img[int(y0 * h) + 4:int(y1 * h) - 4, int(x0 * w) + 4:int(x1 * w) - 4]
            assert region.std() < 4.0  # flat fill: no round counter, no minimap


def test_near_duplicates_are_dropped(corpus, extracted, tmp_path):
    ctx, outcome, _ = extracted
    kept = _index(ctx)
    assert outcome.outputs["duplicates_dropped"] > 0
    limit = CollectConfig().frames.dedupe_hamming
    for r in {f.round for f in kept}:
        hashes = [imagehash.hex_to_hash(f.phash) for f in kept if f.round == r]
        assert all(a - b > limit for i, a in enumerate(hashes) for b in hashes[i + 1:])
    strict = _staged(corpus, tmp_path, dedupe_hamming=-1)  # nothing counts as a duplicate
    assert FramesStage()(strict).status == "done"
    assert len(_index(strict)) > len(kept)


def test_rerun_writes_identical_bytes_and_drops_stale_frames(corpus, extracted, tmp_path):
    ctx = _staged(corpus, tmp_path)
    assert FramesStage()(ctx).status == "done"
    first = {p.name: p.read_bytes() for p in ctx.path(layout.FRAMES_DIR).iterdir()}
    ref_ctx, _, _ = extracted
    reference = {p.name: p.read_bytes() for p in ref_ctx.path(layout.FRAMES_DIR).iterdir()}
    assert first == reference  # same input, same bytes (index.json included)
    ctx2 = VideoContext(ctx.video, ctx.out_dir, CollectConfig.model_validate({"frames": {"every_s": 1000.0}}))
    assert FramesStage()(ctx2).status == "done"
    names = sorted(p.name for p in ctx.path(layout.FRAMES_DIR).glob("*.jpg"))
    assert names == sorted(Path(f.path).name for f in _index(ctx2))
    assert len(names) == 3  # one per round: only the round starts remain


def test_extra_timestamps(corpus, tmp_path):
    _, tv = corpus
    ctx = _staged(corpus, tmp_path, every_s=1000.0, timestamps=[10.0, 10_000.0], dedupe_hamming=-1)
    assert FramesStage()(ctx).status == "done"
    times = sorted(f.time_s - r["start_s"] for r in tv["rounds"] for f in _index(ctx) if f.round == r["round"])
    assert times == [0.0, 0.0, 0.0, 10.0, 10.0, 10.0]  # the start, +10 s; past the guess ignored


def test_speech_frames_follow_the_words_of_long_caption_lines(corpus, tmp_path):
    from collect.stages.frames import SPEECH_STEP_S, speech_times

    ctx = _staged(corpus, tmp_path)
    span = from_dict(RoundSpan, read_json(ctx.path(layout.ROUNDS_JSON))[0])
    t0 = span.start_s + 1.0
    words = [{"text": f"w{i}", "start": round(t0 + 0.2 * i, 3), "end": round(t0 + 0.2 * i + 0.15, 3)} for i in range(20)]
    atomic_write_json(ctx.path(layout.TRANSCRIPT_JSON), {"segments": [
        {"start": t0, "end": t0 + 4.0, "text": "", "words": words},
        {"start": t0 + 4.1, "end": t0 + 5.0, "text": "", "words": []}]})
    times = speech_times(ctx, span)
    assert times[0] == t0 and t0 + 4.1 in times  # every segment's start
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert all(g >= SPEECH_STEP_S - 1e-6 or b == t0 + 4.1 for g, b in zip(gaps, times[1:]))
    assert max(gaps) <= SPEECH_STEP_S + 0.2 + 1e-6  # a 4 s caption line gets a frame every half second


def test_frames_are_scaled_by_ffmpeg_to_max_side(corpus, tmp_path):
    _, tv = corpus
    ctx = _staged(corpus, tmp_path, every_s=1000.0, max_side=320, dedupe_hamming=-1)
    assert FramesStage()(ctx).status == "done"
    frames = _index(ctx)
    assert [f.time_s for f in frames] == [r["start_s"] for r in tv["rounds"]]
    for f in frames:
        with Image.open(ctx.path(f.path)) as im:
            assert im.size == (320, 180)  # the demo video is 640x360


def test_corrupt_video_and_missing_rounds_fail_clearly(corpus, tmp_path):
    ctx = _staged(corpus, tmp_path)
    media = ctx.path("media", "video.mp4")
    media.unlink()
    media.write_bytes(b"not a video at all" * 100)
    outcome = FramesStage()(ctx)
    assert outcome.status == "failed" and outcome.error.type == "VideoError"
    assert "Invalid data" in outcome.error.message
    ctx.path(layout.ROUNDS_JSON).unlink()
    outcome = FramesStage()(ctx)
    assert outcome.status == "failed" and "rounds.json" in outcome.error.message


def test_video_helpers_pick_real_frame_times(corpus):
    from collect.video import fit_size, frames_at, images_at, probe, sample_every

    root, tv = corpus
    path = root / tv["media"]
    info = probe(path)
    assert info.fps == 2 and info.duration_s == pytest.approx(tv["duration"], abs=0.6)
    got = [t for t, _ in frames_at(path, [3.2, 10.0, 10.1, 10_000.0], info=info)]
    assert got == [3.5, 10.0, 10.5]  # first frame at/after each time; past the end dropped
    many = [t for t, _ in frames_at(path, [i * 0.5 for i in range(120)], info=info)]  # > one select expression
    assert many == [i * 0.5 for i in range(120)]
    sampled = sample_every(path, 6.0, max_side=320, info=info)
    assert [t for t, _ in sampled[:3]] == [0.0, 6.0, 12.0] and sampled[0][1].shape == (180, 320, 3)
    assert fit_size(1280, 720, 960) == (960, 540)
    ((t, image),) = images_at(path, [tv["rounds"][0]["guess_s"] + 1])
    assert image.size == (640, 360) and t == tv["rounds"][0]["guess_s"] + 1


def test_keyframe_sampling_matches_full_decode(corpus):
    from collect.video import frames_at, keyframe_times, probe, sample_every, sample_keyframes

    root, tv = corpus
    path = root / tv["media"]
    info = probe(path)
    keys = keyframe_times(path, info)
    assert keys[:3] == [0.0, 5.0, 10.0] and all(b - a == 5.0 for a, b in zip(keys, keys[1:]))  # the demo's 5 s GOP
    sampled = sample_keyframes(path, 6.0, max_side=320, info=info)
    times = [t for t, _ in sampled]
    assert times == keys  # 5 s apart is within 6 s: every keyframe, never a gap above `every_s`
    sparse = [t for t, _ in sample_keyframes(path, 12.0, info=info)]
    assert sparse[0] == 0.0 and set(sparse) < set(keys) and max(b - a for a, b in zip(sparse, sparse[1:])) <= 12.0
    # keyframes are intra-coded: the same pixels as a full decode reaching them
    full = dict(frames_at(path, times[:4], max_side=320, info=info))
    for t, frame in sampled[:4]:
        assert np.array_equal(frame, full[t])
    assert sample_keyframes(path, 4.0, info=info) is None  # keyframes too sparse: the caller decodes all
    assert [t for t, _ in sample_every(path, 4.0, info=info)][:3] == [0.0, 4.0, 8.0]


def test_keyframe_sampling_with_reordered_frames(corpus, tmp_path):
    """H.264 with B-frames (YouTube's usual encode): keyframes keep their own times and pixels."""
    import subprocess

    from collect.video import ffmpeg_exe, frames_at, keyframe_times, probe, sample_keyframes

    root, tv = corpus
    bframes = tmp_path / "bframes.mp4"
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-y", "-i", str(root / tv["media"]), "-t", "40", "-an",
                    "-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high", "-bf", "3", "-g", "6",
                    "-sc_threshold", "0", str(bframes)], check=True)
    info = probe(bframes)
    keys = keyframe_times(bframes, info)
    assert keys[:3] == [0.0, 3.0, 6.0]
    sampled = sample_keyframes(bframes, 6.0, max_side=320, info=info)
    assert [t for t, _ in sampled] == keys
    full = dict(frames_at(bframes, keys, max_side=320, info=info))
    assert all(np.array_equal(frame, full[t]) for t, frame in sampled)


def test_windows_sharing_a_seek_return_what_each_window_asks(corpus):
    from collect.video import frames_at, frames_in_windows, probe

    root, tv = corpus
    path = root / tv["media"]
    info = probe(path)
    groups = [[20.2, 21.0, 22.0], [21.5, 22.0, 23.2], [25.0, 26.4], [], [90.0, 92.0], [3.0, 1.0]]
    alone = [frames_at(path, g, info=info, transform=lambda f: f.tobytes()) if g else [] for g in groups]
    # workers=1: the cost model picks one pass over everything; many workers: one seek per cluster
    for workers in (1, 64):
        merged = frames_in_windows(path, groups, info=info, transform=lambda f: f.tobytes(), workers=workers)
        assert merged == alone, workers


def _ffmpeg_children() -> list[int]:
    """ffmpeg processes whose parent is this test process (any state, zombies included)."""
    import os

    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == os.getpid() and "ffmpeg" in (stat.parent / "cmdline").read_bytes().decode(errors="replace"):
                found.append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue  # the process went away while we looked
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_a_raising_transform_leaves_no_ffmpeg_behind(tmp_path):
    import subprocess

    from collect.video import ffmpeg_exe, frames_at, frames_in_windows, sample_every, sample_keyframes

    video = tmp_path / "many_frames.mp4"
    # 300 frames of 160x120 RGB: far more than a pipe buffer holds, so an abandoned ffmpeg would block writing
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=30",
                    "-t", "10", "-pix_fmt", "yuv420p", str(video)], check=True)

    def boom(frame):
        raise RuntimeError("consumer failed")

    assert _ffmpeg_children() == []
    with pytest.raises(RuntimeError, match="consumer failed"):
        sample_every(video, 0.01, transform=boom)
    with pytest.raises(RuntimeError, match="consumer failed"):
        frames_at(video, [1.0, 2.0, 3.0], transform=boom)
    with pytest.raises(RuntimeError, match="consumer failed"):
        sample_keyframes(video, 20.0, transform=boom)
    with pytest.raises(RuntimeError, match="consumer failed"):
        frames_in_windows(video, [[1.0, 2.0], [8.0, 9.0]], transform=boom)
    assert _ffmpeg_children() == []  # killed and reaped, not blocked on a full pipe


def test_ffmpeg_past_its_deadline_is_stopped_with_a_clear_error(tmp_path):
    import subprocess

    from collect.video import VideoError, ffmpeg_exe, ffmpeg_timeout, sample_every

    assert ffmpeg_timeout(600) == 60 + 2 * 600 and ffmpeg_timeout(-1) == 60
    video = tmp_path / "slow.mp4"
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=30",
                    "-t", "10", "-pix_fmt", "yuv420p", str(video)], check=True)

    def slow(frame):  # a consumer slower than the deadline allows
        time.sleep(0.05)
        return frame.shape

    started = time.perf_counter()
    with pytest.raises(VideoError, match=r"slow\.mp4: ffmpeg ran past its 0.3 s deadline"):
        sample_every(video, 0.01, transform=slow, timeout_s=0.3)
    assert time.perf_counter() - started < 5  # stopped at the deadline, not after all 300 frames
    if Path("/proc/self/stat").exists():
        assert _ffmpeg_children() == []
