"""ffmpeg does the sampling: frames reach Python already scaled and already thinned out.

A high-resolution, high-frame-rate clip (every frame carries its own index as a bar code) is
sampled; Python receives only the requested frames, at the reduced size, with their true times.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from collect.video import fit_size, frames_at, frames_in_windows, probe, sample_every, sample_keyframes, ffmpeg_exe

W, H, FPS, SECONDS = 1280, 720, 60, 4
BITS = 10  # frame index as a bar code of 10 white/black cells across the frame


def _frame(i: int) -> np.ndarray:
    img = np.zeros((H, W, 3), np.uint8)
    cell = W // BITS
    for b in range(BITS):
        if (i >> b) & 1:
            img[:, b * cell:(b + 1) * cell] = 255
    return img


def _index(frame: np.ndarray) -> int:
    h, w = frame.shape[:2]
    cell = w / BITS
    row = frame[h // 2, :, :].mean(axis=1)
    return sum(1 << b for b in range(BITS) if row[int((b + 0.5) * cell)] > 127)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sampling") / "clip720p60.mp4"
    cmd = [ffmpeg_exe(), "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{W}x{H}",
           "-r", str(FPS), "-i", "pipe:0", "-c:v", "libx264", "-preset", "ultrafast", "-g", str(FPS),
           "-pix_fmt", "yuv420p", str(out)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    for i in range(SECONDS * FPS):
        proc.stdin.write(_frame(i).tobytes())
    proc.stdin.close()
    assert proc.wait() == 0
    return out


def test_probe_reads_size_and_rate(clip):
    info = probe(clip)
    assert (info.width, info.height, info.fps) == (W, H, FPS)
    assert info.duration_s == pytest.approx(SECONDS, abs=0.05)


def test_sample_every_returns_only_sampled_frames_scaled_by_ffmpeg(clip):
    shapes = []

    def seen(frame: np.ndarray) -> np.ndarray:  # what Python receives off the pipe
        shapes.append(frame.shape)
        return frame

    got = sample_every(clip, 0.5, max_side=320, transform=seen)
    assert len(shapes) == len(got) == SECONDS * 2  # 8 of the 240 decoded frames crossed the pipe
    assert set(shapes) == {(180, 320, 3)}  # scaled inside ffmpeg: Python never held a 720p frame
    times = [t for t, _ in got]
    assert times == pytest.approx([0.5 * k for k in range(SECONDS * 2)], abs=1 / FPS)
    # each frame is the one shown at its reported time
    assert [_index(f) for _, f in got] == [round(t * FPS) for t in times]


def test_keyframes_only_sampling_decodes_the_keyframes(clip):
    got = sample_keyframes(clip, 1.5, max_side=256)
    assert got is not None
    assert [t for t, _ in got] == pytest.approx([0.0, 1.0, 2.0, 3.0], abs=1e-3)  # the 1 s GOP's keyframes
    assert {f.shape for _, f in got} == {fit_size(W, H, 256)[::-1] + (3,)}
    assert [_index(f) for _, f in got] == [0, 60, 120, 180]


def test_frames_at_and_windows_pick_exact_frames_at_reduced_size(clip):
    wanted = [0.25, 1.1, 2.999, 3.5]
    got = frames_at(clip, wanted, max_side=400)
    assert [_index(f) for _, f in got] == [15, 66, 180, 210]  # the first frame at/after each time
    assert {f.shape for _, f in got} == {(224, 400, 3)}
    windows = frames_in_windows(clip, [[0.25, 1.1], [2.999, 3.5]], max_side=400)
    assert [[_index(f) for _, f in w] for w in windows] == [[15, 66], [180, 210]]
