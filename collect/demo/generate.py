"""Generate a small, deterministic corpus of synthetic GeoGuessr "play along" videos.

Everything `collect run` needs offline comes from here: a video with an audio track per
item, YouTube-style auto captions, the GeoGuessr API answers for its challenge, and the
ground truth the stages are scored against. `collect.demo.server` serves the folder.

Corpus folder layout (`out_dir`):

    truth.json                       ground truth (see below); also returned by generate_corpus
    videos.json                      [{id, title, description, upload_date, duration, channel}]
    media/<id>.mp4                   H.264 (yuv420p) video + AAC audio (a quiet sine tone)
    media/<id>.en.vtt                YouTube auto-caption WebVTT with per-word timing tags
    api/challenge_<token>.json       GET /api/v3/challenges/<token>            ({challenge, map, creator})
    api/rounds_<token>.json          GET /api/v3/results/highscores/<token>    ({items: [{game: {rounds,
                                     player: {guesses}}}]})

truth.json = {"generator": {parameters}, "videos": [{id, title, description, channel,
upload_date, challenge_token, map_name, time_limit, duration, media, captions,
rounds: [{round, start_s, guess_s, end_s, points, distance_km, distance_text, lat, lng,
guess_lat, guess_lng, pano_id, heading, pitch, country, country_code, city, local_name,
script, clues: [{text, category, start_s, end_s}], narration, post_reveal}]}]}
(narration = the words said between start_s and guess_s, post_reveal = after guess_s)

One video: a short intro card, then per round a street scene drawn with Pillow (sky, road
markings, signs with the real local-script name of the true place, bollards, poles...)
under a GeoGuessr-like overlay (a "ROUND i / N" box top right, a minimap bottom right)
while the "camera" pans from clue to clue; then the result screen ("4,873 points",
"12.3 km", a NEXT / VIEW SUMMARY button). The narrator names each clue while it is on
screen, opens rounds with "round two" / "next round", and talks about the answer only
after the result screen appears (guess_s). Ids are plain (`demo0001`); a hostile title
lives in the title field only.
"""
from __future__ import annotations

import math
import random
import string
import subprocess
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from geopy.distance import distance as geo_distance
from PIL import Image, ImageDraw, ImageFont

from collect.demo.captions import SpokenWord, youtube_auto_vtt
from collect.demo.locations import PLACES, Place
from naviclues.fsutil import atomic_path, atomic_write_json, atomic_write_text
from collect.video import ffmpeg_exe

WORDS_PER_S = 3.0  # a fast but natural commentary pace
SCORE_SCALE_KM = 1492.7  # GeoGuessr world-map scoring: points = 5000·exp(−d/1492.7)
CHANNEL = "GeoDemo Plays"
NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
                "eighteen", "nineteen", "twenty"]
FILLERS = [
    "let's look around a little bit more",
    "um let me check the other side of the road",
    "uh what else do we have here",
    "okay let me think about this for a second",
    "the road quality is pretty good actually",
    "there's not much else to see here honestly",
    "I like this kind of round where you have to think",
    "let me just double check everything",
    "um yeah okay",
    "so that is one thing we can use",
    "and the sun is pretty high right now",
    "I want to be careful with this one",
]
# Where the overlay sits, as fractions of the frame (mirrors GeoGuessr's layout)
COUNTER_BOX = (0.745, 0.03, 0.985, 0.125)  # x0, y0, x1, y1
MINIMAP_BOX = (0.765, 0.665, 0.985, 0.965)


# --------------------------------------------------------------------------- fonts, text
def font_path(bold: bool = False) -> Path:
    """DejaVu Sans from matplotlib's package data: covers Latin, Cyrillic, Greek, Georgian."""
    import matplotlib

    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    return Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name


@lru_cache(maxsize=64)
def font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(font_path(bold)), max(6, int(size)))


def format_points(points: int) -> str:
    return f"{points:,} points"


def format_distance(km: float) -> tuple[str, float]:
    """GeoGuessr's display ("850 m", "12.3 km", "1,204 km") and the km value it shows."""
    if km < 1:
        metres = int(round(km * 1000))
        return f"{metres} m", metres / 1000
    if km < 100:
        return f"{km:.1f} km", round(km, 1)
    return f"{int(round(km)):,} km", float(round(km))


def points_for(km: float) -> int:
    return min(5000, int(round(5000 * math.exp(-km / SCORE_SCALE_KM))))


# --------------------------------------------------------------------------- timeline
@dataclass
class RoundPlan:
    index: int
    place: Place
    start_f: int  # frame indices
    guess_f: int
    end_f: int
    distance_text: str
    distance_km: float
    points: int
    guess_lat: float
    guess_lng: float
    heading: float
    pitch: float
    pano_id: str
    stops: list[tuple[int, int]] = field(default_factory=list)  # (first frame, view offset px)
    words: list[SpokenWord] = field(default_factory=list)
    clues: list[dict] = field(default_factory=list)
    post_words: list[SpokenWord] = field(default_factory=list)


