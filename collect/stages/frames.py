"""`frames`: still frames of each round's gameplay (round start → guess), UI masked, de-duplicated.

Times: every `frames.every_s` seconds from the round start, plus `frames.timestamps`
offsets, plus (with `frames.at_speech`) the start of every caption/ASR segment and, within it, a word
start every `SPEECH_STEP_S`, because the
expert names a clue while it is on screen and annotate aligns each clue to its nearest frame;
all strictly before the result screen. One ffmpeg call per round pulls them all.
The GeoGuessr overlays (round-counter/status box top right, minimap bottom right) are
painted over with the frame's mean colour when `crop_ui` is on, so models never learn
from the UI. A grid frame whose perceptual hash is within `dedupe_hamming` bits of a frame
already kept for the round is dropped (the player stood still); a speech frame is dropped
only when such a twin lies within `SPEECH_TWIN_S`, so every utterance keeps a frame near it. JPEGs are written with a
fixed quality and no metadata, so a rerun on the same input writes the same bytes. Masking, hashing and JPEG
encoding happen as each frame comes off ffmpeg's pipe (ffmpeg decodes on meanwhile), and only the JPEG is kept.
Frames come scaled to `frames.max_side` by ffmpeg's own filter, so masking, hashing and JPEG encoding
cost the same for a 1080p download as for a 720p one.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from collect import layout
from naviclues.fsutil import atomic_write_bytes, atomic_write_json, inside, read_json
from collect.records import Frame, RoundSpan, from_dict, to_dict
from collect.stages.base import Stage, StageOutcome, VideoContext
from collect.video import VideoError, frames_in_windows, probe

# GeoGuessr overlays, as fractions (x0, y0, x1, y1) of the frame
UI_REGIONS = (
    (0.70, 0.0, 1.0, 0.16),  # status bar: map, round counter, score
    (0.72, 0.62, 1.0, 1.0),  # minimap and guess button
)
GUESS_MARGIN_S = 0.25  # stay clear of the cut to the result screen
SPEECH_STEP_S = 0.5  # while words are spoken, a frame at least this often
SPEECH_TWIN_S = 0.4  # a near-identical frame this close already shows what was being said (clue→frame alignment is judged to 1 s)
PHASH_MIN_SIDE = 128  # the perceptual hash is taken on a copy box-reduced to about this size


def mask_ui(frame: np.ndarray, regions=UI_REGIONS) -> np.ndarray:
    out = frame.copy()
    h, w = out.shape[:2]
    fill = frame[::8, ::8].reshape(-1, 3).mean(axis=0).astype(np.uint8)  # a subsample is plenty
    for x0, y0, x1, y1 in regions:
        out[int(y0 * h):int(y1 * h), int(x0 * w):int(x1 * w)] = fill
    return out


def frame_phash(image):
    """`imagehash.phash` of a box-downscaled copy (shorter side still ≥ PHASH_MIN_SIDE, 4× the
    hash's 32-px DCT input): the full-size resize dominated the stage (~4 ms a 720p frame, now ~1);
    the hash differs from the full-size one by a bit or two at most, far below `dedupe_hamming`."""
    import imagehash

    factor = max(1, min(image.size) // PHASH_MIN_SIDE)
    return imagehash.phash(image.reduce(factor) if factor > 1 else image)


def round_times(span: RoundSpan, every_s: float, offsets: list[float]) -> list[float]:
    """Requested frame times for a round, before its result screen."""
    last = span.guess_s - GUESS_MARGIN_S
    times = set()
    if every_s > 0:
        t = span.start_s
        while t < last:
            times.add(round(t, 3))
            t += every_s
    times.update(round(span.start_s + o, 3) for o in offsets if 0 <= o and span.start_s + o < last)
    if not times:  # a very short round: still one frame from its middle
        times.add(round((span.start_s + max(span.start_s, last)) / 2, 3))
    return sorted(times)


def speech_times(ctx: VideoContext, span: RoundSpan) -> list[float]:
    """Times to take a frame at while the expert talks during the round's gameplay: every transcript
    segment's start, and its words' starts thinned to `SPEECH_STEP_S` apart, so a clue named late in
    a long caption line still has a frame next to it (annotate ties each clue to the nearest frame)."""
    path = ctx.path(layout.TRANSCRIPT_JSON)
    if not path.exists():
        return []
    last = span.guess_s - GUESS_MARGIN_S
    times: list[float] = []
    for seg in (read_json(path) or {}).get("segments", []):
        starts = [float(seg["start"])] + [float(w["start"]) for w in seg.get("words") or []
                                          if w.get("start") is not None]
        for i, t in enumerate(sorted(starts)):
            # the segment's start always; then a word start once the last frame time is far enough back
            if span.start_s <= t < last and (i == 0 or not times or t - times[-1] >= SPEECH_STEP_S):
                times.append(round(t, 3))
    return sorted(set(times))


def frame_name(round_no: int, time_s: float) -> str:
    return f"r{round_no}_{int(round(time_s * 1000)):09d}.jpg"


class FramesStage(Stage):
    name = "frames"
    requires = ("segment",)
    output_keys = ("path",)

    def missing_outputs(self, ctx: VideoContext, outputs: dict) -> list[str]:
        missing = super().missing_outputs(ctx, outputs)
        if missing:
            return missing
        try:  # every frame the index lists, not only the index
            listed = [f["path"] for f in read_json(ctx.path(layout.FRAMES_INDEX)) or []]
        except (OSError, ValueError, TypeError, KeyError):
            return [layout.FRAMES_INDEX]
        return [rel for rel in listed if not (ctx.video_dir / rel).is_file()]

    def config_slice(self, ctx: VideoContext):
        return ctx.config.frames.model_dump(mode="json")

    def input_files(self, ctx: VideoContext) -> list[Path]:
        files = [ctx.path(layout.ROUNDS_JSON), ctx.path(layout.MEDIA_JSON), ctx.path(layout.TRANSCRIPT_JSON)]
        try:
            rel = (read_json(files[1]) or {}).get("video") if files[1].exists() else None
            return files + ([inside(ctx.video_dir, rel)] if rel else [])
        except (ValueError, OSError, AttributeError):  # run() reports a bad media.json properly
            return files

    def run(self, ctx: VideoContext) -> StageOutcome:
        from PIL import Image

        cfg = ctx.config.frames
        rounds_path, media_path = ctx.path(layout.ROUNDS_JSON), ctx.path(layout.MEDIA_JSON)
        for p in (rounds_path, media_path):
            if not p.exists():
                return StageOutcome.failed(self.name, f"{ctx.video.id}: {p.name} missing", "MissingInput")
        try:
            spans = [from_dict(RoundSpan, r) for r in read_json(rounds_path)]
            rel = (read_json(media_path) or {}).get("video")
            if not rel:
                return StageOutcome.failed(self.name, f"{ctx.video.id}: {layout.MEDIA_JSON} names no video",
                                           "MissingInput")
            video = inside(ctx.video_dir, rel)
        except (ValueError, TypeError, KeyError) as exc:
            return StageOutcome.failed(self.name, f"{ctx.video.id}: bad input: {exc}", "BadInput")
        if not spans:
            return StageOutcome.failed(self.name, f"{ctx.video.id}: {layout.ROUNDS_JSON} lists no rounds", "NoRounds")
        try:
            info = probe(video)
        except VideoError as exc:
            return StageOutcome.failed(self.name, f"{ctx.video.id}: {exc}", "VideoError")

        def encode(frame: np.ndarray) -> tuple[object, bytes]:
            # runs as each frame arrives (ffmpeg keeps decoding meanwhile) and keeps only the JPEG,
            # never the whole video's raw frames
            image = Image.fromarray(mask_ui(frame) if cfg.crop_ui else frame)
            buf = io.BytesIO()
            image.save(buf, format="JPEG", quality=cfg.jpeg_quality)
            return frame_phash(image), buf.getvalue()

        try:
            grids = [round_times(span, cfg.every_s, cfg.timestamps) for span in spans]
            speech = [speech_times(ctx, span) if cfg.at_speech else [] for span in spans]
            groups = [sorted(set(g) | set(sp)) for g, sp in zip(grids, speech)]
            # ffmpeg scales (and picks) the frames: Python only ever sees the requested ones at the output size
            got = frames_in_windows(video, groups, info=info, transform=encode, max_side=cfg.max_side or None)
        except VideoError as exc:
            return StageOutcome.failed(self.name, f"{ctx.video.id}: {exc}", "VideoError")
        # keep frames inside the round and before its result screen
        per_round = [[(t, f) for t, f in frames if span.start_s - 0.5 <= t < span.guess_s]
                     for span, frames in zip(spans, got)]

        frames_dir = ctx.path(layout.FRAMES_DIR)
        index: list[Frame] = []
        dropped, empty = 0, []
        for span, frames, wanted_speech in zip(spans, per_round, speech):
            kept_hashes: list[tuple[float, object]] = []
            seen_times: set[float] = set()
            for t, (phash, jpeg) in frames:
                if t in seen_times:  # two requests landed on the same video frame
                    continue
                # frames_at returns the first video frame at or after each requested time
                from_speech = any(0 <= t - s <= SPEECH_TWIN_S for s in wanted_speech)
                if any(phash - h <= cfg.dedupe_hamming and (not from_speech or abs(t - kt) <= SPEECH_TWIN_S)
                       for kt, h in kept_hashes):
                    dropped += 1
                    continue
                kept_hashes.append((t, phash))
                seen_times.add(t)
                name = frame_name(span.round, t)
                atomic_write_bytes(inside(frames_dir, name), jpeg)
                index.append(Frame(round=span.round, time_s=t, path=f"{layout.FRAMES_DIR}/{name}", phash=str(phash)))
            if not kept_hashes:
                empty.append(span.round)
        # the new index goes in first: a kill before the cleanup below leaves unlisted extra files, never an
        # index naming deleted ones
        atomic_write_json(ctx.path(layout.FRAMES_INDEX), [to_dict(f) for f in index])
        # a rerun with other settings must not leave stale frames behind
        keep = {Path(f.path).name for f in index}
        for old in frames_dir.glob("r*_*.jpg"):
            if old.name not in keep:
                old.unlink(missing_ok=True)
        if empty:
            return StageOutcome.failed(
                self.name, f"{ctx.video.id}: no frame could be extracted for round(s) {empty} "
                           f"(spans {[(s.start_s, s.guess_s) for s in spans if s.round in empty]})", "NoFrames")
        counts = {str(s.round): sum(f.round == s.round for f in index) for s in spans}
        return StageOutcome.done(path=layout.FRAMES_INDEX, frames=len(index), duplicates_dropped=dropped,
                                 per_round=counts)
