"""ffmpeg helpers: probe a video and pull frames at chosen times as numpy/PIL images.

We use the ffmpeg binary shipped by imageio-ffmpeg (no system ffmpeg, no ffprobe). Frames
come back as raw RGB on a pipe, so one ffmpeg process serves many timestamps:

* `sample_every` — one frame per `every_s` bucket over a window, one decode pass;
* `sample_keyframes` — the same guarantee (≤ `every_s` apart) from keyframes only, when the
  stream's keyframes are dense enough (`keyframe_times` reads them from the container);
* `frames_at`    — the first frame at or after each given time, one process per window;
  a fast input seek (`-ss` before `-i`) skips everything before the window;
* `frames_in_windows` — `frames_at` for many windows: one pass or one seek per cluster of
  nearby windows, whichever a small cost model says is cheaper.

Frames are read off the pipe by a pump thread a few frames ahead of the caller's `transform`,
so decoding overlaps with the caller's work (OCR, JPEG encoding).

Times returned are the frames' real presentation times (read from ffmpeg's `showinfo`
filter), not the requested ones, so callers can report exactly what they looked at.
Any ffmpeg failure raises `VideoError` carrying ffmpeg's own message. Every ffmpeg process has a
deadline (`ffmpeg_timeout`: generous, proportional to the media it decodes) and is killed and
reaped on every exit path, including a `transform` that raises, so none is left blocked on a
full pipe.
"""
from __future__ import annotations

import bisect
import os
import queue
import re
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

_DURATION = re.compile(r"Duration:\s*(\d+):(\d+):(\d+(?:\.\d+)?)")
_VIDEO_STREAM = re.compile(r"Stream #\S+.*?: Video: .*?(\d{2,5})x(\d{2,5})")
_FPS = re.compile(r"(\d+(?:\.\d+)?) fps")
_FRAMECRC_TB = re.compile(r"^#tb 0: (\d+)/(\d+)", re.M)
_PTS_TIME = re.compile(r"\bn:\s*(\d+)\s+pts:\s*-?\d+\s+pts_time:(-?\d+(?:\.\d+)?)")
# stderr lines that are progress/banner noise, not the cause of a failure
_NOISE = re.compile(r"^(ffmpeg version|  built with|  configuration:|  lib|Input #|  Metadata:|"
                    r"  Duration:|    Stream|      [a-z_]+\s*:|\[Parsed_showinfo)")


class VideoError(RuntimeError):
    """ffmpeg could not read the file (the message is ffmpeg's), or ran past its deadline."""


PROBE_TIMEOUT_S = 60.0  # `ffmpeg -i` reads headers only
TIMEOUT_BASE_S = 60.0
TIMEOUT_PER_MEDIA_S = 2.0  # seconds of wall time allowed per second of media decoded


def ffmpeg_timeout(media_s: float) -> float:
    """Deadline for an ffmpeg run decoding `media_s` seconds of media: far above real decode speed
    (~10-100x real time here), so only a stuck process reaches it."""
    return TIMEOUT_BASE_S + TIMEOUT_PER_MEDIA_S * max(0.0, media_s)


@dataclass(frozen=True)
class VideoInfo:
    duration_s: float
    width: int
    height: int
    fps: float | None


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _ffmpeg_message(stderr: str, limit: int = 400) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip() and not _NOISE.match(ln)]
    return ("; ".join(lines[-4:]) or "ffmpeg failed without a message")[:limit]


def probe(path: Path | str) -> VideoInfo:
    """Duration and frame size of the first video stream (parsed from `ffmpeg -i`)."""
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"{path}: no such file")
    try:
        # subprocess.run kills and reaps the child when the timeout expires
        proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)], capture_output=True,
                              text=True, errors="replace", timeout=PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise VideoError(f"{path.name}: ffmpeg probe timed out after {PROBE_TIMEOUT_S:.0f} s") from None
    err = proc.stderr
    stream = _VIDEO_STREAM.search(err)
    duration = _DURATION.search(err)
    if not stream or not duration:
        raise VideoError(f"{path.name}: {_ffmpeg_message(err)}")
    h, m, s = duration.groups()
    fps = _FPS.search(err[stream.start():])
    return VideoInfo(int(h) * 3600 + int(m) * 60 + float(s), int(stream.group(1)), int(stream.group(2)),
                     float(fps.group(1)) if fps else None)


