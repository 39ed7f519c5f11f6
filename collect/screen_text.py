"""Reading GeoGuessr's on-screen text as OCR returns it: the HUD bar, result screens, summaries.

OCR of compressed, downscaled video rarely gives the game's strings verbatim: spaces vanish
(`MAPWorldROUND2/5SCORE4987`, `NEXTROUND`), digits and letters swap (`O`/`0`, `l`/`I`/`1`, `S`/`5`),
the thousands separator is `,`, `.`, a space or nothing. So numbers are matched with
look-alike character classes and repaired afterwards, and the fixed words of the UI (buttons,
summary headings) are matched fuzzily (rapidfuzz) on their letters alone.

Every parser takes OCR text and returns a value or None; none of them guesses: a reading that
does not fit the game's ranges (points 0–5000, round ≤ total) is None.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

from rapidfuzz import fuzz

# characters OCR returns for digits on GeoGuessr's fonts, and the digit each stands for
_LOOKALIKE_DIGITS = str.maketrans({"O": "0", "o": "0", "D": "0", "Q": "0", "I": "1", "l": "1", "L": "1", "|": "1",
                                   "!": "1", "S": "5", "B": "8", "Z": "2"})
_D = r"[0-9ODQIl|!SBZo]"  # one digit as OCR may return it
# a number as displayed: 4,874 / 4.874 / 4 874 / 4874 / 12.3 (starts with a real or look-alike digit)
_NUMBER = rf"{_D}{{1,3}}(?:[,.\s]{_D}{{3}})+(?![0-9])|{_D}+(?:[.,]\d+)?"

_POINTS = re.compile(rf"(?<![0-9A-Za-z,.])({_NUMBER})\s*(?:p\s*[o0]\s*[i1l]\s*n\s*t\s*[s5]?|pts)", re.I)
# "Your guess was 12 km from the correct location": the unit may run into the next word
_UNIT = r"(kilometers?|kilometres?|km|miles?|mi|meters?|metres?|m|feet|ft)"
_DISTANCE = re.compile(rf"(?:(?<=was)|(?<![0-9A-Za-z,.]))({_NUMBER})\s*{_UNIT}(?=$|[^a-z]|from|away)", re.I)
_UNIT_KM = {"km": 1.0, "kilometer": 1.0, "kilometre": 1.0, "m": 0.001, "meter": 0.001, "metre": 0.001,
            "mi": 1.609344, "mile": 1.609344, "ft": 0.0003048, "feet": 0.0003048}
# the HUD bar: "ROUND 2/5", "ROUND2/5", "ROUND 3 OF 5" (letters of ROUND themselves misread too)
_ROUND_WORD = r"R[O0Q][UV]N[DO0]"
# (lazy digit groups: in 'ROUND2/5|SCORE' or 'ROUND2/5SCORE' the total is 5, not 51 or 55)
_COUNTER = re.compile(rf"{_ROUND_WORD}:?({_D}{{1,2}}?)(?:/|\\|\||I|L|OF)({_D}{{1,2}}?)(?![0-9])")
# a bare "1 / 5" (the ROUND label on its own line, or lost)
_FRACTION = re.compile(rf"(?<![0-9,.])({_D}{{1,2}})\s*/\s*({_D}{{1,2}})(?![0-9,.])")
_D_UPPER = r"[0-9ODQIL|!SBZ]"  # the same on upper-cased text (where 'l' became 'L')
_SCORE = re.compile(rf"S[C(]?[O0]RE:?({_D_UPPER}{{1,3}}(?:[,.]?{_D_UPPER}{{3}})*)(?![0-9])")
_MAP = re.compile(r"MAP:?(.+?)(?=\||" + _ROUND_WORD + "|$)")

# buttons of a round's result screen (letters only, as OCR squashes them)
RESULT_BUTTONS = ("NEXTROUND", "NEXT", "VIEWSUMMARY", "VIEWRESULTS", "CONTINUE", "END")
# what only the end-of-game summary shows
SUMMARY_MARKERS = ("PLAYAGAIN", "BACKTOSTART", "GAMESUMMARY", "GAMEBREAKDOWN", "BREAKDOWN", "TOTALSCORE",
                   "FINALSCORE", "FINALRESULTS", "GAMEOVER", "CHALLENGECOMPLETE", "SUMMARY", "TOTAL")
_FUZZY_MIN = 84  # rapidfuzz ratio: tolerates one wrong letter in NEXTROUND, none in END


def repair_digits(raw: str) -> str:
    """'4,87O' → '4,870', 'l2' → '12': look-alike letters in a number become digits."""
    return raw.translate(_LOOKALIKE_DIGITS)


def parse_number(raw: str) -> float | None:
    """'4,873' / '4.873' / '4 873' → 4873; '12.3' / '12,3' → 12.3 (three-digit groups are thousands)."""
    raw = repair_digits(raw.strip())
    if re.fullmatch(r"\d{1,3}(?:[,.\s]\d{3})+", raw):
        return float(re.sub(r"[,.\s]", "", raw))
    try:
        return float(raw.replace(",", "."))
    except ValueError:
        return None


def parse_points(text: str) -> int | None:
    """Round points shown on a result screen ('4,874 points', '4874points', '0 points'), 0–5000."""
    for m in _POINTS.finditer(text):
        value = parse_number(m.group(1))
        if value is not None and value == int(value) and 0 <= value <= 5000:
            return int(value)
    return None


def parse_distance_km(text: str) -> float | None:
    """The guess's distance in km from '12 km', '850 m', '7.5 miles', '1,204 km' (None if absent)."""
    for m in _DISTANCE.finditer(text):
        value = parse_number(m.group(1))
        unit = m.group(2).lower().rstrip("s") if m.group(2).lower() not in ("km", "m", "mi", "ft") else m.group(2).lower()
        if value is None or unit not in _UNIT_KM:
            continue
        return round(value * _UNIT_KM[unit], 3)
    return None


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text.upper())


