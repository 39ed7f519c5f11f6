"""Throughput of collect's non-ASR stages on a long generated demo video.

Generates a ~10-minute GeoGuessr-like video — by default the demo's 640x360 at a real 30 fps
(`--width 1280` for a 720p download) — or reuses --corpus, serves it on 127.0.0.1 and
runs discover → download (yt-dlp) → transcript (captions) → challenge → segment (OCR) →
frames through the real `collect run` machinery, timing only the stage work.

Prints video-seconds per wall-second and peak RSS; the last line is one JSON object with
`realtime_factor` and `peak_rss_mb`. Target: realtime_factor ≥ 50 on 2 cores.
"""
from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

from rich.console import Console

from collect.config import load_config
from collect.demo.generate import generate_long_video
from collect.demo.server import DemoServer
from collect.runner import run_collect
from collect.store import RunStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the generated video")
    parser.add_argument("--corpus", type=Path, help="existing corpus folder (default: generate in a temp dir)")
    parser.add_argument("--out", type=Path, help="run folder (default: a temp dir)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sample-every", type=float, default=6.0)
    parser.add_argument("--fps", type=int, default=30, help="frame rate of the generated video")
    parser.add_argument("--width", type=int, default=640, help="frame width (height follows 16:9); 1280 = 720p")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="collect-throughput-"))
    corpus = args.corpus or tmp / "corpus"
    if not (corpus / "truth.json").exists():
        t0 = time.perf_counter()
        size = (args.width, args.width * 9 // 16)
        generate_long_video(corpus, minutes=args.minutes, fps=args.fps, size=size)
        print(f"generated {args.minutes} min video ({size[0]}x{size[1]}, {args.fps} fps) in "
              f"{time.perf_counter() - t0:.1f} s")
    out = args.out or tmp / "run"
    cfg = load_config(overrides=[f"run.workers={args.workers}", f"segment.sample_every={args.sample_every}"])
    console = Console(stderr=True)
    with DemoServer(corpus) as server:
        cfg = cfg.model_copy(update={"challenge": cfg.challenge.model_copy(update={"api_base": server.url})})
        t0 = time.perf_counter()
        code = run_collect(out, cfg, sources=[server.feed_url], console=console)
        wall = time.perf_counter() - t0
    with RunStore(out) as store:
        videos = store.videos()
        failed = [(r.video_id, r.stage, r.error_message) for r in store.rows() if r.status == "failed"]
    video_s = sum(v.duration_s or 0 for v in videos)
    # ru_maxrss is KiB on Linux; children = ffmpeg and any pool workers
    peak_kib = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                   resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    figures = {
        "video_seconds": round(video_s, 1),
        "wall_seconds": round(wall, 2),
        "realtime_factor": round(video_s / wall, 1) if wall else None,
        "peak_rss_mb": round(peak_kib / 1024, 1),
        "exit_code": code,
        "video": {"fps": args.fps, "width": args.width} if not args.corpus else "given corpus",
        "failed": failed,
    }
    print(f"{video_s:.0f} s of video in {wall:.1f} s wall → {figures['realtime_factor']}× real time; "
          f"peak RSS {figures['peak_rss_mb']} MB")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