def fit_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """(w, h) scaled down so the longer side is ≤ max_side, both even (yuv-friendly)."""
    scale = min(1.0, max_side / max(width, height)) if max_side else 1.0
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


_READ_AHEAD_FRAMES = 4
_PROBLEM = re.compile(r"error|invalid|corrupt|truncat|missing|partial", re.I)


def _run_raw(path: Path, pre_input: list[str], vfilter: str, size: tuple[int, int],
             transform: Callable[[np.ndarray], object] | None,
             diagnostics: list[str] | None = None, *, timeout_s: float) -> list[tuple[float, object]]:
    """Run ffmpeg with `vfilter` (+scale, +showinfo), read raw RGB frames as they arrive.

    ffmpeg's complaints that did not stop it (damaged packets…) go to `diagnostics`. Past
    `timeout_s` the process is killed and `VideoError` names the file.
    """
    w, h = size
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "info", *pre_input, "-i", str(path),
           "-an", "-sn", "-vf", f"{vfilter},scale={w}:{h},showinfo", "-fps_mode", "passthrough",
           "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    err_chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: err_chunks.append(proc.stderr.read()), daemon=True)
    timed_out = threading.Event()

    def expire() -> None:
        timed_out.set()
        proc.kill()  # unblocks our read: the pipe reaches EOF

    watchdog = threading.Timer(timeout_s, expire)
    watchdog.daemon = True
    frame_bytes = w * h * 3
    # a pump thread drains the pipe a few frames ahead, so ffmpeg keeps decoding while `transform`
    # (OCR, JPEG encoding…) works on the previous frame; the bound caps the raw frames in memory
    pending: queue.Queue = queue.Queue(maxsize=_READ_AHEAD_FRAMES)
    stop = threading.Event()

    def offer(item) -> None:
        while not stop.is_set():
            try:
                pending.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def pump() -> None:
        try:
            while not stop.is_set():
                buf = proc.stdout.read(frame_bytes)
                if len(buf) < frame_bytes:
                    break
                offer(buf)
        except (OSError, ValueError):  # the pipe was torn down under us: the main thread is leaving
            pass
        finally:
            offer(None)

    drain = threading.Thread(target=pump, daemon=True)
    frames = []
    try:
        reader.start()
        watchdog.start()
        drain.start()
        while not timed_out.is_set():
            buf = pending.get()
            if buf is None:
                break
            arr = np.frombuffer(buf, np.uint8).reshape(h, w, 3)
            frames.append(transform(arr) if transform else arr)
        code = proc.wait()
    finally:
        # whatever happened above (a raising transform, an interrupt): no ffmpeg left blocked on a full pipe
        stop.set()
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        drain.join()
        proc.stdout.close()
        reader.join()
    if timed_out.is_set() and code != 0:  # (a deadline hit just after a clean exit is no timeout)
        raise VideoError(f"{path.name}: ffmpeg ran past its {timeout_s:g} s deadline and was stopped")
    stderr = b"".join(err_chunks).decode("utf-8", "replace")
    if code != 0:
        raise VideoError(f"{path.name}: {_ffmpeg_message(stderr)}")
    if diagnostics is not None:
        diagnostics.extend(ln.strip() for ln in stderr.splitlines()
                           if _PROBLEM.search(ln) and not ln.startswith("[Parsed_showinfo"))
    times = [float(t) for _, t in _PTS_TIME.findall(stderr)]
    if len(times) != len(frames):
        raise VideoError(f"{path.name}: ffmpeg returned {len(frames)} frames but reported {len(times)}")
    return list(zip(times, frames))