def _counter_value(current: str, total: str, max_total: int) -> tuple[int, int] | None:
    k, n = int(repair_digits(current)), int(repair_digits(total))
    return (k, n) if 1 <= k <= n <= max_total else None


def parse_counter(text: str) -> tuple[int, int] | None:
    """(round, rounds in the game) from the HUD: 'ROUND 2 / 5', 'MAPWorldROUND2/5SCORE4987', '1 / 5'."""
    squashed = _squash(text)
    for m in _COUNTER.finditer(squashed):
        if (value := _counter_value(m.group(1), m.group(2), 99)) is not None:
            return value
    # without the ROUND label only a plain 'k / n' counts, and only a game-sized one
    for m in _FRACTION.finditer(text):
        if (value := _counter_value(m.group(1), m.group(2), 20)) is not None:
            return value
    return None


@dataclass(frozen=True)
class Hud:
    round: int
    total: int
    score: int | None = None  # the game's running total shown next to the counter
    map_name: str | None = None


def parse_hud(text: str) -> Hud | None:
    """The HUD bar `MAP World | ROUND 2/5 | SCORE 4,987` in any OCR form; None without a round counter."""
    counter = parse_counter(text)
    if counter is None:
        return None
    squashed = _squash(text)
    score = None
    if (m := _SCORE.search(squashed)) is not None:
        value = parse_number(m.group(1))
        score = int(value) if value is not None and value == int(value) else None
    map_name = None
    if (m := _MAP.search(re.sub(r"\s*\|\s*", "|", text.strip().upper()))) is not None:
        map_name = m.group(1).strip(" |:") or None
    return Hud(counter[0], counter[1], score, map_name)


def _letters(line: str) -> str:
    return re.sub(r"[^A-Z]", "", line.upper())


