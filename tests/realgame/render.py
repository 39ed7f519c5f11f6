"""Drawing for the real-game fixture: two UI styles of GeoGuessr plus a streamer's additions.

Nothing here comes from `collect/demo`: own fonts (Pillow's built-in Aileron for "classic",
DejaVu Sans Mono Bold for "neon"), own layouts and colours. What is drawn follows the real
game: one status bar top right (`MAP World | ROUND 2/5 | SCORE 4,987`), a minimap with a
GUESS button bottom right, the result screen (map with the guess line, `4,874 points`,
`Your guess was 12 km from the correct location`, a progress bar, `NEXT ROUND` or
`VIEW SUMMARY`), a summary screen; and a facecam box, a chat overlay, an intro card and a
sponsor card. Every function returns a PIL image; `corpus.py` composes and times them.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from realgame.places import Place


@dataclass(frozen=True)
class Style:
    name: str
    font_file: str | None  # None: Pillow's built-in scalable font (Aileron)
    hud_bg: tuple[int, int, int, int]
    hud_label: tuple[int, int, int]
    hud_value: tuple[int, int, int]
    screen_bg: tuple[int, int, int]
    points_fg: tuple[int, int, int]
    button_bg: tuple[int, int, int]
    bar_fg: tuple[int, int, int]
    hud_on_result: bool  # the status bar stays on the result screen (newer layout)
    hud_spaced_counter: bool  # "2 / 5" instead of "2/5"


STYLES = {
    "classic": Style("classic", None, (10, 10, 30, 200), (190, 190, 210), (255, 255, 255), (25, 22, 48),
                     (255, 205, 40), (95, 180, 45), (255, 205, 40), hud_on_result=False, hud_spaced_counter=False),
    "neon": Style("neon", "DejaVuSansMono-Bold.ttf", (70, 20, 110, 215), (250, 220, 90), (245, 245, 255),
                  (48, 16, 78), (255, 255, 255), (140, 60, 220), (90, 230, 160), hud_on_result=True,
                  hud_spaced_counter=True),
}


@lru_cache(maxsize=128)
def font(style_name: str, size: int) -> ImageFont.FreeTypeFont:
    style = STYLES[style_name]
    size = max(8, int(size))
    if style.font_file is None:
        return ImageFont.load_default(size=size)
    import matplotlib

    return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / style.font_file), size)


def group_thousands(value: int, sep: str) -> str:
    text = f"{value:,}"
    return text.replace(",", sep)


def points_text(points: int, sep: str) -> str:
    return f"{group_thousands(points, sep)} points"


def distance_text(km: float, unit: str, sep: str) -> str:
    """How the game prints a guess distance: `620 m`, `12 km`, `1,204 km`, `45 miles`."""
    if unit == "miles":
        miles = km / 1.609344
        return f"{group_thousands(int(round(miles)), sep)} miles"
    if km < 1:
        return f"{int(round(km * 1000))} m"
    return f"{group_thousands(int(round(km)), sep)} km"


def _text_w(d: ImageDraw.ImageDraw, text: str, f) -> float:
    return d.textlength(text, font=f)


def _centred(d: ImageDraw.ImageDraw, text: str, cx: float, y: float, f, fill) -> None:
    d.text((cx - _text_w(d, text, f) / 2, y), text, font=f, fill=fill)


# --------------------------------------------------------------------------- gameplay
def panorama(place: Place, width: int, height: int, object_xs: list[int], seed: str) -> np.ndarray:
    """A street scene 3 frames wide; clue objects centred at `object_xs` (pixels)."""
    rng = random.Random(seed)
    W, H = width * 3, height
    horizon = int(0.52 * H)
    sky = np.linspace(np.array(place.sky) * 0.8, np.array(place.sky), horizon)[:, None, :].repeat(W, axis=1)
    ground = np.linspace(np.array(place.ground), np.array(place.ground) * 0.7, H - horizon)[:, None, :].repeat(W, axis=1)
    img = Image.fromarray(np.concatenate([sky, ground]).astype(np.uint8))
    d = ImageDraw.Draw(img)
    # far hills: a random walk skyline
    y, pts = horizon - H * 0.05, [(0, horizon)]
    for x in range(0, W + 40, 40):
        y = min(horizon - 4, max(horizon - H * 0.16, y + rng.uniform(-H * 0.02, H * 0.02)))
        pts.append((x, y))
    pts.append((W, horizon))
    d.polygon(pts, fill=tuple(int(c * 0.75) for c in place.ground))
    for _ in range(W // 120):  # bushes
        x, r = rng.randrange(W), rng.randint(H // 50, H // 22)
        d.ellipse([x - r, horizon - r, x + r, horizon + r // 2], fill=(40 + rng.randint(0, 30), 90 + rng.randint(0, 40), 40))
    road_top = int(0.78 * H)
    d.rectangle([0, road_top, W, H], fill=(78, 78, 82))
    d.line([0, road_top, W, road_top], fill=(220, 220, 220), width=max(2, H // 160))
    mid = int(0.9 * H)
    for x in range(0, W, H // 3):
        d.rectangle([x, mid - max(2, H // 200), x + H // 6, mid + max(2, H // 200)], fill=place.centre_line)
    kinds = [k for k, _ in place.clues]
    for kind, cx in zip(kinds, object_xs):
        _object(d, kind, place, cx, H, horizon, road_top)
    return np.asarray(img)


def _object(d: ImageDraw.ImageDraw, kind: str, place: Place, cx: int, H: int, horizon: int, road_top: int) -> None:
    if kind == "sign":
        f = font("classic", int(0.07 * H))
        tw = _text_w(d, place.sign_text, f)
        w, h = tw + 0.06 * H, 0.11 * H
        top = 0.26 * H
        for px in (cx - w * 0.3, cx + w * 0.3):
            d.rectangle([px - H * 0.006, top + h, px + H * 0.006, road_top], fill=(150, 150, 150))
        colour = (20, 105, 55) if place.country_code in ("AU", "US", "CA") else (25, 65, 150)
        d.rectangle([cx - w / 2, top, cx + w / 2, top + h], fill=colour, outline=(240, 240, 240), width=max(2, H // 200))
        d.text((cx - tw / 2, top + 0.018 * H), place.sign_text, font=f, fill=(250, 250, 250))
    elif kind == "bollard":
        for k, dx in enumerate((-0.12, 0.0, 0.12)):
            x = cx + dx * H
            w, h = 0.014 * H, 0.14 * H
            body = (25, 25, 25) if place.country_code == "NO" else (240, 240, 240)
            d.rectangle([x - w, road_top - h, x + w, road_top], fill=body)
            band = (235, 190, 30) if place.country_code == "NO" else (20, 20, 20)
            d.rectangle([x - w, road_top - h, x + w, road_top - h * 0.78], fill=band)
            refl = (220, 40, 40) if place.country_code in ("AU", "LT") else (235, 190, 30)
            d.rectangle([x - w * 0.6, road_top - h * 0.7, x + w * 0.6, road_top - h * 0.6], fill=refl)
    elif kind == "pole":
        wooden = place.country_code in ("US", "CA", "AU")
        colour = (115, 80, 45) if wooden else (175, 175, 170)
        w = 0.012 * H
        d.rectangle([cx - w, 0.1 * H, cx + w, road_top], fill=colour)
        d.rectangle([cx - 10 * w, 0.14 * H, cx + 10 * w, 0.14 * H + w], fill=colour)
        for k in range(3 if place.country_code == "JP" else 1):
            d.line([cx - 60 * w, 0.16 * H + k * 4 * w, cx + 60 * w, 0.17 * H + k * 4 * w], fill=(25, 25, 25), width=2)
        if place.country_code == "CO":
            d.rectangle([cx - w, road_top - 0.12 * H, cx + w, road_top], fill=(235, 200, 30))
    elif kind == "house":
        wall = (170, 40, 35) if place.country_code == "NO" else (225, 215, 195)
        roof = (150, 60, 40) if place.country_code in ("BR", "PE") else (80, 80, 90)
        x0, x1 = cx - 0.16 * H, cx + 0.16 * H
        d.rectangle([x0, horizon - 0.12 * H, x1, horizon + 0.1 * H], fill=wall, outline=(245, 245, 245), width=2)
        d.polygon([(x0 - 0.02 * H, horizon - 0.12 * H), (cx, horizon - 0.24 * H), (x1 + 0.02 * H, horizon - 0.12 * H)],
                  fill=roof)
        for wx in (x0 + 0.05 * H, x1 - 0.09 * H):
            d.rectangle([wx, horizon - 0.07 * H, wx + 0.04 * H, horizon - 0.02 * H], fill=(60, 80, 110))


def status_bar(style: Style, width: int, height: int, map_name: str, round_no: int, n_rounds: int,
               score: int, sep: str) -> tuple[Image.Image, tuple[int, int]]:
    """The one-bar HUD top right: MAP <name> | ROUND k/N | SCORE s (labels small, values big)."""
    H = height
    label_f, value_f = font(style.name, 0.026 * H), font(style.name, 0.04 * H)
    counter = f"{round_no} / {n_rounds}" if style.hud_spaced_counter else f"{round_no}/{n_rounds}"
    cells = [("MAP", map_name), ("ROUND", counter), ("SCORE", group_thousands(score, sep))]
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    gap = 0.012 * H
    widths = [_text_w(probe, lab, label_f) + gap + _text_w(probe, val, value_f) for lab, val in cells]
    sep_w = 0.04 * H
    w = int(sum(widths) + sep_w * (len(cells) - 1) + 0.04 * H)
    h = int(0.07 * H)
    bar = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    d = ImageDraw.Draw(bar)
    d.rounded_rectangle([0, 0, w - 1, h - 1], radius=h // 3 if style.name == "neon" else h // 8, fill=style.hud_bg)
    x = 0.02 * H
    for i, ((lab, val), cw) in enumerate(zip(cells, widths)):
        d.text((x, h * 0.36), lab, font=label_f, fill=style.hud_label)
        d.text((x + _text_w(d, lab, label_f) + gap, h * 0.14), val, font=value_f, fill=style.hud_value)
        x += cw
        if i < len(cells) - 1:
            if style.name == "neon":  # a thin rule between cells
                d.line([x + sep_w / 2, h * 0.2, x + sep_w / 2, h * 0.8], fill=style.hud_label, width=2)
            else:
                _centred(d, "|", x + sep_w / 2, h * 0.14, value_f, style.hud_label)
            x += sep_w
    margin_x = int((0.015 if style.name == "classic" else 0.03) * width)
    margin_y = int((0.025 if style.name == "classic" else 0.015) * H)
    return bar, (width - w - margin_x, margin_y)


def minimap(style: Style, width: int, height: int) -> tuple[Image.Image, tuple[int, int]]:
    w, h = int(0.2 * width), int(0.24 * height)
    img = Image.new("RGBA", (w, h + int(0.06 * height)), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    d.rectangle([0, 0, w - 1, h - 1], fill=(165, 200, 230, 230), outline=(255, 255, 255, 255), width=2)
    for k in range(4):
        d.ellipse([w * (0.1 + 0.2 * k), h * (0.2 + 0.1 * (k % 2)), w * (0.3 + 0.2 * k), h * (0.6 + 0.1 * (k % 2))],
                  fill=(150, 190, 120, 255))
    f = font(style.name, 0.03 * height)
    d.rounded_rectangle([0, h + 4, w - 1, h + int(0.06 * height) - 1], radius=6, fill=(40, 40, 40, 230))
    _centred(d, "GUESS", w / 2, h + 6, f, (200, 200, 200))
    return img, (width - w - int(0.015 * width), height - h - int(0.06 * height) - int(0.02 * height))


def facecam(width: int, height: int, corner: str, mouth_open: bool = False) -> tuple[Image.Image, tuple[int, int]]:
    """A streamer's webcam box (a head and shoulders on a room background) in a corner."""
    w, h = int(0.2 * width), int(0.22 * height)
    img = Image.new("RGB", (w, h), (55, 45, 60))
    d = ImageDraw.Draw(img)
    d.rectangle([0, int(h * 0.65), w, h], fill=(75, 60, 55))  # desk
    d.rectangle([int(w * 0.7), int(h * 0.1), int(w * 0.9), int(h * 0.45)], fill=(200, 170, 90))  # poster
    d.ellipse([w * 0.22, h * 0.72, w * 0.78, h * 1.4], fill=(40, 90, 150))  # shoulders
    d.ellipse([w * 0.36, h * 0.2, w * 0.64, h * 0.78], fill=(225, 185, 150))  # head
    d.arc([w * 0.3, h * 0.1, w * 0.7, h * 0.7], 180, 360, fill=(30, 30, 30), width=max(2, h // 25))  # headset
    if mouth_open:
        d.ellipse([w * 0.46, h * 0.6, w * 0.54, h * 0.68], fill=(120, 40, 40))
    else:
        d.line([w * 0.45, h * 0.64, w * 0.55, h * 0.64], fill=(120, 40, 40), width=2)
    d.rectangle([0, 0, w - 1, h - 1], outline=(255, 80, 160), width=max(2, h // 40))
    mx, my = int(0.012 * width), int(0.02 * height)
    x = mx if "left" in corner else width - w - mx
    y = my if "top" in corner else height - h - my
    return img, (x, y)


def chat(style: Style, width: int, height: int, lines: list[tuple[str, str]]) -> tuple[Image.Image, tuple[int, int]]:
    """A stream chat overlay on the left edge (names coloured, messages white)."""
    w, h = int(0.24 * width), int(0.3 * height)
    img = Image.new("RGBA", (w, h), (0, 0, 0, 120))
    d = ImageDraw.Draw(img)
    f = font(style.name, 0.026 * height)
    y = h - 0.05 * height * len(lines) - 4
    for name, message in lines:
        d.text((6, y), f"{name}:", font=f, fill=(120, 220, 255))
        d.text((10 + _text_w(d, f"{name}:", f), y), message, font=f, fill=(255, 255, 255))
        y += 0.05 * height
    return img, (int(0.01 * width), int(0.32 * height))


# --------------------------------------------------------------------------- screens
def _world_map(width: int, height: int, seed: str) -> Image.Image:
    rng = random.Random(seed)
    img = Image.new("RGB", (width, height), (150, 190, 225))
    d = ImageDraw.Draw(img)
    for _ in range(7):  # continents as blobby polygons
        cx, cy = rng.uniform(0.05, 0.95) * width, rng.uniform(0.1, 0.9) * height
        r = rng.uniform(0.06, 0.16) * width
        pts = [(cx + r * rng.uniform(0.6, 1.2) * math.cos(a), cy + 0.6 * r * rng.uniform(0.6, 1.2) * math.sin(a))
               for a in np.linspace(0, 2 * math.pi, 14, endpoint=False)]
        d.polygon(pts, fill=(200, 215, 175), outline=(170, 185, 150))
    return img


def _pins(d: ImageDraw.ImageDraw, guess: tuple[float, float] | None, true: tuple[float, float], r: float) -> None:
    if guess is not None:
        d.line([guess, true], fill=(20, 20, 20), width=max(2, int(r / 3)))
        d.ellipse([guess[0] - r, guess[1] - r, guess[0] + r, guess[1] + r], fill=(230, 60, 60), outline=(255, 255, 255))
    d.rectangle([true[0] - r * 0.2, true[1] - 2.5 * r, true[0] + r * 0.2, true[1]], fill=(30, 30, 30))
    d.polygon([(true[0], true[1] - 2.5 * r), (true[0] + 1.6 * r, true[1] - 1.9 * r), (true[0], true[1] - 1.3 * r)],
              fill=(60, 190, 90))


def _map_xy(lat: float, lng: float, box: tuple[float, float, float, float]) -> tuple[float, float]:
    x0, y0, x1, y1 = box
    return x0 + (lng + 180) / 360 * (x1 - x0), y0 + (90 - lat) / 180 * (y1 - y0)


def _button(d: ImageDraw.ImageDraw, style: Style, label: str, cx: float, y: float, H: int) -> None:
    f = font(style.name, 0.045 * H)
    tw = _text_w(d, label, f)
    bw, bh = tw + 0.09 * H, 0.08 * H
    d.rounded_rectangle([cx - bw / 2, y, cx + bw / 2, y + bh], radius=int(bh / 2), fill=style.button_bg)
    _centred(d, label, cx, y + bh * 0.2, f, (255, 255, 255))


def result_screen(style: Style, width: int, height: int, *, points: int, distance: str | None,
                  true_latlng: tuple[float, float], guess_latlng: tuple[float, float] | None, last: bool,
                  sep: str, seed: str) -> Image.Image:
    """The round's result: map with the guess line, points, distance sentence, bar, button."""
    W, H = width, height
    label = "VIEW SUMMARY" if last else "NEXT ROUND"
    if style.name == "classic":  # map on top, a dark band with the numbers below
        img = Image.new("RGB", (W, H), style.screen_bg)
        mh = int(0.6 * H)
        img.paste(_world_map(W, mh, seed), (0, 0))
        d = ImageDraw.Draw(img)
        box = (0, 0, W, mh)
        _pins(d, _map_xy(*guess_latlng, box) if guess_latlng else None, _map_xy(*true_latlng, box), 0.015 * H)
        _centred(d, points_text(points, sep), W / 2, 0.625 * H, font(style.name, 0.075 * H), style.points_fg)
        bx0, bx1, by = 0.3 * W, 0.7 * W, 0.735 * H
        d.rounded_rectangle([bx0, by, bx1, by + 0.018 * H], radius=int(0.009 * H), fill=(70, 70, 95))
        if points:
            d.rounded_rectangle([bx0, by, bx0 + (bx1 - bx0) * points / 5000, by + 0.018 * H], radius=int(0.009 * H),
                                fill=style.bar_fg)
        if distance is not None:
            _centred(d, f"Your guess was {distance} from the correct location", W / 2, 0.775 * H,
                     font(style.name, 0.038 * H), (235, 235, 245))
        _button(d, style, label, W / 2, 0.865 * H, H)
        return img
    # neon: the map fills the screen, a translucent panel at the bottom holds the numbers
    img = _world_map(W, H, seed)
    d = ImageDraw.Draw(img)
    box = (0, 0, W, H)
    _pins(d, _map_xy(*guess_latlng, box) if guess_latlng else None, _map_xy(*true_latlng, box), 0.015 * H)
    panel = Image.new("RGBA", (int(0.7 * W), int(0.4 * H)), (*style.screen_bg, 225))
    img.paste(panel, (int(0.15 * W), int(0.57 * H)), panel)
    d = ImageDraw.Draw(img)
    if distance is not None:
        _centred(d, f"Your guess was {distance} from the correct location", W / 2, 0.6 * H,
                 font(style.name, 0.034 * H), (230, 220, 255))
    _centred(d, points_text(points, sep), W / 2, 0.665 * H, font(style.name, 0.07 * H), style.points_fg)
    bx0, bx1, by = 0.22 * W, 0.78 * W, 0.775 * H
    d.rectangle([bx0, by, bx1, by + 0.014 * H], fill=(90, 60, 120))
    if points:
        d.rectangle([bx0, by, bx0 + (bx1 - bx0) * points / 5000, by + 0.014 * H], fill=style.bar_fg)
    _button(d, style, label, 0.66 * W, 0.85 * H, H)
    return img


def summary_screen(style: Style, width: int, height: int, *, round_points: list[int], sep: str,
                   pins: list[tuple[float, float]], seed: str) -> Image.Image:
    """After VIEW SUMMARY: every round's pin, the total and a PLAY AGAIN button."""
    W, H = width, height
    img = Image.new("RGB", (W, H), style.screen_bg)
    mh = int(0.5 * H)
    img.paste(_world_map(W, mh, seed + ":summary"), (0, 0))
    d = ImageDraw.Draw(img)
    for lat, lng in pins:
        _pins(d, None, _map_xy(lat, lng, (0, 0, W, mh)), 0.012 * H)
    _centred(d, "GAME SUMMARY", W / 2, 0.53 * H, font(style.name, 0.045 * H), (220, 220, 235))
    _centred(d, points_text(sum(round_points), sep), W / 2, 0.6 * H, font(style.name, 0.08 * H), style.points_fg)
    f = font(style.name, 0.034 * H)
    cells = [group_thousands(p, sep) for p in round_points]
    for i, text in enumerate(cells):
        _centred(d, text, W * (0.18 + 0.16 * i), 0.74 * H, f, (235, 235, 245))
    _button(d, style, "PLAY AGAIN", W / 2, 0.85 * H, H)
    return img


def intro_card(style: Style, width: int, height: int, channel: str, map_name: str) -> Image.Image:
    W, H = width, height
    img = Image.new("RGB", (W, H), (15, 30, 45) if style.name == "classic" else (35, 10, 55))
    d = ImageDraw.Draw(img)
    for k in range(12):  # a busy animated-looking background
        d.line([(0, H * k / 12), (W, H * (k + 3) / 12)], fill=(40, 60, 80) if style.name == "classic" else (70, 30, 90),
               width=max(2, H // 100))
    _centred(d, channel, W / 2, 0.3 * H, font(style.name, 0.1 * H), (255, 255, 255))
    _centred(d, f"today: {map_name} no move", W / 2, 0.46 * H, font(style.name, 0.05 * H), (200, 220, 255))
    return img


def sponsor_card(style: Style, width: int, height: int) -> Image.Image:
    """A mid-roll ad read: a product card with numbers that are not a round's."""
    W, H = width, height
    img = Image.new("RGB", (W, H), (240, 240, 245))
    d = ImageDraw.Draw(img)
    d.rectangle([0, 0, W, 0.18 * H], fill=(20, 120, 200))
    _centred(d, "SPONSORED BY SAFEROUTE VPN", W / 2, 0.05 * H, font(style.name, 0.06 * H), (255, 255, 255))
    _centred(d, "Earn 500 bonus points", W / 2, 0.4 * H, font(style.name, 0.07 * H), (20, 20, 40))
    _centred(d, "3 months free with code GEO", W / 2, 0.55 * H, font(style.name, 0.05 * H), (60, 60, 80))
    _button(d, style, "GET THE DEAL", W / 2, 0.75 * H, H)
    return img