def sample_every(path: Path | str, every_s: float, *, start_s: float = 0.0, end_s: float | None = None,
                 max_side: int | None = None, info: VideoInfo | None = None,
                 transform: Callable[[np.ndarray], object] | None = None,
                 diagnostics: list[str] | None = None, timeout_s: float | None = None) -> list[tuple[float, object]]:
    """The first frame of every `every_s` bucket in [start_s, end_s), in one ffmpeg call.

    `transform` is applied to each frame as it is read (e.g. crop regions) so long videos
    never hold all full frames in memory. `timeout_s` defaults to `ffmpeg_timeout(window)`.
    """
    path = Path(path)
    info = info or probe(path)
    pre = ["-ss", f"{start_s:.3f}"] if start_s > 0 else []
    if end_s is not None:
        pre += ["-to", f"{end_s:.3f}"]
    # bucket index of the frame vs the last kept frame: no drift on non-integer frame rates
    expr = f"isnan(prev_selected_t)+gt(floor((t+0.001)/{every_s}),floor((prev_selected_t+0.001)/{every_s}))"
    span = (info.duration_s if end_s is None else min(end_s, info.duration_s)) - start_s
    out = _run_raw(path, pre, f"select='{expr}'", fit_size(info.width, info.height, max_side), transform,
                   diagnostics, timeout_s=ffmpeg_timeout(span) if timeout_s is None else timeout_s)
    return [(round(t + start_s, 3), f) for t, f in out]


# decoder option: skip every frame that is not a keyframe. (Not the demuxer's `-discard nokey`,
# though faster: the mp4 demuxer then misassigns presentation times when frames are reordered,
# e.g. H.264 with B-frames: 2.1 s for the keyframe at 2.0 s, frames shown under other times.)
_KEYFRAMES_ONLY = ("-skip_frame", "nokey")


def keyframe_times(path: Path | str, info: VideoInfo | None = None) -> list[float]:
    """Presentation times (s, ascending) of the first video stream's keyframes, or [] if unreadable.

    Read from the container's packet flags without decoding (`-c copy -f framecrc`: ~0.3 s for
    10 min of 720p30). framecrc prints `F=0x..` only for packets whose flags are not exactly
    "key", so a line without it, or with bit 0 set, is a keyframe.
    """
    path = Path(path)
    info = info or probe(path)
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(path), "-map", "0:v:0",
           "-c", "copy", "-f", "framecrc", "pipe:1"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace",
                              timeout=ffmpeg_timeout(0.1 * info.duration_s))
    except subprocess.TimeoutExpired:
        return []
    tb = _FRAMECRC_TB.search(proc.stdout)
    if proc.returncode != 0 or not tb:
        return []
    unit = int(tb.group(1)) / int(tb.group(2))
    times = []
    for line in proc.stdout.splitlines():
        if line.startswith("#"):
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 6 or not parts[2].lstrip("-").isdigit():
            continue
        flags = next((int(p[2:], 16) for p in parts[6:] if p.startswith("F=")), 1)
        if flags & 1:
            times.append(int(parts[2]) * unit)
    return sorted(times)


def sample_keyframes(path: Path | str, every_s: float, *, max_side: int | None = None,
                     info: VideoInfo | None = None,
                     transform: Callable[[np.ndarray], object] | None = None) -> list[tuple[float, object]] | None:
    """Like `sample_every` over the whole video, decoding keyframes only (`-skip_frame nokey`).

    Keyframes are intra-coded, so the decoder skips everything else (10 min of 720p30 with 5 s
    GOPs: ~1 s instead of ~6 s) and each frame is bit-identical to the full decode's. Usable
    only where keyframes lie at most `every_s` apart (and from both ends): then a subset of them,
    the first keyframe of every `every_s - gap` bucket, is still never more than `every_s` apart.
    Returns None where that does not hold, checked on the container's keyframe flags and again on
    the frames actually decoded (each must be a listed keyframe, and ffmpeg must not complain);
    the caller then uses `sample_every`, which reports any damage in its own words.
    """
    path = Path(path)
    info = info or probe(path)
    slack = 1.0 / (info.fps or 30.0) + 1e-3
    keys = keyframe_times(path, info)
    if not keys:
        return None
    gap = max([b - a for a, b in zip(keys, keys[1:])] + [keys[0], info.duration_s - keys[-1]])
    if gap > every_s + slack:
        return None
    if 2 * gap >= every_s:
        vfilter = "select=1"
    else:
        bucket = every_s - gap
        vfilter = (f"select='isnan(prev_selected_t)+gt(floor((t+0.001)/{bucket}),"
                   f"floor((prev_selected_t+0.001)/{bucket}))'")
    complaints: list[str] = []
    try:
        out = _run_raw(path, list(_KEYFRAMES_ONLY), vfilter, fit_size(info.width, info.height, max_side),
                       transform, complaints, timeout_s=ffmpeg_timeout(info.duration_s))
    except VideoError:
        return None  # `sample_every` decodes everything and reports the failure in its own words
    times = [t for t, _ in out]

    def listed(t: float) -> bool:  # a decoded frame's time is one of the container's keyframes
        j = bisect.bisect_left(keys, t - 0.002)
        return j < len(keys) and abs(keys[j] - t) <= 0.002

    if (not times or complaints or not all(map(listed, times)) or times[0] > every_s + slack
            or info.duration_s - times[-1] > every_s + slack
            or any(b - a > every_s + slack for a, b in zip(times, times[1:]))):
        return None
    return [(round(t, 3), f) for t, f in out]