def _matches(line_letters: str, words: Sequence[str]) -> str | None:
    """The UI word this OCR line is (fuzzily), if any: a whole-line match, so chat sentences
    that merely contain 'next' do not count."""
    if not line_letters:
        return None
    best, score = None, 0.0
    for word in words:
        # short words need an exact match (one letter off turns END into AND)
        if len(word) >= 6 and abs(len(line_letters) - len(word)) <= 2:  # "NEXTROUNDPLS" is chat, not the button
            s = fuzz.ratio(line_letters, word)
        else:
            s = 100.0 if line_letters == word else 0.0
        if s > score:
            best, score = word, s
    return best if score >= _FUZZY_MIN else None


def find_button(lines: Sequence[str]) -> str | None:
    for line in lines:
        if (word := _matches(_letters(line), RESULT_BUTTONS)) is not None:
            return word
    return None


def summary_marker(lines: Sequence[str]) -> str | None:
    """A heading or button only the end-of-game summary has ('PLAY AGAIN', 'Total score' …)."""
    for line in lines:
        letters = _letters(line)
        if _matches(letters, RESULT_BUTTONS) is not None:
            continue  # 'VIEW SUMMARY' is the last round's button, not the summary
        if (word := _matches(letters, SUMMARY_MARKERS)) is not None:
            return word
        for marker in SUMMARY_MARKERS[:-2]:  # long markers inside a longer line ("TOTAL SCORE 18,455")
            if marker in letters:
                return marker
    return None


@dataclass
class ScreenReading:
    """What the result-panel OCR says about one frame."""
    kind: str  # "result" | "summary" | "other"
    points: int | None = None
    distance_km: float | None = None
    button: str | None = None
    why: str = ""
    text: str = ""
    totals: list[int] = field(default_factory=list)  # point values too large for one round


def _all_point_values(text: str) -> list[int]:
    values = []
    for m in _POINTS.finditer(text):
        value = parse_number(m.group(1))
        if value is not None and value == int(value):
            values.append(int(value))
    return values


# a line this much smaller than the screen's tallest text is small print (chat, captions, labels)
PROMINENT_HEIGHT = 0.6


def _text_and_height(line) -> tuple[str, float | None]:
    if isinstance(line, str):
        return line, None
    x0, y0, x1, y1 = line.box
    return line.text, float(y1 - y0)


def read_result_screen(lines: Sequence) -> ScreenReading:
    """Classify the result-panel text of one frame (lines: strings, or OCR lines with boxes).

    A round's result screen shows its points with the distance or its button (a timed-out round:
    '0 points' and the button, no distance); the summary after the last round shows a total and
    headings of its own. Anything else (intro cards, sponsor spots, chat) is "other". With boxes,
    scores are read from the prominent lines only: a chat overlay's "4000 points easy" is small print
    next to the result's big "4,874 points".
    """
    items = [_text_and_height(line) for line in lines]
    texts = [t for t, _ in items]
    heights = [h for _, h in items if h]
    tallest = max(heights) if heights else None
    # point values by line, the prominent lines' first (then top to bottom)
    valued = []
    for i, (t, h) in enumerate(items):
        for v in _all_point_values(t):
            valued.append((h is not None and tallest is not None and h < PROMINENT_HEIGHT * tallest, i, v))
    if not valued:  # a number and its "points" on two lines
        valued = [(False, 0, v) for v in _all_point_values(" ".join(texts))]
    valued.sort()
    prominent = [v for small, _, v in valued if not small]
    values = prominent or [v for _, _, v in valued]
    text = " ".join(texts)
    points = next((v for v in values if 0 <= v <= 5000), None)
    distance = parse_distance_km(text)
    button = find_button(texts)
    marker = summary_marker(texts)
    too_big = [v for v in prominent if v > 5000]
    if marker is not None or too_big or len(prominent) >= 3:
        why = (f"summary heading {marker!r}" if marker else
               f"total {too_big[0]} points" if too_big else f"{len(prominent)} point values on one screen")
        return ScreenReading("summary", points, distance, button, why, text, too_big)
    if points is not None and (distance is not None or button is not None):
        return ScreenReading("result", points, distance, button, "", text)
    if button is not None and distance is not None:  # the score itself unreadable
        return ScreenReading("result", None, distance, button, "points unreadable", text)
    return ScreenReading("other", points, distance, button, "", text)