def _rand_token(rng: random.Random, n: int = 16, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _draw_distance(rng: random.Random) -> float:
    bucket = rng.random()
    if bucket < 0.1:
        return rng.uniform(0.05, 0.95)
    if bucket < 0.4:
        return rng.uniform(1.0, 99.0)
    if bucket < 0.75:
        return rng.uniform(100.0, 900.0)
    return rng.uniform(900.0, 3500.0)


def _say(text: str, start: float, end: float) -> list[SpokenWord]:
    """Spread a phrase's words evenly over [start, end)."""
    tokens = text.split()
    if not tokens:
        return []
    step = (end - start) / len(tokens)
    return [SpokenWord(tok, round(start + i * step, 3), round(start + (i + 0.85) * step, 3))
            for i, tok in enumerate(tokens)]


def _fill(required: list[str], seconds: float, rng: random.Random) -> list[str]:
    """Required sentences first, then filler until the window holds ~WORDS_PER_S words/s."""
    sentences = list(required)
    target = int(seconds * WORDS_PER_S)
    pool = FILLERS[:]
    rng.shuffle(pool)
    while sum(len(s.split()) for s in sentences) < target and pool:
        extra = pool.pop()
        if sum(len(s.split()) for s in sentences) + len(extra.split()) > target + 3:
            continue
        sentences.append(extra)
    return sentences


def _round_opener(k: int, rng: random.Random) -> str:
    if k == 1:
        return "okay round one here we go"
    word = NUMBER_WORDS[k] if k < len(NUMBER_WORDS) else str(k)
    return rng.choice([f"alright round {word}", "next round let's go", f"okay round {word}"])


def _plan_round(plan: RoundPlan, fps: int, width: int, pano_width: int, rng: random.Random) -> None:
    """Camera stops (one per clue + a last look at the sign) and the narration over them."""
    place = plan.place
    n_stops = len(place.clues) + 1
    pan_f = max(1, int(round(1.5 * fps)))
    round_f = plan.guess_f - plan.start_f
    stop_f = max(1, (round_f - (n_stops - 1) * pan_f) // n_stops)
    span = pano_width - width
    offsets = [int(span * j / (n_stops - 2)) for j in range(n_stops - 1)] + [0]
    t = plan.start_f
    plan.stops = []
    for j, off in enumerate(offsets):
        plan.stops.append((t, off))
        t += stop_f + (pan_f if j < n_stops - 1 else 0)
    # narration: window j runs from stop j to stop j+1 (the pan after it included)
    starts = [s for s, _ in plan.stops] + [plan.guess_f]
    country, city = place.country, place.city
    conclusion = (f"so this has to be {country} I'm going to guess near {city}" if plan.distance_km < 300
                  else f"I think this is {country} but I'm not sure where exactly I'll guess somewhere here")
    for j in range(n_stops):
        w0, w1 = starts[j] / fps, starts[j + 1] / fps
        required = []
        if j == 0:
            required.append(_round_opener(plan.index, rng))
        clue = place.clues[j] if j < len(place.clues) else None
        if clue:
            required.append(clue[1])
        else:
            required.append(conclusion)
        sentences = _fill(required, w1 - w0 - 0.5, rng) if clue else required + ["okay let's lock it in"]
        words = _say(" ".join(sentences), w0 + 0.25, w1 - 0.25)
        if clue:
            # the clue phrase is said while its object is centred (it follows the opener on stop 0)
            skip = len(required[0].split()) if j == 0 else 0
            n = len(clue[1].split())
            said = words[skip:skip + n]
            plan.clues.append({"text": clue[1], "category": clue[2], "kind": clue[0],
                               "start_s": said[0].start, "end_s": said[-1].end})
        plan.words.extend(words)
        if j in (1, 3) and rng.random() < 0.6:  # a music sting during the pan
            t_tag = (starts[j + 1] - pan_f / 2) / fps
            plan.words.append(SpokenWord("[Music]", round(t_tag, 3), round(t_tag + 0.6, 3)))
    plan.words.sort(key=lambda w: w.start)
    # after the reveal: strictly after guess_s
    g, e = plan.guess_f / fps, plan.end_f / fps
    if plan.points >= 4500:
        reveal = f"oh it was {city} nice {plan.points} points"
    elif plan.points >= 2000:
        reveal = f"okay it was {city} in {country} {plan.points} points not bad"
    else:
        reveal = f"oh no it was {city} in {country} that's only {plan.points} points"
    post = _fill([reveal], e - g - 1.2, rng)[:2]
    plan.post_words = _say(" ".join(post), g + 0.6, e - 0.4)


# --------------------------------------------------------------------------- drawing
def _gradient(top: tuple[int, int, int], bottom: tuple[int, int, int], w: int, h: int) -> np.ndarray:
    a = np.linspace(0.0, 1.0, h)[:, None, None]
    return (np.array(top)[None, None] * (1 - a) + np.array(bottom)[None, None] * a).repeat(w, axis=1)


def _draw_panorama(place: Place, width: int, height: int, pano_width: int, stop_offsets: list[int],
                   rng: random.Random) -> np.ndarray:
    H = height
    horizon = int(0.55 * H)
    sky = _gradient(tuple(max(0, c - 40) for c in place.sky), place.sky, pano_width, horizon)
    ground = _gradient(place.ground, tuple(max(0, c - 30) for c in place.ground), pano_width, H - horizon)
    img = Image.fromarray(np.concatenate([sky, ground]).astype(np.uint8))
    d = ImageDraw.Draw(img)
    # a far horizon line of hills and trees, so every view of the panorama looks different
    heights = np.cumsum(np.array([rng.uniform(-1.0, 1.0) for _ in range(pano_width // 8 + 2)])) * (H / 90)
    heights = np.clip(heights - heights.min(), 0, H * 0.12)
    hill = tuple(max(0, c - 45) for c in place.ground)
    d.polygon([(0, horizon)] + [(i * 8, horizon - int(h_)) for i, h_ in enumerate(heights)]
              + [(pano_width, horizon)], fill=hill)
    for _ in range(pano_width // 90):
        x = rng.randrange(0, pano_width)
        r = rng.randint(H // 60, H // 30)
        d.ellipse([x - r, horizon - 2 * r, x + r, horizon], fill=tuple(max(0, c - 70) for c in place.ground))
    road_top, road_mid = int(0.78 * H), int(0.89 * H)
    d.rectangle([0, road_top, pano_width, H], fill=(70, 70, 74))
    edge = (235, 200, 40) if place.country_code == "ZA" else (235, 235, 235)
    d.line([0, road_top + 3, pano_width, road_top + 3], fill=edge, width=max(2, H // 120))
    centre = (240, 200, 30) if place.line_colour == "yellow" else (240, 240, 240)
    if place.country_code == "US":  # double yellow
        for dy in (-3, 3):
            d.line([0, road_mid + dy, pano_width, road_mid + dy], fill=centre, width=max(2, H // 150))
    else:
        dash = H // 6
        for x in range(0, pano_width, dash * 2):
            d.rectangle([x, road_mid - 2, x + dash, road_mid + 2], fill=centre)
    # one object per clue, centred left of the frame middle (clear of the minimap)
    for j, (kind, _phrase, _cat) in enumerate(place.clues):
        cx = stop_offsets[j] + int(0.4 * width)
        _draw_object(d, kind, place, cx, H, horizon, road_top, rng)
    return np.asarray(img)


def _text_box(d: ImageDraw.ImageDraw, cx: int, top: int, lines: list[str], size: int,
              bg: tuple[int, int, int], fg: tuple[int, int, int], post_to: int) -> None:
    f = font(size, bold=True)
    widths = [d.textlength(t, font=f) for t in lines]
    w = int(max(widths)) + size
    h = len(lines) * int(size * 1.3) + size // 2
    x0 = cx - w // 2
    d.rectangle([cx - 3, top + h, cx + 3, post_to], fill=(120, 120, 120))
    d.rounded_rectangle([x0, top, x0 + w, top + h], radius=size // 4, fill=bg, outline=(250, 250, 250), width=2)
    for i, t in enumerate(lines):
        d.text((cx - widths[i] / 2, top + size // 4 + i * int(size * 1.3)), t, font=f, fill=fg)


def _draw_object(d: ImageDraw.ImageDraw, kind: str, place: Place, cx: int, H: int, horizon: int,
                 road_top: int, rng: random.Random) -> None:
    size = max(10, int(0.065 * H))
    if kind == "sign":
        bg = (20, 110, 60) if place.country_code in ("US", "NZ", "ZA", "AR") else (25, 70, 160)
        _text_box(d, cx, int(0.30 * H), [place.local_name], size, bg, (255, 255, 255), road_top)
    elif kind == "distance_sign":
        km = rng.randint(8, 240)
        _text_box(d, cx, int(0.28 * H), [f"{place.other_town} {km}", f"{place.local_name} 3"], int(size * 0.8),
                  (245, 245, 245), (20, 20, 20), road_top)
    elif kind == "bollard":
        w, h = max(6, H // 40), int(0.13 * H)
        base = road_top - 2
        body = (20, 20, 20) if place.country_code == "NO" else (245, 245, 245)
        d.rectangle([cx - w, base - h, cx + w, base], fill=body)
        band = (240, 200, 20) if place.country_code in ("IS",) else (20, 20, 20)
        if place.country_code == "NZ":
            band = (200, 30, 30)
        d.rectangle([cx - w, base - h, cx + w, base - int(h * 0.7)], fill=band)
        refl = (240, 190, 20) if place.country_code in ("NO", "GR") else (220, 30, 30)
        d.rectangle([cx - w // 2, base - int(h * 0.85), cx + w // 2, base - int(h * 0.75)], fill=refl)
    elif kind == "pole":
        wooden = place.country_code in ("US", "ZA", "NZ")
        colour = (110, 80, 50) if wooden else (170, 170, 165)
        w = max(4, H // 60)
        d.rectangle([cx - w, int(0.12 * H), cx + w, road_top], fill=colour)
        d.rectangle([cx - 8 * w, int(0.16 * H), cx + 8 * w, int(0.16 * H) + w], fill=colour)
        if not wooden:
            for y in range(int(0.3 * H), road_top - 10, H // 14):
                d.ellipse([cx - w // 2, y, cx + w // 2, y + w], fill=(60, 60, 60))
        else:
            d.rectangle([cx + w, int(0.22 * H), cx + 4 * w, int(0.30 * H)], fill=(120, 120, 125))
        d.line([cx - 40 * w, int(0.17 * H), cx + 40 * w, int(0.19 * H)], fill=(30, 30, 30), width=1)
    elif kind == "trees":
        palm = place.country_code in ("US", "BR")
        for k in range(-2, 3):
            x = cx + k * H // 7
            base = horizon + H // 10
            d.rectangle([x - 3, base - H // 6, x + 3, base], fill=(90, 60, 30))
            green = (40, 120, 40) if not palm else (60, 150, 50)
            r = H // 14
            d.ellipse([x - r, base - H // 6 - r, x + r, base - H // 6 + r], fill=green)
    elif kind == "mountains":
        for k in range(-2, 3):
            x = cx + k * H // 3
            peak = horizon - int(H * (0.22 + 0.05 * (k % 2)))
            d.polygon([(x - H // 3, horizon), (x, peak), (x + H // 3, horizon)], fill=(105, 110, 120))
            d.polygon([(x - H // 18, peak + H // 20), (x, peak), (x + H // 18, peak + H // 20)], fill=(245, 245, 250))
    elif kind == "building":
        if place.country_code == "MN":
            for k in (-1, 1):
                x = cx + k * H // 5
                d.rectangle([x - H // 10, horizon, x + H // 10, horizon + H // 10], fill=(245, 245, 240))
                d.pieslice([x - H // 10, horizon - H // 14, x + H // 10, horizon + H // 14], 180, 360,
                           fill=(235, 235, 230))
        else:
            for k in (-1, 1):
                x = cx + k * H // 4
                d.rectangle([x - H // 8, horizon - H // 10, x + H // 8, horizon + H // 12], fill=(230, 220, 200))
                d.polygon([(x - H // 7, horizon - H // 10), (x, horizon - H // 4), (x + H // 7, horizon - H // 10)],
                          fill=(180, 60, 40))
    # "road": the markings drawn everywhere are the clue


def _overlay_parts(width: int, height: int, round_no: int, n_rounds: int) -> list[tuple[int, int, np.ndarray, np.ndarray]]:
    """(x0, y0, rgb, alpha) patches: the round counter box and the minimap."""
    parts = []
    x0, y0, x1, y1 = (int(COUNTER_BOX[0] * width), int(COUNTER_BOX[1] * height),
                      int(COUNTER_BOX[2] * width), int(COUNTER_BOX[3] * height))
    box = Image.new("RGBA", (x1 - x0, y1 - y0), (0, 0, 0, 0))
    d = ImageDraw.Draw(box)
    d.rounded_rectangle([0, 0, x1 - x0 - 1, y1 - y0 - 1], radius=(y1 - y0) // 4, fill=(28, 20, 70, 225))
    f = font(int((y1 - y0) * 0.5), bold=True)
    text = f"ROUND {round_no} / {n_rounds}"
    tw = d.textlength(text, font=f)
    d.text(((x1 - x0 - tw) / 2, (y1 - y0) * 0.2), text, font=f, fill=(255, 255, 255, 255))
    parts.append((x0, y0, box))
    x0, y0, x1, y1 = (int(MINIMAP_BOX[0] * width), int(MINIMAP_BOX[1] * height),
                      int(MINIMAP_BOX[2] * width), int(MINIMAP_BOX[3] * height))
    mm = Image.new("RGBA", (x1 - x0, y1 - y0), (170, 200, 215, 235))
    d = ImageDraw.Draw(mm)
    for k in range(6):  # coastlines-ish squiggles
        y = (k + 0.5) * (y1 - y0) / 6
        d.line([(0, y), ((x1 - x0) * 0.4, y + 6), (x1 - x0, y - 4)], fill=(120, 170, 110, 255), width=3)
    d.rectangle([0, 0, x1 - x0 - 1, y1 - y0 - 1], outline=(255, 255, 255, 255), width=2)
    parts.append((x0, y0, mm))
    out = []
    for px, py, im in parts:
        arr = np.asarray(im).astype(np.float32)
        out.append((px, py, arr[:, :, :3], arr[:, :, 3:4] / 255.0))
    return out


def _composite(frame: np.ndarray, parts) -> np.ndarray:
    frame = frame.copy()
    for x0, y0, rgb, alpha in parts:
        h, w = rgb.shape[:2]
        region = frame[y0:y0 + h, x0:x0 + w].astype(np.float32)
        frame[y0:y0 + h, x0:x0 + w] = (rgb * alpha + region * (1 - alpha)).astype(np.uint8)
    return frame


def _result_screen(plan: RoundPlan, width: int, height: int, last: bool) -> np.ndarray:
    W, H = width, height
    img = Image.new("RGB", (W, H), (22, 14, 58))
    d = ImageDraw.Draw(img)
    # the reveal map: a pale panel with the guess pin, the true pin and the line between them
    mx0, my0, mx1, my1 = int(0.06 * W), int(0.05 * H), int(0.94 * W), int(0.44 * H)
    d.rectangle([mx0, my0, mx1, my1], fill=(196, 214, 226))
    for k in range(5):
        y = my0 + (k + 0.5) * (my1 - my0) / 5
        d.line([(mx0, y), (mx0 + (mx1 - mx0) * 0.5, y + 8), (mx1, y - 5)], fill=(150, 190, 140), width=3)
    gx = mx0 + (mx1 - mx0) * (0.3 + 0.4 * ((plan.guess_lng + 180) % 360) / 360)
    tx = mx0 + (mx1 - mx0) * (0.3 + 0.4 * ((plan.place.lng + 180) % 360) / 360)
    gy, ty = (my0 + my1) / 2 - 10, (my0 + my1) / 2 + 10
    d.line([(gx, gy), (tx, ty)], fill=(30, 30, 30), width=2)
    d.ellipse([gx - 6, gy - 6, gx + 6, gy + 6], fill=(220, 60, 60))
    d.ellipse([tx - 6, ty - 6, tx + 6, ty + 6], fill=(40, 160, 60))

    def centred(text: str, y: float, size: int, fill, bold: bool = True) -> None:
        f = font(size, bold)
        d.text(((W - d.textlength(text, font=f)) / 2, y), text, font=f, fill=fill)

    centred(format_points(plan.points), 0.50 * H, int(0.085 * H), (255, 214, 40))
    centred(f"{plan.distance_text} from the correct location", 0.64 * H, int(0.045 * H), (235, 235, 245), False)
    bar_w = int(0.5 * W)
    bx0, by = (W - bar_w) // 2, int(0.74 * H)
    d.rounded_rectangle([bx0, by, bx0 + bar_w, by + 8], radius=4, fill=(70, 60, 110))
    d.rounded_rectangle([bx0, by, bx0 + int(bar_w * plan.points / 5000), by + 8], radius=4, fill=(255, 214, 40))
    label = "VIEW SUMMARY" if last else "NEXT"
    f = font(int(0.05 * H), bold=True)
    tw = d.textlength(label, font=f)
    bw, bh = tw + 0.08 * W, 0.1 * H
    x0, y0 = (W - bw) / 2, 0.82 * H
    d.rounded_rectangle([x0, y0, x0 + bw, y0 + bh], radius=int(bh / 2), fill=(108, 185, 40))
    d.text(((W - tw) / 2, y0 + bh * 0.18), label, font=f, fill=(255, 255, 255))
    return np.asarray(img)


def _intro_card(width: int, height: int, map_name: str) -> np.ndarray:
    img = Image.new("RGB", (width, height), (16, 10, 44))
    d = ImageDraw.Draw(img)
    for text, y, size in ((CHANNEL, 0.35, 0.09), (f"playing {map_name}", 0.52, 0.055)):
        f = font(int(size * height), bold=True)
        d.text(((width - d.textlength(text, font=f)) / 2, y * height), text, font=f, fill=(240, 240, 255))
    return np.asarray(img)


# --------------------------------------------------------------------------- encoding
def _encode(frames_iter, n_frames: int, fps: int, size: tuple[int, int], target: Path) -> None:
    w, h = size
    duration = n_frames / fps
    with atomic_path(target) as tmp:
        cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
               "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(fps), "-i", "pipe:0",
               "-f", "lavfi", "-t", f"{duration:.3f}", "-i", "sine=frequency=220:sample_rate=16000",
               "-map", "0:v", "-map", "1:a", "-af", "volume=0.05",
               "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", str(fps * 5),
               "-c:a", "aac", "-b:a", "32k", "-movflags", "+faststart", "-f", "mp4", str(tmp)]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            for frame in frames_iter:
                proc.stdin.write(frame.tobytes())
            proc.stdin.close()
        except BrokenPipeError:
            pass
        err = proc.stderr.read().decode("utf-8", "replace")
        if proc.wait() != 0:
            raise RuntimeError(f"ffmpeg failed to encode {target.name}: {err.strip()[-500:]}")


# --------------------------------------------------------------------------- payloads
def _iso(rng: random.Random, year: int) -> str:
    return f"{year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00.0000000Z"


def _challenge_payload(token: str, map_name: str, map_slug: str, n_rounds: int, time_limit: int,
                       creator_nick: str, creator_id: str, rng: random.Random) -> dict:
    return {
        "challenge": {"token": token, "mapSlug": map_slug, "roundCount": n_rounds, "timeLimit": time_limit,
                      "forbidMoving": True, "forbidZooming": False, "forbidRotating": False,
                      "numberOfParticipants": rng.randint(3, 900), "gameMode": "standard", "challengeType": 0,
                      "streakType": "countrystreak", "accessLevel": 0},
        "map": {"id": map_slug, "name": map_name, "slug": map_slug,
                "description": "A demo world map for non-moving games.", "url": f"/maps/{map_slug}",
                "playUrl": f"/{map_slug}/play", "published": True, "banned": False,
                "images": {"backgroundLarge": None, "incomplete": True},
                "bounds": {"min": {"lat": -54.8, "lng": -170.7}, "max": {"lat": 70.2, "lng": 174.8}},
                "customCoordinates": None, "coordinateCount": None, "regions": None, "creator": None,
                "createdAt": _iso(rng, 2021), "updatedAt": _iso(rng, 2024), "numFinishedGames": 0,
                "likedByUser": None, "averageScore": 0,
                "avatar": {"background": "sunrise", "decoration": "tractor", "ground": "green",
                           "landscape": "mountains"},
                "difficulty": None, "difficultyLevel": 3, "highscore": None, "isUserMap": True,
                "highlighted": False, "free": False, "panoramaProvider": "StreetView",
                "inExplorerMode": False, "maxErrorDistance": 13949358, "likes": rng.randint(10, 20000),
                "locationSelectionMode": 0},
        "creator": {"nick": creator_nick, "created": _iso(rng, 2020), "isProUser": True, "type": "Pro",
                    "consumedTrial": True, "isVerified": False, "color": 0, "url": f"/user/{creator_id}",
                    "id": creator_id, "countryCode": "fi", "isBanned": False, "chatBan": False,
                    "isBotUser": False, "suspendedUntil": None, "flair": 0, "isCreator": False},
    }


def _highscores_payload(token: str, map_name: str, map_slug: str, time_limit: int, plans: list[RoundPlan],
                        player_nick: str, player_id: str, fps: int, rng: random.Random) -> dict:
    game_token = _rand_token(rng)
    rounds, guesses = [], []
    for p in plans:
        # GeoGuessr sends the Street View pano id hex-encoded (its ASCII bytes as hex)
        rounds.append({"lat": p.place.lat, "lng": p.place.lng, "panoId": p.pano_id.encode("ascii").hex().upper(),
                       "heading": p.heading,
                       "pitch": p.pitch, "zoom": 0, "streakLocationCode": p.place.country_code.lower(),
                       "startTime": None})
        meters = p.distance_km * 1000
        amount, unit = (p.distance_text.split(" ") + ["km"])[:2]
        guesses.append({"lat": p.guess_lat, "lng": p.guess_lng, "timedOut": False, "timedOutWithGuess": False,
                        "skippedRound": False,
                        "roundScore": {"amount": str(p.points), "unit": "points",
                                       "percentage": round(p.points / 50, 2)},
                        "roundScoreInPercentage": round(p.points / 50, 2), "roundScoreInPoints": p.points,
                        "distance": {"meters": {"amount": amount.replace(",", ""), "unit": unit},
                                     "miles": {"amount": f"{meters / 1609.344:.1f}", "unit": "miles"}},
                        "distanceInMeters": meters, "stepsCount": 0, "streakLocationCode": None,
                        "time": int((p.guess_f - p.start_f) / fps)})
    total = sum(p.points for p in plans)
    total_m = sum(p.distance_km * 1000 for p in plans)
    game = {"token": game_token, "type": "challenge", "mode": "standard", "state": "finished",
            "roundCount": len(plans), "timeLimit": time_limit, "forbidMoving": True, "forbidZooming": False,
            "forbidRotating": False, "streakType": "countrystreak", "map": map_slug, "mapName": map_name,
            "panoramaProvider": 1,
            "bounds": {"min": {"lat": -54.8, "lng": -170.7}, "max": {"lat": 70.2, "lng": 174.8}},
            "round": len(plans), "rounds": rounds,
            "player": {"totalScore": {"amount": str(total), "unit": "points",
                                      "percentage": round(total / (50 * len(plans)), 2)},
                       "totalDistance": {"meters": {"amount": f"{total_m / 1000:.1f}", "unit": "km"},
                                         "miles": {"amount": f"{total_m / 1609.344:.1f}", "unit": "miles"}},
                       "totalDistanceInMeters": total_m, "totalStepsCount": 0,
                       "totalTime": sum(g["time"] for g in guesses), "totalStreak": 0, "guesses": guesses,
                       "isLeader": True, "currentPosition": 0,
                       "pin": {"url": "pin/demo.png", "anchor": "center-center", "isDefault": False},
                       "newBadges": [], "explorer": None, "id": player_id, "nick": player_nick,
                       "isVerified": False, "flair": 0, "countryCode": "fi"},
            "progressChange": None}
    return {"items": [{"gameId": game_token, "playerName": player_nick, "userId": player_id,
                       "totalScore": total, "isLeader": True, "pinUrl": "pin/demo.png", "game": game}],
            "paginationToken": None}


def _passes_paper_filters(plan: RoundPlan, time_limit: int) -> bool:
    """The paper's filters as README states them, from what the plan says: moving is forbidden in
    every demo challenge and all talk is English, so ≥ 3400 points, ≥ 100 pre-reveal words
    (all narration lies in [start_s, guess_s)) and a time limit of none or ≥ 30 s decide."""
    words = sum(1 for w in plan.words if not w.text.startswith("["))
    return plan.points >= 3400 and words >= 100 and (not time_limit or time_limit >= 30)


# --------------------------------------------------------------------------- main entry points
TITLES = [
    "Expert GeoGuessr Play Along | {map} | No Move Challenge",
    'Can I 5k this?! "../../etc/passwd" <b>GeoGuessr</b> & {map} \u2014 rm -rf / ; Ep. {n}',
    "Reading every clue on {map} (GeoGuessr commentary)",
]
MAPS = ["A Demo World", "GeoDemo Diverse", "Demo Detective"]


def generate_corpus(out_dir: Path | str, n_videos: int = 2, rounds_per_video: int = 5, seed: int = 0,
                    round_seconds: float = 40.0, result_seconds: float = 7.0, fps: int = 2,
                    size: tuple[int, int] = (640, 360), intro_seconds: float = 6.0,
                    id_prefix: str = "demo", counter_on_results: bool = False) -> dict:
    """Write a corpus (layout in the module docstring) and return its truth.json content.

    round_seconds is the gameplay time before the guess (≥ 36 s keeps each round's
    narration ≥ 100 words at 3 words/s); result_seconds is how long the result screen shows.
    counter_on_results keeps the "ROUND i / N" box on the result screens too (a layout
    variant segmenters must cope with). Same arguments → same files.
    """
    out = Path(out_dir)
    (out / "media").mkdir(parents=True, exist_ok=True)
    (out / "api").mkdir(parents=True, exist_ok=True)
    width, height = size
    pano_width = width * 3
    videos_json, truth_videos = [], []
    for v in range(n_videos):
        video_id = f"{id_prefix}{v + 1:04d}"
        vrng = random.Random(f"{seed}:{video_id}")
        token = _rand_token(vrng)
        map_name = MAPS[v % len(MAPS)]
        map_slug = _rand_token(vrng, 24, "0123456789abcdef")
        time_limit = [0, 180, 90][v % 3]
        places = vrng.sample(PLACES, min(rounds_per_video, len(PLACES)))
        while len(places) < rounds_per_video:
            places.append(vrng.choice(PLACES))
        intro_f = int(round(intro_seconds * fps))
        round_f, result_f = int(round(round_seconds * fps)), int(round(result_seconds * fps))
        plans = []
        for k, place in enumerate(places, start=1):
            start = intro_f + (k - 1) * (round_f + result_f)
            text, km = format_distance(_draw_distance(vrng))
            bearing = vrng.uniform(0, 360)
            guess = geo_distance(kilometers=km).destination((place.lat, place.lng), bearing)
            plan = RoundPlan(k, place, start, start + round_f, start + round_f + result_f, text, km,
                             points_for(km), round(guess.latitude, 6), round(guess.longitude, 6),
                             heading=round(vrng.uniform(0, 360), 2), pitch=round(vrng.uniform(-5, 5), 2),
                             pano_id=_rand_token(vrng, 22, string.ascii_letters + string.digits + "_-"))
            _plan_round(plan, fps, width, pano_width, vrng)
            plans.append(plan)
        n_frames = plans[-1].end_f
        duration = n_frames / fps

        intro_words = [SpokenWord("[Music]", 0.0, 1.2)] + _say(
            f"welcome back everyone today we are playing {map_name} no moving let's go", 1.5, intro_seconds - 0.3)

        def frames():
            card = _intro_card(width, height, map_name)
            for _ in range(intro_f):
                yield card
            for p in plans:
                pano = _draw_panorama(p.place, width, height, pano_width, [o for _, o in p.stops[:-1]], vrng)
                parts = _overlay_parts(width, height, p.index, len(plans))
                stop_frames = [s for s, _ in p.stops]
                for f in range(p.start_f, p.guess_f):
                    j = max(i for i, s in enumerate(stop_frames) if s <= f)
                    off = p.stops[j][1]
                    pan_f = max(1, int(round(1.5 * fps)))
                    nxt = stop_frames[j + 1] if j + 1 < len(stop_frames) else p.guess_f
                    if j + 1 < len(p.stops) and f >= nxt - pan_f:  # panning to the next stop
                        a = (f - (nxt - pan_f)) / pan_f
                        off = int(off + a * (p.stops[j + 1][1] - off))
                    off = min(pano_width - width, max(0, off + (f % 3) - 1))  # slight hand jitter
                    yield _composite(pano[:, off:off + width], parts)
                screen = _result_screen(p, width, height, last=p is plans[-1])
                if counter_on_results:
                    screen = _composite(screen, parts[:1])
                for _ in range(p.guess_f, p.end_f):
                    yield screen

        media = out / "media" / f"{video_id}.mp4"
        _encode(frames(), n_frames, fps, size, media)
        words = intro_words + [w for p in plans for w in p.words + p.post_words]
        vtt = out / "media" / f"{video_id}.en.vtt"
        atomic_write_text(vtt, youtube_auto_vtt(words))

        title = TITLES[v % len(TITLES)].format(map=map_name, n=v + 1)
        description = (f"Play along: https://www.geoguessr.com/challenge/{token}\n"
                       f"Map: {map_name} (no moving, {'no time limit' if not time_limit else f'{time_limit} s'})\n"
                       "#geoguessr #geography")
        upload_date = f"2024{(v % 12) + 1:02d}{(v * 7) % 27 + 1:02d}"
        atomic_write_json(out / "api" / f"challenge_{token}.json",
                          _challenge_payload(token, map_name, map_slug, len(plans), time_limit, "DemoMapper",
                                             _rand_token(vrng, 24, "0123456789abcdef"), vrng))
        atomic_write_json(out / "api" / f"rounds_{token}.json",
                          _highscores_payload(token, map_name, map_slug, time_limit, plans, CHANNEL.replace(" ", ""),
                                              _rand_token(vrng, 24, "0123456789abcdef"), fps, vrng))
        videos_json.append({"id": video_id, "title": title, "description": description,
                            "upload_date": upload_date, "duration": duration, "channel": CHANNEL})
        truth_videos.append({
            "id": video_id, "title": title, "description": description, "channel": CHANNEL,
            "upload_date": upload_date, "challenge_token": token, "map_name": map_name, "time_limit": time_limit,
            "duration": duration, "media": f"media/{video_id}.mp4", "captions": f"media/{video_id}.en.vtt",
            # README "truth.json" fields (benchmarks/segment_accuracy.py)
            "page": f"watch/{video_id}", "token": token, "duration_s": duration,
            "rounds": [{
                "round": p.index, "start_s": p.start_f / fps, "guess_s": p.guess_f / fps, "end_s": p.end_f / fps,
                "points": p.points, "distance_km": p.distance_km, "distance_text": p.distance_text,
                "lat": p.place.lat, "lng": p.place.lng, "guess_lat": p.guess_lat, "guess_lng": p.guess_lng,
                "pano_id": p.pano_id, "heading": p.heading, "pitch": p.pitch,
                "country": p.place.country, "country_code": p.place.country_code, "city": p.place.city,
                "local_name": p.place.local_name, "script": p.place.script,
                "clues": [{k: c[k] for k in ("text", "category", "start_s", "end_s")} for c in p.clues],
                "narration": " ".join(w.text for w in p.words if not w.text.startswith("[")),
                "post_reveal": " ".join(w.text for w in p.post_words),
                "clue_times": [[round((c["start_s"] + c["end_s"]) / 2, 3), c["text"]] for c in p.clues],
                "kept": _passes_paper_filters(p, time_limit),
            } for p in plans],
        })
    truth = {"generator": {"n_videos": n_videos, "rounds_per_video": rounds_per_video, "seed": seed,
                           "round_seconds": round_seconds, "result_seconds": result_seconds, "fps": fps,
                           "size": list(size), "intro_seconds": intro_seconds,
                           "counter_on_results": counter_on_results},
             "videos": truth_videos}
    atomic_write_json(out / "videos.json", videos_json)
    atomic_write_json(out / "truth.json", truth)
    return truth


def generate_long_video(out_dir: Path | str, minutes: float = 10.0, seed: int = 0, **kwargs) -> dict:
    """One ~`minutes`-long video (as many rounds as fit) for throughput benchmarks.

    The counter reads "ROUND i / N" with N > 5 when needed: a benchmark input, not a
    realistic challenge.
    """
    round_s = kwargs.get("round_seconds", 40.0) + kwargs.get("result_seconds", 7.0)
    rounds = max(1, int(math.ceil((minutes * 60 - kwargs.get("intro_seconds", 6.0)) / round_s)))
    kwargs.setdefault("id_prefix", "long")
    return generate_corpus(out_dir, n_videos=1, rounds_per_video=rounds, seed=seed, **kwargs)


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Write a demo corpus of synthetic GeoGuessr videos.")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--videos", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--long-minutes", type=float, default=None, help="one long video instead")
    args = parser.parse_args(argv)
    if args.long_minutes:
        truth = generate_long_video(args.out_dir, args.long_minutes, seed=args.seed)
    else:
        truth = generate_corpus(args.out_dir, args.videos, args.rounds, seed=args.seed)
    for v in truth["videos"]:
        print(v["id"], f"{v['duration']:.0f}s", len(v["rounds"]), "rounds")


if __name__ == "__main__":
    main()