_MAX_SELECT_TERMS = 48
_FRAMES_AT_TAIL_S = 0.5


def frames_at(path: Path | str, times: Sequence[float], *, max_side: int | None = None,
              info: VideoInfo | None = None, transform: Callable[[np.ndarray], object] | None = None,
              timeout_s: float | None = None, decoder_threads: int | None = None) -> list[tuple[float, object]]:
    """For each requested time, the first frame at or after it: [(frame time, frame)], in order.

    One ffmpeg process covers all requests: it seeks to the earliest and decodes up to the
    latest only. Requests past the last frame are dropped (the caller sees fewer results).
    `decoder_threads` caps ffmpeg's decoder threads (default: ffmpeg's own choice).
    """
    path = Path(path)
    info = info or probe(path)
    wanted = sorted({round(max(0.0, float(t)), 3) for t in times})
    if not wanted:
        return []
    if len(wanted) > _MAX_SELECT_TERMS:  # ffmpeg's expression parser refuses ~90+ terms
        out = []
        for i in range(0, len(wanted), _MAX_SELECT_TERMS):
            chunk = frames_at(path, wanted[i:i + _MAX_SELECT_TERMS], max_side=max_side, info=info, transform=transform,
                              timeout_s=timeout_s, decoder_threads=decoder_threads)
            out.extend(item for item in chunk if not out or item[0] > out[-1][0])
        return out
    origin = max(0.0, wanted[0] - 0.5)
    rel = [t - origin for t in wanted]
    # select a frame if it is the first one at/after some wanted time
    # 1 ms slack: after a seek, frame times are float sums that may land a hair below r
    terms = "+".join(f"gte(t,{r - 0.001:.3f})*(isnan(prev_t)+lt(prev_t,{r - 0.001:.3f}))" for r in rel)
    pre = ["-threads", str(decoder_threads)] if decoder_threads else []
    pre += ["-ss", f"{origin:.3f}"] if origin > 0 else []
    # stop shortly after the last wanted time: its frame is at most one frame interval later
    # (a few intervals of slack for jittery timestamps); decoding further is wasted work
    tail = max(_FRAMES_AT_TAIL_S, 3.0 / (info.fps or 30.0))
    pre += ["-t", f"{rel[-1] + tail:.3f}"]
    out = _run_raw(path, pre, f"select='{terms}'", fit_size(info.width, info.height, max_side), transform,
                   timeout_s=ffmpeg_timeout(rel[-1] + tail) if timeout_s is None else timeout_s)
    return [(round(t + origin, 3), f) for t, f in out]


def to_pil(frame: np.ndarray):
    from PIL import Image

    return Image.fromarray(frame)


# rough decode cost model used to pick one pass vs. one seek per window (measured with this ffmpeg
# on 2 cores: ~45 ms to start a process and seek; 0.35 ms per 720p frame and 0.10 ms per 360p
# frame decoded on one core, i.e. ~4e-10 s per pixel)
_PROCESS_OVERHEAD_S = 0.06
_KEYFRAME_GAP_S = 5.0  # typical distance a seek decodes from (YouTube GOPs are 2–5 s)
_SECONDS_PER_PIXEL = 4e-10  # H.264 decode + scale + pipe, per pixel per frame, one core
_SINGLE_PASS_MAX_BYTES = 256 << 20


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


_MAX_MERGED_SPAN_S = 4 * _KEYFRAME_GAP_S


