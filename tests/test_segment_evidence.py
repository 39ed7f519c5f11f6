"""segment_video on a small video in the real game's look (its own drawing code, not collect/demo's):
an intro that flashes a result screen, a sponsor spot inside round 1, a timed-out last round, the
end-of-game summary, a HUD score and a transcript that disagree with the result screens.

Real ffmpeg, real RapidOCR; the video is 2 fps so the test stays fast.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from collect.config import SegmentConfig
from collect.records import Segment, Transcript, Word
from collect.stages.segment import segment_video
from collect.video import ffmpeg_exe

W, H, FPS = 640, 360, 2
# (from s, to s, screen)
TIMELINE = [
    (0, 12, "intro"),
    (12, 22, "play1"),
    (22, 28, "sponsor"),
    (28, 40, "play1"),
    (40, 50, "result1"),
    (50, 80, "play2"),
    (80, 88, "result2"),
    (88, 100, "summary"),
]


def _font(size: int) -> ImageFont.FreeTypeFont:
    import matplotlib

    return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans-Bold.ttf"), size)


def _centred(d: ImageDraw.ImageDraw, text: str, y: int, size: int, fill=(250, 250, 250)) -> None:
    f = _font(size)
    d.text(((W - d.textlength(text, font=f)) / 2, y), text, font=f, fill=fill)


def _result_panel(d: ImageDraw.ImageDraw, points: str, distance: str | None, button: str) -> None:
    d.rectangle([0, 0, W, int(0.6 * H)], fill=(170, 200, 150))  # the map
    d.line([(180, 90), (420, 150)], fill=(20, 20, 20), width=3)  # the guess line
    d.rectangle([0, int(0.6 * H), W, H], fill=(26, 20, 60))
    _centred(d, points, int(0.62 * H), 26, (255, 214, 40))
    if distance:
        _centred(d, distance, int(0.74 * H), 13)
    d.rounded_rectangle([W // 2 - 75, int(0.84 * H), W // 2 + 75, int(0.84 * H) + 34], radius=16, fill=(108, 185, 40))
    _centred(d, button, int(0.84 * H) + 8, 15)


def _screen(screen: str, t: float) -> np.ndarray:
    img = Image.new("RGB", (W, H), (40, 40, 40))
    d = ImageDraw.Draw(img)
    if screen.startswith("play"):
        k = int(screen[-1])
        shift = int(t * 7) % 80
        for x in range(0, W, 40):  # a panning street scene
            d.rectangle([x - shift, 120, x - shift + 24, 300], fill=(90 + x % 90, 120, 80))
        d.rectangle([0, 300, W, H], fill=(70, 70, 75))
        bar = f"MAP World  |  ROUND {k}/2  |  SCORE {0 if k == 1 else '4,000'}"
        d.rectangle([W - 300, 8, W - 8, 34], fill=(22, 16, 52))
        d.text((W - 292, 14), bar, font=_font(11), fill=(255, 255, 255))
    elif screen == "intro":
        d.rectangle([0, 0, W, H], fill=(30, 60, 110))
        _centred(d, "GEOGUESSR", 40, 34)
        _result_panel(ImageDraw.Draw(img), "5,000 points", "Your guess was 3 m from the correct location",
                      "NEXT ROUND")  # a highlight flashed in the intro, not a round of this video
        _centred(d, "BEST OF THE WEEK", 20, 18, (255, 90, 90))
    elif screen == "sponsor":
        d.rectangle([0, 0, W, H], fill=(240, 240, 240))
        _centred(d, "This video is sponsored by", 120, 18, (20, 20, 20))
        _centred(d, "ROUTEVPN", 170, 30, (200, 30, 30))
        _centred(d, "Use code GEO for 20% off", 250, 16, (20, 20, 20))
    elif screen == "result1":
        _result_panel(d, "4,874 points", "Your guess was 12 km from the correct location", "NEXT ROUND")
    elif screen == "result2":  # timed out: no guess, no distance
        _result_panel(d, "0 points", None, "VIEW SUMMARY")
    elif screen == "summary":
        d.rectangle([0, 0, W, H], fill=(26, 20, 60))
        _centred(d, "GAME SUMMARY", int(0.50 * H), 18)
        _centred(d, "4,874 points", int(0.62 * H), 26, (255, 214, 40))
        _centred(d, "PLAY AGAIN", int(0.85 * H), 15)
    return np.asarray(img).astype(np.int16)


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("evidence") / "game.mp4"
    rng = np.random.default_rng(0)
    noise = [rng.integers(-6, 7, (H, W, 3)) for _ in range(3)]  # sensor/compression grain
    drawn: dict[tuple[str, float], np.ndarray] = {}
    cmd = [ffmpeg_exe(), "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{W}x{H}",
           "-r", str(FPS), "-i", "pipe:0", "-c:v", "libx264", "-preset", "ultrafast", "-crf", "30",
           "-g", str(5 * FPS), "-pix_fmt", "yuv420p", str(out)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    for start, end, screen in TIMELINE:
        for i in range(start * FPS, end * FPS):
            t = i / FPS if screen.startswith("play") else 0.0
            base = drawn.setdefault((screen, t), _screen(screen, t))
            proc.stdin.write(np.clip(base + noise[i % 3], 0, 255).astype(np.uint8).tobytes())
    proc.stdin.close()
    assert proc.wait() == 0
    return out


def _transcript() -> Transcript:
    def said(text: str, start: float) -> list[Word]:
        return [Word(w, start + 0.4 * i, start + 0.4 * i + 0.3) for i, w in enumerate(text.split())]

    words = said("welcome back everyone", 2.0) + said("round one here we go", 12.5) + \
        said("okay round three let's go", 51.0)  # the streamer miscounts: the HUD says round 2
    return Transcript("game", "captions:auto", "en", [Segment(0.0, 100.0, "", words)])


@pytest.fixture(scope="module")
def segmented(video):
    return segment_video(video, SegmentConfig(), _transcript())


def test_only_the_two_real_rounds_are_found(segmented):
    assert [(r.round, r.points, r.distance_km) for r in segmented.rounds] == [(1, 4874, 12.0), (2, 0, None)]
    first, second = segmented.rounds
    assert abs(first.guess_s - 40.0) <= 1.0 and abs(second.guess_s - 80.0) <= 1.0
    assert abs(first.start_s - 12.0) <= 1.0 and abs(second.start_s - 50.0) <= 1.0
    assert any("timed out" in e for e in second.evidence)


def test_intro_and_summary_are_refused_with_reasons(segmented):
    refused = " | ".join(segmented.refused)
    assert "intro" in refused  # the 5,000-point highlight before any gameplay
    assert "summary" in refused  # GAME SUMMARY / PLAY AGAIN after round 2
    assert all(not (r.guess_s < 12.0 or r.guess_s > 88.0) for r in segmented.rounds)


def test_disagreeing_evidence_is_recorded(segmented):
    first, second = segmented.rounds
    # the HUD score rose by 4,000 while the result screen said 4,874
    assert any("4874 points" in d and "+4000" in d for d in first.disagreements), first.disagreements
    # the transcript says "round three" where the HUD counter reads 2
    assert any("round 3" in d and "counter reads 2" in d for d in second.disagreements), second.disagreements
    assert any(e.startswith("ocr:round-counter 2/2@") for e in second.evidence)
