"""ffmpeg helpers: probe a video and pull frames at chosen times as numpy/PIL images.

We use the ffmpeg binary shipped by imageio-ffmpeg (no system ffmpeg, no ffprobe). Frames
come back as raw RGB on a pipe, so one ffmpeg process serves many timestamps:

* `sample_every` — one frame per `every_s` bucket over a window, one decode pass;
* `frames_at`    — the first frame at or after each given time, one process per window;
  a fast input seek (`-ss` before `-i`) skips everything before the window.

Times returned are the frames' real presentation times (read from ffmpeg's `showinfo`
filter), not the requested ones, so callers can report exactly what they looked at.
Any ffmpeg failure raises `VideoError` carrying ffmpeg's own message. Every ffmpeg process has a
deadline (`ffmpeg_timeout`: generous, proportional to the media it decodes) and is killed and
reaped on every exit path, including a `transform` that raises, so none is left blocked on a
full pipe.
"""
from __future__ import annotations

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
    frames = []
    try:
        reader.start()
        watchdog.start()
        while not timed_out.is_set():
            buf = proc.stdout.read(frame_bytes)
            if len(buf) < frame_bytes:
                break
            arr = np.frombuffer(buf, np.uint8).reshape(h, w, 3)
            frames.append(transform(arr) if transform else arr)
        proc.stdout.close()
        code = proc.wait()
    finally:
        # whatever happened above (a raising transform, an interrupt): no ffmpeg left blocked on a full pipe
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
        proc.wait()
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


_MAX_SELECT_TERMS = 48


def frames_at(path: Path | str, times: Sequence[float], *, max_side: int | None = None,
              info: VideoInfo | None = None, transform: Callable[[np.ndarray], object] | None = None,
              timeout_s: float | None = None) -> list[tuple[float, object]]:
    """For each requested time, the first frame at or after it: [(frame time, frame)], in order.

    One ffmpeg process covers all requests: it seeks to the earliest and decodes up to the
    latest only. Requests past the last frame are dropped (the caller sees fewer results).
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
                              timeout_s=timeout_s)
            out.extend(item for item in chunk if not out or item[0] > out[-1][0])
        return out
    origin = max(0.0, wanted[0] - 0.5)
    rel = [t - origin for t in wanted]
    # select a frame if it is the first one at/after some wanted time
    # 1 ms slack: after a seek, frame times are float sums that may land a hair below r
    terms = "+".join(f"gte(t,{r - 0.001:.3f})*(isnan(prev_t)+lt(prev_t,{r - 0.001:.3f}))" for r in rel)
    pre = ["-ss", f"{origin:.3f}"] if origin > 0 else []
    pre += ["-t", f"{rel[-1] + 2.0:.3f}"]
    out = _run_raw(path, pre, f"select='{terms}'", fit_size(info.width, info.height, max_side), transform,
                   timeout_s=ffmpeg_timeout(rel[-1] + 2.0) if timeout_s is None else timeout_s)
    return [(round(t + origin, 3), f) for t, f in out]


def to_pil(frame: np.ndarray):
    from PIL import Image

    return Image.fromarray(frame)


# rough decode cost model used to pick one pass vs. one seek per window
_PROCESS_OVERHEAD_S = 0.06
_KEYFRAME_GAP_S = 5.0  # typical distance a seek decodes from (YouTube GOPs are 2–5 s)
_SECONDS_PER_PIXEL = 2e-9  # H.264 decode + scale + pipe, per pixel per frame, one core
_SINGLE_PASS_MAX_BYTES = 256 << 20


def frames_in_windows(path: Path | str, groups: Sequence[Sequence[float]], *, max_side: int | None = None,
                      info: VideoInfo | None = None, transform: Callable[[np.ndarray], object] | None = None,
                      workers: int = 2) -> list[list[tuple[float, object]]]:
    """`frames_at` for several disjoint groups of times; returns one result list per group.

    Decoding the whole file once beats many seeking processes when the groups are many
    and the frames small (the demo corpus); for long, large-frame videos seeking wins.
    The choice follows a small cost model; results are the same either way.
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
    start, end = min(g[0] for g in live), max(g[-1] for g in live)
    single = (end - start + 1) * fps * frame_cost + _PROCESS_OVERHEAD_S
    multi = sum(_PROCESS_OVERHEAD_S + (g[-1] - g[0] + _KEYFRAME_GAP_S) * fps * frame_cost for g in live) / max(1, workers)
    n_frames = sum(len(g) for g in live)
    if single <= multi and (transform is not None or n_frames * w * h * 3 <= _SINGLE_PASS_MAX_BYTES):
        got = frames_at(path, [t for g in live for t in g], max_side=max_side, info=info, transform=transform)
        slack = 1.0 / fps + 1e-3
        return [[(t, f) for t, f in got if g and g[0] - 1e-3 <= t <= g[-1] + slack] for g in groups]
    from concurrent.futures import ThreadPoolExecutor

    def one(g):
        return frames_at(path, g, max_side=max_side, info=info, transform=transform) if g else []

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:  # separate ffmpeg processes overlap
        return list(pool.map(one, groups))


def images_at(path: Path | str, times: Sequence[float], *, max_side: int | None = None) -> list[tuple[float, object]]:
    """`frames_at` as PIL images: [(frame time, PIL.Image)]."""
    return [(t, to_pil(f)) for t, f in frames_at(path, times, max_side=max_side)]
