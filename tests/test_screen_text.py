"""Every OCR form of the real game's HUD, result screen and summary (collect.screen_text).

Two levels: OCR-like strings as RapidOCR returns them from compressed video (spaces lost, look-alike
characters), and small images rendered with PIL and read by the real RapidOCR, so the parsers are
shown on what the OCR engine actually outputs, not only on strings written for them.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from collect import ocr
from collect.screen_text import (
    parse_counter,
    parse_distance_km,
    parse_hud,
    parse_points,
    read_result_screen,
)


# --------------------------------------------------------------------------- HUD bar
@pytest.mark.parametrize("text,expected", [
    ("MAP World | ROUND 2/5 | SCORE 4,987", (2, 5, 4987)),
    ("MAPWorldROUND2/5SCORE4987", (2, 5, 4987)),  # spaces and bars lost
    ("MAPWorld|ROUND2/5|SCORE4,987", (2, 5, 4987)),
    ("ROUND1/5", (1, 5, None)),
    ("ROUND 1 / 5", (1, 5, None)),
    ("1 / 5", (1, 5, None)),  # the ROUND label read on its own or lost
    ("MAP World ROUND 3 / 5 SCORE 9.310", (3, 5, 9310)),  # '.' as thousands separator
    ("R0UND 4/5 SC0RE l2,O44", (4, 5, 12044)),  # O/0 and l/1 look-alikes
    ("ROUND 2l5", (2, 5, None)),  # the slash read as an l
    ("ROUND 3 OF 5", (3, 5, None)),
    ("ROUND 12/13 SCORE 50,110", (12, 13, 50110)),
])
def test_hud_forms(text, expected):
    hud = parse_hud(text)
    assert hud is not None, text
    assert (hud.round, hud.total, hud.score) == expected


@pytest.mark.parametrize("text", ["ROUND 7/5", "SCORE 4,987", "NEXT ROUND", "4,874 points", "ROUND 0/5", "7 / 50"])
def test_not_a_round_counter(text):
    assert parse_counter(text) is None


def test_hud_map_name():
    assert parse_hud("MAP World | ROUND 2/5 | SCORE 4,987").map_name == "WORLD"


# --------------------------------------------------------------------------- result screen
@pytest.mark.parametrize("text,points", [
    ("4,874 points", 4874), ("4.874 points", 4874), ("4874 points", 4874), ("4 874 points", 4874),
    ("4,874points", 4874), ("4874POINTS", 4874), ("4,87O points", 4870), ("S,000 points", 5000),
    ("0 points", 0), ("O points", 0), ("12 pts", 12),
    ("18,455 points", None),  # more than one round can score: a game total
    ("ROUND 2/5", None), ("Your guess was 12 km from the correct location", None),
])
def test_points_forms(text, points):
    assert parse_points(text) == points


@pytest.mark.parametrize("text,km", [
    ("Your guess was 12 km from the correct location", 12.0),
    ("Yourguesswas12kmfromthecorrectlocation", 12.0),
    ("Your guess was 850 m from the correct location", 0.85),
    ("Your guesswas 850mfrom the correct location", 0.85),
    ("Your guess was 7.5 miles from the correct location", 12.07),
    ("Your guess was 1 mile from the correct location", 1.609),
    ("Your guess was 1,204 km from the correct location", 1204.0),
    ("Your guess was 1.204 km from the correct location", 1204.0),
    ("YOUR GUESS WAS l2 KM FROM THE CORRECT LOCATION", 12.0),
    ("4,874 points", None),
])
def test_distance_forms(text, km):
    assert parse_distance_km(text) == km


@pytest.mark.parametrize("lines,points,km,button", [
    (["4,874 points", "Your guess was 12 km from the correct location", "NEXT ROUND"], 4874, 12.0, "NEXTROUND"),
    (["4874points", "Yourguesswas12kmfromthecorrectlocation", "NEXTROUND"], 4874, 12.0, "NEXTROUND"),
    (["3.120 points", "Your guess was 850 m from the correct location", "VIEWSUMMARY"], 3120, 0.85, "VIEWSUMMARY"),
    (["2,001 points", "Your guess was 300 miles from the correct location", "VIEW SUMMARY"], 2001, 482.803,
     "VIEWSUMMARY"),
    (["0 points", "NEXT ROUND"], 0, None, "NEXTROUND"),  # timed out: no guess, no distance
    (["0 points", "NEXTR0UND"], 0, None, "NEXTROUND"),  # one letter misread
])
def test_result_screen_forms(lines, points, km, button):
    reading = read_result_screen(lines)
    assert reading.kind == "result"
    assert (reading.points, reading.distance_km, reading.button) == (points, km, button)


@pytest.mark.parametrize("lines", [
    ["GAME SUMMARY", "18,455 points", "PLAY AGAIN"],
    ["Total score", "4,120 points", "BACK TO START"],  # a poor game: the total fits one round's range
    ["Round 1 4,874 points", "Round 2 3,001 points", "Round 3 12 points"],
    ["TOTAL SCORE 21,304"],
])
def test_summary_screen_is_not_a_round(lines):
    reading = read_result_screen(lines)
    assert reading.kind == "summary" and reading.why


@pytest.mark.parametrize("lines", [
    ["GEOGUESSR", "World challenge", "welcome back"],  # intro card
    ["This video is sponsored by", "NordVPN", "Use code GEO for 20% off", "NEXT"],  # sponsor spot
    ["next round lets go", "5000 points or bust"],  # chat overlay: sentences, not the UI
    ["MAP World | ROUND 2/5 | SCORE 4,987"],
])
def test_intro_sponsor_and_chat_are_not_results(lines):
    assert read_result_screen(lines).kind == "other"


# --------------------------------------------------------------------------- real OCR on rendered text
def _font(size: int, bold: bool = True) -> ImageFont.FreeTypeFont:
    import matplotlib

    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name), size)


def _render(lines: list[tuple[str, int]], width: int, bg=(24, 18, 48), jpeg_quality: int = 35) -> np.ndarray:
    """Lines of text centred on a dark panel, JPEG-compressed like a streamed frame."""
    import io

    height = sum(int(size * 1.9) for _, size in lines) + 12
    image = Image.new("RGB", (width, height), bg)
    draw = ImageDraw.Draw(image)
    y = 6
    for text, size in lines:
        f = _font(size, bold=size >= 14)
        draw.text(((width - draw.textlength(text, font=f)) / 2, y), text, font=f, fill=(245, 245, 245))
        y += int(size * 1.9)
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=jpeg_quality)
    return np.asarray(Image.open(buf).convert("RGB"))


def _ocr_lines(image: np.ndarray) -> list[str]:
    return [line.text for line in ocr.read_text(image)]


@pytest.mark.parametrize("bar,expected", [
    ("MAP World | ROUND 2/5 | SCORE 4,987", (2, 5, 4987)),
    ("MAP  World   ROUND  1 / 5   SCORE  0", (1, 5, 0)),
])
def test_rendered_hud_read_by_rapidocr(bar, expected):
    text = " ".join(_ocr_lines(_render([(bar, 13)], 340)))
    hud = parse_hud(text)
    assert hud is not None, text
    assert (hud.round, hud.total, hud.score) == expected, text


@pytest.mark.parametrize("points_text,distance_text,button,points,km", [
    ("4,874 points", "Your guess was 12 km from the correct location", "NEXT ROUND", 4874, 12.0),
    ("4.874 points", "Your guess was 850 m from the correct location", "NEXT ROUND", 4874, 0.85),
    ("3120 points", "Your guess was 7.5 miles from the correct location", "VIEW SUMMARY", 3120, 12.07),
    ("0 points", None, "NEXT ROUND", 0, None),
])
def test_rendered_result_screen_read_by_rapidocr(points_text, distance_text, button, points, km):
    lines = [(points_text, 26)] + ([(distance_text, 11)] if distance_text else []) + [(button, 14)]
    read = _ocr_lines(_render(lines, 420))
    reading = read_result_screen(read)
    assert reading.kind == "result", read
    assert (reading.points, reading.distance_km) == (points, km), read
    assert reading.button == button.replace(" ", ""), read


def test_rendered_summary_read_by_rapidocr_is_refused():
    read = _ocr_lines(_render([("GAME SUMMARY", 16), ("18,455 points", 24), ("PLAY AGAIN", 14)], 420))
    reading = read_result_screen(read)
    assert reading.kind == "summary", read


@pytest.mark.parametrize("size", [36, 40])
def test_timed_out_zero_lost_by_the_detector_is_recognised_again(size):
    """A lone '0' in a wide monospace font is boxed as a dot or not at all: the Reader recognises
    the 'points' line again with room on its left and gets '0 points'."""
    import io

    import matplotlib

    from collect.stages.segment import Reader

    mono = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSansMono-Bold.ttf"
    image = Image.new("RGB", (730, 290), (60, 33, 95))
    draw = ImageDraw.Draw(image)
    draw.text((275, 110), "0 points", font=ImageFont.truetype(str(mono), size), fill=(255, 255, 255))
    draw.rounded_rectangle([420, 210, 615, 255], radius=22, fill=(140, 60, 220))
    draw.text((445, 220), "NEXT ROUND", font=ImageFont.truetype(str(mono), 22), fill=(255, 255, 255))
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=30)
    pixels = np.asarray(Image.open(buf).convert("RGB"))
    assert parse_points(" ".join(_ocr_lines(pixels))) is None  # the detector alone loses the number
    reading = Reader().screen({"result_img": pixels})
    assert (reading.kind, reading.points, reading.distance_km, reading.button) == ("result", 0, None, "NEXTROUND")


def _line(text: str, height: float, y: float) -> ocr.OcrLine:
    return ocr.OcrLine(text, 0.95, (10.0, y, 10.0 + 9 * len(text), y + height))


def test_chat_overlay_points_are_small_print_next_to_the_result():
    lines = [_line("4000 points easy", 12, 5), _line("round 3 was rigged", 12, 20),
             _line("4,867 points", 34, 60), _line("Your guess was 25 miles from the correct location", 16, 110),
             _line("NEXT ROUND", 18, 150)]
    reading = read_result_screen(lines)
    assert (reading.kind, reading.points, reading.distance_km) == ("result", 4867, 40.234)
    # three chat lines with points do not make a summary either
    chat = [_line(f"{n} points lol", 12, 5 + 15 * i) for i, n in enumerate((4000, 5000, 3000))]
    assert read_result_screen(chat + lines[2:]).kind == "result"


def test_sponsor_card_with_chat_is_not_a_result():
    lines = [_line("next round pls", 12, 5), _line("SPONSORED BY SAFEROUTE VPN", 30, 40),
             _line("Earn 500 bonus points", 20, 90), _line("GET THE DEAL", 18, 140)]
    assert read_result_screen(lines).kind == "other"