def _windows(groups: list[list[float]]) -> list[list[int]]:
    """Indices of the non-empty groups, clustered to share one ffmpeg process: overlapping groups
    always (else the overlap is decoded twice), short groups less than a keyframe gap apart too (a
    separate seek would decode about that much anyway) while the cluster stays short: long
    windows (a round's gameplay) keep their own process so that processes can run in parallel."""
    order = sorted((i for i, g in enumerate(groups) if g), key=lambda i: groups[i][0])
    clusters: list[list[int]] = []
    start = end = 0.0
    for i in order:
        first, last = groups[i][0], groups[i][-1]
        if clusters and (first <= end or (first - end <= _KEYFRAME_GAP_S
                                          and max(end, last) - start <= _MAX_MERGED_SPAN_S)):
            clusters[-1].append(i)
            end = max(end, last)
        else:
            clusters.append([i])
            start, end = first, last
    return clusters


def _assign(times: list[float], got: list[tuple[float, object]]) -> list[tuple[float, object]]:
    """The frames `frames_at(times)` would return, picked out of a `frames_at` over a superset:
    for each time the first frame at or after it (the same 1-2 ms slack as the select filter)."""
    stamps = [t for t, _ in got]
    picked = sorted({j for t in times if (j := bisect.bisect_left(stamps, t - 0.002)) < len(got)})
    return [got[j] for j in picked]


def frames_in_windows(path: Path | str, groups: Sequence[Sequence[float]], *, max_side: int | None = None,
                      info: VideoInfo | None = None, transform: Callable[[np.ndarray], object] | None = None,
                      workers: int = 2) -> list[list[tuple[float, object]]]:
    """`frames_at` for several groups of times; returns one result list per group.

    Decoding the whole file once beats many seeking processes when the groups are many
    and the frames small; for long, large-frame videos seeking wins. The choice follows a
    small cost model; groups close together (or overlapping) share one seek. Results are
    the same either way: per group, exactly what `frames_at(group)` returns.
    """
    path = Path(path)
    info = info or probe(path)
    groups = [sorted(float(t) for t in g) for g in groups]
    live = [g for g in groups if g]
    if not live:
        return [[] for _ in groups]
    w, h = fit_size(info.width, info.height, max_side)
    fps = info.fps or 30.0
    frame_cost = info.width * info.height * _SECONDS_PER_PIXEL
    clusters = _windows(groups)
    spans = [(min(groups[i][0] for i in c), max(groups[i][-1] for i in c)) for c in clusters]
    start, end = spans[0][0], max(e for _, e in spans)
    single = (end - start + 1) * fps * frame_cost + _PROCESS_OVERHEAD_S
    multi = sum(_PROCESS_OVERHEAD_S + (e - s + _KEYFRAME_GAP_S) * fps * frame_cost for s, e in spans) / max(1, workers)
    n_frames = sum(len(g) for g in live)
    if len(clusters) > 1 and single <= multi and (
            transform is not None or n_frames * w * h * 3 <= _SINGLE_PASS_MAX_BYTES):
        clusters = [[i for c in clusters for i in c]]

    # parallel processes share the cores: a decoder thread pool each would only contend
    # (measured at 720p30 on 2 cores: 2 processes x 1 thread ~10 % faster than x auto threads)
    parallel = min(max(1, workers), len(clusters))
    threads = max(1, _cpu_count() // parallel) if parallel > 1 else None

    def one(cluster: list[int]) -> list[tuple[float, object]]:
        return frames_at(path, [t for i in cluster for t in groups[i]], max_side=max_side, info=info,
                         transform=transform, decoder_threads=threads)

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=parallel) as pool:  # separate ffmpeg processes overlap
        decoded = list(pool.map(one, clusters))
    out: list[list[tuple[float, object]]] = [[] for _ in groups]
    for cluster, got in zip(clusters, decoded):
        for i in cluster:
            out[i] = got if len(cluster) == 1 else _assign(groups[i], got)
    return out


def images_at(path: Path | str, times: Sequence[float], *, max_side: int | None = None) -> list[tuple[float, object]]:
    """`frames_at` as PIL images: [(frame time, PIL.Image)]."""
    return [(t, to_pil(f)) for t, f in frames_at(path, times, max_side=max_side)]
